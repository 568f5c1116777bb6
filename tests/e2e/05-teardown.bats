#!/usr/bin/env bats
# The harness itself: after a run with a volume mounted by a running
# container, teardown leaves no daemon, no mount, no directory behind. Runs
# its own daemon inside the test, so it can look after teardown.
bats_require_minimum_version 1.5.0
load helpers

@test "teardown leaves no dockerd, no mount, no plugin runtime dir, no temp dir" {
  e2e_setup_file
  add_test_tenants
  local d="$TFS_D" id="$TFS_PLUGIN_ID" pid
  pid="$(cat "$d/dockerd.pid")"
  docker volume create -d tenantfs -o tenant=alice left >/dev/null
  docker run -d --network none -v left:/data busybox sleep 600
  # A FUSE mount of the volume is live under the daemon's directory.
  assert_contains "$(mounts_under "$d")" left "mounts under the run's directory"
  [ -S "/run/docker/plugins/$id/tenantfs.sock" ]

  local dumps_before
  dumps_before="$(ls /tmp/containerd.*.stacks.log 2>/dev/null | wc -l)"
  run -0 teardown_private_dockerd
  run ! tfs_alive "$pid"
  is "$(pids_of_run "$d")" "" "processes of the run left"
  is "$(mounts_under "$d")" "" "mounts under the run's directory left"
  [ ! -e "$d" ]
  [ ! -e "/run/docker/plugins/$id" ]
  # Nothing written to the shared /tmp either (containerd's stack dumps).
  is "$(ls /tmp/containerd.*.stacks.log 2>/dev/null | wc -l)" "$dumps_before" "containerd stack dumps in /tmp"
}

teardown() {
  # Only if the test failed before its own teardown ran.
  teardown_private_dockerd
}
