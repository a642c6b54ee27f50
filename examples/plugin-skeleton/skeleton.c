/*
 * o2hub plugin skeleton — copy this folder to start a transport.
 *
 * It is a complete, small transport: it receives O2 messages as UDP
 * datagrams on "host":"port" and hands them to the router, and it provides
 * the services listed in "forward", sending their messages as datagrams to
 * another address. Config:
 *
 *   { "type": "skeleton", "host": "127.0.0.1", "port": 0,
 *     "forward": [ { "service": "out", "to": "127.0.0.1:9000" } ] }
 *
 * Rules every plugin follows (see sdk/include/o2hub/plugin.h):
 *  - export only o2hub_plugin_entry; everything else is static;
 *  - call the core only through the host table given to create();
 *  - create() reads config and allocates, start() opens sockets;
 *  - send() borrows the message; keep it with host->msg->msg_ref if you queue it.
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

#define MAX_DATAGRAM 65536
#define MAX_READS_PER_WAKEUP 64 /* be fair to other fds under load */

typedef struct forward {
    char service[64];
    struct sockaddr_in to;
    o2h_link *link;
    struct skeleton *owner;
} forward;

typedef struct skeleton {
    const o2h_host *host;
    o2h_plugin *self;
    struct sockaddr_in bind_addr;
    int fd;
    o2h_watch *watch;
    forward *forwards;
    int n_forwards;
    uint8_t buf[MAX_DATAGRAM];
} skeleton;

static int parse_ipv4(const char *text, int port, struct sockaddr_in *out) {
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, text, &out->sin_addr) == 1 ? O2H_OK : O2H_BAD_ARGS;
}

/* "a.b.c.d:port" */
static int parse_endpoint(const char *text, struct sockaddr_in *out) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof host) return O2H_BAD_ARGS;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535) return O2H_BAD_ARGS;
    return parse_ipv4(host, (int)port, out);
}

static int read_forward(skeleton *sk, const o2h_cfg *item, forward *f) {
    const o2h_host *h = sk->host;
    const char *service, *to;
    if (h->cfg->get_string(item, "service", NULL, &service) != O2H_OK ||
        h->cfg->get_string(item, "to", NULL, &to) != O2H_OK)
        return h->cfg->error(item, NULL, "a forward needs \"service\" and \"to\"");
    if (strlen(service) >= sizeof f->service)
        return h->cfg->error(item, "service", "service name too long");
    if (parse_endpoint(to, &f->to) != O2H_OK)
        return h->cfg->error(item, "to", "\"%s\" is not an IPv4 address:port", to);
    snprintf(f->service, sizeof f->service, "%s", service);
    f->owner = sk;
    return O2H_OK;
}

static int skeleton_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg,
                           void **instance) {
    skeleton *sk = calloc(1, sizeof *sk);
    if (!sk) return O2H_NO_MEMORY;
    sk->host = host;
    sk->self = self;
    sk->fd = -1;
    const char *bind_host;
    int64_t port;
    int rc = host->cfg->get_string(cfg, "host", "127.0.0.1", &bind_host);
    if (rc == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "port", 0, 0, 65535, &port) == O2H_CONFIG_ERROR)
        goto fail;
    if (parse_ipv4(bind_host, (int)port, &sk->bind_addr) != O2H_OK) {
        host->cfg->error(cfg, "host", "\"%s\" is not an IPv4 address", bind_host);
        goto fail;
    }
    int n = host->cfg->array_len(cfg, "forward");
    if (n < 0) goto fail;
    sk->forwards = calloc((size_t)n + 1, sizeof *sk->forwards);
    if (!sk->forwards) goto fail;
    for (int i = 0; i < n; i++) {
        const o2h_cfg *item = host->cfg->array_item(cfg, "forward", i);
        if (!item || read_forward(sk, item, &sk->forwards[i]) != O2H_OK) goto fail;
        sk->n_forwards++;
    }
    *instance = sk;
    return O2H_OK;
fail:
    free(sk->forwards);
    free(sk);
    return O2H_CONFIG_ERROR;
}

static void on_readable(void *ctx, int fd, unsigned events) {
    skeleton *sk = ctx;
    (void)events; /* errors surface as recv() failures */
    for (int i = 0; i < MAX_READS_PER_WAKEUP; i++) {
        ssize_t n = recv(fd, sk->buf, sizeof sk->buf, 0);
        if (n < 0) return; /* EAGAIN: drained */
        o2h_msg *msg = sk->host->msg->msg_alloc(sk->self, (size_t)n);
        if (!msg) {
            sk->host->link->count_invalid(sk->self, "no memory for datagram");
            continue;
        }
        memcpy(msg->data, sk->buf, (size_t)n);
        msg->length = (uint32_t)n;
        sk->host->link->deliver(sk->self, NULL, msg); /* validates, counts, routes */
    }
}

static int open_socket(skeleton *sk) {
    sk->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sk->fd < 0) return O2H_SOCKET_ERROR;
    if (bind(sk->fd, (struct sockaddr *)&sk->bind_addr, sizeof sk->bind_addr) != 0) {
        sk->host->log->write(sk->self, O2H_LOG_ERROR, "cannot bind UDP port %d: %s",
                             ntohs(sk->bind_addr.sin_port), strerror(errno));
        return O2H_NO_PORT;
    }
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    getsockname(sk->fd, (struct sockaddr *)&bound, &len);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &bound.sin_addr, ip, sizeof ip);
    /* Tests and users read the port from this line when "port" is 0. */
    sk->host->log->write(sk->self, O2H_LOG_INFO, "listening on %s:%d", ip, ntohs(bound.sin_port));
    sk->watch = sk->host->loop->watch_fd(sk->self, sk->fd, O2H_EV_READ, on_readable, sk);
    return sk->watch ? O2H_OK : O2H_NO_MEMORY;
}

static void skeleton_stop(void *instance);

static int skeleton_start(void *instance) {
    skeleton *sk = instance;
    int rc = open_socket(sk);
    for (int i = 0; rc == O2H_OK && i < sk->n_forwards; i++) {
        forward *f = &sk->forwards[i];
        f->link = sk->host->link->link_new(sk->self, f, f->service);
        rc = f->link ? sk->host->link->service_add(sk->self, f->service, f->link) : O2H_NO_MEMORY;
        if (rc != O2H_OK)
            sk->host->log->write(sk->self, O2H_LOG_ERROR, "cannot provide service \"%s\"",
                                 f->service);
    }
    if (rc != O2H_OK) skeleton_stop(sk);
    return rc;
}

static void skeleton_stop(void *instance) {
    skeleton *sk = instance;
    for (int i = 0; i < sk->n_forwards; i++) {
        sk->host->link->link_free(sk->forwards[i].link); /* withdraws the service too */
        sk->forwards[i].link = NULL;
    }
    sk->host->loop->watch_remove(sk->watch);
    sk->watch = NULL;
    if (sk->fd >= 0) close(sk->fd);
    sk->fd = -1;
}

static void skeleton_destroy(void *instance) {
    skeleton *sk = instance;
    free(sk->forwards);
    free(sk);
}

static int skeleton_send(void *instance, void *link_ctx, o2h_msg *msg) {
    skeleton *sk = instance;
    forward *f = link_ctx;
    ssize_t n = sendto(sk->fd, msg->data, msg->length, 0, (struct sockaddr *)&f->to, sizeof f->to);
    if (n == (ssize_t)msg->length) return O2H_OK;
    /* Datagrams are best effort: a full socket buffer is a counted drop. */
    return (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ? O2H_QUEUE_FULL : O2H_SEND_FAIL;
}

static const o2h_transport_ops skeleton_ops = {
    .connect = NULL, /* links come from the config, not from peers */
    .send = skeleton_send,
    .close = NULL,
};

static const o2h_plugin_desc skeleton_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "skeleton",
    .version = "1.0.0",
    .description = "example transport: O2 messages as UDP datagrams in, forwarded services out",
    .lifecycle = {skeleton_create, skeleton_start, skeleton_stop, skeleton_destroy},
    .ops = &skeleton_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &skeleton_desc;
}
