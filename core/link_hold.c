/* Holding reliable messages for a full link, and pausing their senders (link_hold.h). */
#include "link_hold.h"

#include <stdlib.h>
#include <string.h>

#include "router.h"

#define RETRY_S 0.02 /* when the transport does not say drained */

bool o2h__link_hold_busy(const o2h_link *link) {
    return link->hold.count > 0;
}

/* Append a reference to `msg`; false when out of memory. */
static bool ring_push(link_hold *h, o2h_msg *msg) {
    if (h->count == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        o2h_msg **ring = malloc(cap * sizeof *ring);
        if (!ring) return false;
        for (uint32_t i = 0; i < h->count; i++)
            ring[i] = h->ring[(h->head + i) % h->cap];
        free(h->ring);
        h->ring = ring;
        h->head = 0;
        h->cap = cap;
    }
    h->ring[(h->head + h->count) % h->cap] = o2h_msg_ref(msg);
    h->count++;
    h->bytes += msg->length;
    return true;
}

static o2h_msg *ring_pop(link_hold *h) {
    o2h_msg *m = h->ring[h->head];
    h->head = (h->head + 1) % h->cap;
    h->count--;
    h->bytes -= m->length;
    return m;
}

static void set_paused(o2h_link *src, bool paused) {
    o2h_plugin *p = src->plugin;
    if (!src->freed && p->transport.pause) p->transport.pause(p->instance, src->ctx, paused);
}

/* Pause `src` on behalf of `link` (once per pair). */
static void pause_source(o2h_link *link, o2h_link *src) {
    link_hold *h = &link->hold;
    if (!src || src == link || src->freed || !src->plugin->transport.pause) return;
    for (uint32_t i = 0; i < h->n_paused; i++)
        if (h->paused[i] == src) return;
    if (h->n_paused == h->cap_paused) {
        uint32_t cap = h->cap_paused ? h->cap_paused * 2 : 4;
        o2h_link **more = realloc(h->paused, cap * sizeof *more);
        if (!more) return; /* not paused: the hold's bound still holds */
        h->paused = more;
        h->cap_paused = cap;
    }
    h->paused[h->n_paused++] = src;
    if (src->pause_count++ == 0) {
        src->plugin->router->stats.paused_links++;
        set_paused(src, true);
    }
}

static void resume_sources(link_hold *h) {
    for (uint32_t i = 0; i < h->n_paused; i++) {
        o2h_link *src = h->paused[i];
        if (--src->pause_count == 0) set_paused(src, false);
    }
    h->n_paused = 0;
}

static void on_retry(void *ctx) {
    o2h__link_hold_drained(ctx);
}

static void list_add(o2h_router *r, o2h_link *link) {
    link->hold.next_holding = r->holding;
    r->holding = link;
}

static void list_remove(o2h_router *r, o2h_link *link) {
    for (o2h_link **pp = &r->holding; *pp; pp = &(*pp)->hold.next_holding)
        if (*pp == link) {
            *pp = link->hold.next_holding;
            link->hold.next_holding = NULL;
            return;
        }
}

int o2h__link_hold_push(o2h_router *r, o2h_link *link, o2h_msg *msg) {
    link_hold *h = &link->hold;
    if (h->count >= HOLD_MAX_MSGS || h->bytes + msg->length > HOLD_MAX_BYTES || !ring_push(h, msg))
        return O2H_BLOCKED;
    if (h->count == 1) {
        list_add(r, link);
        if (!h->retry) h->retry = o2h__loop_timer_start(&r->lp, RETRY_S, RETRY_S, on_retry, link);
    }
    r->stats.held++;
    pause_source(link, msg_origin(msg));
    return O2H_OK;
}

void o2h__link_hold_drained(o2h_link *link) {
    link_hold *h = &link->hold;
    o2h_plugin *p = link->plugin;
    o2h_router *r = p->router;
    while (h->count && !link->freed) {
        o2h_msg *m = h->ring[h->head];
        int rc = p->transport.send ? p->transport.send(p->instance, link->ctx, m) : O2H_SEND_FAIL;
        if (rc == O2H_QUEUE_FULL || rc == O2H_BLOCKED) return; /* still full: wait again */
        if (rc == O2H_OK) {
            r->stats.forwarded++;
            p->counts.forwarded++;
        } else {
            r->stats.dropped_send_error++;
            p->counts.dropped++;
        }
        o2h_msg_unref(ring_pop(h));
    }
    if (h->retry) o2h__loop_timer_stop(h->retry);
    h->retry = NULL;
    list_remove(r, link);
    resume_sources(h);
}

void o2h__link_hold_release(o2h_router *r, o2h_link *link) {
    link_hold *h = &link->hold;
    r->stats.dropped_send_error += h->count; /* the link broke: as any lost connection */
    while (h->count)
        o2h_msg_unref(ring_pop(h));
    if (h->retry) o2h__loop_timer_stop(h->retry);
    h->retry = NULL;
    list_remove(r, link);
    resume_sources(h);
    free(h->ring);
    free(h->paused);
    memset(h, 0, sizeof *h);
    /* Links holding messages may have paused this one. */
    for (o2h_link *l = r->holding; l; l = l->hold.next_holding) {
        link_hold *o = &l->hold;
        for (uint32_t i = 0; i < o->n_paused; i++)
            if (o->paused[i] == link) {
                o->paused[i] = o->paused[--o->n_paused];
                break;
            }
    }
}
