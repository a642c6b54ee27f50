/*
 * The TCP transport: O2's reliable path between processes. Each message
 * travels as a 4-byte big-endian length and the message bytes. Sockets are
 * non-blocking with TCP_NODELAY; each connection has a send queue bounded in
 * bytes: when it is full, send() returns O2H_QUEUE_FULL and the core counts
 * the drop, so a peer that stops reading never makes memory grow.
 *
 * Connections and the listening socket are transports/common's (stream.h,
 * listener.h); this file frames messages and makes links of connections.
 *
 * Config: { "type": "tcp", "host": "0.0.0.0", "port": 0, "max_message": 1048576,
 *           "send_queue_bytes": 4194304, "max_connections": 1024 }
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

#include "listener.h"
#include "netaddr.h"
#include "stream.h"

#define READ_CHUNK 65536
#define LISTEN_BACKLOG 128

typedef struct tcp_transport tcp_transport;

typedef struct conn {
    tcp_transport *tr;
    o2h_stream *stream;
    o2h_link *link;
    bool accepted; /* counts against the listener's max_connections */
    /* receiving: a length prefix, then the message */
    uint8_t hdr[4];
    uint32_t hdr_got;
    o2h_msg *in;
    uint32_t in_got;
    char peer_text[48];
    struct conn *next;
} conn;

struct tcp_transport {
    const o2h_host *host;
    o2h_plugin *self;
    struct sockaddr_in bind_addr;
    uint32_t internal_ip;
    int64_t max_message;
    int64_t queue_limit;
    int64_t max_connections;
    o2h_listener *listener;
    conn *conns;
    uint8_t buf[READ_CHUNK]; /* every connection reads here (stream.h) */
};

/* ---- connections ---- */

static void conn_unlink(tcp_transport *tr, conn *c) {
    for (conn **pp = &tr->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

/* The stream is closed (its queue dropped): tell the core the link is gone. */
static void conn_closed(void *ctx, o2h_stream_end why, int error) {
    conn *c = ctx;
    tcp_transport *tr = c->tr;
    if (why == O2H_STREAM_CONNECT_FAILED)
        tr->host->log->write(tr->self, O2H_LOG_INFO, "connect to %s failed: %s", c->peer_text,
                             strerror(error));
    if (c->in) tr->host->msg->msg_unref(c->in);
    c->in = NULL;
    conn_unlink(tr, c);
    if (c->accepted && tr->listener) o2h_listener_release(tr->listener);
    o2h_link *link = c->link;
    c->link = NULL;
    if (link) tr->host->link->link_free(link);
}

/* Feed bytes from the socket; false when the stream is unusable (bad length). */
static bool take_bytes(void *ctx, const uint8_t *p, size_t n) {
    conn *c = ctx;
    tcp_transport *tr = c->tr;
    while (n > 0 && !o2h_stream_is_closed(c->stream)) {
        if (!c->in) {
            size_t k = 4 - c->hdr_got < n ? 4 - c->hdr_got : n;
            memcpy(c->hdr + c->hdr_got, p, k);
            c->hdr_got += (uint32_t)k;
            p += k;
            n -= k;
            if (c->hdr_got < 4) return true;
            uint32_t len = o2h_rd_u32(c->hdr);
            if (len < 16 || len % 4 || (int64_t)len > tr->max_message) {
                /* Framing is lost for good: nothing after this can be trusted. */
                tr->host->link->count_invalid(tr->self, "TCP length prefix out of range");
                tr->host->log->write(tr->self, O2H_LOG_WARN,
                                     "closing %s: message length %u out of range", c->peer_text,
                                     len);
                return false;
            }
            c->in = tr->host->msg->msg_alloc(tr->self, len);
            if (!c->in) return false;
            c->in->length = len;
            c->in_got = 0;
        }
        size_t k = c->in->length - c->in_got < n ? c->in->length - c->in_got : n;
        memcpy(c->in->data + c->in_got, p, k);
        c->in_got += (uint32_t)k;
        p += k;
        n -= k;
        if (c->in_got == c->in->length) {
            o2h_msg *m = c->in;
            c->in = NULL;
            c->hdr_got = 0;
            tr->host->link->deliver(tr->self, c->link, m); /* validates; may close c */
        }
    }
    return true;
}

/* Room again after a full queue: reliable messages the core held go out now. */
static void conn_drained(void *ctx) {
    conn *c = ctx;
    if (c->link) c->tr->host->link->drained(c->link);
}

static const o2h_stream_ops conn_ops = {
    .on_data = take_bytes,
    .on_close = conn_closed,
    .on_free = free,
    .on_drained = conn_drained,
};

/* A connection on `fd` (accepted from `addr`), or with fd -1 a new one
 * connecting to `addr`. NULL (and *error) if it could not be made; the fd is
 * closed then. */
static conn *conn_new(tcp_transport *tr, int fd, const struct sockaddr_in *addr, int *error) {
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        if (fd >= 0) close(fd);
        *error = ENOMEM;
        return NULL;
    }
    c->tr = tr;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof ip);
    snprintf(c->peer_text, sizeof c->peer_text, "%s:%d", ip, ntohs(addr->sin_port));
    o2h_stream_params sp = {.host = tr->host,
                            .self = tr->self,
                            .ops = &conn_ops,
                            .ctx = c,
                            .queue_limit = (size_t)tr->queue_limit,
                            .rx = tr->buf,
                            .rx_size = sizeof tr->buf,
                            /* One 64 KB read a turn (some 1500 small messages): a peer that
                             * floods cannot hold back another's messages for longer. */
                            .read_budget = 1,
                            .coalesce = true};
    *error = ENOMEM;
    c->stream = fd >= 0 ? o2h_stream_new(&sp, fd) : o2h_stream_connect(&sp, addr, error);
    if (!c->stream) {
        free(c);
        return NULL;
    }
    char desc[64];
    snprintf(desc, sizeof desc, "tcp %s", c->peer_text);
    c->link = tr->host->link->link_new(tr->self, c, desc);
    if (!c->link) {
        o2h_stream_close(c->stream); /* conn_closed finds nothing to undo; on_free frees c */
        *error = ENOMEM;
        return NULL;
    }
    c->next = tr->conns;
    tr->conns = c;
    return c;
}

static bool on_accept(void *ctx, int fd, const struct sockaddr_in *peer) {
    tcp_transport *tr = ctx;
    if (!o2h_netaddr_allowed(tr->host, tr->self, peer, "a TCP connection")) {
        close(fd);
        return false; /* not open: does not count against max_connections */
    }
    int error;
    conn *c = conn_new(tr, fd, peer, &error);
    if (c) c->accepted = true;
    return c != NULL;
}

static int tcp_send(void *instance, void *link_ctx, o2h_msg *msg) {
    conn *c = link_ctx;
    (void)instance;
    return o2h_stream_send_msg(c->stream, msg, true); /* may close c: link_free, SEND_FAIL */
}

/* ---- ops ---- */

static int connect_error(int error) {
    if (error == ENOMEM) return O2H_NO_MEMORY;
    if (error == EMFILE || error == ENFILE || error == ENOBUFS) return O2H_SOCKET_ERROR;
    return O2H_TCP_CONNECT_FAIL;
}

static int tcp_connect(void *instance, const char *address, o2h_link **link) {
    tcp_transport *tr = instance;
    struct sockaddr_in addr;
    if (o2h_netaddr_parse_endpoint(address, &addr) != 0) return O2H_BAD_ARGS;
    int error;
    conn *c = conn_new(tr, -1, &addr, &error);
    if (!c) return connect_error(error);
    *link = c->link;
    return O2H_OK;
}

/* The core holds what this link sent for a full one: stop reading it meanwhile. */
static int tcp_pause(void *instance, void *link_ctx, bool paused) {
    conn *c = link_ctx;
    (void)instance;
    o2h_stream_set_reading(c->stream, !paused);
    return O2H_OK;
}

static size_t tcp_queued(void *instance, void *link_ctx) {
    conn *c = link_ctx;
    (void)instance;
    return o2h_stream_queued(c->stream);
}

static void tcp_close(void *instance, void *link_ctx) {
    conn *c = link_ctx;
    (void)instance;
    o2h_stream_close_when_flushed(c->stream); /* conn_closed runs once it is */
}

static int tcp_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    tcp_transport *tr = calloc(1, sizeof *tr);
    if (!tr) return O2H_NO_MEMORY;
    tr->host = host;
    tr->self = self;
    const char *bind_host;
    int64_t port;
    if (host->cfg->get_string(cfg, "host", "0.0.0.0", &bind_host) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "port", 0, 0, 65535, &port) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "max_message", 1 << 20, 16, 1 << 20, &tr->max_message) ==
            O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "send_queue_bytes", 4 << 20, 1024, (int64_t)1 << 32,
                           &tr->queue_limit) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "max_connections", 1024, 1, 1 << 20, &tr->max_connections) ==
            O2H_CONFIG_ERROR) {
        free(tr);
        return O2H_CONFIG_ERROR;
    }
    if (o2h_netaddr_cfg_listen(host, cfg, bind_host, (int)port, O2H_NET_TCP, &tr->bind_addr) !=
        O2H_OK) {
        free(tr);
        return O2H_CONFIG_ERROR;
    }
    tr->internal_ip = o2h_netaddr_internal_ip(&tr->bind_addr);
    *instance = tr;
    return O2H_OK;
}

static int tcp_start(void *instance) {
    tcp_transport *tr = instance;
    o2h_listener_params lp = {.host = tr->host,
                              .self = tr->self,
                              .bind_addr = tr->bind_addr,
                              .backlog = LISTEN_BACKLOG,
                              .max_connections = (int)tr->max_connections,
                              .what = "TCP",
                              .on_accept = on_accept,
                              .ctx = tr};
    int error;
    tr->listener = o2h_listener_open(&lp, &error);
    if (!tr->listener) {
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot listen on TCP port %d: %s",
                             ntohs(tr->bind_addr.sin_port), strerror(error));
        return O2H_NO_PORT;
    }
    int port = o2h_listener_port(tr->listener);
    tr->host->log->write(tr->self, O2H_LOG_INFO, "listening on TCP port %d", port);
    return tr->host->proc->net_register(tr->self, O2H_NET_TCP, tr->internal_ip, port);
}

static void close_all(tcp_transport *tr) {
    while (tr->conns)
        o2h_stream_close(tr->conns->stream); /* conn_closed unlinks it */
}

static void tcp_stop(void *instance) {
    tcp_transport *tr = instance;
    close_all(tr);
    o2h_listener_close(tr->listener);
    tr->listener = NULL;
}

static void tcp_destroy(void *instance) {
    tcp_stop(instance);
    free(instance);
}

static const o2h_transport_ops tcp_ops = {
    .connect = tcp_connect,
    .send = tcp_send,
    .close = tcp_close,
    .pause = tcp_pause,
    .queued = tcp_queued,
};

static const o2h_plugin_desc tcp_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "tcp",
    .version = "1.0.0",
    .description = "O2 reliable transport: length-prefixed messages over TCP",
    .lifecycle = {tcp_create, tcp_start, tcp_stop, tcp_destroy},
    .ops = &tcp_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &tcp_desc;
}
