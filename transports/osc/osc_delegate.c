/*
 * OSC delegates: an O2 service whose messages are sent to an OSC server, as
 * O2's o2_osc_delegate does ("/service/rest" arrives as "/rest"). Over UDP
 * each message is one datagram; over TCP it is framed (length or SLIP) and
 * queued in a bounded byte queue. A TCP delegate reconnects after losing its
 * server (0.1 s, doubling up to 2 s) and keeps its service meanwhile;
 * messages sent while it is down are refused (counted by the core).
 */
#include <errno.h>
#include <netinet/tcp.h>
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

/* Close the connection, drop what is queued, try again later. */
static void tcp_lost(osc_delegate *d, const char *why) {
    osc_plugin *pl = d->pl;
    if (d->connected || d->connecting)
        pl->host->log->write(pl->self, O2H_LOG_INFO, "OSC server %s for %s: %s", d->address,
                             d->service, why);
    if (d->watch) pl->host->loop->watch_remove(d->watch);
    d->watch = NULL;
    if (d->fd >= 0) close(d->fd);
    d->fd = -1;
    d->connected = d->connecting = false;
    d->q_head = d->q_len = 0;
    if (!d->retry) d->retry = pl->host->loop->timer_start(pl->self, d->backoff, 0, on_retry, d);
    d->backoff = d->backoff * 2 < RETRY_MAX ? d->backoff * 2 : RETRY_MAX;
}

static void set_events(osc_delegate *d) {
    unsigned want = O2H_EV_READ | ((d->connecting || d->q_len > d->q_head) ? O2H_EV_WRITE : 0);
    if (d->watch && want != d->events) {
        d->events = want;
        d->pl->host->loop->watch_modify(d->watch, want);
    }
}

/* Write what the socket takes; false if the connection failed. */
static bool tcp_flush(osc_delegate *d) {
    while (d->q_len > d->q_head) {
        ssize_t w = send(d->fd, d->q + d->q_head, d->q_len - d->q_head, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            return false;
        }
        d->q_head += (size_t)w;
    }
    if (d->q_head == d->q_len) d->q_head = d->q_len = 0;
    return true;
}

static void on_tcp(void *ctx, int fd, unsigned events) {
    osc_delegate *d = ctx;
    if (d->connecting && (events & (O2H_EV_WRITE | O2H_EV_ERROR | O2H_EV_HUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            tcp_lost(d, strerror(err));
            return;
        }
        d->connecting = false;
        d->connected = true;
        d->backoff = RETRY_FIRST;
        d->pl->host->log->write(d->pl->self, O2H_LOG_INFO, "connected to OSC server %s for %s",
                                d->address, d->service);
    }
    if (d->connected && (events & (O2H_EV_READ | O2H_EV_HUP | O2H_EV_ERROR))) {
        uint8_t sink[512]; /* OSC servers have nothing to say; notice them closing */
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            tcp_lost(d, "connection closed");
            return;
        }
    }
    if (d->connected && !tcp_flush(d)) {
        tcp_lost(d, strerror(errno));
        return;
    }
    set_events(d);
}

static void tcp_connect_now(osc_delegate *d) {
    osc_plugin *pl = d->pl;
    d->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0) {
        tcp_lost(d, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(d->fd, (struct sockaddr *)&d->addr, sizeof d->addr);
    if (rc != 0 && errno != EINPROGRESS) {
        tcp_lost(d, strerror(errno));
        return;
    }
    d->connecting = true; /* completion (or failure) is reported as writable */
    d->events = O2H_EV_READ | O2H_EV_WRITE;
    d->watch = pl->host->loop->watch_fd(pl->self, d->fd, d->events, on_tcp, d);
    if (!d->watch) tcp_lost(d, "no memory");
}

/* Append a framed packet to the queue (bounded by queue_bytes). */
static int tcp_enqueue(osc_delegate *d, const uint8_t *packet, size_t len) {
    osc_plugin *pl = d->pl;
    size_t framed = o2h_osc_frame_encode(d->framing, packet, len, NULL, 0);
    if ((int64_t)(d->q_len - d->q_head + framed) > pl->queue_bytes) return O2H_QUEUE_FULL;
    if (d->q_head > 0 && d->q_len + framed > d->q_cap) {
        memmove(d->q, d->q + d->q_head, d->q_len - d->q_head);
        d->q_len -= d->q_head;
        d->q_head = 0;
    }
    if (d->q_len + framed > d->q_cap) {
        size_t cap = d->q_cap ? d->q_cap : 4096;
        while (cap < d->q_len + framed)
            cap *= 2;
        uint8_t *q = realloc(d->q, cap);
        if (!q) return O2H_NO_MEMORY;
        d->q = q;
        d->q_cap = cap;
    }
    d->q_len += o2h_osc_frame_encode(d->framing, packet, len, d->q + d->q_len, d->q_cap - d->q_len);
    return O2H_OK;
}

int o2h_osc_delegate_send(osc_delegate *d, const o2h_msg *msg) {
    osc_plugin *pl = d->pl;
    if (d->tcp && !d->connected && !d->connecting) return O2H_SEND_FAIL;
    osc_clock clock = o2h_osc_plugin_clock(pl);
    size_t n = o2h_osc_from_o2(msg->data, msg->length, &clock, pl->scratch, pl->scratch_cap);
    if (n > pl->scratch_cap && n <= (size_t)pl->max_packet && o2h_osc_plugin_scratch(pl, n))
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
    int rc = tcp_enqueue(d, pl->scratch, n);
    if (rc != O2H_OK || !d->connected) return rc;
    if (!tcp_flush(d)) {
        tcp_lost(d, strerror(errno));
        return O2H_OK; /* it was accepted; the connection failed afterwards */
    }
    set_events(d);
    return O2H_OK;
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
    if (d->tcp) tcp_connect_now(d);
    pl->host->log->write(pl->self, O2H_LOG_INFO, "service %s goes to OSC server %s (%s)",
                         d->service, d->address, d->tcp ? "TCP" : "UDP");
    return O2H_OK;
}

void o2h_osc_delegate_stop(osc_delegate *d) {
    osc_plugin *pl = d->pl;
    if (d->retry) pl->host->loop->timer_stop(d->retry);
    d->retry = NULL;
    if (d->watch) pl->host->loop->watch_remove(d->watch);
    d->watch = NULL;
    if (d->fd >= 0) close(d->fd);
    d->fd = -1;
    d->connected = d->connecting = false;
    d->q_head = d->q_len = 0;
    if (d->link) pl->host->link->link_free(d->link); /* withdraws the service */
    d->link = NULL;
}
