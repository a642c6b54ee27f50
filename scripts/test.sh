#!/usr/bin/env bash
# Set up (Debian packages, meson build with -Werror) and run every test.
# Usage: bash scripts/test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
o2hub_install_deps
o2hub_install_node_deps

build=${1:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --werror -Dtests=enabled
fi
meson compile -C "$build"
status=0
meson test -C "$build" --print-errorlogs || status=$?
python3 scripts/test-summary.py "$build/meson-logs/testlog.json"
exit $status
