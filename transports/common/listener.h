/*
 * A listening TCP socket for the transports that accept connections (tcp,
 * the OSC transport's TCP ports): the accept loop, a cap on the connections
 * open at once, and what to do when the process runs out of descriptors.
 *
 * Over the cap (`max_connections`) a new connection is accepted and closed at
 * once, so its client learns straight away and the backlog never fills with
 * connections nobody will serve; these are counted and logged at most once
 * every ten seconds.
 *
 * When accept fails for want of descriptors (EMFILE, ENFILE) the socket stays
 * readable, and watching it would make the loop spin. The listener stops
 * watching it instead, logs one warning for the episode, and tries again from
 * a timer (50 ms, doubling up to 1 s, and at once when one of its own
 * connections closes); once accept works again it watches the socket again
 * and logs one line saying so.
 */
#ifndef O2H_LISTENER_H
#define O2H_LISTENER_H

#include <netinet/in.h>
#include <stdbool.h>

#include <o2hub/plugin.h>

typedef struct o2h_listener o2h_listener;

typedef struct o2h_listener_params {
    const o2h_host *host;
    o2h_plugin *self;
    struct sockaddr_in bind_addr;
    int backlog;
    int max_connections; /**< accepted connections open at once (o2h_listener_release) */
    /** Names the listener in log lines, e.g. "TCP" (the port is added). */
    const char *what;
    /**
     * A new connection (non-blocking, close-on-exec). The callback owns `fd`
     * (and closes it if it cannot serve it). It returns true when the
     * connection is open: it counts against max_connections until
     * o2h_listener_release().
     */
    bool (*on_accept)(void *ctx, int fd, const struct sockaddr_in *peer);
    void *ctx;
} o2h_listener_params;

/** Bind, listen and watch. NULL with *error set (an errno) if that fails. */
o2h_listener *o2h_listener_open(const o2h_listener_params *p, int *error);
/** The port it is bound to (the kernel's choice when 0 was asked). */
int o2h_listener_port(const o2h_listener *l);
/** One of the connections it counted has closed (never call it after o2h_listener_close). */
void o2h_listener_release(o2h_listener *l);
/** Stop listening and free (in the deferred phase); safe in its own callback. NULL: nothing. */
void o2h_listener_close(o2h_listener *l);

#endif
