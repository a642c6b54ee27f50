/*
 * The daemon's signals: SIGINT and SIGTERM stop the router, SIGHUP asks for
 * the config file to be read again. The handler only records the signal and
 * wakes the loop (o2h_router_stop is async-signal-safe: it writes the loop's
 * eventfd, a self-pipe); the work happens in main, after o2h_router_run has
 * returned, and then the router runs on.
 */
#ifndef O2HUB_DAEMON_SIGNALS_H
#define O2HUB_DAEMON_SIGNALS_H

#include <signal.h>

#include <o2hub/o2hub.h>

typedef struct daemon_signals {
    o2h_router *volatile router;
    volatile sig_atomic_t stop;   /* SIGINT or SIGTERM came */
    volatile sig_atomic_t reload; /* SIGHUP came */
} daemon_signals;

/** Install the handlers for `s` (one daemon_signals per process: signals are);
 * `r` may be NULL until the router exists (then signals are only recorded). */
void daemon_signals_install(daemon_signals *s, o2h_router *r);

/** The router to wake from now on; a signal that came before wakes it at once. */
void daemon_signals_attach(daemon_signals *s, o2h_router *r);

/** Back to the default handlers. */
void daemon_signals_remove(daemon_signals *s);

#endif
