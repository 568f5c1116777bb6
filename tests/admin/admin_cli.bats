#!/usr/bin/env bats
# Integration: the real `tenantfs` CLI against a real `tenantfs serve` on a
# temp socket, with temp state, data and mount directories and a passwd/group
# pair. Volumes are made through the VolumeDriver API, as Docker would.
# Needs TENANTFS_BIN and root; the mount-count test also needs /dev/fuse.

setup_file() {
  : "${TENANTFS_BIN:?set TENANTFS_BIN to the built tenantfs}"
  if [[ $(id -u) -ne 0 ]]; then
    export NOT_ROOT=1  # bats 1.8 cannot skip from setup_file; setup() skips each test
    return 0
  fi
  export WORK="$(mktemp -d /tmp/tenantfs-admin-it.XXXXXX)"
  export SOCK="$WORK/tenantfs.sock"
  printf '%s\n' '# host users' 'root:x:0:0:root:/root:/bin/sh' \
    'hostuser:x:1200:1200::/home/hostuser:/bin/sh' 'broken line' >"$WORK/passwd"
  printf '%s\n' 'docs:x:3000:hostuser' >"$WORK/group"
  "$TENANTFS_BIN" serve --socket "$SOCK" --state-dir "$WORK/state" --data-dir "$WORK/data" \
    --mount-root "$WORK/mounts" --passwd-file "$WORK/passwd" --group-file "$WORK/group" \
    >"$WORK/serve.log" 2>&1 3>&- &
  echo $! >"$WORK/serve.pid"
  # Wait for the socket to answer (bounded, not a timing assertion).
  for _ in $(seq 1 100); do
    curl -sf --unix-socket "$SOCK" -X POST -d '{}' http://tenantfs/Plugin.Activate >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "tenantfs serve did not come up:" >&2
  cat "$WORK/serve.log" >&2
  return 1
}

teardown_file() {
  [[ -n "${WORK:-}" ]] || return 0  # setup_file skipped
  if [[ -f "$WORK/serve.pid" ]]; then
    local pid
    pid=$(cat "$WORK/serve.pid")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  # A failed test may leave a mapper mounted: never leave mounts behind.
  grep -o " $WORK/mounts/[^ ]*" /proc/mounts 2>/dev/null | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$WORK"
}

setup() {
  [[ -z "${NOT_ROOT:-}" ]] || skip "needs root: serve creates volume directories owned by tenants"
}

tfs() { "$TENANTFS_BIN" "$@" --socket "$SOCK"; }

# docker_api ENDPOINT JSON: one VolumeDriver call, prints the reply.
docker_api() {
  curl -s --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' -d "$2" \
    "http://tenantfs/VolumeDriver.$1"
}

@test "tenant add confirms and tenant ls shows registry and passwd tenants" {
  run tfs tenant add alice --uid 1000 --gid 1000 --groups 3001,3000
  [ "$status" -eq 0 ]
  [ "$output" = "tenant alice added: uid 1000, gid 1000, groups 3000,3001" ]

  run tfs tenant ls
  [ "$status" -eq 0 ]
  [ "$(echo "${lines[0]}" | tr -s ' ')" = "NAME UID GID GROUPS SOURCE USERS" ]
  [[ "$output" =~ alice\ +1000\ +1000\ +3000,3001\ +registry ]]
  [[ "$output" =~ hostuser\ +1200\ +1200\ +3000\ +passwd ]]
  # root is in the passwd file but never a tenant
  [[ ! "$output" =~ root ]]
}

@test "tenant add refuses root and duplicates with the server's message" {
  run tfs tenant add rooty --uid 0 --gid 1000
  [ "$status" -eq 1 ]
  [[ "$output" == *'tenantfs: tenant "rooty": uid 0 is root; a tenant must never be root'* ]]

  run tfs tenant add dup --uid 1500 --gid 1500
  [ "$status" -eq 0 ]
  run tfs tenant add dup --uid 1501 --gid 1501
  [ "$status" -eq 1 ]
  [[ "$output" == *'tenant "dup" already exists'* ]]

  run tfs tenant add Bad --uid 1500 --gid 1500
  [ "$status" -eq 1 ]
  [[ "$output" == *'invalid tenant name "Bad"'* ]]
}

@test "tenant allow and deny change the users tenant ls shows; admin allow, ls and deny" {
  run tfs tenant add erin --uid 1900 --gid 1900
  [ "$status" -eq 0 ]
  run tfs tenant allow erin --user "erin"
  [ "$output" = "Docker user erin may now use tenant erin" ]
  run tfs tenant allow erin --user "ops"
  run tfs tenant ls
  [[ "$output" =~ erin\ +1900\ +1900\ +-\ +registry\ +erin,ops ]]
  run tfs tenant deny erin --user ops
  [ "$status" -eq 0 ]
  run tfs tenant ls
  [[ "$output" =~ erin\ +1900\ +1900\ +-\ +registry\ +erin ]]
  [[ "$output" != *erin,ops* ]]
  run tfs tenant allow nosuch --user ops
  [ "$status" -eq 1 ]
  [[ "$output" == *'nosuch'* && "$output" == *'tenantfs tenant add'* ]]

  run tfs admin allow ops
  [ "$output" = "Docker user ops is now a tenantfs admin" ]
  run tfs admin ls
  [ "$(echo "$output" | tr -s ' ')" = $'ADMIN\nops' ]
  run tfs admin deny ops
  [ "$status" -eq 0 ]
  run tfs admin deny ops
  [ "$status" -eq 1 ]
  [[ "$output" == *'user "ops" is not an admin'* ]]
}

@test "tenant ls --json is machine-readable" {
  run tfs tenant add jsonuser --uid 1600 --gid 1600
  [ "$status" -eq 0 ]
  run tfs tenant ls --json
  [ "$status" -eq 0 ]
  [[ "$output" == *'"name": "jsonuser"'* ]]
  [[ "$output" == *'"source": "registry"'* ]]
}

@test "volume ls shows a created volume and tenant rm is refused while it is bound" {
  run tfs tenant add carol --uid 1700 --gid 1700
  [ "$status" -eq 0 ]
  run docker_api Create '{"Name":"carol-data","Opts":{"tenant":"carol","mode":"0750"}}'
  [ "$output" = "{}" ]

  run tfs volume ls
  [ "$status" -eq 0 ]
  [ "$(echo "${lines[0]}" | tr -s ' ')" = "VOLUME TENANT UID GID MODE CACHE MOUNTS PATH" ]
  [[ "$output" =~ carol-data\ +carol\ +1700\ +1700\ +0750\ +strict\ +0\ +$WORK/data/carol-data ]]

  run tfs tenant rm carol
  [ "$status" -eq 1 ]
  [[ "$output" == *'tenant "carol" still has 1 volume bound: carol-data'* ]]
  [[ "$output" == *'docker volume rm carol-data'* ]]

  run docker_api Remove '{"Name":"carol-data"}'
  [ "$output" = "{}" ]
  run tfs tenant rm carol
  [ "$status" -eq 0 ]
  [ "$output" = "tenant carol removed" ]
  run tfs tenant ls
  [[ ! "$output" =~ carol ]]
}

@test "volume ls counts mounts (root, /dev/fuse)" {
  [[ $(id -u) -eq 0 && -c /dev/fuse ]] || skip "needs root and /dev/fuse"
  run tfs tenant add dave --uid 1800 --gid 1800
  [ "$status" -eq 0 ]
  run docker_api Create '{"Name":"dave-data","Opts":{"tenant":"dave"}}'
  [ "$output" = "{}" ]
  run docker_api Mount '{"Name":"dave-data","ID":"c1"}'
  [[ "$output" == *'"Mountpoint"'* ]]
  run docker_api Mount '{"Name":"dave-data","ID":"c2"}'
  [[ "$output" == *'"Mountpoint"'* ]]

  run tfs volume ls
  [[ "$output" =~ dave-data\ +dave\ +1800\ +1800\ +0700\ +strict\ +2\  ]]
  run tfs volume ls --json
  [[ "$output" == *'"c1": 1'* && "$output" == *'"c2": 1'* ]]

  docker_api Unmount '{"Name":"dave-data","ID":"c1"}'
  docker_api Unmount '{"Name":"dave-data","ID":"c2"}'
  run tfs volume ls
  [[ "$output" =~ dave-data\ +dave\ +1800\ +1800\ +0700\ +strict\ +0\  ]]
  run docker_api Remove '{"Name":"dave-data"}'
  [ "$output" = "{}" ]
}

@test "a user added to the passwd file appears without restarting serve" {
  run tfs tenant ls
  [[ ! "$output" =~ newhost ]]
  echo 'newhost:x:1300:1300::/:/bin/sh' >>"$WORK/passwd"
  run tfs tenant ls
  [[ "$output" =~ newhost\ +1300\ +1300\ +-\ +passwd ]]

  run tfs tenant rm newhost
  [ "$status" -eq 1 ]
  [[ "$output" == *"comes from the host's passwd file"* ]]
}

@test "TENANTFS_SOCKET is used when --socket is absent" {
  TENANTFS_SOCKET="$SOCK" run "$TENANTFS_BIN" tenant ls
  [ "$status" -eq 0 ]
  [[ "$output" =~ hostuser ]]
}

@test "a missing socket says how to fix it" {
  run "$TENANTFS_BIN" volume ls --socket "$WORK/nothing.sock"
  [ "$status" -eq 1 ]
  [[ "$output" == *"connect to $WORK/nothing.sock: No such file or directory"* ]]
  [[ "$output" == *'is the tenantfs plugin enabled? run `sudo make install`, or pass --socket / set TENANTFS_SOCKET'* ]]
}
