#!/usr/bin/env bats
# One volume mounted by several containers at once: both see each other's
# writes, stopping one leaves the other working, the mount count follows.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
  e2e_setup_file
  add_test_tenants
  docker volume create -d tenantfs -o tenant=alice shared >/dev/null
}

teardown_file() { e2e_teardown_file; }
teardown() { e2e_teardown; }

# mounts: the number of mounts the plugin counts for volume `shared`.
mounts() { volume_status shared mounts; }

@test "an unused volume reports no mounts" {
  is "$(mounts)" 0 "mounts of volume shared"
}

@test "two containers use one volume at once and see each other's files" {
  docker run -d --name long --network none --user 1000 -v shared:/data busybox \
    sh -c 'echo from-long > /data/long; while :; do sleep 1; done'
  # The writer's file is there for a second container, written as the tenant.
  run -0 bb --user 2000:2000 -v shared:/data busybox sh -c \
    'for i in $(seq 50); do [ -e /data/long ] && break; sleep 0.2; done; cat /data/long; echo from-short > /data/short'
  is "$output" from-long
  run -0 docker exec long cat /data/short
  is "$output" from-short
  is "$(host_owner "$(backing_dir shared)/long")" 7001:7001 "owner of long on the storage"
  is "$(host_owner "$(backing_dir shared)/short")" 7001:7001 "owner of short on the storage"
}

@test "while one container runs the volume counts one mount; with a second, two" {
  is "$(docker inspect --format '{{.State.Running}}' long)" true "container long running"
  is "$(mounts)" 1 "mounts of volume shared, container long running"
  docker run -d --name second --network none -v shared:/data busybox sleep 600
  is "$(mounts)" 2 "mounts of volume shared, containers long and second running"
}

@test "stopping one container leaves the other working" {
  docker stop -t 1 second
  is "$(mounts)" 1 "mounts of volume shared after second stopped"
  run -0 docker exec long sh -c 'echo again > /data/again && cat /data/again'
  is "$output" again
  is "$(host_owner "$(backing_dir shared)/again")" 7001:7001 "owner of again on the storage"
}

@test "a stopped container restarted mounts again and the count follows" {
  docker start second
  is "$(mounts)" 2 "mounts of volume shared after second started again"
  run -0 docker exec second cat /data/again
  is "$output" again
  docker rm -f second
  is "$(mounts)" 1 "mounts of volume shared after second removed"
}

@test "after the last container goes, the count is back to zero and data stays" {
  docker rm -f long
  is "$(mounts)" 0 "mounts of volume shared after the last container went"
  is "$(cat "$(backing_dir shared)/long")" from-long "content of long on the storage"
}
