/*
 * OSC ports: servers that take OSC packets (UDP datagrams, or TCP streams
 * with length or SLIP framing) and deliver each message to an O2 service:
 * "/rest" becomes "/service/rest", as O2's o2_osc_port_new does. Bundle
 * timetags become O2 timestamps (the core's scheduler holds future ones);
 * without clock sync every message is delivered at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osc.h"

typedef struct delivery {
    osc_port *port;
    bool have_clock; /* read the clocks only for timetags (most packets have none) */
    osc_clock clock;
} delivery;

static int deliver_one(void *ctx, const osc_view *m, uint64_t tag) {
    delivery *dv = ctx;
    osc_plugin *pl = dv->port->pl;
    double ts = 0;
    if (!dv->have_clock && (tag > OSC_IMMEDIATELY || strchr(m->types, 't'))) {
        dv->clock = o2h_osc_plugin_clock(pl);
        dv->have_clock = true;
    }
    if (tag > OSC_IMMEDIATELY && dv->clock.synced) {
        ts = o2h_osc_ntp_to_o2(&dv->clock, tag);
        if (ts <= dv->clock.o2_now) ts = 0; /* already due */
    }
    /* The O2 form is the OSC message plus "/service", a header and padding. */
    size_t bound = m->size + strlen(dv->port->service) + 24;
    if (bound > O2H_MSG_MAX_SIZE) {
        pl->host->link->count_invalid(pl->self, "OSC message too large for O2");
        return 0;
    }
    o2h_msg *msg = pl->host->msg->msg_alloc(pl->self, bound);
    if (!msg) return 0;
    size_t len =
        o2h_osc_to_o2(m, dv->port->service, ts, O2H_FLAG_RELIABLE, &dv->clock, msg->data, bound);
    if (len > bound) { /* cannot happen: the bound above is generous */
        pl->host->msg->msg_unref(msg);
        return 0;
    }
    msg->length = (uint32_t)len;
    pl->host->link->deliver(pl->self, NULL, msg);
    return 0;
}

void o2h_osc_port_packet(osc_port *p, const uint8_t *data, size_t len) {
    osc_plugin *pl = p->pl;
    osc_error err;
    if (o2h_osc_parse(data, len, NULL, NULL, &err) != 0) {
        pl->host->link->count_invalid(pl->self, err.reason);
        pl->host->log->write(pl->self, O2H_LOG_DEBUG, "port %d: dropped OSC packet: %s at byte %zu",
                             p->bound_port, err.reason, err.offset);
        return;
    }
    delivery dv = {.port = p};
    o2h_osc_parse(data, len, deliver_one, &dv, NULL);
}

/* ---- UDP ---- */

static osc_read_result udp_read(void *ctx) {
    osc_port *p = ctx;
    osc_plugin *pl = p->pl;
    osc_read_result got = OSC_READ_NOTHING;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < OSC_RX_BATCH; i++) {
            pl->rx_iovs[i] = (struct iovec){pl->rx + (size_t)i * OSC_RX_SIZE, OSC_RX_SIZE};
            pl->rx_msgs[i].msg_hdr = (struct msghdr){.msg_iov = &pl->rx_iovs[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(p->fd, pl->rx_msgs, OSC_RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) break;
        got = OSC_READ_SOME;
        for (int i = 0; i < n; i++) {
            if (pl->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                pl->host->link->count_invalid(pl->self, "truncated UDP datagram");
                continue;
            }
            o2h_osc_port_packet(p, pl->rx_iovs[i].iov_base, pl->rx_msgs[i].msg_len);
        }
        if (n < OSC_RX_BATCH) break;
    }
    return got;
}

static void on_udp(void *ctx, int fd, unsigned events) {
    osc_port *p = ctx;
    (void)fd, (void)events;
    o2h_osc_pacer_wake(&p->pacer);
}

/* ---- TCP ---- */

static void conn_free(void *ctx) {
    osc_conn *c = ctx;
    o2h_osc_deframer_free(&c->df);
    free(c);
}

static void conn_close(osc_conn *c) {
    if (c->dead) return;
    osc_port *p = c->port;
    c->dead = true;
    o2h_osc_pacer_stop(&c->pacer);
    p->pl->host->loop->watch_remove(c->watch);
    close(c->fd);
    for (osc_conn **pp = &p->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    /* conn_read, up the stack, may still look at c (c->dead). */
    p->pl->host->loop->defer(p->pl->self, &c->free_later, conn_free, c);
}

static void frame_packet(void *ctx, const uint8_t *data, size_t len) {
    osc_conn *c = ctx;
    if (!c->dead) o2h_osc_port_packet(c->port, data, len);
}

static void frame_invalid(void *ctx, const char *reason) {
    osc_conn *c = ctx;
    c->port->pl->host->link->count_invalid(c->port->pl->self, reason);
}

static osc_read_result conn_read(void *ctx) {
    osc_conn *c = ctx;
    osc_plugin *pl = c->port->pl;
    osc_deframer_cb cb = {frame_packet, frame_invalid, c};
    osc_read_result got = OSC_READ_NOTHING;
    for (int i = 0; i < 16 && !c->dead; i++) {
        ssize_t n = recv(c->fd, pl->rx, OSC_RX_SIZE, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            conn_close(c);
            break;
        }
        if (n < 0) break;
        got = OSC_READ_SOME;
        if (o2h_osc_deframer_feed(&c->df, pl->rx, (size_t)n, &cb) != 0) {
            pl->host->log->write(pl->self, O2H_LOG_WARN,
                                 "port %d: closing a connection: bad framing", c->port->bound_port);
            conn_close(c);
            break;
        }
        if ((size_t)n < OSC_RX_SIZE) break;
    }
    return c->dead ? OSC_READ_CLOSED : got;
}

static void on_conn(void *ctx, int fd, unsigned events) {
    osc_conn *c = ctx;
    (void)fd, (void)events;
    o2h_osc_pacer_wake(&c->pacer);
}

static void on_accept(void *ctx, int fd, unsigned events) {
    osc_port *p = ctx;
    osc_plugin *pl = p->pl;
    (void)events;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) return;
        osc_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(cfd);
            continue;
        }
        c->port = p;
        c->fd = cfd;
        o2h_osc_deframer_init(&c->df, p->framing, (size_t)pl->max_packet);
        c->watch = pl->host->loop->watch_fd(pl->self, cfd, O2H_EV_READ, on_conn, c);
        if (!c->watch) {
            close(cfd);
            free(c);
            continue;
        }
        char name[48];
        snprintf(name, sizeof name, "OSC TCP port %d", p->bound_port);
        o2h_osc_pacer_init(&c->pacer, pl->host, pl->self, c->watch, p->pace, conn_read, c, name);
        c->next = p->conns;
        p->conns = c;
    }
}

int o2h_osc_port_start(osc_port *p) {
    osc_plugin *pl = p->pl;
    int type = p->tcp ? SOCK_STREAM : SOCK_DGRAM;
    p->fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (p->fd >= 0 && p->tcp) setsockopt(p->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (p->fd < 0 || bind(p->fd, (struct sockaddr *)&p->bind_addr, sizeof p->bind_addr) != 0 ||
        (p->tcp && listen(p->fd, 64) != 0)) {
        pl->host->log->write(pl->self, O2H_LOG_ERROR, "cannot open OSC %s port %d: %s",
                             p->tcp ? "TCP" : "UDP", ntohs(p->bind_addr.sin_port), strerror(errno));
        if (p->fd >= 0) close(p->fd);
        p->fd = -1;
        return O2H_NO_PORT;
    }
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    getsockname(p->fd, (struct sockaddr *)&bound, &len);
    p->bound_port = ntohs(bound.sin_port);
    p->watch =
        pl->host->loop->watch_fd(pl->self, p->fd, O2H_EV_READ, p->tcp ? on_accept : on_udp, p);
    o2h_osc_pacer_init(&p->pacer, pl->host, pl->self, p->watch, p->pace, udp_read, p, "");
    snprintf(p->pacer.name, sizeof p->pacer.name, "OSC UDP port %d", p->bound_port);
    pl->host->log->write(pl->self, O2H_LOG_INFO, "OSC %s port %d delivers to service %s",
                         p->tcp ? "TCP" : "UDP", p->bound_port, p->service);
    return p->watch ? O2H_OK : O2H_NO_MEMORY;
}

void o2h_osc_port_stop(osc_port *p) {
    while (p->conns)
        conn_close(p->conns);
    o2h_osc_pacer_stop(&p->pacer);
    if (p->watch) p->pl->host->loop->watch_remove(p->watch);
    p->watch = NULL;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
}
