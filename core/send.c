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

int o2h__router_send_later(o2h_router *r, o2h_msg *msg) {
    if (r->pending_count >= PENDING_LIMIT) {
        r->stats.dropped_queue_full++;
        o2h_msg_unref(msg);
        return O2H_QUEUE_FULL;
    }
    msg_set_origin(msg, NULL);
    pending_push(r, msg);
    return O2H_OK;
}

int o2h__router_send_from(o2h_router *r, o2h_msg *msg, o2h_link *from) {
    msg_set_origin(msg, from);
    /* No re-entrancy: a message sent by a handler waits until the handler returns. */
    if (r->dispatch_depth > 0) return o2h__router_send_later(r, msg);
    int rc = o2h__router_route(r, msg);
    o2h__router_route_pending(r);
    return rc;
}

void o2h__router_route_pending(o2h_router *r) {
    if (r->dispatch_depth > 0) return;
    /* What handlers sent did not come from the link the first message came by. */
    o2h_msg *next;
    while ((next = pending_pop(r))) {
        msg_set_origin(next, NULL);
        o2h__router_route(r, next);
    }
}

/*
 * A send by the embedder, outside the loop, is a turn of its own: what it
 * made the transports queue (the message, what its handlers sent) goes out
 * before the call returns, each link's share in one write. Inside a turn
 * (a handler, a timer, a socket event) the loop's deferred phase writes it.
 */
void o2h__router_turn_begin(o2h_router *r) {
    r->lp.turn_open++;
}

void o2h__router_turn_end(o2h_router *r) {
    r->lp.turn_open--;
    if (r->lp.turn_open == 0 && r->dispatch_depth == 0 && !r->lp.in_poll && !r->lp.in_deferred)
        o2h__loop_run_deferred(&r->lp);
}

int o2h_send_msg(o2h_router *r, o2h_msg *msg) {
    if (!msg) return O2H_BAD_ARGS;
    o2h__router_turn_begin(r);
    int rc = o2h__router_send_from(r, msg, NULL);
    o2h__router_turn_end(r);
    return rc;
}

static int build_va(o2h_router *r, o2h_msg **out, const char *address, double time, uint32_t flags,
                    const char *types, va_list ap) {
    o2h_builder *b = r->vbuilder;
    o2h_builder_start(b);
    va_list args;
    va_copy(args, ap);
    int rc = o2h_builder_add_va(b, types, &args);
    va_end(args);
    if (rc != O2H_OK) return rc;
    *out = o2h_builder_finish(b, time, address, flags);
    if (!*out) return o2h_builder_error(b) != O2H_OK ? o2h_builder_error(b) : O2H_BAD_NAME;
    return O2H_OK;
}

int o2h_sendv(o2h_router *r, const char *address, double time, uint32_t flags, const char *types,
              va_list ap) {
    o2h_msg *msg;
    int rc = build_va(r, &msg, address, time, flags, types, ap);
    return rc != O2H_OK ? rc : o2h_send_msg(r, msg);
}

int o2h__router_send_internal(o2h_router *r, const char *address, const char *types, ...) {
    va_list ap;
    va_start(ap, types);
    o2h_msg *msg;
    int rc = build_va(r, &msg, address, 0, 0, types, ap);
    va_end(ap);
    return rc != O2H_OK ? rc : o2h__router_send_from(r, msg, NULL);
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
