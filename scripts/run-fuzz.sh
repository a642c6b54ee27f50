#!/usr/bin/env bash
# Run one libFuzzer target for a while on its seed corpus; a finding fails.
# Usage: run-fuzz.sh TARGET SEED_DIR WORK_DIR SECONDS
# New inputs go to WORK_DIR (never the repo's seeds); a crash leaves its
# input in WORK_DIR/crash-* and is printed as a hex dump for the log.
set -uo pipefail
target=$1 seeds=$2 work=$3 seconds=$4
mkdir -p "$work"
"$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work" "$seeds" 2>&1 | tail -n 30
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -f "$f" ] && { echo "finding: $f"; od -A x -t x1z "$f" | head -n 40; }
  done
fi
# libFuzzer reports a finding with exit code 77, which meson reads as "skipped".
[ "$rc" -eq 0 ] || exit 1
