#!/usr/bin/env bash
# One FUSE round trip, by request path and by the CPU the caller runs on.
#
# For each request path (RTT_LOOPS, default "uring per-cpu shared") a strict
# mapper serves a fresh tmpfs-backed directory; `tfsbench xattr FILE
# user.rtt N` (N fgetxattr calls on one open file, each one GETXATTR round
# trip answered by one getxattr in the mapper) runs pinned to each CPU in
# turn, RTT_RUNS times; the table shows the median µs per call, and the
# native getxattr on the backing file as the floor. Needs root; switches
# enable_uring to Y for the run and restores it.
#
#   sudo bench/rtt.sh                      # all paths, every CPU
#   sudo RTT_CALLS=5000 bench/rtt.sh       # fewer calls per run
#   sudo TENANTFS_BIN=/other/tenantfs bench/rtt.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "rtt needs root (mounts, enable_uring)"
command -v taskset >/dev/null || die "taskset is missing (package util-linux)"
TENANTFS=$(find_tenantfs) || die "no tenantfs binary in $BUILD_DIR (build it first)"
TFSBENCH=$(build_tfsbench)
read -r -a LOOPS <<<"${RTT_LOOPS:-uring per-cpu shared}"
CALLS=${RTT_CALLS:-20000}
RUNS=${RTT_RUNS:-3}
TUID=${BENCH_UID:-7001}
mapfile -t CPUS < <(taskset -pc $$ | sed 's/.*: //' | tr ',' '\n' |
  awk -F- '{ if (NF == 2) for (i = $1; i <= $2; i++) print i; else print $1 }')

URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_SAVED=""
if [[ -w "$URING_PARAM" ]]; then
  URING_SAVED=$(cat "$URING_PARAM")
  echo Y >"$URING_PARAM"
fi
WORK=$(mktemp -d /tmp/tenantfs-rtt.XXXXXX)
PID=""
cleanup() {
  if [[ -n "$PID" ]]; then
    umount "$WORK/mnt" 2>/dev/null || umount -l "$WORK/mnt" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  umount "$WORK/tmpfs" 2>/dev/null || true
  rm -rf "$WORK"
  [[ -z "$URING_SAVED" ]] || echo "$URING_SAVED" >"$URING_PARAM"
}
trap cleanup EXIT

mkdir -p "$WORK/tmpfs" "$WORK/mnt"
mount -t tmpfs -o size=16m,mode=0755 tenantfs-rtt "$WORK/tmpfs"
mkdir "$WORK/tmpfs/data"
: >"$WORK/tmpfs/data/f"
setfattr -n user.rtt -v 1 "$WORK/tmpfs/data/f" 2>/dev/null || true
chown -R "$TUID:$TUID" "$WORK/tmpfs/data"

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "FAIL" }'; }

# rtt_on CPU FILE: median µs per call of RUNS runs pinned to CPU.
rtt_on() {
  local cpu=$1 file=$2 r
  for ((r = 0; r < RUNS; r++)); do
    taskset -c "$cpu" "$TFSBENCH" xattr "$file" user.rtt "$CALLS" | sed -n 's/^us_per_call //p'
  done | median
}

header="path"
for c in "${CPUS[@]}"; do header+=$'\t'"caller on CPU $c"; done
echo "tenantfs round trip (fgetxattr user.*), µs per call, median of $RUNS x $CALLS; $(uname -r), load $(load_avg)"
printf '%s\n' "$header"
row="native"
for c in "${CPUS[@]}"; do row+=$'\t'$(rtt_on "$c" "$WORK/tmpfs/data/f"); done
printf '%s\n' "$row"

for loop in "${LOOPS[@]}"; do
  fifo=$WORK/ready.fifo
  rm -f "$fifo" && mkfifo "$fifo"
  "$TENANTFS" mapper --backing "$WORK/tmpfs/data" --mountpoint "$WORK/mnt" --uid "$TUID" \
    --gid "$TUID" --name rtt --request-loop "$loop" --ready-fd 3 3>"$fifo" \
    >>"$WORK/mapper.log" 2>&1 &
  PID=$!
  line=""
  read -r -t 30 line <"$fifo" || true
  if [[ "$line" != ready && "$line" != "ready "* ]]; then
    printf '%s\tnot served: %s\n' "$loop" "${line:-no answer; $(tail -n 1 "$WORK/mapper.log")}"
    wait "$PID" 2>/dev/null || true
    PID=""
    continue
  fi
  row="$loop"
  for c in "${CPUS[@]}"; do row+=$'\t'$(rtt_on "$c" "$WORK/mnt/f"); done
  printf '%s\t(%s)\n' "$row" "$line"
  umount "$WORK/mnt"
  wait "$PID" 2>/dev/null || true
  PID=""
done
