/* A one-line human readable form of a message, for logs and tools. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "msg_internal.h"

typedef struct out {
    char *buf;
    size_t size;
    size_t need;
} out;

static void put(out *o, const char *fmt, ...) O2H_PRINTF(2, 3);
static void put(out *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *at = o->need < o->size ? o->buf + o->need : NULL;
    int n = vsnprintf(at, at ? o->size - o->need : 0, fmt, ap);
    va_end(ap);
    if (n > 0) o->need += (size_t)n;
}

static void put_arg(out *o, char t, const o2h_arg *a) {
    switch (t) {
    case 'i': put(o, " %" PRId32, a->i); break;
    case 'h': put(o, " %" PRId64, a->h); break;
    case 'f': put(o, " %g", (double)a->f); break;
    case 'd': put(o, " %g", a->d); break;
    case 't': put(o, " @%g", a->t); break;
    case 's': put(o, " \"%s\"", a->s); break;
    case 'S': put(o, " '%s", a->s); break;
    case 'b': put(o, " <blob %" PRIu32 " bytes>", a->b.size); break;
    case 'c': put(o, " '%c'", (char)a->c); break;
    case 'm': put(o, " <midi %08" PRIx32 ">", a->m); break;
    case 'B': put(o, " %s", a->B ? "true" : "false"); break;
    case 'T': put(o, " #T"); break;
    case 'F': put(o, " #F"); break;
    case 'N': put(o, " nil"); break;
    case 'I': put(o, " inf"); break;
    case '[': put(o, " ["); break;
    case ']': put(o, " ]"); break;
    default: break;
    }
}

static void put_vector(out *o, const o2h_vector *v) {
    put(o, " <v%c", v->type);
    for (int32_t k = 0; k < v->len; k++) {
        switch (v->type) {
        case 'i': put(o, " %" PRId32, ((const int32_t *)v->data)[k]); break;
        case 'h': put(o, " %" PRId64, ((const int64_t *)v->data)[k]); break;
        case 'f': put(o, " %g", (double)((const float *)v->data)[k]); break;
        default: put(o, " %g", ((const double *)v->data)[k]); break;
        }
    }
    put(o, ">");
}

int o2h_msg_format(const o2h_msg *msg, char *buf, size_t size) {
    out o = {.buf = buf, .size = size};
    if (size) buf[0] = '\0';
    put(&o, "%s", o2h_msg_address(msg));
    double when = o2h_msg_time(msg);
    if (when != 0) put(&o, " @%.3f", when);
    if (o2h_msg_is_bundle(msg)) {
        uint32_t pos = 0, len, n = 0;
        const uint8_t *elem;
        while (o2h_bundle_next(msg, &pos, &elem, &len))
            n++;
        put(&o, " [%" PRIu32 " elements]", n);
        return (int)o.need;
    }
    put(&o, " ,%s", o2h_msg_types(msg));
    uint8_t scratch[2048];
    o2h_reader rd;
    o2h_reader_init(&rd, msg, scratch, sizeof scratch);
    for (char t; (t = o2h_reader_peek(&rd)) != 0;) {
        o2h_arg a = {0};
        if (t == 'v') {
            a.v.type = 0;
            if (o2h_reader_next(&rd, 'v', &a) != O2H_OK) {
                put(&o, " <vector>");
                break;
            }
            put_vector(&o, &a.v);
            continue;
        }
        if (o2h_reader_next(&rd, t, &a) != O2H_OK) break;
        put_arg(&o, t, &a);
    }
    return (int)o.need;
}
