#include "post_queue.h"

#include "msg_internal.h"

void o2h__post_queue_init(post_queue *q, uint32_t limit) {
    atomic_init(&q->head, NULL);
    atomic_init(&q->count, 0);
    atomic_init(&q->dropped, 0);
    q->limit = limit;
}

int o2h__post_queue_push(post_queue *q, o2h_msg *msg) {
    if (atomic_fetch_add(&q->count, 1) >= q->limit) {
        atomic_fetch_sub(&q->count, 1);
        atomic_fetch_add(&q->dropped, 1);
        o2h_msg_unref(msg);
        return -1;
    }
    o2h_msg *old = atomic_load_explicit(&q->head, memory_order_relaxed);
    do {
        msg_set_next(msg, old);
    } while (!atomic_compare_exchange_weak_explicit(&q->head, &old, msg, memory_order_release,
                                                    memory_order_relaxed));
    return 0;
}

o2h_msg *o2h__post_queue_take_all(post_queue *q) {
    o2h_msg *stack = atomic_exchange_explicit(&q->head, NULL, memory_order_acquire);
    o2h_msg *fifo = NULL;
    uint32_t n = 0;
    while (stack) {
        o2h_msg *next = msg_next(stack);
        msg_set_next(stack, fifo);
        fifo = stack;
        stack = next;
        n++;
    }
    atomic_fetch_sub(&q->count, n);
    return fifo;
}

void o2h__post_queue_fini(post_queue *q) {
    o2h_msg *m = o2h__post_queue_take_all(q);
    while (m) {
        o2h_msg *next = msg_next(m);
        msg_set_next(m, NULL);
        o2h_msg_unref(m);
        m = next;
    }
}
