/*
 * The event loop of one router: epoll for file descriptors, a binary heap of
 * timers on CLOCK_MONOTONIC, and an eventfd for wake-ups from other threads
 * (and signal handlers).
 */
#ifndef O2H_LOOP_H
#define O2H_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "o2hub/plugin.h"

typedef struct loop {
    int epfd;
    int wakefd;
    int timerfd;             /* armed to the earliest timer: sub-millisecond precision */
    uint64_t armed_ns;       /* deadline timerfd is armed for, 0 = disarmed */
    struct o2h_timer **heap; /* min-heap by deadline */
    uint32_t heap_len, heap_cap;
    struct o2h_watch *dead_watches; /* removed during a poll, freed after it */
    uint32_t n_watches;
    uint64_t turn; /* polls so far: which watches were ready in the last one (busy ones) */
    bool in_poll;
    bool in_deferred; /* o2h__loop_run_deferred is running */
    /* A caller outside the loop (an embedder's send) runs the deferred phase when it
     * returns: defers meanwhile need no wake-up. */
    uint32_t turn_open;
    atomic_bool wake_pending;
    o2h_deferred *deferred_head, *deferred_tail; /* the deferred phase's calls, in order */
} loop;

/** Monotonic time in nanoseconds. */
uint64_t o2h__loop_now_ns(void);

int o2h__loop_init(loop *lp);
/** Frees remaining watches' and timers' memory (does not close their fds). */
void o2h__loop_fini(loop *lp);

o2h_watch *o2h__loop_watch(loop *lp, int fd, unsigned events, o2h_fd_cb cb, void *ctx);
int o2h__loop_watch_modify(o2h_watch *w, unsigned events);
/** Safe from inside callbacks, including the watch's own. */
void o2h__loop_watch_remove(o2h_watch *w);

/**
 * A timer firing after `delay_s` and then every `period_s` (if > 0). The
 * handle stays valid until o2h__loop_timer_stop, even after a one-shot fired.
 */
o2h_timer *o2h__loop_timer_start(loop *lp, double delay_s, double period_s, o2h_timer_cb cb,
                                 void *ctx);
/** Cancel and free; safe from inside callbacks, including the timer's own. */
void o2h__loop_timer_stop(o2h_timer *t);

/**
 * Run due timers, wait up to `timeout_ms` (-1: no limit) for fds or a
 * wake-up, dispatch them, run due timers again. Returns the number of
 * callbacks run (wake-ups count one) or a negative error. *woken is set
 * when the wake fd fired.
 */
int o2h__loop_poll(loop *lp, int timeout_ms, bool *woken);

/**
 * Call fn(ctx) in the deferred phase: at the end of o2h__loop_poll (and of
 * o2h__loop_run_deferred), once no callback is on the stack. `d` is the caller's
 * storage; a `d` already pending stays as it is. Never fails.
 *
 * The deferred phase is the end of a loop turn: transports write what they
 * queued during the turn there, in as few system calls as they can. So a call
 * deferred outside a poll and outside a turn_open section (a plugin started,
 * a service made by the embedder) wakes the loop: o2h__loop_poll runs it
 * before it waits, and an embedder watching o2h_router_fd polls soon.
 */
void o2h__loop_defer(loop *lp, o2h_deferred *d, void (*fn)(void *ctx), void *ctx);

/** Run the deferred calls, those they defer in turn included, until none is left. */
void o2h__loop_run_deferred(loop *lp);

/** Wake a waiting o2h__loop_poll (thread-safe, async-signal-safe). */
void o2h__loop_wake(loop *lp);

#endif
