#!/usr/bin/env bats
# `make install` / `make uninstall` (scripts/install-plugin.sh and
# scripts/uninstall-plugin.sh) against the private daemon through DOCKER_HOST:
# replacing the plugin, refusing while its volumes are in use, removing it,
# installing it fresh. The CLI goes to a prefix under the run's directory.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
  e2e_setup_file
  add_test_tenants
  export PREFIX_DIR="$TFS_D/prefix"
  export REPO="$BATS_TEST_DIRNAME/../.."
  docker volume create -d tenantfs -o tenant=alice inst >/dev/null
  docker run --rm --network none -v inst:/data busybox sh -c 'echo kept > /data/kept'
}

teardown_file() { e2e_teardown_file; }
teardown() { e2e_teardown; }

install_script() {
  "$REPO/scripts/install-plugin.sh" --plugin-dir "$TENANTFS_PLUGIN_DIR" --cli "$TENANTFS_BIN" \
    --prefix "$PREFIX_DIR" "$@"
}
# Teardown must find every plugin id this file made.
remember_plugin_id() {
  docker plugin inspect --format '{{.Id}}' tenantfs >>"$TFS_D/plugin-ids"
}

@test "install replaces the plugin when no container uses its volumes; settings, volumes, data kept" {
  local old_id="$TFS_PLUGIN_ID"
  run -0 install_script
  remember_plugin_id
  assert_contains "$output" "replacing the installed tenantfs plugin"
  is "$(docker plugin inspect --format '{{.Enabled}}' tenantfs)" true "plugin enabled"
  is_not "$(docker plugin inspect --format '{{.Id}}' tenantfs)" "$old_id" "id of the plugin"
  # The state mount still points at this run's directory, not the default.
  run -0 docker plugin inspect --format '{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}' tenantfs
  assert_contains "$output" "state=$TFS_STATE "
  [ -x "$PREFIX_DIR/bin/tenantfs" ]
  run -0 bb --user 1000 -v inst:/data busybox sh -c 'cat /data/kept; touch /data/new; stat -c %u:%g /data/new'
  is "${lines[0]}" kept "content of /data/kept"
  is "${lines[1]}" 7001:7001 "owner of /data/new in the container"
  is "$(host_owner "$(backing_dir inst)/new")" 7001:7001 "owner of new on the storage"
}

@test "install refuses to replace the plugin while a container uses one of its volumes" {
  docker run -d --name inst-user --network none -v inst:/data busybox sleep 600
  local id
  id="$(docker plugin inspect --format '{{.Id}}' tenantfs)"
  run -1 install_script
  assert_contains "$output" "container inst-user uses volume inst"
  assert_contains "$output" "stop those containers"
  is "$(docker plugin inspect --format '{{.Id}} {{.Enabled}}' tenantfs)" "$id true" "id of the plugin, and enabled"
  run -0 docker exec inst-user cat /data/kept
}

@test "uninstall refuses while a container uses one of its volumes" {
  run -1 "$REPO/scripts/uninstall-plugin.sh" --prefix "$PREFIX_DIR"
  assert_contains "$output" "container inst-user uses volume inst"
  is "$(docker plugin inspect --format '{{.Enabled}}' tenantfs)" true "plugin enabled"
  [ -x "$PREFIX_DIR/bin/tenantfs" ]
}

@test "uninstall removes the plugin and the CLI and keeps the data" {
  docker rm -f inst-user
  run -0 "$REPO/scripts/uninstall-plugin.sh" --prefix "$PREFIX_DIR"
  assert_contains "$output" "plugin tenantfs removed"
  assert_contains "$output" "1 volume(s)"
  # The state directory, named after the count.
  assert_contains "${output#*"1 volume(s)"}" "$TFS_STATE" "output after \"1 volume(s)\""
  run -1 docker plugin inspect tenantfs
  [ ! -e "$PREFIX_DIR/bin/tenantfs" ]
  is "$(cat "$(backing_dir inst)/kept")" kept "content of kept on the storage"
}

@test "a fresh install with settings brings the volumes back" {
  run -0 install_script --set state.source="$TFS_STATE" --set roots.source="$TFS_ROOTS" --set LOG_LEVEL=debug
  remember_plugin_id
  assert_contains "$output" "plugin tenantfs enabled"
  is "$(volume_status inst tenant)" alice "tenant in the status of inst"
  run -0 bb -v inst:/data busybox cat /data/kept
  is "$output" kept
}

@test "install fails with one clear line when no Docker daemon answers" {
  DOCKER_HOST="unix://$TFS_D/nothing-here.sock" run -1 install_script
  is "${#lines[@]}" 1 "lines install-plugin.sh printed"
  assert_contains "$output" "no Docker daemon answers at unix://$TFS_D/nothing-here.sock"
  DOCKER_HOST="unix://$TFS_D/nothing-here.sock" run -1 "$REPO/scripts/uninstall-plugin.sh" --prefix "$PREFIX_DIR"
  is "${#lines[@]}" 1 "lines uninstall-plugin.sh printed"
}
