/*
 * o2hub/msg.h — O2 messages: wire layout, builder, reader, validation, pool.
 *
 * A message is kept in memory exactly as it travels on the wire (network byte
 * order, starting at the `misc` field), so transports send it without copying
 * or swapping:
 *
 *     offset 0   int32  misc        flags in the low byte, tap TTL above
 *     offset 4   double timestamp   O2 time in seconds, 0 = now
 *     offset 12  address            "/svc/a/b" or "!svc/a/b" or "#svc", NUL, zero pad to 4
 *     ...        type string        ",ifs", NUL, zero pad to 4 (absent in bundles)
 *     ...        arguments          each 4-byte aligned relative to misc
 *
 * Over TCP a message is preceded by its length; every o2h_msg has four
 * writable bytes before `data` so a transport can put the length there and
 * send length and body with one write.
 *
 * Messages are reference counted and come from a pool (o2h_pool): releasing
 * the last reference returns the buffer to its pool, so a steady stream of
 * messages allocates nothing. A pool belongs to one thread (a router's loop
 * thread); messages built on other threads use a builder with no pool and
 * are heap allocated.
 *
 * Embedders call these functions directly. Plugins call the same functions
 * through the host table (plugin.h), never by symbol.
 */
#ifndef O2HUB_MSG_H
#define O2HUB_MSG_H

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Type codes, as characters in an O2 type string. */
enum o2h_type {
    O2H_INT32 = 'i',
    O2H_FLOAT = 'f',
    O2H_STRING = 's',
    O2H_SYMBOL = 'S',
    O2H_BLOB = 'b',
    O2H_INT64 = 'h',
    O2H_TIME = 't',
    O2H_DOUBLE = 'd',
    O2H_CHAR = 'c',
    O2H_MIDI = 'm',
    O2H_TRUE = 'T',
    O2H_FALSE = 'F',
    O2H_NIL = 'N',
    O2H_INFINITUM = 'I',
    O2H_BOOL = 'B',
    O2H_VECTOR = 'v',
    O2H_ARRAY_START = '[',
    O2H_ARRAY_END = ']',
};

/** Largest message o2hub builds or accepts (O2's TCP limit is 65535). */
#define O2H_MSG_MAX_SIZE (1u << 20)
/** Offset of the address in a message (after misc and timestamp). */
#define O2H_MSG_ADDRESS_OFFSET 12u
/** Deepest nesting of bundles accepted from the network. */
#define O2H_MAX_BUNDLE_DEPTH 8

/**
 * One message. Only the fields below are public; the core allocates a larger
 * private structure around them, so never declare or copy an o2h_msg.
 */
struct o2h_msg {
    uint8_t *data;     /**< wire bytes, starting at misc; data[-4..-1] is writable */
    uint32_t length;   /**< number of valid bytes at data */
    uint32_t capacity; /**< bytes available at data */
};

/** A blob argument: bytes inside the message, never byte-swapped. */
typedef struct o2h_blob {
    uint32_t size;
    const uint8_t *data;
} o2h_blob;

/**
 * A vector argument, already in host byte order. `len` counts elements
 * (the wire counts bytes); `type` is one of 'i' 'h' 'f' 'd'.
 */
typedef struct o2h_vector {
    int32_t len;
    char type;
    const void *data;
} o2h_vector;

/** One decoded argument. Which member is valid depends on the type code. */
typedef union o2h_arg {
    int32_t i;     /**< 'i', also 'c' (char code) and 'B' (0 or 1) */
    int64_t h;     /**< 'h' */
    float f;       /**< 'f' */
    double d;      /**< 'd' */
    double t;      /**< 't': O2 time in seconds */
    const char *s; /**< 's' and 'S': points into the message */
    o2h_blob b;    /**< 'b' */
    uint32_t m;    /**< 'm': port, status, data1, data2 from most to least significant byte */
    int32_t c;     /**< 'c' */
    int32_t B;     /**< 'B' */
    o2h_vector v;  /**< 'v' */
} o2h_arg;

/* ---- Reading the fixed header of a message (pure functions) -------------- */

static inline uint32_t o2h_rd_u32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t o2h_rd_u64(const uint8_t *p) {
    return ((uint64_t)o2h_rd_u32(p) << 32) | o2h_rd_u32(p + 4);
}

static inline void o2h_wr_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void o2h_wr_u64(uint8_t *p, uint64_t v) {
    o2h_wr_u32(p, (uint32_t)(v >> 32));
    o2h_wr_u32(p + 4, (uint32_t)v);
}

/** The misc field (flags | ttl << 8). */
static inline uint32_t o2h_msg_misc(const o2h_msg *m) {
    return o2h_rd_u32(m->data);
}

/** True when the message asks for reliable delivery (O2's TCP flag). */
static inline bool o2h_msg_reliable(const o2h_msg *m) {
    return (o2h_msg_misc(m) & O2H_FLAG_RELIABLE) != 0;
}

/** The timestamp, O2 time in seconds; 0 means "now". */
static inline double o2h_msg_time(const o2h_msg *m) {
    uint64_t bits = o2h_rd_u64(m->data + 4);
    double t;
    memcpy(&t, &bits, sizeof t);
    return t;
}

/** The address ("/svc/a", "!svc/a" or "#svc" for bundles), NUL-terminated. */
static inline const char *o2h_msg_address(const o2h_msg *m) {
    return (const char *)m->data + O2H_MSG_ADDRESS_OFFSET;
}

/** True for bundles (address starts with '#'). */
static inline bool o2h_msg_is_bundle(const o2h_msg *m) {
    return m->data[O2H_MSG_ADDRESS_OFFSET] == '#';
}

/** Why a message was rejected; `offset` is where in the bytes the problem is. */
typedef struct o2h_msg_error {
    uint32_t offset;
    char reason[96];
} o2h_msg_error;

/**
 * Sequential typed reading of a message's arguments with O2's coercion
 * rules (o2h_reader_init/next below). The reader is a plain struct on the
 * caller's stack; treat its fields as private. Vectors are converted to host
 * order into `scratch` (the caller supplies it; o2h_reader_next returns
 * O2H_NO_MEMORY if it is too small).
 *
 * Coercions (as O2): i h f d t convert among each other; T F B convert to
 * numbers (1/0) and numbers to T F B (non-zero is true); s and S convert to
 * each other; b m c N I only match themselves; a vector can be read as an
 * array ('[' then elements then ']') and an array as a vector.
 */
typedef struct o2h_reader {
    const uint8_t *types; /* next type code */
    const uint8_t *args;  /* next argument bytes */
    const uint8_t *end;   /* end of message */
    uint8_t *scratch;
    size_t scratch_size;
    size_t scratch_used;
    /* state for reading a vector as an array of elements */
    const uint8_t *vec_next;
    int32_t vec_remaining;
    char vec_type;
    char vec_state; /* 0 none, 1 inside, 2 close pending */
    char pad_[2];
} o2h_reader;

/* ---- Pools: what belongs to one thread ------------------------------------ */

/*
 * These take a pool, which a plugin does not have: the host table offers
 * them with the plugin's handle instead (plugin.h, o2h_host_msg).
 */

/** A new, empty pool. Pools are single-threaded. NULL if out of memory. */
O2H_EXPORT o2h_pool *o2h_pool_new(void);

/**
 * Free a pool and the cached buffers it holds. Messages still referenced
 * elsewhere stay valid and are freed to the heap when released.
 */
O2H_EXPORT void o2h_pool_free(o2h_pool *pool);

/** Counters of a pool, for benchmarks and tests. */
typedef struct o2h_pool_stats {
    uint64_t heap_allocs; /**< buffers obtained from malloc */
    uint64_t reuses;      /**< buffers handed out from the cache */
    uint64_t in_use;      /**< buffers currently referenced */
    uint64_t cached;      /**< buffers waiting in the cache */
} o2h_pool_stats;

O2H_EXPORT void o2h_pool_get_stats(const o2h_pool *pool, o2h_pool_stats *out);

/**
 * A message buffer with room for `size` bytes (length set to 0), refcount 1.
 * `pool` may be NULL (heap allocation, usable from any thread). NULL when
 * out of memory or size > O2H_MSG_MAX_SIZE.
 */
O2H_EXPORT o2h_msg *o2h_msg_alloc(o2h_pool *pool, size_t size);

/**
 * A new message holding a copy of `len` untrusted bytes, validated first.
 * Returns NULL and sets *code (O2H_INVALID_MSG, O2H_TOO_LARGE, O2H_NO_MEMORY).
 */
O2H_EXPORT o2h_msg *o2h_msg_from_bytes(o2h_pool *pool, const uint8_t *data, size_t len, int *code,
                                       o2h_msg_error *err);

/**
 * A builder collects arguments, then finish() produces a message. A builder
 * is reused: start() resets it without freeing its buffers, so building in a
 * loop allocates nothing once the buffers have grown. Errors (bad vector
 * type, unbalanced array, size limit, no memory) are sticky: the add
 * functions return the error and finish() returns NULL. `pool` may be NULL
 * (messages from the heap).
 */
O2H_EXPORT o2h_builder *o2h_builder_new(o2h_pool *pool);

/* ---- Everything else: one list -------------------------------------------- */

/*
 * Every other message function, as X(return type, name, parameters): the
 * public function is o2h_<name>, and a plugin's host->msg-><name> is the same
 * function. This one list makes both (the declarations just below and
 * o2h_host_msg in plugin.h), so the two cannot drift; a new function goes at
 * the END of the list (the host table is append-only) with a minor ABI bump.
 */
// clang-format off
#define O2H_MSG_FUNCTIONS(X)                                                   \
    /* Check untrusted bytes (starting at misc, no length prefix): overall    \
     * length, 4-byte alignment, address and type string NUL-terminated and   \
     * zero-padded, every type code known, vectors and arrays well formed,    \
     * every argument inside the buffer, no trailing bytes; bundles           \
     * recursively up to O2H_MAX_BUNDLE_DEPTH. Never reads outside            \
     * [data, data+len). O2H_OK or O2H_INVALID_MSG (`err` filled if given). */ \
    X(int, msg_validate, (const uint8_t *data, size_t len, o2h_msg_error *err)) \
    /* Add a reference. Thread-safe (atomic). */                              \
    X(o2h_msg *, msg_ref, (o2h_msg *msg))                                      \
    /* Drop a reference; the last one returns the buffer to its pool.         \
     * Thread-safe. */                                                        \
    X(void, msg_unref, (o2h_msg *msg))                                         \
    /* Current reference count (for tests and assertions). */                 \
    X(uint32_t, msg_refcount, (const o2h_msg *msg))                            \
    /* Replace the misc field (flags | ttl << 8); read it with o2h_msg_misc.  \
     * Only while the caller holds the only reference. */                     \
    X(void, msg_set_flags, (o2h_msg *msg, uint32_t misc))                      \
    /* The type string without its leading ',' ("" for bundles or none). */   \
    X(const char *, msg_types, (const o2h_msg *msg))                           \
    /* A one-line human readable form ("/svc/a @1.5 ,if 3 2.5") into buf;     \
     * returns the length the full text needs (like snprintf). */             \
    X(int, msg_format, (const o2h_msg *msg, char *buf, size_t size))           \
    X(void, builder_free, (o2h_builder *b))                                    \
    /* Reset the builder for a new message. */                                \
    X(void, builder_start, (o2h_builder *b))                                   \
    X(int, add_int32, (o2h_builder *b, int32_t v))                             \
    X(int, add_int64, (o2h_builder *b, int64_t v))                             \
    X(int, add_float, (o2h_builder *b, float v))                               \
    X(int, add_double, (o2h_builder *b, double v))                             \
    /* O2 time in seconds (type 't', an 8-byte double on the wire). */        \
    X(int, add_time, (o2h_builder *b, double v))                               \
    X(int, add_string, (o2h_builder *b, const char *s))                        \
    X(int, add_symbol, (o2h_builder *b, const char *s))                        \
    X(int, add_blob, (o2h_builder *b, const void *data, uint32_t size))        \
    X(int, add_char, (o2h_builder *b, char c))                                 \
    /* MIDI: port, status, data1, data2, most significant byte first. */      \
    X(int, add_midi, (o2h_builder *b, uint32_t midi))                          \
    /* 'B': an int32 0 or 1 on the wire. */                                   \
    X(int, add_bool, (o2h_builder *b, bool v))                                 \
    X(int, add_true, (o2h_builder *b))                                         \
    X(int, add_false, (o2h_builder *b))                                        \
    /* 'T' or 'F' according to v. */                                          \
    X(int, add_tf, (o2h_builder *b, bool v))                                   \
    X(int, add_nil, (o2h_builder *b))                                          \
    X(int, add_infinitum, (o2h_builder *b))                                    \
    X(int, add_start_array, (o2h_builder *b))                                  \
    X(int, add_end_array, (o2h_builder *b))                                    \
    /* A vector of `n` elements of `elem_type` ('i' int32, 'h' int64,         \
     * 'f' float, 'd' double) from host-order `data`. */                      \
    X(int, add_vector, (o2h_builder *b, char elem_type, int32_t n, const void *data)) \
    /* Append a complete message as a bundle element (the builder then        \
     * builds a bundle: finish() must get an address starting with '#'). */   \
    X(int, add_message, (o2h_builder *b, const o2h_msg *msg))                  \
    /* Add one argument per type code of `types` from *ap, as o2h_send takes  \
     * them: i c B -> int, m -> uint32_t, h -> int64_t, f d t -> double,    \
     * s S -> const char *, b -> const o2h_blob *; T F N I [ ] take nothing.  \
     * O2H_BAD_TYPE for another code (vectors: o2h_add_vector). */   \
    X(int, builder_add_va, (o2h_builder *b, const char *types, va_list *ap))   \
    /* Finish: a message to `address` ('/' or '!' prefix; '#' for a bundle)   \
     * stamped `time` (0 = now) with misc = `flags` (O2H_FLAG_RELIABLE or 0). \
     * The builder may be started again at once. NULL on a sticky error or a  \
     * bad address; o2h_builder_error() tells which. */                       \
    X(o2h_msg *, builder_finish, (o2h_builder *b, double time, const char *address, uint32_t flags)) \
    /* The first error since start(), or O2H_OK. */                           \
    X(int, builder_error, (const o2h_builder *b))                              \
    /* Finish into the caller's memory (a ring, a socket buffer): returns the \
     * message's size and, only when it fits in `cap`, writes it to `out` and \
     * starts the builder again; with less room the builder keeps its         \
     * arguments. 0 where finish() would return NULL. */                      \
    X(size_t, builder_encode, (o2h_builder *b, double time, const char *address, uint32_t flags, uint8_t *out, size_t cap)) \
    /* Begin reading `msg` (valid, not a bundle) with o2h_reader_next. */     \
    X(int, reader_init, (o2h_reader *rd, const o2h_msg *msg, void *scratch, size_t scratch_size)) \
    /* The type code of the next argument as in the message, 0 at the end. */ \
    X(char, reader_peek, (const o2h_reader *rd))                               \
    /* Read the next argument as type `want` (coerced if needed) into *out.   \
     * For want == 'v' set out->v.type first ('i' 'h' 'f' 'd', or 0 to keep   \
     * the message's). O2H_OK, O2H_BAD_TYPE (not coercible; the reader does   \
     * not advance), O2H_NOT_FOUND (no more) or O2H_NO_MEMORY (scratch too    \
     * small). */                                                             \
    X(int, reader_next, (o2h_reader *rd, char want, o2h_arg *out))             \
    /* True when an argument of type `have` can be read as `want` (scalar     \
     * types only; vectors and arrays are handled by the reader). */          \
    X(bool, type_coercible, (char have, char want))                            \
    /* Iterate the elements of a validated bundle: *pos = 0 first; each call  \
     * stores the next element's bytes and length and returns true, false at \
     * the end. */                                                            \
    X(bool, bundle_next, (const o2h_msg *bundle, uint32_t *pos, const uint8_t **elem, uint32_t *elem_len))
// clang-format on

#define O2H_MSG_DECLARE_(ret, name, params) O2H_EXPORT ret o2h_##name params;
O2H_MSG_FUNCTIONS(O2H_MSG_DECLARE_)
#undef O2H_MSG_DECLARE_

#ifdef __cplusplus
}
#endif
#endif
