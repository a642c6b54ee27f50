/*
 * Typed reading of arguments with O2's coercion rules. Messages are in
 * network byte order; values are converted as they are read. The message
 * must have passed o2h_msg_validate, so sizes are trusted here.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "msg_internal.h"

static bool is_numeric(char t) {
    return t == O2H_INT32 || t == O2H_INT64 || t == O2H_FLOAT || t == O2H_DOUBLE || t == O2H_TIME;
}

static bool is_boolish(char t) {
    return t == O2H_TRUE || t == O2H_FALSE || t == O2H_BOOL;
}

bool o2h_type_coercible(char have, char want) {
    if (have == want) return true;
    if ((is_numeric(have) || is_boolish(have)) && (is_numeric(want) || is_boolish(want)))
        return true;
    return (have == O2H_STRING || have == O2H_SYMBOL) && (want == O2H_STRING || want == O2H_SYMBOL);
}

int o2h_reader_init(o2h_reader *rd, const o2h_msg *msg, void *scratch, size_t scratch_size) {
    memset(rd, 0, sizeof *rd);
    uint32_t types_at, args_at;
    if (msg_layout(msg, &types_at, &args_at)) {
        rd->types = msg->data + types_at + 1; /* skip ',' */
        rd->args = msg->data + args_at;
    } else {
        const char *addr = o2h_msg_address(msg);
        if (addr[0] == '#') return O2H_BAD_ARGS;
        const uint8_t *types = (const uint8_t *)addr + pad4((uint32_t)strlen(addr) + 1);
        size_t tlen = strlen((const char *)types);
        rd->types = types + 1; /* skip ',' */
        rd->args = types + pad4((uint32_t)tlen + 1);
    }
    rd->end = msg->data + msg->length;
    rd->scratch = scratch;
    rd->scratch_size = scratch_size;
    return O2H_OK;
}

char o2h_reader_peek(const o2h_reader *rd) {
    if (rd->vec_state) return rd->vec_remaining > 0 ? rd->vec_type : O2H_ARRAY_END;
    return (char)*rd->types;
}

/* One scalar as it is in the message, widened so any coercion can start from it. */
typedef struct scalar {
    int64_t i;
    double d;
    bool is_float;
} scalar;

static uint32_t scalar_size(char t, const uint8_t *p) {
    switch (t) {
    case O2H_INT32:
    case O2H_FLOAT:
    case O2H_CHAR:
    case O2H_MIDI:
    case O2H_BOOL: return 4;
    case O2H_INT64:
    case O2H_DOUBLE:
    case O2H_TIME: return 8;
    case O2H_STRING:
    case O2H_SYMBOL: return pad4((uint32_t)strlen((const char *)p) + 1);
    case O2H_BLOB: return 4 + pad4(o2h_rd_u32(p));
    default: return 0; /* T F N I */
    }
}

static scalar load_number(char t, const uint8_t *p) {
    scalar v = {0};
    uint32_t u32;
    uint64_t u64;
    switch (t) {
    case O2H_INT32:
    case O2H_BOOL: v.i = (int32_t)o2h_rd_u32(p); break;
    case O2H_INT64: v.i = (int64_t)o2h_rd_u64(p); break;
    case O2H_FLOAT: {
        u32 = o2h_rd_u32(p);
        float f;
        memcpy(&f, &u32, 4);
        v.d = f;
        v.is_float = true;
        break;
    }
    case O2H_DOUBLE:
    case O2H_TIME:
        u64 = o2h_rd_u64(p);
        memcpy(&v.d, &u64, 8);
        v.is_float = true;
        break;
    case O2H_TRUE: v.i = 1; break;
    default: v.i = 0; break; /* F */
    }
    if (t == O2H_BOOL) v.i = v.i != 0;
    return v;
}

/* Float to integer, saturating: out-of-range casts are undefined in C, and
 * the number comes from the network. NaN gives 0. */
static int64_t saturate_i64(double d) {
    if (d != d) return 0;
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

static int32_t saturate_i32(int64_t i) {
    return i > INT32_MAX ? INT32_MAX : i < INT32_MIN ? INT32_MIN : (int32_t)i;
}

/* Double to float: beyond float's range gives an infinity (a cast would be undefined). */
static float to_float(double d) {
    if (d > FLT_MAX) return INFINITY;
    if (d < -FLT_MAX) return -INFINITY;
    return (float)d;
}

static void store_number(scalar v, char want, o2h_arg *out) {
    double d = v.is_float ? v.d : (double)v.i;
    int64_t i = v.is_float ? saturate_i64(v.d) : v.i;
    bool truth = v.is_float ? v.d != 0 : v.i != 0;
    switch (want) {
    case O2H_INT32: out->i = v.is_float ? saturate_i32(i) : (int32_t)i; break;
    case O2H_INT64: out->h = i; break;
    case O2H_FLOAT: out->f = to_float(d); break;
    case O2H_DOUBLE: out->d = d; break;
    case O2H_TIME: out->t = d; break;
    default: out->B = truth; break; /* B, and T/F give the truth value */
    }
}

/* The common case, a number read as its own type, without the coercion path. */
static bool read_same_number(char t, const uint8_t *p, o2h_arg *out) {
    uint32_t u32;
    uint64_t u64;
    switch (t) {
    case O2H_INT32: out->i = (int32_t)o2h_rd_u32(p); return true;
    case O2H_INT64: out->h = (int64_t)o2h_rd_u64(p); return true;
    case O2H_FLOAT:
        u32 = o2h_rd_u32(p);
        memcpy(&out->f, &u32, 4);
        return true;
    case O2H_DOUBLE:
    case O2H_TIME:
        u64 = o2h_rd_u64(p);
        memcpy(&out->d, &u64, 8);
        return true;
    default: return false;
    }
}

static int read_scalar(char have, const uint8_t *p, char want, o2h_arg *out) {
    if (have == want && read_same_number(have, p, out)) return O2H_OK;
    if (!o2h_type_coercible(have, want)) return O2H_BAD_TYPE;
    switch (have) {
    case O2H_STRING:
    case O2H_SYMBOL: out->s = (const char *)p; return O2H_OK;
    case O2H_BLOB:
        out->b.size = o2h_rd_u32(p);
        out->b.data = p + 4;
        return O2H_OK;
    case O2H_CHAR: out->c = (int32_t)o2h_rd_u32(p); return O2H_OK;
    case O2H_MIDI: out->m = o2h_rd_u32(p); return O2H_OK;
    case O2H_NIL:
    case O2H_INFINITUM: memset(out, 0, sizeof *out); return O2H_OK;
    default: store_number(load_number(have, p), want, out); return O2H_OK;
    }
}

static uint32_t elem_size(char t) {
    return (t == O2H_INT32 || t == O2H_FLOAT) ? 4 : 8;
}

static bool vector_elem_type(char t) {
    return t == O2H_INT32 || t == O2H_INT64 || t == O2H_FLOAT || t == O2H_DOUBLE;
}

static void *scratch_take(o2h_reader *rd, size_t bytes) {
    size_t at = (rd->scratch_used + 7) & ~(size_t)7;
    if (!rd->scratch || at + bytes > rd->scratch_size) return NULL;
    rd->scratch_used = at + bytes;
    return rd->scratch + at;
}

static void store_elem(void *dst, int32_t idx, char type, const o2h_arg *a) {
    switch (type) {
    case O2H_INT32: ((int32_t *)dst)[idx] = a->i; break;
    case O2H_INT64: ((int64_t *)dst)[idx] = a->h; break;
    case O2H_FLOAT: ((float *)dst)[idx] = a->f; break;
    default: ((double *)dst)[idx] = a->d; break;
    }
}

/* A wire vector as a host-order vector of `target` elements. */
static int read_vector(o2h_reader *rd, char elem, const uint8_t *p, char target, o2h_arg *out) {
    uint32_t bytes = o2h_rd_u32(p);
    int32_t n = (int32_t)(bytes / elem_size(elem));
    if (!target) target = elem;
    if (!vector_elem_type(target)) return O2H_BAD_TYPE;
    void *dst = scratch_take(rd, (size_t)n * elem_size(target) + 1);
    if (!dst) return O2H_NO_MEMORY;
    for (int32_t k = 0; k < n; k++) {
        o2h_arg a;
        read_scalar(elem, p + 4 + (uint32_t)k * elem_size(elem), target, &a);
        store_elem(dst, k, target, &a);
    }
    out->v = (o2h_vector){.len = n, .type = target, .data = dst};
    rd->types += 2;
    rd->args += 4 + bytes;
    return O2H_OK;
}

/* A wire array of numbers as a vector; nested arrays and non-numbers refuse. */
static int read_array_as_vector(o2h_reader *rd, char target, o2h_arg *out) {
    const uint8_t *t = rd->types + 1;
    int32_t n = 0;
    for (; *t != O2H_ARRAY_END; t++, n++)
        if (!*t || !(is_numeric((char)*t) || is_boolish((char)*t))) return O2H_BAD_TYPE;
    if (!target) target = n > 0 && vector_elem_type((char)rd->types[1]) ? (char)rd->types[1] : 'd';
    if (!vector_elem_type(target)) return O2H_BAD_TYPE;
    void *dst = scratch_take(rd, (size_t)n * elem_size(target) + 1);
    if (!dst) return O2H_NO_MEMORY;
    const uint8_t *p = rd->args;
    for (int32_t k = 0; k < n; k++) {
        char have = (char)rd->types[1 + k];
        o2h_arg a;
        read_scalar(have, p, target, &a);
        store_elem(dst, k, target, &a);
        p += scalar_size(have, p);
    }
    out->v = (o2h_vector){.len = n, .type = target, .data = dst};
    rd->types = t + 1;
    rd->args = p;
    return O2H_OK;
}

static int next_in_vector(o2h_reader *rd, char want, o2h_arg *out) {
    if (rd->vec_remaining == 0) {
        if (want != O2H_ARRAY_END) return O2H_BAD_TYPE;
        rd->vec_state = 0;
        memset(out, 0, sizeof *out);
        return O2H_OK;
    }
    int rc = read_scalar(rd->vec_type, rd->vec_next, want, out);
    if (rc != O2H_OK) return rc;
    rd->vec_next += elem_size(rd->vec_type);
    rd->vec_remaining--;
    return O2H_OK;
}

int o2h_reader_next(o2h_reader *rd, char want, o2h_arg *out) {
    if (rd->vec_state) return next_in_vector(rd, want, out);
    char have = (char)*rd->types;
    if (!have) return O2H_NOT_FOUND;
    if (have == O2H_VECTOR) {
        char elem = (char)rd->types[1];
        if (want == O2H_VECTOR) return read_vector(rd, elem, rd->args, out->v.type, out);
        if (want != O2H_ARRAY_START) return O2H_BAD_TYPE;
        rd->vec_state = 1;
        rd->vec_type = elem;
        rd->vec_remaining = (int32_t)(o2h_rd_u32(rd->args) / elem_size(elem));
        rd->vec_next = rd->args + 4;
        rd->args += 4 + o2h_rd_u32(rd->args);
        rd->types += 2;
        memset(out, 0, sizeof *out);
        return O2H_OK;
    }
    if (have == O2H_ARRAY_START && want == O2H_VECTOR)
        return read_array_as_vector(rd, out->v.type, out);
    if (have == O2H_ARRAY_START || have == O2H_ARRAY_END) {
        if (want != have) return O2H_BAD_TYPE;
        rd->types++;
        memset(out, 0, sizeof *out);
        return O2H_OK;
    }
    if (want == O2H_VECTOR || want == O2H_ARRAY_START || want == O2H_ARRAY_END) return O2H_BAD_TYPE;
    int rc = read_scalar(have, rd->args, want, out);
    if (rc != O2H_OK) return rc;
    rd->args += scalar_size(have, rd->args);
    rd->types++;
    return O2H_OK;
}
