#!/usr/bin/env bash
# Walks a volume of many files through a tenantfs mount (find, du, ls -lR)
# and reports how long each walk took, the most fds the mapper held while
# it ran, and every error the walks printed. The mapper keeps at most half
# its fd limit (--max-fds, default 65,536) open for looked-up files,
# however many files the kernel caches; this shows it on a real tree.
#
#   sudo bench/walk-many-files.sh [-n FILES] [--cache strict|exclusive]
#                                 [--max-fds N] [--dir SCRATCH] [--keep]
#
# FILES defaults to 1,000,000 (1,000 directories of up to 1,000 empty
# files; about 4 GB of inodes on ext4, made in a minute or two). The tree is
# made in a scratch directory (default: under /var/tmp) and removed at the
# end unless --keep. Exit status 0 only if every walk saw every file and
# printed no error. Root is needed to mount; the tenant is uid/gid 7001.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

files=1000000
cache=strict
max_fds=
scratch_parent=/var/tmp
keep=false
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while (($#)); do
  case $1 in
    -n) files=${2:?-n needs a number}; shift 2 ;;
    --cache) cache=${2:?--cache needs strict or exclusive}; shift 2 ;;
    --max-fds) max_fds=${2:?--max-fds needs a number}; shift 2 ;;
    --dir) scratch_parent=${2:?--dir needs a directory}; shift 2 ;;
    --keep) keep=true; shift ;;
    -h | --help) usage 0 ;;
    *) echo "walk-many-files: unknown argument \"$1\" (see --help)" >&2; exit 2 ;;
  esac
done
[[ $files =~ ^[0-9]+$ && $files -gt 0 ]] || die "-n must be a positive number, not \"$files\""
[[ $cache == strict || $cache == exclusive ]] || die "--cache must be strict or exclusive"
((EUID == 0)) || die "run as root (the mapper mounts FUSE)"
bin=$(find_tenantfs) || die "no tenantfs binary: build first (make), or set TENANTFS_BIN"

readonly tenant=7001
work=$(mktemp -d "$scratch_parent/tenantfs-walk.XXXXXX")
backing=$work/store/vol
mnt=$work/mnt
mkdir -p "$backing" "$mnt"
chmod 0700 "$work/store"
mapper_pid=
sampler_pid=
cleanup() {
  [[ -n "$sampler_pid" ]] && kill "$sampler_pid" 2>/dev/null || true
  if mountpoint -q "$mnt"; then umount "$mnt" 2>/dev/null || umount -l "$mnt" || true; fi
  if [[ -n "$mapper_pid" ]]; then
    kill "$mapper_pid" 2>/dev/null || true
    wait "$mapper_pid" 2>/dev/null || true
  fi
  if [[ $keep == true ]]; then log "kept $work"; else rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT

# The tree: directories of up to 1,000 files, made on the storage directly.
log "making $files files in $backing"
t0=$(now_us)
per_dir=1000
dirs=$(((files + per_dir - 1) / per_dir))
for ((d = 0; d < dirs; d++)); do
  n=$((files - d * per_dir < per_dir ? files - d * per_dir : per_dir))
  mkdir "$backing/d$d"
  (cd "$backing/d$d" && seq -f 'f%.0f' 1 "$n" | xargs touch)
done
chown -R "$tenant:$tenant" "$backing"
log "made in $(us_to_s "$t0" "$(now_us)") s"

# The mapper, as serve would start it.
args=(mapper --backing "$backing" --mountpoint "$mnt" --uid "$tenant" --gid "$tenant"
  --cache "$cache" --name walk --ready-fd 3)
[[ -n "$max_fds" ]] && args+=(--max-fds "$max_fds")
"$bin" "${args[@]}" 3>"$work/ready" 2>"$work/mapper.log" &
mapper_pid=$!
for ((i = 0; i < 300; i++)); do
  [[ -s "$work/ready" ]] && break
  kill -0 "$mapper_pid" 2>/dev/null || break
  sleep 0.1
done
[[ "$(head -n1 "$work/ready" 2>/dev/null)" == ready ]] ||
  die "mapper did not start: $(cat "$work/ready" "$work/mapper.log" 2>/dev/null)"
limit=$(awk '/^Max open files/ { print $4 }' "/proc/$mapper_pid/limits")

# Samples the mapper's fd count (entries of /proc/PID/fd) while the walks
# run; the highest count is in $work/max-fds.
echo 0 >"$work/max-fds"
(
  max=0
  while kill -0 "$mapper_pid" 2>/dev/null; do
    n=$(find "/proc/$mapper_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    # Replaced whole (rename), so that a reader never sees it half written.
    ((n > max)) && { max=$n; echo "$max" >"$work/max-fds.new" && mv -f "$work/max-fds.new" "$work/max-fds"; }
    sleep 0.2
  done
) &
sampler_pid=$!

errors=0
# Drops the kernel's dentries and inodes (FUSE's included, so the mapper is
# asked again) but keeps the page cache of everyone else on the machine.
drop_dentries() { sync; echo 2 >/proc/sys/vm/drop_caches; }

# run NAME EXPECTED COMMAND...: times COMMAND with a cold dentry cache, counts the lines it printed to stderr, and for find checks that it
# listed every file.
report=()
run() {
  local name=$1 expect=$2 start end secs out err rc=0
  shift 2
  drop_dentries
  start=$(now_us)
  out=$("$@" 2>"$work/$name.err") || rc=$?
  end=$(now_us)
  secs=$(us_to_s "$start" "$end")
  err=$(wc -l <"$work/$name.err")
  if [[ -n "$expect" && "$out" != "$expect" ]]; then
    echo "$name: saw $out files, expected $expect" >>"$work/$name.err"
    err=$((err + 1))
  fi
  ((rc == 0)) || err=$((err + 1))
  errors=$((errors + err))
  report+=("$(printf '%-8s %9.1f s  %d error lines, exit %d' "$name" "$secs" "$err" "$rc")")
  ((err == 0)) || head -n 5 "$work/$name.err" >&2
}
count_files() { find "$mnt" -type f | wc -l; }
list_all() { ls -lR "$mnt" | wc -l >/dev/null; }
run find "$files" count_files
run du "" du -s "$mnt"
run ls-lR "" list_all

max=$(cat "$work/max-fds")
echo "files: $files in $dirs directories, cache $cache, mapper fd limit $limit"
printf '%s\n' "${report[@]}"
echo "mapper: at most $max fds open during the walks"
echo "errors: $errors"
((errors == 0))
