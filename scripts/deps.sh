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
  libmosquitto-dev                      # transports/mqtt: MQTT client library
  mosquitto                             # tests: the MQTT broker the e2e tests start
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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then o2hub_install_deps; fi
