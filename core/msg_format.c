/* A one-line human readable form of a message, for logs and tools. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "msg_internal.h"
#include "text_out.h"

static void put_arg(o2h__text_out *o, char t, const o2h_arg *a) {
    switch (t) {
    case 'i': o2h__text_put(o, " %" PRId32, a->i); break;
    case 'h': o2h__text_put(o, " %" PRId64, a->h); break;
    case 'f': o2h__text_put(o, " %g", (double)a->f); break;
    case 'd': o2h__text_put(o, " %g", a->d); break;
    case 't': o2h__text_put(o, " @%g", a->t); break;
    case 's': o2h__text_put(o, " \"%s\"", a->s); break;
    case 'S': o2h__text_put(o, " '%s", a->s); break;
    case 'b': o2h__text_put(o, " <blob %" PRIu32 " bytes>", a->b.size); break;
    case 'c': o2h__text_put(o, " '%c'", (char)a->c); break;
    case 'm': o2h__text_put(o, " <midi %08" PRIx32 ">", a->m); break;
    case 'B': o2h__text_put(o, " %s", a->B ? "true" : "false"); break;
    case 'T': o2h__text_put(o, " #T"); break;
    case 'F': o2h__text_put(o, " #F"); break;
    case 'N': o2h__text_put(o, " nil"); break;
    case 'I': o2h__text_put(o, " inf"); break;
    case '[': o2h__text_put(o, " ["); break;
    case ']': o2h__text_put(o, " ]"); break;
    default: break;
    }
}

static void put_vector(o2h__text_out *o, const o2h_vector *v) {
    o2h__text_put(o, " <v%c", v->type);
    for (int32_t k = 0; k < v->len; k++) {
        switch (v->type) {
        case 'i': o2h__text_put(o, " %" PRId32, ((const int32_t *)v->data)[k]); break;
        case 'h': o2h__text_put(o, " %" PRId64, ((const int64_t *)v->data)[k]); break;
        case 'f': o2h__text_put(o, " %g", (double)((const float *)v->data)[k]); break;
        default: o2h__text_put(o, " %g", ((const double *)v->data)[k]); break;
        }
    }
    o2h__text_put(o, ">");
}

int o2h_msg_format(const o2h_msg *msg, char *buf, size_t size) {
    o2h__text_out o = {.buf = buf, .size = size};
    if (size) buf[0] = '\0';
    o2h__text_put(&o, "%s", o2h_msg_address(msg));
    double when = o2h_msg_time(msg);
    if (when != 0) o2h__text_put(&o, " @%.3f", when);
    if (o2h_msg_is_bundle(msg)) {
        uint32_t pos = 0, len, n = 0;
        const uint8_t *elem;
        while (o2h_bundle_next(msg, &pos, &elem, &len))
            n++;
        o2h__text_put(&o, " [%" PRIu32 " elements]", n);
        return (int)o.len;
    }
    o2h__text_put(&o, " ,%s", o2h_msg_types(msg));
    uint8_t scratch[2048];
    o2h_reader rd;
    o2h_reader_init(&rd, msg, scratch, sizeof scratch);
    for (char t; (t = o2h_reader_peek(&rd)) != 0;) {
        o2h_arg a = {0};
        if (t == 'v') {
            a.v.type = 0;
            if (o2h_reader_next(&rd, 'v', &a) != O2H_OK) {
                o2h__text_put(&o, " <vector>");
                break;
            }
            put_vector(&o, &a.v);
            continue;
        }
        if (o2h_reader_next(&rd, t, &a) != O2H_OK) break;
        put_arg(&o, t, &a);
    }
    return (int)o.len;
}
