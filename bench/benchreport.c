/*
 * One machine-readable line per measurement, for bench/run:
 *   RESULT bench=NAME path=PATH payload=BYTES count=N msgs_s=X p50_us=X
 *          p99_us=X p999_us=X cpu_ns_per_msg=X peak_rss_kb=N
 * (absent figures are "-"), and, when $O2HUB_BENCH_OUT names a folder,
 * the latency samples in NAME-PATH.lat (microseconds, one per line) for
 * the latency plot.
 */
#include "benchreport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netbench.h"

static double cpu_s(const struct rusage *ru) {
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec * 1e-6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec * 1e-6;
}

void br_start(br_meter *m) {
    getrusage(RUSAGE_SELF, &m->self0);
    getrusage(RUSAGE_CHILDREN, &m->kids0);
    m->t0 = nb_now();
}

static void write_samples(const char *bench, const char *path, const double *lat_s, int n) {
    const char *dir = getenv("O2HUB_BENCH_OUT");
    if (!dir || !n) return;
    char file[512];
    snprintf(file, sizeof file, "%s/%s-%s.lat", dir, bench, path);
    FILE *f = fopen(file, "w");
    if (!f) return;
    for (int i = 0; i < n; i++)
        fprintf(f, "%.3f\n", lat_s[i] * 1e6);
    fclose(f);
}

/* A figure with `decimals`, or "-" when absent (negative). */
static void fmt(char *buf, size_t size, double v, int decimals) {
    if (v < 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.*f", decimals, v);
}

void br_report(const br_meter *m, const br_result *r) {
    double elapsed = nb_now() - m->t0;
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    double cpu = cpu_s(&self) - cpu_s(&m->self0) + cpu_s(&kids) - cpu_s(&m->kids0);
    if (r->cpu_s > 0) cpu = r->cpu_s;
    long rss = self.ru_maxrss > kids.ru_maxrss ? self.ru_maxrss : kids.ru_maxrss;
    double rate = r->msgs_s > 0 ? r->msgs_s : (r->rate_from_elapsed ? r->count / elapsed : -1);
    double p50 = -1, p99 = -1, p999 = -1;
    if (r->n_lat > 0) {
        double *sorted = malloc((size_t)r->n_lat * sizeof *sorted);
        if (sorted) {
            memcpy(sorted, r->lat_s, (size_t)r->n_lat * sizeof *sorted);
            p50 = nb_percentile(sorted, r->n_lat, 0.50) * 1e6;
            p99 = nb_percentile(sorted, r->n_lat, 0.99) * 1e6;
            p999 = nb_percentile(sorted, r->n_lat, 0.999) * 1e6;
            free(sorted);
        }
        write_samples(r->bench, r->path, r->lat_s, r->n_lat);
    }
    char s_rate[32], s50[32], s99[32], s999[32], s_cpu[32];
    fmt(s_rate, sizeof s_rate, rate, 0);
    fmt(s50, sizeof s50, p50, 2);
    fmt(s99, sizeof s99, p99, 2);
    fmt(s999, sizeof s999, p999, 2);
    fmt(s_cpu, sizeof s_cpu, r->count > 0 && !r->no_cpu ? cpu * 1e9 / (double)r->count : -1, 0);
    printf("RESULT bench=%s path=%s payload=%d count=%ld msgs_s=%s p50_us=%s p99_us=%s "
           "p999_us=%s cpu_ns_per_msg=%s peak_rss_kb=%ld\n",
           r->bench, r->path, r->payload, r->count, s_rate, s50, s99, s999, s_cpu, rss);
}
