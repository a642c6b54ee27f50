/* TLS termination in front of libmicrohttpd (tls_proxy.h). */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"
#include "tls_proxy.h"

#define PUMP_BYTES 16384    /* one TLS record's worth each way */
#define PUMP_ROUNDS 16      /* records moved per event before others get a turn */
#define LINGER_SECONDS 10.0 /* after our end of stream, how long the client may take to close */

/* Bytes read from one side, not yet all written to the other. */
typedef struct pump {
    uint8_t data[PUMP_BYTES];
    size_t len, off;
} pump;

typedef struct tls_conn {
    tls_proxy *p;
    int tcp, plain; /* plain: our end of the pair, -1 until the handshake is done */
    gnutls_session_t session;
    o2h_watch *tcp_watch, *plain_watch;
    unsigned tcp_events, plain_events;
    bool ready;              /* handshake done, handed to MHD */
    bool net_eof, app_eof;   /* the client / MHD has nothing more to send */
    bool app_shut, net_shut; /* we passed that end of stream on */
    bool send_again;         /* gnutls said AGAIN: send the same bytes again */
    double deadline;         /* for the handshake, then for the client to close after us */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    pump to_app; /* decrypted, for MHD */
    pump to_net; /* from MHD, to encrypt */
    struct tls_conn *next;
} tls_conn;

struct tls_proxy {
    tls_proxy_config cfg;
    int port, n_conns;
    o2h_listener *listener; /* accept, max_connections, out-of-descriptor backoff */
    o2h_timer *tick;
    gnutls_certificate_credentials_t creds;
    gnutls_priority_t priority;
    tls_conn *conns;
};

static double now(const tls_proxy *p) {
    return p->cfg.host->loop->local_time(p->cfg.self);
}

static bool pending(const pump *b) {
    return b->len > b->off;
}

static void conn_close(tls_conn *c) {
    tls_proxy *p = c->p;
    const o2h_host *h = p->cfg.host;
    h->loop->watch_remove(c->tcp_watch);
    h->loop->watch_remove(c->plain_watch);
    gnutls_deinit(c->session);
    close(c->tcp);
    if (c->plain >= 0) close(c->plain); /* MHD sees the end of its stream */
    for (tls_conn **pp = &p->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    p->n_conns--;
    if (p->listener) o2h_listener_release(p->listener);
    free(c); /* always its callers' last step: nothing up the stack looks at c again */
}

static void set_interest(o2h_watch *w, unsigned *have, unsigned want, const o2h_host *h) {
    if (w && want != *have && h->loop->watch_modify(w, want) == O2H_OK) *have = want;
}

static void update_interest(tls_conn *c) {
    const o2h_host *h = c->p->cfg.host;
    unsigned tcp = 0, plain = 0;
    if (!c->ready) {
        tcp = gnutls_record_get_direction(c->session) ? O2H_EV_WRITE : O2H_EV_READ;
    } else {
        if (!c->net_eof && !pending(&c->to_app)) tcp |= O2H_EV_READ;
        if (c->send_again) tcp |= O2H_EV_WRITE;
        if (!c->app_eof && !pending(&c->to_net)) plain |= O2H_EV_READ;
        if (pending(&c->to_app)) plain |= O2H_EV_WRITE;
    }
    set_interest(c->tcp_watch, &c->tcp_events, tcp, h);
    set_interest(c->plain_watch, &c->plain_events, plain, h);
}

/* Decrypted bytes to MHD; false when the pair is broken. */
static bool write_app(tls_conn *c) {
    pump *b = &c->to_app;
    while (pending(b)) {
        ssize_t w = send(c->plain, b->data + b->off, b->len - b->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        b->off += (size_t)w;
    }
    b->len = b->off = 0;
    if (c->net_eof && !c->app_shut) {
        shutdown(c->plain, SHUT_WR); /* the client is done: so is MHD's input */
        c->app_shut = true;
    }
    return true;
}

/* MHD's bytes to the client; false on a TLS or socket error. */
static bool write_net(tls_conn *c) {
    pump *b = &c->to_net;
    while (pending(b)) {
        ssize_t w = gnutls_record_send(c->session, b->data + b->off, b->len - b->off);
        c->send_again = w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED;
        if (c->send_again) return true;
        if (w < 0) return false;
        b->off += (size_t)w;
    }
    b->len = b->off = 0;
    if (c->app_eof && !c->net_shut) {
        gnutls_bye(c->session, GNUTLS_SHUT_WR); /* close_notify, best effort */
        shutdown(c->tcp, SHUT_WR);
        c->net_shut = true;
        c->deadline = now(c->p) + LINGER_SECONDS;
    }
    return true;
}

/* Client -> MHD, while MHD takes it. */
static bool pump_in(tls_conn *c) {
    for (int i = 0; i < PUMP_ROUNDS && !c->net_eof && !pending(&c->to_app); i++) {
        ssize_t n = gnutls_record_recv(c->session, c->to_app.data, PUMP_BYTES);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) break;
        if (n < 0 && gnutls_error_is_fatal((int)n)) return false;
        if (n < 0) continue; /* a warning alert, or a renegotiation we refuse */
        if (n == 0) c->net_eof = true;
        c->to_app.len = (size_t)n;
        c->to_app.off = 0;
        if (!write_app(c)) return false;
    }
    return true;
}

/* MHD -> client, while the socket takes it. */
static bool pump_out(tls_conn *c) {
    if (c->send_again && !write_net(c)) return false;
    for (int i = 0; i < PUMP_ROUNDS && !c->app_eof && !pending(&c->to_net); i++) {
        ssize_t n = recv(c->plain, c->to_net.data, PUMP_BYTES, MSG_DONTWAIT);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        if (n == 0) c->app_eof = true;
        c->to_net.len = (size_t)n;
        c->to_net.off = 0;
        if (!write_net(c)) return false;
    }
    return true;
}

static void pump_both(tls_conn *c) {
    bool ok = write_app(c) && pump_in(c) && pump_out(c);
    /* Records gnutls already decrypted do not make the socket readable again. */
    if (ok && !pending(&c->to_app) && gnutls_record_check_pending(c->session) > 0) ok = pump_in(c);
    if (!ok || (c->app_shut && c->net_shut)) {
        conn_close(c);
        return;
    }
    update_interest(c);
}

static void on_plain(void *ctx, int fd, unsigned events) {
    (void)fd, (void)events;
    pump_both(ctx);
}

/* Handshake done: MHD gets the other end of a fresh pair. */
static bool hand_over(tls_conn *c) {
    tls_proxy *p = c->p;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return false;
    c->plain = sv[0];
    c->plain_events = O2H_EV_READ;
    c->plain_watch =
        p->cfg.host->loop->watch_fd(p->cfg.self, c->plain, c->plain_events, on_plain, c);
    if (!c->plain_watch) {
        close(sv[1]);
        return false;
    }
    c->ready = true;
    p->cfg.hand(p->cfg.hand_ctx, sv[1], (const struct sockaddr *)&c->addr, c->addr_len);
    return true;
}

static void on_tcp(void *ctx, int fd, unsigned events) {
    (void)fd, (void)events;
    tls_conn *c = ctx;
    if (c->ready) {
        pump_both(c);
        return;
    }
    int rc = gnutls_handshake(c->session);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED ||
        (rc < 0 && !gnutls_error_is_fatal(rc))) {
        update_interest(c);
        return;
    }
    if (rc < 0 || !hand_over(c)) {
        tls_proxy *p = c->p;
        p->cfg.host->log->write(p->cfg.self, O2H_LOG_DEBUG, "TLS handshake failed: %s",
                                rc < 0 ? gnutls_strerror(rc) : "no socket pair");
        conn_close(c);
        return;
    }
    pump_both(c); /* the handshake may have brought the request along */
}

/* A connection on `fd`; false (fd closed) if it could not be made. */
static bool conn_new(tls_proxy *p, int fd, const struct sockaddr_storage *addr, socklen_t len) {
    tls_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return false;
    }
    c->p = p;
    c->tcp = fd;
    c->plain = -1;
    c->addr = *addr;
    c->addr_len = len;
    c->deadline = now(p) + p->cfg.handshake_timeout;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (gnutls_init(&c->session, GNUTLS_SERVER | GNUTLS_NONBLOCK) != GNUTLS_E_SUCCESS) {
        close(fd);
        free(c);
        return false;
    }
    gnutls_priority_set(c->session, p->priority);
    gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, p->creds);
    gnutls_certificate_server_set_request(c->session, GNUTLS_CERT_IGNORE);
    gnutls_transport_set_int(c->session, fd);
    c->tcp_events = O2H_EV_READ;
    c->tcp_watch = p->cfg.host->loop->watch_fd(p->cfg.self, fd, c->tcp_events, on_tcp, c);
    if (!c->tcp_watch) {
        gnutls_deinit(c->session);
        close(fd);
        free(c);
        return false;
    }
    c->next = p->conns;
    p->conns = c;
    p->n_conns++;
    return true;
}

static bool on_accept(void *ctx, int fd, const struct sockaddr_in *peer) {
    struct sockaddr_storage addr = {0};
    memcpy(&addr, peer, sizeof *peer);
    return conn_new(ctx, fd, &addr, sizeof *peer);
}

/* Handshakes that take too long are dropped (a client that connects and says
 * nothing), and so are clients that do not close once MHD's side has ended. */
static void on_tick(void *ctx) {
    tls_proxy *p = ctx;
    double t = now(p);
    for (tls_conn *c = p->conns, *next; c; c = next) {
        next = c->next;
        if ((!c->ready || c->net_shut) && t > c->deadline) conn_close(c);
    }
}

static bool open_listener(tls_proxy *p, char *why, size_t why_size) {
    o2h_listener_params lp = {.host = p->cfg.host,
                              .self = p->cfg.self,
                              .bind_addr = p->cfg.bind_addr,
                              .backlog = 128,
                              .max_connections = p->cfg.max_connections,
                              .what = "HTTPS",
                              .on_accept = on_accept,
                              .ctx = p};
    int error;
    p->listener = o2h_listener_open(&lp, &error);
    if (!p->listener) {
        snprintf(why, why_size, "cannot listen on port %d: %s", ntohs(p->cfg.bind_addr.sin_port),
                 strerror(error));
        return false;
    }
    p->port = o2h_listener_port(p->listener);
    return true;
}

static bool load_credentials(tls_proxy *p, char *why, size_t why_size) {
    gnutls_datum_t cert = {(unsigned char *)(uintptr_t)p->cfg.cert_pem,
                           (unsigned)strlen(p->cfg.cert_pem)};
    gnutls_datum_t key = {(unsigned char *)(uintptr_t)p->cfg.key_pem,
                          (unsigned)strlen(p->cfg.key_pem)};
    int rc = gnutls_certificate_allocate_credentials(&p->creds);
    if (rc == GNUTLS_E_SUCCESS)
        rc = gnutls_certificate_set_x509_key_mem2(p->creds, &cert, &key, GNUTLS_X509_FMT_PEM, NULL,
                                                  0);
    if (rc < 0) {
        snprintf(why, why_size, "tls_cert and tls_key are not a matching certificate and key: %s",
                 gnutls_strerror(rc));
        return false;
    }
    rc = gnutls_priority_init(&p->priority, "NORMAL", NULL);
    if (rc < 0) {
        snprintf(why, why_size, "TLS priorities: %s", gnutls_strerror(rc));
        return false;
    }
    return true;
}

tls_proxy *tls_proxy_start(const tls_proxy_config *cfg, char *why, size_t why_size) {
    tls_proxy *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    if (!load_credentials(p, why, why_size) || !open_listener(p, why, why_size)) {
        tls_proxy_stop(p);
        return NULL;
    }
    const o2h_host *h = cfg->host;
    p->tick = h->loop->timer_start(cfg->self, 1.0, 1.0, on_tick, p);
    if (!p->tick) {
        snprintf(why, why_size, "cannot start the TLS handshake timer");
        tls_proxy_stop(p);
        return NULL;
    }
    return p;
}

int tls_proxy_port(const tls_proxy *p) {
    return p->port;
}

void tls_proxy_stop(tls_proxy *p) {
    if (!p) return;
    while (p->conns) {
        tls_conn *c = p->conns;
        if (c->ready) { /* what MHD or the WebSocket side said last, if it goes out at once */
            pump_out(c);
            if (!c->net_shut) gnutls_bye(c->session, GNUTLS_SHUT_WR);
        }
        conn_close(c);
    }
    const o2h_host *h = p->cfg.host;
    o2h_listener_close(p->listener);
    p->listener = NULL;
    if (p->tick) h->loop->timer_stop(p->tick);
    if (p->priority) gnutls_priority_deinit(p->priority);
    if (p->creds) gnutls_certificate_free_credentials(p->creds);
    free(p);
}
