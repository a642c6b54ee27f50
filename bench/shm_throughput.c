/*
 * bench/shm_throughput [N] [raw] — messages per second over the shm transport's
 * rings, one way, N messages (default 5 000 000) of 36 bytes ("/bench/x"
 * with an int64), each run on its own:
 *
 *   raw ring          two threads, o2sm_ring push/peek/take on a shm segment:
 *                     the copy-in, copy-out floor (both threads spin)
 *   client -> router  an o2sm thread client sends (builder, ring, wake-up);
 *                     the router validates, routes and calls a local handler
 *   client -> client  thread A -> router -> thread B (a second ring hop and
 *                     B's dispatch); B acknowledges every 4096 messages and A
 *                     keeps at most 16384 in flight, so the router never finds
 *                     B's ring full
 *   each side alone   the client fills the ring while the router does not
 *                     look, then the router drains it: each side's cost per
 *                     message without the other core touching the same lines
 *
 * Every receiver checks that the numbers arrive in order.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchreport.h"
#include "shmbench.h"

static long n_msgs = 5000000;
/* A consumer that finds the ring empty pauses this many times before looking
 * again, so the producer gets ahead and the two stop trading the same cache
 * lines for every message. */
static int backoff = 64;

/* ---- raw ring ---- */

typedef struct raw {
    sb_rings rings;
    o2h_msg *msg;
    atomic_int go;
} raw;

static void *raw_producer(void *arg) {
    raw *x = arg;
    uint8_t buf[64];
    memcpy(buf, x->msg->data, x->msg->length);
    uint32_t len = x->msg->length;
    while (!atomic_load(&x->go))
        ;
    for (long i = 0; i < n_msgs; i++) {
        o2h_wr_u64(buf + len - 8, (uint64_t)i);
        while (o2sm_ring_push(&x->rings.a_tx, buf, len) != O2SM_RING_OK)
            sb_relax();
    }
    return NULL;
}

/* A RESULT line for bench/run (rates only: the threads share the process). */
static void result(const char *path, double rate) {
    br_meter none;
    br_start(&none);
    br_report(&none, &(br_result){.bench = "shm_throughput",
                                  .path = path,
                                  .payload = 36,
                                  .count = n_msgs,
                                  .msgs_s = rate,
                                  .no_cpu = true});
}

static void bench_raw(void) {
    raw x = {.msg = sb_message(0)};
    if (sb_rings_new(&x.rings, 1 << 20) != 0) {
        perror("shm");
        exit(1);
    }
    pthread_t t;
    pthread_create(&t, NULL, raw_producer, &x);
    uint8_t buf[64];
    long errors = 0, since = 0;
    double t0 = sb_now();
    atomic_store(&x.go, 1);
    for (long i = 0; i < n_msgs;) {
        uint32_t n;
        int rc = o2sm_ring_peek(&x.rings.b_rx, sizeof buf, &n);
        if (rc != O2SM_RING_OK) {
            for (int k = 0; k < backoff; k++)
                sb_relax();
            continue;
        }
        o2sm_ring_take(&x.rings.b_rx, buf, n);
        if ((long)o2h_rd_u64(buf + n - 8) != i) errors++;
        i++;
        if (++since == 32) {
            o2sm_ring_release(&x.rings.b_rx);
            since = 0;
        }
    }
    double dt = sb_now() - t0;
    pthread_join(t, NULL);
    printf("raw ring, thread -> thread          %8.2f M msgs/s  %6.1f ns/msg  (%ld out of order)\n",
           n_msgs / dt / 1e6, dt / n_msgs * 1e9, errors);
    result("raw-ring", n_msgs / dt);
    sb_rings_free(&x.rings);
    o2h_msg_unref(x.msg);
}

/* ---- through the router ---- */

typedef struct sender {
    o2sm_client *c;
    const char *address;
    long window; /* 0: no flow control */
    atomic_long acked;
    atomic_int go;
    long refused;
} sender;

static void on_ack(o2sm_client *c, const o2h_msg *msg, const char *types,
                   const o2h_arg *const *argv, int argc, void *user_data) {
    sender *s = user_data;
    atomic_store(&s->acked, (long)argv[0]->h);
}

static void *send_thread(void *arg) {
    sender *s = arg;
    while (!atomic_load(&s->go))
        ;
    for (long i = 0; i < n_msgs;) {
        if (s->window && i - atomic_load(&s->acked) >= s->window) {
            o2sm_wait(s->c, 10);
            o2sm_poll(s->c);
            continue;
        }
        o2h_builder *b = o2sm_send_start(s->c);
        o2h_add_int64(b, i);
        int rc = o2sm_send_finish(s->c, 0, s->address, false);
        if (rc == O2H_OK) {
            i++;
        } else {
            s->refused++;
            o2sm_poll(s->c);
        }
        if (s->window && (i & 255) == 0) o2sm_poll(s->c);
    }
    if (s->window) /* until the last ack */
        while (atomic_load(&s->acked) < n_msgs && o2sm_poll(s->c) >= 0)
            o2sm_wait(s->c, 10);
    return NULL;
}

typedef struct sink {
    long count, errors;
    o2sm_client *c; /* acknowledges through this client (client -> client) */
} sink;

static void on_router_msg(o2h_router *r, const o2h_msg *msg, const char *types,
                          const o2h_arg *const *argv, int argc, void *user_data) {
    sink *k = user_data;
    if (argv[0]->h != k->count) k->errors++;
    k->count++;
}

static void bench_client_to_router(void) {
    char path[128];
    o2h_router *r = sb_router(path, sizeof path, NULL);
    sink k = {0};
    o2h_service_new(r, "bench");
    o2h_method_new(r, "/bench/x", "h", on_router_msg, &k, false, true);
    sender s = {.address = "/bench/x"};
    s.c = sb_connect(r, path, 1000, 0);
    pthread_t t;
    pthread_create(&t, NULL, send_thread, &s);
    double t0 = sb_now();
    atomic_store(&s.go, 1);
    while (k.count < n_msgs)
        o2h_router_poll(r, 10);
    double dt = sb_now() - t0;

    pthread_join(t, NULL);
    o2sm_stats st;
    o2sm_get_stats(s.c, &st);
    printf("client -> router handler            %8.2f M msgs/s  %6.1f ns/msg  (%ld out of order,"
           " %llu wake-ups, %llu waits for room)\n",
           n_msgs / dt / 1e6, dt / n_msgs * 1e9, k.errors, (unsigned long long)st.wakeups_sent,
           (unsigned long long)st.sleeps);
    result("o2sm-to-router", n_msgs / dt);
    o2sm_finish(s.c);
    o2h_router_free(r);
}

typedef struct receiver {
    o2sm_client *c;
    long count, errors, acked;
    atomic_int done;
} receiver;

static void on_client_msg(o2sm_client *c, const o2h_msg *msg, const char *types,
                          const o2h_arg *const *argv, int argc, void *user_data) {
    receiver *k = user_data;
    if (argv[0]->h != k->count) k->errors++;
    k->count++;
}

static void *receive_thread(void *arg) {
    receiver *k = arg;
    while (k->count < n_msgs) {
        if (o2sm_poll(k->c) < 0) break;
        if (k->count - k->acked >= 4096 || k->count == n_msgs) {
            if (o2sm_send(k->c, "/src/ack", 0, "h", (int64_t)k->count) == O2H_OK)
                k->acked = k->count;
        }
        o2sm_wait(k->c, 10);
    }
    while (k->acked < n_msgs)
        if (o2sm_send(k->c, "/src/ack", 0, "h", (int64_t)k->count) == O2H_OK) k->acked = k->count;
    atomic_store(&k->done, 1);
    return NULL;
}

static void bench_client_to_client(void) {
    char path[128];
    o2h_router *r = sb_router(path, sizeof path, NULL);
    sender s = {.address = "/dst/x", .window = 16384};
    receiver k = {0};
    s.c = sb_connect(r, path, 1000, 0);
    k.c = sb_connect(r, path, 1000, 0);
    o2sm_service_new(s.c, "src", NULL);
    o2sm_method_new(s.c, "/src/ack", "h", on_ack, &s, false, true);
    o2sm_service_new(k.c, "dst", NULL);
    o2sm_method_new(k.c, "/dst/x", "h", on_client_msg, &k, false, true);
    sb_wait_service(r, "src", 5);
    sb_wait_service(r, "dst", 5);
    pthread_t ts, tr;
    pthread_create(&tr, NULL, receive_thread, &k);
    pthread_create(&ts, NULL, send_thread, &s);
    double t0 = sb_now();
    atomic_store(&s.go, 1);
    while (!atomic_load(&k.done))
        o2h_router_poll(r, 10);
    double dt = sb_now() - t0;
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    o2h_stats rs = {.struct_size = sizeof rs};
    o2h_router_get_stats(r, &rs);
    printf("client -> router -> client          %8.2f M msgs/s  %6.1f ns/msg  (%ld out of order,"
           " %llu dropped by the router)\n",
           n_msgs / dt / 1e6, dt / n_msgs * 1e9, k.errors,
           (unsigned long long)rs.dropped_queue_full);
    result("o2sm-router-o2sm", n_msgs / dt);
    o2sm_finish(s.c);
    o2sm_finish(k.c);
    o2h_router_free(r);
}

/* Each side alone: the client fills the ring while the router does not look,
 * then the router drains it while the client does not write. Per-message CPU
 * of each side with no cross-core traffic. */
static void bench_sides_alone(void) {
    char path[128];
    o2h_router *r = sb_router(path, sizeof path, NULL);
    sink k = {0};
    o2h_service_new(r, "bench");
    o2h_method_new(r, "/bench/x", "h", on_router_msg, &k, false, true);
    o2sm_client *c = sb_connect(r, path, 0, 0);
    double fill = 0, drain = 0;
    long i = 0;
    while (i < n_msgs) {
        long start = i;
        double t0 = sb_now();
        for (; i < n_msgs; i++) {
            o2h_builder *b = o2sm_send_start(c);
            o2h_add_int64(b, i);
            if (o2sm_send_finish(c, 0, "/bench/x", false) != O2H_OK) break;
        }
        double t1 = sb_now();
        while (k.count < i)
            o2h_router_poll(r, 0);
        double t2 = sb_now();
        fill += t1 - t0;
        drain += t2 - t1;
        if (i == start) break;
    }
    printf("each side alone: client %.1f ns/msg, router %.1f ns/msg (%ld messages, %ld out of "
           "order)\n",
           fill / (double)i * 1e9, drain / (double)i * 1e9, i, k.errors);
    result("o2sm-client-alone", (double)i / fill);
    result("router-alone", (double)i / drain);
    o2sm_finish(c);
    o2h_router_free(r);
}

int main(int argc, char **argv) {
    if (argc > 1) n_msgs = atol(argv[1]);
    bool raw_only = argc > 2 && strcmp(argv[2], "raw") == 0;
    if (n_msgs <= 0) n_msgs = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("shm_throughput: %ld messages of 36 bytes, one way (%ld cores)\n", n_msgs,
           sysconf(_SC_NPROCESSORS_ONLN));
    if (argc > 2 && strcmp(argv[2], "alone") == 0) {
        bench_sides_alone();
        return 0;
    }
    bench_raw();
    if (raw_only) return 0;
    bench_client_to_router();
    bench_client_to_client();
    bench_sides_alone();
    return 0;
}
