#!/usr/bin/env bash
# Run a router from this source tree: install the Debian build dependencies,
# build in build/, then run build/tools/o2hub.
#
# Usage: bash scripts/run-router.sh [CONFIG] [O2HUB-OPTIONS...]
#   CONFIG          default examples/hub.json, the default hub (docs/hub.md);
#                   examples/router.json is the plugin authors' skeleton router
#   O2HUB-OPTIONS   passed to o2hub, e.g. --set transports.websocket.port=8081
#                   or -e studio (o2hub --help lists them)
# Environment:
#   O2HUB_NO_BUILD=1    use the build as it is: no dependencies, no compile
#   O2HUB_BUILD_DIR=D   the build folder (default build)
#   O2HUB_ENSEMBLE=E    the ensemble (else the config's; o2ctl reads it too)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${O2HUB_BUILD_DIR:-build}
if [ "${O2HUB_NO_BUILD:-}" != 1 ]; then
  source scripts/deps.sh
  o2hub_install_deps
  [ -f "$build/build.ninja" ] || meson setup "$build"
  meson compile -C "$build"
fi
config=examples/hub.json
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  config=$1
  shift
fi
# The build tree's plugins (o2hub finds them by itself when run from the
# build tree; said here too for a build folder given by O2HUB_BUILD_DIR).
b=$(cd "$build" && pwd)
export O2HUB_PLUGIN_PATH="$b/transports:$b/plugins:$b/examples/plugin-skeleton${O2HUB_PLUGIN_PATH:+:$O2HUB_PLUGIN_PATH}"
exec "$build/tools/o2hub" --config "$config" "$@"
