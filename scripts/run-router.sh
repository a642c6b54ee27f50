#!/usr/bin/env bash
# Set up (Debian packages, build) and run a router on an example config.
# Usage: bash scripts/run-router.sh [CONFIG]   (default: examples/router.json)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
o2hub_install_deps
[ -f build/build.ninja ] || meson setup build
meson compile -C build
exec build/tools/o2hub --config "${1:-examples/router.json}"
