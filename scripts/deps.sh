#!/usr/bin/env bash
# Install the Debian packages o2hub needs to build and test, if any is missing.
# Sourced by the other scripts; safe to run again (it installs nothing twice).
set -euo pipefail

O2HUB_DEBIAN_PACKAGES=(
  meson ninja-build pkg-config gcc      # build
  libjansson-dev                        # core: JSON configuration
  libcriterion-dev                      # tests: unit test framework
  clang-format                          # tests: formatting check
  python3                               # CI: summary line from meson's test log
  python3-jsonschema                    # tests: the config schema check
  liblo-dev liblo-tools                 # OSC: e2e tests and bench against liblo, oscsend/oscdump
  supercollider-server                  # tests/e2e/test_osc_replies.c: scsynth answers a delegate
  jackd2                                # the same: jackd -d dummy, the audio server scsynth needs
  libavahi-compat-libdnssd-dev          # plugins/dnssd: the dns_sd.h API (avahi)
  avahi-daemon dbus                     # plugins/dnssd at run time, and its e2e test
  libmicrohttpd-dev                     # transports/websocket: HTTP server and upgrade
  nettle-dev                            # transports/websocket: SHA-1 and base64 (handshake)
  libgnutls28-dev                       # transports/websocket: TLS for https:// and wss://
  openssl                               # tests/ws: makes the certificate of the TLS tests
  nodejs                                # tests/ws, bench/ws_throughput: Node clients
  chromium                              # tests/ws/test_browser.mjs: headless browser e2e
  libmosquitto-dev                      # transports/mqtt: MQTT client library
  mosquitto                             # tests: the MQTT broker the e2e tests start
  scdoc                                 # docs/man: the man pages (o2hub.1, o2ctl.1, o2hub.json.5)
  systemd                               # data/o2hub.service: unit folder (systemd.pc), systemd-analyze verify
  debhelper dpkg-dev                    # debian/: dpkg-buildpackage (scripts/build-debs.sh, CI)
  lintian                               # debian/: the packages' checks (scripts/build-debs.sh, CI)
  man-db                                # CI: `man o2hub` on the installed package
  curl                                  # CI: the installed monitor page is served
  puredata-dev                          # sdk/pd: m_pd.h for the Pure Data external
  puredata-core                         # tests/e2e/test_pd.c, test_osc_replies.c: headless pd
)

o2hub_install_deps() {
  local missing=()
  for p in "${O2HUB_DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "o2hub: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    return 1
  fi
  echo "o2hub: installing ${missing[*]}" >&2
  apt-get update -qq
  # jackd2 asks whether to allow realtime priority (jackd/tweak_rt_limits): the
  # default "no" is what the tests need (they run jackd --no-realtime).
  echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections 2>/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
}

# The Node packages of the WebSocket tests (tests/package-lock.json: ws,
# playwright-core, which drives Debian's chromium and downloads no browser).
o2hub_install_node_deps() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if ! command -v npm >/dev/null 2>&1; then
    # Debian's nodejs ships npm separately (a NodeSource nodejs includes it and conflicts).
    if [ "$(id -u)" -eq 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null || true
    fi
    command -v npm >/dev/null 2>&1 || { echo "o2hub: npm missing: WebSocket tests will skip" >&2; return 0; }
  fi
  if [ ! -d "$here/tests/node_modules/ws" ] || [ ! -d "$here/tests/node_modules/playwright-core" ] ||
     [ "$here/tests/package-lock.json" -nt "$here/tests/node_modules/.package-lock.json" ]; then
    echo "o2hub: npm ci in tests/" >&2
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$here/tests" --no-audit --no-fund >/dev/null
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  o2hub_install_deps
  o2hub_install_node_deps
fi
