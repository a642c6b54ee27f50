#!/usr/bin/env python3
"""Fail if a public message function cannot be reached through the host table.

Usage: check-host-table.py MSG_H LIBO2HUB_SO

Every function of msg.h is either in O2H_MSG_FUNCTIONS (one list that
declares it and makes its host->msg member) or one of the few that take a
pool, which the host table offers with the plugin's handle instead. And
every message function libo2hub exports is declared in msg.h.
"""
import re
import subprocess
import sys

# Declared outside the list because they take an o2h_pool: the first three
# have host->msg counterparts (taking o2h_plugin *), pools are not a
# plugin's business.
POOL_FUNCTIONS = {"pool_new", "pool_free", "pool_get_stats", "msg_alloc", "msg_from_bytes",
                  "builder_new"}
MESSAGE_AREA = re.compile(r"^o2h_(msg|add|builder|reader|bundle|type|pool)_")


def main(msg_h, lib):
    text = open(msg_h).read()
    start = text.index("#define O2H_MSG_FUNCTIONS(X)")
    end = text.index("// clang-format on", start)
    listed = set(re.findall(r"\bX\([^,]+,\s*(\w+)\s*,", text[start:end]))
    explicit = set(re.findall(r"O2H_EXPORT[^;(]*?\bo2h_(\w+)\s*\(", text))
    problems = []
    for name in sorted(explicit - POOL_FUNCTIONS):
        problems.append(f"o2h_{name} is declared outside O2H_MSG_FUNCTIONS: plugins cannot call it")
    for name in sorted(listed & explicit):
        problems.append(f"o2h_{name} is declared twice (in the list and outside it)")
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True,
                         text=True).stdout
    exported = {p[2] for p in (l.split() for l in out.splitlines()) if len(p) == 3}
    for sym in sorted(s for s in exported if MESSAGE_AREA.match(s)):
        if sym[4:] not in listed | explicit:
            problems.append(f"{sym} is exported by libo2hub but not declared in msg.h")
    for name in sorted(listed | explicit):
        if "o2h_" + name not in exported:
            problems.append(f"o2h_{name} is declared in msg.h but libo2hub does not export it")
    for p in problems:
        print(p)
    print(f"{len(listed)} functions in the list, {len(explicit)} taking a pool, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
