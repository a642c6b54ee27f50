#!/usr/bin/env bash
# check-debs.sh DEB_DIR [LOG] — install o2hub's .debs (scripts/build-debs.sh)
# with apt on this machine and check them as a user would: the unit verifies,
# the installed daemon runs the installed default config (/etc/o2hub/hub.json)
# and the installed o2ctl exchanges messages with it, the monitor page and
# o2ws.js are served, the man pages open, an embedding program builds with
# pkg-config against libo2hub-dev, lintian found no errors. Then purges them.
# LOG (default DEB_DIR/testlog.json) gets one meson-style JSON line per check
# ({"name", "result": "OK"|"FAIL", "suite": ["package"]}), which
# scripts/test-summary.py counts. Exit status 1 if any check failed.
set -uo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
debs=$(realpath "$1")
log=$(realpath -m "${2:-$debs/testlog.json}")
work=$(mktemp -d /tmp/o2hub-debcheck-XXXXXX)
: >"$log"
failures=0
hub_pid=
cleanup() {
  [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq o2hub libo2hub0 libo2hub-dev >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

record() { # record NAME OK|FAIL [OUTPUT]
  python3 -c 'import json, sys
print(json.dumps({"name": sys.argv[1], "result": sys.argv[2], "suite": ["package"],
                  "stdout": sys.argv[3]}))' "package/$1" "$2" "${3:-}" >>"$log"
}
step() { # step NAME COMMAND...: run it, say ok or FAIL, record it
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1); then
    echo "ok   $name"
    record "$name" OK
  else
    echo "FAIL $name"
    echo "$out" | sed 's/^/     /'
    record "$name" FAIL "$out"
    failures=$((failures + 1))
  fi
}

step "apt installs the three packages" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  "$debs"/o2hub_*.deb "$debs"/libo2hub0_*.deb "$debs"/libo2hub-dev_*.deb

step "lintian: no errors" sh -c "test -f '$debs/lintian.txt' && ! grep '^E: ' '$debs/lintian.txt'"
step "systemd-analyze verify o2hub.service" systemd-analyze verify /lib/systemd/system/o2hub.service
step "man o2hub, o2ctl, o2hub.json open" sh -c \
  'man -P cat o2hub | grep -q "o2hub.json(5)" && man -P cat o2ctl | grep -q "dump SERVICE" &&
   man -P cat 5 o2hub.json | grep -q "plugin_path"'
plugindir=$(pkg-config --variable=plugindir o2hub 2>/dev/null)
step "pkg-config's plugindir holds the plugins, not the skeleton" sh -c \
  "test -f '$plugindir/o2hub_tcp.so' && test -f '$plugindir/o2hub_websocket.so' &&
   ! test -e '$plugindir/o2hub_skeleton.so' && test \"\$(pkg-config --variable=abi_major o2hub)\" = 1"
step "the installed daemon checks the installed default config" \
  /usr/bin/o2hub --config /etc/o2hub/hub.json --check

# The daemon on the default config (tcp+udp 127.0.0.1:40000, websocket :8080).
/usr/bin/o2hub --config /etc/o2hub/hub.json >"$work/hub.log" 2>&1 &
hub_pid=$!
ready() { curl -fsS -o /dev/null http://127.0.0.1:8080/ 2>/dev/null; }
for _ in $(seq 100); do ready && break; kill -0 "$hub_pid" 2>/dev/null || break; sleep 0.1; done
o2ctl=(/usr/bin/o2ctl -e demo -H 127.0.0.1 -p 127.0.0.1:40000)
step "o2ctl list finds the daemon's service hub" sh -c \
  "$(printf '%q ' "${o2ctl[@]}") list --until hub --wait 10 --json | grep -q '\"name\": \"hub\"'"
step "o2ctl time: the daemon is the clock reference" "${o2ctl[@]}" time --wait 10
step "the monitor page is served from share/o2hub" sh -c \
  'curl -fsS http://127.0.0.1:8080/ | grep -qi "<html" &&
   curl -fsS http://127.0.0.1:8080/monitor.js >/dev/null'
step "o2ws.js is served at /sdk/" sh -c \
  'curl -fsS http://127.0.0.1:8080/sdk/o2ws.js | grep -q "export"'
if kill "$hub_pid" 2>/dev/null && wait "$hub_pid"; then stopped=0; else stopped=1; fi
hub_pid=
step "the daemon stops cleanly on SIGTERM" sh -c "test $stopped = 0 && grep -q 'o2hub: stopped;' '$work/hub.log'"
[ "$stopped" = 0 ] || cat "$work/hub.log"

# shellcheck disable=SC2046  # pkg-config's words are meant to be split
step "an embedding program builds with libo2hub-dev and runs" sh -c \
  "cc -std=c11 -Wall -Werror '$src/examples/embed/embed.c' \$(pkg-config --cflags --libs o2hub) \
     -o '$work/embed' && '$work/embed'"

echo "$failures failures"
[ "$failures" -eq 0 ]
