/* Stream connections for the TCP-based transports: see stream.h. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_IOV 1024 /* queued pieces per gather write (Linux's IOV_MAX) */
/* Copied sends that wait go into the last entry while it is smaller than
 * this: many small frames cost one allocation and one iovec, not one each. */
#define APPEND_MAX 65536
#define DEFAULT_READ_BUDGET 16
#define SINK_SIZE 512 /* reads thrown away (no on_data) */

/* One queued send: `len` bytes at `at`, inside a message we hold a reference
 * to, or inside `bytes`, a copy of our own. */
typedef struct entry {
    o2h_msg *msg;
    uint8_t *bytes;
    const uint8_t *at;
    size_t len;
    size_t room; /* bytes allocated at `bytes` */
} entry;

struct o2h_stream {
    o2h_stream_params p;
    int fd;
    o2h_watch *watch;
    unsigned events; /* what the watch asks for now */
    bool connecting;
    bool reading;
    bool closing;           /* no more sends: closed, or closing or shutting once flushed */
    bool end_when_flushed;  /* o2h_stream_close_when_flushed */
    bool shut_when_flushed; /* o2h_stream_shutdown_when_flushed */
    bool shut;              /* our sending side is shut */
    bool closed;            /* its memory goes in the loop's deferred phase */
    entry *q;               /* a ring: `count` entries from `head` */
    uint32_t head, count, cap;
    size_t q_bytes;    /* bytes of the queued entries */
    size_t sent;       /* bytes of the first entry already written */
    size_t fresh;      /* bytes at the queue's end queued this turn, not yet tried (coalesce) */
    bool want_drained; /* a send found the queue full: tell on_drained when it has room */
    o2h_deferred free_later;
    o2h_deferred flush_later; /* the end of the turn (coalesce) */
};

static bool again(int e) {
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

/* ---- interest and closing ---- */

/* Bytes the socket refused (queued before this turn's, or by a write that did not take all). */
static size_t waiting(const o2h_stream *s) {
    size_t left = s->q_bytes - s->sent;
    return left > s->fresh ? left : 0;
}

static unsigned want_events(const o2h_stream *s) {
    unsigned ev = s->reading ? O2H_EV_READ : 0;
    /* WRITE only while it is needed: not for what the end of this turn writes. */
    if (s->connecting || (s->count && waiting(s))) ev |= O2H_EV_WRITE;
    return ev;
}

static void update_interest(o2h_stream *s) {
    unsigned want = want_events(s);
    if (s->closed || want == s->events) return; /* no epoll_ctl when nothing changes */
    if (s->p.host->loop->watch_modify(s->watch, want) == 0) s->events = want;
}

static void free_memory(void *ctx) {
    o2h_stream *s = ctx;
    const o2h_stream_ops *ops = s->p.ops;
    void *user = s->p.ctx;
    free(s->q);
    free(s);
    if (ops->on_free) ops->on_free(user);
}

static void drop_entry(o2h_stream *s, entry *e) {
    if (e->msg)
        s->p.host->msg->msg_unref(e->msg);
    else
        free(e->bytes);
}

static void pop(o2h_stream *s) {
    entry *e = &s->q[s->head];
    s->q_bytes -= e->len;
    drop_entry(s, e);
    s->head = (s->head + 1) % s->cap;
    s->count--;
    s->sent = 0;
}

/* Close the socket and drop the queue; the memory waits for the deferred
 * phase because callbacks up the stack may still look at `s`. */
static void end(o2h_stream *s, o2h_stream_end why, int error) {
    if (s->closed) return;
    s->closed = s->closing = true;
    s->p.host->loop->watch_remove(s->watch);
    s->watch = NULL;
    if (!s->p.keep_fd) close(s->fd);
    s->fd = -1;
    while (s->count)
        pop(s);
    s->fresh = 0;
    s->p.host->loop->defer(s->p.self, &s->free_later, free_memory, s);
    s->p.ops->on_close(s->p.ctx, why, error);
}

/* ---- sending ---- */

static bool push(o2h_stream *s, entry e) {
    if (s->count == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        entry *q = malloc(cap * sizeof *q);
        if (!q) return false;
        for (uint32_t i = 0; i < s->count; i++)
            q[i] = s->q[(s->head + i) % s->cap];
        free(s->q);
        s->q = q;
        s->head = 0;
        s->cap = cap;
    }
    s->q[(s->head + s->count) % s->cap] = e;
    s->count++;
    s->q_bytes += e.len;
    return true;
}

/* `written` bytes went out: drop the entries they complete. */
static void consume(o2h_stream *s, size_t written) {
    while (written && s->count) {
        size_t first = s->q[s->head].len - s->sent;
        if (written < first) {
            s->sent += written;
            return;
        }
        written -= first;
        pop(s);
    }
}

/* Write as much of the queue as the socket takes, many entries per call.
 * sendmsg is writev with MSG_NOSIGNAL: a peer gone never raises SIGPIPE.
 * Returns 0, or the errno of a broken connection. */
static int flush(o2h_stream *s) {
    s->fresh = 0; /* tried now: what the socket does not take waits for WRITE */
    while (s->count) {
        struct iovec iov[MAX_IOV];
        size_t total = 0;
        int n = 0;
        for (uint32_t i = 0; i < s->count && n < MAX_IOV; i++, n++) {
            const entry *e = &s->q[(s->head + i) % s->cap];
            size_t skip = i == 0 ? s->sent : 0;
            iov[n] = (struct iovec){(void *)(uintptr_t)(e->at + skip), e->len - skip};
            total += e->len - skip;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        /* One piece (a lone send of a turn): send() spares the kernel the iovec import. */
        ssize_t w = n == 1
                        ? send(s->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) return again(errno) ? 0 : errno;
        consume(s, (size_t)w);
        if ((size_t)w < total) return 0; /* the socket is full */
    }
    return 0;
}

/* Queue `e`, what a direct write left: `skip` bytes of its start went out
 * already (a message's), `started` if any of this send did. A frame half
 * written and not queued would corrupt the stream: then it closes. */
static int enqueue(o2h_stream *s, entry e, size_t skip, bool started) {
    if ((e.msg || e.bytes) && push(s, e)) {
        if (s->count == 1) s->sent = skip;
        update_interest(s);
        return O2H_OK;
    }
    if (e.msg) s->p.host->msg->msg_unref(e.msg);
    free(e.bytes);
    if (!started) return O2H_NO_MEMORY;
    end(s, O2H_STREAM_ERROR, ENOMEM);
    return O2H_SEND_FAIL;
}

/* Whether a send may go on: O2H_OK, or why not. */
static int may_send(o2h_stream *s, size_t len, unsigned flags) {
    if (s->closing) return O2H_SEND_FAIL;
    if (!(flags & O2H_STREAM_PAST_BOUND) && s->q_bytes + len > s->p.queue_limit) {
        s->want_drained = true;
        return O2H_QUEUE_FULL;
    }
    return O2H_OK;
}

/* Write `iov` at once if nothing waits. Returns the bytes written (all of
 * them, or what the socket took), or -1 after a write error closed `s`. */
static ssize_t write_now(o2h_stream *s, const struct iovec *iov, int n) {
    if (s->connecting || s->count) return 0;
    struct msghdr mh = {.msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = (size_t)n};
    ssize_t w = n == 1 ? send(s->fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
                       : sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0) return w;
    if (again(errno)) return 0;
    end(s, O2H_STREAM_ERROR, errno);
    return -1;
}

static void flush_turn(void *ctx);

/* Coalescing: `len` bytes were queued for the end of this turn. */
static int queued_for_turn(o2h_stream *s, size_t len) {
    s->fresh += len;
    s->p.host->loop->defer(s->p.self, &s->flush_later, flush_turn, s);
    return O2H_OK;
}

static int send_span(o2h_stream *s, o2h_msg *msg, const uint8_t *at, size_t len) {
    int rc = may_send(s, len, 0);
    if (rc != O2H_OK) return rc;
    if (s->p.coalesce) {
        entry e = {.msg = s->p.host->msg->msg_ref(msg), .at = at, .len = len};
        if (!push(s, e)) {
            s->p.host->msg->msg_unref(e.msg);
            return O2H_NO_MEMORY;
        }
        return queued_for_turn(s, len);
    }
    struct iovec iov = {(void *)(uintptr_t)at, len};
    ssize_t w = write_now(s, &iov, 1);
    if (w < 0) return O2H_SEND_FAIL;
    if ((size_t)w == len) return O2H_OK;
    entry e = {.msg = s->p.host->msg->msg_ref(msg), .at = at, .len = len};
    return enqueue(s, e, (size_t)w, w > 0);
}

int o2h_stream_send_msg(o2h_stream *s, o2h_msg *msg, bool length_prefix) {
    if (!length_prefix) return send_span(s, msg, msg->data, msg->length);
    o2h_wr_u32(msg->data - 4, msg->length); /* the slot before every message's data */
    return send_span(s, msg, msg->data - 4, 4 + (size_t)msg->length);
}

/* Copy the bytes of `iov` after the first `skip` to `to`. */
static void gather(uint8_t *to, const struct iovec *iov, int n, size_t skip) {
    for (int i = 0; i < n; i++) {
        size_t k = iov[i].iov_len;
        if (skip >= k) {
            skip -= k;
            continue;
        }
        memcpy(to, (const uint8_t *)iov[i].iov_base + skip, k - skip);
        to += k - skip;
        skip = 0;
    }
}

/* Append `len` bytes to the last queued entry when it is a copy of ours with
 * room to grow; false (nothing changed) when it is not. */
static bool append_to_last(o2h_stream *s, const struct iovec *iov, int n, size_t len) {
    if (s->count == 0) return false;
    entry *e = &s->q[(s->head + s->count - 1) % s->cap];
    if (!e->bytes || e->len + len > APPEND_MAX) return false;
    if (e->len + len > e->room) {
        size_t room = e->room * 2 > e->len + len ? e->room * 2 : e->len + len;
        if (room > APPEND_MAX) room = APPEND_MAX;
        uint8_t *b = realloc(e->bytes, room);
        if (!b) return false;
        e->bytes = b;
        e->at = b;
        e->room = room;
    }
    gather(e->bytes + e->len, iov, n, 0);
    e->len += len;
    s->q_bytes += len;
    return true;
}

int o2h_stream_sendv(o2h_stream *s, const struct iovec *iov, int n, unsigned flags) {
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    int rc = may_send(s, len, flags);
    if (rc != O2H_OK) return rc;
    if (s->p.coalesce) {
        if (!append_to_last(s, iov, n, len)) {
            entry e = {.bytes = malloc(len ? len : 1), .len = len, .room = len};
            e.at = e.bytes;
            if (e.bytes) gather(e.bytes, iov, n, 0);
            if (!e.bytes || !push(s, e)) {
                free(e.bytes);
                return O2H_NO_MEMORY;
            }
        }
        return queued_for_turn(s, len);
    }
    ssize_t w = write_now(s, iov, n);
    if (w < 0) return O2H_SEND_FAIL;
    size_t done = (size_t)w;
    if (done == len) return O2H_OK;
    if (done == 0 && append_to_last(s, iov, n, len)) return O2H_OK;
    entry e = {.bytes = malloc(len - done), .len = len - done, .room = len - done};
    if (e.bytes) gather(e.bytes, iov, n, done); /* the rest of the pieces, one copy */
    e.at = e.bytes;
    return enqueue(s, e, 0, done > 0);
}

int o2h_stream_send_bytes(o2h_stream *s, const void *data, size_t len) {
    struct iovec iov = {(void *)(uintptr_t)data, len};
    return o2h_stream_sendv(s, &iov, 1, 0);
}

/* ---- receiving and events ---- */

o2h_stream_read_result o2h_stream_read(o2h_stream *s) {
    const o2h_stream_ops *ops = s->p.ops;
    uint8_t sink[SINK_SIZE];
    uint8_t *buf = ops->on_data ? s->p.rx : sink;
    size_t size = ops->on_data ? s->p.rx_size : sizeof sink;
    o2h_stream_read_result got = O2H_STREAM_READ_NOTHING;
    /* Reading while not watching is pacing: the whole budget. Otherwise
     * reading turned off inside on_data (a pause) ends the read there. */
    bool paced = !s->reading;
    for (int i = 0; i < s->p.read_budget && !s->closed && !s->connecting && (paced || s->reading);
         i++) {
        ssize_t n = recv(s->fd, buf, size, 0);
        if (n == 0) end(s, O2H_STREAM_EOF, 0);
        if (n < 0 && !again(errno)) end(s, O2H_STREAM_ERROR, errno);
        if (n <= 0) break;
        got = O2H_STREAM_READ_SOME;
        if (ops->on_data && !ops->on_data(s->p.ctx, buf, (size_t)n)) {
            end(s, O2H_STREAM_LOCAL, 0);
            break;
        }
        if ((size_t)n < size) break; /* drained: no need for a read that says EAGAIN */
    }
    return s->closed ? O2H_STREAM_READ_CLOSED : got;
}

static void finish_connect(o2h_stream *s) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err) {
        end(s, O2H_STREAM_CONNECT_FAILED, err);
        return;
    }
    s->connecting = false;
    if (s->p.ops->on_connect) s->p.ops->on_connect(s->p.ctx);
}

/* The queue is empty: what close_when_flushed or shutdown_when_flushed asked for. */
static void when_flushed(o2h_stream *s) {
    if (s->closed || s->connecting || s->count) return;
    if (s->end_when_flushed) {
        end(s, O2H_STREAM_LOCAL, 0);
    } else if (s->shut_when_flushed && !s->shut) {
        shutdown(s->fd, SHUT_WR); /* the peer reads end of file; we still read */
        s->shut = true;
    }
}

/* Write what is queued; tell the user if some went. */
static void write_queue(o2h_stream *s) {
    size_t before = waiting(s); /* this turn's own, written at once, are not news */
    int err = flush(s);
    if (err)
        end(s, O2H_STREAM_ERROR, err);
    else if (waiting(s) < before && s->p.ops->on_written)
        s->p.ops->on_written(s->p.ctx); /* may send or close */
}

/* What follows a write (or an event): closing when flushed, room again, interest. */
static void after_write(o2h_stream *s) {
    when_flushed(s);
    if (!s->closed && s->want_drained && s->q_bytes <= s->p.queue_limit / 2) {
        s->want_drained = false;
        if (s->p.ops->on_drained) s->p.ops->on_drained(s->p.ctx); /* may send: queue grows */
    }
    if (!s->closed) update_interest(s);
}

static void on_event(void *ctx, int fd, unsigned events) {
    o2h_stream *s = ctx;
    const unsigned readable = O2H_EV_READ | O2H_EV_HUP | O2H_EV_ERROR;
    const unsigned writable = O2H_EV_WRITE | O2H_EV_HUP | O2H_EV_ERROR;
    (void)fd;
    if (s->connecting && (events & writable)) finish_connect(s);
    if (!s->closed && !s->connecting && (events & readable)) {
        if (s->p.ops->on_readable)
            s->p.ops->on_readable(s->p.ctx);
        else
            o2h_stream_read(s);
    }
    if (!s->closed && !s->connecting && s->count && (events & writable)) write_queue(s);
    after_write(s);
}

/* The end of the turn in which sends were queued (coalesce): write them. */
static void flush_turn(void *ctx) {
    o2h_stream *s = ctx;
    if (s->closed) return;
    if (s->connecting || waiting(s))
        s->fresh = 0; /* behind what waits for WRITE (or the connection): a write now is futile */
    else if (s->count)
        write_queue(s);
    after_write(s);
}

/* ---- making and closing ---- */

static o2h_stream *make(const o2h_stream_params *p, int fd, bool connecting) {
    o2h_stream *s = calloc(1, sizeof *s);
    if (!s) {
        if (!p->keep_fd) close(fd);
        return NULL;
    }
    s->p = *p;
    if (s->p.read_budget <= 0) s->p.read_budget = DEFAULT_READ_BUDGET;
    s->fd = fd;
    s->connecting = connecting;
    s->reading = true;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int one = 1; /* each send is a message; fails harmlessly on a socket pair */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->events = want_events(s);
    s->watch = p->host->loop->watch_fd(p->self, fd, s->events, on_event, s);
    if (!s->watch) {
        if (!p->keep_fd) close(fd);
        free(s);
        return NULL;
    }
    return s;
}

o2h_stream *o2h_stream_new(const o2h_stream_params *p, int fd) {
    return make(p, fd, false);
}

o2h_stream *o2h_stream_connect(const o2h_stream_params *p, const struct sockaddr_in *addr,
                               int *error) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = errno;
        return NULL;
    }
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) != 0 && errno != EINPROGRESS) {
        *error = errno;
        close(fd);
        return NULL;
    }
    /* Connecting even if it completed at once: the first WRITE event reports
     * it, so on_connect never runs before the caller has the stream. */
    o2h_stream *s = make(p, fd, true);
    if (!s) *error = ENOMEM;
    return s;
}

void o2h_stream_set_reading(o2h_stream *s, bool on) {
    s->reading = on;
    update_interest(s);
}

void o2h_stream_flush(o2h_stream *s) {
    if (s->closed || s->connecting || !s->count) return;
    int err = flush(s);
    if (err) end(s, O2H_STREAM_ERROR, err);
}

void o2h_stream_close(o2h_stream *s) {
    end(s, O2H_STREAM_LOCAL, 0);
}

void o2h_stream_close_when_flushed(o2h_stream *s) {
    if (s->closed) return;
    s->closing = s->end_when_flushed = true;
    when_flushed(s); /* now, or from on_event once the queue is empty */
}

void o2h_stream_shutdown_when_flushed(o2h_stream *s) {
    if (s->closed) return;
    s->closing = s->shut_when_flushed = true;
    when_flushed(s);
}

size_t o2h_stream_queued(const o2h_stream *s) {
    return s->closed ? 0 : waiting(s);
}

bool o2h_stream_is_closed(const o2h_stream *s) {
    return s->closed;
}
