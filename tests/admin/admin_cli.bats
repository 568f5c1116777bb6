#!/usr/bin/env bats
# Integration: the real `tenantfs` CLI against a real `tenantfs serve` on a
# temp socket, with temp state, data and mount directories and a passwd/group
# pair. Volumes are made through the VolumeDriver API, as Docker would.
# Needs TENANTFS_BIN and root; the mount-count test also needs /dev/fuse.
bats_require_minimum_version 1.5.0
load ../support/assertions

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
  run -0 tfs tenant add alice --uid 1000 --gid 1000 --groups 3001,3000
  is "$output" "tenant alice added: uid 1000, gid 1000, groups 3000,3001"

  run -0 tfs tenant ls
  is "$(echo "${lines[0]}" | tr -s ' ')" "NAME UID GID GROUPS SOURCE USERS" "header of tenant ls, spaces squeezed"
  assert_matches "$output" 'alice +1000 +1000 +3000,3001 +registry'
  assert_matches "$output" 'hostuser +1200 +1200 +3000 +passwd'
  # root is in the passwd file but never a tenant
  assert_not_contains "$output" root
}

@test "tenant add refuses root and duplicates with the server's message" {
  run -1 tfs tenant add rooty --uid 0 --gid 1000
  assert_contains "$output" 'tenantfs: tenant "rooty": uid 0 is root; a tenant must never be root'

  run -0 tfs tenant add dup --uid 1500 --gid 1500
  run -1 tfs tenant add dup --uid 1501 --gid 1501
  assert_contains "$output" 'tenant "dup" already exists'

  run -1 tfs tenant add Bad --uid 1500 --gid 1500
  assert_contains "$output" 'invalid tenant name "Bad"'
}

@test "tenant allow and deny change the users tenant ls shows; admin allow, ls and deny" {
  run -0 tfs tenant add erin --uid 1900 --gid 1900
  run tfs tenant allow erin --user "erin"
  is "$output" "Docker user erin may now use tenant erin"
  run tfs tenant allow erin --user "ops"
  run tfs tenant ls
  assert_matches "$output" 'erin +1900 +1900 +- +registry +erin,ops'
  run -0 tfs tenant deny erin --user ops
  run tfs tenant ls
  assert_matches "$output" 'erin +1900 +1900 +- +registry +erin'
  assert_not_contains "$output" erin,ops
  run -1 tfs tenant allow nosuch --user ops
  assert_contains "$output" 'nosuch'
  assert_contains "$output" 'tenantfs tenant add'

  run tfs admin allow ops
  is "$output" "Docker user ops is now a tenantfs admin"
  run tfs admin ls
  is "$(echo "$output" | tr -s ' ')" $'ADMIN\nops' "admin ls, spaces squeezed"
  run -0 tfs admin deny ops
  run -1 tfs admin deny ops
  assert_contains "$output" 'user "ops" is not an admin'
}

@test "tenant ls --json is machine-readable" {
  run -0 tfs tenant add jsonuser --uid 1600 --gid 1600
  run -0 tfs tenant ls --json
  assert_contains "$output" '"name": "jsonuser"'
  assert_contains "$output" '"source": "registry"'
}

@test "volume ls shows a created volume and tenant rm is refused while it is bound" {
  run -0 tfs tenant add carol --uid 1700 --gid 1700
  run docker_api Create '{"Name":"carol-data","Opts":{"tenant":"carol","mode":"0750"}}'
  is "$output" "{}"

  run -0 tfs volume ls
  is "$(echo "${lines[0]}" | tr -s ' ')" "VOLUME TENANT UID GID MODE CACHE MOUNTS PATH" "header of volume ls, spaces squeezed"
  assert_matches "$output" "carol-data +carol +1700 +1700 +0750 +strict +0 +$WORK/data/carol-data"

  run -1 tfs tenant rm carol
  assert_contains "$output" 'tenant "carol" still has 1 volume bound: carol-data'
  assert_contains "$output" 'docker volume rm carol-data'

  run docker_api Remove '{"Name":"carol-data"}'
  is "$output" "{}"
  run -0 tfs tenant rm carol
  is "$output" "tenant carol removed"
  run tfs tenant ls
  assert_not_contains "$output" carol
}

@test "volume ls counts mounts (root, /dev/fuse)" {
  [[ $(id -u) -eq 0 && -c /dev/fuse ]] || skip "needs root and /dev/fuse"
  run -0 tfs tenant add dave --uid 1800 --gid 1800
  run docker_api Create '{"Name":"dave-data","Opts":{"tenant":"dave"}}'
  is "$output" "{}"
  run docker_api Mount '{"Name":"dave-data","ID":"c1"}'
  assert_contains "$output" '"Mountpoint"'
  run docker_api Mount '{"Name":"dave-data","ID":"c2"}'
  assert_contains "$output" '"Mountpoint"'

  run tfs volume ls
  assert_matches "$output" 'dave-data +dave +1800 +1800 +0700 +strict +2 '
  run tfs volume ls --json
  assert_contains "$output" '"c1": 1'
  assert_contains "$output" '"c2": 1'

  docker_api Unmount '{"Name":"dave-data","ID":"c1"}'
  docker_api Unmount '{"Name":"dave-data","ID":"c2"}'
  run tfs volume ls
  assert_matches "$output" 'dave-data +dave +1800 +1800 +0700 +strict +0 '
  run docker_api Remove '{"Name":"dave-data"}'
  is "$output" "{}"
}

@test "a user added to the passwd file appears without restarting serve" {
  run tfs tenant ls
  assert_not_contains "$output" newhost
  echo 'newhost:x:1300:1300::/:/bin/sh' >>"$WORK/passwd"
  run tfs tenant ls
  assert_matches "$output" 'newhost +1300 +1300 +- +passwd'

  run -1 tfs tenant rm newhost
  assert_contains "$output" "comes from the host's passwd file"
}

@test "TENANTFS_SOCKET is used when --socket is absent" {
  TENANTFS_SOCKET="$SOCK" run -0 "$TENANTFS_BIN" tenant ls
  assert_contains "$output" hostuser
}

@test "a missing socket says how to fix it" {
  run -1 "$TENANTFS_BIN" volume ls --socket "$WORK/nothing.sock"
  assert_contains "$output" "connect to $WORK/nothing.sock: No such file or directory"
  assert_contains "$output" 'is the tenantfs plugin enabled? run `sudo make install`, or pass --socket / set TENANTFS_SOCKET'
}
