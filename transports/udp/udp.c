/*
 * The UDP transport: O2's best-effort path. One datagram is one message
 * (no length prefix). Datagrams are received in batches with recvmmsg; a
 * send that would block is a counted drop (O2H_QUEUE_FULL), never a queue.
 * A link is a destination address (the core makes one per peer process).
 *
 * Config: { "type": "udp", "host": "0.0.0.0", "port": 0, "batch": 16 }
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <o2hub/plugin.h>

#include "netaddr.h"

#define MAX_DATAGRAM 65536
#define MAX_BATCH 64

typedef struct destination {
    struct sockaddr_in addr;
    o2h_link *link;
    struct udp_transport *tr;
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
    destination *dests;
    uint8_t *bufs; /* batch x MAX_DATAGRAM */
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iovs[MAX_BATCH];
    struct sockaddr_in from[MAX_BATCH];
} udp_transport;

static void on_readable(void *ctx, int fd, unsigned events) {
    udp_transport *tr = ctx;
    (void)events;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < tr->batch; i++) {
            tr->iovs[i] = (struct iovec){tr->bufs + (size_t)i * MAX_DATAGRAM, MAX_DATAGRAM};
            tr->msgs[i].msg_hdr = (struct msghdr){.msg_name = &tr->from[i],
                                                  .msg_namelen = sizeof tr->from[i],
                                                  .msg_iov = &tr->iovs[i],
                                                  .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, tr->msgs, (unsigned)tr->batch, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        for (int i = 0; i < n; i++) {
            uint32_t len = tr->msgs[i].msg_len;
            if (tr->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                tr->host->link->count_invalid(tr->self, "truncated UDP datagram");
                continue;
            }
            /* A datagram from an address outside "allow" is not an ensemble member's. */
            if (!o2h_netaddr_allowed(tr->host, tr->self, &tr->from[i], "a UDP datagram")) continue;
            o2h_msg *m = tr->host->msg->msg_alloc(tr->self, len);
            if (!m) continue;
            memcpy(m->data, tr->iovs[i].iov_base, len);
            m->length = len;
            tr->host->link->deliver(tr->self, NULL, m); /* validates and counts bad ones */
        }
        if (n < tr->batch) return;
    }
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

static int udp_send(void *instance, void *link_ctx, o2h_msg *msg) {
    udp_transport *tr = instance;
    destination *d = link_ctx;
    if (tr->fd < 0) return O2H_SEND_FAIL;
    ssize_t n = sendto(tr->fd, msg->data, msg->length, MSG_DONTWAIT, (struct sockaddr *)&d->addr,
                       sizeof d->addr);
    if (n == (ssize_t)msg->length) return O2H_OK;
    return (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) ? O2H_QUEUE_FULL
                                                                                    : O2H_SEND_FAIL;
}

static void forget(udp_transport *tr, destination *d) {
    for (destination **pp = &tr->dests; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    o2h_link *link = d->link;
    free(d);
    tr->host->link->link_free(link);
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
    if (host->cfg->get_string(cfg, "host", "0.0.0.0", &bind_host) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "port", 0, 0, 65535, &port) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "batch", 16, 1, MAX_BATCH, &batch) == O2H_CONFIG_ERROR) {
        free(tr);
        return O2H_CONFIG_ERROR;
    }
    tr->batch = (int)batch;
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
    tr->watch = tr->host->loop->watch_fd(tr->self, tr->fd, O2H_EV_READ, on_readable, tr);
    tr->host->log->write(tr->self, O2H_LOG_INFO, "listening on UDP port %d", port);
    return tr->host->proc->net_register(tr->self, O2H_NET_UDP, tr->internal_ip, port);
}

static void udp_stop(void *instance) {
    udp_transport *tr = instance;
    while (tr->dests)
        forget(tr, tr->dests);
    tr->host->loop->watch_remove(tr->watch);
    tr->watch = NULL;
    if (tr->fd >= 0) close(tr->fd);
    tr->fd = -1;
}

static void udp_destroy(void *instance) {
    udp_transport *tr = instance;
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
