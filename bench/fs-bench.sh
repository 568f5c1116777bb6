#!/usr/bin/env bash
# Filesystem benchmarks: the native backing directory, tenantfs in each cache
# mode, and bindfs with the equivalent mapping (default and --multithreaded),
# side by side, on one backing filesystem, in one run. Needs root.
#
# Every target serves a fresh directory of BENCH_DIR (or of the RAM-backed
# ext4 of BENCH_FS=ram), owned by the tenant (BENCH_UID:BENCH_GID, mode
# 0700). The benchmark processes run as root against the mount, as a
# container's root would; against the native directory they run as root too
# (so native files end up owned by root).
#
# Environment (defaults in brackets; BENCH_QUICK=1 shrinks everything):
#   BENCH_RUNS [3 | quick 1]          runs per target; the median is reported
#   BENCH_SIZE [1g | quick 128m]      fio file size
#   BENCH_RUNTIME [10 | quick 3]      seconds of each 4 KiB random job
#   BENCH_FILES [10000 | quick 1000]  small files for create/stat/ls -l/unlink
#   BENCH_TREE_FILES [5000 | quick 500]  files of the generated source tree
#   BENCH_TARGETS [native tenantfs-strict tenantfs-exclusive bindfs bindfs-mt]
#                 a tenantfs target may add mapper options after colons:
#                 tenantfs-strict:request-loop=uring:passthrough=off runs
#                 `tenantfs mapper ... --request-loop uring --passthrough off`;
#                 before-strict, before-exclusive run BENCH_BEFORE_BIN (an
#                 older build) in the same run, for before/after rows
#   BENCH_BEFORE_BIN []               the older tenantfs binary for before-*
#   BENCH_PARTS [io files]            io: the fio jobs; files: the small-file
#                                     and tree rows
#   BENCH_URING [on]                  on: enable_uring=Y for the run (restored
#                                     at exit), so the default request loop
#                                     (auto) can pick io_uring; off: untouched
#   BENCH_FS [disk]                   disk: the backing directories live in
#                                     BENCH_DIR; ram: in a fresh ext4 on a
#                                     loop device over a sparse image in
#                                     /dev/shm (3 x BENCH_SIZE + 2 GiB),
#                                     unmounted and deleted at exit; BENCH_DIR
#                                     is then ignored
#   BENCH_DIR [/var/tmp]              where the backing directories live
#   BENCH_UID, BENCH_GID [7001]       the tenant
#   BUILD_DIR [build], TENANTFS_BIN   where the tenantfs binary is
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "fs-bench needs root (mounts, drop_caches, benchmark as root)"

QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
  RUNS=${BENCH_RUNS:-1} SIZE=${BENCH_SIZE:-128m} RUNTIME=${BENCH_RUNTIME:-3}
  NFILES=${BENCH_FILES:-1000} NTREE=${BENCH_TREE_FILES:-500}
else
  RUNS=${BENCH_RUNS:-3} SIZE=${BENCH_SIZE:-1g} RUNTIME=${BENCH_RUNTIME:-10}
  NFILES=${BENCH_FILES:-10000} NTREE=${BENCH_TREE_FILES:-5000}
fi
PARTS=${BENCH_PARTS:-io files}
read -r -a TARGETS <<<"${BENCH_TARGETS:-native tenantfs-strict tenantfs-exclusive bindfs bindfs-mt}"
TUID=${BENCH_UID:-7001}
TGID=${BENCH_GID:-7001}

for tool in fio bindfs fusermount3 tar; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/install-deps.sh test"
done
TFSBENCH=$(build_tfsbench)
TENANTFS=$(find_tenantfs || true)
BEFORE_BIN=${BENCH_BEFORE_BIN:-}
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_SAVED=""
if [[ "${BENCH_URING:-on}" == on && -w "$URING_PARAM" ]]; then
  URING_SAVED=$(cat "$URING_PARAM")
  echo Y >"$URING_PARAM"
fi

BENCH_FS=${BENCH_FS:-disk}
[[ $BENCH_FS == disk || $BENCH_FS == ram ]] || die "BENCH_FS=$BENCH_FS: use disk or ram"
WORK=""      # the run's directory, under BENCH_DIR or RAM_MNT
RAM_IMG=""   # BENCH_FS=ram: the ext4 image in /dev/shm
RAM_MNT=""   # BENCH_FS=ram: where it is loop-mounted
MOUNTED=()   # mountpoints we mounted
DAEMONS=()   # pids of mappers/bindfs we started

# Whether DIR is a mountpoint; unlike `mountpoint -q`, also true for a FUSE
# mount whose daemon died (stat fails there: "Transport endpoint is not connected").
is_mounted() { findmnt -n -M "$1" >/dev/null 2>&1; }

cleanup() {
  local m p i
  set +e   # every step runs, whatever failed before
  for m in "${MOUNTED[@]}"; do
    is_mounted "$m" && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
  done
  for p in "${DAEMONS[@]}"; do
    kill -0 "$p" 2>/dev/null && { kill "$p" 2>/dev/null || true; }
  done
  for p in "${DAEMONS[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -z "$WORK" ]] || rm -rf "$WORK"
  if [[ -n "$RAM_MNT" ]]; then
    for ((i = 0; i < 50; i++)); do
      is_mounted "$RAM_MNT" || break
      umount "$RAM_MNT" 2>/dev/null || sleep 0.1
    done
    if is_mounted "$RAM_MNT"; then
      echo "bench: $RAM_MNT busy; detaching it lazily" >&2
      umount -l "$RAM_MNT" 2>/dev/null
    fi
    rmdir "$RAM_MNT" 2>/dev/null
  fi
  if [[ -n "$RAM_IMG" ]]; then
    # mount -o loop frees its loop device at umount; detach any left over.
    for m in $(losetup -j "$RAM_IMG" -O NAME -n 2>/dev/null); do losetup -d "$m" 2>/dev/null; done
    rm -f "$RAM_IMG"
  fi
  [[ -z "$URING_SAVED" ]] || echo "$URING_SAVED" >"$URING_PARAM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Bytes of a fio size (1g, 128m, 512MiB, 4096...; fio's units are 1024-based).
size_bytes() {
  local n u
  [[ ${1,,} =~ ^([0-9]+)([kmgt]?)i?b?$ ]] || die "cannot read the size '$1'"
  n=${BASH_REMATCH[1]} u=${BASH_REMATCH[2]}
  case $u in k) n=$((n << 10)) ;; m) n=$((n << 20)) ;; g) n=$((n << 30)) ;; t) n=$((n << 40)) ;; esac
  echo "$n"
}

# BENCH_FS=ram: a sparse ext4 image in /dev/shm, loop-mounted on a fresh
# directory; the run's directory is made in it. Room for the fio file, the
# tree and its archive, with margin: ext4 does not hand freed blocks back to
# /dev/shm, so the image may fill up to its full size.
if [[ $BENCH_FS == ram ]]; then
  [[ -z "${BENCH_DIR:-}" ]] || echo "BENCH_FS=ram: BENCH_DIR=$BENCH_DIR ignored, the backing directories live in the RAM-backed ext4"
  command -v mkfs.ext4 >/dev/null || die "BENCH_FS=ram needs mkfs.ext4 (e2fsprogs)"
  ram_bytes=$((3 * $(size_bytes "$SIZE") + (2 << 30)))
  shm_free=$(df -B1 --output=avail /dev/shm | tail -n1 | tr -d ' ')
  mem_free=$(awk '/^MemAvailable/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)
  ((shm_free >= ram_bytes)) ||
    die "BENCH_FS=ram needs $((ram_bytes >> 20)) MiB in /dev/shm (3 x BENCH_SIZE + 2 GiB), only $((shm_free >> 20)) MiB free there: lower BENCH_SIZE or use BENCH_FS=disk"
  ((mem_free >= ram_bytes)) ||
    die "BENCH_FS=ram needs $((ram_bytes >> 20)) MiB of memory (3 x BENCH_SIZE + 2 GiB), only $((mem_free >> 20)) MiB available: lower BENCH_SIZE or use BENCH_FS=disk"
  # Names first, then the files: cleanup knows them before they exist.
  RAM_IMG=$(mktemp -u /dev/shm/tenantfs-bench.XXXXXX.img)
  RAM_MNT=$(mktemp -u -d "${TMPDIR:-/tmp}/tenantfs-bench-ram.XXXXXX")
  (set -C && : >"$RAM_IMG") || { RAM_IMG=""; die "cannot create the image in /dev/shm"; }
  mkdir -m 0755 "$RAM_MNT" || { RAM_MNT=""; die "cannot create a mountpoint for the image"; }
  truncate -s "$ram_bytes" "$RAM_IMG"
  # Inode tables and journal written now: no lazy init in the background
  # during the run (stays sparse: mkfs punches holes rather than writing zeros).
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$RAM_IMG" || die "mkfs.ext4 of $RAM_IMG failed"
  mount -o loop "$RAM_IMG" "$RAM_MNT" || die "cannot loop-mount $RAM_IMG on $RAM_MNT"
  WORK=$(mktemp -d "$RAM_MNT/tenantfs-bench.XXXXXX")
  BACKING_FS="$(findmnt -no FSTYPE "$RAM_MNT") (RAM-backed loop device)"
  MEDIUM="the RAM-backed loop device"
else
  WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/tenantfs-bench.XXXXXX")
  BACKING_FS=$(df --output=fstype "$WORK" | tail -n1)
  MEDIUM="disk"
fi

RAW=$WORK/raw.tsv
: >"$RAW"

# ---- targets ---------------------------------------------------------------

# Why a target cannot run, or nothing.
target_unavailable() {
  case $1 in
    native | bindfs | bindfs-mt) ;;
    tenantfs-strict* | tenantfs-exclusive*)
      [[ -n "$TENANTFS" ]] || { echo "no tenantfs binary in $BUILD_DIR (build it first)"; return; }
      "$TENANTFS" mapper --help 2>&1 | grep -q -- --backing ||
        echo "this tenantfs build has no working 'mapper' subcommand yet"
      ;;
    before-strict* | before-exclusive*)
      [[ -n "$BEFORE_BIN" && -x "$BEFORE_BIN" ]] || echo "BENCH_BEFORE_BIN names no tenantfs binary"
      ;;
    *) echo "unknown target $1" ;;
  esac
}

wait_mounted() {  # wait_mounted DIR PID
  local i
  for ((i = 0; i < 200; i++)); do
    mountpoint -q "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# mount_target TARGET BACKING MNT: serves BACKING at MNT; sets DAEMON_PID, or
# MOUNT_ERR and fails. Runs in the main shell (never in $(...)): the daemon
# must be our child.
mount_target() {
  local target=$1 backing=$2 mnt=$3 line=""
  DAEMON_PID="" MOUNT_ERR=""
  case $target in
    native) return 0 ;;
    tenantfs-* | before-*)
      # tenantfs-MODE[:option=value...]: the options become mapper flags.
      local fifo=$WORK/ready.fifo bin=$TENANTFS spec=${target#*-} opt extra=()
      [[ $target == before-* ]] && bin=$BEFORE_BIN
      IFS=: read -r -a opts <<<"$spec"
      for opt in "${opts[@]:1}"; do extra+=("--${opt%%=*}" "${opt#*=}"); done
      rm -f "$fifo" && mkfifo "$fifo"
      "$bin" mapper --backing "$backing" --mountpoint "$mnt" --uid "$TUID" --gid "$TGID" \
        --cache "${opts[0]}" --name "bench-${opts[0]}" --ready-fd 3 "${extra[@]}" \
        3>"$fifo" >>"$WORK/mapper.log" 2>&1 &
      DAEMON_PID=$!
      DAEMONS+=("$DAEMON_PID")
      MOUNTED+=("$mnt")
      read -r -t 30 line <"$fifo" || true
      rm -f "$fifo"
      [[ "$line" == ready* ]] && log "$target: $line"
      # "ready", possibly followed by fields ("ready request-loop=uring ...")
      [[ "$line" == ready || "$line" == "ready "* ]] || { MOUNT_ERR="mapper did not become ready: ${line:-no answer} $(tail -n 3 "$WORK/mapper.log" 2>/dev/null)"; return 1; }
      ;;
    bindfs | bindfs-mt)
      local mt=()
      [[ $target == bindfs-mt ]] && mt=(--multithreaded)
      bindfs -f "${mt[@]}" --force-user="$TUID" --force-group="$TGID" \
        --create-for-user="$TUID" --create-for-group="$TGID" -o allow_other \
        "$backing" "$mnt" >>"$WORK/bindfs.log" 2>&1 &
      DAEMON_PID=$!
      DAEMONS+=("$DAEMON_PID")
      MOUNTED+=("$mnt")
      wait_mounted "$mnt" "$DAEMON_PID" || { MOUNT_ERR="bindfs did not mount: $(tail -n 3 "$WORK/bindfs.log")"; return 1; }
      ;;
  esac
}

unmount_target() {  # unmount_target MNT
  local mnt=$1 i
  [[ -n "$DAEMON_PID" ]] || return 0
  if is_mounted "$mnt"; then
    fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || umount -l "$mnt" || true
  fi
  for ((i = 0; i < 200; i++)); do
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$DAEMON_PID" 2>/dev/null; then
    log "daemon $DAEMON_PID still running after unmount; terminating it"
    kill "$DAEMON_PID" 2>/dev/null || true
  fi
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=""
}

# ---- measurements ----------------------------------------------------------

rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$CUR_TARGET" "$CUR_RUN" "$2" >>"$RAW"; }

# fio_job DIR KIND(bw|iops) DIRECTION(read|write) fio-args... -> number or "FAIL msg"
fio_job() {
  local dir=$1 kind=$2 dirn=$3 out err rc f
  shift 3
  err=$WORK/fio.err
  rc=0
  out=$(cd "$dir" && fio --name=bench --filename=fio.dat --ioengine=psync --numjobs=1 \
    --output-format=terse --terse-version=3 "$@" 2>"$err") || rc=$?
  # fio catches Ctrl-C and exits (128), so bash would carry on: end the run.
  ((rc < 128)) || kill -TERM $$
  out=$(grep '^3;' <<<"$out" | head -n1 || true)
  IFS=';' read -r -a f <<<"$out"
  if ((rc != 0)) || [[ -z "$out" ]] || [[ "${f[4]:-1}" != 0 ]]; then
    echo "FAIL fio exit $rc error ${f[4]:-?}: $(sanitize "$(grep -v '^$' "$err" | tail -n 2)")"
    return
  fi
  # terse v3: read bw KiB/s = field 7, read iops = 8; write bw = 48, write iops = 49
  local idx
  case $kind/$dirn in
    bw/read) idx=6 ;; iops/read) idx=7 ;; bw/write) idx=47 ;; iops/write) idx=48 ;;
  esac
  if [[ $kind == bw ]]; then
    awk -v v="${f[$idx]}" 'BEGIN { printf "%.1f", v / 1024 }'
  else
    awk -v v="${f[$idx]}" 'BEGIN { printf "%.0f", v }'
  fi
}

# timed CMD...: elapsed seconds, or "FAIL msg"
timed() {
  local t0 t1 rc=0
  t0=$(now_us)
  "$@" >/dev/null 2>"$WORK/cmd.err" || rc=$?
  t1=$(now_us)
  if ((rc != 0)); then
    echo "FAIL $1 exit $rc: $(sanitize "$(head -n 2 "$WORK/cmd.err")")"
  else
    us_to_s "$t0" "$t1"
  fi
}

tfs() {  # tfs ARGS...: runs tfsbench, prints its seconds or "FAIL msg"
  local out rc=0
  out=$("$TFSBENCH" "$@" 2>"$WORK/cmd.err") || rc=$?
  if ((rc != 0)); then
    echo "FAIL $(sanitize "$(head -n 2 "$WORK/cmd.err")")"
  else
    sed -n 's/^seconds //p' <<<"$out"
  fi
}

ls_l() { ls -l "$1" >/dev/null; }

run_suite() {  # run_suite DIR
  local d=$1
  [[ " $PARTS " == *" io "* ]] && run_io "$d"
  [[ " $PARTS " == *" files "* ]] && run_files "$d"
  return 0
}

run_io() {  # run_io DIR
  local d=$1
  rm -f "$d/fio.dat"
  rec seq-write "$(fio_job "$d" bw write --rw=write --bs=1M --size="$SIZE" --end_fsync=1)"
  drop_caches
  rec seq-read-cold "$(fio_job "$d" bw read --rw=read --bs=1M --size="$SIZE")"
  rec seq-read-warm "$(fio_job "$d" bw read --rw=read --bs=1M --size="$SIZE" --invalidate=0)"
  rec rand-read-4k "$(fio_job "$d" iops read --rw=randread --bs=4k --size="$SIZE" --invalidate=0 \
    --norandommap --randrepeat=1 --time_based --runtime="$RUNTIME")"
  # --invalidate=0 as for the reads: fio's default drops the file's pages
  # (POSIX_FADV_DONTNEED) first, which a FUSE mount never passes on, so
  # native wrote into fresh 4 KiB folios and tenantfs into the large folios
  # the sequential rows left in the backing file's cache, where ext4 walks
  # every block of the folio per write (bench/README.md, seventh round).
  rec rand-write-4k "$(fio_job "$d" iops write --rw=randwrite --bs=4k --size="$SIZE" --invalidate=0 \
    --norandommap --randrepeat=1 --time_based --runtime="$RUNTIME")"
  sync
  rm -f "$d/fio.dat"
  rec seq-write-direct "$(fio_job "$d" bw write --rw=write --bs=1M --size="$SIZE" --direct=1 --end_fsync=1)"
  drop_caches
  rec seq-read-direct "$(fio_job "$d" bw read --rw=read --bs=1M --size="$SIZE" --direct=1)"
  rm -f "$d/fio.dat"
  sync
}

run_files() {  # run_files DIR
  local d=$1
  mkdir "$d/small"
  rec create "$(tfs create "$d/small" "$NFILES" 1024)"
  rec stat "$(tfs stat "$d/small" "$NFILES")"
  rec ls-l "$(timed ls_l "$d/small")"
  rec unlink "$(tfs unlink "$d/small" "$NFILES")"
  rmdir "$d/small" 2>/dev/null || rm -rf "$d/small"
  sync

  mkdir "$d/tree"
  rec untar "$(timed tar -xf "$WORK/tree.tar" -C "$d/tree")"
  rec ls-lR "$(timed ls -lR "$d/tree")"
  rec rm-r "$(timed rm -r "$d/tree")"
  rm -rf "$d/tree"
  sync
}

META=$WORK/meta.tsv
cat >"$META" <<EOF
seq-write	MiB/s	higher	sequential 1 MiB writes of a new $SIZE file, buffered, fsync at the end (to $MEDIUM)
seq-read-cold	MiB/s	higher	sequential 1 MiB reads of $SIZE after drop_caches (from $MEDIUM)
seq-read-warm	MiB/s	higher	the same read again, backing file in the page cache (FUSE: cache mode decides)
rand-read-4k	IOPS	higher	4 KiB random reads for ${RUNTIME}s over $SIZE, page cache warm (per-request cost)
rand-write-4k	IOPS	higher	4 KiB random buffered writes for ${RUNTIME}s over $SIZE, no fsync, warm file (per-request cost)
seq-write-direct	MiB/s	higher	sequential 1 MiB O_DIRECT writes of a new $SIZE file
seq-read-direct	MiB/s	higher	sequential 1 MiB O_DIRECT reads of $SIZE after drop_caches
create	s	lower	create $NFILES files of 1 KiB (open O_CREAT|O_EXCL, write, close)
stat	s	lower	stat the $NFILES files (caches as create left them)
ls-l	s	lower	ls -l of the directory of $NFILES files
unlink	s	lower	unlink the $NFILES files
untar	s	lower	tar -x of a generated source tree, $NTREE files of 200 B to 24 KiB, 40 per directory, 3 levels
ls-lR	s	lower	ls -lR of the extracted tree
rm-r	s	lower	rm -r of the extracted tree
EOF

# ---- main ------------------------------------------------------------------

log "work directory $WORK ($(df -h --output=source,fstype,size "$WORK" | tail -n1 | tr -s ' '); BENCH_FS=$BENCH_FS: $BACKING_FS)"
log "runs=$RUNS size=$SIZE random=${RUNTIME}s files=$NFILES tree=$NTREE targets=${TARGETS[*]}"
log "generating the source tree ($NTREE files)"
mkdir "$WORK/gen"
"$TFSBENCH" gen-tree "$WORK/gen" "$NTREE"
# Owned by the presented tenant ids: tar as root restores ownership, and a
# chown to the tenant is what every target accepts.
tar -C "$WORK/gen" --owner="$TUID" --group="$TGID" --numeric-owner --sort=name \
  --mtime=@1700000000 -cf "$WORK/tree.tar" src
rm -rf "$WORK/gen"

declare -A UNAVAILABLE
for t in "${TARGETS[@]}"; do
  why=$(target_unavailable "$t")
  if [[ -n "$why" ]]; then
    UNAVAILABLE[$t]=$why
    echo "skipped: $t: $why"
  fi
done

LOAD_START=$(load_avg)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((run = 1; run <= RUNS; run++)); do
  for t in "${TARGETS[@]}"; do
    CUR_TARGET=$t CUR_RUN=$run
    if [[ -n "${UNAVAILABLE[$t]:-}" ]]; then
      while IFS=$'\t' read -r test _; do rec "$test" "SKIP ${UNAVAILABLE[$t]}"; done <"$META"
      continue
    fi
    log "run $run/$RUNS: $t (load $(load_avg))"
    backing=$WORK/backing-$t mnt=$WORK/mnt-$t
    mkdir -p "$backing" "$mnt"
    chown "$TUID:$TGID" "$backing"
    chmod 0700 "$backing"
    dir=$mnt
    [[ $t == native ]] && dir=$backing
    if ! mount_target "$t" "$backing" "$mnt"; then
      echo "$t run $run: $MOUNT_ERR" >&2
      while IFS=$'\t' read -r test _; do rec "$test" "FAIL $(sanitize "$MOUNT_ERR")"; done <"$META"
      unmount_target "$mnt"
      continue
    fi
    printf '#load\t%s\t%s\t%s\n' "$t" "$run" "$(load_avg)" >>"$RAW"
    run_suite "$dir"
    unmount_target "$mnt"
    rm -rf "$backing"
  done
done
LOAD_END=$(load_avg)

mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS_DIR/fs-$STAMP.json
summarize "$RAW" "$META" "$WORK/tests.json" \
  "Filesystem benchmarks ($RUNS run(s); size $SIZE; backing $BACKING_FS; load at start $LOAD_START, at end $LOAD_END)" \
  "${TARGETS[@]}"
{
  printf '{"suite":"fs","started":"%s","finished":"%s",' "$STARTED" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '"machine":{%s,"load_start":"%s","load_end":"%s"},' "$(machine_json)" "$LOAD_START" "$LOAD_END"
  printf '"config":{"runs":%d,"size":"%s","random_runtime_s":%d,"files":%d,"tree_files":%d,"uid":%d,"gid":%d,"quick":%s,"bench_fs":"%s","backing_fs":"%s"},' \
    "$RUNS" "$SIZE" "$RUNTIME" "$NFILES" "$NTREE" "$TUID" "$TGID" "$([[ $QUICK == 1 ]] && echo true || echo false)" \
    "$BENCH_FS" "$BACKING_FS"
  printf '%s,' "$(source_json)"
  printf '"targets":["%s"],' "$(IFS=,; echo "${TARGETS[*]}" | sed 's/,/","/g')"
  printf '"loads":['
  grep '^#load' "$RAW" | awk -F'\t' '{ printf "%s{\"target\":\"%s\",\"run\":%s,\"load\":\"%s\"}", (NR > 1 ? "," : ""), $2, $3, $4 }'
  printf '],"tests":'
  cat "$WORK/tests.json"
  printf '}\n'
} >"$OUT"
echo "results: $OUT"
