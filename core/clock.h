/*
 * Clock synchronisation as O2 does it (docs/design.md): one reference
 * process offers "_cs" and answers !_cs/get; the others ping it over UDP,
 * keep the last 5 round trips, and take the offset of the fastest one.
 * The first estimate sets the clock; later ones slew it (rate 1.1 or 0.9
 * for 10x the error) and only jump when the error is over a second.
 */
#ifndef O2H_CLOCK_H
#define O2H_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "o2hub/o2hub.h"

#define CLOCK_HISTORY 5

typedef struct clock_state {
    bool synced;
    bool reference;
    /* global = g_base + (local - l_base) * rate, with rate back to 1 after rate_until */
    double g_base, l_base, rate, rate_until;
    /* pinging the reference */
    o2h_timer *ping_timer;
    int32_t serial;
    double sent_at;
    double ping_start;
    int pings_sent;
    int replies;
    double rtt[CLOCK_HISTORY], offset[CLOCK_HISTORY];
    double mean_rtt, min_rtt;
    o2h_time_jump_fn jump_fn;
    void *jump_ctx;
} clock_state;

/** Install the handlers for /_o2/cs/put and /_o2/cs/cs. */
int o2h__clock_init(o2h_router *r);
void o2h__clock_fini(o2h_router *r);

/** Global time now (-1 if not synchronised). */
double o2h__clock_global(const o2h_router *r);

/**
 * A new estimate of O2 time at local time `l` (from the pings, or a test):
 * the first sets the clock; later ones slew it, or jump (see
 * o2h_time_jump_callback_set).
 */
void o2h__clock_estimate(o2h_router *r, double estimate, double l);

/** Become the reference: offer "_cs", synchronised at once. */
int o2h__clock_become_reference(o2h_router *r);

/** The "_cs" service appeared or went away: start or stop pinging. */
void o2h__clock_reference_changed(o2h_router *r);

/** Send !_o2/cs/cs on `link` if this process is synchronised (at connect time). */
void o2h__clock_announce_sync_on(o2h_router *r, o2h_link *link);

#endif
