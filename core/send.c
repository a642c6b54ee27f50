/* The embedding API's send functions and the queue for sends from handlers. */
#include <stdarg.h>

#include "msg_internal.h"
#include "router.h"

static void pending_push(o2h_router *r, o2h_msg *msg) {
    msg_set_next(msg, NULL);
    if (r->pending_tail)
        msg_set_next(r->pending_tail, msg);
    else
        r->pending_head = msg;
    r->pending_tail = msg;
    r->pending_count++;
}

static o2h_msg *pending_pop(o2h_router *r) {
    o2h_msg *m = r->pending_head;
    if (!m) return NULL;
    r->pending_head = msg_next(m);
    if (!r->pending_head) r->pending_tail = NULL;
    msg_set_next(m, NULL);
    r->pending_count--;
    return m;
}

int o2h_send_msg(o2h_router *r, o2h_msg *msg) {
    if (!msg) return O2H_BAD_ARGS;
    /* No re-entrancy: a message sent by a handler waits until the handler returns. */
    if (r->dispatch_depth > 0) {
        if (r->pending_count >= PENDING_LIMIT) {
            r->stats.dropped_queue_full++;
            o2h_msg_unref(msg);
            return O2H_QUEUE_FULL;
        }
        pending_push(r, msg);
        return O2H_OK;
    }
    int rc = router_route(r, msg);
    /* What handlers sent did not come from the link the first message came by. */
    o2h_link *from = r->current_link;
    r->current_link = NULL;
    o2h_msg *next;
    while ((next = pending_pop(r)))
        router_route(r, next);
    r->current_link = from;
    return rc;
}

static int add_vararg(o2h_builder *b, char type, va_list *ap) {
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
    case O2H_BLOB: {
        const o2h_blob *blob = va_arg(*ap, const o2h_blob *);
        return blob ? o2h_add_blob(b, blob->data, blob->size) : O2H_BAD_ARGS;
    }
    default: return O2H_BAD_TYPE; /* vectors and arrays need the builder */
    }
}

int o2h_sendv(o2h_router *r, const char *address, double time, uint32_t flags, const char *types,
              va_list ap) {
    o2h_builder *b = r->vbuilder;
    o2h_builder_start(b);
    va_list args;
    va_copy(args, ap);
    int rc = O2H_OK;
    for (const char *t = types ? types : ""; *t && rc == O2H_OK; t++)
        rc = add_vararg(b, *t, &args);
    va_end(args);
    if (rc != O2H_OK) return rc;
    o2h_msg *msg = o2h_builder_finish(b, time, address, flags);
    if (!msg) return o2h_builder_error(b) != O2H_OK ? o2h_builder_error(b) : O2H_BAD_NAME;
    return o2h_send_msg(r, msg);
}

int o2h_send(o2h_router *r, const char *address, double time, const char *types, ...) {
    va_list ap;
    va_start(ap, types);
    int rc = o2h_sendv(r, address, time, 0, types, ap);
    va_end(ap);
    return rc;
}

int o2h_send_cmd(o2h_router *r, const char *address, double time, const char *types, ...) {
    va_list ap;
    va_start(ap, types);
    int rc = o2h_sendv(r, address, time, O2H_FLAG_RELIABLE, types, ap);
    va_end(ap);
    return rc;
}

o2h_builder *o2h_send_start(o2h_router *r) {
    o2h_builder_start(r->builder);
    return r->builder;
}

int o2h_send_finish(o2h_router *r, double time, const char *address, bool reliable) {
    o2h_msg *msg = o2h_builder_finish(r->builder, time, address, reliable ? O2H_FLAG_RELIABLE : 0);
    if (!msg) {
        int err = o2h_builder_error(r->builder);
        return err != O2H_OK ? err : O2H_BAD_NAME;
    }
    return o2h_send_msg(r, msg);
}
