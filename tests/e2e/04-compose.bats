#!/usr/bin/env bats
# docker-compose 1.29 with a `driver: tenantfs` volume: up, up again (its
# driver_opts compare with `docker volume inspect`), down -v.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
  e2e_setup_file
  add_test_tenants
  export COMPOSE_PROJECT_NAME=tfs
  export COMPOSE_FILE="$BATS_TEST_DIRNAME/compose/docker-compose.yml"
}

teardown_file() { e2e_teardown_file; }
teardown() { e2e_teardown; }

@test "compose up creates the tenantfs volume and the service writes as the tenant" {
  run -0 docker-compose up --no-color --abort-on-container-exit
  # The service runs as 1000:1000; it sees its file as the tenant's.
  assert_contains "$output" "writer_1  | 7001:7001"
  is "$(docker volume inspect --format '{{.Driver}}' tfs_data)" tenantfs:latest "driver of tfs_data"
  is "$(volume_status tfs_data tenant)" alice "tenant in the status of tfs_data"
  is "$(host_owner "$(backing_dir tfs_data)/started")" 7001:7001 "owner of started on the storage"
  is "$(stat -c %a "$(backing_dir tfs_data)")" 750 "mode of the backing directory"
  is "$(wc -l <"$(backing_dir tfs_data)/started")" 1 "lines in started after one up"
}

@test "compose up again reuses the volume: its options compare equal" {
  run -0 docker-compose up --no-color --abort-on-container-exit
  assert_not_contains "$output" "configured with different"
  assert_not_contains "$output" "already exists"
  is "$(wc -l <"$(backing_dir tfs_data)/started")" 2 "lines in started after two ups"
}

@test "compose down -v removes the containers and the volume" {
  run -0 docker-compose down -v
  run -1 docker volume inspect tfs_data
  is "$(docker ps -aq --filter label=com.docker.compose.project=tfs)" "" "containers of the project left"
  [ ! -e "$(backing_dir tfs_data)" ]
}
