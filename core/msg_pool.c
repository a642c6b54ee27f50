/*
 * Message buffers: one allocation per message (header + bytes), reference
 * counted, recycled through per-pool free lists by power-of-two size class.
 */
#include <stdlib.h>
#include <string.h>

#include "msg_internal.h"

#define MIN_CLASS_SHIFT 6  /* 64 bytes */
#define MAX_CLASS_SHIFT 16 /* 64 KiB; larger messages come from and go back to the heap */
#define N_CLASSES (MAX_CLASS_SHIFT - MIN_CLASS_SHIFT + 1)
/* Bound on cached buffers per class, so an idle pool never holds much memory. */
#define MAX_CACHED_PER_CLASS 256u

struct o2h_pool {
    msg_block *free_list[N_CLASSES];
    uint32_t n_cached[N_CLASSES];
    uint64_t heap_allocs;
    uint64_t reuses;
    uint64_t in_use;
    bool closing; /* o2h_pool_free ran; freed when in_use reaches 0 */
};

o2h_pool *o2h_pool_new(void) {
    return calloc(1, sizeof(o2h_pool));
}

static void drain_cache(o2h_pool *pool) {
    for (int c = 0; c < N_CLASSES; c++) {
        while (pool->free_list[c]) {
            msg_block *b = pool->free_list[c];
            pool->free_list[c] = b->next;
            free(b);
        }
        pool->n_cached[c] = 0;
    }
}

void o2h_pool_free(o2h_pool *pool) {
    if (!pool) return;
    drain_cache(pool);
    if (pool->in_use == 0)
        free(pool);
    else
        pool->closing = true;
}

void o2h_pool_get_stats(const o2h_pool *pool, o2h_pool_stats *out) {
    memset(out, 0, sizeof *out);
    out->heap_allocs = pool->heap_allocs;
    out->reuses = pool->reuses;
    out->in_use = pool->in_use;
    for (int c = 0; c < N_CLASSES; c++)
        out->cached += pool->n_cached[c];
}

static int size_class(size_t size) {
    for (int c = 0; c < N_CLASSES; c++)
        if (size <= ((size_t)1 << (c + MIN_CLASS_SHIFT))) return c;
    return -1;
}

static msg_block *new_block(size_t capacity) {
    msg_block *b = malloc(sizeof(msg_block) + MSG_DATA_OFFSET + capacity);
    if (!b) return NULL;
    b->pub.data = b->bytes + MSG_DATA_OFFSET;
    b->pub.capacity = (uint32_t)capacity;
    b->next = NULL;
    return b;
}

o2h_msg *o2h_msg_alloc(o2h_pool *pool, size_t size) {
    if (size > O2H_MSG_MAX_SIZE) return NULL;
    int c = size_class(size);
    msg_block *b = NULL;
    if (pool && c >= 0 && pool->free_list[c]) {
        b = pool->free_list[c];
        pool->free_list[c] = b->next;
        pool->n_cached[c]--;
        pool->reuses++;
        b->next = NULL;
    } else {
        size_t capacity = c >= 0 ? (size_t)1 << (c + MIN_CLASS_SHIFT) : pad4((uint32_t)size);
        b = new_block(capacity);
        if (!b) return NULL;
        if (pool) pool->heap_allocs++;
    }
    b->pool = pool;
    b->size_class = (c >= 0 && pool) ? (uint8_t)c : MSG_CLASS_HEAP;
    atomic_init(&b->refs, 1);
    b->types_at = b->args_at = 0;
    b->origin = NULL;
    b->pub.length = 0;
    if (pool) pool->in_use++;
    return &b->pub;
}

o2h_msg *o2h_msg_ref(o2h_msg *msg) {
    atomic_fetch_add_explicit(&msg_block_of(msg)->refs, 1, memory_order_relaxed);
    return msg;
}

uint32_t o2h_msg_refcount(const o2h_msg *msg) {
    return atomic_load_explicit(&msg_block_of(msg)->refs, memory_order_acquire);
}

static void release_block(msg_block *b) {
    o2h_pool *pool = b->pool;
    if (!pool) {
        free(b);
        return;
    }
    pool->in_use--;
    int c = b->size_class;
    if (!pool->closing && c != MSG_CLASS_HEAP && pool->n_cached[c] < MAX_CACHED_PER_CLASS) {
        b->next = pool->free_list[c];
        pool->free_list[c] = b;
        pool->n_cached[c]++;
        return;
    }
    free(b);
    if (pool->closing && pool->in_use == 0) free(pool);
}

void o2h_msg_unref(o2h_msg *msg) {
    if (!msg) return;
    msg_block *b = msg_block_of(msg);
    /* The only reference cannot be shared with another thread at the same
     * time, so it needs no read-modify-write (the common case: a message
     * routed once and dropped). The acquire pairs with the release of the
     * thread that dropped the other references. */
    if (atomic_load_explicit(&b->refs, memory_order_acquire) == 1 ||
        atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        release_block(b);
}

o2h_msg *o2h_msg_from_bytes(o2h_pool *pool, const uint8_t *data, size_t len, int *code,
                            o2h_msg_error *err) {
    int dummy;
    if (!code) code = &dummy;
    if (len > O2H_MSG_MAX_SIZE) {
        *code = O2H_TOO_LARGE;
        return NULL;
    }
    if (!data) {
        o2h_msg_validate(data, len, err); /* says why */
        *code = O2H_INVALID_MSG;
        return NULL;
    }
    o2h_msg *m = o2h_msg_alloc(pool, len);
    if (!m) {
        *code = O2H_NO_MEMORY;
        return NULL;
    }
    memcpy(m->data, data, len);
    m->length = (uint32_t)len;
    if (o2h__msg_validate_in_place(m, err) != O2H_OK) {
        o2h_msg_unref(m);
        *code = O2H_INVALID_MSG;
        return NULL;
    }
    *code = O2H_OK;
    return m;
}

void o2h_msg_set_flags(o2h_msg *msg, uint32_t misc) {
    o2h_wr_u32(msg->data, misc);
}

const char *o2h_msg_types(const o2h_msg *msg) {
    uint32_t types_at, args_at;
    if (msg_layout(msg, &types_at, &args_at)) return (const char *)msg->data + types_at + 1;
    const char *addr = o2h_msg_address(msg);
    if (addr[0] == '#') return "";
    size_t alen = pad4((uint32_t)strlen(addr) + 1);
    const char *types = addr + alen;
    return types[0] == ',' ? types + 1 : "";
}
