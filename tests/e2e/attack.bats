#!/usr/bin/env bats
# Attacks from inside containers running as root (Docker's default
# capabilities) on tenantfs volumes, and hostile clients of the plugin's
# socket. See SECURITY.md for the model these check.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
  e2e_setup_file
  add_test_tenants
  docker volume create -d tenantfs -o tenant=alice va >/dev/null
  docker volume create -d tenantfs -o tenant=bob vb >/dev/null
  # Bob's secret: 0600, owned by bob on the storage.
  bb -v vb:/b busybox sh -c 'echo bob-only > /b/secret && chmod 600 /b/secret'
}

teardown_file() { e2e_teardown_file; }
teardown() { e2e_teardown; }

@test "the secret is bob's on the storage, mode 0600" {
  is "$(host_owner "$(backing_dir vb)/secret")" 7002:7002 "owner of the secret on the storage"
  is "$(stat -c %a "$(backing_dir vb)/secret")" 600 "mode of the secret on the storage"
}

@test "a hard link across two tenants' volumes fails with EXDEV" {
  # (busybox mv falls back to copy + unlink on EXDEV, the container's own
  # choice with data it can read anyway; the rename itself is covered by
  # tests/hardening.)
  run ! bb -v va:/a -v vb:/b busybox ln /b/secret /a/stolen
  assert_contains "$output" "cross-device"
  [ ! -e "$(backing_dir va)/stolen" ]
}

@test "a symlink in alice's volume naming bob's backing path resolves to nothing" {
  local target
  target="$(backing_dir vb)/secret"
  bb -v va:/a busybox ln -sf "$target" /a/planted
  ln -sf "$target" "$(backing_dir va)/on-storage"
  run ! bb -v va:/a busybox cat /a/planted
  assert_contains "$output" "No such file"
  run ! bb -v va:/a busybox cat /a/on-storage
  assert_contains "$output" "No such file"
  run ! bb -v va:/a busybox cat /a/../vb/secret
}

@test "a container that mounts bob's volume reads it through bob's mount only (by design)" {
  ln -sf /b/secret "$(backing_dir va)/to-b"
  run -0 bb -v va:/a -v vb:/b busybox cat /a/to-b
  is "$output" bob-only
}

@test "a hard link to bob's file planted in alice's storage is opened as alice: denied" {
  ln -f "$(backing_dir vb)/secret" "$(backing_dir va)/linked"
  run ! bb -v va:/a busybox cat /a/linked
  assert_contains "$output" "Permission denied"
  run ! bb -v va:/a busybox chmod 644 /a/linked
  assert_contains "$output" "Operation not permitted"
  run ! bb -v va:/a busybox chown 0:0 /a/linked
  is "$(stat -c %a "$(backing_dir vb)/secret")" 600 "mode of the secret on the storage"
  is "$(host_owner "$(backing_dir vb)/secret")" 7002:7002 "owner of the secret on the storage"
}

@test "chown and chmod of files the tenant does not own fail" {
  echo root > "$(backing_dir va)/root-file"
  chmod 0644 "$(backing_dir va)/root-file"
  run ! bb -v va:/a busybox chmod 777 /a/root-file
  assert_contains "$output" "Operation not permitted"
  run ! bb -v va:/a busybox sh -c 'echo own > /a/own && chown 0:0 /a/own'
  assert_contains "$output" "Operation not permitted"
  run ! bb -v va:/a busybox sh -c 'echo x >> /a/root-file'
  is "$(stat -c %a:%u "$(backing_dir va)/root-file")" 644:0 "mode and owner of root-file on the storage"
  is "$(host_owner "$(backing_dir va)/own")" 7001:7001 "owner of own on the storage"
}

@test "setuid bits grant nothing (nosuid) and device nodes cannot be made" {
  run -0 bb -v va:/a busybox sh -c 'cp /bin/busybox /a/bb && chmod 6755 /a/bb && grep " /a " /proc/self/mountinfo'
  assert_contains "$output" nosuid
  assert_contains "$output" nodev
  run ! bb -v va:/a busybox mknod /a/mem c 1 1
  assert_contains "$output" "Operation not permitted"
  run ! bb -v va:/a busybox mknod /a/sda b 8 0
  [ ! -e "$(backing_dir va)/mem" ]
  [ ! -e "$(backing_dir va)/sda" ]
}

@test "path= outside the allowed root, through .., or via a symlink is refused" {
  mkdir -p "$TFS_ROOTS/ok" "$TFS_D/outside"
  ln -sfn "$TFS_D/outside" "$TFS_ROOTS/link-out"
  run ! docker volume create -d tenantfs -o tenant=alice -o path=/srv/tenantfs/../../etc bad1
  run ! docker volume create -d tenantfs -o tenant=alice -o path=/proc bad2
  run ! docker volume create -d tenantfs -o tenant=alice -o path=/srv/tenantfs/link-out bad3
  run ! docker volume create -d tenantfs -o tenant=alice -o path=/var/lib/tenantfs bad4
  run -0 docker volume ls -q
  assert_not_contains "$output" bad
}

@test "an oversized request gets an Err and the plugin keeps answering" {
  local sock big
  sock="$(plugin_socket)"
  big="$TFS_D/big.json"
  head -c 1048576 /dev/zero | tr '\0' a | sed 's/^/{"Name":"x","Opts":{"tenant":"/; s/$/"}}/' >"$big"
  run -0 curl -s --unix-socket "$sock" -X POST --data-binary @"$big" http://plugin/VolumeDriver.Create
  assert_contains "$output" "too large"
  run -0 docker volume ls -q
  assert_contains "$output" va
}

@test "clients that never finish their request do not stop the plugin" {
  local sock i w pids=()
  sock="$(plugin_socket)"
  mkfifo "$TFS_D/stall"
  # Held open read-write by this shell: the curls' bodies never end.
  exec {w}<>"$TFS_D/stall"
  for ((i = 0; i < 40; i++)); do
    curl -s --max-time 300 --unix-socket "$sock" -X POST -H 'Transfer-Encoding: chunked' \
      --data-binary @"$TFS_D/stall" http://plugin/VolumeDriver.List >/dev/null 2>&1 3>&- &
    pids+=($!)
  done
  run -0 docker volume create -d tenantfs -o tenant=alice during-stall
  run -0 bb -v during-stall:/d busybox sh -c 'echo ok > /d/f && cat /d/f'
  kill "${pids[@]}" 2>/dev/null || true
  exec {w}>&-
  wait "${pids[@]}" 2>/dev/null || true
  rm -f "$TFS_D/stall"
  is "$output" ok "output of the container run during the stall"
  docker volume rm during-stall
}
