#!/bin/sh
# Run one Node test file; exit 77 (meson: skipped) with the reason when node
# or the npm packages in tests/ are missing. CI installs both (scripts/deps.sh).
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node is not installed (Debian: apt-get install nodejs npm)"
  exit 77
fi
here=$(dirname "$0")
if [ ! -d "$here/../node_modules/ws" ]; then
  echo "SKIP: tests/node_modules is missing (run: npm ci --prefix tests)"
  exit 77
fi
exec node --test-reporter=spec "$@"
