/*
 * o2sm_shm.h — what the shm transport (transports/shm) and the o2sm client
 * library share: the segment layout, the registration messages on the
 * control socket, and the single-producer/single-consumer byte ring.
 *
 * One segment per client (shm_open, mode 0600, created by the host):
 *
 *     o2sm_seg header   magic, sizes, ids, the published clock offset
 *     to_host ring      control (head / tail / sleep flags, each on its own cache line)
 *     to_client ring    control
 *     to_host bytes     ring_bytes (a power of two)
 *     to_client bytes   ring_bytes
 *
 * A ring carries records: a 4-byte length in host byte order, then that many
 * bytes of one O2 message in wire format (a multiple of 4). Indexes are
 * 64-bit byte counters that only grow; a record may wrap around the end of
 * the buffer, its 4-byte length never does (everything is 4-aligned and the
 * capacity is a power of two).
 *
 * Ordering (C11): the producer writes a record, then stores `head` with
 * release; the consumer loads `head` with acquire, reads, then stores `tail`
 * with release. Each side keeps its own index locally and a cached copy of
 * the other's, reloading it only when the ring looks full (producer) or
 * empty (consumer), so in a stream the two cache lines are touched rarely.
 *
 * Sleeping (no lost wake-up): a consumer that wants to sleep sets
 * `consumer_sleeping`, issues a seq_cst fence and looks at `head` again; a
 * producer, after publishing, issues a seq_cst fence and, if the flag is
 * set, clears it and writes the consumer's eventfd. Either the consumer sees
 * the new record or the producer sees the flag. `producer_sleeping` works
 * the same way for a producer waiting for room.
 *
 * Nothing read from the segment is trusted by the host: indexes and lengths
 * are checked before use, and every message is validated by the core.
 */
#ifndef O2SM_SHM_H
#define O2SM_SHM_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define O2SM_MAGIC 0x4f32534du /* "O2SM" */
#define O2SM_VERSION 1u
#define O2SM_CACHE_LINE 64
/* "no clock yet" in o2sm_seg.clock_offset_ns */
#define O2SM_NO_CLOCK INT64_MIN
/* segment names: "/o2hub-shm.<name>.<host pid>.<client id>" */
#define O2SM_SEG_PREFIX "o2hub-shm."
#define O2SM_NAME_MAX 48
#define O2SM_SEG_NAME_MAX 96

typedef struct o2sm_ring_ctl {
    alignas(O2SM_CACHE_LINE) _Atomic uint64_t head; /* written by the producer */
    alignas(O2SM_CACHE_LINE) _Atomic uint64_t tail; /* written by the consumer */
    alignas(O2SM_CACHE_LINE) _Atomic uint32_t consumer_sleeping;
    alignas(O2SM_CACHE_LINE) _Atomic uint32_t producer_sleeping;
} o2sm_ring_ctl;

typedef struct o2sm_seg {
    uint32_t magic;
    uint32_t version;
    uint32_t ring_bytes;
    int32_t client_id;
    int32_t host_pid;
    uint32_t data_offset; /* where to_host's bytes start; to_client's follow */
    uint64_t seg_size;
    char name[O2SM_SEG_NAME_MAX];
    /* O2 time minus CLOCK_MONOTONIC, in ns; O2SM_NO_CLOCK while the host has none */
    alignas(O2SM_CACHE_LINE) _Atomic int64_t clock_offset_ns;
    _Atomic uint32_t host_closing;
    o2sm_ring_ctl to_host;
    o2sm_ring_ctl to_client;
} o2sm_seg;

/* ---- registration on the control socket (SOCK_SEQPACKET) ---- */

typedef struct o2sm_hello {
    uint32_t magic;
    uint32_t version;
    int32_t pid;
    uint32_t flags;
    char label[32]; /* for logs: what the client calls itself */
} o2sm_hello;

/* Sent with three descriptors (SCM_RIGHTS): the segment, the to-host eventfd
 * (the client writes it to wake the host), the to-client eventfd (the host
 * writes it to wake the client). */
typedef struct o2sm_welcome {
    uint32_t magic;
    uint32_t version;
    int32_t status; /* O2H_OK, or why the host refused (no fds then) */
    int32_t client_id;
    uint64_t seg_size;
    uint32_t ring_bytes;
    uint32_t pad_;
    char seg_name[O2SM_SEG_NAME_MAX];
} o2sm_welcome;

/* ---- the ring, as seen by one side ---- */

typedef struct o2sm_ring {
    o2sm_ring_ctl *ctl;
    uint8_t *buf;
    uint64_t cap;    /* bytes, a power of two */
    uint64_t pos;    /* our own index: head for a producer, tail for a consumer */
    uint64_t cached; /* the other side's index as we last read it */
} o2sm_ring;

enum { O2SM_RING_OK = 0, O2SM_RING_FULL = 1, O2SM_RING_EMPTY = 2, O2SM_RING_CORRUPT = 3 };

static inline void o2sm_ring_attach(o2sm_ring *r, o2sm_ring_ctl *ctl, uint8_t *buf, uint64_t cap,
                                    bool producer) {
    r->ctl = ctl;
    r->buf = buf;
    r->cap = cap;
    if (producer) {
        r->pos = atomic_load_explicit(&ctl->head, memory_order_relaxed);
        r->cached = atomic_load_explicit(&ctl->tail, memory_order_acquire);
    } else {
        r->pos = atomic_load_explicit(&ctl->tail, memory_order_relaxed);
        r->cached = atomic_load_explicit(&ctl->head, memory_order_acquire);
    }
}

static inline void o2sm_ring_copy_in(o2sm_ring *r, uint64_t at, const void *src, uint32_t n) {
    uint64_t off = at & (r->cap - 1);
    uint64_t first = r->cap - off < n ? r->cap - off : n;
    memcpy(r->buf + off, src, (size_t)first);
    if (first < n) memcpy(r->buf, (const uint8_t *)src + first, (size_t)(n - first));
}

static inline void o2sm_ring_copy_out(const o2sm_ring *r, uint64_t at, void *dst, uint32_t n) {
    uint64_t off = at & (r->cap - 1);
    uint64_t first = r->cap - off < n ? r->cap - off : n;
    memcpy(dst, r->buf + off, (size_t)first);
    if (first < n) memcpy((uint8_t *)dst + first, r->buf, (size_t)(n - first));
}

/** Bytes a record of an `n`-byte message takes. */
static inline uint64_t o2sm_record_size(uint32_t n) {
    return 4u + (uint64_t)n;
}

/**
 * Producer: is there room for `need` bytes? Reloads the consumer's index only
 * when the cached one says no. O2SM_RING_CORRUPT when the consumer's index
 * makes no sense.
 */
static inline int o2sm_ring_room(o2sm_ring *r, uint64_t need) {
    if (r->pos + need - r->cached <= r->cap) return O2SM_RING_OK;
    uint64_t t = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
    if (t > r->pos || r->pos - t > r->cap) return O2SM_RING_CORRUPT;
    r->cached = t;
    return r->pos + need - t <= r->cap ? O2SM_RING_OK : O2SM_RING_FULL;
}

/** Producer: append one message (n % 4 == 0, 4 + n <= cap). Does not wake anyone. */
static inline int o2sm_ring_push(o2sm_ring *r, const void *data, uint32_t n) {
    int rc = o2sm_ring_room(r, o2sm_record_size(n));
    if (rc != O2SM_RING_OK) return rc;
    uint32_t len = n;
    memcpy(r->buf + (r->pos & (r->cap - 1)), &len, 4);
    o2sm_ring_copy_in(r, r->pos + 4, data, n);
    r->pos += o2sm_record_size(n);
    atomic_store_explicit(&r->ctl->head, r->pos, memory_order_release);
    return O2SM_RING_OK;
}

/**
 * Producer: where a record of an `n`-byte message can be written in place
 * (its bytes contiguous, not wrapping past the end of the buffer), or NULL
 * (full, wrapping or corrupt: push a copy instead). Publish it with commit().
 */
static inline uint8_t *o2sm_ring_reserve(o2sm_ring *r, uint32_t n) {
    uint64_t off = r->pos & (r->cap - 1);
    if (off + o2sm_record_size(n) > r->cap) return NULL;
    if (o2sm_ring_room(r, o2sm_record_size(n)) != O2SM_RING_OK) return NULL;
    return r->buf + off + 4;
}

/** Producer: publish the `n`-byte message written where reserve() said. */
static inline void o2sm_ring_commit(o2sm_ring *r, uint32_t n) {
    uint32_t len = n;
    memcpy(r->buf + (r->pos & (r->cap - 1)), &len, 4);
    r->pos += o2sm_record_size(n);
    atomic_store_explicit(&r->ctl->head, r->pos, memory_order_release);
}

/**
 * Producer, after pushing: true when the consumer sleeps and must be woken
 * (the flag is cleared here; the caller writes the consumer's eventfd).
 */
static inline bool o2sm_ring_should_wake_consumer(o2sm_ring *r) {
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&r->ctl->consumer_sleeping, memory_order_relaxed)) return false;
    return atomic_exchange_explicit(&r->ctl->consumer_sleeping, 0, memory_order_acq_rel) != 0;
}

/*
 * A producer that found the ring full waits until this fraction of it is
 * free again, not just room for one message: producer and consumer then take
 * turns on separate stretches of the ring instead of handing every freed
 * cache line straight back and forth.
 */
#define O2SM_REFILL_DIVISOR 4

/** Producer: the room to wait for after finding no room for `need` bytes. */
static inline uint64_t o2sm_ring_refill_room(const o2sm_ring *r, uint64_t need) {
    return need > r->cap / O2SM_REFILL_DIVISOR ? need : r->cap / O2SM_REFILL_DIVISOR;
}

/**
 * Consumer, after taking and releasing records: true when a producer waits
 * for room and a refill's worth is free (or the ring is empty); the flag is
 * cleared then.
 */
static inline bool o2sm_ring_should_wake_producer(o2sm_ring *r) {
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&r->ctl->producer_sleeping, memory_order_relaxed)) return false;
    uint64_t used = atomic_load_explicit(&r->ctl->head, memory_order_acquire) - r->pos;
    if (used != 0 && r->cap - used < r->cap / O2SM_REFILL_DIVISOR) return false;
    return atomic_exchange_explicit(&r->ctl->producer_sleeping, 0, memory_order_acq_rel) != 0;
}

/**
 * Consumer: the length of the next record's message in *n, or
 * O2SM_RING_EMPTY, or O2SM_RING_CORRUPT (an index or a length out of range,
 * or longer than `max`).
 */
static inline int o2sm_ring_peek(o2sm_ring *r, uint32_t max, uint32_t *n) {
    if (r->pos == r->cached) {
        uint64_t h = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
        if (h < r->pos || h - r->pos > r->cap) return O2SM_RING_CORRUPT;
        r->cached = h;
        if (h == r->pos) return O2SM_RING_EMPTY;
    }
    uint32_t len;
    memcpy(&len, r->buf + (r->pos & (r->cap - 1)), 4);
    if (len % 4 || len > max || o2sm_record_size(len) > r->cached - r->pos)
        return O2SM_RING_CORRUPT;
    *n = len;
    return O2SM_RING_OK;
}

/** Consumer: copy the message of the record peek() saw into `dst` and consume it. */
static inline void o2sm_ring_take(o2sm_ring *r, void *dst, uint32_t n) {
    o2sm_ring_copy_out(r, r->pos + 4, dst, n);
    r->pos += o2sm_record_size(n);
}

/** Consumer: make the consumed records' room available to the producer. */
static inline void o2sm_ring_release(o2sm_ring *r) {
    atomic_store_explicit(&r->ctl->tail, r->pos, memory_order_release);
}

/**
 * Consumer about to sleep: set the flag and look once more. True when it
 * may sleep (the ring is still empty); false when a record arrived (the flag
 * is cleared again).
 */
static inline bool o2sm_ring_prepare_sleep(o2sm_ring *r) {
    atomic_store_explicit(&r->ctl->consumer_sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->ctl->head, memory_order_acquire) != r->pos) {
        atomic_store_explicit(&r->ctl->consumer_sleeping, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

/** Producer about to sleep for room for `need` bytes (same contract). */
static inline bool o2sm_ring_prepare_wait_room(o2sm_ring *r, uint64_t need) {
    atomic_store_explicit(&r->ctl->producer_sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (o2sm_ring_room(r, need) != O2SM_RING_FULL) {
        atomic_store_explicit(&r->ctl->producer_sleeping, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

/** Bytes of the segment header (rings' control included), rounded to a page. */
static inline uint64_t o2sm_header_size(void) {
    return ((uint64_t)sizeof(o2sm_seg) + 4095u) & ~(uint64_t)4095u;
}

#endif
