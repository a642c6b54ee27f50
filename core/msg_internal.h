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
    /* Where the type string (its ',') and the arguments start, when known,
     * else 0: set where the bytes are final and known good (a builder wrote
     * them, or validation walked them) so that dispatch need not scan the
     * address again. Nothing edits an address or types in place afterwards;
     * only misc and the timestamp change. */
    uint32_t types_at, args_at;
    o2h_pool *pool; /* NULL: heap message, freed with free() */
    /* The link it came by, while a transport's deliver() dispatches it
     * (link.h: msg_origin); NULL for messages made here. Cleared wherever a
     * message outlives that dispatch (scheduler, handler sends, posts). */
    struct o2h_link *origin;
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

static inline void msg_set_layout(o2h_msg *m, uint32_t types_at, uint32_t args_at) {
    msg_block_of(m)->types_at = types_at;
    msg_block_of(m)->args_at = args_at;
}

/* The known layout of a message with arguments' type string, if any. The
 * checks keep a stale hint from ever reading outside the message. */
static inline bool msg_layout(const o2h_msg *m, uint32_t *types_at, uint32_t *args_at) {
    const msg_block *b = msg_block_of(m);
    if (b->types_at == 0 || b->args_at <= b->types_at || b->args_at > m->length) return false;
    if (m->data[b->types_at] != ',') return false;
    *types_at = b->types_at;
    *args_at = b->args_at;
    return true;
}

/* Validate a message's bytes and remember its layout (see msg_block). */
int o2h__msg_validate_in_place(o2h_msg *m, o2h_msg_error *err);

/* Round up to a multiple of 4 (O2 padding). */
static inline uint32_t pad4(uint32_t n) {
    return (n + 3u) & ~3u;
}

#endif
