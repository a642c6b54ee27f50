/* Private layout of a message buffer and the pool's internal interface. */
#ifndef O2H_MSG_INTERNAL_H
#define O2H_MSG_INTERNAL_H

#include <stdatomic.h>

#include "o2hub/msg.h"

/*
 * One allocation holds the header and the bytes. `bytes` is 8-aligned;
 * bytes[0..3] is padding, bytes[4..7] the TCP length slot, and the public
 * `data` pointer is bytes + 8, so data[-4] is always writable.
 */
#define MSG_DATA_OFFSET 8u

typedef struct msg_block {
    o2h_msg pub; /* must stay first: o2h_msg * <-> msg_block * */
    atomic_uint refs;
    uint8_t size_class; /* index into the pool's classes, MSG_CLASS_HEAP if none */
    uint8_t pad_[3];
    o2h_pool *pool;         /* NULL: heap message, freed with free() */
    struct msg_block *next; /* free list, or one core queue at a time */
    _Alignas(8) uint8_t bytes[];
} msg_block;

#define MSG_CLASS_HEAP 0xffu

static inline msg_block *msg_block_of(const o2h_msg *m) {
    return (msg_block *)(uintptr_t)m;
}

/* Intrusive singly linked list link for core queues (one queue at a time). */
static inline o2h_msg *msg_next(const o2h_msg *m) {
    msg_block *n = msg_block_of(m)->next;
    return n ? &n->pub : NULL;
}
static inline void msg_set_next(o2h_msg *m, o2h_msg *next) {
    msg_block_of(m)->next = next ? msg_block_of(next) : NULL;
}

/* Round up to a multiple of 4 (O2 padding). */
static inline uint32_t pad4(uint32_t n) {
    return (n + 3u) & ~3u;
}

#endif
