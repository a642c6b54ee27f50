/*
 * Upgraded WebSocket connections: each socket MHD hands over is watched on
 * the loop by this file, never through MHD again. Reading runs the frame
 * decoder (ws_frame.h) and passes text messages to ws_o2ws.c; writing
 * queues frames and flushes what the socket takes; closing is the RFC 6455
 * handshake with a linger timer. Memory goes through host->loop->defer, as
 * our own callbacks up the stack may still look at a destroyed connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ws_internal.h"

#define READ_CHUNK 16384
#define MAX_READS_PER_EVENT 16
#define CLOSE_LINGER_S 2.0 /* after our close frame, how long we wait for the client's */
#define OVER_BOUND_S 10.0  /* a client whose output stays over its bound this long is closed */

static void conn_free_memory(void *ctx) {
    ws_conn *c = ctx;
    ws_decoder_free(&c->dec);
    free(c->in);
    o2ws_buf_free(&c->out);
    free(c);
}

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
    if (link)
        c->tr->host->link->link_free(link); /* may re-enter o2h_ws_close: link is NULL by now */
}

/* Gone for good: the socket is handed back to MHD, which closes it. */
void o2h_ws_conn_destroy(ws_conn *c) {
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
    if (c->over) tr->host->loop->timer_stop(c->over);
    c->over = NULL;
    conn_unlink(tr, c);
    o2h_ws_upgrade_close(tr, c->urh);
    /* Our callbacks up the stack may still look at c (c->dead). */
    tr->host->loop->defer(tr->self, &c->free_later, conn_free_memory, c);
}

/* Over half of "send_queue_bytes" waiting: the client does not read what it
 * asks for, so it is not read either until it does. */
static bool over_bound(const ws_conn *c) {
    return (int64_t)(c->out.len - c->out_off) > c->tr->queue_limit / 2;
}

static void on_over_timeout(void *ctx) {
    ws_conn *c = ctx;
    c->tr->host->loop->timer_stop(c->over);
    c->over = NULL;
    o2h_ws_conn_fail(c, WS_CLOSE_POLICY, "not reading its messages");
}

static void update_interest(ws_conn *c) {
    if (c->dead) return;
    bool over = over_bound(c);
    if (over && !c->over && !c->closing)
        c->over = c->tr->host->loop->timer_start(c->tr->self, OVER_BOUND_S, 0, on_over_timeout, c);
    else if (!over && c->over) {
        c->tr->host->loop->timer_stop(c->over);
        c->over = NULL;
    }
    unsigned want =
        (over || c->paused ? 0 : O2H_EV_READ) | (c->out.len > c->out_off ? O2H_EV_WRITE : 0);
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
int o2h_ws_queue_frame(ws_conn *c, uint8_t opcode, const void *payload, size_t n, bool control) {
    size_t queued = c->out.len - c->out_off;
    if (!control && (int64_t)(queued + n + 10) > c->tr->queue_limit) {
        c->want_drained = true;
        return O2H_QUEUE_FULL;
    }
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
    o2h_ws_conn_destroy(ctx);
}

/* Start the closing handshake with `code`: the link goes at once, the socket
 * once the client answers (or after CLOSE_LINGER_S). */
void o2h_ws_conn_fail(ws_conn *c, uint16_t code, const char *reason) {
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
    if (o2h_ws_queue_frame(c, WS_OP_CLOSE, body, 2 + rlen, true) != O2H_OK) {
        o2h_ws_conn_destroy(c);
        return;
    }
    c->linger = tr->host->loop->timer_start(tr->self, CLOSE_LINGER_S, 0, on_linger_timeout, c);
    if (c->out.len == c->out_off) shutdown(c->fd, SHUT_WR);
}

/* RFC 6455 lets a pong answer only the latest ping: while output waits, the
 * latest is kept (one, at most 125 bytes) and sent once the queue drains, so
 * a client that pings without reading costs nothing more. */
static void answer_ping(ws_conn *c, const void *payload, size_t n) {
    if (n > sizeof c->pong) n = sizeof c->pong; /* the decoder refuses longer control frames */
    if (c->out.len > c->out_off) {
        memcpy(c->pong, payload, n);
        c->pong_len = (uint8_t)n;
        c->pong_pending = true;
        return;
    }
    if (o2h_ws_queue_frame(c, WS_OP_PONG, payload, n, true) != O2H_OK) o2h_ws_conn_destroy(c);
}

static void send_pending_pong(ws_conn *c) {
    if (c->dead || !c->pong_pending || c->out.len > c->out_off) return;
    c->pong_pending = false;
    if (o2h_ws_queue_frame(c, WS_OP_PONG, c->pong, c->pong_len, true) != O2H_OK)
        o2h_ws_conn_destroy(c);
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
                o2h_ws_on_text(c, (uint8_t *)ev.data, ev.len);
            else
                o2h_ws_conn_fail(c, WS_CLOSE_UNSUPPORTED, "O2ws uses text messages");
            break;
        case WS_EV_PING: answer_ping(c, ev.data, ev.len); break;
        case WS_EV_PONG: break;
        case WS_EV_CLOSE: {
            uint16_t code = ev.code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : ev.code;
            o2h_ws_conn_fail(c, code, "");
            break;
        }
        case WS_EV_ERROR:
            c->tr->host->link->count_invalid(c->tr->self, "bad WebSocket frame");
            o2h_ws_conn_fail(c, ev.code,
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
    for (int i = 0; i < MAX_READS_PER_EVENT && !c->dead && !over_bound(c) && !c->paused; i++) {
        if (c->in_cap - c->in_len < READ_CHUNK) {
            size_t cap = c->in_cap * 2;
            uint8_t *p = realloc(c->in, cap);
            if (!p) {
                o2h_ws_conn_destroy(c);
                return;
            }
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            o2h_ws_conn_destroy(c);
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
    if ((events & (O2H_EV_HUP | O2H_EV_ERROR)) && over_bound(c)) {
        o2h_ws_conn_destroy(c); /* not read any more: a hang-up would fire forever */
        return;
    }
    if (events & (O2H_EV_READ | O2H_EV_HUP | O2H_EV_ERROR)) on_readable(c);
    if (!c->dead && c->out.len > c->out_off && !flush(c)) o2h_ws_conn_destroy(c);
    send_pending_pong(c);
    if (!c->dead && c->want_drained && c->link &&
        (int64_t)(c->out.len - c->out_off) <= c->tr->queue_limit / 2) {
        c->want_drained = false;
        c->tr->host->link->drained(c->link); /* reliable messages that waited go out now */
    }
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
void o2h_ws_adopt(ws_transport *tr, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh,
                  const char *peer, const char *extra_in, size_t extra_in_size) {
    ws_conn *c = calloc(1, sizeof *c);
    if (c) {
        c->in_cap = READ_CHUNK * 2 + (extra_in_size > READ_CHUNK ? extra_in_size : 0);
        c->in = malloc(c->in_cap);
    }
    if (!c || !c->in) {
        if (c) free(c);
        o2h_ws_upgrade_close(tr, urh);
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
        o2h_ws_upgrade_close(tr, urh);
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

int o2h_ws_pause(void *instance, void *link_ctx, bool paused) {
    ws_conn *c = link_ctx;
    (void)instance;
    c->paused = paused;
    update_interest(c);
    return O2H_OK;
}

void o2h_ws_close(void *instance, void *link_ctx) {
    ws_conn *c = link_ctx;
    (void)instance;
    if (c->dead || !c->link) return; /* we are closing it ourselves */
    o2h_ws_conn_fail(c, WS_CLOSE_GOING_AWAY, "closed by the router");
}

/* A last word if the socket takes it at once (no waiting): 1001 going away. */
static void say_going_away(ws_conn *c) {
    if (c->closing || c->out.len != c->out_off) return;
    static const char reason[] = "o2hub shutdown";
    uint8_t bye[2 + 2 + sizeof reason];
    size_t h = ws_frame_header(bye, WS_OP_CLOSE, 2 + sizeof reason - 1);
    bye[h] = WS_CLOSE_GOING_AWAY >> 8;
    bye[h + 1] = WS_CLOSE_GOING_AWAY & 0xff;
    memcpy(bye + h + 2, reason, sizeof reason - 1);
    send(c->fd, bye, h + 2 + sizeof reason - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void o2h_ws_close_all(ws_transport *tr) {
    while (tr->conns) {
        ws_conn *c = tr->conns;
        say_going_away(c);
        o2h_ws_conn_destroy(c);
    }
}
