/*
 * The UDP delegates' outbox: what one loop turn sends to OSC servers over UDP
 * is encoded straight into a bounded arena and goes out at the end of that
 * turn (the loop's deferred phase) in one sendmmsg per socket, as the udp
 * transport does for O2. Nothing waits for a later turn: a burst that fills
 * the outbox is written at once and the outbox starts again.
 *
 * A datagram the socket refuses at the end of the turn (its buffer full) is
 * dropped, as a sendto of it would have been, counted in the plugin's
 * figures and logged at most every 10 s; UDP to an OSC server is best effort.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc.h"

/* Dropped, and said now and then: "why" is errno's text. */
static void dropped(osc_plugin *pl, uint32_t n, int error) {
    osc_outbox *ob = &pl->outbox;
    ob->dropped += n;
    double now = pl->host->loop->local_time(pl->self);
    if (ob->dropped > n && now - ob->logged_at < 10) return;
    ob->logged_at = now;
    pl->host->log->write(pl->self, O2H_LOG_WARN,
                         "dropping UDP datagrams to OSC servers: %s (%llu dropped so far)",
                         strerror(error), (unsigned long long)ob->dropped);
}

/* The datagrams [from, to) all leave by `fd`: as many per sendmmsg as the socket takes. */
static void send_run(osc_plugin *pl, uint32_t from, uint32_t to) {
    osc_outbox *ob = &pl->outbox;
    int fd = ob->fd[from];
    while (from < to) {
        int n = sendmmsg(fd, ob->msgs + from, to - from, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            dropped(pl, to - from, errno); /* the socket is full: the rest of this run */
            return;
        }
        if (n < 0) {
            dropped(pl, 1, errno); /* this one only (no route, refused): try the next */
            n = 1;
        }
        from += (uint32_t)n;
    }
}

void o2h_osc_outbox_flush(osc_plugin *pl) {
    osc_outbox *ob = &pl->outbox;
    uint32_t start = 0;
    for (uint32_t i = 1; i <= ob->len; i++)
        if (i == ob->len || ob->fd[i] != ob->fd[start]) {
            send_run(pl, start, i);
            start = i;
        }
    ob->len = 0;
    ob->used = 0;
}

static void flush_turn(void *ctx) {
    o2h_osc_outbox_flush(ctx);
}

uint8_t *o2h_osc_outbox_space(osc_plugin *pl, size_t *room) {
    osc_outbox *ob = &pl->outbox;
    if (!ob->bytes && !(ob->bytes = malloc(OSC_OUTBOX_BYTES))) return NULL;
    if (ob->len == OSC_OUTBOX || OSC_OUTBOX_BYTES - ob->used < OSC_UDP_MAX + 8)
        o2h_osc_outbox_flush(pl); /* a burst larger than the outbox: write what waits now */
    *room = OSC_OUTBOX_BYTES - ob->used;
    return ob->bytes + ob->used;
}

void o2h_osc_outbox_add(osc_plugin *pl, int fd, const struct sockaddr_in *to, size_t n) {
    osc_outbox *ob = &pl->outbox;
    uint32_t i = ob->len++;
    ob->fd[i] = fd;
    if (to) ob->to[i] = *to;
    ob->iov[i] = (struct iovec){ob->bytes + ob->used, n};
    ob->msgs[i].msg_hdr = (struct msghdr){.msg_name = to ? &ob->to[i] : NULL,
                                          .msg_namelen = to ? sizeof ob->to[i] : 0,
                                          .msg_iov = &ob->iov[i],
                                          .msg_iovlen = 1};
    ob->used += (n + 7) & ~(size_t)7;
    pl->host->loop->defer(pl->self, &ob->flush_later, flush_turn, pl);
}
