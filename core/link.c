/* Links: creation, the core's deferred close, freeing, and sending with counts. */
#include "link.h"

#include <stdlib.h>
#include <string.h>

#include "router.h"

o2h_link *o2h__link_new(o2h_plugin *p, void *ctx, const char *description) {
    o2h_link *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->plugin = p;
    l->ctx = ctx;
    p->counts.links_opened++;
    l->description = strdup(description ? description : p->type);
    if (!l->description) {
        free(l);
        return NULL;
    }
    return l;
}

static void free_memory(void *ctx) {
    o2h_link *l = ctx;
    free(l->description);
    free(l);
}

void o2h__link_free(o2h_link *link) {
    if (!link || link->freed) return;
    o2h_router *r = link->plugin->router;
    link->freed = true;
    link->plugin->counts.links_closed++;
    o2h__link_hold_release(r, link);
    o2h__proto_link_closed(r, link);
    o2h__bridge_link_closed(r, link);
    o2h__services_remove_link_everywhere(r, link);
    /* Messages being dispatched may still name it as their origin. */
    o2h__loop_defer(&r->lp, &link->free_later, free_memory, link);
}

static void close_now(void *ctx) {
    o2h_link *l = ctx;
    if (l->freed) return; /* the transport closed it first */
    o2h_plugin *p = l->plugin;
    if (p->router->closing || !p->started) return; /* stopping closes everything anyway */
    if (p->transport.close) p->transport.close(p->instance, l->ctx);
}

void o2h__link_close(o2h_link *link) {
    if (!link || link->freed || link->close_pending) return;
    link->close_pending = true;
    o2h__loop_defer(&link->plugin->router->lp, &link->close_later, close_now, link);
}

/* A reliable message for a full link waits; only a full hold refuses it, loudly. */
static int hold(o2h_router *r, o2h_link *link, o2h_msg *msg) {
    if (o2h__link_hold_push(r, link, msg) == O2H_OK) return O2H_OK;
    r->stats.dropped_queue_full++;
    link->dropped++;
    link->plugin->counts.dropped++;
    o2h__router_log_limited(r, &link->drop_log, O2H_LOG_WARN, link->plugin->type,
                            "%s: refusing reliable messages (O2H_BLOCKED): %u are already waiting "
                            "for the other side to read, e.g. %s",
                            link->description, link->hold.count, o2h_msg_address(msg));
    return O2H_BLOCKED;
}

size_t o2h__link_queued(const o2h_link *link) {
    const o2h_plugin *p = link->plugin;
    if (link->freed || !p->transport.queued) return 0;
    return p->transport.queued(p->instance, link->ctx);
}

int o2h__link_send(o2h_router *r, o2h_link *link, o2h_msg *msg) {
    if (link->freed || link->close_pending) {
        r->stats.dropped_send_error++;
        link->plugin->counts.dropped++;
        return O2H_SEND_FAIL;
    }
    bool reliable = o2h_msg_reliable(msg);
    o2h_plugin *p = link->plugin;
    int rc = O2H_QUEUE_FULL; /* behind held messages: as if the queue were full */
    if (!o2h__link_hold_busy(link))
        rc = p->transport.send ? p->transport.send(p->instance, link->ctx, msg) : O2H_SEND_FAIL;
    if (rc == O2H_OK) {
        r->stats.forwarded++;
        p->counts.forwarded++;
        return rc;
    }
    bool full = rc == O2H_QUEUE_FULL || rc == O2H_BLOCKED;
    if (full && reliable && !link->freed) return hold(r, link, msg);
    if (full)
        r->stats.dropped_queue_full++;
    else
        r->stats.dropped_send_error++;
    link->dropped++;
    p->counts.dropped++;
    o2h__router_log_limited(
        r, &link->drop_log, O2H_LOG_WARN, p->type,
        "%s: dropping messages (%s), %llu so far, e.g. %s %s", link->description,
        full ? "its send queue is full: the other side reads too slowly" : o2h_strerror(rc),
        (unsigned long long)link->dropped, o2h_msg_address(msg),
        reliable ? "(reliable)" : "(best effort)");
    return rc;
}
