/* The O2ws text form of messages (see o2ws_codec.h). */
#include "o2ws_codec.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ws_frame.h"

int o2ws_split(char *text, size_t len, char **fields, int max) {
    if (len == 0 || text[len - 1] != O2WS_ETX) return -1;
    int n = 0;
    char *start = text;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\0') return -1;
        if (text[i] != O2WS_ETX) continue;
        if (n == max) return -1;
        text[i] = '\0';
        fields[n++] = start;
        start = text + i + 1;
    }
    return n;
}

int o2ws_buf_reserve(o2ws_buf *b, size_t more) {
    if (b->len + more <= b->cap) return O2H_OK;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) return O2H_NO_MEMORY;
    b->data = p;
    b->cap = cap;
    return O2H_OK;
}

int o2ws_buf_append(o2ws_buf *b, const void *p, size_t n) {
    if (o2ws_buf_reserve(b, n) != O2H_OK) return O2H_NO_MEMORY;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return O2H_OK;
}

void o2ws_buf_free(o2ws_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void o2ws_format_time(char *out, size_t size, double t) {
    int len = snprintf(out, size, "%.6f", t);
    if (len <= 0 || (size_t)len >= size || !strchr(out, '.')) return;
    while (len > 0 && out[len - 1] == '0')
        len--;
    if (len > 0 && out[len - 1] == '.') len--;
    out[len] = '\0';
}

/* ---- text to message ---- */

static int parse_double(const char *s, double *out) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE) return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, double lo, double hi, int64_t *out) {
    double v;
    if (parse_double(s, &v) != 0 || !isfinite(v) || v < lo || v > hi) return -1;
    *out = (int64_t)v;
    /* a large integer written out in full keeps all its digits */
    char *end;
    errno = 0;
    long long exact = strtoll(s, &end, 10);
    if (!*end && errno == 0) *out = exact;
    return 0;
}

static int parse_bool(const char *s, bool *out) {
    if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcmp(s, "T") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0 || strcmp(s, "F") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

o2h_msg *o2ws_to_msg(const o2h_host *host, o2h_builder *b, char *const *fields, int n,
                     const char **why) {
    *why = "too few fields";
    if (n < 4) return NULL;
    const char *address = fields[0], *types = fields[1];
    double time;
    if ((size_t)(n - 4) != strlen(types)) {
        *why = "the number of values does not match the types";
        return NULL;
    }
    if (parse_double(fields[2], &time) != 0 || !isfinite(time) || time < 0) {
        *why = "bad time";
        return NULL;
    }
    if (strcmp(fields[3], "T") != 0 && strcmp(fields[3], "F") != 0) {
        *why = "the reliable flag is not T or F";
        return NULL;
    }
    host->msg->builder_start(b);
    int rc = O2H_OK;
    for (int k = 0; types[k] && rc == O2H_OK; k++) {
        const char *v = fields[4 + k];
        int64_t i;
        double d;
        bool t;
        *why = "bad number";
        switch (types[k]) {
        case 'i':
            if (parse_int(v, INT32_MIN, INT32_MAX, &i) != 0) return NULL;
            rc = host->msg->add_int32(b, (int32_t)i);
            break;
        case 'h':
            if (parse_int(v, -9223372036854775808.0, 9223372036854775807.0, &i) != 0) return NULL;
            rc = host->msg->add_int64(b, i);
            break;
        case 'f':
            if (parse_double(v, &d) != 0) return NULL;
            rc = host->msg->add_float(b, (float)d);
            break;
        case 'd':
            if (parse_double(v, &d) != 0) return NULL;
            rc = host->msg->add_double(b, d);
            break;
        case 't':
            if (parse_double(v, &d) != 0) return NULL;
            rc = host->msg->add_time(b, d);
            break;
        case 'B':
        case 'T':
        case 'F':
            *why = "bad boolean";
            if (parse_bool(v, &t) != 0) return NULL;
            rc = types[k] == 'B' ? host->msg->add_bool(b, t) : host->msg->add_tf(b, t);
            break;
        case 'N': rc = host->msg->add_nil(b); break;
        case 'I': rc = host->msg->add_infinitum(b); break;
        case 'S': rc = host->msg->add_symbol(b, v); break;
        default: /* 's', and as O2 does, anything it cannot parse */
            rc = host->msg->add_string(b, v);
            break;
        }
    }
    *why = "cannot build the message (bad address?)";
    if (rc != O2H_OK) return NULL;
    return host->msg->builder_finish(b, time, address,
                                     strcmp(fields[3], "T") == 0 ? O2H_FLAG_RELIABLE : 0);
}

/* ---- message to text ---- */

static int append_text(o2ws_buf *out, const char *s) {
    size_t n = strlen(s);
    bool clean = ws_utf8_valid((const uint8_t *)s, n) && !memchr(s, O2WS_ETX, n);
    if (o2ws_buf_reserve(out, n + 1) != O2H_OK) return O2H_NO_MEMORY;
    memcpy(out->data + out->len, s, n);
    if (!clean)
        for (size_t i = 0; i < n; i++) {
            uint8_t *c = &out->data[out->len + i];
            if (*c == O2WS_ETX || *c >= 0x80) *c = '?';
        }
    out->len += n;
    out->data[out->len++] = O2WS_ETX;
    return O2H_OK;
}

static int append_fmt(o2ws_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int append_fmt(o2ws_buf *out, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) n = snprintf(tmp, sizeof tmp, "?");
    tmp[n++] = O2WS_ETX;
    return o2ws_buf_append(out, tmp, (size_t)n);
}

int o2ws_from_msg(const o2h_host *host, const o2h_msg *msg, o2ws_buf *out) {
    if (o2h_msg_is_bundle(msg)) return O2H_BAD_TYPE;
    const char *types = host->msg->msg_types(msg);
    if (!types) return O2H_BAD_TYPE;
    if (*types == ',') types++;
    size_t start = out->len;
    char tbuf[48];
    o2ws_format_time(tbuf, sizeof tbuf, o2h_msg_time(msg));
    if (append_text(out, o2h_msg_address(msg)) != O2H_OK || append_text(out, types) != O2H_OK ||
        append_text(out, tbuf) != O2H_OK ||
        append_text(out, o2h_msg_reliable(msg) ? "T" : "F") != O2H_OK)
        goto nomem;
    /* Vectors and arrays shift the reader away from the type string: print "?" for all. */
    bool simple = !strpbrk(types, "v[]");
    o2h_reader rd;
    if (simple && host->msg->reader_init(&rd, msg, NULL, 0) != O2H_OK) simple = false;
    for (const char *t = types; *t; t++) {
        o2h_arg a;
        int rc = O2H_OK;
        if (!simple || *t == 'b' || host->msg->reader_next(&rd, *t, &a) != O2H_OK) {
            if (simple && *t == 'b') host->msg->reader_next(&rd, 'b', &a);
            rc = append_fmt(out, "?");
        } else {
            switch (*t) {
            case 'i': rc = append_fmt(out, "%" PRId32, a.i); break;
            case 'h': rc = append_fmt(out, "%" PRId64, a.h); break;
            case 'f': rc = append_fmt(out, "%.9g", (double)a.f); break;
            case 'd': rc = append_fmt(out, "%.17g", a.d); break;
            case 't': rc = append_fmt(out, "%.6f", a.t); break;
            case 's':
            case 'S': rc = append_text(out, a.s); break;
            case 'c': rc = append_fmt(out, "%c", a.c > 0x20 && a.c < 0x7f ? (char)a.c : '?'); break;
            case 'm': rc = append_fmt(out, "%" PRIu32, a.m); break;
            case 'B': rc = append_fmt(out, "%d", a.B ? 1 : 0); break;
            case 'T': rc = append_fmt(out, "1"); break;
            case 'F': rc = append_fmt(out, "0"); break;
            default: rc = append_fmt(out, "%s", ""); break; /* N, I */
            }
        }
        if (rc != O2H_OK) goto nomem;
    }
    return O2H_OK;
nomem:
    out->len = start;
    return O2H_NO_MEMORY;
}
