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
  [[ "$output" == *"in use"* ]]
  [ "$(docker plugin inspect --format '{{.Enabled}}' tenantfs)" = true ]
}

@test "with the plugin disabled, mounting its volume fails with a message naming the driver" {
  docker plugin disable -f tenantfs
  run ! docker run --rm --network none -v kept:/data busybox true
  [[ "$output" == *tenantfs* ]]
  # Docker still knows the volume; it cannot be removed without its plugin.
  run -1 docker volume rm kept
  [[ "$output" == *tenantfs* ]]
}

@test "enabled again, the plugin serves the volume with its binding and data" {
  docker plugin enable tenantfs
  [ "$(volume_status kept tenant)" = alice ]
  run -0 bb --user 3000 -v kept:/data busybox sh -c 'cat /data/before; touch /data/after-enable; stat -c %u:%g /data/after-enable'
  [ "${lines[0]}" = before ]
  [ "${lines[1]}" = 1000:1000 ]
  [ "$(host_owner "$(backing_dir kept)/after-enable")" = 7001:7001 ]
}

@test "tenants survive the plugin's restart" {
  run -0 tenantfs_cli tenant ls
  [[ "$output" =~ alice.*7001 ]]
  [[ "$output" =~ bob.*7002 ]]
}

@test "plugin force-disabled under a running container: it must restart; others mount fine" {
  docker run -d --name under --network none -v kept:/data busybox sleep 600
  [ "$(volume_status kept mounts)" = 1 ]
  docker plugin disable -f tenantfs
  docker plugin enable tenantfs
  # The plugin's restart ended the mapper the running container was using;
  # Docker does not mount again for it, so it sees a dead FUSE mount.
  run ! docker exec under cat /data/before
  [[ "$output" == *"Transport endpoint is not connected"* ]]
  # The stale mount does not block anyone else, and the count is kept.
  run -0 bb -v kept:/data busybox cat /data/before
  [ "$output" = before ]
  [ "$(volume_status kept mounts)" = 1 ]
  # Restarting the container mounts it again.
  docker restart -t 1 under
  run -0 docker exec under cat /data/before
  [ "$output" = before ]
  [ "$(volume_status kept mounts)" = 1 ]
  docker rm -f under
  [ "$(volume_status kept mounts)" = 0 ]
}

@test "after a dockerd restart, volumes and bindings survive and new containers mount fine" {
  local old_id="$TFS_PLUGIN_ID"
  stop_private_dockerd
  start_private_dockerd "$TFS_D"
  [ "$(docker plugin inspect --format '{{.Enabled}} {{.Id}}' tenantfs)" = "true $old_id" ]
  run -0 docker volume ls -q --filter driver=tenantfs:latest
  [[ "$output" == *kept* ]]
  [ "$(volume_status kept tenant)" = alice ]
  run -0 bb --user 2000:2000 -v kept:/data busybox sh -c 'cat /data/before; echo x > /data/after-restart; stat -c %u:%g /data/after-restart'
  [ "${lines[0]}" = before ]
  [ "${lines[1]}" = 1000:1000 ]
  [ "$(host_owner "$(backing_dir kept)/after-restart")" = 7001:7001 ]
}

@test "a container that was running across a dockerd restart starts again with its volume" {
  docker run -d --name across --network none -v kept:/data busybox sleep 600
  stop_private_dockerd
  start_private_dockerd "$TFS_D"
  # Without live-restore the daemon stopped it; starting it mounts again.
  [ "$(docker inspect --format '{{.State.Running}}' across)" = false ]
  docker start across
  run -0 docker exec across sh -c 'touch /data/across && stat -c %u:%g /data/across'
  [ "$output" = 1000:1000 ]
  [ "$(host_owner "$(backing_dir kept)/across")" = 7001:7001 ]
  [ "$(volume_status kept mounts)" = 1 ]
  docker rm -f across
  [ "$(volume_status kept mounts)" = 0 ]
}
