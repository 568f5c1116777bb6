#!/usr/bin/env bash
# Builds the libFuzzer targets in a clang tree of their own (ASan + UBSan +
# libFuzzer) and fuzzes each one for a while from the seed corpus.
#
#   tests/fuzz/fuzz.sh --source DIR --build DIR [--seconds N] [--jobs N] [TARGET...]
#
# TARGET: volume_spec, driver_requests, authz_requests, http_framing (default: all). New inputs go to
# BUILD/fuzz-corpus/TARGET (the seeds in the source tree are never written);
# a crash, leak, sanitizer report or invariant violation leaves its input in
# BUILD/fuzz-artifacts/ and makes the script fail, naming it. Exits 77 (skip)
# when clang or its libFuzzer runtime is missing.
set -euo pipefail

script_name=fuzz.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/plugin-common.sh"

src=. build=build-fuzz seconds=60 jobs=2 targets=()
while (($#)); do
  case "$1" in
    --source) need_value "$@"; src="$2"; shift 2 ;;
    --build) need_value "$@"; build="$2"; shift 2 ;;
    --seconds) need_value "$@"; seconds="$2"; shift 2 ;;
    --jobs) need_value "$@"; jobs="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) unknown_argument "$1" ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(volume_spec driver_requests authz_requests http_framing)
src="$(cd "$src" && pwd)"

cxx="$(command -v clang++ || command -v clang++-14 || true)"
cc="$(command -v clang || command -v clang-14 || true)"
if [[ -z "$cxx" || -z "$cc" ]]; then
  echo "fuzz: skipped, clang is missing (scripts/install-deps.sh test installs it)" >&2
  exit 77
fi
rt="$("$cxx" -print-runtime-dir 2>/dev/null)/libclang_rt.fuzzer-x86_64.a"
if [[ ! -f "$rt" && ! -f "$("$cxx" -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]]; then
  echo "fuzz: skipped, no libFuzzer runtime for $cxx (libclang-rt-14-dev)" >&2
  exit 77
fi

# Warnings are errors in the gcc build CI makes; here another compiler's
# opinions must not stop the fuzzing.
CC="$cc" CXX="$cxx" cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTENANTFS_SANITIZE=address,undefined -DTENANTFS_FUZZ=ON -DTENANTFS_WERROR=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target "${targets[@]/%/_fuzzer}" >/dev/null

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$build/fuzz-corpus/$t" "$build/fuzz-artifacts"
  rm -f "$build/fuzz-artifacts/$t-"*  # only this run's findings are reported
  log="$build/fuzz-$t.log"
  echo "fuzz: $t for ${seconds}s (log $log)"
  if "$build/tests/fuzz/${t}_fuzzer" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$t-" \
      "$build/fuzz-corpus/$t" "$src/tests/fuzz/corpus/$t" >"$log" 2>&1; then
    grep -a -E '^stat::number_of_executed_units|^stat::new_units_added|^stat::peak_rss_mb' "$log" |
      sed "s/^/fuzz: $t: /"
    echo "fuzz: $t: corpus $(find "$build/fuzz-corpus/$t" -type f | wc -l) new input(s)"
  else
    echo "fuzz: $t FAILED; the report:" >&2
    grep -a -E -A40 'ERROR: |invariant violated|runtime error|SUMMARY' "$log" | head -n 80 >&2 || tail -n 60 "$log" >&2
    ls -1 "$build/fuzz-artifacts/$t-"* 2>/dev/null | sed 's/^/fuzz: input: /' >&2 || true
    failed+=("$t")
  fi
done
((${#failed[@]} == 0)) || { echo "fuzz: failed: ${failed[*]}" >&2; exit 1; }
