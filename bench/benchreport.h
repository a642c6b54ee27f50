/* The RESULT lines bench/run collects (see benchreport.c). */
#ifndef O2H_BENCHREPORT_H
#define O2H_BENCHREPORT_H

#include <stdbool.h>
#include <sys/resource.h>

/** CPU time and wall clock at the start of one measurement. */
typedef struct br_meter {
    double t0;
    struct rusage self0, kids0;
} br_meter;

typedef struct br_result {
    const char *bench;      /**< "tcp_throughput" */
    const char *path;       /**< "o2hub-tcp", "raw-tcp": no spaces */
    int payload;            /**< bytes per message on the wire */
    long count;             /**< messages measured (CPU time is divided by it) */
    double msgs_s;          /**< > 0: this rate; else see rate_from_elapsed */
    bool rate_from_elapsed; /**< count / elapsed time since br_start */
    double *lat_s;          /**< latency samples in seconds, or NULL */
    int n_lat;
    bool no_cpu;  /**< the meter did not span the work (threads): print "-" for CPU */
    double cpu_s; /**< > 0: CPU seconds measured by the caller, instead of the meter's */
} br_result;

void br_start(br_meter *m);

/** Print the RESULT line. Call after waiting for forked children, so their CPU
 * time and peak RSS count. */
void br_report(const br_meter *m, const br_result *r);

#endif
