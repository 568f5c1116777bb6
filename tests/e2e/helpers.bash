# shellcheck shell=bash disable=SC2119,SC2120  # optional arguments are deliberate
# tenantfs end-to-end harness: a private Docker daemon with the tenantfs
# managed plugin, for bats files and for scripts (bench/) that source it.
#
# It never touches the Docker the user already runs: the daemon gets its own
# data root, exec root, pidfile, socket and containerd namespaces, all under
# one directory of its own, and DOCKER_HOST points every client (docker,
# docker-compose, the tenantfs CLI) at it.
#
# Inputs (environment):
#   TENANTFS_BIN         the built tenantfs binary (also used as the admin CLI)
#   TENANTFS_PLUGIN_DIR  the plugin directory made by scripts/build-plugin.sh
#   TFS_KEEP_LOGS        when set, the daemon's log is copied there at teardown
#   TFS_DOCKERD_ARGS     more dockerd arguments, one per line (e.g. TLS and
#                        --config-file for the authorization tests)
#
# Set by start_private_dockerd (exported, so bats tests see them):
#   TFS_D           the run's private directory (/tmp/tenantfs-e2e.XXXXXX)
#   DOCKER_HOST     unix://$TFS_D/docker.sock
#   TFS_DOCKERD_LOG the daemon's log; the plugin's own output lands there too
# Set by install_plugin:
#   TFS_PLUGIN      the plugin's name (tenantfs)
#   TFS_PLUGIN_ID   its id; its socket is /run/docker/plugins/$TFS_PLUGIN_ID/tenantfs.sock
#   TFS_STATE       host directory bound as the plugin's state mount; volume
#                   data is under $TFS_STATE/data/<volume name>
#   TFS_ROOTS       host directory bound as the plugin's roots mount (path=)
#
# Typical use:
#   source tests/e2e/helpers.bash
#   start_private_dockerd && import_busybox && install_plugin || { teardown_private_dockerd; exit 1; }
#   ... docker run --network none -v ... busybox ...
#   teardown_private_dockerd
#
# Every function returns non-zero with a message on stderr when it fails; none
# relies on `set -e`, and a failure they expect (cleaning what is already
# gone) never trips it, so they behave the same under bats (errexit on) and
# in plain scripts.

# The assertions the bats files use (is, assert_contains, ...), shared with
# tests/admin/admin_cli.bats.
# shellcheck source=tests/support/assertions.bash
source "$(dirname "${BASH_SOURCE[0]}")/../support/assertions.bash" || return 1

# Longest wait for the daemon to answer or to exit, in seconds.
: "${TFS_DOCKERD_TIMEOUT:=60}"

# The docker CLI as the tests use it: whatever `docker` is first in PATH.
tfs_log() { echo "# e2e: $*" >&2; }

# start_private_dockerd [DIR]
# Starts dockerd on DIR (default: a new /tmp/tenantfs-e2e.XXXXXX) and waits
# until it answers. Called again with the same DIR after stop_private_dockerd,
# it restarts the same daemon: same images, volumes and plugins.
start_private_dockerd() {
  local d="${1:-}"
  if [[ -z "$d" ]]; then
    d="$(mktemp -d /tmp/tenantfs-e2e.XXXXXX)" || return 1
  fi
  mkdir -p "$d/data" "$d/exec" "$d/state" "$d/roots" "$d/tmp" || return 1
  chmod 0700 "$d" || return 1
  export TFS_D="$d"
  export DOCKER_HOST="unix://$d/docker.sock"
  export TFS_DOCKERD_LOG="$d/dockerd.log"
  # The namespaces keep this daemon's containers apart from another daemon's
  # even if both share a system containerd.
  local ns
  ns="tenantfs-e2e-$(basename "$d" | tr -c 'a-zA-Z0-9\n' '-')"
  # TMPDIR: the daemon and its containerd write their temporary files (and
  # stack dumps when a shutdown is slow) there, not in /tmp.
  local extra=()
  [[ -z "${TFS_DOCKERD_ARGS:-}" ]] || mapfile -t extra <<<"$TFS_DOCKERD_ARGS"
  TMPDIR="$d/tmp" dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/pid" \
    -H "unix://$d/docker.sock" --bridge=none --iptables=false --ip-masq=false \
    --containerd-namespace "$ns" --containerd-plugins-namespace "$ns-plugins" \
    --log-level info "${extra[@]}" >>"$TFS_DOCKERD_LOG" 2>&1 </dev/null 3>&- &
  local pid=$!
  echo "$pid" >"$d/dockerd.pid"
  local i
  for ((i = 0; i < TFS_DOCKERD_TIMEOUT * 5; i++)); do
    if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
      return 0
    fi
    if ! tfs_alive "$pid"; then
      tfs_log "dockerd exited during start-up; last lines of $TFS_DOCKERD_LOG:"
      tail -n 20 "$TFS_DOCKERD_LOG" >&2
      return 1
    fi
    sleep 0.2
  done
  tfs_log "dockerd did not answer on $DOCKER_HOST within ${TFS_DOCKERD_TIMEOUT}s"
  tail -n 20 "$TFS_DOCKERD_LOG" >&2
  return 1
}

# tfs_alive PID: the process exists and is not a zombie (a daemon restarted
# from a bats test outlives that test's shell, which cannot reap it).
tfs_alive() {
  local state
  state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# stop_private_dockerd
# Stops the daemon gracefully (it stops its plugins first), keeping TFS_D, so
# start_private_dockerd "$TFS_D" brings the same daemon back.
stop_private_dockerd() {
  local pid
  pid="$(cat "$TFS_D/dockerd.pid" 2>/dev/null)" || return 0
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || { rm -f "$TFS_D/dockerd.pid"; return 0; }
  local i
  for ((i = 0; i < TFS_DOCKERD_TIMEOUT * 5; i++)); do
    tfs_alive "$pid" || break
    sleep 0.2
  done
  if tfs_alive "$pid"; then
    tfs_log "dockerd $pid ignored SIGTERM for ${TFS_DOCKERD_TIMEOUT}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  # `wait` reaps it when this shell started it; otherwise it is not our child.
  wait "$pid" 2>/dev/null || true
  rm -f "$TFS_D/dockerd.pid"
  return 0
}

# import_busybox [TAG]
# Makes TAG (default busybox:latest) offline from the host's busybox-static:
# /bin/busybox plus one link per applet. The applet named `busybox` is
# skipped, or the link would replace the binary with a link to itself.
import_busybox() {
  local tag="${1:-busybox:latest}"
  local bb
  bb="$(command -v busybox)" || { tfs_log "busybox not found (apt-get install busybox-static)"; return 1; }
  local root="$TFS_D/busybox-root"
  rm -rf "$root"
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" || return 1
  chmod 1777 "$root/tmp"
  cp "$bb" "$root/bin/busybox" || return 1
  local applet
  for applet in $("$bb" --list); do
    [[ "$applet" == busybox ]] && continue
    ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -c . | docker import -c 'CMD ["sh"]' -c 'ENV PATH=/bin' - "$tag" >/dev/null || {
    tfs_log "docker import of $tag failed"
    return 1
  }
  rm -rf "$root"
}

# install_plugin [PLUGIN_DIR] [NAME]
# Creates and enables the managed plugin NAME (default tenantfs) from
# PLUGIN_DIR (default $TENANTFS_PLUGIN_DIR), its state and roots mounts
# pointing into TFS_D. Extra settings can be passed in TFS_PLUGIN_SETTINGS
# (e.g. "LOG_LEVEL=debug").
install_plugin() {
  local dir="${1:-${TENANTFS_PLUGIN_DIR:-}}"
  local name="${2:-tenantfs}"
  if [[ -z "$dir" || ! -f "$dir/config.json" || ! -d "$dir/rootfs" ]]; then
    tfs_log "no plugin directory at '${dir}' (set TENANTFS_PLUGIN_DIR; scripts/build-plugin.sh makes one)"
    return 1
  fi
  export TFS_PLUGIN="$name"
  export TFS_STATE="$TFS_D/state"
  export TFS_ROOTS="$TFS_D/roots"
  docker plugin create "$name" "$dir" >/dev/null || { tfs_log "docker plugin create $name failed"; return 1; }
  TFS_PLUGIN_ID="$(docker plugin inspect --format '{{.Id}}' "$name")" || return 1
  export TFS_PLUGIN_ID
  # Remembered on disk too, so teardown finds /run/docker/plugins/<id> even
  # from a shell that did not run install_plugin.
  echo "$TFS_PLUGIN_ID" >>"$TFS_D/plugin-ids"
  # The rootfs stays as Docker made it (its root is mode 0700, whatever the
  # package says), so the suite runs the plugin as users get it.
  # shellcheck disable=SC2086  # settings are words on purpose
  docker plugin set "$name" state.source="$TFS_STATE" roots.source="$TFS_ROOTS" \
    LOG_LEVEL="${TFS_LOG_LEVEL:-debug}" ${TFS_PLUGIN_SETTINGS:-} || return 1
  docker plugin enable "$name" >/dev/null || {
    tfs_log "docker plugin enable $name failed; last lines of $TFS_DOCKERD_LOG:"
    tail -n 30 "$TFS_DOCKERD_LOG" >&2
    return 1
  }
}

# plugin_socket: the plugin's socket as the host sees it.
plugin_socket() { echo "/run/docker/plugins/$TFS_PLUGIN_ID/tenantfs.sock"; }

# tenantfs_cli ARGS...: the admin CLI, finding the plugin through DOCKER_HOST.
tenantfs_cli() { "$TENANTFS_BIN" "$@"; }

# backing_dir VOLUME: where a plugin-created volume keeps its data on the host.
backing_dir() { echo "$TFS_STATE/data/$1"; }

# dockerd_log_tail [N]: the daemon's last N log lines (plugin output included).
dockerd_log_tail() { tail -n "${1:-40}" "$TFS_DOCKERD_LOG" 2>/dev/null; }

# mounts_under DIR: mount points at or below DIR, deepest first.
mounts_under() {
  local dir="$1"
  # Field 5 of mountinfo is the mount point, with spaces escaped as \040.
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# pids_of_run DIR: processes whose command line names DIR (the daemon's own
# containerd and shims, started for this run only).
pids_of_run() {
  local dir="$1" p
  for p in /proc/[0-9]*; do
    [[ "${p#/proc/}" == "$$" ]] && continue
    if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$dir/"; then
      echo "${p#/proc/}"
    fi
  done
}

# teardown_private_dockerd
# Removes everything the run made, in the order Docker allows: containers,
# then volumes (their plugin must be enabled for that), then the plugin, then
# the daemon, leftover mounts under TFS_D, /run/docker/plugins/<id> and TFS_D.
# Safe to call more than once and after a partial start.
teardown_private_dockerd() {
  [[ -n "${TFS_D:-}" && -d "$TFS_D" ]] || return 0
  local d="$TFS_D" rc=0
  if [[ -n "$(cat "$d/dockerd.pid" 2>/dev/null)" ]] && docker version >/dev/null 2>&1; then
    local ids
    ids="$(docker ps -aq 2>/dev/null)"
    # shellcheck disable=SC2086
    [[ -z "$ids" ]] || docker rm -f $ids >/dev/null 2>&1 || true
    local p
    for p in $(docker plugin ls --format '{{.Name}}' 2>/dev/null); do
      if [[ "$(docker plugin inspect --format '{{.Enabled}}' "$p" 2>/dev/null)" == false ]]; then
        docker plugin enable "$p" >/dev/null 2>&1 || true
      fi
    done
    ids="$(docker volume ls -q 2>/dev/null)"
    # shellcheck disable=SC2086
    [[ -z "$ids" ]] || docker volume rm -f $ids >/dev/null 2>&1 || true
    for p in $(docker plugin ls --format '{{.Name}}' 2>/dev/null); do
      docker plugin disable -f "$p" >/dev/null 2>&1 || true
      docker plugin rm -f "$p" >/dev/null 2>&1 || true
    done
  fi
  stop_private_dockerd
  # A containerd or shim the daemon started and did not stop.
  local pid
  for pid in $(pids_of_run "$d"); do
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in $(pids_of_run "$d"); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  local m
  while read -r m; do
    [[ -n "$m" ]] || continue
    m="$(printf '%b' "$m")"
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(mounts_under "$d")
  if [[ -n "${TFS_KEEP_LOGS:-}" ]]; then
    if mkdir -p "$TFS_KEEP_LOGS"; then
      cp -f "$d/dockerd.log" "$TFS_KEEP_LOGS/dockerd-$(basename "$d").log" 2>/dev/null || true
    fi
  fi
  local id
  # shellcheck disable=SC2013  # one id per line, no spaces
  for id in $(cat "$d/plugin-ids" 2>/dev/null); do
    [[ "$id" =~ ^[0-9a-f]{64}$ ]] || continue
    if [[ -z "$(mounts_under "/run/docker/plugins/$id")" ]]; then
      rm -rf "/run/docker/plugins/$id" || rc=1
    else
      tfs_log "mounts remain under /run/docker/plugins/$id; left in place"
      rc=1
    fi
  done
  if [[ -n "$(mounts_under "$d")" ]]; then
    # Never delete through a mount: that is how data is lost.
    tfs_log "mounts remain under $d, not deleting it:"
    mounts_under "$d" >&2
    return 1
  fi
  rm -rf --one-file-system "$d" || rc=1
  unset TFS_D TFS_PLUGIN_ID
  return "$rc"
}

# ---------------------------------------------------------------------------
# For bats files.

# e2e_setup_file: one private daemon with busybox and the plugin for a whole
# .bats file; tears down what it started if any step fails.
e2e_setup_file() {
  if [[ $(id -u) -ne 0 ]]; then
    tfs_log "the e2e tests run as root (a private dockerd)"
    return 1
  fi
  start_private_dockerd && import_busybox && install_plugin && return 0
  teardown_private_dockerd
  return 1
}

# e2e_teardown_file: counterpart of e2e_setup_file. With TFS_KEEP_LOGS set,
# the daemon's log (the plugin's output included) is kept there.
e2e_teardown_file() { teardown_private_dockerd; }

# add_test_tenants: alice 7001:7001 and bob 7002:7002, through the CLI and its
# discovery of the plugin from DOCKER_HOST.
add_test_tenants() {
  tenantfs_cli tenant add alice --uid 7001 --gid 7001 || return 1
  tenantfs_cli tenant add bob --uid 7002 --gid 7002 || return 1
}

# bb ARGS... CMD: a throwaway busybox container without network.
bb() { docker run --rm --network none "$@"; }

# host_owner PATH: uid:gid of PATH on the host (the storage).
host_owner() { stat -c %u:%g "$1"; }

# volume_status VOLUME KEY: one field of the volume's Status as `docker volume
# inspect` shows it ("<no value>" when absent).
volume_status() {
  docker volume inspect --format "{{index .Status \"$2\"}}" "$1"
}

# e2e_teardown: per-test teardown; after a failed test, shows the plugin's
# last log lines (dockerd relays them with plugin=<id>) under the failure.
e2e_teardown() {
  if [[ -z "${BATS_TEST_COMPLETED:-}" ]]; then
    echo "# last plugin log lines:" >&2
    grep -F "plugin=${TFS_PLUGIN_ID:-none}" "$TFS_DOCKERD_LOG" 2>/dev/null | tail -n 15 >&2
  fi
}
