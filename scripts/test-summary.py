#!/usr/bin/env python3
"""Print one line 'N passed, N failed, N skipped' from meson test logs.

Counts criterion's individual tests (meson reads them as TAP subtests), not
just test programs: each line of testlog.json is one test program; TAP
programs carry their subtests' counts in their stdout.
"""
import json
import re
import sys


def count(path):
    passed = failed = skipped = 0
    for line in open(path):
        entry = json.loads(line)
        result = entry["result"]
        out = entry.get("stdout") or ""
        tap = re.findall(r"^(ok|not ok)\b.*$", out, re.M)
        if tap and re.search(r"^1\.\.\d+", out, re.M):
            for t in re.findall(r"^(ok|not ok)\b(.*)$", out, re.M):
                if t[0] == "ok" and "# SKIP" in t[1]:
                    skipped += 1
                elif t[0] == "ok":
                    passed += 1
                else:
                    failed += 1
            if result not in ("OK", "EXPECTEDFAIL", "SKIP") and not any(
                    t == "not ok" for t in tap):
                failed += 1  # the program itself failed (crash, timeout)
        elif result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
    return passed, failed, skipped


def main():
    totals = [0, 0, 0]
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--failed":
        totals[1] += int(args[1])  # steps that failed before any test ran
        args = args[2:]
    for path in args:
        for i, n in enumerate(count(path)):
            totals[i] += n
    print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
