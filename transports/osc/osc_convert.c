/*
 * Conversions between OSC and O2: OSC messages to O2 messages (for ports),
 * O2 messages and bundles to OSC packets (for delegates), NTP timetags to
 * O2 time and back. Pure functions; output goes through a bounded writer
 * that counts what it would need, so one pass sizes and fills a buffer.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "osc_codec.h"

#define TWO32 4294967296.0

/* ---- time ---- */

uint64_t o2h_osc_ntp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t frac = ((uint64_t)ts.tv_nsec << 32) / 1000000000u;
    return (((uint64_t)ts.tv_sec + OSC_NTP_UNIX_OFFSET) << 32) | frac;
}

double o2h_osc_ntp_to_o2(const osc_clock *c, uint64_t tag) {
    if (tag <= OSC_IMMEDIATELY) return 0;
    int64_t delta = (int64_t)(tag - c->ntp_now); /* wraps into a signed difference */
    double t = c->o2_now + (double)delta / TWO32;
    return t > 0 ? t : 0;
}

uint64_t o2h_osc_o2_to_ntp(const osc_clock *c, double t) {
    if (!(t > 0)) return OSC_IMMEDIATELY;
    double delta = (t - c->o2_now) * TWO32;
    if (delta > 9.2e18) delta = 9.2e18; /* inside int64 */
    if (delta < -9.2e18) delta = -9.2e18;
    uint64_t tag = c->ntp_now + (uint64_t)(int64_t)llround(delta);
    return tag > OSC_IMMEDIATELY ? tag : OSC_IMMEDIATELY + 1;
}

/* ---- a bounded writer ---- */

typedef struct writer {
    uint8_t *out;
    size_t cap;
    size_t len; /* what has been written, or would have been */
} writer;

static void put(writer *w, const void *src, size_t n) {
    if (n && w->len + n <= w->cap) memcpy(w->out + w->len, src, n);
    w->len += n;
}

static void put_zeros(writer *w, size_t n) {
    if (n && w->len + n <= w->cap) memset(w->out + w->len, 0, n);
    w->len += n;
}

static void put_u32(writer *w, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}

static void put_u64(writer *w, uint64_t v) {
    put_u32(w, (uint32_t)(v >> 32));
    put_u32(w, (uint32_t)v);
}

static void patch_u32(writer *w, size_t at, uint32_t v) {
    if (at + 4 <= w->cap) {
        uint8_t *p = w->out + at;
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
    }
}

static void pad_to_4(writer *w) {
    put_zeros(w, (4 - w->len % 4) % 4);
}

/* A string, its NUL and zero padding (the writer's length is 4-aligned here). */
static void put_padded(writer *w, const char *s, size_t n) {
    put(w, s, n);
    put_zeros(w, 1);
    pad_to_4(w);
}

static uint32_t rd32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t rd64(const uint8_t *p) {
    return ((uint64_t)rd32(p) << 32) | rd32(p + 4);
}

static double rd_double(const uint8_t *p) {
    uint64_t bits = rd64(p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static uint64_t double_bits(double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

static size_t pad4(size_t n) {
    return (n + 3) & ~(size_t)3;
}

/* ---- OSC to O2 ---- */

/* Size of one OSC argument at p (the message was checked by o2h_osc_parse). */
static size_t osc_arg_size(char t, const uint8_t *p) {
    switch (t) {
    case 'i':
    case 'f':
    case 'c':
    case 'm': return 4;
    case 'h':
    case 'd':
    case 't': return 8;
    case 's':
    case 'S': return pad4(strlen((const char *)p) + 1);
    case 'b': return 4 + pad4(rd32(p));
    default: return 0;
    }
}

size_t o2h_osc_to_o2(const osc_view *m, const char *service, double timestamp, uint32_t misc,
                     const osc_clock *c, uint8_t *out, size_t cap) {
    writer w = {out, cap, 0};
    put_u32(&w, misc);
    put_u64(&w, double_bits(timestamp));
    put(&w, "/", 1);
    put(&w, service, strlen(service));
    const char *addr = strcmp(m->address, "/") == 0 ? "" : m->address;
    put_padded(&w, addr, strlen(addr));
    put(&w, ",", 1);
    put_padded(&w, m->types, strlen(m->types));
    if (!strchr(m->types, 't')) {
        put(&w, m->args, m->args_len);
        return w.len;
    }
    const uint8_t *p = m->args;
    for (const char *t = m->types; *t; t++) {
        size_t n = osc_arg_size(*t, p);
        if (*t == 't')
            put_u64(&w, double_bits(o2h_osc_ntp_to_o2(c, rd64(p))));
        else
            put(&w, p, n);
        p += n;
    }
    return w.len;
}

/* ---- O2 to OSC ---- */

typedef struct encoder {
    writer w;
    const osc_clock *c;
} encoder;

/* Size of one O2 argument at p in *n; false if it would run past `end`. */
static bool o2_arg_size(char t, const uint8_t *p, const uint8_t *end, size_t *n) {
    size_t left = (size_t)(end - p);
    switch (t) {
    case 's':
    case 'S': *n = pad4(strnlen((const char *)p, left) + 1); break;
    case 'b':
    case 'v':
        if (left < 4) return false;
        *n = 4 + (t == 'b' ? pad4(rd32(p)) : rd32(p));
        break;
    case 'B': *n = 4; break;
    default: *n = osc_arg_size(t, p); break;
    }
    return *n <= left;
}

/* The type tags of O2 arguments in OSC: 'B' as T/F, vectors as arrays. */
static bool put_osc_types(encoder *e, const char *types, const uint8_t *p, const uint8_t *end) {
    put(&e->w, ",", 1);
    for (const char *t = types; *t; t++) {
        size_t n;
        if (!strchr("ifcmhdtTFNI[]sSbBv", *t) || !o2_arg_size(*t, p, end, &n)) return false;
        if (*t == 'B') {
            put(&e->w, rd32(p) ? "T" : "F", 1);
        } else if (*t == 'v') {
            char elem = t[1];
            if (!elem || !strchr("ihfd", elem)) return false;
            uint32_t count = rd32(p) / ((elem == 'i' || elem == 'f') ? 4u : 8u);
            put(&e->w, "[", 1);
            for (uint32_t i = 0; i < count; i++)
                put(&e->w, &elem, 1);
            put(&e->w, "]", 1);
            t++;
        } else {
            put(&e->w, t, 1);
        }
        p += n;
    }
    put_zeros(&e->w, 1);
    pad_to_4(&e->w);
    return true;
}

/* The arguments, after put_osc_types has checked them. */
static void put_osc_args(encoder *e, const char *types, const uint8_t *p, const uint8_t *end) {
    for (const char *t = types; *t; t++) {
        size_t n;
        if (!o2_arg_size(*t, p, end, &n)) return;
        if (*t == 't')
            put_u64(&e->w, o2h_osc_o2_to_ntp(e->c, rd_double(p)));
        else if (*t == 'v')
            put(&e->w, p + 4, n - 4); /* the elements, without the byte count */
        else if (*t != 'B')
            put(&e->w, p, n);
        p += n;
        if (*t == 'v') t++;
    }
}

static bool encode(encoder *e, const uint8_t *m, size_t len, uint64_t parent, int depth);

static void bundle_head(encoder *e, uint64_t tag) {
    put(&e->w, "#bundle", 8);
    put_u64(&e->w, tag);
}

/* One bundle element: a length, then the element. */
static bool encode_element(encoder *e, const uint8_t *m, size_t len, uint64_t tag, int depth) {
    size_t at = e->w.len;
    put_u32(&e->w, 0);
    if (!encode(e, m, len, tag, depth)) return false;
    patch_u32(&e->w, at, (uint32_t)(e->w.len - at - 4));
    return true;
}

static bool encode_bundle(encoder *e, const uint8_t *m, size_t len, size_t body, uint64_t parent,
                          int depth) {
    double ts = rd_double(m + 4);
    uint64_t tag = e->c->synced ? o2h_osc_o2_to_ntp(e->c, ts) : OSC_IMMEDIATELY;
    if (tag < parent) tag = parent;
    bundle_head(e, tag);
    for (size_t pos = body; pos < len;) {
        if (len - pos < 4) return false;
        uint32_t n = rd32(m + pos);
        if (n > len - pos - 4) return false;
        if (!encode_element(e, m + pos + 4, n, tag, depth + 1)) return false;
        pos += 4 + (size_t)n;
    }
    return true;
}

static bool encode_message(encoder *e, const uint8_t *m, size_t len, size_t body) {
    const char *addr = (const char *)m + 12;
    const char *rest = addr + 1 + strcspn(addr + 1, "/");
    if (!*rest) rest = "/";
    put_padded(&e->w, rest, strlen(rest));
    if (body >= len || m[body] != ',') return false;
    const uint8_t *end = m + len;
    const char *types = (const char *)m + body + 1;
    size_t tlen = strnlen(types, len - body - 1);
    if (tlen == len - body - 1) return false;
    const uint8_t *args = m + body + pad4(tlen + 2);
    if (args > end) return false;
    if (!put_osc_types(e, types, args, end)) return false;
    put_osc_args(e, types, args, end);
    return true;
}

/* `parent`: the enclosing bundle's timetag, 0 at the top. */
static bool encode(encoder *e, const uint8_t *m, size_t len, uint64_t parent, int depth) {
    if (len < 16 || depth > OSC_MAX_DEPTH) return false;
    const char *addr = (const char *)m + 12;
    size_t alen = strnlen(addr, len - 12);
    if (alen == len - 12) return false;
    size_t body = 12 + pad4(alen + 1);
    if (addr[0] == '#') return encode_bundle(e, m, len, body, parent, depth);
    double ts = rd_double(m + 4);
    if (e->c->synced && ts > e->c->o2_now) {
        uint64_t tag = o2h_osc_o2_to_ntp(e->c, ts);
        if (tag > parent) { /* later than its bundle (or not in one): a bundle of its own */
            bundle_head(e, tag);
            size_t at = e->w.len;
            put_u32(&e->w, 0);
            if (!encode_message(e, m, len, body)) return false;
            patch_u32(&e->w, at, (uint32_t)(e->w.len - at - 4));
            return true;
        }
    }
    return encode_message(e, m, len, body);
}

size_t o2h_osc_from_o2(const uint8_t *o2, size_t len, const osc_clock *c, uint8_t *out,
                       size_t cap) {
    encoder e = {.w = {out, cap, 0}, .c = c};
    return encode(&e, o2, len, 0, 0) ? e.w.len : 0;
}
