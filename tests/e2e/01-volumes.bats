#!/usr/bin/env bats
# Volumes bound to a tenant, as a Docker user sees them: create, inspect, run
# as several users, presented ids, inline --mount, errors.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
  e2e_setup_file
  # Through the CLI's own discovery: DOCKER_HOST → plugin id → its socket.
  add_test_tenants
}

teardown_file() { e2e_teardown_file; }
teardown() { e2e_teardown; }

@test "tenantfs tenant ls finds the plugin through DOCKER_HOST and lists the tenants" {
  run -0 tenantfs_cli tenant ls
  assert_matches "$output" 'alice.*7001.*7001'
  assert_matches "$output" 'bob.*7002.*7002'
}

@test "docker volume create -o tenant=alice binds the volume; inspect shows the binding" {
  run -0 docker volume create -d tenantfs -o tenant=alice v-bind
  is "$output" v-bind
  is "$(docker volume inspect --format '{{.Driver}}' v-bind)" tenantfs:latest "driver of v-bind"
  is "$(volume_status v-bind tenant)" alice "tenant in the status of v-bind"
  is "$(volume_status v-bind uid)" 7001 "uid in the status of v-bind"
  is "$(volume_status v-bind gid)" 7001 "gid in the status of v-bind"
  run -0 docker volume ls --filter driver=tenantfs:latest --format '{{.Name}}'
  assert_contains "$output" v-bind
}

@test "a volume's backing directory is owned by the tenant, mode 0700" {
  docker volume create -d tenantfs -o tenant=alice v-root-dir
  is "$(stat -c '%u:%g %a' "$(backing_dir v-root-dir)")" "7001:7001 700" "owner and mode of the backing directory"
}

@test "files a root container creates are owned by the tenant on the storage" {
  docker volume create -d tenantfs -o tenant=alice v-as-root
  run -0 bb -v v-as-root:/data busybox sh -c 'echo hi > /data/f && mkdir /data/d && stat -c %u:%g /data/f /data/d'
  # Inside, the container sees the presented ids (the tenant's by default).
  is "${lines[0]}" 7001:7001 "owner of /data/f in the container"
  is "${lines[1]}" 7001:7001 "owner of /data/d in the container"
  is "$(host_owner "$(backing_dir v-as-root)/f")" 7001:7001 "owner of f on the storage"
  is "$(host_owner "$(backing_dir v-as-root)/d")" 7001:7001 "owner of d on the storage"
  is "$(cat "$(backing_dir v-as-root)/f")" hi "content of f on the storage"
}

@test "existing files and directories read back through the mapper, with the plugin's root as Docker makes it" {
  # Docker unpacks the plugin's rootfs with its root at 0700: a mapper, which
  # has dropped root, must not need to resolve absolute paths.
  is "$(stat -c %a "$TFS_D/data/plugins/$TFS_PLUGIN_ID/rootfs")" 700 "mode of the plugin's rootfs"
  docker volume create -d tenantfs -o tenant=alice v-read
  bb -v v-read:/data busybox sh -c 'mkdir /data/d && echo content > /data/d/f'
  run -0 bb --user 1000 -v v-read:/data busybox sh -c 'ls /data; ls /data/d; cat /data/d/f'
  is "$output" "$(printf 'd\nf\ncontent')"
}

@test "files a --user 1000 container creates are owned by the tenant on the storage" {
  docker volume create -d tenantfs -o tenant=alice v-as-1000
  run -0 bb --user 1000 -v v-as-1000:/data busybox sh -c 'echo hi > /data/f && stat -c %u:%g /data/f'
  is "$output" 7001:7001
  is "$(host_owner "$(backing_dir v-as-1000)/f")" 7001:7001 "owner of f on the storage"
}

@test "files a --user 2000:2000 container creates are owned by the tenant on the storage" {
  docker volume create -d tenantfs -o tenant=alice v-as-2000
  run -0 bb --user 2000:2000 -v v-as-2000:/data busybox sh -c 'echo hi > /data/f && stat -c %u:%g /data/f'
  is "$output" 7001:7001
  is "$(host_owner "$(backing_dir v-as-2000)/f")" 7001:7001 "owner of f on the storage"
}

@test "uid= and gid= options choose the ids the container sees; storage stays the tenant's" {
  docker volume create -d tenantfs -o tenant=alice -o uid=1000 -o gid=1000 v-presented
  run -0 bb --user 1000:1000 -v v-presented:/data busybox sh -c 'echo x > /data/f && stat -c %u:%g /data /data/f'
  is "${lines[0]}" 1000:1000 "owner of /data in the container"
  is "${lines[1]}" 1000:1000 "owner of /data/f in the container"
  is "$(host_owner "$(backing_dir v-presented)/f")" 7001:7001 "owner of f on the storage"
}

@test "two tenants' volumes in one container each keep their own identity" {
  docker volume create -d tenantfs -o tenant=alice v-two-a
  docker volume create -d tenantfs -o tenant=bob v-two-b
  run -0 bb --user 1000 -v v-two-a:/a -v v-two-b:/b busybox sh -c \
    'touch /a/f /b/f && stat -c %u:%g /a/f /b/f'
  is "${lines[0]}" 7001:7001 "owner of /a/f in the container"
  is "${lines[1]}" 7002:7002 "owner of /b/f in the container"
  is "$(host_owner "$(backing_dir v-two-a)/f")" 7001:7001 "owner of alice's f on the storage"
  is "$(host_owner "$(backing_dir v-two-b)/f")" 7002:7002 "owner of bob's f on the storage"
}

@test "a tenant cannot read another tenant's private file, even as root in the container" {
  docker volume create -d tenantfs -o tenant=alice v-priv-a
  docker volume create -d tenantfs -o tenant=bob v-priv-b
  bb -v v-priv-b:/b busybox sh -c 'echo secret > /b/s && chmod 600 /b/s'
  # Bob's data seen through a path= volume of alice: the storage says no.
  mkdir -p "$TFS_ROOTS/shared"
  cp -a "$(backing_dir v-priv-b)/s" "$TFS_ROOTS/shared/s"
  chown 7001:7001 "$TFS_ROOTS/shared"
  docker volume create -d tenantfs -o tenant=alice -o path=/srv/tenantfs/shared v-priv-path
  run ! bb -v v-priv-path:/p busybox cat /p/s
  assert_contains "$output" "Permission denied"
}

@test "--mount with volume-driver and volume-opt creates the volume inline" {
  run -0 bb --mount type=volume,source=v-inline,target=/d,volume-driver=tenantfs,volume-opt=tenant=alice \
    busybox sh -c 'touch /d/f && stat -c %u:%g /d/f'
  is "$output" 7001:7001
  is "$(volume_status v-inline tenant)" alice "tenant in the status of v-inline"
  is "$(host_owner "$(backing_dir v-inline)/f")" 7001:7001 "owner of f on the storage"
}

@test "docker run --rm removes an anonymous tenantfs volume and keeps a named one" {
  local before after
  before="$(docker volume ls -q --filter driver=tenantfs:latest | sort)"
  run -0 bb --mount type=volume,target=/anon,volume-driver=tenantfs,volume-opt=tenant=bob \
    --mount type=volume,source=v-rm-named,target=/named,volume-driver=tenantfs,volume-opt=tenant=bob \
    busybox sh -c 'touch /anon/f /named/f && stat -c %u:%g /anon/f'
  is "$output" 7002:7002
  after="$(docker volume ls -q --filter driver=tenantfs:latest | sort)"
  # Exactly one new volume, the named one: the anonymous one is gone.
  is "$(comm -13 <(echo "$before") <(echo "$after"))" v-rm-named "tenantfs volumes added by the run"
  [ -e "$(backing_dir v-rm-named)/f" ]
}

@test "re-creating a volume with the same options is a no-op" {
  docker volume create -d tenantfs -o tenant=alice -o mode=0750 v-again
  run -0 docker volume create -d tenantfs -o tenant=alice -o mode=0750 v-again
  is "$output" v-again
}

@test "re-creating a volume with other options never changes its binding" {
  docker volume create -d tenantfs -o tenant=alice v-rebind
  # Docker answers from its own record of the volume without asking the
  # plugin again: the command succeeds, and the binding stays alice's.
  docker volume create -d tenantfs -o tenant=bob v-rebind || true
  is "$(volume_status v-rebind tenant)" alice "tenant in the status of v-rebind"
  run -0 bb -v v-rebind:/data busybox touch /data/f
  is "$(host_owner "$(backing_dir v-rebind)/f")" 7001:7001 "owner of f on the storage"
}

@test "an unknown tenant fails and tells how to add it" {
  run -1 docker volume create -d tenantfs -o tenant=nosuch v-unknown
  assert_contains "$output" nosuch
  assert_contains "$output" "tenantfs tenant add"
  run -1 docker volume inspect v-unknown
}

@test "a volume without tenant= fails and says the option is required" {
  run -1 docker volume create -d tenantfs v-no-tenant
  assert_contains "$output" tenant=
}

@test "an unknown option fails and lists the valid ones" {
  run -1 docker volume create -d tenantfs -o tenant=alice -o colour=red v-bad-opt
  assert_contains "$output" colour
  assert_contains "$output" tenant
  assert_contains "$output" mode
  assert_contains "$output" readonly
  run -1 docker volume inspect v-bad-opt
}

@test "a world-writable mode is refused with the reason" {
  run -1 docker volume create -d tenantfs -o tenant=alice -o mode=0777 v-777
  assert_contains "$output" mode
  assert_contains "$output" world-writable
  run -1 docker volume inspect v-777
}

@test "a path= outside the allowed roots is refused" {
  run -1 docker volume create -d tenantfs -o tenant=alice -o path=/etc v-path-etc
  assert_contains "$output" path
  assert_contains "$output" /srv/tenantfs
}

@test "docker volume rm of a volume in use fails; after the container is gone it works" {
  docker volume create -d tenantfs -o tenant=alice v-busy
  docker run -d --name c-busy --network none -v v-busy:/data busybox sleep 600
  # While mounted, inspect says how the mapper serves. Without the host's
  # enable_uring (the default) it reads /dev/fuse with a receiver per CPU;
  # reads and writes pass through to the storage (strict mode).
  if [[ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" == Y ]]; then
    assert_matches "$(volume_status v-busy request_loop)" '^(uring|per-cpu)$'
  else
    is "$(volume_status v-busy request_loop)" per-cpu "request path of v-busy"
  fi
  is "$(volume_status v-busy passthrough)" on "passthrough of v-busy"
  run -1 docker volume rm v-busy
  assert_contains "$output" "in use"
  docker rm -f c-busy
  run -0 docker volume rm v-busy
  [ ! -e "$(backing_dir v-busy)" ]
}
