/*
 * OSC ports: servers that take OSC packets (UDP datagrams, or TCP streams
 * with length or SLIP framing) and deliver each message to an O2 service:
 * "/rest" becomes "/service/rest", as O2's o2_osc_port_new does. Bundle
 * timetags become O2 timestamps (the core's scheduler holds future ones);
 * without clock sync every message is delivered at once. A TCP port's
 * listening socket and connections are transports/common's (listener.h,
 * stream.h); this file deframes and delivers.
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
        pl->host->log->write(pl->self, O2H_LOG_DEBUG, "%s: dropped OSC packet: %s at byte %zu",
                             p->label, err.reason, err.offset);
        return;
    }
    delivery dv = {.port = p};
    o2h_osc_parse(data, len, deliver_one, &dv, NULL);
}

/* ---- UDP ---- */

/* The kernel's drop count comes with each datagram: log what it dropped, at
 * most once a second (a line owed is written at the next read after that). */
static void note_kernel_drops(osc_port *p, const struct msghdr *h) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR((struct msghdr *)h, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SO_RXQ_OVFL) continue;
        uint32_t total;
        memcpy(&total, CMSG_DATA(c), sizeof total);
        p->kernel_dropped_all += (uint32_t)(total - p->kernel_dropped);
        p->kernel_dropped = total;
    }
    if (p->kernel_dropped_all == p->kernel_logged_all) return;
    osc_plugin *pl = p->pl;
    double now = pl->host->loop->local_time(pl->self);
    if (p->kernel_logged > 0 && now - p->kernel_logged < 1) return;
    p->kernel_logged = now;
    p->kernel_logged_all = p->kernel_dropped_all;
    pl->host->log->write(pl->self, O2H_LOG_WARN,
                         "%s: the kernel dropped datagrams (socket buffer full): %llu in all",
                         p->label, (unsigned long long)p->kernel_dropped_all);
}

static osc_read_result udp_read(void *ctx) {
    osc_port *p = ctx;
    osc_plugin *pl = p->pl;
    osc_read_result got = OSC_READ_NOTHING;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < OSC_RX_BATCH; i++) {
            pl->rx_iovs[i] = (struct iovec){pl->rx + (size_t)i * OSC_RX_SIZE, OSC_RX_SIZE};
            pl->rx_msgs[i].msg_hdr = (struct msghdr){.msg_iov = &pl->rx_iovs[i],
                                                     .msg_iovlen = 1,
                                                     .msg_control = pl->rx_ctl[i].buf,
                                                     .msg_controllen = sizeof pl->rx_ctl[i].buf};
        }
        int n = recvmmsg(p->fd, pl->rx_msgs, OSC_RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) break;
        got = OSC_READ_SOME;
        note_kernel_drops(p, &pl->rx_msgs[n - 1].msg_hdr);
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

static void udp_watch(void *ctx, bool on) {
    osc_port *p = ctx;
    p->pl->host->loop->watch_modify(p->watch, on ? O2H_EV_READ : 0);
}

int o2h_osc_port_watch_udp(osc_port *p, int fd) {
    osc_plugin *pl = p->pl;
    p->fd = fd;
    int one = 1; /* what the kernel drops is counted (note_kernel_drops) */
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    p->watch = pl->host->loop->watch_fd(pl->self, p->fd, O2H_EV_READ, on_udp, p);
    o2h_osc_pacer_init(&p->pacer, pl->host, pl->self, p->pace, udp_read, udp_watch, p, p->label);
    return p->watch ? O2H_OK : O2H_NO_MEMORY;
}

void o2h_osc_port_unwatch_udp(osc_port *p) {
    o2h_osc_pacer_stop(&p->pacer);
    if (p->watch) p->pl->host->loop->watch_remove(p->watch);
    p->watch = NULL;
    p->fd = -1;
}

static int udp_start(osc_port *p) {
    osc_plugin *pl = p->pl;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&p->bind_addr, sizeof p->bind_addr) != 0) {
        pl->host->log->write(pl->self, O2H_LOG_ERROR, "cannot open OSC UDP port %d: %s",
                             ntohs(p->bind_addr.sin_port), strerror(errno));
        if (fd >= 0) close(fd);
        return O2H_NO_PORT;
    }
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &len);
    p->bound_port = ntohs(bound.sin_port);
    snprintf(p->label, sizeof p->label, "OSC UDP port %d", p->bound_port);
    return o2h_osc_port_watch_udp(p, fd);
}

/* ---- TCP: each connection is a stream (stream.h), deframed here ---- */

void o2h_osc_conn_free(void *ctx) {
    osc_conn *c = ctx;
    o2h_osc_deframer_free(&c->df);
    free(c);
}

void o2h_osc_conn_closed(osc_conn *c) {
    o2h_osc_pacer_stop(&c->pacer);
}

/* An accepted connection closed; the memory goes with the stream's (o2h_osc_conn_free). */
static void conn_closed(void *ctx, o2h_stream_end why, int error) {
    osc_conn *c = ctx;
    osc_port *p = c->port;
    (void)why, (void)error;
    o2h_osc_conn_closed(c);
    for (osc_conn **pp = &p->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (p->listener) o2h_listener_release(p->listener);
}

static void frame_packet(void *ctx, const uint8_t *data, size_t len) {
    osc_conn *c = ctx;
    if (!o2h_stream_is_closed(c->stream)) o2h_osc_port_packet(c->port, data, len);
}

static void frame_invalid(void *ctx, const char *reason) {
    osc_conn *c = ctx;
    c->port->pl->host->link->count_invalid(c->port->pl->self, reason);
}

bool o2h_osc_conn_data(void *ctx, const uint8_t *data, size_t len) {
    osc_conn *c = ctx;
    osc_plugin *pl = c->port->pl;
    osc_deframer_cb cb = {frame_packet, frame_invalid, c};
    if (o2h_osc_deframer_feed(&c->df, data, len, &cb) == 0) return true;
    pl->host->log->write(pl->self, O2H_LOG_WARN, "%s: closing a connection: bad framing",
                         c->port->label);
    return false;
}

static osc_read_result conn_read(void *ctx) {
    osc_conn *c = ctx;
    switch (o2h_stream_read(c->stream)) {
    case O2H_STREAM_READ_SOME: return OSC_READ_SOME;
    case O2H_STREAM_READ_CLOSED: return OSC_READ_CLOSED;
    default: return OSC_READ_NOTHING;
    }
}

void o2h_osc_conn_readable(void *ctx) {
    osc_conn *c = ctx;
    o2h_osc_pacer_wake(&c->pacer); /* it reads now, or paces */
}

static void conn_watch(void *ctx, bool on) {
    osc_conn *c = ctx;
    o2h_stream_set_reading(c->stream, on);
}

static const o2h_stream_ops conn_ops = {
    .on_data = o2h_osc_conn_data,
    .on_close = conn_closed,
    .on_readable = o2h_osc_conn_readable,
    .on_free = o2h_osc_conn_free,
};

osc_conn *o2h_osc_conn_new(osc_port *p) {
    osc_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->port = p;
    o2h_osc_deframer_init(&c->df, p->framing, (size_t)p->pl->max_packet);
    return c;
}

void o2h_osc_conn_attach(osc_conn *c, o2h_stream *s) {
    osc_port *p = c->port;
    c->stream = s;
    o2h_osc_pacer_init(&c->pacer, p->pl->host, p->pl->self, p->pace, conn_read, conn_watch, c,
                       p->label);
}

static bool on_accept(void *ctx, int fd, const struct sockaddr_in *peer) {
    osc_port *p = ctx;
    osc_plugin *pl = p->pl;
    (void)peer;
    osc_conn *c = o2h_osc_conn_new(p);
    if (!c) {
        close(fd);
        return false;
    }
    o2h_stream_params sp = {.host = pl->host,
                            .self = pl->self,
                            .ops = &conn_ops,
                            .ctx = c,
                            .queue_limit = (size_t)pl->queue_bytes, /* it never sends */
                            .rx = pl->rx,
                            .rx_size = OSC_RX_SIZE};
    o2h_stream *s = o2h_stream_new(&sp, fd);
    if (!s) {
        o2h_osc_conn_free(c);
        return false;
    }
    o2h_osc_conn_attach(c, s);
    c->next = p->conns;
    p->conns = c;
    return true;
}

static int tcp_start(osc_port *p) {
    osc_plugin *pl = p->pl;
    o2h_listener_params lp = {.host = pl->host,
                              .self = pl->self,
                              .bind_addr = p->bind_addr,
                              .backlog = 64,
                              .max_connections = (int)p->max_connections,
                              .what = "OSC TCP",
                              .on_accept = on_accept,
                              .ctx = p};
    int error;
    p->listener = o2h_listener_open(&lp, &error);
    if (!p->listener) {
        pl->host->log->write(pl->self, O2H_LOG_ERROR, "cannot open OSC TCP port %d: %s",
                             ntohs(p->bind_addr.sin_port), strerror(error));
        return O2H_NO_PORT;
    }
    p->bound_port = o2h_listener_port(p->listener);
    snprintf(p->label, sizeof p->label, "OSC TCP port %d", p->bound_port);
    return O2H_OK;
}

int o2h_osc_port_start(osc_port *p) {
    osc_plugin *pl = p->pl;
    int rc = p->tcp ? tcp_start(p) : udp_start(p);
    if (rc == O2H_OK)
        pl->host->log->write(pl->self, O2H_LOG_INFO, "OSC %s port %d delivers to service %s",
                             p->tcp ? "TCP" : "UDP", p->bound_port, p->service);
    return rc;
}

void o2h_osc_port_stop(osc_port *p) {
    while (p->conns)
        o2h_stream_close(p->conns->stream); /* conn_closed unlinks it */
    o2h_listener_close(p->listener);
    p->listener = NULL;
    int fd = p->fd;
    o2h_osc_port_unwatch_udp(p);
    if (fd >= 0) close(fd);
}
