#!/usr/bin/env bash
# Checks the thread-safety annotations (common/thread_annotations.h): every
# translation unit of common/, store/, mapper/, http/, admin/, plugin/ and cmd/ goes through
#   clang++ -fsyntax-only -Wthread-safety -Werror=thread-safety
# with the include paths, definitions and standard the build compiles it
# with (from BUILD/compile_commands.json). Only the analysis is enabled: the
# gcc build decides every other warning.
#
#   tests/thread_safety/check.sh --source DIR --build DIR [--jobs N]
#
# Exits 77 (skip) when clang++ is missing.
set -euo pipefail

script_name=thread_safety
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/plugin-common.sh"

src=. build=build jobs=2
while (($#)); do
  case "$1" in
    --source) need_value "$@"; src="$2"; shift 2 ;;
    --build) need_value "$@"; build="$2"; shift 2 ;;
    --jobs) need_value "$@"; jobs="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) unknown_argument "$1" ;;
  esac
done
src="$(cd "$src" && pwd)"
build="$(cd "$build" && pwd)"

cxx="$(command -v clang++ || command -v clang++-14 || true)"
if [[ -z "$cxx" ]]; then
  echo "$script_name: skipped, clang++ is missing (scripts/install-deps.sh test installs it)" >&2
  exit 77
fi
[[ -f "$build/compile_commands.json" ]] ||
  die "$build/compile_commands.json is missing; configure the build with cmake first"

# One response file per translation unit: compile_commands.json is JSON, which
# cmake (already a build dependency) reads.
args_dir="$build/thread-safety-args"
cmake -DCOMPILE_COMMANDS="$build/compile_commands.json" -DSOURCE_DIR="$src" \
  -DOUT_DIR="$args_dir" -P "$src/tests/thread_safety/response_files.cmake"
mapfile -t units < <(find "$args_dir" -name '*.rsp' | sort)
((${#units[@]})) || die "no translation unit of common/, store/, mapper/, http/, admin/, plugin/ or cmd/ in $build/compile_commands.json"

# xargs exits non-zero when any compile failed; clang has printed why.
if printf '%s\n' "${units[@]}" |
    xargs -P "$jobs" -I{} "$cxx" @{} -fsyntax-only -Wthread-safety -Werror=thread-safety; then
  say "${#units[@]} translation units pass -Wthread-safety"
else
  die "thread-safety violations above (see common/thread_annotations.h)"
fi
