#!/usr/bin/env bash
# check-install.sh BUILD_DIR SOURCE_ROOT — install the build into a temporary
# DESTDIR and build what SDK users build, with nothing but the installed
# files and their pkg-config names: an embedding program, a program with the
# linked-in plugins, a plugin (then loaded by the installed daemon), an O2-API
# program and an o2lite device with DNS-SD. Each is run or loaded. Then what a
# distribution installs (docs/install.md): programs that find libo2hub by
# their rpath, no example plugin among the plugins, man pages, the unit, the
# default config, the pages and sdk/js beside the example configs, and the
# Pd folder (lib/pd/extra/o2hub), loaded by pd through an object's name.
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$2")
dest=$(mktemp -d /tmp/o2hub-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT

option() {
  meson introspect "$build" --buildoptions |
    python3 -c 'import json, sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}[sys.argv[1]])' "$1"
}
prefix=$(option prefix)
libdir=$prefix/$(option libdir)
bindir=$prefix/$(option bindir)
sysconfdir=$(option sysconfdir)
case $sysconfdir in /*) ;; *) sysconfdir=$prefix/$sysconfdir ;; esac
mandir=$prefix/$(option mandir)
datadir=$prefix/$(option datadir)

meson install -C "$build" --destdir "$dest" --no-rebuild >"$dest/install.log" 2>&1 ||
  { cat "$dest/install.log"; exit 1; }
export PKG_CONFIG_PATH="$dest$libdir/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$dest" # -I and -L point into the DESTDIR
export LD_LIBRARY_PATH="$dest$libdir"
cflags=(-std=c11 -Wall -Wextra -Wno-unused-parameter -Werror -D_GNU_SOURCE)
failures=0
step() { # step WHAT COMMAND...: run it, say ok or FAIL
  local what=$1
  shift
  local log
  if log=$("$@" 2>&1); then
    echo "ok   $what"
  else
    echo "FAIL $what"
    echo "$log" | sed 's/^/     /'
    failures=$((failures + 1))
  fi
}

out=$dest/out
mkdir -p "$out"
# shellcheck disable=SC2046  # pkg-config's words are meant to be split
step "embed.c builds with pkg-config o2hub" \
  cc "${cflags[@]}" "$src/examples/embed/embed.c" $(pkg-config --cflags --libs o2hub) -o "$out/embed"
step "embed runs against the installed libo2hub" "$out/embed"

# shellcheck disable=SC2046
step "linked.c builds with pkg-config o2hub-linked-plugins" \
  cc "${cflags[@]}" "$src/examples/embed-linked/linked.c" \
  $(pkg-config --cflags --libs o2hub-linked-plugins) -o "$out/linked"
step "linked: two routers, plugins linked in, one greeting" "$out/linked"

# shellcheck disable=SC2046
step "the plugin skeleton builds as a plugin with pkg-config o2hub" \
  cc "${cflags[@]}" -shared -fPIC -fvisibility=hidden "$src/examples/plugin-skeleton/skeleton.c" \
  $(pkg-config --cflags o2hub) -o "$out/o2hub_skeleton.so"
cat >"$out/skeleton.json" <<JSON
{ "ensemble": "install", "plugin_path": ["."],
  "transports": [{ "type": "skeleton", "port": 0 }, { "type": "tcp" }, { "type": "udp" }] }
JSON
step "the installed daemon loads it and its installed plugins" \
  env O2HUB_PLUGIN_PATH="$dest$libdir/o2hub/plugins" "$dest$bindir/o2hub" --config "$out/skeleton.json" --check

cat >"$out/o2api.c" <<'C'
#include <o2.h>
#include <stdio.h>
int main(void) {
    if (o2_initialize("install") != O2_SUCCESS) return 1;
    o2_service_new("hello");
    printf("o2 api: status %d\n", o2_status("hello"));
    return o2_finish() == O2_SUCCESS ? 0 : 1;
}
C
# shellcheck disable=SC2046
step "an O2-API program builds with pkg-config o2hub-o2" \
  cc "${cflags[@]}" "$out/o2api.c" $(pkg-config --cflags --libs o2hub-o2) -o "$out/o2api"
step "and runs with the installed plugins" env O2HUB_PLUGIN_PATH="$dest$libdir/o2hub/plugins" "$out/o2api"

if pkg-config --exists o2lite-dnssd; then
  # shellcheck disable=SC2046
  step "the o2lite device builds with pkg-config o2lite-dnssd" \
    cc "${cflags[@]}" -DO2L_HAVE_DNSSD "$src/examples/o2lite-imu/imu.c" \
    $(pkg-config --cflags --libs o2lite-dnssd) -lm -o "$out/imu"
  step "and starts (no host: gives up after 0.3 s)" \
    "$out/imu" --dnssd --host 127.0.0.1 9 9 --seconds 0.3
fi
step "the config schema is installed" test -s "$dest$datadir/o2hub/o2hub-config.schema.json"

if [ "$(option relocatable)" = True ]; then
  step "the installed o2hub and o2ctl find libo2hub by their rpath" \
    env -u LD_LIBRARY_PATH sh -c "'$dest$bindir/o2hub' --version && '$dest$bindir/o2ctl' --version"
  # A program linking libo2hub_o2 alone, with a runpath to it: only libo2hub_o2's
  # own runpath ($ORIGIN) can find libo2hub (a runpath does not serve dependencies).
  # shellcheck disable=SC2046
  step "libo2hub_o2 finds libo2hub by its own rpath" sh -c \
    "cc ${cflags[*]} '$out/o2api.c' $(pkg-config --cflags o2hub-o2) -L'$dest$libdir' -lo2hub_o2 \
       -Wl,-rpath,'$dest$libdir' -o '$out/o2api-rpath' &&
     env -u LD_LIBRARY_PATH O2HUB_PLUGIN_PATH='$dest$libdir/o2hub/plugins' '$out/o2api-rpath'"
fi
step "the skeleton example is not installed as a plugin" \
  sh -c "test -e '$dest$libdir/o2hub/plugins/o2hub_tcp.so' &&
         ! test -e '$dest$libdir/o2hub/plugins/o2hub_skeleton.so' &&
         test -s '$dest$datadir/o2hub/examples/plugin-skeleton/skeleton.c'"
if [ "$(option man)" != disabled ] && command -v scdoc >/dev/null; then
  step "the man pages o2hub(1), o2ctl(1), o2hub.json(5) are installed" \
    sh -c "for p in man1/o2hub.1 man1/o2ctl.1 man5/o2hub.json.5; do
             man -l -P cat '$dest$mandir/'\$p | grep -q EXAMPLE || exit 1; done"
fi
unit=$(find "$dest" -name o2hub.service | head -1)
step "the unit runs the installed daemon on the installed default config" \
  sh -c "test -s '$dest$sysconfdir/o2hub/hub.json' &&
         grep -qx 'ExecStart=$bindir/o2hub --config $sysconfdir/o2hub/hub.json' '$unit'"
step "the pages and sdk/js are installed beside the example configs" \
  sh -c "cd '$dest$datadir/o2hub/examples' && test -s monitor/index.html && test -s www/app.js &&
         test -s ../sdk/js/o2ws.js && test -s hub.json"
if [ -e "$dest$libdir/o2hub/plugins/o2hub_websocket.so" ]; then
  step "an installed example config finds its pages and plugins" \
    env O2HUB_PLUGIN_PATH="$dest$libdir/o2hub/plugins" \
    "$dest$bindir/o2hub" --config "$dest$datadir/o2hub/examples/monitor.json" --check
fi
# o2ctl carries its plugins: no plugin path, and it gets as far as looking.
o2ctl_alone() {
  local log
  log=$(env -u O2HUB_PLUGIN_PATH "$dest$bindir/o2ctl" -e install -H 127.0.0.1 -p 127.0.0.1:9 \
    -w 0.2 list 2>&1) && return 1 # nothing is there: it must fail, saying so
  echo "$log"
  grep -q "no services found" <<<"$log"
}
step "the installed o2ctl runs with no plugin path" o2ctl_alone

pdext=$dest$prefix/lib/pd/extra/o2hub
if [ -e "$pdext/o2hub.pd_linux" ] && command -v pd >/dev/null; then
  step "the Pd folder has the external, its links, help patches and README" sh -c "
    cd '$pdext' && test -s README.txt && test -s o2hub-example.pd &&
    for o in o2ensemble o2receive o2send o2property o2.status o2.tap o2.time; do
      test -L \$o.pd_linux && test -s \$o-help.pd || exit 1; done"
  printf '#N canvas 0 0 400 300 12;\n#X obj 10 10 o2ensemble;\n#X obj 10 40 o2.time;\n' >"$out/load.pd"
  # shellcheck disable=SC2016  # $1 and $2 belong to the inner shell
  step "pd loads the installed external by an object's name (libo2hub by its rpath)" \
    env -u LD_LIBRARY_PATH sh -c '
      log=$(timeout 20 pd -nogui -noaudio -stderr -noprefs -nrt -path "$1" -open "$2" \
            -send "pd quit" 2>&1) || exit 1
      echo "$log"; echo "$log" | grep -q "^o2hub " && ! echo "$log" | grep -q "couldn.t create"' \
    sh "$pdext" "$out/load.pd"
fi

echo "$failures failures"
[ "$failures" -eq 0 ]
