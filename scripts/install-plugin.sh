#!/usr/bin/env bash
# Creates and enables the tenantfs managed plugin in the local Docker (or the
# one DOCKER_HOST names) from a plugin directory, and installs the tenantfs
# admin CLI.
#
#   scripts/install-plugin.sh [--plugin-dir DIR] [--cli BINARY] [--prefix P] [--name N]
#                             [--set KEY=VALUE]... [--fuse-uring on|off]
#     --plugin-dir  made by scripts/build-plugin.sh (default: build/plugin-pkg)
#     --cli         the tenantfs binary to install as P/bin/tenantfs
#                   (default: DIR/rootfs/tenantfs)
#     --prefix      default /usr/local
#     --name        plugin name (default: tenantfs)
#     --set         a plugin setting (docker plugin set), e.g.
#                   state.source=/data/tenantfs or LOG_LEVEL=debug; repeatable
#     --fuse-uring  on|off: the host's FUSE-over-io_uring switch
#                   (/sys/module/fuse/parameters/enable_uring), which the
#                   mappers use when on; left as it is unless given. Lasts
#                   until reboot: boot parameter fuse.enable_uring=1 keeps it
#     --check       only check that a Docker daemon answers
#
# An existing plugin of that name is replaced only when no running container
# uses one of its volumes; its settings (mount sources, env) are carried over.
# Volumes and their data survive the replacement.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/plugin-common.sh
source "$repo/scripts/plugin-common.sh"

plugin_dir="$repo/build/plugin-pkg"
cli=""
prefix=/usr/local
name=tenantfs
settings=()
fuse_uring=""
while (($#)); do
  case "$1" in
    --plugin-dir) need_value "$@"; plugin_dir="$2"; shift 2 ;;
    --cli) need_value "$@"; cli="$2"; shift 2 ;;
    --prefix) need_value "$@"; prefix="$2"; shift 2 ;;
    --name) need_value "$@"; name="$2"; shift 2 ;;
    --set) need_value "$@"; settings+=("$2"); shift 2 ;;
    --fuse-uring) need_value "$@"; fuse_uring="$2"; shift 2 ;;
    --check) require_docker; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) unknown_argument "$1" ;;
  esac
done
cli="${cli:-$plugin_dir/rootfs/tenantfs}"

[[ -f "$plugin_dir/config.json" && -d "$plugin_dir/rootfs" ]] ||
  die "no plugin directory at $plugin_dir: run make plugin first"
[[ -x "$cli" ]] || die "no tenantfs binary at $cli"
case "$fuse_uring" in
  ""|on|off) ;;
  *) die "--fuse-uring takes on or off, not '$fuse_uring'" ;;
esac
[[ $(id -u) -eq 0 ]] || die "run as root (sudo make install): the plugin's directories and $prefix/bin need it"
require_docker

# Settings of the plugin being replaced, re-applied to the new one.
old_settings=()
if plugin_exists "$name"; then
  refuse_if_in_use "$name" "replace the installed $name plugin"
  mapfile -t old_settings < <(
    docker plugin inspect --format '{{range .Settings.Mounts}}{{.Name}}.source={{.Source}}{{println}}{{end}}{{range .Settings.Env}}{{.}}{{println}}{{end}}' "$name" |
      sed '/^$/d')
  say "replacing the installed $name plugin (its volumes and settings are kept)"
  # -f: existing volumes hold a reference on the plugin; none is mounted.
  docker plugin disable -f "$name" >/dev/null 2>&1 || true
  docker plugin rm -f "$name" >/dev/null
fi

docker plugin create "$name" "$plugin_dir" >/dev/null
if ((${#old_settings[@]})); then
  # Only settings the new manifest still declares as settable are carried
  # over; the others keep the new defaults.
  for s in "${old_settings[@]}"; do
    docker plugin set "$name" "$s" >/dev/null 2>&1 || true
  done
fi
for s in ${settings[@]+"${settings[@]}"}; do
  docker plugin set "$name" "$s" || die "cannot apply the setting '$s' (see docker plugin inspect $name for the settable ones)"
done

# Bind mount sources must exist before the plugin starts. The state directory
# holds the store and every volume's data: root only.
while read -r mname src; do
  [[ -n "$src" && ! -e "$src" ]] || continue
  case "$mname" in
    state) install -d -m 0700 "$src" ;;
    roots) install -d -m 0755 "$src" ;;
  esac
done < <(docker plugin inspect --format '{{range .Settings.Mounts}}{{.Name}} {{.Source}}{{println}}{{end}}' "$name")

# Before the plugin starts: each mapper chooses its request path when it
# mounts. Volumes mounted already keep theirs.
if [[ -n "$fuse_uring" ]]; then
  uring_param=/sys/module/fuse/parameters/enable_uring
  [[ -e "$uring_param" ]] ||
    die "--fuse-uring: this kernel has no $uring_param (FUSE over io_uring needs Linux 6.14+ with CONFIG_FUSE_IO_URING)"
  if [[ "$fuse_uring" == on ]]; then value=Y; else value=N; fi
  echo "$value" > "$uring_param" || die "cannot write $value to $uring_param"
  say "FUSE over io_uring $fuse_uring on this host until reboot (boot parameter fuse.enable_uring=$([[ $value == Y ]] && echo 1 || echo 0) keeps it)"
fi

if ! docker plugin enable "$name" >/dev/null; then
  die "docker plugin enable $name failed; see the Docker daemon's log (journalctl -u docker) for the plugin's own messages"
fi

install -d "$prefix/bin"
install -m 0755 "$cli" "$prefix/bin/tenantfs"
id="$(docker plugin inspect --format '{{.Id}}' "$name")"
say "plugin $name enabled (socket /run/docker/plugins/$id/tenantfs.sock); CLI installed as $prefix/bin/tenantfs"
say "next: tenantfs tenant add NAME --uid U --gid G; docker volume create -d $name -o tenant=NAME VOLUME"
