#!/usr/bin/env bash
# Builds a tree of its own under sanitizers and runs the tests that matter
# there (gcc: it supports ASan, UBSan and TSan and builds every source).
#
#   tests/hardening/sanitize.sh --mode asan|tsan --source DIR --build DIR [--jobs N] [--quick]
#
#   asan  ASan + UBSan: every unit test, then the integration tests of serve
#         and of tests/hardening (the real binary and mapper, also sanitized),
#         skipping the two long hardening loops unless --full.
#   tsan  TSan: the store, the VolumeDriver handlers, the mapper's inode
#         table and the reference counting stress tests.
# Any sanitizer report fails the test that produced it (halt_on_error).
set -euo pipefail

script_name=sanitize.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/plugin-common.sh"

mode="" src=. build="" jobs=2 full=0
while (($#)); do
  case "$1" in
    --mode) need_value "$@"; mode="$2"; shift 2 ;;
    --source) need_value "$@"; src="$2"; shift 2 ;;
    --build) need_value "$@"; build="$2"; shift 2 ;;
    --jobs) need_value "$@"; jobs="$2"; shift 2 ;;
    --full) full=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) unknown_argument "$1" ;;
  esac
done
[[ -n "$build" ]] || build="build-$mode"
src="$(cd "$src" && pwd)"

case "$mode" in
  asan)
    sanitize=address,undefined
    targets=(tenantfs_store_tests serve_unit_tests admin_unit_tests http_unit_tests
             hardening_unit_tests tenantfs_inode_table_tests volume_spec_replay driver_requests_replay
             authz_requests_replay http_framing_replay tenantfs serve_integration_tests
             hardening_integration_tests)
    ;;
  tsan)
    sanitize=thread
    targets=(tenantfs_store_tests serve_unit_tests http_unit_tests hardening_unit_tests
             tenantfs_inode_table_tests)
    ;;
  *) usage_error "--mode asan or tsan" ;;
esac

start=$SECONDS
# -O1: sanitized code at -O0 runs several times slower, -O2 compiles slower.
CXX="${SANITIZE_CXX:-g++}" cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS="-O1" -DTENANTFS_SANITIZE="$sanitize" -DTENANTFS_WERROR=ON >/dev/null
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
echo "sanitize $mode: built in $((SECONDS - start)) s"

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
rc=0
case "$mode" in
  asan)
    ctest --test-dir "$build" --output-on-failure -j "$jobs" -L unit || rc=1
    # The mappers drop privileges and become non-dumpable: LeakSanitizer
    # cannot stop their threads at exit, so leaks are checked by the unit
    # tests only.
    # The two slowest (10,000 creates, 50 kill -9 rounds) run in the
    # ordinary tree only.
    exclude='TenThousandCreates|KillNineAtRandomPoints'
    ((full)) && exclude='^$'
    ASAN_OPTIONS="abort_on_error=1:detect_leaks=0" \
      ctest --test-dir "$build" --output-on-failure -L integration \
      -R '^(serve|hardening)\.' -E "$exclude" || rc=1
    ;;
  tsan)
    tsan_tests='^(SqliteStore|InodeTableTest|serve\.(VolumeDriver|PluginRequestLimits)'
    tsan_tests+='|http\.(WaitingRoom|FrameRequest|ChunkedDecoder)|hardening\.RefcountStress)'
    ctest --test-dir "$build" --output-on-failure -j "$jobs" -R "$tsan_tests" || rc=1
    ;;
esac
echo "sanitize $mode: done in $((SECONDS - start)) s"
exit "$rc"
