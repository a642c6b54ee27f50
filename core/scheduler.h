/*
 * The scheduler: messages stamped with a future O2 time wait in a binary
 * min-heap (O(log n) insertion) and are routed when their time comes, by a
 * loop timer armed for the earliest one (timerfd: sub-millisecond).
 * Messages with equal times keep their order of arrival.
 */
#ifndef O2H_SCHED_H
#define O2H_SCHED_H

#include <stdint.h>

#include "o2hub/o2hub.h"

/* A bound on waiting messages: past it, a timed message is a counted drop. */
#define SCHED_LIMIT (1u << 20)

typedef struct sched_entry {
    double time;
    uint64_t seq;
    o2h_msg *msg;
} sched_entry;

typedef struct sched {
    sched_entry *heap;
    uint32_t len, cap;
    uint64_t next_seq;
    o2h_timer *timer;
} sched;

/** Hold `msg` (takes the reference) until O2 time `msg`'s timestamp. */
int o2h__sched_insert(o2h_router *r, o2h_msg *msg);

/** Release every waiting message (router shutdown). */
void o2h__sched_fini(o2h_router *r);

/** Number of waiting messages. */
uint32_t o2h__sched_pending(const o2h_router *r);

#endif
