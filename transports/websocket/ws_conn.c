/*
 * Upgraded WebSocket connections: each socket MHD hands over becomes a
 * stream (transports/common/stream.h) on the loop, never read through MHD
 * again. The stream writes, queues what waits within "send_queue_bytes",
 * half-closes and closes, as it does for tcp and OSC; this file frames.
 * Reading runs the frame decoder (ws_frame.h) and passes text messages to
 * ws_o2ws.c; closing is the RFC 6455 handshake with a linger timer. The
 * socket stays MHD's: once the stream has closed it is handed back
 * (MHD_UPGRADE_ACTION_CLOSE), never closed here. Memory goes with the
 * stream's, in the loop's deferred phase, as our own callbacks up the stack
 * may still look at a closed connection (c->dead).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_internal.h"

#define CLOSE_LINGER_S 2.0 /* after our close frame, how long we wait for the client's */
#define OVER_BOUND_S 10.0  /* a client whose output stays over its bound this long is closed */

static void conn_free_memory(void *ctx) {
    ws_conn *c = ctx;
    ws_decoder_free(&c->dec);
    free(c->in);
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

static void stop_timer(ws_conn *c, o2h_timer **t) {
    if (*t) c->tr->host->loop->timer_stop(*t);
    *t = NULL;
}

/* The stream closed, whichever way: the socket goes back to MHD, which closes it. */
static void conn_closed(void *ctx, o2h_stream_end why, int error) {
    ws_conn *c = ctx;
    (void)why, (void)error;
    c->dead = true;
    conn_drop_link(c);
    stop_timer(c, &c->linger);
    stop_timer(c, &c->kick);
    stop_timer(c, &c->over);
    conn_unlink(c->tr, c);
    o2h_ws_upgrade_close(c->tr, c->urh);
}

void o2h_ws_conn_destroy(ws_conn *c) {
    if (!c->dead) o2h_stream_close(c->stream); /* conn_closed */
}

/* Over half of "send_queue_bytes" waiting: the client does not read what it
 * asks for, so it is not read either until it does. */
static bool over_bound(const ws_conn *c) {
    return (int64_t)o2h_stream_queued(c->stream) > c->tr->queue_limit / 2;
}

static void on_over_timeout(void *ctx) {
    ws_conn *c = ctx;
    stop_timer(c, &c->over);
    o2h_ws_conn_fail(c, WS_CLOSE_POLICY, "not reading its messages");
}

/* After the output or the pause changed: the over-bound timer, and whether we read. */
static void update_reading(ws_conn *c) {
    if (c->dead) return;
    bool over = over_bound(c);
    if (over && !c->over && !c->closing)
        c->over = c->tr->host->loop->timer_start(c->tr->self, OVER_BOUND_S, 0, on_over_timeout, c);
    else if (!over)
        stop_timer(c, &c->over);
    o2h_stream_set_reading(c->stream, !over && !c->paused);
}

/* One whole frame to the stream: written at once, or queued. */
static int send_frame(ws_conn *c, const uint8_t *frame, size_t len, unsigned flags) {
    if (c->dead) return O2H_SEND_FAIL;
    struct iovec iov = {(void *)(uintptr_t)frame, len};
    int rc = o2h_stream_sendv(c->stream, &iov, 1, flags);
    update_reading(c);
    return rc;
}

int o2h_ws_text_start(o2ws_buf *b) {
    b->len = 0;
    if (o2ws_buf_reserve(b, WS_HEADROOM) != O2H_OK) return O2H_NO_MEMORY;
    b->len = WS_HEADROOM;
    return O2H_OK;
}

int o2h_ws_queue_text(ws_conn *c, o2ws_buf *b) {
    uint8_t hdr[WS_HEADROOM];
    size_t n = b->len - WS_HEADROOM;
    size_t h = ws_frame_header(hdr, WS_OP_TEXT, n);
    uint8_t *frame = b->data + WS_HEADROOM - h; /* the header right before the payload */
    memcpy(frame, hdr, h);
    return send_frame(c, frame, h + n, 0);
}

int o2h_ws_queue_control(ws_conn *c, uint8_t opcode, const void *payload, size_t n) {
    uint8_t frame[2 + 125];
    if (n > 125) n = 125; /* RFC 6455 §5.5; our callers never give more */
    size_t h = ws_frame_header(frame, opcode, n);
    memcpy(frame + h, payload, n);
    return send_frame(c, frame, h + n, O2H_STREAM_PAST_BOUND);
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
    c->pong_pending = false; /* nothing goes after our close frame */
    uint8_t body[125];
    size_t rlen = strlen(reason);
    if (rlen > sizeof body - 2) rlen = sizeof body - 2;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    memcpy(body + 2, reason, rlen);
    if (o2h_ws_queue_control(c, WS_OP_CLOSE, body, 2 + rlen) != O2H_OK) {
        o2h_ws_conn_destroy(c);
        return;
    }
    c->linger = tr->host->loop->timer_start(tr->self, CLOSE_LINGER_S, 0, on_linger_timeout, c);
    o2h_stream_shutdown_when_flushed(c->stream); /* the client reads end of file after it */
}

/* RFC 6455 lets a pong answer only the latest ping: while output waits, the
 * latest is kept (one, at most 125 bytes) and sent once the queue drains, so
 * a client that pings without reading costs nothing more. */
static void answer_ping(ws_conn *c, const void *payload, size_t n) {
    if (n > sizeof c->pong) n = sizeof c->pong; /* the decoder refuses longer control frames */
    if (o2h_stream_queued(c->stream) > 0) {
        memcpy(c->pong, payload, n);
        c->pong_len = (uint8_t)n;
        c->pong_pending = true;
        return;
    }
    if (o2h_ws_queue_control(c, WS_OP_PONG, payload, n) != O2H_OK) o2h_ws_conn_destroy(c);
}

static void send_pending_pong(ws_conn *c) {
    if (c->dead || !c->pong_pending || o2h_stream_queued(c->stream) > 0) return;
    c->pong_pending = false;
    if (o2h_ws_queue_control(c, WS_OP_PONG, c->pong, c->pong_len) != O2H_OK) o2h_ws_conn_destroy(c);
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

/* Bytes the stream read: after what waits from earlier reads, then decoded. */
static bool conn_data(void *ctx, const uint8_t *data, size_t len) {
    ws_conn *c = ctx;
    if (c->closing) return true; /* discarded until the client closes */
    if (c->in_cap - c->in_len < len) {
        size_t cap = c->in_cap * 2;
        while (cap - c->in_len < len)
            cap *= 2;
        uint8_t *p = realloc(c->in, cap);
        if (!p) return false; /* the stream closes */
        c->in = p;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    if (!process_input(c)) return true; /* closed already */
    /* Never hold more than one largest frame and a read's worth. */
    size_t limit = (size_t)c->tr->max_frame + 14 + WS_READ_CHUNK;
    if (c->in_cap > 2 * limit && c->in_len < limit) {
        uint8_t *p = realloc(c->in, limit);
        if (p) {
            c->in = p;
            c->in_cap = limit;
        }
    }
    return true;
}

/* Readable (or hung up): read unless paused or over the bound. A hang-up
 * over the bound ends the stream when it flushes, whatever we do here. */
static void conn_readable(void *ctx) {
    ws_conn *c = ctx;
    if (!c->paused && !over_bound(c)) o2h_stream_read(c->stream);
}

/* Output went out: the pong that waited for it, and reading again below the bound. */
static void conn_written(void *ctx) {
    ws_conn *c = ctx;
    send_pending_pong(c);
    update_reading(c);
}

/* Room again after a full queue: reliable messages the core held go out now. */
static void conn_drained(void *ctx) {
    ws_conn *c = ctx;
    if (c->link) c->tr->host->link->drained(c->link);
}

static const o2h_stream_ops conn_ops = {
    .on_data = conn_data,
    .on_close = conn_closed,
    .on_readable = conn_readable,
    .on_free = conn_free_memory,
    .on_drained = conn_drained,
    .on_written = conn_written,
};

static void on_kick(void *ctx) {
    ws_conn *c = ctx;
    stop_timer(c, &c->kick);
    if (process_input(c)) update_reading(c);
}

/* An upgraded socket becomes a connection of ours, watched by the loop (on
 * the loop thread: inside MHD_run, or taking it from the hand-off ring). */
void o2h_ws_adopt(ws_transport *tr, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh,
                  const char *peer, const char *extra_in, size_t extra_in_size) {
    ws_conn *c = calloc(1, sizeof *c);
    if (c) {
        c->in_cap = WS_READ_CHUNK * 2 + extra_in_size;
        c->in = malloc(c->in_cap);
    }
    if (!c || !c->in) {
        free(c);
        o2h_ws_upgrade_close(tr, urh);
        return;
    }
    c->tr = tr;
    c->urh = urh;
    ws_decoder_init(&c->dec, (uint64_t)tr->max_frame, true);
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    o2h_stream_params sp = {.host = tr->host,
                            .self = tr->self,
                            .ops = &conn_ops,
                            .ctx = c,
                            .queue_limit = (size_t)tr->queue_limit,
                            .rx = tr->rx,
                            .rx_size = sizeof tr->rx,
                            .keep_fd = true,
                            .coalesce = true};
    c->stream = o2h_stream_new(&sp, sock);
    if (!c->stream) {
        conn_free_memory(c);
        o2h_ws_upgrade_close(tr, urh);
        return;
    }
    char desc[80];
    snprintf(desc, sizeof desc, "websocket %s", c->peer);
    c->link = tr->host->link->link_new(tr->self, c, desc);
    if (!c->link) {
        o2h_stream_close(c->stream); /* conn_closed hands the socket back; on_free frees c */
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
    update_reading(c);
    return O2H_OK;
}

/* Bytes of frames the client has not taken yet: o2h_can_send says BLOCKED meanwhile. */
size_t o2h_ws_queued(void *instance, void *link_ctx) {
    ws_conn *c = link_ctx;
    (void)instance;
    return c->stream ? o2h_stream_queued(c->stream) : 0;
}

void o2h_ws_close(void *instance, void *link_ctx) {
    ws_conn *c = link_ctx;
    (void)instance;
    if (c->dead || !c->link) return; /* we are closing it ourselves */
    o2h_ws_conn_fail(c, WS_CLOSE_GOING_AWAY, "closed by the router");
}

/* A last word if nothing waits before it: 1001 going away. What the socket
 * does not take at once is dropped with the stream. */
static void say_going_away(ws_conn *c) {
    if (c->dead || c->closing || o2h_stream_queued(c->stream) > 0) return;
    static const char reason[] = "o2hub shutdown";
    uint8_t body[2 + sizeof reason - 1];
    body[0] = WS_CLOSE_GOING_AWAY >> 8;
    body[1] = WS_CLOSE_GOING_AWAY & 0xff;
    memcpy(body + 2, reason, sizeof reason - 1);
    o2h_ws_queue_control(c, WS_OP_CLOSE, body, sizeof body);
    o2h_stream_flush(c->stream); /* now: the stream closes before the turn ends */
}

void o2h_ws_close_all(ws_transport *tr) {
    while (tr->conns) {
        ws_conn *c = tr->conns;
        say_going_away(c);
        o2h_ws_conn_destroy(c);
    }
}
