#include "scheduler.h"

#include <stdlib.h>

#include "router.h"

static bool earlier(const sched_entry *a, const sched_entry *b) {
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void swap(sched_entry *a, sched_entry *b) {
    sched_entry t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(sched *s, uint32_t i) {
    while (i > 0 && earlier(&s->heap[i], &s->heap[(i - 1) / 2])) {
        swap(&s->heap[i], &s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
}

static void sift_down(sched *s, uint32_t i) {
    for (;;) {
        uint32_t l = 2 * i + 1, best = i;
        if (l < s->len && earlier(&s->heap[l], &s->heap[best])) best = l;
        if (l + 1 < s->len && earlier(&s->heap[l + 1], &s->heap[best])) best = l + 1;
        if (best == i) return;
        swap(&s->heap[i], &s->heap[best]);
        i = best;
    }
}

static void on_due(void *ctx);

/* Arm the loop timer for the earliest message (or disarm). */
static void arm(o2h_router *r) {
    sched *s = &r->sched;
    o2h__loop_timer_stop(s->timer); /* safe inside its own callback */
    s->timer = NULL;
    if (s->len == 0) return;
    double delay = s->heap[0].time - o2h_time_get(r);
    s->timer = o2h__loop_timer_start(&r->lp, delay > 0 ? delay : 0, 0, on_due, r);
}

static void on_due(void *ctx) {
    o2h_router *r = ctx;
    sched *s = &r->sched;
    double now = o2h_time_get(r);
    while (s->len > 0 && s->heap[0].time <= now) {
        o2h_msg *m = s->heap[0].msg;
        s->heap[0] = s->heap[--s->len];
        sift_down(s, 0);
        o2h__router_send_from(r, m, NULL); /* its time has come: routed as an immediate message */
    }
    arm(r);
}

int o2h__sched_insert(o2h_router *r, o2h_msg *msg) {
    sched *s = &r->sched;
    if (s->len >= SCHED_LIMIT) {
        r->stats.dropped_queue_full++;
        o2h_msg_unref(msg);
        return O2H_QUEUE_FULL;
    }
    if (s->len == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 64;
        sched_entry *h = realloc(s->heap, cap * sizeof *h);
        if (!h) {
            o2h_msg_unref(msg);
            return O2H_NO_MEMORY;
        }
        s->heap = h;
        s->cap = cap;
    }
    s->heap[s->len] = (sched_entry){.time = o2h_msg_time(msg), .seq = s->next_seq++, .msg = msg};
    sift_up(s, s->len++);
    if (s->heap[0].msg == msg) arm(r); /* a new earliest message */
    return O2H_OK;
}

uint32_t o2h__sched_pending(const o2h_router *r) {
    return r->sched.len;
}

void o2h__sched_fini(o2h_router *r) {
    sched *s = &r->sched;
    for (uint32_t i = 0; i < s->len; i++)
        o2h_msg_unref(s->heap[i].msg);
    free(s->heap);
    o2h__loop_timer_stop(s->timer);
    *s = (sched){0};
}
