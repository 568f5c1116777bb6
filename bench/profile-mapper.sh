#!/usr/bin/env bash
# Where the mapper spends its system calls, or which FUSE requests the kernel
# sends it (root; not part of `make bench`). Mounts `tenantfs mapper` on a
# temporary backing directory in each cache mode, attaches strace to it and
# runs one workload as root against the mount; prints, per mode, strace's
# summary of the mapper's system calls or the count of FUSE requests by
# opcode. strace slows the mapper down: the counts are what matters here,
# not the times.
#
#   bench/profile-mapper.sh [small|tree|seq] [syscalls|requests]
#     small  create, stat, ls -l, unlink of BENCH_FILES [2000] 1 KiB files
#     tree   untar + ls -lR + rm -r of a BENCH_TREE_FILES [2000] file tree
#     seq    write then read a 256 MiB file with 1 MiB blocks
#     syscalls (default)  strace -c -f of the mapper
#     requests            FUSE requests by opcode, decoded from the header
#                         of each request libfuse reads (from /dev/fuse or
#                         from its splice pipe)
#   BENCH_MODES [strict exclusive]
#   BENCH_MAPPER_ARGS  more mapper options; `requests` needs a /dev/fuse
#                      loop, so it adds --request-loop per-cpu
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $(id -u) -eq 0 ]] || die "needs root"
command -v strace >/dev/null || die "strace is missing (apt-get install strace)"
WORKLOAD=${1:-small}
WHAT=${2:-syscalls}
[[ $WHAT == syscalls || $WHAT == requests ]] || die "unknown profile $WHAT (syscalls or requests)"
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

# FUSE requests by opcode in an `strace -xx -s 8 -e trace=read` log of the
# mapper: a read whose first 4 bytes (the request length) are at least what
# it returned, and at least a fuse_in_header (40 bytes), read a request
# header; bytes 4-7 are the opcode. Reads of file data fail the length test
# (or decode to an opcode that never comes, and show up as a number).
count_requests() {
  awk '
    function digit(c) { return index("0123456789abcdef", c) - 1 }
    function byte(s, i) { return digit(substr(s, 4 * i + 3, 1)) * 16 + digit(substr(s, 4 * i + 4, 1)) }
    BEGIN {
      split("LOOKUP FORGET GETATTR SETATTR READLINK SYMLINK 7 MKNOD MKDIR UNLINK RMDIR " \
            "RENAME LINK OPEN READ WRITE STATFS RELEASE 19 FSYNC SETXATTR GETXATTR " \
            "LISTXATTR REMOVEXATTR FLUSH INIT OPENDIR READDIR RELEASEDIR FSYNCDIR GETLK " \
            "SETLK SETLKW ACCESS CREATE INTERRUPT BMAP DESTROY IOCTL POLL NOTIFY_REPLY " \
            "BATCH_FORGET FALLOCATE READDIRPLUS RENAME2 LSEEK COPY_FILE_RANGE", name, " ")
      # Eight \xNN bytes (spelled out: mawk has no {8}).
      header = "(read[(][0-9]+, |read resumed>)\""
      for (i = 0; i < 8; i++) header = header "[\\\\]x[0-9a-f][0-9a-f]"
    }
    match($0, header) {
      s = substr($0, RSTART, RLENGTH)
      s = substr(s, index(s, "\"") + 1)
      ret = $NF + 0
      len = byte(s, 0) + 256 * byte(s, 1) + 65536 * byte(s, 2) + 16777216 * byte(s, 3)
      if (ret < 40 || len < ret) next
      op = byte(s, 4) + 256 * byte(s, 5)
      count[(op in name) ? name[op] : op]++
      total++
    }
    END {
      for (k in count) printf "  %-14s %8d\n", k, count[k] | "sort -k2,2nr"
      close("sort -k2,2nr")
      printf "  %-14s %8d\n", "total", total
    }' "$1"
}

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

# Requests over io_uring never pass through read(2) on /dev/fuse.
loop_args=""
[[ $WHAT == requests ]] && loop_args="--request-loop per-cpu"
for mode in ${BENCH_MODES:-strict exclusive}; do
  mkdir -p "$WORK/backing" "$WORK/mnt"
  chown 7001:7001 "$WORK/backing" && chmod 0700 "$WORK/backing"
  mkfifo "$WORK/ready"
  "$TENANTFS" mapper --backing "$WORK/backing" --mountpoint "$WORK/mnt" --uid 7001 --gid 7001 \
    --cache "$mode" --name profile ${BENCH_MAPPER_ARGS:-} $loop_args --ready-fd 3 3>"$WORK/ready" >"$WORK/mapper.log" 2>&1 &
  MAPPER=$!
  read -r -t 30 line <"$WORK/ready" || true
  rm -f "$WORK/ready"
  [[ "${line:-}" == ready* ]] || die "mapper not ready: ${line:-} $(tail -n 3 "$WORK/mapper.log")"
  if [[ $WHAT == requests ]]; then
    strace -f -xx -s 8 -e trace=read -p "$MAPPER" -o "$WORK/strace.$mode" 2>/dev/null &
  else
    strace -c -f -p "$MAPPER" -o "$WORK/strace.$mode" &
  fi
  STRACE=$!
  sleep 1
  echo "== cache $mode, workload $WORKLOAD (timings under strace, not comparable)"
  workload "$WORK/mnt"
  kill -INT "$STRACE"; wait "$STRACE" 2>/dev/null || true
  STRACE=""
  if [[ $WHAT == requests ]]; then
    echo "FUSE requests by opcode:"
    count_requests "$WORK/strace.$mode"
  else
    head -n 25 "$WORK/strace.$mode"
  fi
  fusermount3 -u "$WORK/mnt"
  wait "$MAPPER" || log "mapper exited with $?"
  MAPPER=""
  rm -rf "$WORK/backing"
done
