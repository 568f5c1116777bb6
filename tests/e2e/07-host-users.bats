#!/usr/bin/env bats
# Tenants from a passwd/group file pair the host shares with the plugin (the
# manifest's passwd and group mounts, PASSWD_FILE and GROUP_FILE settings).
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
  [[ $(id -u) -eq 0 ]] || return 1
  start_private_dockerd || return 1
  {
    printf 'root:x:0:0:root:/root:/bin/sh\n'
    printf 'carol:x:7003:7003:Carol:/home/carol:/bin/sh\n'
  } >"$TFS_D/passwd"
  {
    printf 'root:x:0:\n'
    printf 'carol:x:7003:\n'
    printf 'proj:x:7100:carol\n'
  } >"$TFS_D/group"
  export TFS_PLUGIN_SETTINGS="passwd.source=$TFS_D/passwd group.source=$TFS_D/group PASSWD_FILE=/host/etc/passwd GROUP_FILE=/host/etc/group"
  if ! import_busybox || ! install_plugin; then
    teardown_private_dockerd
    return 1
  fi
}

teardown_file() { e2e_teardown_file; }
teardown() { e2e_teardown; }

@test "a user of the shared passwd file is a tenant without tenantfs tenant add" {
  run -0 docker volume create -d tenantfs -o tenant=carol v-carol
  is "$(volume_status v-carol uid)" 7003 "uid in the status of v-carol"
  is "$(docker volume inspect --format '{{json (index .Status "groups")}}' v-carol)" "[7100]" "groups in the status of v-carol"
  run -0 bb --user 1000 -v v-carol:/data busybox sh -c 'touch /data/f && stat -c %u:%g /data/f'
  is "$output" 7003:7003
  is "$(host_owner "$(backing_dir v-carol)/f")" 7003:7003 "owner of f on the storage"
}

@test "a passwd user with uid 0 is never a tenant" {
  run -1 docker volume create -d tenantfs -o tenant=root v-root
  assert_contains "$output" '"root"'
  run -1 docker volume inspect v-root
}

@test "the tenant's supplementary groups from the group file open group-readable data" {
  mkdir -p "$TFS_ROOTS/proj"
  echo team >"$TFS_ROOTS/proj/team.txt"
  echo private >"$TFS_ROOTS/proj/other.txt"
  chown 9999:7100 "$TFS_ROOTS/proj" "$TFS_ROOTS/proj/team.txt" "$TFS_ROOTS/proj/other.txt"
  chmod 0750 "$TFS_ROOTS/proj"
  chmod 0640 "$TFS_ROOTS/proj/team.txt"
  chmod 0600 "$TFS_ROOTS/proj/other.txt"
  docker volume create -d tenantfs -o tenant=carol -o path=/srv/tenantfs/proj v-proj
  run -0 bb -v v-proj:/p busybox cat /p/team.txt
  is "$output" team
  run ! bb -v v-proj:/p busybox cat /p/other.txt
  assert_contains "$output" "Permission denied"
  # path= data is never chowned or chmoded by tenantfs.
  is "$(stat -c '%u:%g %a' "$TFS_ROOTS/proj")" "9999:7100 750" "owner and mode of the path= directory"
}
