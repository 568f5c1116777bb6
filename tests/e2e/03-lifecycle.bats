#!/usr/bin/env bats
# The plugin disabled and enabled again, and the daemon restarted, with
# volumes existing: bindings and data survive, new containers mount fine.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
  e2e_setup_file
  add_test_tenants
  docker volume create -d tenantfs -o tenant=alice -o uid=1000 -o gid=1000 kept >/dev/null
  docker run --rm --network none -v kept:/data busybox sh -c 'echo before > /data/before'
}

teardown_file() { e2e_teardown_file; }
teardown() { e2e_teardown; }

@test "docker plugin disable refuses while volumes exist, naming the plugin in use" {
  run -1 docker plugin disable tenantfs
  assert_contains "$output" "in use"
  is "$(docker plugin inspect --format '{{.Enabled}}' tenantfs)" true "plugin enabled"
}

@test "with the plugin disabled, mounting its volume fails with a message naming the driver" {
  docker plugin disable -f tenantfs
  run ! docker run --rm --network none -v kept:/data busybox true
  assert_contains "$output" tenantfs
  # Docker still knows the volume; it cannot be removed without its plugin.
  run -1 docker volume rm kept
  assert_contains "$output" tenantfs
}

@test "enabled again, the plugin serves the volume with its binding and data" {
  docker plugin enable tenantfs
  is "$(volume_status kept tenant)" alice "tenant in the status of kept"
  run -0 bb --user 3000 -v kept:/data busybox sh -c 'cat /data/before; touch /data/after-enable; stat -c %u:%g /data/after-enable'
  is "${lines[0]}" before "content of /data/before"
  is "${lines[1]}" 1000:1000 "owner of /data/after-enable in the container"
  is "$(host_owner "$(backing_dir kept)/after-enable")" 7001:7001 "owner of after-enable on the storage"
}

@test "tenants survive the plugin's restart" {
  run -0 tenantfs_cli tenant ls
  assert_matches "$output" 'alice.*7001'
  assert_matches "$output" 'bob.*7002'
}

@test "plugin force-disabled under a running container: it must restart; others mount fine" {
  docker run -d --name under --network none -v kept:/data busybox sleep 600
  is "$(volume_status kept mounts)" 1 "mounts of kept, container under running"
  docker plugin disable -f tenantfs
  docker plugin enable tenantfs
  # The plugin's restart ended the mapper the running container was using;
  # Docker does not mount again for it, so it sees a dead FUSE mount.
  run ! docker exec under cat /data/before
  assert_contains "$output" "Transport endpoint is not connected"
  # The stale mount does not block anyone else, and the count is kept.
  run -0 bb -v kept:/data busybox cat /data/before
  is "$output" before
  is "$(volume_status kept mounts)" 1 "mounts of kept after the plugin's restart"
  # Restarting the container mounts it again.
  docker restart -t 1 under
  run -0 docker exec under cat /data/before
  is "$output" before
  is "$(volume_status kept mounts)" 1 "mounts of kept after under restarted"
  docker rm -f under
  is "$(volume_status kept mounts)" 0 "mounts of kept after under removed"
}

@test "after a dockerd restart, volumes and bindings survive and new containers mount fine" {
  local old_id="$TFS_PLUGIN_ID"
  stop_private_dockerd
  start_private_dockerd "$TFS_D"
  is "$(docker plugin inspect --format '{{.Enabled}} {{.Id}}' tenantfs)" "true $old_id" "plugin enabled, and its id"
  run -0 docker volume ls -q --filter driver=tenantfs:latest
  assert_contains "$output" kept
  is "$(volume_status kept tenant)" alice "tenant in the status of kept"
  run -0 bb --user 2000:2000 -v kept:/data busybox sh -c 'cat /data/before; echo x > /data/after-restart; stat -c %u:%g /data/after-restart'
  is "${lines[0]}" before "content of /data/before"
  is "${lines[1]}" 1000:1000 "owner of /data/after-restart in the container"
  is "$(host_owner "$(backing_dir kept)/after-restart")" 7001:7001 "owner of after-restart on the storage"
}

@test "a container that was running across a dockerd restart starts again with its volume" {
  docker run -d --name across --network none -v kept:/data busybox sleep 600
  stop_private_dockerd
  start_private_dockerd "$TFS_D"
  # Without live-restore the daemon stopped it; starting it mounts again.
  is "$(docker inspect --format '{{.State.Running}}' across)" false "container across running after the restart"
  docker start across
  run -0 docker exec across sh -c 'touch /data/across && stat -c %u:%g /data/across'
  is "$output" 1000:1000
  is "$(host_owner "$(backing_dir kept)/across")" 7001:7001 "owner of across on the storage"
  is "$(volume_status kept mounts)" 1 "mounts of kept, container across running"
  docker rm -f across
  is "$(volume_status kept mounts)" 0 "mounts of kept after across removed"
}
