/*
 * The bounded lock-free ring (transports/websocket/handoff.c) that hands
 * upgraded sockets from libmicrohttpd's thread to the router's loop: FIFO,
 * full and empty exactly at the bounds, many laps, and two producer threads
 * against one consumer with nothing lost, duplicated or reordered.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include "handoff.h"

#define ITEM(p, k) ((void *)(uintptr_t)((((uintptr_t)(p)) << 24 | (uintptr_t)(k)) + 1))

Test(handoff_ring, bounds_and_order) {
    handoff_ring r;
    cr_assert_eq(handoff_init(&r, 5), 0);
    cr_assert_eq(handoff_capacity(&r), 8);
    cr_assert_null(handoff_pop(&r));
    for (uintptr_t lap = 0; lap < 1000; lap++) {
        for (uintptr_t k = 0; k < 8; k++)
            cr_assert(handoff_push(&r, ITEM(lap, k)), "push %lu of lap %lu", k, lap);
        cr_assert_not(handoff_push(&r, ITEM(9, 9)), "a full ring refuses");
        for (uintptr_t k = 0; k < 8; k++)
            cr_assert_eq(handoff_pop(&r), ITEM(lap, k));
        cr_assert_null(handoff_pop(&r));
    }
    /* half-full laps: head and tail wrap at different places */
    for (uintptr_t k = 0; k < 10000; k++) {
        cr_assert(handoff_push(&r, ITEM(1, k)));
        cr_assert(handoff_push(&r, ITEM(2, k)));
        cr_assert_eq(handoff_pop(&r), ITEM(1, k));
        cr_assert_eq(handoff_pop(&r), ITEM(2, k));
    }
    handoff_free(&r);
}

Test(handoff_ring, smallest) {
    handoff_ring r;
    cr_assert_eq(handoff_init(&r, 1), 0);
    cr_assert_eq(handoff_capacity(&r), 2);
    cr_assert(handoff_push(&r, ITEM(0, 1)));
    cr_assert(handoff_push(&r, ITEM(0, 2)));
    cr_assert_not(handoff_push(&r, ITEM(0, 3)));
    cr_assert_eq(handoff_pop(&r), ITEM(0, 1));
    cr_assert(handoff_push(&r, ITEM(0, 3)));
    cr_assert_eq(handoff_pop(&r), ITEM(0, 2));
    cr_assert_eq(handoff_pop(&r), ITEM(0, 3));
    cr_assert_null(handoff_pop(&r));
    handoff_free(&r);
}

#define PER_PRODUCER 200000
#define PRODUCERS 2

typedef struct {
    handoff_ring *r;
    uintptr_t id;
    long full; /* pushes refused: the consumer was behind */
} producer;

static void *produce(void *arg) {
    producer *p = arg;
    for (uintptr_t k = 0; k < PER_PRODUCER; k++)
        while (!handoff_push(p->r, ITEM(p->id, k))) {
            p->full++;
            sched_yield();
        }
    return NULL;
}

Test(handoff_ring, two_producers_one_consumer, .timeout = 60) {
    handoff_ring r;
    cr_assert_eq(handoff_init(&r, 16), 0);
    producer ps[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        ps[i] = (producer){&r, (uintptr_t)i + 1, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, produce, &ps[i]), 0);
    }
    uintptr_t next[PRODUCERS + 1] = {0};
    long got = 0;
    while (got < (long)PER_PRODUCER * PRODUCERS) {
        void *it = handoff_pop(&r);
        if (!it) {
            sched_yield();
            continue;
        }
        uintptr_t v = (uintptr_t)it - 1, id = v >> 24, k = v & 0xffffff;
        cr_assert(id >= 1 && id <= PRODUCERS, "item from producer %lu", (unsigned long)id);
        cr_assert_eq(k, next[id], "producer %lu: item %lu after %lu", (unsigned long)id,
                     (unsigned long)k, (unsigned long)next[id]);
        next[id]++;
        got++;
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    cr_assert_null(handoff_pop(&r), "nothing more than was pushed");
    cr_log_info("full %ld / %ld times", ps[0].full, ps[1].full);
    handoff_free(&r);
}
