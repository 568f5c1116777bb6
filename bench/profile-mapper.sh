#!/usr/bin/env bash
# Where the mapper spends its system calls (root; not part of `make bench`).
# Mounts `tenantfs mapper` on a temporary backing directory in each cache
# mode, attaches `strace -c -f` to it and runs one workload as root against
# the mount; prints strace's summary per mode. strace slows the mapper down:
# the counts are what matters here, not the times.
#
#   bench/profile-mapper.sh [small|tree|seq] (default small)
#     small  create, stat, ls -l, unlink of BENCH_FILES [2000] 1 KiB files
#     tree   untar + ls -lR + rm -r of a BENCH_TREE_FILES [2000] file tree
#     seq    write then read a 256 MiB file with 1 MiB blocks
#   BENCH_MODES [strict exclusive]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $(id -u) -eq 0 ]] || die "needs root"
command -v strace >/dev/null || die "strace is missing (apt-get install strace)"
WORKLOAD=${1:-small}
NFILES=${BENCH_FILES:-2000}
NTREE=${BENCH_TREE_FILES:-2000}
TFSBENCH=$(build_tfsbench)
TENANTFS=$(find_tenantfs) || die "no tenantfs binary in $BUILD_DIR"
WORK=$(mktemp -d /var/tmp/tenantfs-profile.XXXXXX)
MAPPER=""
STRACE=""
cleanup() {
  [[ -n "$STRACE" ]] && { kill -INT "$STRACE" 2>/dev/null || true; wait "$STRACE" 2>/dev/null || true; }
  mountpoint -q "$WORK/mnt" 2>/dev/null && { fusermount3 -u "$WORK/mnt" || umount -l "$WORK/mnt" || true; }
  [[ -n "$MAPPER" ]] && { kill "$MAPPER" 2>/dev/null || true; wait "$MAPPER" 2>/dev/null || true; }
  mountpoint -q "$WORK/mnt" 2>/dev/null || rm -rf "$WORK"
}
trap cleanup EXIT

if [[ $WORKLOAD == tree ]]; then
  mkdir "$WORK/gen"
  "$TFSBENCH" gen-tree "$WORK/gen" "$NTREE"
  tar -C "$WORK/gen" --owner=7001 --group=7001 --numeric-owner -cf "$WORK/tree.tar" src
  rm -rf "$WORK/gen"
fi

workload() {
  local d=$1
  case $WORKLOAD in
    small)
      mkdir "$d/small"
      "$TFSBENCH" create "$d/small" "$NFILES" 1024 | sed 's/^/  create /'
      "$TFSBENCH" stat "$d/small" "$NFILES" | sed 's/^/  stat /'
      ls -l "$d/small" >/dev/null
      "$TFSBENCH" unlink "$d/small" "$NFILES" | sed 's/^/  unlink /'
      rmdir "$d/small"
      ;;
    tree)
      mkdir "$d/tree"
      tar -xf "$WORK/tree.tar" -C "$d/tree"
      ls -lR "$d/tree" >/dev/null
      rm -r "$d/tree"
      ;;
    seq)
      dd if=/dev/zero of="$d/seq.dat" bs=1M count=256 conv=fsync status=none
      drop_caches
      dd if="$d/seq.dat" of=/dev/null bs=1M status=none
      rm -f "$d/seq.dat"
      ;;
    *) die "unknown workload $WORKLOAD" ;;
  esac
}

for mode in ${BENCH_MODES:-strict exclusive}; do
  mkdir -p "$WORK/backing" "$WORK/mnt"
  chown 7001:7001 "$WORK/backing" && chmod 0700 "$WORK/backing"
  mkfifo "$WORK/ready"
  "$TENANTFS" mapper --backing "$WORK/backing" --mountpoint "$WORK/mnt" --uid 7001 --gid 7001 \
    --cache "$mode" --name profile --ready-fd 3 3>"$WORK/ready" >"$WORK/mapper.log" 2>&1 &
  MAPPER=$!
  read -r -t 30 line <"$WORK/ready" || true
  rm -f "$WORK/ready"
  [[ "${line:-}" == ready ]] || die "mapper not ready: ${line:-} $(tail -n 3 "$WORK/mapper.log")"
  strace -c -f -p "$MAPPER" -o "$WORK/strace.$mode" &
  STRACE=$!
  sleep 1
  echo "== cache $mode, workload $WORKLOAD (timings under strace, not comparable)"
  workload "$WORK/mnt"
  kill -INT "$STRACE"; wait "$STRACE" 2>/dev/null || true
  STRACE=""
  head -n 25 "$WORK/strace.$mode"
  fusermount3 -u "$WORK/mnt"
  wait "$MAPPER" || log "mapper exited with $?"
  MAPPER=""
  rm -rf "$WORK/backing"
done
