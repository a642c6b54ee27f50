/*
 * Read pacing for OSC ports under a flood, like a network card's interrupt
 * moderation. A socket read on every wake-up is the fastest answer to a lone
 * message, but under a sustained stream it makes the sender pay for it: each
 * prompt read sends an ACK (or empties the UDP queue) so the sender's kernel
 * wakes us again for every few bytes, and a client without TCP_NODELAY (liblo)
 * ends up sending one small segment per message. Once the socket turns readable
 * again less than `interval` after each read, several times in a row, the pacer stops watching
 * the socket and reads it from a periodic timer instead, at most once per
 * `interval`; the first read that finds nothing ends the pacing. A message
 * that arrives alone, or a short burst, is never delayed; during a flood a
 * message waits at most `interval` longer.
 */
#ifndef O2H_OSC_PACE_H
#define O2H_OSC_PACE_H

#include <o2hub/plugin.h>

typedef enum osc_read_result {
    OSC_READ_NOTHING, /* the socket had nothing */
    OSC_READ_SOME,    /* something was read */
    OSC_READ_CLOSED   /* the socket was closed: its pacer may be gone */
} osc_read_result;

/** Reads what is waiting on the socket. */
typedef osc_read_result (*osc_pace_read_fn)(void *ctx);
/** Stops (while paced) or resumes watching the socket for input. */
typedef void (*osc_pace_watch_fn)(void *ctx, bool on);

typedef struct osc_pacer {
    const o2h_host *host;
    o2h_plugin *self;
    double interval; /* seconds; 0 never paces */
    osc_pace_read_fn read;
    osc_pace_watch_fn watch; /* the socket is not watched while paced */
    void *ctx;
    char name[48]; /* for log lines: "OSC TCP port 9001" */
    double last_read_end;
    int quick_wakes;      /* wake-ups in a row less than `interval` after a read ended */
    o2h_timer *timer;     /* set while paced */
    unsigned long floods; /* times pacing started */
    unsigned long paced_reads;
} osc_pacer;

void o2h_osc_pacer_init(osc_pacer *pc, const o2h_host *host, o2h_plugin *self, double interval,
                        osc_pace_read_fn read, osc_pace_watch_fn watch, void *ctx,
                        const char *name);
/** The socket is readable: read it, and start pacing if wake-ups come too fast. */
void o2h_osc_pacer_wake(osc_pacer *pc);
/** Stop the timer (the caller stops watching the socket). */
void o2h_osc_pacer_stop(osc_pacer *pc);

#endif
