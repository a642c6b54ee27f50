/*
 * The UDP transport: O2's best-effort path. One datagram is one message
 * (no length prefix). Datagrams are received with recvmmsg, one batch a loop
 * turn (`batch` datagrams, or up to 64 that came as coalesced runs, below): a
 * flood then has its callback after the sockets that just became ready (the
 * loop serves watches busy since the last turn last), and a control message
 * that arrives meanwhile waits for at most one batch of it.
 * What a turn sends waits in a bounded outbox and goes out at the end of the
 * turn (the loop's deferred phase) in one sendmmsg: a burst costs one system
 * call, and nothing waits for a later turn unless the socket is full. A send
 * that finds the outbox full and the socket still refusing is a counted drop
 * (O2H_QUEUE_FULL). A link is a destination address (the core makes one per
 * peer process).
 *
 * Segmentation offload (Linux UDP GSO and GRO, "gso": true): consecutive
 * datagrams of a turn to one address, of one size (the last may be shorter),
 * leave as one buffer the kernel cuts into datagrams (UDP_SEGMENT), so the
 * stack is crossed once per run instead of once per message; on the wire, and
 * to a receiver that has not asked for GRO, they are ordinary datagrams. The
 * socket asks for GRO (UDP_GRO): such runs arriving whole are cut here, at the
 * size the kernel reports. A destination whose route refuses segmentation (a
 * device without checksum offload, an MTU below the size) gets one datagram
 * per message from then on.
 *
 * Config: { "type": "udp", "host": "0.0.0.0", "port": 0, "batch": 16, "gso": true }
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <o2hub/plugin.h>

#include "netaddr.h"

#define MAX_DATAGRAM 65536
#define MAX_BATCH 64
#define OUTBOX 256              /* datagrams waiting for the end of the turn (one sendmmsg) */
#define MAX_PAYLOAD 65507       /* the largest datagram IPv4 can carry */
#define GSO_MAX_SEGS 64         /* datagrams in one segmented send (older kernels' limit) */
#define GSO_MAX_SEG 1472        /* larger datagrams go alone: an Ethernet MTU's worth */
#define GSO_MAX_BYTES 60000     /* a segmented send's payload, below IP's 64 KiB */
#define RUN_BUDGET GSO_MAX_SEGS /* datagrams delivered a turn (see deliver_some) */

/* Room for one UDP_SEGMENT or UDP_GRO control message. */
typedef union udp_cmsg {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
} udp_cmsg;

typedef struct destination {
    struct sockaddr_in addr;
    o2h_link *link;
    struct udp_transport *tr;
    uint32_t in_outbox; /* datagrams of ours waiting there */
    bool forgotten;     /* closed while some waited: freed once they are gone */
    bool no_gso;        /* the route refused a segmented send: one datagram per message */
    struct destination *next;
} destination;

typedef struct udp_transport {
    const o2h_host *host;
    o2h_plugin *self;
    struct sockaddr_in bind_addr;
    uint32_t internal_ip;
    int fd;
    o2h_watch *watch;
    int batch;
    bool gso; /* segmented sends ("gso" in the config) */
    destination *dests;
    uint8_t *bufs; /* batch x MAX_DATAGRAM */
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iovs[MAX_BATCH];
    struct sockaddr_in from[MAX_BATCH];
    udp_cmsg rx_cmsg[MAX_BATCH];
    /* the last read: buffers [rx_next, rx_read) wait, the first from byte rx_at */
    int rx_read, rx_next;
    size_t rx_at;
    o2h_timer *more; /* delivers the rest in the next turn */
    /* the outbox: datagrams [out_head, out_len) wait, each a message reference */
    struct iovec out_iov[OUTBOX];
    o2h_msg *out_msg[OUTBOX];
    destination *out_dest[OUTBOX];
    uint32_t out_head, out_len;
    /* the sends a flush makes of the outbox: runs of datagrams (see group_outbox) */
    struct mmsghdr groups[OUTBOX];
    uint32_t group_len[OUTBOX];
    udp_cmsg group_cmsg[OUTBOX];
    bool want_write; /* the socket refused: the watch asks for WRITE */
    o2h_deferred flush_later;
    uint64_t send_errors; /* datagrams the system refused for good (logged) */
    double error_logged_at;
} udp_transport;

static void free_destination(destination *d);

/* ---- sending: the outbox ---- */

static void outbox_pop(udp_transport *tr) {
    uint32_t i = tr->out_head++;
    tr->host->msg->msg_unref(tr->out_msg[i]);
    destination *d = tr->out_dest[i];
    if (--d->in_outbox == 0 && d->forgotten) free_destination(d);
    if (tr->out_head == tr->out_len) tr->out_head = tr->out_len = 0;
}

static void set_want_write(udp_transport *tr, bool on) {
    if (tr->want_write == on || !tr->watch) return;
    if (tr->host->loop->watch_modify(tr->watch, O2H_EV_READ | (on ? O2H_EV_WRITE : 0)) == 0)
        tr->want_write = on;
}

/* Datagrams the system refused for good (no route, a firewall): dropped, and said. */
static void refused_for_good(udp_transport *tr, int error, uint32_t count) {
    tr->send_errors += count;
    double now = tr->host->loop->local_time(tr->self);
    if (tr->send_errors > count && now - tr->error_logged_at < 10) return;
    tr->error_logged_at = now;
    const destination *d = tr->out_dest[tr->out_head];
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &d->addr.sin_addr, ip, sizeof ip);
    tr->host->log->write(
        tr->self, O2H_LOG_WARN, "dropping a datagram to %s:%d: %s (%llu dropped so far)", ip,
        ntohs(d->addr.sin_port), strerror(error), (unsigned long long)tr->send_errors);
}

/* How many datagrams from outbox slot `i` (before `end`) can leave as one
 * segmented send: the same destination, the same size, the last maybe shorter. */
static uint32_t run_length(const udp_transport *tr, uint32_t i, uint32_t end) {
    const destination *d = tr->out_dest[i];
    size_t size = tr->out_iov[i].iov_len, total = size;
    if (!tr->gso || d->no_gso || size > GSO_MAX_SEG) return 1;
    uint32_t n = 1;
    while (i + n < end && n < GSO_MAX_SEGS && tr->out_dest[i + n] == d) {
        size_t len = tr->out_iov[i + n].iov_len;
        if (len > size || total + len > GSO_MAX_BYTES) break;
        n++;
        total += len;
        if (len < size) break; /* a shorter datagram ends a run */
    }
    return n;
}

/* Cut what waits into sends: one per run (see run_length), a run of two or
 * more with its segment size. Returns the number of sends. */
static uint32_t group_outbox(udp_transport *tr) {
    uint32_t n = 0;
    for (uint32_t i = tr->out_head; i < tr->out_len; n++) {
        uint32_t len = run_length(tr, i, tr->out_len);
        destination *d = tr->out_dest[i];
        struct msghdr *h = &tr->groups[n].msg_hdr;
        *h = (struct msghdr){.msg_name = &d->addr,
                             .msg_namelen = sizeof d->addr,
                             .msg_iov = &tr->out_iov[i],
                             .msg_iovlen = len};
        if (len > 1) {
            h->msg_control = tr->group_cmsg[n].buf;
            h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
            struct cmsghdr *c = CMSG_FIRSTHDR(h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t size = (uint16_t)tr->out_iov[i].iov_len;
            memcpy(CMSG_DATA(c), &size, sizeof size);
        }
        tr->group_len[n] = len;
        i += len;
    }
    return n;
}

/* Write the outbox: every run that waits, in one sendmmsg. What a full socket
 * refuses stays, and the watch asks for WRITE. */
static void udp_flush(udp_transport *tr) {
    while (tr->out_head < tr->out_len && tr->fd >= 0) {
        uint32_t i = tr->out_head, sends = group_outbox(tr);
        int n;
        if (sends == 1 && tr->group_len[0] == 1) { /* a lone datagram: sendto spares the header */
            ssize_t w =
                sendto(tr->fd, tr->out_iov[i].iov_base, tr->out_iov[i].iov_len, MSG_DONTWAIT,
                       (struct sockaddr *)&tr->out_dest[i]->addr, sizeof tr->out_dest[i]->addr);
            n = w < 0 ? -1 : 1;
        } else {
            n = sendmmsg(tr->fd, tr->groups, sends, MSG_DONTWAIT);
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) break;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && tr->group_len[0] > 1 && (errno == EIO || errno == EINVAL)) {
            tr->out_dest[i]->no_gso = true; /* this route cannot segment: send them singly */
            continue;
        }
        if (n < 0) {
            uint32_t lost = tr->group_len[0];
            refused_for_good(tr, errno, lost); /* the first send: the next call tries the rest */
            for (uint32_t k = 0; k < lost; k++)
                outbox_pop(tr);
            continue;
        }
        for (int g = 0; g < n; g++)
            for (uint32_t k = 0; k < tr->group_len[g]; k++)
                outbox_pop(tr);
    }
    set_want_write(tr, tr->out_head < tr->out_len);
}

static void flush_turn(void *ctx) {
    udp_flush(ctx);
}

/* What a full socket left waits at the end of the outbox: move it to the front. */
static void outbox_compact(udp_transport *tr) {
    uint32_t n = tr->out_len - tr->out_head;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t from = tr->out_head + i;
        tr->out_msg[i] = tr->out_msg[from];
        tr->out_dest[i] = tr->out_dest[from];
        tr->out_iov[i] = tr->out_iov[from];
    }
    tr->out_head = 0;
    tr->out_len = n;
}

static int udp_send(void *instance, void *link_ctx, o2h_msg *msg) {
    udp_transport *tr = instance;
    destination *d = link_ctx;
    if (tr->fd < 0 || msg->length > MAX_PAYLOAD) return O2H_SEND_FAIL;
    if (tr->out_len == OUTBOX) {
        udp_flush(tr); /* a burst larger than the outbox: write what waits now */
        if (tr->out_head > 0) outbox_compact(tr);
        if (tr->out_len == OUTBOX) return O2H_QUEUE_FULL;
    }
    uint32_t i = tr->out_len++;
    tr->out_msg[i] = tr->host->msg->msg_ref(msg);
    tr->out_dest[i] = d;
    d->in_outbox++;
    tr->out_iov[i] = (struct iovec){msg->data, msg->length};
    if (!tr->want_write) tr->host->loop->defer(tr->self, &tr->flush_later, flush_turn, tr);
    return O2H_OK;
}

/* ---- receiving ---- */

/* The size the kernel cut a coalesced (GRO) buffer's datagrams at, or `len`
 * when it holds one datagram. */
static size_t segment_size(const struct msghdr *h, size_t len) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR((struct msghdr *)h, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int size;
            memcpy(&size, CMSG_DATA(c), sizeof size);
            if (size > 0 && (size_t)size < len) return (size_t)size;
        }
    return len;
}

static void deliver_datagram(udp_transport *tr, const uint8_t *data, size_t len) {
    o2h_msg *m = tr->host->msg->msg_alloc(tr->self, (uint32_t)len);
    if (!m) return;
    memcpy(m->data, data, len);
    m->length = (uint32_t)len;
    tr->host->link->deliver(tr->self, NULL, m); /* validates and counts bad ones */
}

/* Whether buffer `i` of the last read holds datagrams to deliver (else counted or refused). */
static bool acceptable(udp_transport *tr, int i) {
    if (tr->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        tr->host->link->count_invalid(tr->self, "truncated UDP datagram");
        return false;
    }
    /* A datagram from an address outside "allow" is not an ensemble member's. */
    return o2h_netaddr_allowed(tr->host, tr->self, &tr->from[i], "a UDP datagram");
}

/* Deliver at most RUN_BUDGET datagrams of what the last recvmmsg read (at
 * most `batch` buffers, each a datagram or a coalesced run of up to
 * GSO_MAX_SEGS, which cost the stack a fraction of as many single ones);
 * returns whether some are left. */
static bool deliver_some(udp_transport *tr) {
    for (int budget = RUN_BUDGET; tr->rx_next < tr->rx_read && budget > 0;) {
        int i = tr->rx_next;
        size_t len = tr->msgs[i].msg_len;
        if (tr->rx_at == 0 && !acceptable(tr, i)) {
            tr->rx_next++;
            continue;
        }
        const uint8_t *data = tr->iovs[i].iov_base;
        size_t size = segment_size(&tr->msgs[i].msg_hdr, len);
        do { /* at least once: an empty datagram goes too (the core counts it invalid) */
            deliver_datagram(tr, data + tr->rx_at, len - tr->rx_at < size ? len - tr->rx_at : size);
            budget--;
            tr->rx_at += size;
        } while (tr->rx_at < len && budget > 0);
        if (tr->rx_at >= len) {
            tr->rx_next++;
            tr->rx_at = 0;
        }
    }
    return tr->rx_next < tr->rx_read;
}

static void on_more(void *ctx);

/* Deliver a batch of what was read; what is left goes in the next turn, ahead
 * of anything read later (from a timer: the socket may be empty by then). */
static void deliver_turn(udp_transport *tr) {
    if (deliver_some(tr) && !tr->more)
        tr->more = tr->host->loop->timer_start(tr->self, 0, 0, on_more, tr);
}

static void on_more(void *ctx) {
    udp_transport *tr = ctx;
    tr->host->loop->timer_stop(tr->more); /* one-shot timers are freed by stopping them */
    tr->more = NULL;
    deliver_turn(tr);
}

/* One batch a turn: a flood's turns stay short, so whatever arrives beside it is
 * read soon (in the next turn, and ahead of the flood there). */
static void on_readable(void *ctx, int fd, unsigned events) {
    udp_transport *tr = ctx;
    if (events & O2H_EV_WRITE) udp_flush(tr);
    if (!(events & (O2H_EV_READ | O2H_EV_ERROR | O2H_EV_HUP))) return;
    if (tr->rx_next < tr->rx_read) return; /* the last read's rest goes first (on_more) */
    for (int i = 0; i < tr->batch; i++) {
        tr->iovs[i] = (struct iovec){tr->bufs + (size_t)i * MAX_DATAGRAM, MAX_DATAGRAM};
        tr->msgs[i].msg_hdr = (struct msghdr){.msg_name = &tr->from[i],
                                              .msg_namelen = sizeof tr->from[i],
                                              .msg_iov = &tr->iovs[i],
                                              .msg_iovlen = 1,
                                              .msg_control = tr->rx_cmsg[i].buf,
                                              .msg_controllen = sizeof tr->rx_cmsg[i].buf};
    }
    int n = recvmmsg(fd, tr->msgs, (unsigned)tr->batch, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    tr->rx_read = n;
    tr->rx_next = 0;
    tr->rx_at = 0;
    deliver_turn(tr);
    /* What is left in the socket waits for the next turn (the watch is level-triggered). */
}

static int udp_connect(void *instance, const char *address, o2h_link **link) {
    udp_transport *tr = instance;
    destination *d = calloc(1, sizeof *d);
    if (!d) return O2H_NO_MEMORY;
    if (o2h_netaddr_parse_endpoint(address, &d->addr) != 0) {
        free(d);
        return O2H_BAD_ARGS;
    }
    char desc[64];
    snprintf(desc, sizeof desc, "udp %s", address);
    d->tr = tr;
    d->link = tr->host->link->link_new(tr->self, d, desc);
    if (!d->link) {
        free(d);
        return O2H_NO_MEMORY;
    }
    d->next = tr->dests;
    tr->dests = d;
    *link = d->link;
    return O2H_OK;
}

static void free_destination(destination *d) {
    free(d);
}

/* The link ends; datagrams of its waiting in the outbox still go (they name its address). */
static void forget(udp_transport *tr, destination *d) {
    for (destination **pp = &tr->dests; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    o2h_link *link = d->link;
    d->link = NULL;
    if (d->in_outbox)
        d->forgotten = true;
    else
        free_destination(d);
    tr->host->link->link_free(link);
}

/* Drop what waits (the socket is closing). */
static void outbox_clear(udp_transport *tr) {
    while (tr->out_head < tr->out_len)
        outbox_pop(tr);
}

static void udp_close(void *instance, void *link_ctx) {
    forget(instance, link_ctx);
}

static int udp_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    udp_transport *tr = calloc(1, sizeof *tr);
    if (!tr) return O2H_NO_MEMORY;
    tr->host = host;
    tr->self = self;
    tr->fd = -1;
    const char *bind_host;
    int64_t port, batch;
    bool gso;
    if (host->cfg->get_string(cfg, "host", "0.0.0.0", &bind_host) == O2H_CONFIG_ERROR ||
        host->cfg->get_bool(cfg, "gso", true, &gso) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "port", 0, 0, 65535, &port) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "batch", 16, 1, MAX_BATCH, &batch) == O2H_CONFIG_ERROR) {
        free(tr);
        return O2H_CONFIG_ERROR;
    }
    tr->batch = (int)batch;
    tr->gso = gso;
    if (o2h_netaddr_cfg_listen(host, cfg, bind_host, (int)port, O2H_NET_UDP, &tr->bind_addr) !=
        O2H_OK) {
        free(tr);
        return O2H_CONFIG_ERROR;
    }
    tr->internal_ip = o2h_netaddr_internal_ip(&tr->bind_addr);
    *instance = tr;
    return O2H_OK;
}

static int udp_start(void *instance) {
    udp_transport *tr = instance;
    tr->bufs = malloc((size_t)tr->batch * MAX_DATAGRAM);
    tr->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!tr->bufs || tr->fd < 0 ||
        bind(tr->fd, (struct sockaddr *)&tr->bind_addr, sizeof tr->bind_addr) != 0) {
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot bind UDP port %d: %s",
                             ntohs(tr->bind_addr.sin_port), strerror(errno));
        if (tr->fd >= 0) close(tr->fd);
        tr->fd = -1;
        return O2H_NO_PORT;
    }
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    getsockname(tr->fd, (struct sockaddr *)&bound, &len);
    int port = ntohs(bound.sin_port);
    int on = 1; /* coalesced runs arrive whole and are cut in deliver_some; without, one by one */
    if (tr->gso) setsockopt(tr->fd, SOL_UDP, UDP_GRO, &on, sizeof on);
    tr->watch = tr->host->loop->watch_fd(tr->self, tr->fd, O2H_EV_READ, on_readable, tr);
    tr->host->log->write(tr->self, O2H_LOG_INFO, "listening on UDP port %d", port);
    return tr->host->proc->net_register(tr->self, O2H_NET_UDP, tr->internal_ip, port);
}

static void udp_stop(void *instance) {
    udp_transport *tr = instance;
    udp_flush(tr); /* the last turn's datagrams, if the socket takes them */
    outbox_clear(tr);
    while (tr->dests)
        forget(tr, tr->dests);
    tr->host->loop->watch_remove(tr->watch);
    tr->watch = NULL;
    tr->host->loop->timer_stop(tr->more);
    tr->more = NULL;
    tr->rx_read = tr->rx_next = 0;
    if (tr->fd >= 0) close(tr->fd);
    tr->fd = -1;
}

static void udp_destroy(void *instance) {
    udp_transport *tr = instance;
    outbox_clear(tr);
    while (tr->dests)
        forget(tr, tr->dests);
    free(tr->bufs);
    free(tr);
}

static const o2h_transport_ops udp_ops = {
    .connect = udp_connect,
    .send = udp_send,
    .close = udp_close,
};

static const o2h_plugin_desc udp_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "udp",
    .version = "1.0.0",
    .description = "O2 best-effort transport: one message per UDP datagram",
    .lifecycle = {udp_create, udp_start, udp_stop, udp_destroy},
    .ops = &udp_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &udp_desc;
}
