#!/usr/bin/env python3
"""Turn the RESULT lines of bench/run's log into a table, a CSV and a plot.

Usage: report.py RESULTS.txt OUTPUT_DIR
A benchmark that ran several times (bench/run's BENCH_RUNS) gets one row:
the run with the median rate (latency rows: the median p50), with the range
over the runs beside it; results.csv keeps every run.
Writes OUTPUT_DIR/results.csv, OUTPUT_DIR/table.md and, when gnuplot is
installed, OUTPUT_DIR/latency.png (the latency distributions, from the
*.lat sample files the benchmarks wrote). Prints the table.
"""
import csv
import glob
import os
import re
import shutil
import subprocess
import sys

FIELDS = ["bench", "path", "payload", "count", "msgs_s", "p50_us", "p99_us", "p999_us",
          "cpu_ns_per_msg", "peak_rss_kb"]


def parse(path):
    rows, header = [], []
    for line in open(path):
        if line.startswith("# "):
            header.append(line[2:].strip())
        if not line.startswith("RESULT "):
            continue
        row = dict(re.findall(r"(\w+)=(\S+)", line))
        rows.append(row)
    return header, rows


def number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def short(v):
    return "%.2f M" % (v / 1e6) if v >= 1e6 else "%.0f k" % (v / 1e3)


def medians(rows):
    """One row per (bench, path): the run with the median rate (or, for
    latency rows, the median p50), and the range over the runs."""
    groups = {}
    for r in rows:
        groups.setdefault((r["bench"], r["path"]), []).append(r)
    out = []
    for runs in groups.values():
        field = "msgs_s" if number(runs[0].get("msgs_s")) else "p50_us"
        scored = sorted((r for r in runs if number(r.get(field)) is not None),
                        key=lambda r: number(r[field]))
        if not scored:
            out.append(dict(runs[0], spread="-"))
            continue
        mid = dict(scored[(len(scored) - 1) // 2])
        lo, hi = number(scored[0][field]), number(scored[-1][field])
        if len(scored) == 1:
            mid["spread"] = "-"
        elif field == "msgs_s":
            mid["spread"] = "%s–%s" % (short(lo), short(hi))
        else:
            mid["spread"] = "p50 %g–%g" % (lo, hi)
        out.append(mid)
    return out


def table(header, rows):
    out = []
    for h in header:
        out.append("_" + h + "_  ")
    out.append("")
    out.append("| benchmark | path | payload B | msgs/s | p50 µs | p99 µs | p99.9 µs "
               "| CPU ns/msg | peak RSS KB | range over runs |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        rate = r.get("msgs_s", "-")
        if rate != "-":
            rate = "{:,}".format(int(float(rate)))
        out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["bench"], r["path"], r["payload"], rate, r["p50_us"], r["p99_us"], r["p999_us"],
            r["cpu_ns_per_msg"], r["peak_rss_kb"], r.get("spread", "-")))
    return "\n".join(out) + "\n"


def plot(outdir):
    lats = sorted(glob.glob(os.path.join(outdir, "*.lat")))
    if not lats or not shutil.which("gnuplot"):
        return False
    # Each file sorted into an empirical CDF: x = latency, y = fraction.
    series = []
    for f in lats:
        values = sorted(float(v) for v in open(f) if v.strip())
        if not values:
            continue
        cdf = f[:-4] + ".cdf"
        with open(cdf, "w") as out:
            n = len(values)
            for i, v in enumerate(values):
                out.write("%g %g\n" % (v, (i + 1) / n))
        series.append((cdf, os.path.basename(f)[:-4]))
    script = [
        "set terminal pngcairo size 1000,600" if "pngcairo" in subprocess.run(
            ["gnuplot", "-e", "set terminal"], capture_output=True, text=True).stdout +
        subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True).stderr
        else "set terminal png size 1000,600",
        "set output '%s'" % os.path.join(outdir, "latency.png"),
        "set title 'o2hub latency distributions (CDF)'",
        "set xlabel 'latency (µs, log scale)'", "set ylabel 'fraction of messages'",
        "set logscale x", "set key right bottom", "set grid",
    ] + [
        # one distinct color per series (gnuplot's default cycle has only 8)
        "set linetype %d lc rgb '%s' dt %d" % (i + 1, c, 1 + i // 8)
        for i, c in enumerate(["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                               "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                               "#000000", "#aec7e8", "#98df8a", "#ff9896"])
    ] + [
        "plot " + ", ".join("'%s' using 1:2 with lines lt %d lw 2 title '%s'" %
                            (c, i + 1, t.replace("_", "-")) for i, (c, t) in enumerate(series)),
    ]
    subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True)
    return True


def main():
    log, outdir = sys.argv[1], sys.argv[2]
    header, rows = parse(log)
    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:  # every run
            w.writerow(r)
    text = table(header, medians(rows))
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write(text)
    print()
    print(text)
    if plot(outdir):
        print("plot: " + os.path.join(outdir, "latency.png"))
    else:
        print("plot: skipped (install gnuplot)")


if __name__ == "__main__":
    main()
