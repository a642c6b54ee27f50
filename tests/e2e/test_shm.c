/*
 * The shared-memory bridge end to end: a router with the real shm plugin in
 * the test's main thread, an o2sm client on a thread of this process and
 * one in a separate process (shm_client.c), exchanging 10^6 messages each
 * way through the router with order and content checked; SIGKILL of the
 * process client (its services gone within 1 s, the thread client still
 * served); full rings in both directions; timed messages scheduled by the
 * client; a corrupt ring; max_clients; stale segments and sockets; config
 * errors.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "o2sm.h"
#include "o2sm_shm.h"
#include "shm_exchange.h"

#define N_MESSAGES 1000000u
#define WINDOW 8192u
#define WAIT_S 5.0

static char tmpdir[64];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/o2hub-shm-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

TestSuite(shm, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 240);

typedef struct host {
    o2h_router *r;
    char name[32];
    char socket[128];
} host;

static o2h_router *router_from(const char *json, o2h_error *err) {
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    return o2h_router_new_from_json(json, "shm.json", &o, err);
}

static void start_host(host *h, const char *extra) {
    snprintf(h->name, sizeof h->name, "e2e%d", (int)getpid());
    snprintf(h->socket, sizeof h->socket, "%s/o2sm.sock", tmpdir);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"shm\", \"log_level\": \"warn\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [{\"type\": \"shm\", \"name\": \"%s\", \"socket\": \"%s\"%s}]}",
             TRANSPORT_DIR, h->name, h->socket, extra ? extra : "");
    o2h_error err;
    h->r = router_from(json, &err);
    cr_assert_not_null(h->r, "%s", err.message);
    cr_assert_eq(o2h_router_start(h->r), O2H_OK);
    cr_assert_eq(o2h_clock_set(h->r), O2H_OK);
}

/* Segments in /dev/shm whose name contains `part`. */
static int count_segments(const char *part) {
    DIR *d = opendir("/dev/shm");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, part)) n++;
    closedir(d);
    return n;
}

static bool poll_until_status(o2h_router *r, const char *svc, int want, double limit_s) {
    double deadline = now_s() + limit_s;
    while (now_s() < deadline) {
        if (o2h_status(r, svc) == want) return true;
        o2h_router_poll(r, 2);
    }
    return o2h_status(r, svc) == want;
}

/* ---- a client connected from a helper thread (o2sm_connect waits for the host) ---- */

typedef struct connector {
    const char *name;
    o2sm_options opts;
    o2sm_client *c;
    int err;
    atomic_int done;
} connector;

static void *connect_thread(void *arg) {
    connector *k = arg;
    k->c = o2sm_connect(k->name, &k->opts, &k->err);
    atomic_store(&k->done, 1);
    return NULL;
}

/* Connect while the router polls; the client is then used from this thread. */
static o2sm_client *connect_polling(o2h_router *r, const char *name, int send_wait_ms, int *err) {
    connector k = {.name = name,
                   .opts = {.struct_size = sizeof k.opts, .send_wait_ms = send_wait_ms}};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, connect_thread, &k), 0);
    double deadline = now_s() + WAIT_S;
    while (!atomic_load(&k.done) && now_s() < deadline)
        o2h_router_poll(r, 2);
    pthread_join(t, NULL);
    if (err) *err = k.err;
    return k.c;
}

/* ---- the process client ---- */

typedef struct proc {
    pid_t pid;
    int out_fd;
    char out[8192];
    size_t used, seen;
} proc;

static void proc_start(proc *p, const char *socket, const char *me, const char *peer) {
    int out[2];
    cr_assert_eq(pipe(out), 0);
    char n[16], w[16];
    snprintf(n, sizeof n, "%u", N_MESSAGES);
    snprintf(w, sizeof w, "%u", WINDOW);
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(out[0]);
        execl(SHM_CLIENT_EXE, "shm_client", socket, me, peer, n, w, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    p->out_fd = out[0];
    fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
    p->used = p->seen = 0;
    p->out[0] = '\0';
}

/* Read what the process printed; return the line containing `needle` (after earlier matches). */
static const char *proc_line(proc *p, const char *needle) {
    ssize_t n = read(p->out_fd, p->out + p->used, sizeof p->out - 1 - p->used);
    if (n > 0) {
        p->used += (size_t)n;
        p->out[p->used] = '\0';
    }
    const char *at = strstr(p->out + p->seen, needle);
    if (at) {
        const char *eol = strchr(at, '\n');
        if (!eol) return NULL; /* not the whole line yet */
        p->seen = (size_t)(eol + 1 - p->out);
    }
    return at;
}

/* Poll the router until the process prints `needle` (bounded). */
static const char *proc_expect(proc *p, o2h_router *r, const char *needle, double limit_s) {
    double deadline = now_s() + limit_s;
    while (now_s() < deadline) {
        const char *at = proc_line(p, needle);
        if (at) return at;
        if (strstr(p->out + p->seen, "failed")) return NULL;
        o2h_router_poll(r, 1);
    }
    return NULL;
}

/* ---- the thread client ---- */

typedef struct thread_client {
    const char *socket;
    exchange x;
    atomic_int ready, synced, done, stop;
    int rc;
    int pings;
    double at_stamp, at_seen; /* a timed message: its time and when it was handled */
    int status_main, status_proc, status_none; /* o2sm_status after the exchange */
    o2sm_stats stats;
} thread_client;

static void on_ping(o2sm_client *c, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    thread_client *t = user_data;
    t->pings++;
    o2sm_send_cmd(c, "/main/pong", 0, "i", argv[0]->i + 1);
}

static void on_at(o2sm_client *c, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                  int argc, void *user_data) {
    thread_client *t = user_data;
    t->at_seen = o2sm_time_get(c);
    t->at_stamp = o2h_msg_time(msg);
}

static void *thread_main(void *arg) {
    thread_client *t = arg;
    o2sm_options opts = {.struct_size = sizeof opts, .label = "e2e thread", .send_wait_ms = 100};
    int err;
    o2sm_client *c = o2sm_connect(t->socket, &opts, &err);
    t->rc = -1;
    if (!c) {
        atomic_store(&t->ready, -1);
        return NULL;
    }
    exchange_init(&t->x, c, "thr", "proc", N_MESSAGES, WINDOW);
    o2sm_method_new(c, "/thr/ping", "i", on_ping, t, false, true);
    o2sm_method_new(c, "/thr/at", "", on_at, t, false, false);
    atomic_store(&t->ready, 1);
    double deadline = o2sm_local_time() + 10;
    while ((o2sm_time_get(c) < 0 || !t->x.go) && o2sm_local_time() < deadline) {
        o2sm_poll(c);
        o2sm_wait(c, 5);
    }
    atomic_store(&t->synced, 1);
    t->rc = t->x.go ? exchange_run(&t->x, 120) : -2;
    o2sm_get_stats(c, &t->stats);
    t->status_main = o2sm_status(c, "main", 2000);
    t->status_proc = o2sm_status(c, "proc", 2000);
    t->status_none = o2sm_status(c, "nobody", 2000);
    atomic_store(&t->done, 1);
    while (!atomic_load(&t->stop) && o2sm_poll(c) >= 0)
        o2sm_wait(c, 5);
    o2sm_finish(c);
    return NULL;
}

static int pongs;
static void on_pong(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    int *got = user_data;
    *got = argv[0]->i;
    pongs++;
}

Test(shm, thread_and_process_exchange_a_million_each_way_then_kill) {
    host h;
    start_host(&h, NULL);
    int pong = 0;
    cr_assert_eq(o2h_service_new(h.r, "main"), O2H_OK);
    cr_assert_eq(o2h_method_new(h.r, "/main/pong", "i", on_pong, &pong, false, true), O2H_OK);

    thread_client t = {.socket = h.socket};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, thread_main, &t), 0);
    proc p;
    proc_start(&p, h.socket, "proc", "thr");

    /* Both register, offer their service, read the clock from the segment and say so. */
    const char *ready = proc_expect(&p, h.r, "ready ", WAIT_S);
    cr_assert_not_null(ready, "process client: %s", p.out);
    cr_assert(poll_until_status(h.r, "thr", O2H_STATUS_BRIDGE, WAIT_S), "thr status %d",
              o2h_status(h.r, "thr"));
    cr_assert(poll_until_status(h.r, "proc", O2H_STATUS_BRIDGE, WAIT_S), "proc status %d",
              o2h_status(h.r, "proc"));
    char seg[O2SM_SEG_NAME_MAX];
    cr_assert_eq(sscanf(ready, "ready %*d %95s", seg), 1);
    cr_assert_neq(strstr(seg, h.name), NULL, "segment %s is named after the host", seg);
    cr_assert_eq(count_segments(h.name), 2, "one segment per client");

    /* Go: 10^6 messages each way through the router. */
    double t0 = now_s();
    cr_assert_eq(o2h_send_cmd(h.r, "/thr/go", 0, ""), O2H_OK);
    cr_assert_eq(o2h_send_cmd(h.r, "/proc/go", 0, ""), O2H_OK);
    const char *done = proc_expect(&p, h.r, "done ", 180);
    cr_assert_not_null(done, "process client: %s", p.out);
    double deadline = now_s() + 60;
    while (!atomic_load(&t.done) && now_s() < deadline)
        o2h_router_poll(h.r, 1);
    cr_assert(atomic_load(&t.done), "thread client did not finish");
    double elapsed = now_s() - t0;
    cr_assert_eq(t.rc, 0, "thread exchange: sent %u received %u acked %u errors %u", t.x.sent,
                 t.x.received, t.x.acked, t.x.errors);
    /* Status queries through the bridge: the host's own service, a bridged one, none. */
    cr_assert_eq(t.status_main, O2H_STATUS_LOCAL);
    cr_assert_eq(t.status_proc, O2H_STATUS_BRIDGE);
    cr_assert_eq(t.status_none, O2H_STATUS_UNKNOWN);

    unsigned p_sent, p_received, p_errors;
    uint64_t p_send_sum, p_recv_sum;
    cr_assert_eq(sscanf(done,
                        "done sent %u received %u errors %u send_sum %" SCNx64 " recv_sum %" SCNx64,
                        &p_sent, &p_received, &p_errors, &p_send_sum, &p_recv_sum),
                 5, "%s", done);
    cr_assert_eq(p_sent, N_MESSAGES);
    cr_assert_eq(p_received, N_MESSAGES);
    cr_assert_eq(p_errors, 0, "the process saw messages out of order or changed");
    cr_assert_eq(t.x.received, N_MESSAGES);
    cr_assert_eq(t.x.errors, 0, "the thread saw messages out of order or changed");
    cr_assert_eq(t.x.recv_sum, p_send_sum, "checksum process -> thread");
    cr_assert_eq(p_recv_sum, t.x.send_sum, "checksum thread -> process");
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(h.r, &st);
    cr_assert_eq(st.dropped_queue_full, 0);
    cr_assert_eq(st.dropped_invalid, 0);
    cr_assert_geq(st.forwarded, 2 * N_MESSAGES);
    fprintf(stderr,
            "shm e2e: 2 x %u messages through the router in %.2f s (%.2f M msgs/s); "
            "thread: full %" PRIu64 ", wake-ups sent %" PRIu64 ", sleeps %" PRIu64 "\n",
            N_MESSAGES, elapsed, 2 * N_MESSAGES / elapsed / 1e6, t.stats.send_full,
            t.stats.wakeups_sent, t.stats.sleeps);

    /* SIGKILL the process: its service is gone within 1 s, measured. */
    double k0 = now_s();
    cr_assert_eq(kill(p.pid, SIGKILL), 0);
    cr_assert(poll_until_status(h.r, "proc", O2H_STATUS_UNKNOWN, 1.0),
              "proc still offered after 1 s");
    double gone = now_s() - k0;
    fprintf(stderr, "shm e2e: SIGKILLed client's service removed after %.2f ms\n", gone * 1e3);
    cr_assert_lt(gone, 1.0);
    waitpid(p.pid, NULL, 0);
    close(p.out_fd);
    cr_assert_eq(count_segments(h.name), 1, "the dead client's segment is unlinked");

    /* The thread client is still served. */
    cr_assert_eq(o2h_status(h.r, "thr"), O2H_STATUS_BRIDGE);
    cr_assert_eq(o2h_send_cmd(h.r, "/thr/ping", 0, "i", 41), O2H_OK);
    deadline = now_s() + WAIT_S;
    while (pong == 0 && now_s() < deadline)
        o2h_router_poll(h.r, 1);
    cr_assert_eq(pong, 42);

    /* A timed message goes at once and the client delivers it at its time. */
    double stamp = o2h_time_get(h.r) + 0.05;
    cr_assert_eq(o2h_send_cmd(h.r, "/thr/at", stamp, ""), O2H_OK);
    deadline = now_s() + WAIT_S;
    while (t.at_seen == 0 && now_s() < deadline)
        o2h_router_poll(h.r, 1);
    cr_assert_gt(t.at_seen, 0, "the timed message never came");
    cr_assert_float_eq(t.at_stamp, stamp, 1e-9);
    cr_assert_geq(t.at_seen, stamp, "delivered %.6f s early", stamp - t.at_seen);
    cr_assert_lt(t.at_seen, stamp + 0.05, "delivered %.6f s late", t.at_seen - stamp);

    /* The thread finishes: its service goes too, and nothing is left behind. */
    atomic_store(&t.stop, 1);
    while (o2h_status(h.r, "thr") != O2H_STATUS_UNKNOWN && now_s() < deadline)
        o2h_router_poll(h.r, 1);
    pthread_join(th, NULL);
    cr_assert_eq(o2h_status(h.r, "thr"), O2H_STATUS_UNKNOWN);
    o2h_router_free(h.r);
    cr_assert_eq(count_segments(h.name), 0, "segments unlinked");
    cr_assert_neq(access(h.socket, F_OK), 0, "socket file removed");
}

/* ---- full rings ---- */

static int sink_count, sink_errors;
static void on_sink(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    if (argv[0]->i != sink_count) sink_errors++;
    sink_count++;
}

typedef struct counter {
    int n, errors;
} counter;

static void on_count(o2sm_client *c, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    counter *k = user_data;
    if (argv[0]->i != k->n) k->errors++;
    k->n++;
}

Test(shm, full_rings_refuse_and_count_both_ways) {
    host h;
    start_host(&h, ", \"ring_bytes\": 4096");
    o2sm_client *c = connect_polling(h.r, h.socket, 0, NULL);
    cr_assert_not_null(c);
    counter k = {0};
    cr_assert_eq(o2sm_service_new(c, "sink", NULL), O2H_OK);
    cr_assert_eq(o2sm_method_new(c, "/sink/x", "i", on_count, &k, false, true), O2H_OK);
    cr_assert(poll_until_status(h.r, "sink", O2H_STATUS_BRIDGE_NOTIME, WAIT_S));

    /* Host -> client, best effort: the client does not read; the router gets
     * O2H_QUEUE_FULL, counted. */
    int ok = 0, full = 0;
    for (int i = 0; i < 1000; i++) {
        int rc = o2h_send(h.r, "/sink/x", 0, "i", ok);
        if (rc == O2H_OK)
            ok++;
        else if (rc == O2H_QUEUE_FULL)
            full++;
        else
            cr_assert_fail("send: %s", o2h_strerror(rc));
    }
    cr_assert_gt(ok, 50);
    cr_assert_lt(ok, 4096 / 20, "a 4 KB ring holds %d 20-byte records?", ok);
    cr_assert_eq(ok + full, 1000);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(h.r, &st);
    cr_assert_eq(st.dropped_queue_full, (uint64_t)full, "every refusal is counted");
    cr_assert_eq(o2sm_poll(c), ok);
    cr_assert_eq(k.n, ok);
    cr_assert_eq(k.errors, 0, "in order");

    /* Host -> client, reliable: nothing is refused; what does not fit waits in
     * the router, in order, and the path says O2H_BLOCKED meanwhile. */
    k.n = 0;
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(o2h_send_cmd(h.r, "/sink/x", 0, "i", i), O2H_OK, "message %d", i);
    cr_assert_eq(o2h_can_send(h.r, "sink"), O2H_BLOCKED);
    for (double end = now_s() + WAIT_S; k.n < 1000 && now_s() < end;) {
        o2sm_poll(c);
        o2h_router_poll(h.r, 1); /* the router sends what waits as the ring empties */
    }
    cr_assert_eq(k.n, 1000, "every reliable message arrives");
    cr_assert_eq(k.errors, 0, "in order");
    cr_assert_eq(o2h_can_send(h.r, "sink"), O2H_OK);
    o2h_router_get_stats(h.r, &st);
    cr_assert_eq(st.dropped_queue_full, (uint64_t)full, "no reliable message dropped");
    ok = 1000;
    /* Room again. */
    cr_assert_eq(o2h_send_cmd(h.r, "/sink/x", 0, "i", ok), O2H_OK);

    /* Client -> host: the router does not poll; the client gets O2H_QUEUE_FULL, counted. */
    cr_assert_eq(o2h_service_new(h.r, "main"), O2H_OK);
    cr_assert_eq(o2h_method_new(h.r, "/main/x", "i", on_sink, NULL, false, true), O2H_OK);
    int sent = 0, refused = 0;
    for (int i = 0; i < 1000; i++) {
        int rc = o2sm_send_cmd(c, "/main/x", 0, "i", sent);
        if (rc == O2H_OK)
            sent++;
        else if (rc == O2H_QUEUE_FULL)
            refused++;
        else
            cr_assert_fail("o2sm_send: %s", o2h_strerror(rc));
    }
    cr_assert_gt(sent, 50);
    cr_assert_eq(sent + refused, 1000);
    o2sm_stats cs;
    o2sm_get_stats(c, &cs);
    cr_assert_eq(cs.send_full, (uint64_t)refused);
    o2sm_finish(c);
    double deadline = now_s() + WAIT_S;
    while (sink_count < sent && now_s() < deadline)
        o2h_router_poll(h.r, 1);
    cr_assert_eq(sink_count, sent, "what was accepted is delivered, even after the client left");
    cr_assert_eq(sink_errors, 0);

    /* With send_wait_ms a send waits for room, but only that long. */
    c = connect_polling(h.r, h.socket, 50, NULL);
    cr_assert_not_null(c);
    int rc = O2H_OK;
    for (int i = 0; i < 1000 && rc == O2H_OK; i++)
        rc = o2sm_send_cmd(c, "/main/x", 0, "i", 0);
    cr_assert_eq(rc, O2H_QUEUE_FULL);
    double w0 = now_s();
    rc = o2sm_send_cmd(c, "/main/x", 0, "i", 0);
    double waited = now_s() - w0;
    cr_assert_eq(rc, O2H_QUEUE_FULL);
    cr_assert(waited >= 0.045 && waited < 1.0, "waited %.3f s", waited);
    o2sm_finish(c);
    o2h_router_free(h.r);
}

/* ---- wake-ups are never lost ---- */

typedef struct flood {
    o2sm_client *c;
    int n, sent, failed;
} flood;

static void *flood_thread(void *arg) {
    flood *f = arg;
    for (int i = 0; i < f->n; i++) {
        int rc = o2sm_send(f->c, "/main/x", 0, "i", i);
        if (rc == O2H_OK)
            f->sent++;
        else
            f->failed++;
        /* Vary the pace, so the host is sometimes ahead, sometimes behind. */
        double until = now_s() + (double)((i >> 10) % 4) * 1e-7;
        while (now_s() < until)
            ;
    }
    return NULL;
}

/*
 * A tiny batch (and, second time round, a host that spins for records)
 * makes the host leave and re-enter its ring callback all the time: every
 * message must still arrive, in order, without a stall.
 */
static void flood_with(const char *extra) {
    host h;
    start_host(&h, extra);
    sink_count = sink_errors = 0;
    cr_assert_eq(o2h_service_new(h.r, "main"), O2H_OK);
    cr_assert_eq(o2h_method_new(h.r, "/main/x", "i", on_sink, NULL, false, true), O2H_OK);
    flood f = {.n = 200000};
    f.c = connect_polling(h.r, h.socket, 2000, NULL);
    cr_assert_not_null(f.c);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, flood_thread, &f), 0);
    double deadline = now_s() + 60;
    while (sink_count < f.n && now_s() < deadline)
        o2h_router_poll(h.r, 100); /* long waits: only the client's wake-ups end them early */
    pthread_join(t, NULL);
    cr_assert_eq(f.failed, 0);
    cr_assert_eq(sink_count, f.n, "%s: %d of %d arrived", extra, sink_count, f.n);
    cr_assert_eq(sink_errors, 0, "in order");
    o2sm_finish(f.c);
    o2h_router_free(h.r);
}

Test(shm, no_lost_wakeups_with_a_batch_of_one) {
    flood_with(", \"batch\": 2");
}

Test(shm, no_lost_wakeups_when_the_host_spins) {
    flood_with(", \"batch\": 3, \"spin_ns\": 2000");
}

/* ---- bad input ---- */

Test(shm, corrupt_ring_drops_the_client_and_is_counted) {
    host h;
    start_host(&h, NULL);
    cr_assert_eq(o2h_service_new(h.r, "main"), O2H_OK);
    sink_count = sink_errors = 0;
    cr_assert_eq(o2h_method_new(h.r, "/main/x", "i", on_sink, NULL, false, true), O2H_OK);
    o2sm_client *c = connect_polling(h.r, h.socket, 0, NULL);
    cr_assert_not_null(c);
    cr_assert_eq(o2sm_service_new(c, "bad", NULL), O2H_OK);
    cr_assert(poll_until_status(h.r, "bad", O2H_STATUS_BRIDGE_NOTIME, WAIT_S));

    /* One good message, then a record claiming 2 GB, written behind the library's back. */
    cr_assert_eq(o2sm_send_cmd(c, "/main/x", 0, "i", 0), O2H_OK);
    int fd = shm_open(o2sm_segment_name(c), O_RDWR, 0);
    cr_assert_geq(fd, 0, "%s", strerror(errno));
    struct stat sb;
    fstat(fd, &sb);
    o2sm_seg *seg = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    cr_assert_neq(seg, MAP_FAILED);
    uint64_t head = atomic_load(&seg->to_host.head);
    uint32_t bogus = 0x80000000u;
    memcpy((uint8_t *)seg + seg->data_offset + (head & (seg->ring_bytes - 1)), &bogus, 4);
    atomic_store(&seg->to_host.head, head + 64);
    munmap(seg, (size_t)sb.st_size);

    cr_assert(poll_until_status(h.r, "bad", O2H_STATUS_UNKNOWN, WAIT_S));
    cr_assert_eq(sink_count, 1, "the good message before the garbage is delivered");
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(h.r, &st);
    cr_assert_geq(st.dropped_invalid, 1);
    /* The client learns it was dropped; the host goes on serving others. */
    double deadline = now_s() + WAIT_S;
    while (o2sm_poll(c) >= 0 && now_s() < deadline)
        o2h_router_poll(h.r, 1);
    cr_assert_eq(o2sm_poll(c), O2H_TCP_HUP);
    o2sm_finish(c);
    o2sm_client *c2 = connect_polling(h.r, h.socket, 0, NULL);
    cr_assert_not_null(c2);
    cr_assert_eq(o2sm_send_cmd(c2, "/main/x", 0, "i", 1), O2H_OK);
    deadline = now_s() + WAIT_S;
    while (sink_count < 2 && now_s() < deadline)
        o2h_router_poll(h.r, 1);
    cr_assert_eq(sink_count, 2);
    o2sm_finish(c2);
    o2h_router_free(h.r);
}

static int raw_connect(const char *path) {
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    cr_assert_eq(connect(s, (struct sockaddr *)&a, sizeof a), 0);
    return s;
}

/* Poll the router until the host closes `s` (recv returns 0); the seconds it took, or -1. */
static double until_closed(o2h_router *r, int s, double limit_s, o2sm_welcome *w, bool *got_w) {
    double t0 = now_s();
    while (now_s() - t0 < limit_s) {
        o2h_router_poll(r, 5);
        uint8_t buf[sizeof(o2sm_welcome)];
        ssize_t n = recv(s, buf, sizeof buf, 0);
        if (n == (ssize_t)sizeof *w) {
            memcpy(w, buf, sizeof *w);
            *got_w = true;
        } else if (n == 0) {
            return now_s() - t0;
        }
    }
    return -1;
}

Test(shm, garbage_and_silent_registrations_are_closed) {
    host h;
    start_host(&h, NULL);
    /* Garbage instead of a hello: refused with a reason, counted, closed. */
    int s = raw_connect(h.socket);
    cr_assert_eq(send(s, "hello?", 6, 0), 6);
    o2sm_welcome w;
    bool got = false;
    cr_assert_geq(until_closed(h.r, s, WAIT_S, &w, &got), 0);
    cr_assert(got, "no answer before closing");
    cr_assert_eq(w.magic, O2SM_MAGIC);
    cr_assert_eq(w.status, O2H_INVALID_MSG);
    close(s);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(h.r, &st);
    cr_assert_eq(st.dropped_invalid, 1);
    /* Connected but silent: closed after the hello timeout (2 s). */
    s = raw_connect(h.socket);
    got = false;
    double took = until_closed(h.r, s, WAIT_S, &w, &got);
    cr_assert(took > 1.5 && took < 3.0, "closed after %.2f s", took);
    cr_assert(!got);
    close(s);
    /* The host still registers real clients. */
    o2sm_client *c = connect_polling(h.r, h.socket, 0, NULL);
    cr_assert_not_null(c);
    o2sm_finish(c);
    o2h_router_free(h.r);
}

Test(shm, max_clients_refuses_the_next_one) {
    host h;
    start_host(&h, ", \"max_clients\": 1");
    o2sm_client *a = connect_polling(h.r, h.socket, 0, NULL);
    cr_assert_not_null(a);
    int err = 0;
    o2sm_client *b = connect_polling(h.r, h.socket, 0, &err);
    cr_assert_null(b);
    cr_assert_eq(err, O2H_QUEUE_FULL, "got %s", o2h_strerror(err));
    o2sm_finish(a);
    for (int i = 0; i < 20; i++)
        o2h_router_poll(h.r, 1);
    b = connect_polling(h.r, h.socket, 0, &err);
    cr_assert_not_null(b, "a place is free again: %s", o2h_strerror(err));
    o2sm_finish(b);
    o2h_router_free(h.r);
}

Test(shm, stale_segment_and_socket_are_cleaned_at_start) {
    /* A dead pid: a child that has exited. */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char stale[96];
    snprintf(stale, sizeof stale, "/" O2SM_SEG_PREFIX "stale%d.%d.7", (int)getpid(), (int)dead);
    int fd = shm_open(stale, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    /* A live pid's segment (ours, under another name) must stay. */
    char live[96];
    snprintf(live, sizeof live, "/" O2SM_SEG_PREFIX "live%d.%d.7", (int)getpid(), (int)getppid());
    fd = shm_open(live, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    /* A socket file nobody listens on. */
    char sock[96];
    snprintf(sock, sizeof sock, "%s/o2sm.sock", tmpdir);
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    close(s);

    host h;
    start_host(&h, NULL);
    char part[64];
    snprintf(part, sizeof part, "stale%d", (int)getpid());
    cr_assert_eq(count_segments(part), 0, "stale segment removed");
    snprintf(part, sizeof part, "live%d", (int)getpid());
    cr_assert_eq(count_segments(part), 1, "a live host's segment is kept");
    shm_unlink(live);
    o2sm_client *c = connect_polling(h.r, h.socket, 0, NULL);
    cr_assert_not_null(c, "the socket works after replacing the stale one");

    /* A second host on the same socket refuses to start: it is in use. */
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"shm\", \"log_level\": \"error\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [{\"type\": \"shm\", \"name\": \"other\", \"socket\": \"%s\"}]}",
             TRANSPORT_DIR, h.socket);
    o2h_error err;
    o2h_router *r2 = router_from(json, &err);
    cr_assert_not_null(r2);
    cr_assert_neq(o2h_router_start(r2), O2H_OK);
    o2h_router_free(r2);
    cr_assert_eq(access(h.socket, F_OK), 0, "the running host's socket is left alone");
    o2sm_finish(c);
    o2h_router_free(h.r);
}

static void expect_config_error(const char *entry, const char *key) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"shm\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [{\"type\": \"shm\", %s}]}",
             TRANSPORT_DIR, entry);
    o2h_error err;
    o2h_router *r = router_from(json, &err);
    cr_assert_null(r, "accepted %s", entry);
    cr_assert_neq(strstr(err.key_path, key), NULL, "%s: error at %s: %s", entry, err.key_path,
                  err.message);
}

Test(shm, bad_config_values_name_the_key) {
    expect_config_error("\"ring_bytes\": 1000000", "ring_bytes");
    expect_config_error("\"ring_bytes\": 1024", "ring_bytes");
    expect_config_error("\"ring_bytes\": \"big\"", "ring_bytes");
    expect_config_error("\"max_clients\": 0", "max_clients");
    expect_config_error("\"name\": \"a b\"", "name");
    expect_config_error("\"name\": \"\"", "name");
    expect_config_error("\"batch\": 0", "batch");
    expect_config_error("\"spin_ns\": -1", "spin_ns");
    expect_config_error("\"socket\": \"\"", "socket");
    expect_config_error("\"ringbytes\": 4096", "ringbytes");
}

Test(shm, client_learns_at_once_when_the_host_goes) {
    host h;
    start_host(&h, NULL);
    o2sm_client *c = connect_polling(h.r, h.socket, 0, NULL);
    cr_assert_not_null(c);
    cr_assert(o2sm_connected(c));
    o2h_router_free(h.r);
    double t0 = now_s();
    int rc = o2sm_wait(c, 2000); /* the closed socket ends the wait */
    cr_assert_eq(rc, O2H_TCP_HUP);
    cr_assert_lt(now_s() - t0, 1.0);
    cr_assert_eq(o2sm_poll(c), O2H_TCP_HUP);
    cr_assert(!o2sm_connected(c));
    cr_assert_eq(o2sm_send(c, "/svc/x", 0, "i", 1), O2H_TCP_HUP);
    cr_assert_eq(o2sm_finish(c), O2H_OK);
}

Test(shm, no_host_and_bad_names) {
    int err = 0;
    char path[128];
    snprintf(path, sizeof path, "%s/nobody.sock", tmpdir);
    cr_assert_null(o2sm_connect(path, NULL, &err));
    cr_assert_eq(err, O2H_TCP_CONNECT_FAIL);
    cr_assert_null(o2sm_connect("", NULL, &err));
    cr_assert_eq(err, O2H_BAD_NAME);
}
