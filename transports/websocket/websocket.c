/*
 * The WebSocket transport: an HTTP server (libmicrohttpd) that serves static
 * files from a root folder and upgrades GET /o2ws to a WebSocket carrying
 * O2's O2ws text protocol (O2-REFERENCE §5.4). Each WebSocket client that
 * joins with /_o2/ws/dy becomes a bridge (host->bridge->bridge_new): its services
 * are offered by this process, and messages the router sends them arrive
 * at ws_send() as O2 messages, converted to O2ws text.
 *
 * Loop integration, two modes (README, "WebSocket transport", compares them):
 *  - default: MHD runs in "external epoll" mode on the router's loop thread.
 *    MHD's epoll descriptor is watched with host->loop->watch_fd, MHD_run() is
 *    called when it is readable and when the timer armed from
 *    MHD_get_timeout() fires.
 *  - "mhd_thread": true: MHD runs its own polling thread (epoll). Static
 *    files are answered there entirely; an upgraded socket, and log lines,
 *    are handed to the loop through lock-free rings (handoff.h) and an
 *    eventfd the loop watches, so every call into the core still happens on
 *    the loop thread. See "Threads" at struct ws_transport.
 * Either way an upgraded connection's socket is then watched directly by
 * this plugin on the loop, so WebSocket traffic never goes through MHD.
 *
 * Config: { "type": "websocket", "host": "127.0.0.1", "port": 8080,
 *           "root": "www", "mounts": [{"url": "/sdk/", "root": "../sdk/js"}],
 *           "max_frame": 65536, "max_clients": 256,
 *           "send_queue_bytes": 4194304, "mhd_thread": false, "mhd_queue": 64 }
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>

#include <o2hub/plugin.h>

#include "handoff.h"
#include "http_dnssd.h"
#include "http_path.h"
#include "o2ws_codec.h"
#include "tls_files.h"
#include "tls_proxy.h"
#include "ws_frame.h"

#define WS_PATH "/o2ws"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define READ_CHUNK 16384
#define MAX_READS_PER_EVENT 16
#define CLOSE_LINGER_S 2.0 /* after our close frame, how long we wait for the client's */
#define MAX_MOUNTS 8
#define LOG_QUEUE 256     /* log lines from MHD's thread waiting for the loop */
#define STOP_WAIT_MS 2000 /* at stop, how long we wait for upgrades in flight */

typedef struct ws_transport ws_transport;

typedef struct ws_conn {
    ws_transport *tr;
    int fd;
    struct MHD_UpgradeResponseHandle *urh;
    o2h_watch *watch;
    o2h_link *link;
    int bridge_id; /* > 0 once joined with /_o2/ws/dy */
    ws_decoder dec;
    uint8_t *in;
    size_t in_len, in_cap;
    o2ws_buf out; /* frames not yet written */
    size_t out_off;
    bool closing; /* our close frame is queued: read and discard until EOF */
    bool dead;    /* destroyed; its memory goes in the loop's deferred phase */
    o2h_deferred free_later;
    unsigned events;
    o2h_timer *linger;
    o2h_timer *kick; /* bytes that came with the upgrade request wait for it */
    char peer[64];
    struct ws_conn *next;
} ws_conn;

typedef struct mount {
    char url[64]; /* normalised prefix without slashes, e.g. "sdk" */
    char *dir;
    int fd;
} mount;

/*
 * Threads. With "mhd_thread": false (the default) everything below runs on
 * the router's loop thread, MHD's callbacks included. With "mhd_thread":
 * true MHD's callbacks (on_request, serve_file, upgrade, on_upgraded,
 * on_completed, mhd_log) run on MHD's own thread, and the fields are owned:
 *  - set before MHD starts, then only read (both threads): host, self,
 *    bind_addr, root, root_fd, mounts, n_mounts, max_frame, max_clients,
 *    queue_limit, mhd_thread, handoff_cap, handoff_efd, loop_thread;
 *  - loop thread only: conns, n_conns, builder, text, mhd, mhd_watch,
 *    mhd_timer, in_mhd, mhd_again, port, handoff_watch, refused_seen,
 *    dropped_seen, notable_seen, dnssd*, published, and every ws_conn;
 *  - MHD's thread only: each request's upgrade_req (in MHD's req_cls);
 *  - shared, atomics only: the rings `upgrades` (ws_handoff items, MHD's
 *    thread pushes, the loop pops) and `logs` (same, log lines), pending,
 *    clients, stopping, refused_full, logs_dropped, logs_dropped_notable.
 * MHD's thread never calls the host table: its log lines go through `logs`.
 * MHD_upgrade_action() is called on the loop; libmicrohttpd allows that from
 * any thread (it takes its own lock and wakes its thread).
 */
struct ws_transport {
    const o2h_host *host;
    o2h_plugin *self;
    struct sockaddr_in bind_addr;
    char *root; /* NULL: no files, only the WebSocket */
    int root_fd;
    mount mounts[MAX_MOUNTS];
    int n_mounts;
    int64_t max_frame, max_clients, queue_limit;
    struct MHD_Daemon *mhd;
    o2h_watch *mhd_watch;
    o2h_timer *mhd_timer;
    bool in_mhd, mhd_again;
    int port;
    ws_conn *conns;
    int n_conns;
    o2h_builder *builder;
    o2ws_buf text; /* scratch for formatting one message */
    bool dnssd;    /* publish as _http._tcp */
    char *dnssd_name;
    char *tls_cert, *tls_key; /* PEM text: HTTPS and wss:// when set */
    tls_proxy *tls;           /* listens instead of MHD when tls_cert is set */
    http_dnssd *published;
    /* "mhd_thread": true */
    bool mhd_thread;
    int64_t handoff_cap; /* "mhd_queue": upgrades handed over and not yet taken */
    int handoff_efd;     /* eventfd: MHD's thread -> loop */
    o2h_watch *handoff_watch;
    pthread_t loop_thread;
    handoff_ring upgrades, logs;
    atomic_int pending;               /* upgrades accepted (101 promised) and not yet taken */
    atomic_int clients;               /* n_conns, for MHD's thread's max_clients check */
    atomic_bool stopping;             /* no more upgrades */
    atomic_uint refused_full;         /* upgrades refused with 503: hand-off queue full */
    atomic_uint logs_dropped;         /* log lines lost: log ring full */
    atomic_uint logs_dropped_notable; /* of which warnings and errors */
    unsigned refused_seen, dropped_seen, notable_seen;
};

/* One upgrade request in "mhd_thread" mode (MHD's req_cls; MHD's thread). */
typedef struct upgrade_req {
    bool handed; /* on_upgraded took its reservation */
} upgrade_req;

/* An upgraded socket on its way from MHD's thread to the loop. */
typedef struct ws_handoff {
    MHD_socket sock;
    struct MHD_UpgradeResponseHandle *urh;
    char peer[64]; /* the client's address, as adopt() logs it */
    size_t extra_len;
    char extra[]; /* bytes that came after the upgrade request */
} ws_handoff;

/* ---- small helpers ---- */

static char *join_path(const char *dir, const char *path) {
    size_t n = strlen(dir) + strlen(path) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, path);
    return s;
}

static char *resolve_cfg_path(ws_transport *tr, const o2h_cfg *cfg, const char *path) {
    if (path[0] == '/') return strdup(path);
    return join_path(tr->host->cfg->dir(cfg), path);
}

/* Wake the loop: something is in a ring (or a counter moved). */
static void handoff_signal(ws_transport *tr) {
    uint64_t one = 1;
    ssize_t w = write(tr->handoff_efd, &one, sizeof one);
    (void)w; /* EAGAIN only when the counter is saturated: the loop is awake anyway */
}

static bool on_loop_thread(const ws_transport *tr) {
    return !tr->mhd_thread || pthread_equal(pthread_self(), tr->loop_thread);
}

/* host->log->write from whichever thread runs MHD's callbacks: on MHD's own thread
 * the line goes to the loop through the `logs` ring (lost and counted when
 * it is full). The first byte of a queued line is the level. */
static void http_log(ws_transport *tr, int level, const char *fmt, ...) O2H_PRINTF(3, 4);
static void http_log(ws_transport *tr, int level, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + 1, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (on_loop_thread(tr)) {
        tr->host->log->write(tr->self, level, "%s", line + 1);
        return;
    }
    line[0] = (char)('0' + level);
    char *copy = strdup(line);
    if (!copy || !handoff_push(&tr->logs, copy)) {
        free(copy);
        atomic_fetch_add(&tr->logs_dropped, 1);
        if (level <= O2H_LOG_WARN) atomic_fetch_add(&tr->logs_dropped_notable, 1);
    }
    handoff_signal(tr);
}

/* ---- connections ---- */

static void conn_free_memory(void *ctx) {
    ws_conn *c = ctx;
    ws_decoder_free(&c->dec);
    free(c->in);
    o2ws_buf_free(&c->out);
    free(c);
}

static void mhd_run_soon(ws_transport *tr);

static void conn_unlink(ws_transport *tr, ws_conn *c) {
    for (ws_conn **pp = &tr->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            tr->n_conns--;
            atomic_store(&tr->clients, tr->n_conns);
            return;
        }
}

/* The core is told first, so it stops sending here. */
static void conn_drop_link(ws_conn *c) {
    o2h_link *link = c->link;
    c->link = NULL;
    if (link) c->tr->host->link->link_free(link); /* may re-enter ws_close: link is NULL by now */
}

/* Gone for good: the socket is handed back to MHD, which closes it. */
static void conn_destroy(ws_conn *c) {
    if (c->dead) return;
    ws_transport *tr = c->tr;
    c->dead = true;
    conn_drop_link(c);
    tr->host->loop->watch_remove(c->watch);
    c->watch = NULL;
    if (c->linger) tr->host->loop->timer_stop(c->linger);
    c->linger = NULL;
    if (c->kick) tr->host->loop->timer_stop(c->kick);
    c->kick = NULL;
    conn_unlink(tr, c);
    MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
    mhd_run_soon(tr);
    /* Our callbacks up the stack may still look at c (c->dead). */
    tr->host->loop->defer(tr->self, &c->free_later, conn_free_memory, c);
}

static void update_interest(ws_conn *c) {
    if (c->dead) return;
    unsigned want = O2H_EV_READ | (c->out.len > c->out_off ? O2H_EV_WRITE : 0);
    if (want == c->events) return;
    c->events = want;
    c->tr->host->loop->watch_modify(c->watch, want);
}

/* Write what the socket takes; false on a broken connection. */
static bool flush(ws_conn *c) {
    while (c->out.len > c->out_off) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        c->out_off += (size_t)w;
    }
    c->out.len = c->out_off = 0;
    return true;
}

static void compact_out(ws_conn *c) {
    if (c->out_off == 0) return;
    memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
    c->out.len -= c->out_off;
    c->out_off = 0;
}

/* Queue one frame (and write it at once if nothing is waiting). */
static int queue_frame(ws_conn *c, uint8_t opcode, const void *payload, size_t n, bool control) {
    size_t queued = c->out.len - c->out_off;
    if (!control && (int64_t)(queued + n + 10) > c->tr->queue_limit) return O2H_QUEUE_FULL;
    if (c->out_off > 0 && c->out_off >= c->out.len / 2) compact_out(c);
    uint8_t hdr[10];
    size_t h = ws_frame_header(hdr, opcode, n);
    if (o2ws_buf_reserve(&c->out, h + n) != O2H_OK) return O2H_NO_MEMORY;
    o2ws_buf_append(&c->out, hdr, h);
    o2ws_buf_append(&c->out, payload, n);
    if (queued == 0 && !flush(c)) return O2H_SEND_FAIL;
    update_interest(c);
    return O2H_OK;
}

static void on_linger_timeout(void *ctx) {
    conn_destroy(ctx);
}

/* Start the closing handshake with `code`: the link goes at once, the socket
 * once the client answers (or after CLOSE_LINGER_S). */
static void conn_fail(ws_conn *c, uint16_t code, const char *reason) {
    if (c->dead || c->closing) return;
    ws_transport *tr = c->tr;
    if (code != WS_CLOSE_NORMAL && code != WS_CLOSE_GOING_AWAY)
        tr->host->log->write(tr->self, O2H_LOG_INFO, "closing WebSocket %s: %u %s", c->peer, code,
                             reason);
    conn_drop_link(c);
    if (c->dead) return;
    c->closing = true;
    uint8_t body[125];
    size_t rlen = strlen(reason);
    if (rlen > sizeof body - 2) rlen = sizeof body - 2;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    memcpy(body + 2, reason, rlen);
    if (queue_frame(c, WS_OP_CLOSE, body, 2 + rlen, true) != O2H_OK) {
        conn_destroy(c);
        return;
    }
    c->linger = tr->host->loop->timer_start(tr->self, CLOSE_LINGER_S, 0, on_linger_timeout, c);
    if (c->out.len == c->out_off) shutdown(c->fd, SHUT_WR);
}

static void send_text(ws_conn *c, const o2ws_buf *text) {
    int rc = queue_frame(c, WS_OP_TEXT, text->data, text->len, false);
    if (rc == O2H_SEND_FAIL || rc == O2H_NO_MEMORY) conn_destroy(c);
}

/* A reply of our own to the client, typed "s" "i" "t" from the varargs. */
static void reply(ws_conn *c, const char *address, const char *types, ...) {
    ws_transport *tr = c->tr;
    o2ws_buf *b = &tr->text;
    b->len = 0;
    char num[48];
    va_list ap;
    va_start(ap, types);
    int n =
        snprintf(num, sizeof num, "%c%s%c0%cT%c", O2WS_ETX, types, O2WS_ETX, O2WS_ETX, O2WS_ETX);
    o2ws_buf_append(b, address, strlen(address));
    o2ws_buf_append(b, num, (size_t)n);
    for (const char *t = types; *t; t++) {
        if (*t == 's') {
            const char *s = va_arg(ap, const char *);
            o2ws_buf_append(b, s, strlen(s));
            n = 0;
        } else if (*t == 'i') {
            n = snprintf(num, sizeof num, "%d", va_arg(ap, int));
        } else {
            n = snprintf(num, sizeof num, "%.6f", va_arg(ap, double));
        }
        num[n++] = O2WS_ETX;
        o2ws_buf_append(b, num, (size_t)n);
    }
    va_end(ap);
    send_text(c, b);
}

/* ---- the O2ws protocol ---- */

static bool is_system(const char *address, const char *name) {
    return (address[0] == '/' || address[0] == '!') && strncmp(address + 1, "_o2/ws/", 7) == 0 &&
           strcmp(address + 8, name) == 0;
}

static bool types_are(char *const *f, int n, const char *types) {
    return strcmp(f[1], types) == 0 && n == 4 + (int)strlen(types);
}

static bool parse_i(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < INT_MIN || v > INT_MAX) return false;
    *out = (int)v;
    return true;
}

static void on_dy(ws_conn *c, char *const *f, int n) {
    ws_transport *tr = c->tr;
    if (!types_are(f, n, "s")) {
        conn_fail(c, WS_CLOSE_POLICY, "bad /_o2/ws/dy");
        return;
    }
    if (strcmp(f[4], tr->host->proc->ensemble(tr->self)) != 0) {
        tr->host->log->write(tr->self, O2H_LOG_WARN, "WebSocket %s gave ensemble \"%s\": dropped",
                             c->peer, f[4]);
        conn_fail(c, WS_CLOSE_POLICY, "wrong ensemble");
        return;
    }
    if (c->bridge_id <= 0) {
        int id = tr->host->bridge->bridge_new(tr->self, c->link, "O2ws", 0);
        if (id <= 0) {
            conn_fail(c, WS_CLOSE_INTERNAL, "cannot make a bridge");
            return;
        }
        c->bridge_id = id;
    }
    reply(c, "!_o2/id", "i", c->bridge_id);
}

static void on_system(ws_conn *c, char *const *f, int n, const char *name) {
    ws_transport *tr = c->tr;
    const o2h_host *h = tr->host;
    int a, b, mode, id, seq;
    if (strcmp(name, "sv") == 0 && types_are(f, n, "siisi") && parse_i(f[5], &a) &&
        parse_i(f[6], &b) && parse_i(f[8], &mode)) {
        int rc = h->bridge->service(tr->self, c->link, f[4], a != 0, b != 0, f[7], mode);
        if (rc != O2H_OK)
            h->log->write(tr->self, O2H_LOG_INFO, "WebSocket client %d: service %s: error %d",
                          c->bridge_id, f[4], rc);
    } else if (strcmp(name, "cs/get") == 0 && types_are(f, n, "iis") && parse_i(f[4], &id) &&
               parse_i(f[5], &seq) && (f[6][0] == '/' || f[6][0] == '!')) {
        double now = h->loop->time_get(tr->self);
        if (now >= 0) reply(c, f[6], "it", seq, now); /* no answer before we have a clock */
    } else if (strcmp(name, "cs/cs") == 0 && types_are(f, n, "")) {
        h->bridge->synced(tr->self, c->link);
    } else if (strcmp(name, "st") == 0 && types_are(f, n, "s")) {
        reply(c, "!_o2/st", "si", f[4], h->link->service_status(tr->self, f[4]));
    } else if (strcmp(name, "ls") == 0 && types_are(f, n, "")) {
        /* The core lists services for O2lite clients of any bridge: ask it for us. */
        h->msg->builder_start(tr->builder);
        o2h_msg *m = h->msg->builder_finish(tr->builder, 0, "!_o2/o2lite/ls", O2H_FLAG_RELIABLE);
        if (m) h->link->deliver(tr->self, c->link, m);
    } else if (strcmp(name, "dy") == 0) {
        on_dy(c, f, n);
    } else {
        h->link->count_invalid(tr->self, "bad O2ws system message");
    }
}

static void on_text(ws_conn *c, uint8_t *data, size_t len) {
    ws_transport *tr = c->tr;
    char *fields[O2WS_MAX_FIELDS];
    int n = o2ws_split((char *)data, len, fields, O2WS_MAX_FIELDS);
    if (n < 4) {
        tr->host->link->count_invalid(tr->self, "O2ws text is not ETX-separated fields");
        return;
    }
    const char *address = fields[0];
    if (c->bridge_id <= 0 && !is_system(address, "dy")) {
        conn_fail(c, WS_CLOSE_POLICY, "the first message must be /_o2/ws/dy");
        return;
    }
    if ((address[0] == '/' || address[0] == '!') && strncmp(address + 1, "_o2/ws/", 7) == 0) {
        on_system(c, fields, n, address + 8);
        return;
    }
    const char *why;
    o2h_msg *m = o2ws_to_msg(tr->host, tr->builder, fields, n, &why);
    if (!m) {
        tr->host->link->count_invalid(tr->self, why);
        return;
    }
    tr->host->link->deliver(tr->self, c->link, m);
}

/* Run the decoder over what we have; false when the connection is gone. */
static bool process_input(ws_conn *c) {
    size_t off = 0;
    while (!c->dead && !c->closing) {
        size_t used;
        ws_event ev = ws_decoder_next(&c->dec, c->in + off, c->in_len - off, &used);
        off += used;
        if (ev.kind == WS_EV_NONE) break;
        switch (ev.kind) {
        case WS_EV_MESSAGE:
            if (ev.opcode == WS_OP_TEXT)
                on_text(c, (uint8_t *)ev.data, ev.len);
            else
                conn_fail(c, WS_CLOSE_UNSUPPORTED, "O2ws uses text messages");
            break;
        case WS_EV_PING:
            if (queue_frame(c, WS_OP_PONG, ev.data, ev.len, true) != O2H_OK) conn_destroy(c);
            break;
        case WS_EV_PONG: break;
        case WS_EV_CLOSE: {
            uint16_t code = ev.code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : ev.code;
            conn_fail(c, code, "");
            break;
        }
        case WS_EV_ERROR:
            c->tr->host->link->count_invalid(c->tr->self, "bad WebSocket frame");
            conn_fail(c, ev.code,
                      ev.code == WS_CLOSE_TOO_BIG    ? "frame too big"
                      : ev.code == WS_CLOSE_BAD_DATA ? "invalid UTF-8"
                                                     : "protocol error");
            break;
        default: break;
        }
    }
    if (c->dead) return false;
    if (c->closing) {
        c->in_len = 0;
        return true;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return true;
}

static void on_readable(ws_conn *c) {
    for (int i = 0; i < MAX_READS_PER_EVENT && !c->dead; i++) {
        if (c->in_cap - c->in_len < READ_CHUNK) {
            size_t cap = c->in_cap * 2;
            uint8_t *p = realloc(c->in, cap);
            if (!p) {
                conn_destroy(c);
                return;
            }
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            conn_destroy(c);
            return;
        }
        if (n < 0) return;
        if (c->closing) continue; /* discard until the client closes */
        c->in_len += (size_t)n;
        if (!process_input(c)) return;
        /* Never hold more than one largest frame and a read's worth. */
        size_t limit = (size_t)c->tr->max_frame + 14 + READ_CHUNK;
        if (c->in_cap > 2 * limit && c->in_len < limit) {
            uint8_t *p = realloc(c->in, limit);
            if (p) {
                c->in = p;
                c->in_cap = limit;
            }
        }
        if ((size_t)n < READ_CHUNK) return;
    }
}

static void on_conn_event(void *ctx, int fd, unsigned events) {
    ws_conn *c = ctx;
    (void)fd;
    if (events & (O2H_EV_READ | O2H_EV_HUP | O2H_EV_ERROR)) on_readable(c);
    if (!c->dead && c->out.len > c->out_off && !flush(c)) conn_destroy(c);
    if (!c->dead && c->closing && c->out.len == c->out_off) shutdown(c->fd, SHUT_WR);
    update_interest(c);
}

static void on_kick(void *ctx) {
    ws_conn *c = ctx;
    c->tr->host->loop->timer_stop(c->kick);
    c->kick = NULL;
    if (!c->dead) process_input(c);
    if (!c->dead && c->closing && c->out.len == c->out_off) shutdown(c->fd, SHUT_WR);
    update_interest(c);
}

/* An upgraded socket becomes a connection of ours, watched by the loop (on
 * the loop thread: inside MHD_run, or taking it from the hand-off ring). */
/* "ip:port" of the client: from MHD, because with TLS the upgraded socket
 * is a socket pair's end, not the client's connection. */
static void client_address(struct MHD_Connection *connection, char *out, size_t size) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    char ip[INET6_ADDRSTRLEN];
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, size, "%s:%d", ip, ntohs(in->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, size, "[%s]:%d", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(out, size, "?");
    }
}

static void adopt(ws_transport *tr, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh,
                  const char *peer, const char *extra_in, size_t extra_in_size) {
    ws_conn *c = calloc(1, sizeof *c);
    if (c) {
        c->in_cap = READ_CHUNK * 2 + (extra_in_size > READ_CHUNK ? extra_in_size : 0);
        c->in = malloc(c->in_cap);
    }
    if (!c || !c->in) {
        if (c) free(c);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        return;
    }
    c->tr = tr;
    c->fd = sock;
    c->urh = urh;
    ws_decoder_init(&c->dec, (uint64_t)tr->max_frame, true);
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    int one = 1; /* fails harmlessly on a socket pair (TLS) */
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int fl = fcntl(sock, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(sock, F_SETFL, fl | O_NONBLOCK);
    char desc[80];
    snprintf(desc, sizeof desc, "websocket %s", c->peer);
    c->events = O2H_EV_READ;
    c->watch = tr->host->loop->watch_fd(tr->self, sock, c->events, on_conn_event, c);
    c->link = c->watch ? tr->host->link->link_new(tr->self, c, desc) : NULL;
    if (!c->link) {
        if (c->watch) tr->host->loop->watch_remove(c->watch);
        conn_free_memory(c);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        return;
    }
    c->next = tr->conns;
    tr->conns = c;
    tr->n_conns++;
    atomic_store(&tr->clients, tr->n_conns);
    tr->host->log->write(tr->self, O2H_LOG_DEBUG, "WebSocket client %s connected", c->peer);
    if (extra_in_size > 0) { /* decoded from the loop, not inside MHD_run */
        memcpy(c->in, extra_in, extra_in_size);
        c->in_len = extra_in_size;
        c->kick = tr->host->loop->timer_start(tr->self, 0, 0, on_kick, c);
    }
}

static void release_reservation(ws_transport *tr) {
    atomic_fetch_sub(&tr->pending, 1);
    handoff_signal(tr); /* ws_stop may be waiting for pending to reach 0 */
}

/* MHD hands us the upgraded socket: on the loop thread inside MHD_run, or on
 * MHD's thread, which queues it for the loop in the slot upgrade() reserved. */
static void on_upgraded(void *cls, struct MHD_Connection *connection, void *req_cls,
                        const char *extra_in, size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh) {
    ws_transport *tr = cls;
    char peer[64];
    client_address(connection, peer, sizeof peer);
    if (!tr->mhd_thread) {
        adopt(tr, sock, urh, peer, extra_in, extra_in_size);
        return;
    }
    upgrade_req *u = req_cls; /* set by upgrade() before the 101 was queued */
    if (u) u->handed = true;
    ws_handoff *h = malloc(sizeof *h + extra_in_size);
    if (h) {
        h->sock = sock;
        h->urh = urh;
        snprintf(h->peer, sizeof h->peer, "%s", peer);
        h->extra_len = extra_in_size;
        if (extra_in_size) memcpy(h->extra, extra_in, extra_in_size);
    }
    /* The push cannot fail: pending <= handoff_cap <= the ring's capacity. */
    if (!h || !handoff_push(&tr->upgrades, h)) {
        free(h);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        release_reservation(tr);
        return;
    }
    handoff_signal(tr);
}

/* MHD is done with a request (on MHD's thread in "mhd_thread" mode): an
 * upgrade that never reached on_upgraded gives its reservation back. */
static void on_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    ws_transport *tr = cls;
    (void)connection;
    if (!*req_cls || *req_cls == tr) return; /* not an upgrade_req */
    upgrade_req *u = *req_cls;
    if (!u->handed) {
        http_log(tr, O2H_LOG_DEBUG, "WebSocket upgrade ended before the 101 (%d): slot given back",
                 (int)toe);
        release_reservation(tr);
    }
    free(u);
    *req_cls = NULL;
}

/* What take_handoffs does with an upgraded socket. */
enum handoff_fate { HANDOFF_ADOPT, HANDOFF_CLOSE, HANDOFF_FORGET /* MHD has stopped */ };

/* The loop takes what MHD's thread queued (the eventfd is readable). */
static void take_handoffs(ws_transport *tr, enum handoff_fate fate) {
    uint64_t n;
    ssize_t r = read(tr->handoff_efd, &n, sizeof n);
    (void)r;
    char *line;
    while ((line = handoff_pop(&tr->logs))) {
        tr->host->log->write(tr->self, line[0] - '0', "%s", line + 1);
        free(line);
    }
    ws_handoff *h;
    while ((h = handoff_pop(&tr->upgrades))) {
        atomic_fetch_sub(&tr->pending, 1);
        if (fate == HANDOFF_ADOPT)
            adopt(tr, h->sock, h->urh, h->peer, h->extra, h->extra_len);
        else if (fate == HANDOFF_CLOSE)
            MHD_upgrade_action(h->urh, MHD_UPGRADE_ACTION_CLOSE);
        free(h);
    }
    unsigned refused = atomic_load(&tr->refused_full);
    if (refused != tr->refused_seen) {
        tr->host->log->write(
            tr->self, O2H_LOG_WARN,
            "%u WebSocket upgrade(s) refused with HTTP 503: the hand-off queue to the "
            "loop was full (mhd_queue %lld; %u refused in all)",
            refused - tr->refused_seen, (long long)tr->handoff_cap, refused);
        tr->refused_seen = refused;
    }
    /* Only lost warnings and errors are worth a warning: under a flood of bad
     * requests the lost lines are mostly "HTTP 404" debug lines. */
    unsigned dropped = atomic_load(&tr->logs_dropped);
    unsigned notable = atomic_load(&tr->logs_dropped_notable);
    if (dropped != tr->dropped_seen) {
        tr->host->log->write(
            tr->self, notable != tr->notable_seen ? O2H_LOG_WARN : O2H_LOG_DEBUG,
            "%u log line(s) of the HTTP thread lost (%u warnings or errors): its queue "
            "to the loop was full",
            dropped - tr->dropped_seen, notable - tr->notable_seen);
        tr->dropped_seen = dropped;
        tr->notable_seen = notable;
    }
}

static void on_handoff_event(void *ctx, int fd, unsigned events) {
    (void)fd;
    (void)events;
    take_handoffs(ctx, HANDOFF_ADOPT);
}

/* ---- HTTP ---- */

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                    const char *hname, const char *hvalue) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (hname) MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Whether a comma-separated header value has `token` (case-insensitive). */
static bool has_token(const char *value, const char *token) {
    size_t tl = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - p) == tl && strncasecmp(p, token, tl) == 0) return true;
        p = end;
    }
    return false;
}

static void accept_key(const char *key, char out[29]) {
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(key), (const uint8_t *)key);
    sha1_update(&ctx, strlen(WS_GUID), (const uint8_t *)WS_GUID);
    sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
    base64_encode_raw(out, SHA1_DIGEST_SIZE, digest);
    out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

static enum MHD_Result upgrade(ws_transport *tr, struct MHD_Connection *conn, void **req_cls) {
    const char *upgrade_h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
    const char *connection = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection");
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    const char *version =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    if (!upgrade_h || !has_token(upgrade_h, "websocket") || !connection ||
        !has_token(connection, "upgrade"))
        return respond_text(conn, MHD_HTTP_UPGRADE_REQUIRED, "This is a WebSocket endpoint.\n",
                            "Upgrade", "websocket");
    if (!version || strcmp(version, "13") != 0)
        return respond_text(conn, MHD_HTTP_UPGRADE_REQUIRED, "WebSocket version 13 only.\n",
                            "Sec-WebSocket-Version", "13");
    uint8_t raw[BASE64_DECODE_LENGTH(24) + 1];
    size_t raw_len = sizeof raw;
    struct base64_decode_ctx dctx;
    base64_decode_init(&dctx);
    if (!key || strlen(key) != 24 || !base64_decode_update(&dctx, &raw_len, raw, 24, key) ||
        !base64_decode_final(&dctx) || raw_len != 16)
        return respond_text(conn, MHD_HTTP_BAD_REQUEST, "Bad Sec-WebSocket-Key.\n", NULL, NULL);
    if (!tr->mhd_thread && tr->n_conns >= tr->max_clients)
        return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Too many WebSocket clients.\n",
                            NULL, NULL);
    if (tr->mhd_thread) {
        /* Reserve a slot in the hand-off queue now, while a 503 can still be
         * answered: on_upgraded (after the 101) must not find it full. */
        if (atomic_load(&tr->clients) + atomic_load(&tr->pending) >= tr->max_clients)
            return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Too many WebSocket clients.\n",
                                NULL, NULL);
        if (atomic_fetch_add(&tr->pending, 1) >= tr->handoff_cap) {
            atomic_fetch_sub(&tr->pending, 1);
            atomic_fetch_add(&tr->refused_full, 1);
            handoff_signal(tr);
            return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                "Busy: too many WebSocket upgrades at once, try again.\n",
                                "Retry-After", "1");
        }
        upgrade_req *u = atomic_load(&tr->stopping) ? NULL : calloc(1, sizeof *u);
        if (!u) {
            release_reservation(tr);
            return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Shutting down.\n", NULL, NULL);
        }
        *req_cls = u; /* on_completed gives the slot back if on_upgraded never runs */
    }
    char accept[29];
    accept_key(key, accept);
    struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgraded, tr);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    return ret;
}

/* Open `rel` below `dirfd`, one component at a time, never following a
 * symbolic link. Returns the fd or -HTTP status. */
static int open_beneath(int dirfd, const char *rel, struct stat *st) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", rel);
    int cur = dup(dirfd);
    if (cur < 0) return -500;
    char *save = NULL;
    char *part = strtok_r(path, "/", &save);
    while (part) {
        char *next = strtok_r(NULL, "/", &save);
        int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (next ? O_DIRECTORY : 0);
        int fd = openat(cur, part, flags);
        int err = errno;
        close(cur);
        if (fd < 0) return err == ENOENT || err == ENOTDIR ? -404 : -403;
        cur = fd;
        part = next;
    }
    if (fstat(cur, st) != 0) {
        close(cur);
        return -500;
    }
    return cur;
}

static enum MHD_Result serve_file(ws_transport *tr, struct MHD_Connection *conn, const char *url) {
    char rel[1024];
    int status = http_resolve_path(url, rel, sizeof rel);
    if (status != 200) {
        http_log(tr, O2H_LOG_DEBUG, "HTTP %d for %s", status, url);
        return respond_text(conn, (unsigned)status,
                            status == 403   ? "Forbidden.\n"
                            : status == 414 ? "URI too long.\n"
                                            : "Bad request.\n",
                            NULL, NULL);
    }
    int dirfd = tr->root_fd;
    const char *inner = rel;
    for (int i = 0; i < tr->n_mounts; i++) {
        size_t n = strlen(tr->mounts[i].url);
        if (strncmp(rel, tr->mounts[i].url, n) == 0 && (rel[n] == '/' || rel[n] == '\0')) {
            dirfd = tr->mounts[i].fd;
            inner = rel[n] ? rel + n + 1 : HTTP_INDEX_FILE;
            break;
        }
    }
    if (dirfd < 0) return respond_text(conn, MHD_HTTP_NOT_FOUND, "Not found.\n", NULL, NULL);
    struct stat st;
    int fd = open_beneath(dirfd, inner, &st);
    if (fd >= 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        char loc[1100];
        snprintf(loc, sizeof loc, "%s/", url);
        return respond_text(conn, MHD_HTTP_MOVED_PERMANENTLY, "Moved.\n", "Location", loc);
    }
    if (fd >= 0 && !S_ISREG(st.st_mode)) {
        close(fd);
        fd = -403;
    }
    if (fd < 0) {
        http_log(tr, O2H_LOG_DEBUG, "HTTP %d for %s", -fd, url);
        return respond_text(conn, (unsigned)-fd, fd == -404 ? "Not found.\n" : "Forbidden.\n", NULL,
                            NULL);
    }
    struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, http_mime_type(inner));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    ws_transport *tr = cls;
    (void)version;
    (void)upload_data;
    /* Answer once the whole request is in (the first call has only the headers):
     * an answer given earlier makes MHD close the connection after it. */
    if (!*req_cls) {
        *req_cls = tr; /* any non-NULL marker */
        return MHD_YES;
    }
    if (*upload_data_size) { /* discard a request body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET or HEAD only.\n", "Allow",
                            "GET, HEAD");
    if (strcmp(url, WS_PATH) == 0) return upgrade(tr, conn, req_cls);
    return serve_file(tr, conn, url);
}

/* No unescaping by MHD: http_resolve_path decodes the path exactly once. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    ws_transport *tr = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    http_log(tr, O2H_LOG_DEBUG, "libmicrohttpd: %s", line);
}

static void on_mhd_timer(void *ctx);

/* Let MHD do its work, then arm the timer for its next timeout. */
static void mhd_run(ws_transport *tr) {
    if (!tr->mhd || tr->mhd_thread) return;
    if (tr->in_mhd) {
        tr->mhd_again = true;
        return;
    }
    tr->in_mhd = true;
    do {
        tr->mhd_again = false;
        MHD_run(tr->mhd);
    } while (tr->mhd_again);
    tr->in_mhd = false;
    MHD_UNSIGNED_LONG_LONG ms;
    if (tr->mhd_timer) tr->host->loop->timer_stop(tr->mhd_timer);
    tr->mhd_timer = NULL;
    if (MHD_get_timeout(tr->mhd, &ms) == MHD_YES)
        tr->mhd_timer =
            tr->host->loop->timer_start(tr->self, (double)ms / 1000.0, 0, on_mhd_timer, tr);
}

static void on_mhd_timer(void *ctx) {
    mhd_run(ctx);
}

static void mhd_run_soon(ws_transport *tr) {
    if (!tr->mhd || tr->mhd_thread) return; /* MHD's own thread needs no nudge */
    if (tr->in_mhd) {
        tr->mhd_again = true;
        return;
    }
    if (tr->mhd_timer) tr->host->loop->timer_stop(tr->mhd_timer);
    tr->mhd_timer = tr->host->loop->timer_start(tr->self, 0, 0, on_mhd_timer, tr);
}

static void on_mhd_event(void *ctx, int fd, unsigned events) {
    (void)fd;
    (void)events;
    mhd_run(ctx);
}

/* ---- ops ---- */

static int ws_send(void *instance, void *link_ctx, o2h_msg *msg) {
    ws_transport *tr = instance;
    ws_conn *c = link_ctx;
    if (c->dead || c->closing) return O2H_SEND_FAIL;
    tr->text.len = 0;
    int rc = o2ws_from_msg(tr->host, msg, &tr->text);
    if (rc == O2H_BAD_TYPE) {
        tr->host->log->write(tr->self, O2H_LOG_DEBUG, "WebSocket client %d: bundle not sent",
                             c->bridge_id);
        return rc;
    }
    if (rc != O2H_OK) return rc;
    rc = queue_frame(c, WS_OP_TEXT, tr->text.data, tr->text.len, false);
    if (rc == O2H_SEND_FAIL) conn_destroy(c);
    return rc;
}

static void ws_close(void *instance, void *link_ctx) {
    ws_conn *c = link_ctx;
    (void)instance;
    if (c->dead || !c->link) return; /* we are closing it ourselves */
    conn_fail(c, WS_CLOSE_GOING_AWAY, "closed by the router");
}

/* ---- lifecycle ---- */

static void free_config(ws_transport *tr) {
    free(tr->root);
    free(tr->dnssd_name);
    ws_tls_free(tr->tls_cert);
    ws_tls_free(tr->tls_key);
    for (int i = 0; i < tr->n_mounts; i++)
        free(tr->mounts[i].dir);
}

static int read_mounts(ws_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    int n = h->cfg->array_len(cfg, "mounts");
    if (n < 0) return O2H_CONFIG_ERROR;
    if (n > MAX_MOUNTS) return h->cfg->error(cfg, "mounts", "at most %d mounts", MAX_MOUNTS);
    for (int i = 0; i < n; i++) {
        const o2h_cfg *m = h->cfg->array_item(cfg, "mounts", i);
        const char *url, *dir;
        if (!m || h->cfg->get_string(m, "url", NULL, &url) != O2H_OK ||
            h->cfg->get_string(m, "root", NULL, &dir) != O2H_OK)
            return h->cfg->error(m ? m : cfg, m ? NULL : "mounts",
                                 "a mount is {\"url\": \"/prefix/\", \"root\": \"folder\"}");
        char norm[sizeof tr->mounts[0].url + 16];
        char probe[sizeof norm + 8];
        snprintf(probe, sizeof probe, "%s/x", url);
        if (http_resolve_path(probe, norm, sizeof norm) != 200 || strlen(norm) < 3 ||
            strlen(norm) - 2 >= sizeof tr->mounts[0].url)
            return h->cfg->error(m, "url", "\"%s\" is not a URL path prefix such as \"/sdk/\"",
                                 url);
        norm[strlen(norm) - 2] = '\0'; /* drop "/x" */
        snprintf(tr->mounts[i].url, sizeof tr->mounts[i].url, "%s", norm);
        tr->mounts[i].dir = resolve_cfg_path(tr, cfg, dir);
        tr->mounts[i].fd = -1;
        tr->n_mounts = i + 1;
        if (!tr->mounts[i].dir) return O2H_NO_MEMORY;
    }
    return O2H_OK;
}

/* "tls_cert" and "tls_key": both or neither; each file read now (tls_files.h). */
static int read_tls(ws_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    const char *cert = NULL, *key = NULL;
    if (h->cfg->get_string(cfg, "tls_cert", NULL, &cert) == O2H_CONFIG_ERROR ||
        h->cfg->get_string(cfg, "tls_key", NULL, &key) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    if (!cert && !key) return O2H_OK;
    if (!cert || !key)
        return h->cfg->error(cfg, cert ? "tls_cert" : "tls_key",
                             "HTTPS needs both \"tls_cert\" and \"tls_key\" (PEM files)");
    const char *keys[2] = {"tls_cert", "tls_key"}, *paths[2] = {cert, key};
    char **out[2] = {&tr->tls_cert, &tr->tls_key};
    for (int i = 0; i < 2; i++) {
        char *path = resolve_cfg_path(tr, cfg, paths[i]);
        if (!path) return O2H_NO_MEMORY;
        char why[PATH_MAX + 80];
        *out[i] = ws_tls_read_pem(path, why, sizeof why);
        free(path);
        if (!*out[i]) return h->cfg->error(cfg, keys[i], "%s", why);
    }
    return O2H_OK;
}

static int ws_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    ws_transport *tr = calloc(1, sizeof *tr);
    if (!tr) return O2H_NO_MEMORY;
    tr->host = host;
    tr->self = self;
    tr->root_fd = -1;
    tr->handoff_efd = -1;
    const char *bind_host, *root, *dnssd_name = NULL;
    int64_t port;
    int rc = O2H_OK;
    if (host->cfg->get_string(cfg, "host", "127.0.0.1", &bind_host) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "port", 8080, 0, 65535, &port) == O2H_CONFIG_ERROR ||
        host->cfg->get_string(cfg, "root", NULL, &root) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "max_frame", 65536, 125, 16 << 20, &tr->max_frame) ==
            O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "max_clients", 256, 1, 65536, &tr->max_clients) ==
            O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "send_queue_bytes", 4 << 20, 1024, (int64_t)1 << 32,
                           &tr->queue_limit) == O2H_CONFIG_ERROR ||
        host->cfg->get_bool(cfg, "dnssd", false, &tr->dnssd) == O2H_CONFIG_ERROR ||
        host->cfg->get_string(cfg, "dnssd_name", host->proc->ensemble(self), &dnssd_name) ==
            O2H_CONFIG_ERROR ||
        host->cfg->get_bool(cfg, "mhd_thread", false, &tr->mhd_thread) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "mhd_queue", 64, 1, 65536, &tr->handoff_cap) == O2H_CONFIG_ERROR)
        rc = O2H_CONFIG_ERROR;
    if (rc == O2H_OK && tr->dnssd && !http_dnssd_available())
        rc = host->cfg->error(cfg, "dnssd",
                              "this build has no DNS-SD (avahi's dns_sd.h was not found)");
    if (rc == O2H_OK && !(tr->dnssd_name = strdup(dnssd_name ? dnssd_name : "o2hub")))
        rc = O2H_NO_MEMORY;
    if (rc == O2H_OK) rc = read_mounts(tr, cfg);
    if (rc == O2H_OK) rc = read_tls(tr, cfg);
    if (rc == O2H_OK) {
        memset(&tr->bind_addr, 0, sizeof tr->bind_addr);
        tr->bind_addr.sin_family = AF_INET;
        tr->bind_addr.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, bind_host, &tr->bind_addr.sin_addr) != 1)
            rc = host->cfg->error(cfg, "host", "\"%s\" is not an IPv4 address", bind_host);
    }
    if (rc == O2H_OK && root && !(tr->root = resolve_cfg_path(tr, cfg, root))) rc = O2H_NO_MEMORY;
    if (rc == O2H_OK && !(tr->builder = host->msg->builder_new(self))) rc = O2H_NO_MEMORY;
    if (rc != O2H_OK) {
        free_config(tr);
        free(tr);
        return rc;
    }
    *instance = tr;
    return O2H_OK;
}

static int open_dir(ws_transport *tr, const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot open folder %s: %s", dir,
                             strerror(errno));
    return fd;
}

/* "mhd_thread": the eventfd and the rings, before MHD's thread starts. */
static int handoff_start(ws_transport *tr) {
    atomic_store(&tr->pending, 0);
    atomic_store(&tr->clients, 0);
    atomic_store(&tr->stopping, false);
    tr->loop_thread = pthread_self();
    if (handoff_init(&tr->upgrades, (size_t)tr->handoff_cap) != 0 ||
        handoff_init(&tr->logs, LOG_QUEUE) != 0)
        return O2H_NO_MEMORY;
    tr->handoff_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (tr->handoff_efd < 0) return O2H_SOCKET_ERROR;
    tr->handoff_watch =
        tr->host->loop->watch_fd(tr->self, tr->handoff_efd, O2H_EV_READ, on_handoff_event, tr);
    return tr->handoff_watch ? O2H_OK : O2H_SOCKET_ERROR;
}

/* A TLS connection whose handshake is done: MHD serves its plain side. */
static void on_tls_ready(void *ctx, int fd, const struct sockaddr *client, socklen_t len) {
    ws_transport *tr = ctx;
    if (MHD_add_connection(tr->mhd, fd, client, len) != MHD_YES) /* MHD closes fd */
        tr->host->log->write(tr->self, O2H_LOG_DEBUG, "MHD refused a TLS connection: %s",
                             strerror(errno));
    else if (!tr->mhd_thread)
        mhd_run_soon(tr);
}

static int start_tls(ws_transport *tr) {
    tls_proxy_config cfg = {
        .host = tr->host,
        .self = tr->self,
        .bind_addr = tr->bind_addr,
        .cert_pem = tr->tls_cert,
        .key_pem = tr->tls_key,
        .max_connections = (int)tr->max_clients + 64,
        .handshake_timeout = 10.0,
        .hand = on_tls_ready,
        .hand_ctx = tr,
    };
    char why[256];
    tr->tls = tls_proxy_start(&cfg, why, sizeof why);
    if (!tr->tls) {
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot start HTTPS: %s", why);
        return O2H_NO_PORT;
    }
    tr->port = tls_proxy_port(tr->tls);
    return O2H_OK;
}

static int ws_start(void *instance) {
    ws_transport *tr = instance;
    if (tr->root && (tr->root_fd = open_dir(tr, tr->root)) < 0) return O2H_BAD_ARGS;
    for (int i = 0; i < tr->n_mounts; i++)
        if ((tr->mounts[i].fd = open_dir(tr, tr->mounts[i].dir)) < 0) return O2H_BAD_ARGS;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
    /* HTTPS: tls_proxy.c listens and hands MHD plain streams (see there why). */
    struct MHD_OptionItem listen_options[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &tr->bind_addr},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (tr->tls_cert) flags |= MHD_USE_NO_LISTEN_SOCKET;
    if (tr->mhd_thread) {
        int rc = handoff_start(tr);
        if (rc != O2H_OK) return rc;
        flags |= MHD_USE_INTERNAL_POLLING_THREAD;
    }
    /* MHD sends files with sendfile() only where SIGPIPE cannot kill the
     * process: on its own thread (it blocks the signal there), or when told
     * that the process ignores it, as the o2hub daemon does; else it uses
     * pread() and send(). */
    struct sigaction pipe_action;
    int sigpipe_ignored =
        sigaction(SIGPIPE, NULL, &pipe_action) == 0 && pipe_action.sa_handler == SIG_IGN;
    /* clang-format off */
    tr->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, tr,
                               MHD_OPTION_EXTERNAL_LOGGER, mhd_log, tr,
                               MHD_OPTION_NOTIFY_COMPLETED, on_completed, tr,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned)(tr->max_clients + 64),
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                               MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, tr,
                               MHD_OPTION_SIGPIPE_HANDLED_BY_APP, sigpipe_ignored,
                               MHD_OPTION_ARRAY, tr->tls_cert ? listen_options + 2 : listen_options,
                               MHD_OPTION_END);
    /* clang-format on */
    if (!tr->mhd) {
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot start the HTTP server on port %d",
                             ntohs(tr->bind_addr.sin_port));
        return O2H_NO_PORT;
    }
    if (tr->tls_cert) {
        int rc = start_tls(tr);
        if (rc != O2H_OK) {
            MHD_stop_daemon(tr->mhd);
            tr->mhd = NULL;
            return rc;
        }
    } else {
        const union MHD_DaemonInfo *pi = MHD_get_daemon_info(tr->mhd, MHD_DAEMON_INFO_BIND_PORT);
        tr->port = pi ? pi->port : ntohs(tr->bind_addr.sin_port);
    }
    if (!tr->mhd_thread) {
        const union MHD_DaemonInfo *ei = MHD_get_daemon_info(tr->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        tr->mhd_watch =
            ei ? tr->host->loop->watch_fd(tr->self, ei->epoll_fd, O2H_EV_READ, on_mhd_event, tr)
               : NULL;
        if (!tr->mhd_watch) {
            MHD_stop_daemon(tr->mhd);
            tr->mhd = NULL;
            return O2H_SOCKET_ERROR;
        }
    }
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &tr->bind_addr.sin_addr, ip, sizeof ip);
    tr->host->log->write(tr->self, O2H_LOG_INFO,
                         "serving %s at http%s://%s:%d/ (WebSocket at %s; %s)",
                         tr->root ? tr->root : "no files", tr->tls_cert ? "s" : "", ip, tr->port,
                         WS_PATH, tr->mhd_thread ? "HTTP on its own thread" : "HTTP on the loop");
    if (tr->dnssd)
        tr->published =
            http_dnssd_start(tr->host, tr->self, tr->dnssd_name, tr->port, tr->tls != NULL);
    mhd_run(tr);
    return O2H_OK;
}

/* "mhd_thread": no more upgrades; close those handed over and not taken,
 * and wait (bounded) until MHD's thread has handed over or given back every
 * slot it reserved, so that none arrives once we stop looking. */
static void handoff_quiesce(ws_transport *tr) {
    atomic_store(&tr->stopping, true);
    if (tr->handoff_watch) tr->host->loop->watch_remove(tr->handoff_watch);
    tr->handoff_watch = NULL;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        take_handoffs(tr, HANDOFF_CLOSE);
        if (atomic_load(&tr->pending) <= 0) return;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= STOP_WAIT_MS) {
            tr->host->log->write(tr->self, O2H_LOG_WARN,
                                 "%d WebSocket upgrade(s) still in flight at stop: MHD closes them",
                                 atomic_load(&tr->pending));
            return;
        }
        struct pollfd p = {.fd = tr->handoff_efd, .events = POLLIN};
        poll(&p, 1, (int)(STOP_WAIT_MS - waited)); /* woken by handoff_signal */
    }
}

/* After MHD's thread has ended: the last log lines, then the rings go. */
static void handoff_stop(ws_transport *tr) {
    if (tr->handoff_efd >= 0) {
        take_handoffs(tr, HANDOFF_FORGET);
        close(tr->handoff_efd);
    }
    tr->handoff_efd = -1;
    handoff_free(&tr->upgrades);
    handoff_free(&tr->logs);
}

static void ws_stop(void *instance) {
    ws_transport *tr = instance;
    http_dnssd_stop(tr->published);
    tr->published = NULL;
    if (tr->mhd_thread) atomic_store(&tr->stopping, true);
    while (tr->conns) {
        ws_conn *c = tr->conns;
        /* a last word if the socket takes it at once (no waiting): 1001 going away */
        if (!c->closing && c->out.len == c->out_off) {
            static const char reason[] = "o2hub shutdown";
            uint8_t bye[2 + 2 + sizeof reason];
            size_t h = ws_frame_header(bye, WS_OP_CLOSE, 2 + sizeof reason - 1);
            bye[h] = WS_CLOSE_GOING_AWAY >> 8;
            bye[h + 1] = WS_CLOSE_GOING_AWAY & 0xff;
            memcpy(bye + h + 2, reason, sizeof reason - 1);
            send(c->fd, bye, h + 2 + sizeof reason - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        conn_destroy(c);
    }
    tls_proxy_stop(tr->tls); /* passes on what was just written, if it can at once */
    tr->tls = NULL;
    if (tr->mhd_thread && tr->mhd) handoff_quiesce(tr);
    if (tr->mhd_timer) tr->host->loop->timer_stop(tr->mhd_timer);
    tr->mhd_timer = NULL;
    tr->host->loop->watch_remove(tr->mhd_watch);
    tr->mhd_watch = NULL;
    if (tr->mhd) MHD_stop_daemon(tr->mhd); /* joins MHD's thread */
    tr->mhd = NULL;
    if (tr->mhd_thread) {
        if (tr->handoff_watch) tr->host->loop->watch_remove(tr->handoff_watch);
        tr->handoff_watch = NULL;
        handoff_stop(tr);
    }
    if (tr->root_fd >= 0) close(tr->root_fd);
    tr->root_fd = -1;
    for (int i = 0; i < tr->n_mounts; i++) {
        if (tr->mounts[i].fd >= 0) close(tr->mounts[i].fd);
        tr->mounts[i].fd = -1;
    }
}

static void ws_destroy(void *instance) {
    ws_transport *tr = instance;
    ws_stop(tr);
    tr->host->msg->builder_free(tr->builder);
    o2ws_buf_free(&tr->text);
    free_config(tr);
    free(tr);
}

static const o2h_transport_ops ws_ops = {
    .connect = NULL,
    .send = ws_send,
    .close = ws_close,
};

static const o2h_plugin_desc ws_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "websocket",
    .version = "1.0.0",
    .description = "HTTP static files and the O2ws WebSocket bridge (browsers)",
    .lifecycle = {ws_create, ws_start, ws_stop, ws_destroy},
    .ops = &ws_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &ws_desc;
}
