/*
 * A stream connection for the transports that speak over TCP (tcp, the OSC
 * transport's TCP ports and delegates, upgraded WebSocket sockets): a
 * non-blocking socket watched by the loop, a send queue bounded in bytes and
 * written with one gather write for many queued messages, a non-blocking
 * connect, a half-close once flushed, and a close whose memory goes in the
 * loop's deferred phase.
 *
 * With `coalesce`, sends are not written one by one: the stream writes what a
 * loop turn queued at the end of that turn (host->loop->defer), in one gather
 * write per 1024 pieces, so a burst costs one system call and none waits for
 * a later turn. o2h_stream_queued() counts only what the socket refused.
 *
 * Framing is the user's. On the way out the queue carries either message
 * references (o2h_stream_send_msg; with a length prefix the four bytes before
 * msg->data, always writable, hold the big-endian length, so prefix and body
 * go out without a copy) or bytes the user framed itself
 * (o2h_stream_send_bytes, o2h_stream_sendv for a header and a body apart;
 * copied only if they cannot be written at once). On the way in the stream
 * hands the bytes it reads to on_data and the user deframes them.
 *
 * Every function runs on the loop thread. ops->on_close runs once, from
 * inside whichever call or event closed the stream (o2h_stream_close
 * included); the stream's memory stays valid, and reports closed, until the
 * loop's deferred phase, so callbacks up the stack may still look at it.
 */
#ifndef O2H_STREAM_H
#define O2H_STREAM_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <o2hub/plugin.h>

typedef struct o2h_stream o2h_stream;

/** Why a stream closed (ops->on_close). */
typedef enum o2h_stream_end {
    O2H_STREAM_LOCAL = 0,         /**< o2h_stream_close, flushed after close_when_flushed, or
                                       on_data returned false */
    O2H_STREAM_EOF = 1,           /**< the peer closed its side */
    O2H_STREAM_ERROR = 2,         /**< a read or write failed (`error` is the errno) */
    O2H_STREAM_CONNECT_FAILED = 3 /**< the connect did not complete (`error` is SO_ERROR) */
} o2h_stream_end;

/** What o2h_stream_read found. */
typedef enum o2h_stream_read_result {
    O2H_STREAM_READ_NOTHING = 0, /**< the socket had nothing */
    O2H_STREAM_READ_SOME = 1,    /**< bytes went to on_data */
    O2H_STREAM_READ_CLOSED = 2   /**< the stream is closed now */
} o2h_stream_read_result;

typedef struct o2h_stream_ops {
    /**
     * Bytes read (valid during the call). Return false to close the stream
     * (framing lost); it closes with O2H_STREAM_LOCAL. May send on or close
     * this stream. NULL: what arrives is read and thrown away (a peer that
     * has nothing to say; reading notices it closing).
     */
    bool (*on_data)(void *ctx, const uint8_t *data, size_t len);
    /** The stream closed; `error` is an errno for ERROR and CONNECT_FAILED, else 0. */
    void (*on_close)(void *ctx, o2h_stream_end why, int error);
    /** Optional: a non-blocking connect completed. */
    void (*on_connect)(void *ctx);
    /**
     * Optional: the socket is readable. Without it the stream reads at once
     * (o2h_stream_read); with it the user decides when to (read pacing).
     */
    void (*on_readable)(void *ctx);
    /** Optional: called in the deferred phase, once the stream's memory is freed, so the
     * user frees its own state with it. */
    void (*on_free)(void *ctx);
    /** Optional: after a send returned O2H_QUEUE_FULL, the queue is down to half its
     * bound (once per full episode): the user may send again (host->link->drained). */
    void (*on_drained)(void *ctx);
    /** Optional: the socket took queued bytes (o2h_stream_queued is less, 0 once all
     * is written), for rules of the user's own on what waits. May send or close. */
    void (*on_written)(void *ctx);
} o2h_stream_ops;

typedef struct o2h_stream_params {
    const o2h_host *host;
    o2h_plugin *self;
    const o2h_stream_ops *ops; /**< static, outlives the stream */
    void *ctx;                 /**< passed to every op */
    size_t queue_limit;        /**< bound on queued bytes (framing included) */
    /** Where reads go, shared by the user's streams (a read runs only from the
     * loop, never inside another stream's on_data). Needed when ops->on_data is set. */
    uint8_t *rx;
    size_t rx_size;
    /** Reads per event, i.e. per loop turn, for fairness between connections (0: 16):
     * a socket with more waiting is read again next turn, after the others. */
    int read_budget;
    /** Write at the end of the loop turn (its deferred phase) instead of in each send:
     * what the turn sent goes out in one gather write, without waiting for a later turn. */
    bool coalesce;
    /** The socket belongs to someone else (an upgraded socket is libmicrohttpd's):
     * the stream never closes it, not even when o2h_stream_new fails; the user
     * disposes of it once on_close has run. */
    bool keep_fd;
} o2h_stream_params;

/** o2h_stream_sendv flags. */
enum {
    /** Queued even over queue_limit: a protocol's few small control frames (a
     * close or a pong must reach a client whose queue is full). */
    O2H_STREAM_PAST_BOUND = 1
};

/** A stream on a connected socket (e.g. accepted), made non-blocking if it is
 * not. Takes `fd`: it is closed on failure (NULL) unless keep_fd. Sets
 * TCP_NODELAY. */
o2h_stream *o2h_stream_new(const o2h_stream_params *p, int fd);
/** A non-blocking connect to `addr`; on_connect or on_close(CONNECT_FAILED) tells how it
 * went. NULL with *error set (an errno) if it failed at once. Sends meanwhile are queued. */
o2h_stream *o2h_stream_connect(const o2h_stream_params *p, const struct sockaddr_in *addr,
                               int *error);

/**
 * Send `msg` (borrowed: a reference is taken if it must wait). With
 * `length_prefix` its 4-byte big-endian length goes first, written into
 * msg->data - 4. Returns O2H_OK (written or queued), O2H_QUEUE_FULL (no room:
 * nothing queued), O2H_NO_MEMORY, or O2H_SEND_FAIL (closed or closing; a write
 * error closes the stream, on_close running before this returns).
 */
int o2h_stream_send_msg(o2h_stream *s, o2h_msg *msg, bool length_prefix);
/** The same for `len` framed bytes; they are copied if they must wait. */
int o2h_stream_send_bytes(o2h_stream *s, const void *data, size_t len);
/** The same for the bytes of `n` pieces, one frame (written in one call, or
 * what is left copied into one entry); `flags`: O2H_STREAM_PAST_BOUND or 0. */
int o2h_stream_sendv(o2h_stream *s, const struct iovec *iov, int n, unsigned flags);

/** Read what is waiting, up to the read budget (for ops->on_readable users). When
 * reading is on, on_data turning it off (a pause) ends the read there. */
o2h_stream_read_result o2h_stream_read(o2h_stream *s);
/** Stop or resume watching for input (read pacing, pauses). Watched at first. */
void o2h_stream_set_reading(o2h_stream *s, bool on);

/** Write what is queued now, as far as the socket takes it, without waiting for the
 * end of the turn (coalesce): a last word before o2h_stream_close. */
void o2h_stream_flush(o2h_stream *s);
/** Close now: the queue is dropped, on_close(LOCAL) runs. Nothing if already closed. */
void o2h_stream_close(o2h_stream *s);
/** Close once everything queued is written (now if nothing is); sends fail meanwhile. */
void o2h_stream_close_when_flushed(o2h_stream *s);
/** Half-close: sends fail from now on, and once everything queued is written the
 * sending side is shut (shutdown SHUT_WR), so the peer reads end of file. Reading
 * goes on; the stream closes as any does (the peer's end of file, an error,
 * o2h_stream_close). For closing handshakes (WebSocket's close frame). */
void o2h_stream_shutdown_when_flushed(o2h_stream *s);

bool o2h_stream_is_closed(const o2h_stream *s);
/** Bytes queued and not yet written (framing included). */
size_t o2h_stream_queued(const o2h_stream *s);

#endif
