#!/usr/bin/env bash
# API and Docker benchmarks (root):
#  1. VolumeDriver round trips over the plugin socket of a `tenantfs serve`
#     started on temporary directories: Create, Mount (a real mapper mount),
#     Unmount, Remove; then List with BENCH_VOLUMES volumes in the store.
#  2. `docker run --rm --network none -v VOL:/d busybox true` with a tenantfs
#     volume against a volume of Docker's `local` driver, on the private
#     dockerd of the e2e harness (tests/e2e/helpers.bash).
# A part whose dependency is missing prints "skipped: <why>".
#
# Environment (defaults in brackets; BENCH_QUICK=1 shrinks everything):
#   BENCH_API_CYCLES [100 | quick 20]    Create/Mount/Unmount/Remove cycles
#   BENCH_VOLUMES [10000 | quick 1000]   volumes in the store for List
#   BENCH_LIST_REPS [20 | quick 5]       List calls timed
#   BENCH_DOCKER_RUNS [15 | quick 3]     docker runs per driver (after a warm-up)
#   BENCH_SKIP_DOCKER=1                  skip part 2
#   BUILD_DIR [build], TENANTFS_BIN
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "api-bench needs root"

QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
  CYCLES=${BENCH_API_CYCLES:-20} NVOL=${BENCH_VOLUMES:-1000} LISTS=${BENCH_LIST_REPS:-5}
  DRUNS=${BENCH_DOCKER_RUNS:-3}
else
  CYCLES=${BENCH_API_CYCLES:-100} NVOL=${BENCH_VOLUMES:-10000} LISTS=${BENCH_LIST_REPS:-20}
  DRUNS=${BENCH_DOCKER_RUNS:-15}
fi
TUID=${BENCH_UID:-7001}
TGID=${BENCH_GID:-7001}

TFSBENCH=$(build_tfsbench)
TENANTFS=$(find_tenantfs || true)
WORK=$(mktemp -d /tmp/tenantfs-apibench.XXXXXX)
chmod 0755 "$WORK"
SERVE_PID=""
DOCKER_STARTED=0

cleanup() {
  if [[ -n "$SERVE_PID" ]]; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  fi
  # Mapper mounts serve left behind (never delete through a mount).
  local m
  for m in $(awk -v d="$WORK/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  if ((DOCKER_STARTED)); then teardown_private_dockerd 2>/dev/null || true; fi
  if [[ -z "$(awk -v d="$WORK/" 'index($5, d) == 1' /proc/self/mountinfo)" ]]; then
    rm -rf --one-file-system "$WORK"
  else
    log "mounts remain under $WORK; left in place"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOAD_START=$(load_avg)
declare -A R      # result name -> value (ms) or "skipped: ..."
ORDER=()
put() { R[$1]=$2; ORDER+=("$1"); }

# ---- part 1: the plugin socket ------------------------------------------

api_part() {
  if [[ -z "$TENANTFS" ]]; then
    API_WHY="no tenantfs binary in $BUILD_DIR (build it first)"; return 1
  fi
  if ! "$TENANTFS" serve --help 2>&1 | grep -q -- --socket; then
    API_WHY="this tenantfs build has no working 'serve' subcommand yet"; return 1
  fi
  local sock=$WORK/tenantfs.sock i out
  mkdir -m 0700 "$WORK/state" "$WORK/data"
  mkdir -p "$WORK/mnt"
  "$TENANTFS" serve --socket "$sock" --state-dir "$WORK/state" --data-dir "$WORK/data" \
    --mount-root "$WORK/mnt" >>"$WORK/serve.log" 2>&1 </dev/null &
  SERVE_PID=$!
  for ((i = 0; i < 100; i++)); do
    "$TFSBENCH" post "$sock" /Plugin.Activate '{}' >/dev/null 2>&1 && break
    kill -0 "$SERVE_PID" 2>/dev/null || { API_WHY="tenantfs serve exited: $(tail -n 3 "$WORK/serve.log")"; return 1; }
    sleep 0.1
  done
  ((i < 100)) || { API_WHY="tenantfs serve did not answer on $sock"; return 1; }
  out=$("$TFSBENCH" post "$sock" /tenantfs/v1/tenants/add \
    "{\"name\":\"bench\",\"uid\":$TUID,\"gid\":$TGID,\"groups\":[]}" 2>&1) ||
    { API_WHY="tenants/add failed: $out"; return 1; }

  log "API: $CYCLES x Create/Mount/Unmount/Remove"
  "$TFSBENCH" api-cycle "$sock" bench "$CYCLES" >"$WORK/cycle.out" 2>"$WORK/cycle.err" ||
    { API_WHY="round trips failed: $(head -n 2 "$WORK/cycle.err")"; return 1; }
  log "API: filling the store with $NVOL volumes"
  "$TFSBENCH" api-fill "$sock" bench bench-list- "$NVOL" >"$WORK/fill.out" 2>"$WORK/fill.err" ||
    { API_WHY="creating $NVOL volumes failed: $(head -n 2 "$WORK/fill.err")"; return 1; }
  "$TFSBENCH" api-list "$sock" "$LISTS" >"$WORK/list.out" 2>"$WORK/list.err" ||
    { API_WHY="List failed: $(head -n 2 "$WORK/list.err")"; return 1; }
  # The volumes are not removed one by one (minutes for 10,000): serve
  # stops and the temporary state goes with the work directory.
  kill -TERM "$SERVE_PID" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
  SERVE_PID=""
  return 0
}

val() { sed -n "s/^$2 //p" "$WORK/$1"; }

API_WHY=""
if api_part; then
  for op in create mount unmount remove mount_unmount create_mount_unmount_remove; do
    put "api.$op.median_ms" "$(val cycle.out "${op}_ms_median")"
    put "api.$op.p90_ms" "$(val cycle.out "${op}_ms_p90")"
  done
  put "api.list.volumes" "$(val list.out volumes)"
  put "api.list.reply_bytes" "$(val list.out reply_bytes)"
  put "api.list.median_ms" "$(val list.out list_ms_median)"
  put "api.list.p90_ms" "$(val list.out list_ms_p90)"
  put "api.fill.create_per_volume_ms" \
    "$(awk -v s="$(val fill.out seconds)" -v n="$NVOL" 'BEGIN { printf "%.3f", s * 1000 / n }')"
else
  if [[ -n "$SERVE_PID" ]]; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
    SERVE_PID=""
  fi
  echo "skipped: API benchmarks: $API_WHY"
  put "api" "skipped: $API_WHY"
fi

# ---- part 2: docker run ----------------------------------------------------

time_docker_run() {  # time_docker_run VOLUME -> ms or FAIL
  local t0 t1
  t0=$(now_us)
  if docker run --rm --network none -v "$1:/d" busybox true >/dev/null 2>"$WORK/run.err"; then
    t1=$(now_us)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1000 }'
  else
    echo "FAIL $(sanitize "$(tail -n 1 "$WORK/run.err")")"
  fi
}

median_of() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

docker_part() {
  local helpers=$REPO_ROOT/tests/e2e/helpers.bash
  [[ "${BENCH_SKIP_DOCKER:-0}" == 1 ]] && { DOCKER_WHY="BENCH_SKIP_DOCKER=1"; return 1; }
  [[ -f "$helpers" ]] || { DOCKER_WHY="tests/e2e/helpers.bash is not there yet"; return 1; }
  command -v dockerd >/dev/null || { DOCKER_WHY="dockerd is not installed"; return 1; }
  # shellcheck source=../tests/e2e/helpers.bash
  source "$helpers"
  TFS_LOG_LEVEL=${TFS_LOG_LEVEL:-info}
  start_private_dockerd "$WORK/docker" 2>"$WORK/docker.err" || { DOCKER_WHY="private dockerd did not start: $(sanitize "$(tail -n 3 "$WORK/docker.err")")"; DOCKER_STARTED=1; return 1; }
  DOCKER_STARTED=1
  import_busybox 2>"$WORK/docker.err" || { DOCKER_WHY="busybox import failed: $(sanitize "$(tail -n 2 "$WORK/docker.err")")"; return 1; }
  docker volume create bench-local >/dev/null || { DOCKER_WHY="docker volume create (local) failed"; return 1; }

  PLUGIN_WHY=""
  if [[ -z "$TENANTFS" ]]; then
    PLUGIN_WHY="no tenantfs binary"
  elif ! "$TENANTFS" serve --help 2>&1 | grep -q -- --socket; then
    PLUGIN_WHY="this tenantfs build has no working 'serve' subcommand yet"
  elif ! "$REPO_ROOT/scripts/build-plugin.sh" --binary "$TENANTFS" --out "$WORK/plugin-pkg" >"$WORK/plugin.err" 2>&1; then
    PLUGIN_WHY="scripts/build-plugin.sh failed: $(sanitize "$(tail -n 2 "$WORK/plugin.err")")"
  elif ! install_plugin "$WORK/plugin-pkg" tenantfs 2>"$WORK/plugin.err"; then
    PLUGIN_WHY="plugin install failed: $(sanitize "$(tail -n 3 "$WORK/plugin.err")")"
  elif ! out=$("$TFSBENCH" post "$(plugin_socket)" /tenantfs/v1/tenants/add \
    "{\"name\":\"bench\",\"uid\":$TUID,\"gid\":$TGID,\"groups\":[]}" 2>&1); then
    PLUGIN_WHY="tenants/add through the plugin socket failed: $(sanitize "$out")"
  elif ! docker volume create -d tenantfs -o tenant=bench bench-tfs >/dev/null 2>"$WORK/plugin.err"; then
    PLUGIN_WHY="docker volume create -d tenantfs failed: $(sanitize "$(tail -n 1 "$WORK/plugin.err")")"
  fi

  # One warm-up run each (image and layer caches), then interleaved runs.
  local i v local_ms=() tfs_ms=() fails=""
  time_docker_run bench-local >/dev/null
  [[ -z "$PLUGIN_WHY" ]] && time_docker_run bench-tfs >/dev/null
  log "docker: $DRUNS runs per driver"
  for ((i = 0; i < DRUNS; i++)); do
    v=$(time_docker_run bench-local)
    [[ $v == FAIL* ]] && fails+="local: $v; " || local_ms+=("$v")
    if [[ -z "$PLUGIN_WHY" ]]; then
      v=$(time_docker_run bench-tfs)
      [[ $v == FAIL* ]] && fails+="tenantfs: $v; " || tfs_ms+=("$v")
    fi
  done
  DOCKER_LOCAL=$(median_of <<<"${local_ms[*]}")
  DOCKER_TFS=$(median_of <<<"${tfs_ms[*]:-}")
  DOCKER_LOCAL_RUNS=$(IFS=,; echo "${local_ms[*]}")
  DOCKER_TFS_RUNS=$(IFS=,; echo "${tfs_ms[*]:-}")
  DOCKER_FAILS=$fails
  # Leave the volumes to the teardown, which removes them in the right order.
  return 0
}

DOCKER_WHY=""
if docker_part; then
  put "docker.local.median_ms" "${DOCKER_LOCAL:-failed: $DOCKER_FAILS}"
  if [[ -n "$PLUGIN_WHY" ]]; then
    echo "skipped: docker run with a tenantfs volume: $PLUGIN_WHY"
    put "docker.tenantfs.median_ms" "skipped: $PLUGIN_WHY"
  elif [[ -n "$DOCKER_TFS" ]]; then
    put "docker.tenantfs.median_ms" "$DOCKER_TFS"
    [[ -n "$DOCKER_LOCAL" ]] &&
      put "docker.overhead_ms" "$(awk -v a="$DOCKER_TFS" -v b="$DOCKER_LOCAL" 'BEGIN { printf "%.1f", a - b }')"
  else
    put "docker.tenantfs.median_ms" "failed: $DOCKER_FAILS"
  fi
  [[ -n "$DOCKER_FAILS" ]] && log "docker run failures: $DOCKER_FAILS"
else
  echo "skipped: docker benchmarks: $DOCKER_WHY"
  put "docker" "skipped: $DOCKER_WHY"
fi
if ((DOCKER_STARTED)); then
  teardown_private_dockerd 2>"$WORK/teardown.err" ||
    { log "teardown of the private dockerd reported a problem:"; cat "$WORK/teardown.err" >&2; }
  DOCKER_STARTED=0
fi
LOAD_END=$(load_avg)

# ---- report ----------------------------------------------------------------

target_of() {
  case $1 in
    api.mount_unmount.median_ms) echo "<= 50 ms" ;;
    api.list.median_ms) echo "<= 100 ms" ;;
    docker.overhead_ms) echo "<= 100 ms" ;;
  esac
}
echo
echo "API and Docker benchmarks (load at start $LOAD_START, at end $LOAD_END)"
printf '%-44s %14s   %s\n' "figure" "value" "product target"
for k in "${ORDER[@]}"; do
  printf '%-44s %14s   %s\n' "$k" "${R[$k]}" "$(target_of "$k")"
done
echo "  api.*: one HTTP request per connection over the plugin socket; mount = a real mapper mount"
echo "  api.list.*: List with $NVOL volumes in the store ($LISTS calls)"
echo "  docker.*: wall time of 'docker run --rm --network none -v VOL:/d busybox true', $DRUNS runs per driver"

mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/api-$STAMP.json
{
  printf '{"suite":"api","started":"%s","machine":{%s,"load_start":"%s","load_end":"%s"},' \
    "$STAMP" "$(machine_json)" "$LOAD_START" "$LOAD_END"
  printf '"config":{"cycles":%d,"volumes":%d,"list_reps":%d,"docker_runs":%d,"quick":%s},' \
    "$CYCLES" "$NVOL" "$LISTS" "$DRUNS" "$([[ $QUICK == 1 ]] && echo true || echo false)"
  printf '%s,' "$(source_json)"
  printf '"docker_runs_ms":{"local":[%s],"tenantfs":[%s]},' "${DOCKER_LOCAL_RUNS:-}" "${DOCKER_TFS_RUNS:-}"
  printf '"results":{'
  sep=""
  for k in "${ORDER[@]}"; do
    v=${R[$k]}
    if [[ "$v" =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
      printf '%s"%s":%s' "$sep" "$k" "$v"
    else
      printf '%s"%s":"%s"' "$sep" "$k" "$(sanitize "$v")"
    fi
    sep=","
  done
  printf '}}\n'
} >"$OUT"
echo "results: $OUT"
