/*
 * bench/local_dispatch — messages per second through the router's local
 * path (build with the builder, route, decode 3 arguments, call a handler)
 * and heap allocations per message in the steady state.
 *
 * Allocations are counted by interposing malloc/calloc/realloc in this
 * executable: every allocation in the process is seen, the router's
 * included, not just the pool's own counter.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <o2hub/o2hub.h>

#include "benchreport.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static atomic_ullong allocations;

void *malloc(size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}
void free(void *p) {
    __libc_free(p);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct sink {
    long count;
    double sum;
} sink;

static void on_msg(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    sink *s = user_data;
    s->count++;
    s->sum += argv[0]->i + argv[1]->f + (double)(unsigned char)argv[2]->s[0];
}

static void send_one(o2h_router *r, int32_t i) {
    o2h_builder *b = o2h_send_start(r);
    o2h_add_int32(b, i);
    o2h_add_float(b, 0.5f);
    o2h_add_string(b, "note");
    o2h_send_finish(r, 0, "/bench/x", false);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    o2h_router_options opts = {.struct_size = sizeof opts, .ensemble = "bench"};
    o2h_router *r = o2h_router_new(&opts, NULL);
    sink s = {0};
    o2h_service_new(r, "bench");
    o2h_method_new(r, "/bench/x", "ifs", on_msg, &s, false, true);

    for (int i = 0; i < 1000; i++)
        send_one(r, i); /* warm the pool and buffers */
    unsigned long long allocs_before = atomic_load(&allocations);
    long count_before = s.count;
    br_meter meter;
    br_start(&meter);
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        send_one(r, (int32_t)i);
    double elapsed = now_s() - t0;
    unsigned long long allocs = atomic_load(&allocations) - allocs_before;
    long delivered = s.count - count_before;
    br_report(&meter, &(br_result){.bench = "local_dispatch",
                                   .path = "o2hub-local",
                                   .payload = 40,
                                   .count = delivered,
                                   .msgs_s = (double)delivered / elapsed});

    printf("bench local_dispatch: message /bench/x ,ifs (3 arguments), %ld messages\n", n);
    printf("  delivered           %ld\n", delivered);
    printf("  msgs/s              %.0f\n", (double)delivered / elapsed);
    printf("  ns/msg              %.1f\n", elapsed * 1e9 / (double)delivered);
    printf("  heap allocs/msg     %.6f (%llu in the timed loop)\n", (double)allocs / (double)n,
           allocs);
    o2h_router_free(r);
    return delivered == n ? 0 : 1;
}
