# shellcheck shell=bash
# Shared by the scripts in this folder (sourced, not run): messages, option
# parsing, and for install-plugin.sh and uninstall-plugin.sh the Docker
# queries, which talk to whatever Docker DOCKER_HOST (or the default socket)
# designates.

# Every message starts with "$script_name: "; a script that is not about the
# installed plugin sets its own name before sourcing this file.
script_name="${script_name:-tenantfs}"
die() { echo "$script_name: $*" >&2; exit 1; }
say() { echo "$script_name: $*"; }

# Option parsing, in the shape every script's loop takes:
#   while (($#)); do
#     case "$1" in
#       --out) need_value "$@"; out="$2"; shift 2 ;;
#       -h|--help) usage; exit 0 ;;
#       *) unknown_argument "$1" ;;
#     esac
#   done
# A wrong command line exits with status 2 and one line that says what was
# wrong, before the script has done anything.
usage_error() { echo "$script_name: $* (see --help)" >&2; exit 2; }
unknown_argument() { usage_error "unknown argument '$1'"; }
# For "$@" starting with an option that takes a value: fails unless the value
# is there. A following option is not taken for the value (--out --binary x
# means a forgotten value, not a directory named --binary).
need_value() {
  if (($# < 2)) || [[ "$2" == --* ]]; then usage_error "$1 needs a value"; fi
}
# Prints the running script's header comment (from its second line to the
# first line that is not a comment) without the comment marks: each script
# documents its usage there, once.
usage() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

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
