/*
 * The stream connections of transports/common (stream.h) on a socket pair,
 * driven by a router's loop: a socket kept for its owner, the half-close
 * once flushed, frames in pieces (many small ones waiting together) and
 * over the bound, the written and drained callbacks, and a pause from inside
 * on_data ending the read.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "router.h"
#include "stream.h"

static const o2h_plugin_desc fake_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "fake",
};

/* What the callbacks saw. */
typedef struct seen {
    o2h_stream *s;
    int closes, frees, written, drained, data_calls;
    o2h_stream_end why;
    uint8_t data[4096];
    size_t data_len;
    bool pause_on_data;
} seen;

static bool on_data(void *ctx, const uint8_t *p, size_t n) {
    seen *w = ctx;
    w->data_calls++;
    if (w->data_len + n <= sizeof w->data) memcpy(w->data + w->data_len, p, n);
    w->data_len += n;
    if (w->pause_on_data) o2h_stream_set_reading(w->s, false);
    return true;
}

static void on_close(void *ctx, o2h_stream_end why, int error) {
    seen *w = ctx;
    (void)error;
    w->closes++;
    w->why = why;
}

static void on_free(void *ctx) {
    ((seen *)ctx)->frees++;
}

static void on_written(void *ctx) {
    ((seen *)ctx)->written++;
}

static void on_drained(void *ctx) {
    ((seen *)ctx)->drained++;
}

static const o2h_stream_ops ops = {
    .on_data = on_data,
    .on_close = on_close,
    .on_free = on_free,
    .on_written = on_written,
    .on_drained = on_drained,
};

typedef struct fixture {
    o2h_router *r;
    o2h_plugin plug;
    uint8_t rx[16];
    int peer; /* the other end of the pair */
    int fd;
} fixture;

static o2h_stream *open_stream(fixture *f, seen *w, size_t queue_limit, bool keep_fd) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    f->r = o2h_router_new(&o, NULL);
    cr_assert_not_null(f->r);
    memset(&f->plug, 0, sizeof f->plug);
    f->plug.router = f->r;
    f->plug.desc = &fake_desc;
    f->plug.started = true;
    snprintf(f->plug.type, sizeof f->plug.type, "fake");
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f->fd = sv[0];
    f->peer = sv[1];
    fcntl(f->peer, F_SETFL, fcntl(f->peer, F_GETFL) | O_NONBLOCK);
    o2h_stream_params p = {.host = o2h__host_table(),
                           .self = &f->plug,
                           .ops = &ops,
                           .ctx = w,
                           .queue_limit = queue_limit,
                           .rx = f->rx,
                           .rx_size = sizeof f->rx,
                           .keep_fd = keep_fd};
    w->s = o2h_stream_new(&p, f->fd);
    cr_assert_not_null(w->s);
    cr_assert(fcntl(f->fd, F_GETFL) & O_NONBLOCK, "the stream made its socket non-blocking");
    return w->s;
}

static void close_fixture(fixture *f) {
    close(f->peer);
    o2h_router_poll(f->r, 0); /* the deferred phase frees what is closed */
    o2h_router_free(f->r);
}

/* Poll the loop until `*n` reaches `want` (bounded). */
static void poll_until(fixture *f, const int *n, int want) {
    for (int i = 0; i < 200 && *n < want; i++)
        o2h_router_poll(f->r, 10);
}

/* Send chunks until one has to wait in the queue; returns the bytes accepted. */
static size_t fill(o2h_stream *s) {
    static uint8_t chunk[65536];
    size_t total = 0;
    for (int i = 0; i < 1024 && o2h_stream_queued(s) == 0; i++) {
        cr_assert_eq(o2h_stream_send_bytes(s, chunk, sizeof chunk), O2H_OK);
        total += sizeof chunk;
    }
    cr_assert_gt(o2h_stream_queued(s), 0, "the socket filled up");
    return total;
}

/* Read the peer's side until end of file (bounded), polling the stream
 * meanwhile; returns the bytes read. */
static size_t read_to_eof(fixture *f, bool *eof) {
    static uint8_t buf[65536];
    size_t total = 0;
    *eof = false;
    for (int i = 0; i < 2000 && !*eof; i++) {
        ssize_t n = read(f->peer, buf, sizeof buf);
        if (n == 0) *eof = true;
        if (n > 0) total += (size_t)n;
        if (n < 0) {
            cr_assert_eq(errno, EAGAIN);
            o2h_router_poll(f->r, 5);
        }
    }
    return total;
}

Test(stream, a_kept_socket_is_left_open_for_its_owner) {
    fixture f;
    seen w = {0};
    o2h_stream *s = open_stream(&f, &w, 4096, true);
    o2h_stream_close(s);
    cr_assert_eq(w.closes, 1);
    cr_assert_eq(w.why, O2H_STREAM_LOCAL);
    cr_assert(o2h_stream_is_closed(s));
    cr_assert_neq(fcntl(f.fd, F_GETFD), -1, "the socket is still open");
    o2h_router_poll(f.r, 0);
    cr_assert_eq(w.frees, 1);
    close(f.fd);
    close_fixture(&f);

    seen w2 = {0};
    s = open_stream(&f, &w2, 4096, false);
    o2h_stream_close(s);
    cr_assert_eq(fcntl(f.fd, F_GETFD), -1, "without keep_fd the stream closes its socket");
    close_fixture(&f);
}

Test(stream, shutdown_when_flushed_ends_our_side_after_the_queue_and_keeps_reading) {
    fixture f;
    seen w = {0};
    o2h_stream *s = open_stream(&f, &w, 1 << 20, true);
    size_t sent = fill(s);
    o2h_stream_shutdown_when_flushed(s);
    cr_assert_eq(o2h_stream_send_bytes(s, "x", 1), O2H_SEND_FAIL, "no sends after it");
    bool eof;
    size_t got = read_to_eof(&f, &eof);
    cr_assert(eof, "the peer reads end of file once the queue is out");
    cr_assert_eq(got, sent, "everything queued went out first");
    cr_assert_eq(w.closes, 0, "the stream is still open");

    cr_assert_eq(write(f.peer, "hello", 5), 5);
    for (int i = 0; i < 100 && w.data_len < 5; i++)
        o2h_router_poll(f.r, 10);
    cr_assert_eq(w.data_len, 5, "it still reads");
    cr_assert_eq(memcmp(w.data, "hello", 5), 0);

    shutdown(f.peer, SHUT_WR);
    poll_until(&f, &w.closes, 1);
    cr_assert_eq(w.closes, 1);
    cr_assert_eq(w.why, O2H_STREAM_EOF);
    close(f.fd); /* kept: ours */
    close_fixture(&f);
}

/* Everything a test sent, in order, to compare with what the peer reads. */
static uint8_t sent_log[8 << 20];
static size_t sent_len;

static uint8_t pattern(size_t i) {
    return (uint8_t)(i ^ (i >> 8) ^ (i >> 16));
}

/* `n` bytes of the pattern, as a frame in two pieces; logged when accepted. */
static int send_pieces(o2h_stream *s, size_t n, unsigned flags) {
    cr_assert_leq(sent_len + n, sizeof sent_log);
    uint8_t *at = sent_log + sent_len;
    for (size_t i = 0; i < n; i++)
        at[i] = pattern(sent_len + i);
    struct iovec iov[2] = {{at, n / 3}, {at + n / 3, n - n / 3}};
    int rc = o2h_stream_sendv(s, iov, 2, flags);
    if (rc == O2H_OK) sent_len += n;
    return rc;
}

Test(stream, frames_in_pieces_go_whole_in_order_and_past_the_bound_when_asked) {
    fixture f;
    seen w = {0};
    const size_t limit = 65536;
    o2h_stream *s = open_stream(&f, &w, limit, false);
    sent_len = 0;
    for (int i = 0; i < 100 && o2h_stream_queued(s) == 0; i++)
        cr_assert_eq(send_pieces(s, 65536, 0), O2H_OK);
    cr_assert_gt(o2h_stream_queued(s), 0, "the socket filled up");
    int small = 0; /* small frames behind it wait, copied */
    while (small < 10000 && send_pieces(s, 100, 0) == O2H_OK)
        small++;
    cr_assert_gt(small, 100);
    cr_assert_eq(send_pieces(s, 100, 0), O2H_QUEUE_FULL, "the queue is full");
    size_t before = o2h_stream_queued(s);
    cr_assert_eq(send_pieces(s, 5004, O2H_STREAM_PAST_BOUND), O2H_OK);
    cr_assert_eq(o2h_stream_queued(s), before + 5004);

    static uint8_t got[sizeof sent_log];
    size_t got_len = 0;
    for (int i = 0; i < 4000 && got_len < sent_len; i++) {
        ssize_t n = read(f.peer, got + got_len, sizeof got - got_len);
        if (n > 0)
            got_len += (size_t)n;
        else
            o2h_router_poll(f.r, 5);
    }
    cr_assert_eq(got_len, sent_len, "every byte, once");
    cr_assert_eq(memcmp(got, sent_log, sent_len), 0, "in order, each frame whole");
    o2h_router_poll(f.r, 5);
    cr_assert_eq(o2h_stream_queued(s), 0);
    cr_assert_gt(w.written, 0, "on_written as the queue went out");
    cr_assert_eq(w.drained, 1, "on_drained once after the full queue had room");
    o2h_stream_close(s);
    close_fixture(&f);
}

Test(stream, turning_reading_off_inside_on_data_ends_the_read) {
    fixture f;
    seen w = {.pause_on_data = true};
    o2h_stream *s = open_stream(&f, &w, 4096, false);
    uint8_t msg[160];
    memset(msg, 'm', sizeof msg);
    cr_assert_eq(write(f.peer, msg, sizeof msg), (ssize_t)sizeof msg);
    poll_until(&f, &w.data_calls, 1);
    o2h_router_poll(f.r, 20);
    cr_assert_eq(w.data_calls, 1, "one read of 16 bytes, then paused");
    cr_assert_eq(w.data_len, 16);
    w.pause_on_data = false;
    o2h_stream_set_reading(s, true);
    for (int i = 0; i < 100 && w.data_len < sizeof msg; i++)
        o2h_router_poll(f.r, 10);
    cr_assert_eq(w.data_len, sizeof msg, "the rest once reading again");
    o2h_stream_close(s);
    close_fixture(&f);
}
