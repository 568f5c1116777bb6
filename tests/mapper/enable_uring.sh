#!/usr/bin/env bash
# Switches FUSE over io_uring on for the "mapper-uring." suite and back.
#
#   enable_uring.sh on STATE_FILE       remember the current value (once), write Y
#   enable_uring.sh restore STATE_FILE  write back what `on` remembered
#
# The parameter is a host setting that other tests expect at its default,
# so the suite turns it on for itself only (ctest fixture) and restores it.
set -euo pipefail
param=/sys/module/fuse/parameters/enable_uring
action="$1"
state="$2"
case "$action" in
  on)
    if [[ ! -w "$param" ]]; then
      echo "cannot write $param (not root, or a kernel without FUSE over io_uring)" >&2
      exit 1
    fi
    # A state file left by an earlier `on` (ctest --repeat, or a run cut
    # short) already holds the value from before it: keep that one.
    [[ -f "$state" ]] || cat "$param" > "$state"
    echo Y > "$param"
    ;;
  restore)
    if [[ -f "$state" ]]; then
      cat "$state" > "$param"
      rm -f "$state"
    fi
    ;;
  *)
    echo "usage: $0 on|restore STATE_FILE" >&2
    exit 2
    ;;
esac
