/* Read pacing for OSC ports: see osc_pace.h for why. */
#include "osc_pace.h"

#include <stdio.h>
#include <time.h>

/* Wake-ups in a row, each less than the interval after the last read ended,
 * that mean a flood rather than a burst: a few messages sent together never
 * pace. */
#define QUICK_WAKES_TO_PACE 8

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void o2h_osc_pacer_init(osc_pacer *pc, const o2h_host *host, o2h_plugin *self, double interval,
                        osc_pace_read_fn read, osc_pace_watch_fn watch, void *ctx,
                        const char *name) {
    *pc = (osc_pacer){
        .host = host, .self = self, .interval = interval, .read = read, .watch = watch, .ctx = ctx};
    snprintf(pc->name, sizeof pc->name, "%s", name);
}

static void unpace(osc_pacer *pc) {
    pc->host->loop->timer_stop(pc->timer);
    pc->timer = NULL;
    pc->quick_wakes = 0;
    pc->watch(pc->ctx, true);
    pc->host->log->write(pc->self, O2H_LOG_DEBUG, "%s: flood over after %lu paced reads", pc->name,
                         pc->paced_reads);
}

static void on_tick(void *ctx) {
    osc_pacer *pc = ctx;
    osc_read_result r = pc->read(pc->ctx); /* CLOSED: pc may be freed */
    if (r == OSC_READ_CLOSED) return;
    pc->last_read_end = now_s();
    pc->paced_reads++;
    if (r == OSC_READ_NOTHING) unpace(pc);
}

void o2h_osc_pacer_wake(osc_pacer *pc) {
    bool quick = now_s() - pc->last_read_end < pc->interval;
    pc->quick_wakes = quick ? pc->quick_wakes + 1 : 0;
    if (pc->read(pc->ctx) != OSC_READ_SOME) return;
    pc->last_read_end = now_s();
    if (pc->interval <= 0 || pc->timer || pc->quick_wakes < QUICK_WAKES_TO_PACE) return;
    pc->timer = pc->host->loop->timer_start(pc->self, pc->interval, pc->interval, on_tick, pc);
    if (!pc->timer) return; /* no memory: keep reading on every wake-up */
    pc->watch(pc->ctx, false);
    pc->floods++;
    pc->paced_reads = 0;
    pc->host->log->write(pc->self, O2H_LOG_DEBUG, "%s: a flood: reading every %.0f us", pc->name,
                         pc->interval * 1e6);
}

void o2h_osc_pacer_stop(osc_pacer *pc) {
    if (!pc->timer) return;
    pc->host->loop->timer_stop(pc->timer);
    pc->timer = NULL;
    pc->host->log->write(pc->self, O2H_LOG_DEBUG, "%s: flood over after %lu paced reads (closed)",
                         pc->name, pc->paced_reads);
}
