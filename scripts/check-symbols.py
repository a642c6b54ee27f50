#!/usr/bin/env python3
"""Fail if an installed library exports a name outside its prefixes.

Usage: check-symbols.py LIBRARY PREFIX[,PREFIX...] [LIBRARY PREFIXES ...]

Static archives carry every non-static name into the programs that link
them, and a shared library everything its visibility lets out: internal
names must be prefixed (o2h_..., or the library's own) so that they can
never collide with a user's.
"""
import subprocess
import sys


def exported(lib):
    args = ["nm", "-D", "--defined-only"] if ".so" in lib else ["nm", "-g", "--defined-only"]
    out = subprocess.run(args + [lib], check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBRVWtdbr" and parts[1].isupper():
            names.add(parts[2])
    return names


def main(argv):
    if len(argv) < 3 or len(argv) % 2 == 0:
        print(__doc__)
        return 2
    bad = 0
    for lib, prefixes in zip(argv[1::2], argv[2::2]):
        allowed = tuple(prefixes.split(","))
        names = exported(lib)
        wrong = sorted(n for n in names if not n.startswith(allowed))
        for n in wrong:
            print(f"{lib}: exports {n}, which does not start with {' or '.join(allowed)}")
        bad += len(wrong)
        print(f"{lib}: {len(names)} exported names, {len(wrong)} unprefixed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
