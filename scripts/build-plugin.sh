#!/usr/bin/env bash
# Assembles the managed-plugin directory that `docker plugin create` takes:
#
#   OUT/config.json   the manifest (top-level config.json)
#   OUT/rootfs/       the skeleton (top-level rootfs/), the tenantfs binary as
#                     /tenantfs, and exactly the shared libraries it loads
#                     (ldd's list, dynamic loader included), at their own paths
#
#   scripts/build-plugin.sh [--binary PATH] [--out DIR]
#     --binary  the built tenantfs (default: build/cmd/tenantfs)
#     --out     the plugin directory to (re)create (default: build/plugin-pkg)
#
# As root, the result is owned by root and checked by running the binary
# chrooted in it, so a missing library shows here and not as a plugin that
# never starts. Prints the directory's size.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
script_name=build-plugin
# shellcheck source=scripts/plugin-common.sh
source "$repo/scripts/plugin-common.sh"

binary="$repo/build/cmd/tenantfs"
out="$repo/build/plugin-pkg"
while (($#)); do
  case "$1" in
    --binary) need_value "$@"; binary="$2"; shift 2 ;;
    --out) need_value "$@"; out="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) unknown_argument "$1" ;;
  esac
done

[[ -x "$binary" ]] || die "no tenantfs binary at $binary: build it first (make, or cmake --build BUILD --target tenantfs)"
command -v ldd >/dev/null || die "ldd not found (package libc-bin)"
[[ "$out" != / && -n "$out" ]] || die "refusing to use '$out' as the output directory"

# Build next to the destination and swap at the end, so an interrupted run
# never leaves a half-filled plugin directory behind under the final name.
out="$(realpath -m "$out")"
mkdir -p "$(dirname "$out")"
stage="$(mktemp -d "$out.tmp.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
rootfs="$stage/rootfs"

# Skeleton: directories and small files; .keep files only exist so that git
# records the empty directories.
cp -a "$repo/rootfs" "$rootfs"
find "$rootfs" -name .keep -type f -delete
# Nothing in the plugin's root is writable by anyone but root: git does not
# record modes, so they are set here. /tmp is root-only too: the mappers run
# as tenants and have no business writing there.
find "$rootfs" -type d -exec chmod 0755 {} +
find "$rootfs" -type f -exec chmod 0644 {} +
chmod 0700 "$rootfs/tmp"

install -m 0755 "$binary" "$rootfs/tenantfs"
strip --strip-unneeded "$rootfs/tenantfs" 2>/dev/null || true

# Every shared object the binary loads, resolved through symlinks and put at
# the path the loader will look for (ldd prints absolute paths: "x => /p (..)"
# for libraries, "/lib64/ld-linux-x86-64.so.2 (..)" for the loader).
mapfile -t libs < <(ldd "$binary" | awk '
  $2 == "=>" && $3 ~ /^\// { print $3; next }
  $1 ~ /^\// { print $1 }')
((${#libs[@]} > 0)) || die "ldd lists no shared libraries for $binary (a static binary needs no packaging step; is it the right file?)"
for lib in "${libs[@]}"; do
  [[ -e "$lib" ]] || die "ldd names $lib but it does not exist"
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
  chmod 0755 "$rootfs$lib"
done
# Directories created for the libraries get the same mode as the skeleton's.
find "$rootfs" -type d ! -path "$rootfs/tmp" -exec chmod 0755 {} +

cp "$repo/config.json" "$stage/config.json"
chmod 0644 "$stage/config.json"

if [[ $(id -u) -eq 0 ]]; then
  chown -R 0:0 "$stage"
  # The binary must start with nothing but what was just copied.
  if ! chroot "$rootfs" /tenantfs --version >/dev/null 2>"$stage/check.err"; then
    die "the packaged binary does not start in its rootfs: $(head -c 400 "$stage/check.err")"
  fi
  rm -f "$stage/check.err"
fi

rm -rf "$out"
mv "$stage" "$out"
chmod 0755 "$out"
trap - EXIT
echo "tenantfs plugin directory: $out ($(du -sh "$out" | cut -f1), ${#libs[@]} shared objects)"
