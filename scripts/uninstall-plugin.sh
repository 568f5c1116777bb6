#!/usr/bin/env bash
# Reverses install-plugin.sh: disables and removes the tenantfs plugin from the
# local Docker (or DOCKER_HOST's) and removes the tenantfs CLI. Refuses while
# a running container uses one of its volumes. Volume data and the store stay
# on the host (the plugin's state directory); reinstalling brings them back.
#
#   scripts/uninstall-plugin.sh [--prefix P] [--name N]
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/plugin-common.sh
source "$repo/scripts/plugin-common.sh"

prefix=/usr/local
name=tenantfs
while (($#)); do
  case "$1" in
    --prefix) need_value "$@"; prefix="$2"; shift 2 ;;
    --name) need_value "$@"; name="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) unknown_argument "$1" ;;
  esac
done

require_docker
if plugin_exists "$name"; then
  refuse_if_in_use "$name" "uninstall the $name plugin"
  state="$(docker plugin inspect --format '{{range .Settings.Mounts}}{{if eq .Name "state"}}{{.Source}}{{end}}{{end}}' "$name")"
  # Docker records a managed plugin's volumes under its full name (name:tag).
  ref="$(docker plugin inspect --format '{{.Name}}' "$name")"
  volumes="$(docker volume ls -q --filter "driver=$ref" 2>/dev/null | wc -l)"
  docker plugin disable -f "$name" >/dev/null 2>&1 || true
  docker plugin rm -f "$name" >/dev/null
  say "plugin $name removed"
  if ((volumes > 0)); then
    say "$volumes volume(s) of driver $name remain known to Docker; their data is kept in ${state:-the state directory of the plugin}"
    say "reinstall (make install) to use or remove them"
  fi
else
  say "no plugin named $name in this Docker; nothing to remove there"
fi

if [[ -e "$prefix/bin/tenantfs" ]]; then
  rm -f "$prefix/bin/tenantfs"
  say "removed $prefix/bin/tenantfs"
fi
