/*
 * The OSC packet parser: a pure function over untrusted bytes. Every read is
 * preceded by a bounds check against the end of the enclosing element; a
 * packet is checked whole before any of its messages is handed out.
 */
#include <string.h>

#include "osc_codec.h"

#define MAX_ARRAY_DEPTH 16

typedef struct parser {
    const uint8_t *base;
    osc_error *err;
    osc_visit_fn visit; /* NULL while checking */
    void *ctx;
} parser;

static uint32_t rd32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t rd64(const uint8_t *p) {
    return ((uint64_t)rd32(p) << 32) | rd32(p + 4);
}

static int fail(const parser *ps, const uint8_t *at, const char *reason) {
    if (ps->err) {
        ps->err->offset = (size_t)(at - ps->base);
        ps->err->reason = reason;
    }
    return OSC_INVALID;
}

/* A NUL-terminated string zero-padded to 4 bytes at p; its padded size in *size. */
static int padded_string(const parser *ps, const uint8_t *p, const uint8_t *end, size_t *size,
                         const char *unterminated) {
    const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
    if (!nul) return fail(ps, p, unterminated);
    size_t n = (size_t)(nul - p) + 1;
    size_t padded = (n + 3) & ~(size_t)3;
    if (padded > (size_t)(end - p)) return fail(ps, p, "string padding runs past the end");
    for (const uint8_t *q = nul + 1; q < p + padded; q++)
        if (*q) return fail(ps, q, "nonzero padding byte after a string");
    *size = padded;
    return 0;
}

static int check_blob(const parser *ps, const uint8_t *p, const uint8_t *end, size_t *size) {
    size_t left = (size_t)(end - p);
    if (left < 4) return fail(ps, p, "blob size runs past the end");
    uint32_t n = rd32(p);
    if (n > left - 4) return fail(ps, p, "blob runs past the end");
    size_t padded = ((size_t)n + 3) & ~(size_t)3;
    if (padded > left - 4) return fail(ps, p, "blob padding runs past the end");
    for (const uint8_t *q = p + 4 + n; q < p + 4 + padded; q++)
        if (*q) return fail(ps, q, "nonzero padding byte after a blob");
    *size = 4 + padded;
    return 0;
}

static int check_args(const parser *ps, const char *types, const uint8_t *p, const uint8_t *end) {
    int arrays = 0;
    for (const char *t = types; *t; t++) {
        size_t size = 0;
        int rc = 0;
        switch (*t) {
        case 'i':
        case 'f':
        case 'c':
        case 'm': size = 4; break;
        case 'h':
        case 'd':
        case 't': size = 8; break;
        case 'T':
        case 'F':
        case 'N':
        case 'I': break;
        case 's':
        case 'S': rc = padded_string(ps, p, end, &size, "unterminated string argument"); break;
        case 'b': rc = check_blob(ps, p, end, &size); break;
        case '[':
            if (++arrays > MAX_ARRAY_DEPTH) return fail(ps, p, "arrays nested too deeply");
            break;
        case ']':
            if (--arrays < 0) return fail(ps, p, "unbalanced ']' in the type tags");
            break;
        default: return fail(ps, p, "unsupported type tag");
        }
        if (rc != 0) return rc;
        if (size > (size_t)(end - p)) return fail(ps, p, "argument runs past the end");
        p += size;
    }
    if (arrays != 0) return fail(ps, p, "unbalanced '[' in the type tags");
    if (p != end) return fail(ps, p, "trailing bytes after the arguments");
    return 0;
}

static int walk(const parser *ps, const uint8_t *p, size_t len, int depth, uint64_t tag);

static int walk_bundle(const parser *ps, const uint8_t *p, size_t len, int depth, uint64_t tag) {
    if (len < 16 || memcmp(p, "#bundle", 8) != 0) return fail(ps, p, "bad bundle header");
    if (depth + 1 > OSC_MAX_DEPTH) return fail(ps, p, "bundles nested too deeply");
    uint64_t own = rd64(p + 8);
    if (own > tag) tag = own;
    const uint8_t *end = p + len;
    for (const uint8_t *q = p + 16; q < end;) {
        if (end - q < 4) return fail(ps, q, "bundle element size runs past the end");
        uint32_t n = rd32(q);
        if (n > (size_t)(end - q) - 4) return fail(ps, q, "bundle element runs past the end");
        int rc = walk(ps, q + 4, n, depth + 1, tag);
        if (rc != 0) return rc;
        q += 4 + (size_t)n;
    }
    return 0;
}

static int walk(const parser *ps, const uint8_t *p, size_t len, int depth, uint64_t tag) {
    if (len < 4) return fail(ps, p, "shorter than 4 bytes");
    if (len % 4) return fail(ps, p, "length not a multiple of 4");
    if (p[0] == '#') return walk_bundle(ps, p, len, depth, tag);
    if (p[0] != '/') return fail(ps, p, "neither a message nor a bundle");
    const uint8_t *end = p + len;
    size_t size;
    int rc = padded_string(ps, p, end, &size, "unterminated address");
    if (rc != 0) return rc;
    osc_view m = {.address = (const char *)p, .types = "", .size = len};
    const uint8_t *q = p + size;
    if (q < end) { /* old senders may leave out the type tags of a message without arguments */
        if (*q != ',') return fail(ps, q, "type tags do not start with ','");
        rc = padded_string(ps, q, end, &size, "unterminated type tags");
        if (rc != 0) return rc;
        m.types = (const char *)q + 1;
        q += size;
        rc = check_args(ps, m.types, q, end);
        if (rc != 0) return rc;
    }
    m.args = q;
    m.args_len = (size_t)(end - q);
    return ps->visit ? ps->visit(ps->ctx, &m, tag) : 0;
}

int o2h_osc_parse(const uint8_t *data, size_t len, osc_visit_fn visit, void *ctx, osc_error *err) {
    parser ps = {.base = data, .err = err};
    if (!data) return fail(&ps, data, "no data");
    int rc = walk(&ps, data, len, 0, OSC_IMMEDIATELY);
    if (rc != 0 || !visit) return rc;
    ps.visit = visit;
    ps.ctx = ctx;
    return walk(&ps, data, len, 0, OSC_IMMEDIATELY);
}
