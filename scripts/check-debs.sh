#!/usr/bin/env bash
# check-debs.sh DEB_DIR [LOG] — install o2hub's .debs (scripts/build-debs.sh)
# with apt on this machine and check them as a user would: the unit verifies,
# the installed daemon runs the installed default config (/etc/o2hub/hub.json)
# and the installed o2ctl exchanges messages with it, the monitor page and
# o2ws.js are served, the man pages open, an embedding program builds with
# pkg-config against libo2hub-dev, lintian found no errors; pd-o2hub's
# external finds libo2hub in the libdir without an rpath, headless Pd opens
# the installed help patches without an error, and a patch that joins the
# daemon's ensemble exchanges a message with o2ctl through it. Then purges them.
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
pd_pid=
dump_pid=
cleanup() {
  for pid in "$pd_pid" "$dump_pid" "$hub_pid"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq pd-o2hub o2hub libo2hub0 libo2hub-dev \
    >/dev/null 2>&1
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

step "apt installs the four packages" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  "$debs"/o2hub_*.deb "$debs"/libo2hub0_*.deb "$debs"/libo2hub-dev_*.deb "$debs"/pd-o2hub_*.deb

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
# pd-o2hub: the external as Debian's Pd finds it (docs/pd.md).
pdext=/usr/lib/pd/extra/o2hub
pd_headless=(timeout 60 pd -nogui -noaudio -stderr -noprefs -nrt -path "$pdext")
step "pd-o2hub: the external finds libo2hub in the libdir, with no rpath" sh -c "
  ldd '$pdext/o2hub.pd_linux' | grep -Eq 'libo2hub.so.0 => (/usr)?/lib/[^ ]*/libo2hub.so.0' &&
  ! ldd '$pdext/o2hub.pd_linux' | grep -q 'not found' &&
  ! readelf -d '$pdext/o2hub.pd_linux' | grep -Eq 'RPATH|RUNPATH' &&
  for o in o2ensemble o2send o2receive o2property o2.status o2.tap o2.time; do
    test -L '$pdext/'\$o.pd_linux && test -s '$pdext/'\$o-help.pd || exit 1; done"
help_opens() { # every installed help patch and the example open with no error
  local args=() f
  for f in "$pdext"/*-help.pd "$pdext"/o2hub-example.pd; do args+=(-open "$f"); done
  local log
  log=$("${pd_headless[@]}" "${args[@]}" -send "pd quit" 2>&1) || { echo "$log"; return 1; }
  echo "$log" | grep -q "^o2hub [0-9.]*: o2ensemble" || { echo "$log"; return 1; }
  ! echo "$log" | grep -Ei "error|couldn't create|can't load"
}
step "pd-o2hub: headless Pd opens the installed help patches without an error" help_opens

# A patch in the daemon's ensemble, found through the daemon's UDP port
# (static discovery; o2ctl is told both ports, as static discovery does not
# pass processes on). Its clock follows the daemon's (-c 0): [o2.status hub]
# reaches 5, the daemon's service with a clock. What o2ctl sends to
# /pdcheck/in is printed and echoed to /pdreply/echo, which o2ctl dumps.
cat >"$work/exchange.pd" <<'PATCH'
#N canvas 0 0 400 300 12;
#X obj 10 10 o2ensemble demo -c 0 -host 127.0.0.1 -port 40001 -peer 127.0.0.1:40000;
#X obj 10 40 o2receive pdcheck in -t si;
#X obj 10 70 print got;
#X obj 10 100 o2send pdreply echo;
#X obj 10 130 o2.status hub;
#X obj 10 160 print hub;
#X connect 1 0 2 0;
#X connect 1 0 3 0;
#X connect 4 0 5 0;
PATCH
pd_exchange() {
  local o2ctl_both=("${o2ctl[@]}" -p 127.0.0.1:40001)
  "${o2ctl_both[@]}" dump pdreply -n 1 -d 40 >"$work/dump.log" 2>&1 &
  dump_pid=$!
  "${pd_headless[@]}" -open "$work/exchange.pd" >"$work/pd.log" 2>&1 &
  pd_pid=$!
  for _ in $(seq 200); do grep -q '^hub: 5' "$work/pd.log" && break; sleep 0.1; done
  # Pd must also have learnt of the dump's service before its echo goes
  # out: send again (at most 10 times) until the dump has its message.
  local i
  for i in $(seq 10); do
    "${o2ctl_both[@]}" --wait 10 send /pdcheck/in si hello "$i" >/dev/null 2>&1
    for _ in $(seq 10); do kill -0 "$dump_pid" 2>/dev/null || break 2; sleep 0.1; done
  done
  wait "$dump_pid"
  local dump_rc=$?
  dump_pid=
  kill "$pd_pid" 2>/dev/null && wait "$pd_pid" 2>/dev/null
  pd_pid=
  echo "--- pd"; cat "$work/pd.log"; echo "--- o2ctl dump"; cat "$work/dump.log"
  [ "$dump_rc" = 0 ] && grep -q '^hub: 5' "$work/pd.log" &&
    grep -Eq '^got: (list )?hello [0-9]+' "$work/pd.log" &&
    grep -Eq '^/pdreply/echo ,sf "hello" [0-9]+' "$work/dump.log" &&
    ! grep -Ei "couldn't create|error" "$work/pd.log"
}
step "pd-o2hub: a patch joins the daemon's ensemble and exchanges a message with o2ctl" \
  pd_exchange

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
