#!/usr/bin/env python3
"""Turn the RESULT lines of bench/run's log into a table, a CSV and a plot.

Usage: report.py RESULTS.txt OUTPUT_DIR
A benchmark that ran several times (bench/run's BENCH_RUNS) gets one row:
the run with the median rate (latency rows: the median p50), with the range
over the runs beside it; results.csv keeps every run.
The isolation benchmark's ISOLATION line becomes a summary under the table
(its RESULT rows are in it), and the ensemble benchmark's ENSEMBLE lines a
second table (ensemble.csv) and plot; SKIP lines are listed.
Writes OUTPUT_DIR/results.csv, OUTPUT_DIR/table.md and, when gnuplot is
installed, OUTPUT_DIR/latency.png (the latency distributions, from the
*.lat sample files the benchmarks wrote) and OUTPUT_DIR/ensemble.png.
Prints the tables.
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


ENSEMBLE_FIELDS = ["discovery", "n", "formed", "mesh_s", "synced_s", "rss_kb", "rss_kb_max",
                   "cpu_pct", "cpu_pct_max", "clock_s", "net_s", "disc_s", "window_s"]


def parse(path):
    """The header lines, RESULT rows, and the other kinds of line by their first word."""
    rows, header, extra = [], [], {"ENSEMBLE": [], "ISOLATION": [], "SKIP": []}
    for line in open(path):
        if line.startswith("# "):
            header.append(line[2:].strip())
        kind = line.split(" ", 1)[0]
        if kind != "RESULT" and kind not in extra:
            continue
        row = dict(re.findall(r"(\w+)=(\S+)", line))
        (rows if kind == "RESULT" else extra[kind]).append(row)
    return header, rows, extra


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


def isolation_summary(lines):
    """The control stream's p99 under the flood against idle (the last isolation run)."""
    if not lines:
        return ""
    r = lines[-1]
    ratio = number(r.get("ratio"))
    verdict = "-" if ratio is None or ratio < 0 else ("yes" if ratio <= 2 else "no")
    single = ""
    if "ratio_single" in r:
        single = ("; beside the same flood sent as single datagrams (one `sendmmsg` of 200 a "
                  "burst), p99 %s µs: %s× (p50 %s µs, %s×), the router %s %% of a core, "
                  "%s msgs/s received" % (
                      r.get("p99_single_us"), r.get("ratio_single"), r.get("p50_single_us", "-"),
                      r.get("ratio_p50_single", "-"), r.get("router_cpu_single_pct", "-"),
                      r.get("single_msgs_s", "-")))
    if r.get("segmented") == "0":
        single += " (this kernel refused segmented sends: both floods were single datagrams)"
    return ("\n**isolation**: 1 kHz TCP control stream through a router, p99 %s µs idle, %s µs "
            "beside the UDP flood: **%.2f×** (goal ≤ 2×: %s); p50 %s → %s µs (%s×). The flood: "
            "%s msgs/s sent, %s received by its service; the router used %s %% of a core idle, "
            "%s %% under the flood, and waited for a CPU (runnable) %s ms a second idle, %s ms "
            "under the flood; control messages lost: %s%s.\n" % (
                r.get("p99_idle_us"), r.get("p99_flood_us"), ratio if ratio else -1, verdict,
                r.get("p50_idle_us", "-"), r.get("p50_flood_us", "-"), r.get("ratio_p50", "-"),
                r.get("flood_sent_s", "-"), r.get("flood_msgs_s"),
                r.get("router_cpu_idle_pct", "-"), r.get("router_cpu_flood_pct", "-"),
                r.get("router_wait_idle_ms_s", "-"), r.get("router_wait_flood_ms_s", "-"),
                r.get("ctl_lost"), single))


def ensemble_rows(lines):
    """One row per (discovery, N), the last run of each, in order of discovery then N."""
    last = {}
    for r in lines:
        last[(r["discovery"], int(r["n"]))] = r
    return [last[k] for k in sorted(last, key=lambda k: (k[0] != "static", k[0], k[1]))]


def ensemble_table(rows, skips):
    if not rows and not skips:
        return ""
    out = ["", "| ensemble | N | formed | mesh formed s | clocks synced s | RSS KB (max) "
           "| idle CPU % of a core (max) | clock msgs/s | tcp+udp msgs/s | discovery msgs/s |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        formed = r.get("formed") == "1"
        out.append("| {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} | {} | {} |".format(
            r["discovery"], r["n"], "yes" if formed else "**no**",
            r["mesh_s"] if formed else "-", r["synced_s"] if formed else "-",
            r["rss_kb"], r["rss_kb_max"], r["cpu_pct"], r["cpu_pct_max"],
            r["clock_s"], r["net_s"], r["disc_s"]))
    for k in skips:
        out.append("")
        out.append("_skipped: %s %s (%s)_" % (k.get("bench", "?"), k.get("discovery", ""),
                                           k.get("reason", "").replace("-", " ")))
    out.append("")
    out.append("Per process, over an idle window (window_s in ensemble.csv) after the mesh "
               "formed: RSS and CPU median and largest; messages per second averaged over "
               "the processes.")
    return "\n".join(out) + "\n"


def gnuplot_terminal(size):
    probe = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    cairo = "pngcairo" in probe.stdout + probe.stderr
    return "set terminal %s size %s" % ("pngcairo" if cairo else "png", size)


def plot_ensemble(outdir, rows):
    """ensemble.png: mesh time, RSS, idle CPU and messages per second against N."""
    rows = [r for r in rows if r.get("formed") == "1"]
    if not rows or not shutil.which("gnuplot"):
        return False
    series = []
    for disc in sorted({r["discovery"] for r in rows}, key=lambda d: (d != "static", d)):
        dat = os.path.join(outdir, "ensemble-%s.dat" % disc)
        with open(dat, "w") as f:
            for r in rows:
                if r["discovery"] == disc:
                    f.write("%s %s %s %s %s %s %s\n" % (r["n"], r["mesh_s"], r["synced_s"],
                                                     r["rss_kb"], r["cpu_pct"], r["clock_s"],
                                                     r["net_s"]))
        series.append((dat, disc))

    def panel(title, ylabel, cols):
        plots = []
        for i, (dat, disc) in enumerate(series):
            for col, label in cols:
                plots.append("'%s' using 1:%d with linespoints lt %d lw 2 pt %d title '%s%s'" % (
                    dat, col, i + 1, 5 + 2 * (col % 3), disc, label))
        return ["set title '%s'" % title, "set ylabel '%s'" % ylabel, "plot " + ", ".join(plots)]

    script = [gnuplot_terminal("1000,700"),
              "set output '%s'" % os.path.join(outdir, "ensemble.png"),
              "set multiplot layout 2,2 title 'o2hub ensembles on one machine (N processes)'",
              "set xlabel 'processes'", "set logscale x 2", "set xrange [6:80]",
              "set xtics (8, 16, 32, 64)",
              "set grid", "set key left top", "set yrange [0:*]"]
    script += panel("until the full mesh and clock sync", "seconds",
                    [(2, " mesh"), (3, " synced")])
    script += panel("RSS per process (median)", "KB", [(4, "")])
    script += panel("idle CPU per process (median)", "% of a core", [(5, "")])
    script += panel("idle messages per process", "msgs/s", [(6, " clock"), (7, " tcp+udp")])
    script.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True)
    for dat, _ in series:
        os.remove(dat)
    return True


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
        gnuplot_terminal("1000,600"),
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
    header, rows, extra = parse(log)
    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:  # every run
            w.writerow(r)
    ensemble = ensemble_rows(extra["ENSEMBLE"])
    if ensemble:
        with open(os.path.join(outdir, "ensemble.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=ENSEMBLE_FIELDS, extrasaction="ignore")
            w.writeheader()
            for r in extra["ENSEMBLE"]:  # every run
                w.writerow(r)
    text = (table(header, medians(rows)) + isolation_summary(extra["ISOLATION"]) +
            ensemble_table(ensemble, [k for k in extra["SKIP"]]))
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write(text)
    print()
    print(text)
    if plot(outdir):
        print("plot: " + os.path.join(outdir, "latency.png"))
    elif not shutil.which("gnuplot"):
        print("plot: skipped (install gnuplot)")
    if plot_ensemble(outdir, ensemble):
        print("plot: " + os.path.join(outdir, "ensemble.png"))


if __name__ == "__main__":
    main()
