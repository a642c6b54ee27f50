/* Listening sockets for the TCP-based transports: see listener.h. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_EVENT 64 /* then the loop serves others before accepting more */
#define RETRY_FIRST 0.05     /* seconds, out of descriptors */
#define RETRY_MAX 1.0
#define REFUSED_LOG_EVERY 10.0 /* seconds between lines about the cap */

typedef enum accept_result { ACCEPT_DRAINED, ACCEPT_BUDGET, ACCEPT_STARVED } accept_result;

struct o2h_listener {
    o2h_listener_params p;
    char name[48]; /* "TCP port 5000", for log lines */
    int fd;
    int port;
    o2h_watch *watch;
    int open; /* accepted connections not yet released */
    bool closed;
    unsigned long refused_unlogged; /* over the cap since the last line about it */
    double refused_logged_at;       /* local time of that line; < 0 before the first */
    bool starved;                   /* out of descriptors: not watching, retrying */
    int starve_errno;
    double starved_since;
    double backoff;
    o2h_timer *retry;
    bool retry_soon; /* `retry` fires at the next loop pass */
    o2h_deferred free_later;
};

static double now(const o2h_listener *l) {
    return l->p.host->loop->local_time(l->p.self);
}

static bool out_of_resources(int e) {
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* Over the cap: close it at once, and say so now and then. */
static void refuse(o2h_listener *l, int fd) {
    close(fd);
    l->refused_unlogged++;
    double t = now(l);
    if (l->refused_logged_at >= 0 && t - l->refused_logged_at < REFUSED_LOG_EVERY) return;
    l->p.host->log->write(l->p.self, O2H_LOG_WARN,
                          "%s: %d connections open, the most allowed (max_connections): "
                          "closed %lu new connection(s)",
                          l->name, l->open, l->refused_unlogged);
    l->refused_unlogged = 0;
    l->refused_logged_at = t;
}

static accept_result accept_some(o2h_listener *l) {
    for (int i = 0; i < ACCEPTS_PER_EVENT && !l->closed; i++) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (out_of_resources(errno)) {
                l->starve_errno = errno;
                return ACCEPT_STARVED;
            }
            /* A connection that went away before we took it: try the next one. */
            if (errno == ECONNABORTED || errno == EPROTO || errno == EPERM || errno == EINTR)
                continue;
            return ACCEPT_DRAINED; /* EAGAIN, or an error the next event meets again */
        }
        if (l->open >= l->p.max_connections)
            refuse(l, fd);
        else if (l->p.on_accept(l->p.ctx, fd, &peer))
            l->open++;
    }
    return ACCEPT_BUDGET;
}

static void on_retry(void *ctx);

static void retry_in(o2h_listener *l, double delay) {
    l->p.host->loop->timer_stop(l->retry);
    l->retry = l->p.host->loop->timer_start(l->p.self, delay, 0, on_retry, l);
    l->retry_soon = l->retry && delay == 0;
    if (!l->retry) l->p.host->loop->watch_modify(l->watch, O2H_EV_READ); /* better than stuck */
}

/* Out of descriptors: the socket stays readable, so stop watching it (the
 * loop would spin) and try again from a timer. One warning per episode. */
static void starve(o2h_listener *l) {
    if (!l->starved) {
        l->starved = true;
        l->starved_since = now(l);
        l->backoff = RETRY_FIRST;
        bool fds = l->starve_errno == EMFILE || l->starve_errno == ENFILE;
        l->p.host->log->write(l->p.self, O2H_LOG_WARN, "%s: out of %s: not accepting for now (%s)",
                              l->name, fds ? "file descriptors" : "memory",
                              strerror(l->starve_errno));
        l->p.host->loop->watch_modify(l->watch, 0);
    } else {
        l->backoff = l->backoff * 2 < RETRY_MAX ? l->backoff * 2 : RETRY_MAX;
    }
    retry_in(l, l->backoff);
}

static void recovered(o2h_listener *l) {
    l->starved = false;
    l->p.host->loop->watch_modify(l->watch, O2H_EV_READ);
    l->p.host->log->write(l->p.self, O2H_LOG_INFO, "%s: accepting connections again after %.1f s",
                          l->name, now(l) - l->starved_since);
}

static void on_retry(void *ctx) {
    o2h_listener *l = ctx;
    l->p.host->loop->timer_stop(l->retry); /* one-shot timers are freed by stopping them */
    l->retry = NULL;
    l->retry_soon = false;
    accept_result r = accept_some(l);
    if (l->closed) return;
    if (r == ACCEPT_STARVED)
        starve(l);
    else
        recovered(l);
}

static void on_event(void *ctx, int fd, unsigned events) {
    o2h_listener *l = ctx;
    (void)fd, (void)events;
    if (accept_some(l) == ACCEPT_STARVED && !l->closed) starve(l);
}

static int bind_and_listen(o2h_listener *l) {
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) return errno;
    int one = 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    if (bind(l->fd, (const struct sockaddr *)&l->p.bind_addr, sizeof l->p.bind_addr) != 0 ||
        listen(l->fd, l->p.backlog) != 0 ||
        getsockname(l->fd, (struct sockaddr *)&bound, &len) != 0) {
        int err = errno;
        close(l->fd);
        return err;
    }
    l->port = ntohs(bound.sin_port);
    return 0;
}

o2h_listener *o2h_listener_open(const o2h_listener_params *p, int *error) {
    o2h_listener *l = calloc(1, sizeof *l);
    if (!l) {
        *error = ENOMEM;
        return NULL;
    }
    l->p = *p;
    l->refused_logged_at = -1;
    int err = bind_and_listen(l);
    if (err) {
        *error = err;
        free(l);
        return NULL;
    }
    snprintf(l->name, sizeof l->name, "%s port %d", p->what, l->port);
    l->watch = p->host->loop->watch_fd(p->self, l->fd, O2H_EV_READ, on_event, l);
    if (!l->watch) {
        *error = ENOMEM;
        close(l->fd);
        free(l);
        return NULL;
    }
    return l;
}

int o2h_listener_port(const o2h_listener *l) {
    return l->port;
}

void o2h_listener_release(o2h_listener *l) {
    if (l->open > 0) l->open--;
    /* A descriptor was freed: out of them, try again now rather than after the backoff. */
    if (l->starved && !l->retry_soon && !l->closed) retry_in(l, 0);
}

void o2h_listener_close(o2h_listener *l) {
    if (!l || l->closed) return;
    l->closed = true;
    l->p.host->loop->timer_stop(l->retry);
    l->retry = NULL;
    l->p.host->loop->watch_remove(l->watch);
    l->watch = NULL;
    close(l->fd);
    /* accept_some, up the stack, may still look at l (l->closed). */
    l->p.host->loop->defer(l->p.self, &l->free_later, free, l);
}
