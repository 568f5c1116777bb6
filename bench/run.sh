#!/usr/bin/env bash
# `make bench`: every benchmark, one after the other (root). Each part prints
# its own table and writes its own JSON under bench/results/.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (sudo make bench)" >&2; exit 1; }
echo "tenantfs benchmarks on $(uname -r), $(nproc) cpus; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(figures are only comparable within one run; other work on the machine skews them)"
rc=0
"$here/fs-bench.sh" || rc=1
"$here/api-bench.sh" || rc=1
exit $rc
