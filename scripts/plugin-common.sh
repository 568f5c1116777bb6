# shellcheck shell=bash
# Shared by install-plugin.sh and uninstall-plugin.sh (sourced, not run).
# Talks to whatever Docker DOCKER_HOST (or the default socket) designates.

die() { echo "tenantfs: $*" >&2; exit 1; }
say() { echo "tenantfs: $*"; }

# Fails with one line when no Docker daemon answers.
require_docker() {
  command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed (apt-get install docker.io)"
  local err
  if ! err="$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null)"; then
    die "no Docker daemon answers at ${DOCKER_HOST:-unix:///var/run/docker.sock} ($(echo "$err" | tail -n1)); start it (systemctl start docker) or set DOCKER_HOST"
  fi
}

# True when a plugin named $1 exists.
plugin_exists() { docker plugin inspect "$1" >/dev/null 2>&1; }

# Lines "container volume" for each running or paused container that mounts a
# volume of driver $1 (tenantfs or tenantfs:TAG). Works whether the plugin is
# enabled or not: it reads the containers, not the plugin.
volumes_in_use() {
  local driver="$1" ids
  ids="$(docker ps -q)" || return 1
  [[ -n "$ids" ]] || return 0
  # shellcheck disable=SC2086
  docker inspect --format '{{$c := .Name}}{{range .Mounts}}{{if eq .Type "volume"}}{{$c}} {{.Name}} {{.Driver}}{{println}}{{end}}{{end}}' $ids |
    awk -v d="$driver" '$3 == d || index($3, d ":") == 1 { sub(/^\//, "", $1); print $1, $2 }'
}

# Fails, listing them, when containers use volumes of driver $1; $2 says what
# was being attempted.
refuse_if_in_use() {
  local in_use
  in_use="$(volumes_in_use "$1")" || die "cannot list the running containers"
  [[ -z "$in_use" ]] && return 0
  {
    echo "tenantfs: cannot $2: tenantfs volumes are in use by running containers:"
    echo "$in_use" | awk '{ printf "  container %s uses volume %s\n", $1, $2 }'
    echo "tenantfs: stop those containers (docker stop NAME) and run it again"
  } >&2
  exit 1
}
