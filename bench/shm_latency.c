/*
 * bench/shm_latency [N] — one-way latency of the shm transport, thread to
 * thread, N ping-pongs (default 200 000; the first 1000 are warm-up). Each
 * ping carries its CLOCK_MONOTONIC send time; the receiver computes the
 * one-way latency from it, and the sender the round trip.
 *
 *   raw ring                     two threads, a ring each way, both spinning
 *   client <-> router            client A pings a handler of the router's own,
 *                                which answers (two threads); "epoll": the
 *                                router sleeps in epoll between messages, woken
 *                                by the eventfd, and the client spins up to
 *                                20 us (adaptively) before sleeping; "spinning":
 *                                the shm transport spins up to 50 us for the
 *                                next record ("spin_ns") and so does the client
 *   client -> router -> client   A -> router -> B -> router -> A (three threads)
 *
 * Prints p50 and p99 in microseconds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchreport.h"
#include "shmbench.h"

#define WARMUP 1000

static long n_msgs = 200000;

/* "client <-> router, epoll" -> "client-router-epoll": a path name for bench/run. */
static void slug(const char *what, char *out, size_t size) {
    size_t j = 0;
    bool dash = false;
    for (const char *p = what; *p && j + 1 < size; p++) {
        bool word = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (word && dash && j) out[j++] = '-';
        if (word) out[j++] = *p;
        dash = !word;
    }
    out[j] = '\0';
}

static void report(const char *what, double *one_way, double *rtt, long n) {
    long k = n - WARMUP;
    /* One-way latencies (ns) as seconds for the RESULT line and the plot. */
    double *lat_s = malloc((size_t)k * sizeof *lat_s);
    if (lat_s) {
        for (long i = 0; i < k; i++)
            lat_s[i] = one_way[WARMUP + i] * 1e-9;
        char path[64];
        slug(what, path, sizeof path);
        br_meter none = {0};
        br_start(&none);
        br_report(&none, &(br_result){.bench = "shm_latency",
                                      .path = path,
                                      .payload = 36,
                                      .count = k,
                                      .lat_s = lat_s,
                                      .n_lat = (int)k,
                                      .no_cpu = true});
        free(lat_s);
    }
    double ow50 = sb_percentile(one_way + WARMUP, (int)k, 0.5);
    double ow99 = sb_percentile(one_way + WARMUP, (int)k, 0.99);
    double rt50 = sb_percentile(rtt + WARMUP, (int)k, 0.5);
    double rt99 = sb_percentile(rtt + WARMUP, (int)k, 0.99);
    printf("%-36s one-way p50 %7.3f us  p99 %8.3f us   round trip p50 %7.3f us  p99 %8.3f us\n",
           what, ow50 / 1e3, ow99 / 1e3, rt50 / 1e3, rt99 / 1e3);
}

/* ---- raw rings ---- */

typedef struct raw {
    sb_rings rings;
    double *one_way;
    atomic_int stop;
} raw;

static void *raw_echo(void *arg) {
    raw *x = arg;
    uint8_t buf[64];
    for (long i = 0; i < n_msgs; i++) {
        uint32_t n;
        while (o2sm_ring_peek(&x->rings.b_rx, sizeof buf, &n) != O2SM_RING_OK)
            sb_relax();
        o2sm_ring_take(&x->rings.b_rx, buf, n);
        o2sm_ring_release(&x->rings.b_rx);
        x->one_way[i] = (double)(sb_now_ns() - (int64_t)o2h_rd_u64(buf + n - 8));
        while (o2sm_ring_push(&x->rings.b_tx, buf, n) != O2SM_RING_OK)
            sb_relax();
    }
    return NULL;
}

static void bench_raw(double *one_way, double *rtt) {
    raw x = {.one_way = one_way};
    if (sb_rings_new(&x.rings, 1 << 16) != 0) {
        perror("shm");
        exit(1);
    }
    o2h_msg *m = sb_message(0);
    uint8_t buf[64];
    memcpy(buf, m->data, m->length);
    uint32_t len = m->length;
    o2h_msg_unref(m);
    pthread_t t;
    pthread_create(&t, NULL, raw_echo, &x);
    for (long i = 0; i < n_msgs; i++) {
        int64_t t0 = sb_now_ns();
        o2h_wr_u64(buf + len - 8, (uint64_t)t0);
        while (o2sm_ring_push(&x.rings.a_tx, buf, len) != O2SM_RING_OK)
            sb_relax();
        uint32_t n;
        while (o2sm_ring_peek(&x.rings.a_rx, sizeof buf, &n) != O2SM_RING_OK)
            sb_relax();
        o2sm_ring_take(&x.rings.a_rx, buf, n);
        o2sm_ring_release(&x.rings.a_rx);
        rtt[i] = (double)(sb_now_ns() - t0);
    }
    pthread_join(t, NULL);
    sb_rings_free(&x.rings);
    report("raw ring, both spin", one_way, rtt, n_msgs);
}

/* ---- through the router ---- */

#define SPIN_NS 50000 /* "spinning" modes: host spin_ns and clients' spin_max_ns */

typedef struct ponger {
    o2sm_client *c;
    double *one_way;
    long count;
    atomic_int done;
} ponger;

static void on_ping(o2sm_client *c, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    ponger *p = user_data;
    if (p->count < n_msgs) p->one_way[p->count] = (double)(sb_now_ns() - argv[0]->h);
    p->count++;
    o2sm_send(c, "/a/pong", 0, "h", argv[0]->h);
}

static void *pong_thread(void *arg) {
    ponger *p = arg;
    while (p->count < n_msgs && o2sm_poll(p->c) >= 0)
        o2sm_wait(p->c, 100);
    atomic_store(&p->done, 1);
    return NULL;
}

typedef struct pinger {
    o2sm_client *c;
    const char *to;
    double *rtt;
    long got;
    atomic_int done;
} pinger;

static void on_pong(o2sm_client *c, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    pinger *p = user_data;
    p->rtt[p->got++] = (double)(sb_now_ns() - argv[0]->h);
}

static void *ping_thread(void *arg) {
    pinger *p = arg;
    for (long i = 0; i < n_msgs; i++) {
        o2sm_send(p->c, p->to, 0, "h", sb_now_ns());
        while (p->got <= i && o2sm_poll(p->c) >= 0)
            if (p->got <= i) o2sm_wait(p->c, 100);
    }
    atomic_store(&p->done, 1);
    return NULL;
}

/* The router's own handler answers (client <-> router: two threads). */
typedef struct echo {
    double *one_way;
    long count;
} echo;

static void on_echo(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    echo *e = user_data;
    if (e->count < n_msgs) e->one_way[e->count] = (double)(sb_now_ns() - argv[0]->h);
    e->count++;
    o2h_send(r, "/a/pong", 0, "h", argv[0]->h);
}

/* A pings; B (another client) or the router's handler answers. */
static void bench_router(const char *what, bool to_client, bool spin, double *one_way,
                         double *rtt) {
    char path[128], extra[64];
    snprintf(extra, sizeof extra, ", \"spin_ns\": %d", spin ? SPIN_NS : 0);
    o2h_router *r = sb_router(path, sizeof path, extra);
    uint32_t client_spin = spin ? SPIN_NS : 0;
    pinger a = {.rtt = rtt, .to = to_client ? "/b/ping" : "/echo/ping"};
    ponger b = {.one_way = one_way};
    echo e = {.one_way = one_way};
    a.c = sb_connect(r, path, 100, client_spin);
    o2sm_service_new(a.c, "a", NULL);
    o2sm_method_new(a.c, "/a/pong", "h", on_pong, &a, false, true);
    sb_wait_service(r, "a", 5);
    pthread_t ta, tb;
    if (to_client) {
        b.c = sb_connect(r, path, 100, client_spin);
        o2sm_service_new(b.c, "b", NULL);
        o2sm_method_new(b.c, "/b/ping", "h", on_ping, &b, false, true);
        sb_wait_service(r, "b", 5);
        pthread_create(&tb, NULL, pong_thread, &b);
    } else {
        o2h_service_new(r, "echo");
        o2h_method_new(r, "/echo/ping", "h", on_echo, &e, false, true);
        atomic_store(&b.done, 1);
    }
    pthread_create(&ta, NULL, ping_thread, &a);
    while (!atomic_load(&a.done) || !atomic_load(&b.done))
        o2h_router_poll(r, 100);
    pthread_join(ta, NULL);
    if (to_client) pthread_join(tb, NULL);
    o2sm_stats sa;
    o2sm_get_stats(a.c, &sa);
    report(what, one_way, rtt, n_msgs);
    printf("%-36s (client A: %llu sleeps, %llu wake-ups of the router in %ld round trips)\n", "",
           (unsigned long long)sa.sleeps, (unsigned long long)sa.wakeups_sent, n_msgs);
    o2sm_finish(a.c);
    if (to_client) o2sm_finish(b.c);
    o2h_router_free(r);
}

int main(int argc, char **argv) {
    if (argc > 1) n_msgs = atol(argv[1]);
    if (n_msgs <= WARMUP) n_msgs = WARMUP + 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("shm_latency: %ld ping-pongs of 36-byte messages (%ld cores)\n", n_msgs,
           sysconf(_SC_NPROCESSORS_ONLN));
    double *one_way = calloc((size_t)n_msgs, sizeof *one_way);
    double *rtt = calloc((size_t)n_msgs, sizeof *rtt);
    bench_raw(one_way, rtt);
    bench_router("client <-> router, epoll", false, false, one_way, rtt);
    bench_router("client <-> router, spinning", false, true, one_way, rtt);
    bench_router("client -> router -> client", true, false, one_way, rtt);
    bench_router("client -> router -> client, spinning", true, true, one_way, rtt);
    free(one_way);
    free(rtt);
    return 0;
}
