/*
 * Validation of untrusted bytes. Every read is preceded by a bounds check
 * against `end`; nothing is trusted until it has been checked.
 */
#include <stdio.h>
#include <string.h>

#include "msg_internal.h"

typedef struct checker {
    const uint8_t *base;
    const uint8_t *end;
    o2h_msg_error *err;
    uint32_t types_at, args_at; /* of the outermost message, when it has types */
} checker;

static int reject(const checker *c, const uint8_t *at, const char *reason) {
    if (c->err) {
        c->err->offset = (uint32_t)(at - c->base);
        snprintf(c->err->reason, sizeof c->err->reason, "%s", reason);
    }
    return O2H_INVALID_MSG;
}

/* The first zero byte in [s, end), or NULL. Strings here are short and start
 * 4-aligned within the message, so a word at a time beats a call to memchr. */
static const uint8_t *find_nul(const uint8_t *s, const uint8_t *end) {
    for (; end - s >= 4; s += 4) {
        uint32_t w;
        memcpy(&w, s, 4);
        if ((w - 0x01010101u) & ~w & 0x80808080u) break; /* this word has a zero byte */
    }
    for (; s < end; s++)
        if (*s == 0) return s;
    return NULL;
}

/* A NUL-terminated, zero-padded string at *p; advances *p past the padding. */
static int check_padded_string(const checker *c, const uint8_t **p, const uint8_t *end,
                               const char *what) {
    const uint8_t *s = *p;
    const uint8_t *nul = find_nul(s, end);
    if (!nul) return reject(c, s, what);
    const uint8_t *next = s + pad4((uint32_t)(nul - s) + 1);
    if (next > end) return reject(c, s, "padding runs past the end");
    for (const uint8_t *q = nul; q < next; q++)
        if (*q) return reject(c, q, "nonzero padding byte");
    *p = next;
    return O2H_OK;
}

static bool known_scalar(char t) {
    switch (t) {
    case 'i':
    case 'f':
    case 's':
    case 'S':
    case 'b':
    case 'h':
    case 't':
    case 'd':
    case 'c':
    case 'm':
    case 'T':
    case 'F':
    case 'N':
    case 'I':
    case 'B': return true;
    default: return false;
    }
}

static uint32_t fixed_size(char t) {
    switch (t) {
    case 'i':
    case 'f':
    case 'c':
    case 'm':
    case 'B': return 4;
    case 'h':
    case 't':
    case 'd': return 8;
    default: return 0;
    }
}

static int check_arg(const checker *c, char t, const uint8_t **p, const uint8_t *end) {
    if (t == 's' || t == 'S') return check_padded_string(c, p, end, "unterminated string");
    if (t == 'b') {
        if (end - *p < 4) return reject(c, *p, "blob size past the end");
        uint32_t size = o2h_rd_u32(*p);
        if (size > (uint32_t)(end - *p - 4) || pad4(size) > (uint32_t)(end - *p - 4))
            return reject(c, *p, "blob runs past the end");
        *p += 4 + pad4(size);
        return O2H_OK;
    }
    uint32_t n = fixed_size(t);
    if ((uint32_t)(end - *p) < n) return reject(c, *p, "argument runs past the end");
    *p += n;
    return O2H_OK;
}

static int check_vector(const checker *c, char elem, const uint8_t **p, const uint8_t *end) {
    uint32_t esize = (elem == 'i' || elem == 'f') ? 4 : 8;
    if (end - *p < 4) return reject(c, *p, "vector length past the end");
    uint32_t bytes = o2h_rd_u32(*p);
    if (bytes % esize) return reject(c, *p, "vector length not a multiple of its element size");
    if (bytes > (uint32_t)(end - *p - 4)) return reject(c, *p, "vector runs past the end");
    *p += 4 + bytes;
    return O2H_OK;
}

static int check_args(const checker *c, const uint8_t *types, const uint8_t *p,
                      const uint8_t *end) {
    int depth = 0;
    for (const uint8_t *t = types; *t; t++) {
        char code = (char)*t;
        int rc = O2H_OK;
        if (code == '[') {
            depth++;
        } else if (code == ']') {
            if (--depth < 0) return reject(c, t, "unbalanced ']' in type string");
        } else if (code == 'v') {
            char elem = (char)t[1];
            if (!elem || !strchr("ihfd", elem)) return reject(c, t, "vector of unknown type");
            rc = check_vector(c, elem, &p, end);
            t++;
        } else if (known_scalar(code)) {
            rc = check_arg(c, code, &p, end);
        } else {
            return reject(c, t, "unknown type code");
        }
        if (rc != O2H_OK) return rc;
    }
    if (depth != 0) return reject(c, types, "unbalanced '[' in type string");
    if (p != end) return reject(c, p, "trailing bytes after the last argument");
    return O2H_OK;
}

static int check_message(checker *c, const uint8_t *data, size_t len, int depth);

static int check_bundle(checker *c, const uint8_t *p, const uint8_t *end, int depth) {
    if (depth >= O2H_MAX_BUNDLE_DEPTH) return reject(c, p, "bundles nested too deeply");
    while (p < end) {
        if (end - p < 4) return reject(c, p, "bundle element length past the end");
        uint32_t len = o2h_rd_u32(p);
        if (len > (uint32_t)(end - p - 4)) return reject(c, p, "bundle element runs past the end");
        int rc = check_message(c, p + 4, len, depth + 1);
        if (rc != O2H_OK) return rc;
        p += 4 + len;
    }
    return O2H_OK;
}

static int check_message(checker *c, const uint8_t *data, size_t len, int depth) {
    if (len < O2H_MSG_ADDRESS_OFFSET + 4) return reject(c, data, "shorter than a message header");
    if (len % 4) return reject(c, data, "length not a multiple of 4");
    if (len > O2H_MSG_MAX_SIZE) return reject(c, data, "longer than the size limit");
    const uint8_t *end = data + len;
    const uint8_t *p = data + O2H_MSG_ADDRESS_OFFSET;
    char first = (char)*p;
    if (first != '/' && first != '!' && first != '#')
        return reject(c, p, "address does not start with '/', '!' or '#'");
    int rc = check_padded_string(c, &p, end, "unterminated address");
    if (rc != O2H_OK) return rc;
    if (first == '#') return check_bundle(c, p, end, depth);
    if (p >= end || *p != ',') return reject(c, p, "type string does not start with ','");
    const uint8_t *types = p + 1;
    rc = check_padded_string(c, &p, end, "unterminated type string");
    if (rc != O2H_OK) return rc;
    if (depth == 0) {
        c->types_at = (uint32_t)(types - 1 - data);
        c->args_at = (uint32_t)(p - data);
    }
    return check_args(c, types, p, end);
}

int o2h_msg_validate(const uint8_t *data, size_t len, o2h_msg_error *err) {
    checker c = {.base = data, .end = data + len, .err = err};
    if (!data) return reject(&c, data, "no data");
    return check_message(&c, data, len, 0);
}

int o2h__msg_validate_in_place(o2h_msg *m, o2h_msg_error *err) {
    checker c = {.base = m->data, .end = m->data + m->length, .err = err};
    int rc = check_message(&c, m->data, m->length, 0);
    msg_set_layout(m, rc == O2H_OK ? c.types_at : 0, rc == O2H_OK ? c.args_at : 0);
    return rc;
}

bool o2h_bundle_next(const o2h_msg *bundle, uint32_t *pos, const uint8_t **elem,
                     uint32_t *elem_len) {
    const char *addr = o2h_msg_address(bundle);
    uint32_t start = O2H_MSG_ADDRESS_OFFSET + pad4((uint32_t)strlen(addr) + 1);
    if (*pos < start) *pos = start;
    if (*pos + 4 > bundle->length) return false;
    uint32_t len = o2h_rd_u32(bundle->data + *pos);
    *elem = bundle->data + *pos + 4;
    *elem_len = len;
    *pos += 4 + pad4(len);
    return true;
}
