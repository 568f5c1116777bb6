# Shared helpers of the tenantfs benchmarks; sourced, never run.
# shellcheck shell=bash

export LC_ALL=C

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_ROOT/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/build}
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR=$REPO_ROOT/$BUILD_DIR
export RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_ROOT/results}

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# Wall-clock microseconds, without forking.
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

# Seconds (6 decimals) between two now_us values.
us_to_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", (b - a) / 1e6 }'; }

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# One-line, JSON-safe version of an error message.
sanitize() { tr '\n\t"\\' '  ' <<<"$*" | tr -s ' ' | sed 's/ *$//' | cut -c1-200; }

# The tenantfs binary of the build, or empty.
find_tenantfs() {
  local c
  for c in "${TENANTFS_BIN:-}" "$BUILD_DIR/cmd/tenantfs" "$BUILD_DIR/tenantfs"; do
    [[ -n "$c" && -x "$c" ]] && { echo "$c"; return 0; }
  done
  return 1
}

# Builds bench/tools/tfsbench.cc next to the build (g++ is a build dependency).
build_tfsbench() {
  local out=$BUILD_DIR/bench-tools/tfsbench src=$BENCH_ROOT/tools/tfsbench.cc
  mkdir -p "$(dirname "$out")"
  if [[ ! -x "$out" || "$src" -nt "$out" ]]; then
    g++ -O2 -std=c++20 -Wall -Wextra -o "$out.tmp" "$src" || die "cannot build $src"
    mv "$out.tmp" "$out"
  fi
  echo "$out"
}

# Machine description for the report, as JSON members (no braces).
machine_json() {
  local cpu mem kernel
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1 | tr -d '"\\')
  mem=$(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)
  kernel=$(uname -r)
  printf '"kernel":"%s","cpus":%d,"cpu_model":"%s","mem_mib":%s' \
    "$kernel" "$(nproc)" "$cpu" "$mem"
}

# The source the binary was built from, as a JSON member (no braces).
source_json() {
  local commit dirty=false
  commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  [[ -n "$(git -C "$REPO_ROOT" status --porcelain -- mapper plugin store common 2>/dev/null)" ]] && dirty=true
  printf '"source":{"commit":"%s","uncommitted_changes":%s}' "$commit" "$dirty"
}

# summarize RAW META JSON_OUT TITLE TARGETS...
#   RAW:  lines "test<TAB>target<TAB>run<TAB>value" (value numeric, or "FAIL <msg>"
#         or "SKIP <msg>"); lines starting with '#' are ignored.
#   META: lines "test<TAB>unit<TAB>higher|lower<TAB>what it measures".
# Prints a table (median of the runs, and the ratio to the first target) and
# writes the "tests" JSON array to JSON_OUT.
summarize() {
  local raw=$1 meta=$2 json=$3 title=$4
  shift 4
  awk -F'\t' -v targets="$*" -v json="$json" -v title="$title" '
    function sort(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    }
    function med(key,   n, i, a, s) {
      n = split(vals[key], s, " ")
      if (n == 0) return ""
      for (i = 1; i <= n; i++) a[i] = s[i] + 0
      sort(a, n)
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function fmt(v) {
      if (v == "") return "-"
      if (v >= 1000) return sprintf("%.0f", v)
      if (v >= 100) return sprintf("%.1f", v)
      if (v >= 1) return sprintf("%.2f", v)
      return sprintf("%.4f", v)
    }
    FNR == NR { unit[$1] = $2; better[$1] = $3; what[$1] = $4; order[++ntests] = $1; next }
    /^#/ { next }
    {
      key = $1 SUBSEP $2
      if ($4 ~ /^FAIL/ || $4 ~ /^SKIP/) { msg[key] = $4; nbad[key]++ }
      else { vals[key] = vals[key] " " $4; runs[key] = runs[key] (runs[key] == "" ? "" : ",") $4 }
    }
    END {
      nt = split(targets, tg, " ")
      printf "\n%s\n", title
      printf "%-18s %-7s", "test", "unit"
      for (j = 1; j <= nt; j++) printf " %21s", tg[j]
      printf "\n"
      printf "[\n" > json
      for (i = 1; i <= ntests; i++) {
        t = order[i]
        base = med(t SUBSEP tg[1])
        printf "%-18s %-7s", t, unit[t]
        printf "%s  {\"test\":\"%s\",\"unit\":\"%s\",\"better\":\"%s\",\"measures\":\"%s\",\"results\":{", (i > 1 ? ",\n" : ""), t, unit[t], better[t], what[t] > json
        for (j = 1; j <= nt; j++) {
          key = t SUBSEP tg[j]
          m = med(key)
          if (m == "") {
            cell = (key in msg) ? (msg[key] ~ /^SKIP/ ? "skipped" : "FAILED") : "-"
          } else {
            cell = fmt(m)
            if (j > 1 && base != "" && base > 0) cell = cell sprintf(" (%.2fx)", m / base)
            if (key in nbad) cell = cell "!"
          }
          printf " %21s", cell
          printf "%s\"%s\":{", (j > 1 ? "," : ""), tg[j] > json
          if (m != "") {
            printf "\"median\":%s,\"runs\":[%s]", m, runs[key] > json
            if (base != "" && base > 0) printf ",\"ratio_to_%s\":%.4f", tg[1], m / base > json
          } else printf "\"median\":null" > json
          if (key in msg) printf ",\"failed_runs\":%d,\"error\":\"%s\"", nbad[key], msg[key] > json
          printf "}" > json
        }
        printf "}}" > json
        printf "\n"
      }
      printf "\n]\n" > json
      print "(median of the runs; (Nx) = ratio to " tg[1] "; ! = some runs failed, see JSON)"
      for (i = 1; i <= ntests; i++) printf "  %-18s %s is better: %s\n", order[i], better[order[i]], what[order[i]]
    }' "$meta" "$raw"
}
