/*
 * OSC delegates: an O2 service whose messages are sent to an OSC server, as
 * O2's o2_osc_delegate does ("/service/rest" arrives as "/rest"). Over UDP
 * each message is one datagram; over TCP it is framed (length or SLIP) and
 * sent on a stream (stream.h) whose queue is bounded by queue_bytes. A TCP
 * delegate reconnects after losing its server (0.1 s, doubling up to 2 s) and
 * keeps its service meanwhile; messages sent while it is down are refused
 * (counted by the core).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void tcp_connect_now(osc_delegate *d) {
    osc_plugin *pl = d->pl;
    o2h_stream_params sp = {.host = pl->host,
                            .self = pl->self,
                            .ops = &tcp_ops,
                            .ctx = d,
                            .queue_limit = (size_t)pl->queue_bytes};
    int error;
    d->stream = o2h_stream_connect(&sp, &d->addr, &error);
    if (!d->stream) retry_later(d);
}

/* Frame a packet and send it (queued while connecting, bounded by queue_bytes). */
static int tcp_send(osc_delegate *d, const uint8_t *packet, size_t len) {
    osc_plugin *pl = d->pl;
    size_t framed = o2h_osc_frame_encode(d->framing, packet, len, NULL, 0);
    if (!o2h_osc_plugin_reserve(&pl->frame, &pl->frame_cap, framed)) return O2H_NO_MEMORY;
    o2h_osc_frame_encode(d->framing, packet, len, pl->frame, pl->frame_cap);
    return o2h_stream_send_bytes(d->stream, pl->frame, framed); /* may close: tcp_closed */
}

int o2h_osc_delegate_send(osc_delegate *d, const o2h_msg *msg) {
    osc_plugin *pl = d->pl;
    if (d->tcp && !d->stream) return O2H_SEND_FAIL;
    osc_clock clock = o2h_osc_plugin_clock(pl);
    size_t n = o2h_osc_from_o2(msg->data, msg->length, &clock, pl->scratch, pl->scratch_cap);
    if (n > pl->scratch_cap && n <= (size_t)pl->max_packet &&
        o2h_osc_plugin_reserve(&pl->scratch, &pl->scratch_cap, n))
        n = o2h_osc_from_o2(msg->data, msg->length, &clock, pl->scratch, pl->scratch_cap);
    if (n == 0 || n > pl->scratch_cap || (!d->tcp && n > OSC_UDP_MAX)) {
        pl->host->log->write(pl->self, O2H_LOG_DEBUG, "cannot send %s as OSC (%zu bytes)",
                             o2h_msg_address(msg), n);
        return O2H_SEND_FAIL;
    }
    if (!d->tcp) {
        ssize_t w = sendto(pl->udp_fd, pl->scratch, n, MSG_DONTWAIT, (struct sockaddr *)&d->addr,
                           sizeof d->addr);
        if (w == (ssize_t)n) return O2H_OK;
        return (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
                   ? O2H_QUEUE_FULL
                   : O2H_SEND_FAIL;
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
    if (d->tcp) tcp_connect_now(d);
    pl->host->log->write(pl->self, O2H_LOG_INFO, "service %s goes to OSC server %s (%s)",
                         d->service, d->address, d->tcp ? "TCP" : "UDP");
    return O2H_OK;
}

void o2h_osc_delegate_stop(osc_delegate *d) {
    osc_plugin *pl = d->pl;
    d->stopping = true;
    if (d->retry) pl->host->loop->timer_stop(d->retry);
    d->retry = NULL;
    if (d->stream) o2h_stream_close(d->stream);      /* tcp_closed forgets it */
    if (d->link) pl->host->link->link_free(d->link); /* withdraws the service */
    d->link = NULL;
}
