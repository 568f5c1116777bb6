#!/usr/bin/env bash
# ctest entry of the e2e suite: run.sh BATS DIR. Skips (77) where the suite
# cannot run at all (not root, no /dev/fuse); everything else is a real run.
set -euo pipefail
bats="$1"
dir="$2"
if [[ $(id -u) -ne 0 ]]; then
  echo "e2e: skipped, needs root (it runs a private dockerd)" >&2
  exit 77
fi
if [[ ! -c /dev/fuse ]]; then
  echo "e2e: skipped, no /dev/fuse on this machine" >&2
  exit 77
fi
: "${TENANTFS_BIN:?set TENANTFS_BIN to the built tenantfs}"
: "${TENANTFS_PLUGIN_DIR:?set TENANTFS_PLUGIN_DIR to the plugin directory}"
export TENANTFS_BIN TENANTFS_PLUGIN_DIR
exec "$bats" --timing --print-output-on-failure "$dir"
