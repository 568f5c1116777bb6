#!/usr/bin/env bash
# Installs, from Debian's packages, whatever tenantfs needs to build, test and
# benchmark and is not installed yet. Idempotent and quiet; a no-op (one dpkg
# query) when everything is present. Never replaces a Docker engine the host
# already has: docker.io is only installed where no dockerd exists.
#
#   scripts/install-deps.sh [build|test]   (default: test, a superset of build)
set -euo pipefail

want="${1:-test}"
build_pkgs=(cmake make g++ pkg-config libcpp-httplib-dev nlohmann-json3-dev libfuse3-dev
            fuse3 libsqlite3-dev libspdlog-dev libgtest-dev libgmock-dev libcli11-dev liburing-dev)
test_pkgs=(docker-compose bats busybox-static bindfs fio curl acl attr e2fsprogs
           util-linux procps psmisc sqlite3 clang libclang-rt-14-dev)

pkgs=("${build_pkgs[@]}")
if [[ "$want" == test ]]; then
  pkgs+=("${test_pkgs[@]}")
  if ! command -v dockerd >/dev/null 2>&1; then
    pkgs+=(docker.io)
  fi
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "tenantfs: missing packages: ${missing[*]}" >&2
  echo "tenantfs: run as root (sudo make ...) to install them, or apt-get install them yourself" >&2
  exit 1
fi

echo "tenantfs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists when they are missing or older than a day.
if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)" ]]; then
  apt-get update -qq >/dev/null
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
