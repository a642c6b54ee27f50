/*
 * The message builder. Types and argument bytes are collected in buffers
 * that survive start(), so building in a loop stops allocating once they
 * have grown; finish() assembles one pooled message in wire layout.
 */
#include <stdlib.h>
#include <string.h>

#include "msg_internal.h"

struct o2h_builder {
    o2h_pool *pool;
    char *types; /* without the leading ',' */
    uint32_t types_len, types_cap;
    uint8_t *args;
    uint32_t args_len, args_cap;
    int error;
    int array_depth;
    bool is_bundle;
};

o2h_builder *o2h_builder_new(o2h_pool *pool) {
    o2h_builder *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->pool = pool;
    b->types_cap = 32;
    b->args_cap = 256;
    b->types = malloc(b->types_cap);
    b->args = malloc(b->args_cap);
    if (!b->types || !b->args) {
        o2h_builder_free(b);
        return NULL;
    }
    return b;
}

void o2h_builder_free(o2h_builder *b) {
    if (!b) return;
    free(b->types);
    free(b->args);
    free(b);
}

void o2h_builder_start(o2h_builder *b) {
    b->types_len = 0;
    b->args_len = 0;
    b->error = O2H_OK;
    b->array_depth = 0;
    b->is_bundle = false;
}

int o2h_builder_error(const o2h_builder *b) {
    return b->error;
}

static int fail(o2h_builder *b, int code) {
    if (b->error == O2H_OK) b->error = code;
    return b->error;
}

static bool grow(void **buf, uint32_t *cap, uint32_t need) {
    uint32_t c = *cap;
    while (c < need)
        c *= 2;
    void *p = realloc(*buf, c);
    if (!p) return false;
    *buf = p;
    *cap = c;
    return true;
}

/* Room for one more type code and `nbytes` argument bytes; returns where they go. */
static uint8_t *reserve(o2h_builder *b, char type, uint32_t nbytes) {
    if (b->error != O2H_OK) return NULL;
    if ((uint64_t)b->args_len + nbytes + b->types_len + 64 > O2H_MSG_MAX_SIZE) {
        fail(b, O2H_TOO_LARGE);
        return NULL;
    }
    if (b->types_len + 2 > b->types_cap &&
        !grow((void **)&b->types, &b->types_cap, b->types_len + 2)) {
        fail(b, O2H_NO_MEMORY);
        return NULL;
    }
    if (b->args_len + nbytes > b->args_cap &&
        !grow((void **)&b->args, &b->args_cap, b->args_len + nbytes)) {
        fail(b, O2H_NO_MEMORY);
        return NULL;
    }
    if (b->is_bundle) {
        fail(b, O2H_BAD_ARGS); /* a bundle holds messages, not arguments */
        return NULL;
    }
    b->types[b->types_len++] = type;
    uint8_t *at = b->args + b->args_len;
    b->args_len += nbytes;
    return at;
}

static int add_u32(o2h_builder *b, char type, uint32_t v) {
    uint8_t *p = reserve(b, type, 4);
    if (!p) return b->error;
    o2h_wr_u32(p, v);
    return O2H_OK;
}

static int add_u64(o2h_builder *b, char type, uint64_t v) {
    uint8_t *p = reserve(b, type, 8);
    if (!p) return b->error;
    o2h_wr_u64(p, v);
    return O2H_OK;
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint64_t double_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

int o2h_add_int32(o2h_builder *b, int32_t v) {
    return add_u32(b, O2H_INT32, (uint32_t)v);
}
int o2h_add_int64(o2h_builder *b, int64_t v) {
    return add_u64(b, O2H_INT64, (uint64_t)v);
}
int o2h_add_float(o2h_builder *b, float v) {
    return add_u32(b, O2H_FLOAT, float_bits(v));
}
int o2h_add_double(o2h_builder *b, double v) {
    return add_u64(b, O2H_DOUBLE, double_bits(v));
}
int o2h_add_time(o2h_builder *b, double v) {
    return add_u64(b, O2H_TIME, double_bits(v));
}
int o2h_add_char(o2h_builder *b, char c) {
    return add_u32(b, O2H_CHAR, (uint32_t)(uint8_t)c);
}
int o2h_add_midi(o2h_builder *b, uint32_t midi) {
    return add_u32(b, O2H_MIDI, midi);
}
int o2h_add_bool(o2h_builder *b, bool v) {
    return add_u32(b, O2H_BOOL, v ? 1u : 0u);
}
int o2h_add_true(o2h_builder *b) {
    return reserve(b, O2H_TRUE, 0) ? O2H_OK : b->error;
}
int o2h_add_false(o2h_builder *b) {
    return reserve(b, O2H_FALSE, 0) ? O2H_OK : b->error;
}
int o2h_add_tf(o2h_builder *b, bool v) {
    return v ? o2h_add_true(b) : o2h_add_false(b);
}
int o2h_add_nil(o2h_builder *b) {
    return reserve(b, O2H_NIL, 0) ? O2H_OK : b->error;
}
int o2h_add_infinitum(o2h_builder *b) {
    return reserve(b, O2H_INFINITUM, 0) ? O2H_OK : b->error;
}

/* A NUL-terminated string padded with zeros to a multiple of 4. */
static int add_padded_string(o2h_builder *b, char type, const char *s) {
    if (!s) return fail(b, O2H_BAD_ARGS);
    size_t len = strlen(s);
    if (len > O2H_MSG_MAX_SIZE) return fail(b, O2H_TOO_LARGE);
    uint32_t n = pad4((uint32_t)len + 1);
    uint8_t *p = reserve(b, type, n);
    if (!p) return b->error;
    memset(p + n - 4, 0, 4);
    memcpy(p, s, len);
    return O2H_OK;
}

int o2h_add_string(o2h_builder *b, const char *s) {
    return add_padded_string(b, O2H_STRING, s);
}
int o2h_add_symbol(o2h_builder *b, const char *s) {
    return add_padded_string(b, O2H_SYMBOL, s);
}

int o2h_add_blob(o2h_builder *b, const void *data, uint32_t size) {
    if (size > O2H_MSG_MAX_SIZE || (!data && size)) return fail(b, O2H_BAD_ARGS);
    uint32_t n = 4 + pad4(size);
    uint8_t *p = reserve(b, O2H_BLOB, n);
    if (!p) return b->error;
    memset(p + n - 4, 0, 4);
    o2h_wr_u32(p, size);
    if (size) memcpy(p + 4, data, size);
    return O2H_OK;
}

int o2h_add_start_array(o2h_builder *b) {
    if (!reserve(b, O2H_ARRAY_START, 0)) return b->error;
    b->array_depth++;
    return O2H_OK;
}

int o2h_add_end_array(o2h_builder *b) {
    if (b->array_depth <= 0) return fail(b, O2H_BAD_ARGS);
    if (!reserve(b, O2H_ARRAY_END, 0)) return b->error;
    b->array_depth--;
    return O2H_OK;
}

static uint32_t element_size(char t) {
    switch (t) {
    case O2H_INT32:
    case O2H_FLOAT: return 4;
    case O2H_INT64:
    case O2H_DOUBLE: return 8;
    default: return 0;
    }
}

int o2h_add_vector(o2h_builder *b, char elem_type, int32_t n, const void *data) {
    uint32_t esize = element_size(elem_type);
    if (esize == 0) return fail(b, O2H_BAD_TYPE);
    if (n < 0 || (n > 0 && !data) || (uint64_t)n * esize > O2H_MSG_MAX_SIZE)
        return fail(b, O2H_BAD_ARGS);
    uint32_t bytes = (uint32_t)n * esize;
    uint8_t *p = reserve(b, O2H_VECTOR, 4 + bytes);
    if (!p) return b->error;
    b->types[b->types_len++] = elem_type; /* reserve left room for a second code */
    o2h_wr_u32(p, bytes);
    p += 4;
    const uint8_t *src = data;
    for (int32_t i = 0; i < n; i++, p += esize, src += esize) {
        if (esize == 4) {
            uint32_t v;
            memcpy(&v, src, 4);
            o2h_wr_u32(p, v);
        } else {
            uint64_t v;
            memcpy(&v, src, 8);
            o2h_wr_u64(p, v);
        }
    }
    return O2H_OK;
}

int o2h_add_message(o2h_builder *b, const o2h_msg *msg) {
    if (b->error != O2H_OK) return b->error;
    if (!msg || b->types_len > 0) return fail(b, O2H_BAD_ARGS);
    uint32_t n = 4 + pad4(msg->length);
    if ((uint64_t)b->args_len + n + 64 > O2H_MSG_MAX_SIZE) return fail(b, O2H_TOO_LARGE);
    if (b->args_len + n > b->args_cap && !grow((void **)&b->args, &b->args_cap, b->args_len + n))
        return fail(b, O2H_NO_MEMORY);
    uint8_t *p = b->args + b->args_len;
    memset(p + n - 4, 0, 4);
    o2h_wr_u32(p, msg->length);
    memcpy(p + 4, msg->data, msg->length);
    b->args_len += n;
    b->is_bundle = true;
    return O2H_OK;
}

static bool valid_address(const o2h_builder *b, const char *address) {
    if (!address || !address[0] || !address[1] || address[1] == '/') return false;
    if (b->is_bundle) return address[0] == '#';
    return address[0] == '/' || address[0] == '!' || (address[0] == '#' && b->types_len == 0);
}

/* Bytes of the finished message, or 0 after a sticky error or a bad address. */
static size_t finished_size(o2h_builder *b, const char *address, size_t *alen) {
    if (b->error == O2H_OK && b->array_depth != 0) fail(b, O2H_BAD_ARGS);
    if (b->error == O2H_OK && !valid_address(b, address)) fail(b, O2H_BAD_NAME);
    if (b->error != O2H_OK) return 0;
    bool bundle = address[0] == '#';
    *alen = strlen(address);
    uint32_t type_bytes = bundle ? 0 : pad4(b->types_len + 2);
    size_t size =
        O2H_MSG_ADDRESS_OFFSET + (size_t)pad4((uint32_t)*alen + 1) + type_bytes + b->args_len;
    if (size > O2H_MSG_MAX_SIZE) {
        fail(b, O2H_TOO_LARGE);
        return 0;
    }
    return size;
}

static void write_message(o2h_builder *b, double time, const char *address, size_t alen,
                          uint32_t flags, uint8_t *p) {
    bool bundle = address[0] == '#';
    uint32_t addr_bytes = pad4((uint32_t)alen + 1);
    uint32_t type_bytes = bundle ? 0 : pad4(b->types_len + 2);
    o2h_wr_u32(p, flags);
    o2h_wr_u64(p + 4, double_bits(time));
    p += O2H_MSG_ADDRESS_OFFSET;
    memset(p + addr_bytes - 4, 0, 4);
    memcpy(p, address, alen);
    p += addr_bytes;
    if (!bundle) {
        memset(p + type_bytes - 4, 0, 4);
        p[0] = ',';
        memcpy(p + 1, b->types, b->types_len);
        p += type_bytes;
    }
    memcpy(p, b->args, b->args_len);
    /* Ready for the next message at once, as O2's builder is. */
    o2h_builder_start(b);
}

o2h_msg *o2h_builder_finish(o2h_builder *b, double time, const char *address, uint32_t flags) {
    size_t alen;
    size_t size = finished_size(b, address, &alen);
    if (size == 0) return NULL;
    o2h_msg *m = o2h_msg_alloc(b->pool, size);
    if (!m) {
        fail(b, O2H_NO_MEMORY);
        return NULL;
    }
    if (address[0] != '#') {
        uint32_t types_at = O2H_MSG_ADDRESS_OFFSET + pad4((uint32_t)alen + 1);
        msg_set_layout(m, types_at, types_at + pad4(b->types_len + 2));
    }
    write_message(b, time, address, alen, flags, m->data);
    m->length = (uint32_t)size;
    return m;
}

size_t o2h_builder_encode(o2h_builder *b, double time, const char *address, uint32_t flags,
                          uint8_t *out, size_t cap) {
    size_t alen;
    size_t size = finished_size(b, address, &alen);
    if (size != 0 && size <= cap) write_message(b, time, address, alen, flags, out);
    return size;
}

static int add_one_vararg(o2h_builder *b, char type, va_list *ap) {
    switch (type) {
    case O2H_INT32: return o2h_add_int32(b, va_arg(*ap, int32_t));
    case O2H_INT64: return o2h_add_int64(b, va_arg(*ap, int64_t));
    case O2H_FLOAT: return o2h_add_float(b, (float)va_arg(*ap, double));
    case O2H_DOUBLE: return o2h_add_double(b, va_arg(*ap, double));
    case O2H_TIME: return o2h_add_time(b, va_arg(*ap, double));
    case O2H_STRING: return o2h_add_string(b, va_arg(*ap, const char *));
    case O2H_SYMBOL: return o2h_add_symbol(b, va_arg(*ap, const char *));
    case O2H_CHAR: return o2h_add_char(b, (char)va_arg(*ap, int));
    case O2H_MIDI: return o2h_add_midi(b, va_arg(*ap, uint32_t));
    case O2H_BOOL: return o2h_add_bool(b, va_arg(*ap, int) != 0);
    case O2H_TRUE: return o2h_add_true(b);
    case O2H_FALSE: return o2h_add_false(b);
    case O2H_NIL: return o2h_add_nil(b);
    case O2H_INFINITUM: return o2h_add_infinitum(b);
    case O2H_ARRAY_START: return o2h_add_start_array(b);
    case O2H_ARRAY_END: return o2h_add_end_array(b);
    case O2H_BLOB: {
        const o2h_blob *blob = va_arg(*ap, const o2h_blob *);
        return blob ? o2h_add_blob(b, blob->data, blob->size) : O2H_BAD_ARGS;
    }
    default: return O2H_BAD_TYPE; /* vectors: o2h_add_vector */
    }
}

int o2h_builder_add_va(o2h_builder *b, const char *types, va_list *ap) {
    int rc = O2H_OK;
    for (const char *t = types ? types : ""; *t && rc == O2H_OK; t++)
        rc = add_one_vararg(b, *t, ap);
    return rc;
}
