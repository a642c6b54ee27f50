#!/usr/bin/env bash
# build-debs.sh [OUT_DIR] — build o2hub's Debian packages (debian/) from this
# source tree: a copy of the tree's files (git's tracked and untracked, not
# ignored) in a temporary folder, then `dpkg-buildpackage -b -us -uc`, then
# lintian. The .debs, the .buildinfo/.changes and lintian.txt land in OUT_DIR
# (default: build-deb). Exit status: the build's, or lintian's errors.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
out=$(realpath -m "${1:-$src/build-deb}")
work=$(mktemp -d /tmp/o2hub-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out" "$work/o2hub"
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' | tar --null -T - -cf -) |
  tar -xf - -C "$work/o2hub"
(cd "$work/o2hub" && dpkg-buildpackage -b -us -uc) >"$out/dpkg-buildpackage.log" 2>&1 ||
  { tail -40 "$out/dpkg-buildpackage.log"; echo "build-debs: dpkg-buildpackage failed" >&2; exit 1; }
rm -f "$out"/*.deb
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
status=0
lintian --no-tag-display-limit "$out"/*.changes >"$out/lintian.txt" 2>&1 || status=$?
cat "$out/lintian.txt"
if grep -q '^E: ' "$out/lintian.txt"; then
  echo "build-debs: lintian found errors" >&2
  exit 1
fi
# lintian exits 2 for warnings only with --fail-on; errors are checked above.
[ "$status" -le 2 ] || { echo "build-debs: lintian failed ($status)" >&2; exit 1; }
ls -1 "$out"/*.deb
