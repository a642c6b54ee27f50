#!/usr/bin/env bash
# The whole scimu demo with one command: builds o2hub if needed, then starts
#   oscdump on UDP 29120 (standing in for the synthesizer "soundcool"),
#   the control program (services imu and ctrl; serves the page on :8090),
#   the O2lite sensor (simulated; it finds the control program by O2's UDP
#   discovery and sends /imu/imu "fffffff" at 20 Hz),
# and prints the page's address. Ctrl-C stops everything.
#
# Usage: bash examples/scimu/run.sh [SECONDS]   (default: until Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/deps.sh
o2hub_install_deps
[ -f build/build.ninja ] || meson setup build
meson compile -C build >/dev/null
seconds=${1:-0}
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# The control program loads its plugins from the build tree.
export O2HUB_PLUGIN_PATH="$PWD/build/transports:$PWD/build/plugins${O2HUB_PLUGIN_PATH:+:$O2HUB_PLUGIN_PATH}"
oscdump -L 29120 & pids+=($!)
build/examples/scimu/scimu-control --config examples/scimu/control.json & pids+=($!)
build/examples/o2lite-imu/o2lite-imu --ensemble scimu --service dev --to /imu/imu \
  --seconds 86400 & pids+=($!)
echo "scimu: open http://127.0.0.1:8090/ — drag the ends of the bars; oscdump prints /roll and /pitch"
echo "       (the web monitor of the demo: http://127.0.0.1:8090/monitor/?ensemble=scimu)"
if [ "$seconds" != 0 ]; then sleep "$seconds"; else wait; fi
