#!/usr/bin/env bats
# Authorization by Docker identity: a private dockerd with --tlsverify and the
# tenantfs plugin as its authorization plugin. Users alice, bob and admin
# connect with client certificates made here (CN = user name); the unix
# socket is a client without TLS identity.
bats_require_minimum_version 1.5.0
load helpers

# make_tls DIR: a CA, a server certificate for 127.0.0.1, and one client
# certificate per user in DIR/USER/{ca,cert,key}.pem (DOCKER_CERT_PATH).
make_tls() {
  local dir="$1" name
  mkdir -p "$dir" && chmod 0700 "$dir" || return 1
  local key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${key[@]}" -days 2 -subj /CN=tenantfs-e2e-ca \
    -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null || return 1
  for name in server alice bob admin; do
    mkdir -p "$dir/$name"
    openssl req "${key[@]}" -subj "/CN=$name" -keyout "$dir/$name/key.pem" \
      -out "$dir/$name.csr" 2>/dev/null || return 1
    if [[ $name == server ]]; then
      printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/$name.ext"
    else
      printf 'extendedKeyUsage=clientAuth\n' >"$dir/$name.ext"
    fi
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
      -CAcreateserial -days 2 -extfile "$dir/$name.ext" -out "$dir/$name/cert.pem" \
      2>/dev/null || return 1
    cp "$dir/ca.pem" "$dir/$name/ca.pem"
  done
}

# as USER CMD...: CMD (docker, docker-compose) as USER over TLS. A CA bundle
# named in the environment would replace DOCKER_CERT_PATH's for Compose.
as() {
  local user="$1"
  shift
  env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE DOCKER_HOST="tcp://127.0.0.1:$TFS_TLS_PORT" \
    DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$TFS_D/tls/$user" "$@"
}

# api USER METHOD PATH [BODY]: one raw API request as USER; prints the HTTP
# status, then the body.
api() {
  local user="$1" method="$2" path="$3" body="${4:-}" c="$TFS_D/tls/$1"
  curl -sS --cacert "$c/ca.pem" --cert "$c/cert.pem" --key "$c/key.pem" -X "$method" \
    -H 'Content-Type: application/json' ${body:+--data-binary "$body"} \
    -w '\n%{http_code}\n' "https://127.0.0.1:$TFS_TLS_PORT$path"
}

# reload_dockerd_config JSON: writes the daemon's config file and waits until
# dockerd has reloaded it (SIGHUP; it logs each reload).
reload_dockerd_config() {
  local before i
  before="$(grep -c 'Reloaded configuration' "$TFS_DOCKERD_LOG" || true)"
  echo "$1" >"$TFS_D/daemon.json"
  kill -HUP "$(cat "$TFS_D/dockerd.pid")" || return 1
  for ((i = 0; i < TFS_DOCKERD_TIMEOUT * 5; i++)); do
    (($(grep -c 'Reloaded configuration' "$TFS_DOCKERD_LOG" || true) > before)) && return 0
    sleep 0.2
  done
  tfs_log "dockerd did not reload its configuration"
  return 1
}

denied_for() { # USER TENANT VOLUME: the message docker prints for that denial
  echo "authorization denied by plugin tenantfs:latest: user \"$1\" may not use tenant \"$2\" (volume \"$3\"); an admin allows it with \"tenantfs tenant allow $2 --user $1\""
}

setup_file() {
  [[ $(id -u) -eq 0 ]] || { tfs_log "the e2e tests run as root"; return 1; }
  local d
  d="$(mktemp -d /tmp/tenantfs-e2e.XXXXXX)" || return 1
  make_tls "$d/tls" || { rm -rf "$d"; return 1; }
  TFS_TLS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  export TFS_TLS_PORT
  echo '{}' >"$d/daemon.json"
  # Loopback only; authorization comes on once the plugin is enabled (dockerd
  # refuses to start with an authorization plugin it cannot find).
  export TFS_DOCKERD_ARGS="--config-file=$d/daemon.json
--tlsverify
--tlscacert=$d/tls/ca.pem
--tlscert=$d/tls/server/cert.pem
--tlskey=$d/tls/server/key.pem
--host=tcp://127.0.0.1:$TFS_TLS_PORT"
  if ! start_private_dockerd "$d" || ! import_busybox || ! install_plugin; then
    teardown_private_dockerd
    return 1
  fi
  add_test_tenants
  tenantfs_cli tenant allow alice --user alice
  tenantfs_cli tenant allow bob --user bob
  tenantfs_cli admin allow admin
  reload_dockerd_config '{"authorization-plugins": ["tenantfs"]}'
  export COMPOSE_FILE="$BATS_TEST_DIRNAME/compose/authz-external.yml"
}

teardown_file() {
  # The admin may remove every tenantfs volume and the plugin.
  export DOCKER_HOST="tcp://127.0.0.1:$TFS_TLS_PORT" DOCKER_TLS_VERIFY=1
  export DOCKER_CERT_PATH="$TFS_D/tls/admin"
  e2e_teardown_file
}
teardown() { e2e_teardown; }

@test "alice creates a volume of her tenant and writes to it as the tenant" {
  run -0 as alice docker volume create -d tenantfs -o tenant=alice adata
  run -0 as alice docker run --rm --network none -v adata:/d busybox sh -c 'echo hi > /d/hello'
  is "$(host_owner "$(backing_dir adata)/hello")" 7001:7001 "owner of hello on the storage"
}

@test "bob cannot create a volume for tenant alice" {
  run -1 as bob docker volume create -d tenantfs -o tenant=alice stolen
  assert_contains "$output" "$(denied_for bob alice stolen)"
  run -1 docker volume inspect stolen
  [ ! -e "$(backing_dir stolen)" ]
}

@test "bob cannot mount alice's volume by name" {
  run -125 as bob docker run --rm --network none -v adata:/d busybox cat /d/hello
  assert_contains "$output" "$(denied_for bob alice adata)"
}

@test "bob cannot mount a new volume of tenant alice with --mount volume-opt" {
  run -125 as bob docker run --rm --network none \
    --mount type=volume,source=inline,target=/d,volume-driver=tenantfs,volume-opt=tenant=alice \
    busybox true
  assert_contains "$output" "$(denied_for bob alice inline)"
  run -1 docker volume inspect inline
}

@test "bob cannot mount alice's volume through Compose" {
  run ! as bob docker-compose -p bobs up --no-color
  assert_contains "$output" "$(denied_for bob alice adata)"
  is "$(docker ps -aq --filter label=com.docker.compose.project=bobs)" "" "containers of project bobs"
}

@test "bob cannot remove alice's volume" {
  run -1 as bob docker volume rm adata
  assert_contains "$output" "$(denied_for bob alice adata)"
  [ -e "$(backing_dir adata)/hello" ]
}

@test "bob's raw API requests with top-level Binds or an old-API start are denied" {
  # Docker 20.10 still reads HostConfig fields at the top of a create body,
  # and a HostConfig in the body of a start before API 1.24.
  run -0 api bob POST /v1.41/containers/create '{"Image":"busybox","Cmd":["true"],"Binds":["adata:/d"]}'
  is "${lines[-1]}" 403 "HTTP status of the create with top-level Binds"
  assert_contains "$output" 'user \"bob\" may not use tenant \"alice\"'
  run -0 api bob POST /v1.41/containers/create '{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"none"}}'
  is "${lines[-1]}" 201 "HTTP status of the create without volumes"
  local id
  id="$(sed -n 's/.*"Id":"\([0-9a-f]*\)".*/\1/p' <<<"$output")"
  run -0 api bob POST "/v1.23/containers/$id/start" '{"Binds":["adata:/d"]}'
  is "${lines[-1]}" 403 "HTTP status of the old-API start with Binds"
  assert_contains "$output" "$(denied_for bob alice adata)"
  as bob docker rm -f "$id"
}

@test "requests without a TLS identity are denied tenantfs volumes" {
  run -1 docker volume create -d tenantfs -o tenant=alice anon
  assert_contains "$output" "a request without a TLS client certificate may not use tenant \"alice\""
  run -125 docker run --rm --network none -v adata:/d busybox true
  assert_contains "$output" "may not use tenant \"alice\" (volume \"adata\")"
}

@test "docker volume ls and other drivers' volumes keep working for everyone" {
  local who
  for who in alice bob admin; do
    run -0 as "$who" docker volume ls --format '{{.Name}}'
    assert_contains "$output" adata
    run -0 as "$who" docker volume create "local-$who"
    run -0 as "$who" docker run --rm --network none -v "local-$who:/d" busybox touch /d/x
    run -0 as "$who" docker volume rm "local-$who"
  done
  run -0 docker volume create local-anon
  run -0 docker volume rm local-anon
}

@test "the admin mounts alice's volume, also through Compose" {
  run -0 as admin docker run --rm --network none -v adata:/d busybox cat /d/hello
  is "$output" hi
  run -0 as admin docker-compose -p admins up --no-color --abort-on-container-exit
  assert_contains "$output" "reader_1  | hi"
  run -0 as admin docker-compose -p admins down
}

@test "bob may use tenant alice once an admin allows it, and not after deny" {
  run -0 tenantfs_cli tenant allow alice --user bob
  run -0 tenantfs_cli tenant ls
  assert_matches "$output" 'alice .* alice,bob'
  run -0 as bob docker run --rm --network none -v adata:/d busybox cat /d/hello
  is "$output" hi
  run -0 tenantfs_cli tenant deny alice --user bob
  run -125 as bob docker run --rm --network none -v adata:/d busybox cat /d/hello
  assert_contains "$output" "$(denied_for bob alice adata)"
}

@test "only admins manage the plugin" {
  run -1 as bob docker plugin disable tenantfs
  assert_contains "$output" 'user "bob" may not manage the tenantfs plugin: only tenantfs admins may'
  is "$(docker plugin inspect --format '{{.Enabled}}' tenantfs)" true "plugin enabled"
}

@test "after the plugin is disabled and enabled, dockerd asks it again only after a reload" {
  # Docker drops a disabled authorization plugin from its chain and does not
  # add it back when it is enabled again (README: Authorization).
  run -0 as admin docker plugin disable -f tenantfs
  run -0 as admin docker plugin enable tenantfs
  run -0 as bob docker volume create -d tenantfs -o tenant=alice gap
  reload_dockerd_config '{"authorization-plugins": ["tenantfs"]}'
  run -1 as bob docker volume create -d tenantfs -o tenant=alice gap2
  assert_contains "$output" "$(denied_for bob alice gap2)"
  run -0 as admin docker volume rm gap
}
