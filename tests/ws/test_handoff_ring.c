/*
 * The bounded lock-free ring (transports/websocket/handoff.c) that hands
 * upgraded sockets from libmicrohttpd's thread to the router's loop: FIFO,
 * full and empty exactly at the bounds, many laps, and two producer threads
 * against one consumer with nothing lost, duplicated or reordered.
 * Plain C with TAP output (not criterion, whose process arenas do not start
 * under ThreadSanitizer), so the same test runs in a -Db_sanitize=thread build.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>

#include "handoff.h"

#define ITEM(p, k) ((void *)(uintptr_t)((((uintptr_t)(p)) << 24 | (uintptr_t)(k)) + 1))

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("# %s:%d: %s: ", __FILE__, __LINE__, #cond);                                    \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            failures++;                                                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static void bounds_and_order(void) {
    handoff_ring r;
    CHECK(handoff_init(&r, 5) == 0, "init");
    CHECK(handoff_capacity(&r) == 8, "capacity %zu", handoff_capacity(&r));
    CHECK(handoff_pop(&r) == NULL, "empty at first");
    for (uintptr_t lap = 0; lap < 1000; lap++) {
        for (uintptr_t k = 0; k < 8; k++)
            CHECK(handoff_push(&r, ITEM(lap, k)), "push %lu of lap %lu", k, lap);
        CHECK(!handoff_push(&r, ITEM(9, 9)), "a full ring refuses (lap %lu)", lap);
        for (uintptr_t k = 0; k < 8; k++)
            CHECK(handoff_pop(&r) == ITEM(lap, k), "pop %lu of lap %lu", k, lap);
        CHECK(handoff_pop(&r) == NULL, "empty after lap %lu", lap);
    }
    /* half-full laps: head and tail wrap at different places */
    for (uintptr_t k = 0; k < 10000; k++) {
        CHECK(handoff_push(&r, ITEM(1, k)) && handoff_push(&r, ITEM(2, k)), "push %lu", k);
        CHECK(handoff_pop(&r) == ITEM(1, k) && handoff_pop(&r) == ITEM(2, k), "pop %lu", k);
    }
    handoff_free(&r);
}

static void smallest(void) {
    handoff_ring r;
    CHECK(handoff_init(&r, 1) == 0, "init");
    CHECK(handoff_capacity(&r) == 2, "capacity %zu", handoff_capacity(&r));
    CHECK(handoff_push(&r, ITEM(0, 1)) && handoff_push(&r, ITEM(0, 2)), "two fit");
    CHECK(!handoff_push(&r, ITEM(0, 3)), "the third does not");
    CHECK(handoff_pop(&r) == ITEM(0, 1), "first out");
    CHECK(handoff_push(&r, ITEM(0, 3)), "room again");
    CHECK(handoff_pop(&r) == ITEM(0, 2) && handoff_pop(&r) == ITEM(0, 3), "in order");
    CHECK(handoff_pop(&r) == NULL, "empty");
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

static void two_producers_one_consumer(void) {
    handoff_ring r;
    CHECK(handoff_init(&r, 16) == 0, "init");
    producer ps[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        ps[i] = (producer){&r, (uintptr_t)i + 1, 0};
        CHECK(pthread_create(&th[i], NULL, produce, &ps[i]) == 0, "thread %d", i);
    }
    uintptr_t next[PRODUCERS + 1] = {0};
    long got = 0, bad = 0;
    while (got < (long)PER_PRODUCER * PRODUCERS && bad == 0) {
        void *it = handoff_pop(&r);
        if (!it) {
            sched_yield();
            continue;
        }
        uintptr_t v = (uintptr_t)it - 1, id = v >> 24, k = v & 0xffffff;
        if (id < 1 || id > PRODUCERS || k != next[id]) {
            printf("# item %lu of producer %lu, expected %lu\n", (unsigned long)k,
                   (unsigned long)id, id >= 1 && id <= PRODUCERS ? (unsigned long)next[id] : 0);
            bad++;
            break;
        }
        next[id]++;
        got++;
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    CHECK(bad == 0, "every item once, in each producer's order");
    CHECK(handoff_pop(&r) == NULL, "nothing more than was pushed");
    printf("# %ld items; pushes refused while full: %ld, %ld\n", got, ps[0].full, ps[1].full);
    handoff_free(&r);
}

int main(void) {
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {{"bounds_and_order", bounds_and_order},
                 {"smallest", smallest},
                 {"two_producers_one_consumer", two_producers_one_consumer}};
    int n = (int)(sizeof tests / sizeof tests[0]);
    printf("TAP version 13\n1..%d\n", n);
    for (int i = 0; i < n; i++) {
        int before = failures;
        tests[i].fn();
        printf("%s %d - %s\n", failures == before ? "ok" : "not ok", i + 1, tests[i].name);
    }
    return failures ? 1 : 0;
}
