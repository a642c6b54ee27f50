/*
 * The TCP transport: O2's reliable path between processes. Each message
 * travels as a 4-byte big-endian length and the message bytes. Sockets are
 * non-blocking with TCP_NODELAY; each connection has a send queue bounded in
 * bytes: when it is full, send() returns O2H_QUEUE_FULL and the core counts
 * the drop, so a peer that stops reading never makes memory grow.
 *
 * Config: { "type": "tcp", "host": "0.0.0.0", "port": 0,
 *           "max_message": 1048576, "send_queue_bytes": 4194304 }
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <o2hub/plugin.h>

#include "netaddr.h"

#define READ_CHUNK 65536
#define MAX_READS_PER_EVENT 16 /* fairness between connections */
#define MAX_IOV 64

typedef struct tcp_transport tcp_transport;

typedef struct conn {
    tcp_transport *tr;
    int fd;
    o2h_watch *watch;
    o2h_link *link;
    bool connecting;
    bool close_when_flushed; /* the core is done with it */
    bool dead;               /* closed; its memory goes in the loop's deferred phase */
    o2h_deferred free_later;
    unsigned events; /* what the watch asks for now */
    /* receiving: a length prefix, then the message */
    uint8_t hdr[4];
    uint32_t hdr_got;
    o2h_msg *in;
    uint32_t in_got;
    /* sending: a ring of messages; `sent` bytes of the first are written */
    o2h_msg **queue;
    uint32_t q_head, q_count, q_cap;
    size_t q_bytes;
    size_t sent;
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
    int listen_fd;
    o2h_watch *listen_watch;
    conn *conns;
    uint8_t buf[READ_CHUNK];
};

/* ---- connections ---- */

static void conn_free_memory(void *ctx) {
    conn *c = ctx;
    free(c->queue);
    free(c);
}

static void conn_unlink(tcp_transport *tr, conn *c) {
    for (conn **pp = &tr->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

/* Close the socket, drop what is queued, tell the core the link is gone. */
static void conn_close(conn *c) {
    if (c->dead) return;
    tcp_transport *tr = c->tr;
    c->dead = true;
    tr->host->loop->watch_remove(c->watch);
    c->watch = NULL;
    close(c->fd);
    while (c->q_count) {
        tr->host->msg->msg_unref(c->queue[c->q_head]);
        c->q_head = (c->q_head + 1) % c->q_cap;
        c->q_count--;
    }
    if (c->in) tr->host->msg->msg_unref(c->in);
    c->in = NULL;
    conn_unlink(tr, c);
    o2h_link *link = c->link;
    c->link = NULL;
    tr->host->link->link_free(link);
    /* Our callbacks up the stack may still look at c (c->dead). */
    tr->host->loop->defer(tr->self, &c->free_later, conn_free_memory, c);
}

static int want_events(const conn *c) {
    unsigned ev = O2H_EV_READ;
    if (c->connecting || c->q_count) ev |= O2H_EV_WRITE;
    return (int)ev;
}

static void update_interest(conn *c) {
    unsigned want = (unsigned)want_events(c);
    if (c->dead || want == c->events) return; /* skip the epoll_ctl when nothing changes */
    c->events = want;
    c->tr->host->loop->watch_modify(c->watch, want);
}

/* ---- sending ---- */

static void queue_pop(conn *c) {
    o2h_msg *done = c->queue[c->q_head];
    c->q_bytes -= 4 + done->length; /* before the unref: it may free the message */
    c->tr->host->msg->msg_unref(done);
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_count--;
    c->sent = 0;
}

static bool queue_push(conn *c, o2h_msg *msg) {
    if (c->q_count == c->q_cap) {
        uint32_t cap = c->q_cap ? c->q_cap * 2 : 16;
        o2h_msg **q = malloc(cap * sizeof *q);
        if (!q) return false;
        for (uint32_t i = 0; i < c->q_count; i++)
            q[i] = c->queue[(c->q_head + i) % c->q_cap];
        free(c->queue);
        c->queue = q;
        c->q_head = 0;
        c->q_cap = cap;
    }
    c->queue[(c->q_head + c->q_count) % c->q_cap] = c->tr->host->msg->msg_ref(msg);
    c->q_count++;
    c->q_bytes += 4 + msg->length;
    return true;
}

/* Write as much of the queue as the socket takes, many messages per writev. */
static int flush(conn *c) {
    while (c->q_count) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        for (uint32_t i = 0; i < c->q_count && n < MAX_IOV; i++) {
            o2h_msg *m = c->queue[(c->q_head + i) % c->q_cap];
            size_t skip = i == 0 ? c->sent : 0;
            iov[n].iov_base = m->data - 4 + skip;
            iov[n].iov_len = 4 + m->length - skip;
            n++;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
        size_t left = (size_t)w;
        while (left && c->q_count) {
            size_t first = 4 + c->queue[c->q_head]->length - c->sent;
            if (left < first) {
                c->sent += left;
                break;
            }
            left -= first;
            queue_pop(c);
        }
        if (c->q_count && c->sent) return 0; /* partial: the socket is full */
    }
    return 0;
}

static int tcp_send(void *instance, void *link_ctx, o2h_msg *msg) {
    conn *c = link_ctx;
    (void)instance;
    if (c->dead || c->close_when_flushed) return O2H_SEND_FAIL;
    if ((int64_t)(c->q_bytes + 4 + msg->length) > c->tr->queue_limit) return O2H_QUEUE_FULL;
    o2h_wr_u32(msg->data - 4, msg->length); /* the slot before every message is ours */
    if (!c->connecting && c->q_count == 0) {
        ssize_t w = send(c->fd, msg->data - 4, 4 + msg->length, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == (ssize_t)(4 + msg->length)) return O2H_OK;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(c);
            return O2H_SEND_FAIL;
        }
        if (!queue_push(c, msg)) return O2H_NO_MEMORY;
        c->sent = w > 0 ? (size_t)w : 0;
        update_interest(c);
        return O2H_OK;
    }
    if (!queue_push(c, msg)) return O2H_NO_MEMORY;
    update_interest(c);
    return O2H_OK;
}

/* ---- receiving ---- */

/* Feed bytes from the socket; false when the stream is unusable (bad length). */
static bool take_bytes(conn *c, const uint8_t *p, size_t n) {
    tcp_transport *tr = c->tr;
    while (n > 0 && !c->dead) {
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

static void on_readable(conn *c) {
    tcp_transport *tr = c->tr;
    for (int i = 0; i < MAX_READS_PER_EVENT && !c->dead; i++) {
        ssize_t n = recv(c->fd, tr->buf, sizeof tr->buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n < 0) return;
        if (!take_bytes(c, tr->buf, (size_t)n)) {
            conn_close(c);
            return;
        }
        if ((size_t)n < sizeof tr->buf) return; /* drained: no need for an EAGAIN read */
    }
}

static void finish_connect(conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        c->tr->host->log->write(c->tr->self, O2H_LOG_INFO, "connect to %s failed: %s", c->peer_text,
                                strerror(err));
        conn_close(c);
        return;
    }
    c->connecting = false;
}

static void on_conn_event(void *ctx, int fd, unsigned events) {
    conn *c = ctx;
    (void)fd;
    if (c->connecting && (events & (O2H_EV_WRITE | O2H_EV_ERROR | O2H_EV_HUP))) finish_connect(c);
    if (!c->dead && !c->connecting && (events & (O2H_EV_READ | O2H_EV_HUP | O2H_EV_ERROR)))
        on_readable(c);
    if (!c->dead && !c->connecting && c->q_count && flush(c) != 0) conn_close(c);
    if (!c->dead && c->close_when_flushed && c->q_count == 0) conn_close(c);
    if (!c->dead) update_interest(c);
}

static conn *conn_new(tcp_transport *tr, int fd, const struct sockaddr_in *addr, bool connecting) {
    conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->tr = tr;
    c->fd = fd;
    c->connecting = connecting;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof ip);
    snprintf(c->peer_text, sizeof c->peer_text, "%s:%d", ip, ntohs(addr->sin_port));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->events = (unsigned)want_events(c);
    c->watch = tr->host->loop->watch_fd(tr->self, fd, c->events, on_conn_event, c);
    char desc[64];
    snprintf(desc, sizeof desc, "tcp %s", c->peer_text);
    c->link = c->watch ? tr->host->link->link_new(tr->self, c, desc) : NULL;
    if (!c->link) {
        if (c->watch) tr->host->loop->watch_remove(c->watch);
        free(c);
        return NULL;
    }
    c->next = tr->conns;
    tr->conns = c;
    return c;
}

static void on_accept(void *ctx, int fd, unsigned events) {
    tcp_transport *tr = ctx;
    (void)events;
    for (;;) {
        struct sockaddr_in addr;
        socklen_t len = sizeof addr;
        int cfd = accept4(fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) return;
        if (!conn_new(tr, cfd, &addr, false)) close(cfd);
    }
}

/* ---- ops ---- */

static int tcp_connect(void *instance, const char *address, o2h_link **link) {
    tcp_transport *tr = instance;
    struct sockaddr_in addr;
    if (o2h_netaddr_parse_endpoint(address, &addr) != 0) return O2H_BAD_ARGS;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return O2H_SOCKET_ERROR;
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        return O2H_TCP_CONNECT_FAIL;
    }
    conn *c = conn_new(tr, fd, &addr, rc != 0);
    if (!c) {
        close(fd);
        return O2H_NO_MEMORY;
    }
    *link = c->link;
    return O2H_OK;
}

static void tcp_close(void *instance, void *link_ctx) {
    conn *c = link_ctx;
    (void)instance;
    if (c->dead) return;
    c->close_when_flushed = true;
    if (c->q_count == 0 && !c->connecting)
        conn_close(c);
    else
        update_interest(c); /* closed by on_conn_event once flushed */
}

static int tcp_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    tcp_transport *tr = calloc(1, sizeof *tr);
    if (!tr) return O2H_NO_MEMORY;
    tr->host = host;
    tr->self = self;
    tr->listen_fd = -1;
    const char *bind_host;
    int64_t port;
    if (host->cfg->get_string(cfg, "host", "0.0.0.0", &bind_host) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "port", 0, 0, 65535, &port) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "max_message", 1 << 20, 16, 1 << 20, &tr->max_message) ==
            O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "send_queue_bytes", 4 << 20, 1024, (int64_t)1 << 32,
                           &tr->queue_limit) == O2H_CONFIG_ERROR) {
        free(tr);
        return O2H_CONFIG_ERROR;
    }
    if (o2h_netaddr_parse_ipv4(bind_host, (int)port, &tr->bind_addr) != 0) {
        host->cfg->error(cfg, "host", "\"%s\" is not an IPv4 address", bind_host);
        free(tr);
        return O2H_CONFIG_ERROR;
    }
    tr->internal_ip = o2h_netaddr_internal_ip(&tr->bind_addr);
    *instance = tr;
    return O2H_OK;
}

static int tcp_start(void *instance) {
    tcp_transport *tr = instance;
    tr->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(tr->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (tr->listen_fd < 0 ||
        bind(tr->listen_fd, (struct sockaddr *)&tr->bind_addr, sizeof tr->bind_addr) != 0 ||
        listen(tr->listen_fd, 128) != 0) {
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot listen on TCP port %d: %s",
                             ntohs(tr->bind_addr.sin_port), strerror(errno));
        if (tr->listen_fd >= 0) close(tr->listen_fd);
        tr->listen_fd = -1;
        return O2H_NO_PORT;
    }
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    getsockname(tr->listen_fd, (struct sockaddr *)&bound, &len);
    int port = ntohs(bound.sin_port);
    tr->listen_watch =
        tr->host->loop->watch_fd(tr->self, tr->listen_fd, O2H_EV_READ, on_accept, tr);
    tr->host->log->write(tr->self, O2H_LOG_INFO, "listening on TCP port %d", port);
    return tr->host->proc->net_register(tr->self, O2H_NET_TCP, tr->internal_ip, port);
}

static void tcp_stop(void *instance) {
    tcp_transport *tr = instance;
    while (tr->conns)
        conn_close(tr->conns);
    tr->host->loop->watch_remove(tr->listen_watch);
    tr->listen_watch = NULL;
    if (tr->listen_fd >= 0) close(tr->listen_fd);
    tr->listen_fd = -1;
}

static void tcp_destroy(void *instance) {
    tcp_transport *tr = instance;
    while (tr->conns)
        conn_close(tr->conns);
    free(tr);
}

static const o2h_transport_ops tcp_ops = {
    .connect = tcp_connect,
    .send = tcp_send,
    .close = tcp_close,
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
