/*
 * OSC delegates: an O2 service whose messages are sent to an OSC server, as
 * O2's o2_osc_delegate does ("/service/rest" arrives as "/rest"). Over UDP
 * each message is one datagram; over TCP it is framed (length or SLIP) and
 * sent on a stream (stream.h) whose queue is bounded by queue_bytes. A TCP
 * delegate reconnects after losing its server (0.1 s, doubling up to 2 s) and
 * keeps its service meanwhile; messages sent while it is down are refused
 * (counted by the core).
 *
 * With "replies" what the server sends back on the delegate's socket (UDP)
 * or connection (TCP) goes into an O2 service through the same input path as
 * an OSC port's (osc_port.c: parsing, timetags, pacing, counters): OSC
 * servers such as scsynth answer to the address a request came from. Such a
 * UDP delegate has a socket of its own, connected to the server so that the
 * kernel drops datagrams from anyone else ("replies_from": "any" binds it
 * unconnected instead, for servers that answer from another port).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osc.h"

#define RETRY_FIRST 0.1
#define RETRY_MAX 2.0

static void tcp_connect_now(osc_delegate *d);

static void on_retry(void *ctx) {
    osc_delegate *d = ctx;
    d->pl->host->loop->timer_stop(d->retry); /* one-shot timers are freed by stopping them */
    d->retry = NULL;
    tcp_connect_now(d);
}

static void retry_later(osc_delegate *d) {
    osc_plugin *pl = d->pl;
    if (!d->retry) d->retry = pl->host->loop->timer_start(pl->self, d->backoff, 0, on_retry, d);
    d->backoff = d->backoff * 2 < RETRY_MAX ? d->backoff * 2 : RETRY_MAX;
}

/* The connection is gone, or never came (its queue is dropped): try again later. */
static void tcp_closed(void *ctx, o2h_stream_end why, int error) {
    osc_delegate *d = ctx;
    osc_plugin *pl = d->pl;
    d->stream = NULL;
    d->connected = false;
    if (d->stopping) return;
    const char *text = why == O2H_STREAM_ERROR || why == O2H_STREAM_CONNECT_FAILED
                           ? strerror(error)
                           : "connection closed";
    pl->host->log->write(pl->self, O2H_LOG_INFO, "OSC server %s for %s: %s", d->address, d->service,
                         text);
    retry_later(d);
}

static void tcp_connected(void *ctx) {
    osc_delegate *d = ctx;
    d->connected = true;
    d->backoff = RETRY_FIRST;
    d->pl->host->log->write(d->pl->self, O2H_LOG_INFO, "connected to OSC server %s for %s",
                            d->address, d->service);
}

/* OSC servers have nothing to say: the stream reads only to notice them closing. */
static const o2h_stream_ops tcp_ops = {
    .on_close = tcp_closed,
    .on_connect = tcp_connected,
};

/* With "replies" the stream's context is its input state (osc_conn, freed with the stream). */
static void reply_closed(void *ctx, o2h_stream_end why, int error) {
    osc_conn *c = ctx;
    o2h_osc_conn_closed(c);
    c->delegate->conn = NULL;
    tcp_closed(c->delegate, why, error);
}

static void reply_connected(void *ctx) {
    osc_conn *c = ctx;
    tcp_connected(c->delegate);
}

static const o2h_stream_ops tcp_reply_ops = {
    .on_data = o2h_osc_conn_data,
    .on_close = reply_closed,
    .on_connect = reply_connected,
    .on_readable = o2h_osc_conn_readable,
    .on_free = o2h_osc_conn_free,
};

static void tcp_connect_now(osc_delegate *d) {
    osc_plugin *pl = d->pl;
    o2h_stream_params sp = {.host = pl->host,
                            .self = pl->self,
                            .ops = &tcp_ops,
                            .ctx = d,
                            .queue_limit = (size_t)pl->queue_bytes,
                            .coalesce = true};
    osc_conn *c = NULL;
    if (d->has_replies) {
        if (!(c = o2h_osc_conn_new(&d->replies))) {
            retry_later(d);
            return;
        }
        c->delegate = d;
        sp.ops = &tcp_reply_ops;
        sp.ctx = c;
        sp.rx = pl->rx;
        sp.rx_size = OSC_RX_SIZE;
    }
    int error;
    d->stream = o2h_stream_connect(&sp, &d->addr, &error);
    if (!d->stream) {
        if (c) o2h_osc_conn_free(c);
        retry_later(d);
        return;
    }
    if (c) o2h_osc_conn_attach(c, d->stream);
    d->conn = c;
}

/* The local address a datagram to the server leaves from (a connected probe tells). */
static int local_address_for(const struct sockaddr_in *server, struct sockaddr_in *local) {
    int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof *local;
    int rc = probe >= 0 && connect(probe, (const struct sockaddr *)server, sizeof *server) == 0 &&
                     getsockname(probe, (struct sockaddr *)local, &len) == 0
                 ? 0
                 : -1;
    if (probe >= 0) close(probe);
    local->sin_port = 0;
    return rc;
}

/* A UDP delegate with "replies": its own socket, which the server answers to. */
static int udp_reply_socket(osc_delegate *d) {
    osc_plugin *pl = d->pl;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in local;
    int ok = fd >= 0;
    if (ok && d->replies_from == OSC_REPLIES_FROM_SERVER)
        ok = connect(fd, (struct sockaddr *)&d->addr, sizeof d->addr) == 0;
    else if (ok)
        ok = local_address_for(&d->addr, &local) == 0 &&
             bind(fd, (struct sockaddr *)&local, sizeof local) == 0;
    if (!ok) {
        pl->host->log->write(pl->self, O2H_LOG_ERROR, "cannot open a socket for OSC server %s: %s",
                             d->address, strerror(errno));
        if (fd >= 0) close(fd);
        return O2H_SOCKET_ERROR;
    }
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &len);
    d->replies.bound_port = ntohs(bound.sin_port);
    int rc = o2h_osc_port_watch_udp(&d->replies, fd);
    if (rc != O2H_OK) close(fd);
    return rc;
}

/* Frame a packet and send it (queued while connecting, bounded by queue_bytes). */
static int tcp_send(osc_delegate *d, const uint8_t *packet, size_t len) {
    osc_plugin *pl = d->pl;
    size_t framed = o2h_osc_frame_encode(d->framing, packet, len, NULL, 0);
    if (!o2h_osc_plugin_reserve(&pl->frame, &pl->frame_cap, framed)) return O2H_NO_MEMORY;
    o2h_osc_frame_encode(d->framing, packet, len, pl->frame, pl->frame_cap);
    return o2h_stream_send_bytes(d->stream, pl->frame, framed); /* may close: tcp_closed */
}

/* Over UDP: encoded into the outbox, sent at the end of the turn. */
static int udp_send(osc_delegate *d, const o2h_msg *msg, const osc_clock *clock) {
    osc_plugin *pl = d->pl;
    size_t room;
    uint8_t *at = o2h_osc_outbox_space(pl, &room);
    if (!at) return O2H_NO_MEMORY;
    size_t n = o2h_osc_from_o2(msg->data, msg->length, clock, at, room);
    if (n == 0 || n > room || n > OSC_UDP_MAX) {
        pl->host->log->write(pl->self, O2H_LOG_DEBUG, "cannot send %s as OSC (%zu bytes)",
                             o2h_msg_address(msg), n);
        return O2H_SEND_FAIL;
    }
    bool connected = d->has_replies && d->replies_from == OSC_REPLIES_FROM_SERVER;
    int fd = d->has_replies ? d->replies.fd : pl->udp_fd;
    o2h_osc_outbox_add(pl, fd, connected ? NULL : &d->addr, n);
    return O2H_OK;
}

int o2h_osc_delegate_send(osc_delegate *d, const o2h_msg *msg) {
    osc_plugin *pl = d->pl;
    if (d->tcp && !d->stream) return O2H_SEND_FAIL;
    osc_clock clock = o2h_osc_plugin_clock(pl);
    if (!d->tcp) return udp_send(d, msg, &clock);
    size_t n = o2h_osc_from_o2(msg->data, msg->length, &clock, pl->scratch, pl->scratch_cap);
    if (n > pl->scratch_cap && n <= (size_t)pl->max_packet &&
        o2h_osc_plugin_reserve(&pl->scratch, &pl->scratch_cap, n))
        n = o2h_osc_from_o2(msg->data, msg->length, &clock, pl->scratch, pl->scratch_cap);
    if (n == 0 || n > pl->scratch_cap) {
        pl->host->log->write(pl->self, O2H_LOG_DEBUG, "cannot send %s as OSC (%zu bytes)",
                             o2h_msg_address(msg), n);
        return O2H_SEND_FAIL;
    }
    return tcp_send(d, pl->scratch, n);
}

int o2h_osc_delegate_start(osc_delegate *d) {
    osc_plugin *pl = d->pl;
    char desc[128];
    snprintf(desc, sizeof desc, "osc %s %s", d->tcp ? "tcp" : "udp", d->address);
    d->link = pl->host->link->link_new(pl->self, d, desc);
    if (!d->link) return O2H_NO_MEMORY;
    int rc = pl->host->link->service_add(pl->self, d->service, d->link);
    if (rc != O2H_OK) {
        pl->host->log->write(pl->self, O2H_LOG_ERROR, "cannot offer service %s: %d", d->service,
                             rc);
        return rc;
    }
    d->backoff = RETRY_FIRST;
    d->stopping = false;
    if (d->has_replies) {
        d->replies.pl = pl;
        d->replies.fd = -1;
        d->replies.tcp = d->tcp;
        d->replies.framing = d->framing;
        snprintf(d->replies.label, sizeof d->replies.label, "OSC replies from %s", d->address);
        if (!d->tcp && (rc = udp_reply_socket(d)) != O2H_OK) return rc;
    }
    if (d->tcp) tcp_connect_now(d);
    pl->host->log->write(pl->self, O2H_LOG_INFO, "service %s goes to OSC server %s (%s)",
                         d->service, d->address, d->tcp ? "TCP" : "UDP");
    if (d->has_replies && !d->tcp)
        pl->host->log->write(pl->self, O2H_LOG_INFO,
                             "replies from OSC server %s to UDP port %d go to service %s",
                             d->address, d->replies.bound_port, d->replies.service);
    else if (d->has_replies)
        pl->host->log->write(pl->self, O2H_LOG_INFO, "replies from OSC server %s go to service %s",
                             d->address, d->replies.service);
    return O2H_OK;
}

void o2h_osc_delegate_stop(osc_delegate *d) {
    osc_plugin *pl = d->pl;
    d->stopping = true;
    if (d->retry) pl->host->loop->timer_stop(d->retry);
    d->retry = NULL;
    if (d->stream) o2h_stream_flush(d->stream); /* this turn's packets, if the socket takes them */
    if (d->stream) o2h_stream_close(d->stream); /* tcp_closed forgets it */
    if (d->has_replies && !d->tcp) {
        o2h_osc_outbox_flush(pl); /* datagrams waiting to leave by the socket closed here */
        int fd = d->replies.fd;
        o2h_osc_port_unwatch_udp(&d->replies);
        if (fd >= 0) close(fd);
    }
    if (d->link) pl->host->link->link_free(d->link); /* withdraws the service */
    d->link = NULL;
}
