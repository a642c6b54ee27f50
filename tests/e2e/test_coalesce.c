/*
 * Send coalescing and fair reading in the tcp and udp transports, between
 * two routers in this process on 127.0.0.1 (real plugins, real sockets).
 *
 * - A burst a handler sends in one loop turn arrives whole and in order, and
 *   leaves in one gather write (tcp) or one sendmmsg (udp): this executable
 *   interposes the socket send calls (it exports them, -rdynamic, so the
 *   plugins' calls bind here) and counts them.
 * - A send by the program outside the loop is not held for a later turn:
 *   the receiver gets it while the sender is never polled again.
 * - A connection that floods does not hold back another's message for more
 *   than a bounded number of its own messages.
 * - Runs of same-size datagrams to one address leave as segmented sends
 *   (UDP_SEGMENT) and arrive whole (UDP_GRO), cut back into their messages;
 *   with "gso" off on either side they still arrive whole and in order.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "proc_util.h"

/* ---- counting the transports' send calls ---- */

static atomic_long n_send, n_sendmsg, n_sendmmsg, n_sendto;
/* sends carrying UDP_SEGMENT (runs), and received buffers the kernel says hold a run */
static atomic_long n_segmented, n_coalesced;

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))
#define EXPORTED __attribute__((visibility("default"))) /* the build hides symbols */

EXPORTED ssize_t send(int fd, const void *buf, size_t len, int flags) {
    atomic_fetch_add(&n_send, 1);
    return REAL("send", ssize_t(*)(int, const void *, size_t, int))(fd, buf, len, flags);
}

EXPORTED ssize_t sendmsg(int fd, const struct msghdr *m, int flags) {
    atomic_fetch_add(&n_sendmsg, 1);
    return REAL("sendmsg", ssize_t(*)(int, const struct msghdr *, int))(fd, m, flags);
}

static bool has_cmsg(const struct msghdr *h, int type, int *value) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR((struct msghdr *)h, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == type) {
            uint16_t v16 = 0;
            int v = 0;
            if (type == UDP_SEGMENT) {
                memcpy(&v16, CMSG_DATA(c), sizeof v16);
                v = v16;
            } else
                memcpy(&v, CMSG_DATA(c), sizeof v);
            if (value) *value = v;
            return true;
        }
    return false;
}

EXPORTED int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags) {
    atomic_fetch_add(&n_sendmmsg, 1);
    for (unsigned i = 0; i < n; i++)
        if (v[i].msg_hdr.msg_controllen && has_cmsg(&v[i].msg_hdr, UDP_SEGMENT, NULL))
            atomic_fetch_add(&n_segmented, 1);
    return REAL("sendmmsg", int (*)(int, struct mmsghdr *, unsigned int, int))(fd, v, n, flags);
}

EXPORTED ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                        socklen_t tolen) {
    atomic_fetch_add(&n_sendto, 1);
    return REAL("sendto", ssize_t(*)(int, const void *, size_t, int, const struct sockaddr *,
                                     socklen_t))(fd, buf, len, flags, to, tolen);
}

EXPORTED int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags,
                      struct timespec *timeout) {
    int got = REAL("recvmmsg", int (*)(int, struct mmsghdr *, unsigned int, int,
                                       struct timespec *))(fd, v, n, flags, timeout);
    for (int i = 0; i < got; i++) {
        int size = 0;
        if (v[i].msg_hdr.msg_controllen && has_cmsg(&v[i].msg_hdr, UDP_GRO, &size) && size > 0 &&
            (unsigned)size < v[i].msg_len)
            atomic_fetch_add(&n_coalesced, 1);
    }
    return got;
}

static void reset_counts(void) {
    atomic_store(&n_segmented, 0);
    atomic_store(&n_coalesced, 0);
    atomic_store(&n_send, 0);
    atomic_store(&n_sendmsg, 0);
    atomic_store(&n_sendmmsg, 0);
    atomic_store(&n_sendto, 0);
}

/* ---- routers ---- */

/* tcp and udp (with `tcp_extra` and `udp_extra` keys) on `port`, static discovery of
 * `peer_port` (0: none). */
static o2h_router *router_with(int port, int peer_port, const char *tcp_extra,
                               const char *udp_extra) {
    char peers[64] = "";
    if (peer_port) snprintf(peers, sizeof peers, "\"127.0.0.1:%d\"", peer_port);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"coalesce\", \"plugin_path\": [\"%s\", \"%s\"],"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d%s},"
             "  {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d%s}],"
             " \"discovery\": [{\"type\": \"static\", \"peers\": [%s]}]}",
             TRANSPORT_DIR, DISCOVERY_DIR, port, tcp_extra, port, udp_extra, peers);
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "coalesce", &o, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    return r;
}

static o2h_router *router(int port, int peer_port) {
    return router_with(port, peer_port, "", "");
}

#define MAX_GOT 4096

typedef struct sink {
    int32_t got[MAX_GOT];
    int n;
} sink;

static void on_x(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                 int argc, void *user_data) {
    sink *s = user_data;
    if (s->n < MAX_GOT) s->got[s->n] = argv[0]->i;
    s->n++;
}

/* /sink/s: a number and a string of a length that follows from it, so datagrams
 * of a burst differ in size in runs of three. */
static size_t text_length(int32_t i) {
    return (size_t)(i / 3 % 5) * 4;
}

static void on_s(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                 int argc, void *user_data) {
    sink *s = user_data;
    int32_t i = argv[0]->i;
    if (s->n < MAX_GOT) s->got[s->n] = strlen(argv[1]->s) == text_length(i) ? i : -1;
    s->n++;
}

typedef struct burst {
    bool reliable;
    bool sizes; /* /sink/s (sizes that change) instead of /sink/x */
    int runs;   /* the handler ran */
} burst;

/* One loop turn's burst: argv[0] messages to B's /sink/x, numbered from 0. */
static void on_burst(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    burst *b = user_data;
    b->runs++;
    static const char text[] = "abcdefghijklmnopqrstuvwxyz";
    for (int32_t i = 0; i < argv[0]->i; i++)
        if (b->sizes)
            o2h_send(r, "/sink/s", 0, "is", i, text + sizeof text - 1 - text_length(i));
        else if (b->reliable)
            o2h_send_cmd(r, "/sink/x", 0, "i", i);
        else
            o2h_send(r, "/sink/x", 0, "i", i);
}

typedef struct pair {
    o2h_router *a, *b;
    sink got;
    burst how;
} pair;

/* A (with /gen/burst, tcp keys `a_tcp`, udp keys `a_udp`) and B (with /sink/x, udp keys
 * `b_udp`) see each other's services. */
static void pair_start_udp(pair *p, const char *a_tcp, const char *a_udp, const char *b_udp) {
    int pa = pu_free_port(), pb = pu_free_port();
    p->a = router_with(pa, pb, a_tcp, a_udp);
    p->b = router_with(pb, pa, "", b_udp);
    o2h_service_new(p->b, "sink");
    o2h_method_new(p->b, "/sink/x", "i", on_x, &p->got, false, true);
    o2h_method_new(p->b, "/sink/s", "is", on_s, &p->got, false, true);
    o2h_service_new(p->a, "gen");
    o2h_method_new(p->a, "/gen/burst", "i", on_burst, &p->how, false, true);
    double end = pu_now() + 20;
    while ((o2h_status(p->a, "sink") < 0 || o2h_status(p->b, "gen") < 0) && pu_now() < end) {
        o2h_router_poll(p->a, 5);
        o2h_router_poll(p->b, 5);
    }
    cr_assert_geq(o2h_status(p->a, "sink"), 0, "A never saw B's service");
    /* Let the handshake's own messages go before counting. */
    for (int i = 0; i < 20; i++) {
        o2h_router_poll(p->a, 2);
        o2h_router_poll(p->b, 2);
    }
}

static void pair_start_with(pair *p, const char *a_tcp) {
    pair_start_udp(p, a_tcp, "", "");
}

static void pair_start(pair *p) {
    pair_start_with(p, "");
}

static void pair_free(pair *p) {
    o2h_router_free(p->a);
    o2h_router_free(p->b);
}

/* Poll B (only) until it has `n` messages, at most `limit` seconds. */
static void wait_b(pair *p, int n, double limit) {
    double end = pu_now() + limit;
    while (p->got.n < n && pu_now() < end)
        o2h_router_poll(p->b, 10);
}

static void assert_in_order(const pair *p, int n) {
    cr_assert_eq(p->got.n, n, "%d of %d arrived", p->got.n, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(p->got.got[i], i, "message %d arrived as number %d", i, p->got.got[i]);
}

TestSuite(coalesce, .timeout = 60);

Test(coalesce, a_reliable_burst_of_one_turn_leaves_in_one_write_and_arrives_in_order) {
    pair p = {.how.reliable = true};
    pair_start(&p);
    const int n = 500; /* 500 * 28 framed bytes: one gather write takes them all */
    reset_counts();
    cr_assert_eq(o2h_send(p.a, "/gen/burst", 0, "i", n), O2H_OK);
    long writes = atomic_load(&n_send) + atomic_load(&n_sendmsg);
    cr_assert_leq(writes, 2, "%ld writes for a burst of %d (one per message: not coalesced)",
                  writes, n);
    cr_assert_geq(writes, 1, "nothing written before o2h_send returned: held for a later turn");
    wait_b(&p, n, 15);
    assert_in_order(&p, n);
    pair_free(&p);
}

Test(coalesce, a_best_effort_burst_of_one_turn_leaves_in_one_sendmmsg_and_arrives_in_order) {
    pair p = {.how.reliable = false};
    pair_start(&p);
    const int n = 100; /* well inside the receiver's socket buffer: loopback keeps them all */
    reset_counts();
    cr_assert_eq(o2h_send(p.a, "/gen/burst", 0, "i", n), O2H_OK);
    long batches = atomic_load(&n_sendmmsg), singles = atomic_load(&n_sendto);
    cr_assert_eq(singles, 0, "%ld datagrams sent one by one", singles);
    cr_assert_leq(batches, 2, "%ld sendmmsg calls for a burst of %d", batches, n);
    cr_assert_geq(batches, 1, "nothing sent before o2h_send returned: held for a later turn");
    wait_b(&p, n, 15);
    assert_in_order(&p, n);
    pair_free(&p);
}

/* A turn's burst far over the link's bound: held by the core, written as room comes. */
Test(coalesce, a_reliable_burst_over_the_send_queue_bound_all_arrives_in_order) {
    pair p = {.how.reliable = true};
    pair_start_with(&p, ", \"send_queue_bytes\": 1024");
    const int n = 3000; /* 84 KB: 80 times the bound */
    cr_assert_eq(o2h_send(p.a, "/gen/burst", 0, "i", n), O2H_OK);
    double end = pu_now() + 20;
    while (p.got.n < n && pu_now() < end) {
        o2h_router_poll(p.a, 1);
        o2h_router_poll(p.b, 1);
    }
    assert_in_order(&p, n);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(p.a, &st);
    cr_assert_eq(st.dropped_queue_full, 0, "%llu reliable messages dropped",
                 (unsigned long long)st.dropped_queue_full);
    cr_assert_gt(st.held, 0, "the bound never held anything back: the test proves nothing");
    pair_free(&p);
}

/* A burst asked for over the network: sent inside A's poll, written at its end. */
Test(coalesce, a_burst_sent_inside_a_poll_leaves_at_the_end_of_that_turn) {
    pair p = {.how.reliable = true};
    pair_start(&p);
    const int n = 300;
    cr_assert_eq(o2h_send_cmd(p.b, "/gen/burst", 0, "i", n), O2H_OK);
    reset_counts();
    double end = pu_now() + 10;
    while (p.how.runs == 0 && pu_now() < end) /* the turn that reads the request sends the burst */
        o2h_router_poll(p.a, 100);
    cr_assert_eq(p.how.runs, 1, "the request never reached A's handler");
    long writes = atomic_load(&n_send) + atomic_load(&n_sendmsg);
    cr_assert_leq(writes, 3, "%ld writes for a burst of %d in one turn", writes, n);
    cr_assert_geq(writes, 1, "the burst was not written at the end of its turn");
    wait_b(&p, n, 15);
    assert_in_order(&p, n);
    pair_free(&p);
}

/* More than the outbox holds in one turn: written as it fills, never refused on loopback. */
Test(coalesce, a_best_effort_burst_larger_than_the_outbox_goes_in_a_few_sendmmsg) {
    pair p = {.how.reliable = false};
    pair_start(&p);
    const int n = 1000; /* the outbox holds 256 */
    reset_counts();
    cr_assert_eq(o2h_send(p.a, "/gen/burst", 0, "i", n), O2H_OK);
    long batches = atomic_load(&n_sendmmsg);
    cr_assert_geq(batches, 4, "%ld sendmmsg calls for %d datagrams: the outbox is 256", batches, n);
    cr_assert_leq(batches, 8, "%ld sendmmsg calls for %d datagrams", batches, n);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(p.a, &st);
    cr_assert_eq(st.dropped_queue_full, 0, "a full outbox refused %llu",
                 (unsigned long long)st.dropped_queue_full);
    wait_b(&p, 1, 10); /* the receiver's buffer may overflow: best effort; some arrive */
    cr_assert_gt(p.got.n, 0);
    for (int i = 1; i < p.got.n && i < MAX_GOT; i++)
        cr_assert_gt(p.got.got[i], p.got.got[i - 1], "datagrams out of order at %d", i);
    pair_free(&p);
}

/* A burst of equal datagrams to one peer: runs of up to 64 in one segmented send each,
 * read whole by the receiver and cut back into messages. */
Test(coalesce, a_best_effort_burst_of_one_size_leaves_in_segmented_runs_and_arrives_whole) {
    pair p = {.how.reliable = false};
    pair_start(&p);
    const int n = 200;
    reset_counts();
    cr_assert_eq(o2h_send(p.a, "/gen/burst", 0, "i", n), O2H_OK);
    long runs = atomic_load(&n_segmented);
    cr_assert_geq(runs, 4, "%ld segmented sends for %d datagrams (runs of at most 64)", runs, n);
    cr_assert_leq(runs, 5, "%ld segmented sends for %d datagrams of one size", runs, n);
    wait_b(&p, n, 15);
    assert_in_order(&p, n);
    long whole = atomic_load(&n_coalesced);
    cr_assert_geq(whole, 1, "the receiver never read a run whole: GRO was not exercised");
    pair_free(&p);
}

/* Sizes that change every three datagrams: runs end there; nothing is cut wrong. */
Test(coalesce, datagrams_of_changing_sizes_arrive_whole_and_in_order) {
    pair p = {.how.sizes = true};
    pair_start(&p);
    const int n = 150;
    reset_counts();
    cr_assert_eq(o2h_send(p.a, "/gen/burst", 0, "i", n), O2H_OK);
    cr_assert_gt(atomic_load(&n_segmented), 0, "no run was sent segmented");
    wait_b(&p, n, 15);
    assert_in_order(&p, n); /* a datagram cut at a wrong size fails its length check (-1) */
    pair_free(&p);
}

Test(coalesce, with_gso_off_a_burst_goes_one_datagram_per_message_and_arrives_in_order) {
    pair p = {.how.reliable = false};
    pair_start_udp(&p, "", ", \"gso\": false", "");
    const int n = 100;
    reset_counts();
    cr_assert_eq(o2h_send(p.a, "/gen/burst", 0, "i", n), O2H_OK);
    cr_assert_eq(atomic_load(&n_segmented), 0, "segmented sends with gso off");
    cr_assert_geq(atomic_load(&n_sendmmsg), 1, "the burst did not leave in a sendmmsg");
    wait_b(&p, n, 15);
    assert_in_order(&p, n);
    pair_free(&p);
}

/* A receiver that has not asked for GRO (O2 itself, liblo, gso off) gets ordinary datagrams. */
Test(coalesce, a_receiver_without_gro_gets_segmented_runs_as_ordinary_datagrams) {
    pair p = {.how.sizes = true};
    pair_start_udp(&p, "", "", ", \"gso\": false");
    const int n = 150;
    reset_counts();
    cr_assert_eq(o2h_send(p.a, "/gen/burst", 0, "i", n), O2H_OK);
    cr_assert_gt(atomic_load(&n_segmented), 0, "no run was sent segmented");
    wait_b(&p, n, 15);
    assert_in_order(&p, n);
    cr_assert_eq(atomic_load(&n_coalesced), 0, "a run arrived whole at a socket without GRO");
    pair_free(&p);
}

/* The program's own sends are turns of their own: out before the call returns. */
Test(coalesce, sends_from_the_program_are_not_held_for_a_later_poll) {
    pair p = {0};
    pair_start(&p);
    for (int32_t i = 0; i < 3; i++) {
        cr_assert_eq(o2h_send_cmd(p.a, "/sink/x", 0, "i", i), O2H_OK);
        cr_assert_eq(o2h_send(p.a, "/sink/x", 0, "i", i + 100), O2H_OK);
    }
    wait_b(&p, 6, 10); /* A is never polled again */
    cr_assert_eq(p.got.n, 6, "%d of 6 arrived without a poll of the sender", p.got.n);
    pair_free(&p);
}

/* ---- OSC delegates over UDP ---- */

/* A router whose service "synth" goes to an OSC server on 127.0.0.1:`server_port` by UDP. */
static o2h_router *osc_router(int server_port) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"coalesce\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [{\"type\": \"osc\", \"delegates\": [{\"service\": \"synth\","
             " \"address\": \"127.0.0.1:%d\"}]}]}",
             TRANSPORT_DIR, server_port);
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "coalesce-osc", &o, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    return r;
}

/* The OSC server: a UDP socket on loopback with room for every datagram of a test. */
static int osc_server(int *port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* The int argument of one "/x ,i" datagram, or -1 if none came within 5 s. */
static int32_t osc_next_int(int fd) {
    uint8_t buf[64];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n != 12 || memcmp(buf, "/x\0\0,i\0\0", 8) != 0) return -1;
    return (int32_t)((uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 |
                     buf[11]);
}

static void on_osc_burst(o2h_router *r, const o2h_msg *msg, const char *types,
                         const o2h_arg *const *argv, int argc, void *user_data) {
    for (int32_t i = 0; i < argv[0]->i; i++)
        o2h_send(r, "/synth/x", 0, "i", i);
}

Test(coalesce, an_osc_udp_burst_of_one_turn_leaves_in_one_sendmmsg_and_arrives_in_order) {
    int port, fd = osc_server(&port);
    o2h_router *r = osc_router(port);
    cr_assert_eq(o2h_service_new(r, "gen"), O2H_OK);
    cr_assert_eq(o2h_method_new(r, "/gen/burst", "i", on_osc_burst, NULL, false, true), O2H_OK);
    const int n = 200;
    reset_counts();
    cr_assert_eq(o2h_send(r, "/gen/burst", 0, "i", n), O2H_OK);
    long batches = atomic_load(&n_sendmmsg), singles = atomic_load(&n_sendto);
    cr_assert_eq(singles, 0, "%ld OSC datagrams sent one by one", singles);
    cr_assert_eq(batches, 1, "%ld sendmmsg calls for a burst of %d", batches, n);
    for (int32_t i = 0; i < n; i++)
        cr_assert_eq(osc_next_int(fd), i, "datagram %d missing or out of order", i);
    o2h_router_free(r);
    close(fd);
}

Test(coalesce, an_osc_udp_burst_larger_than_the_outbox_all_arrives_in_order) {
    int port, fd = osc_server(&port);
    o2h_router *r = osc_router(port);
    cr_assert_eq(o2h_service_new(r, "gen"), O2H_OK);
    cr_assert_eq(o2h_method_new(r, "/gen/burst", "i", on_osc_burst, NULL, false, true), O2H_OK);
    const int n = 1000; /* the outbox holds 256 */
    reset_counts();
    cr_assert_eq(o2h_send(r, "/gen/burst", 0, "i", n), O2H_OK);
    long batches = atomic_load(&n_sendmmsg);
    cr_assert(batches >= 4 && batches <= 8, "%ld sendmmsg calls for %d datagrams", batches, n);
    for (int32_t i = 0; i < n; i++)
        cr_assert_eq(osc_next_int(fd), i, "datagram %d missing or out of order", i);
    /* A lone send outside the loop is out before the call returns. */
    cr_assert_eq(o2h_send(r, "/synth/x", 0, "i", 7), O2H_OK);
    cr_assert_eq(osc_next_int(fd), 7);
    o2h_router_free(r);
    close(fd);
}

/* ---- fairness ---- */

typedef struct fair {
    long flood;          /* flood messages dispatched */
    long flood_at_write; /* ... when the control message was written */
    long flood_at_ctl;   /* ... when it was dispatched */
    long flood_at_turn;  /* ... when the turn that dispatched it began */
    double ctl_written, ctl_seen;
    bool hello, ctl;
} fair;

static void on_flood(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    ((fair *)user_data)->flood++;
}

static void on_ctl(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    fair *f = user_data;
    if (argv[0]->i == 0) {
        f->hello = true;
        return;
    }
    f->ctl = true;
    f->ctl_seen = pu_now();
    f->flood_at_ctl = f->flood;
}

/* `msg` framed as the tcp transport reads it (4-byte length first) at `at`. */
static size_t frame(uint8_t *at, const char *address, int32_t value) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_int32(b, value);
    o2h_msg *m = o2h_builder_finish(b, 0, address, O2H_FLAG_RELIABLE);
    cr_assert_not_null(m);
    o2h_wr_u32(at, m->length);
    memcpy(at + 4, m->data, m->length);
    size_t len = 4 + m->length;
    o2h_msg_unref(m);
    o2h_builder_free(b);
    return len;
}

static int tcp_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "%s", strerror(errno));
    return fd;
}

typedef struct flooder {
    int fd;
    uint8_t buf[1 << 16];
    size_t len;
    atomic_bool stop;
} flooder;

/* Writes whole buffers of flood frames, blocking, until told to stop. */
static void *flood_thread(void *ctx) {
    flooder *fl = ctx;
    while (!atomic_load(&fl->stop)) {
        size_t off = 0;
        while (off < fl->len) {
            ssize_t w = write(fl->fd, fl->buf + off, fl->len - off);
            if (w <= 0) return NULL;
            off += (size_t)w;
        }
    }
    return NULL;
}

/* Router B on `port` with /sink/flood and /sink/ctl counted in `f`, and a tcp control
 * connection whose first message (/sink/ctl 0) has arrived: its socket. */
static int sink_with_control(o2h_router **b, int port, fair *f) {
    *b = router(port, 0);
    o2h_service_new(*b, "sink");
    o2h_method_new(*b, "/sink/flood", "i", on_flood, f, false, true);
    o2h_method_new(*b, "/sink/ctl", "i", on_ctl, f, false, true);
    int ctl = tcp_to(port);
    uint8_t one[64];
    size_t k = frame(one, "/sink/ctl", 0);
    cr_assert_eq(write(ctl, one, k), (ssize_t)k);
    double end = pu_now() + 10;
    while (!f->hello && pu_now() < end)
        o2h_router_poll(*b, 10);
    cr_assert(f->hello, "the control connection's first message never came");
    return ctl;
}

/* Bad datagrams (empty, too short, not O2) are dropped and counted; the next good one comes. */
Test(coalesce, empty_and_malformed_datagrams_are_counted_and_the_next_good_one_arrives) {
    int port = pu_free_port();
    o2h_router *b;
    fair f = {0};
    int ctl = sink_with_control(&b, port, &f);
    o2h_stats before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    o2h_router_get_stats(b, &before);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint8_t good[64];
    size_t k = frame(good, "/sink/flood", 7) - 4;
    cr_assert_eq(sendto(fd, "", 0, 0, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(sendto(fd, "abc", 3, 0, (struct sockaddr *)&a, sizeof a), 3);
    cr_assert_eq(sendto(fd, good + 4, k, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)k);
    double end = pu_now() + 10;
    while (f.flood == 0 && pu_now() < end)
        o2h_router_poll(b, 10);
    o2h_router_get_stats(b, &after);
    close(fd);
    close(ctl);
    o2h_router_free(b);
    cr_assert_eq(f.flood, 1, "the good datagram after the bad ones never came");
    cr_assert_eq(after.dropped_invalid - before.dropped_invalid, 2,
                 "%llu of the 2 bad datagrams counted",
                 (unsigned long long)(after.dropped_invalid - before.dropped_invalid));
}

Test(coalesce, a_flooding_connection_does_not_hold_back_another) {
    signal(SIGPIPE, SIG_IGN); /* the flooder's last write may meet a closed socket */
    int port = pu_free_port();
    o2h_router *b;
    fair f = {0};
    int ctl = sink_with_control(&b, port, &f);
    static flooder fl;
    fl.fd = tcp_to(port);
    uint8_t one[64];
    size_t k;
    double end;

    uint8_t m[64];
    size_t mlen = frame(m, "/sink/flood", 7);
    for (fl.len = 0; fl.len + mlen <= sizeof fl.buf; fl.len += mlen)
        memcpy(fl.buf + fl.len, m, mlen);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flood_thread, &fl), 0);
    /* The flood is under way (a good part of a megabyte read) before the control message. */
    end = pu_now() + 10;
    while (f.flood < 40000 && pu_now() < end)
        o2h_router_poll(b, 10);
    cr_assert_geq(f.flood, 40000, "the flood did not get going");

    k = frame(one, "/sink/ctl", 1);
    f.flood_at_write = f.flood;
    f.ctl_written = pu_now();
    cr_assert_eq(write(ctl, one, k), (ssize_t)k);
    end = pu_now() + 10;
    while (!f.ctl && pu_now() < end)
        o2h_router_poll(b, 10);

    atomic_store(&fl.stop, true);
    shutdown(fl.fd, SHUT_RDWR); /* a blocked write returns */
    pthread_join(th, NULL);
    close(fl.fd);
    close(ctl);
    o2h_router_free(b);

    cr_assert(f.ctl, "the control message never came while the flood went on");
    long behind = f.flood_at_ctl - f.flood_at_write;
    /* One 64 KB read a turn is some 1800 of these 36-byte frames; two turns at most
     * come before the control connection's (the one under way, and the next). */
    cr_assert_leq(behind, 7000, "%ld flood messages were dispatched before the control message",
                  behind);
    cr_assert_lt(f.ctl_seen - f.ctl_written, 2.0, "the control message waited %.3f s",
                 f.ctl_seen - f.ctl_written);
}

/* Datagrams of `n` /sink/flood messages to `port`, as fast as the socket takes them. */
static int udp_flood(int fd, int port, int n) {
    uint8_t m[64];
    size_t mlen = frame(m, "/sink/flood", 7) - 4; /* a datagram has no length prefix */
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int sent = 0;
    for (int i = 0; i < n; i++)
        if (sendto(fd, m + 4, mlen, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)mlen) sent++;
    return sent;
}

/* One recvmmsg batch (the udp transport's "batch", 16 by default) a turn. */
#define UDP_BATCH 16

Test(coalesce, a_tcp_control_message_goes_ahead_of_a_udp_flood_that_is_still_readable) {
    int port = pu_free_port();
    o2h_router *b;
    fair f = {0};
    int ctl = sink_with_control(&b, port, &f);
    uint8_t one[64];
    size_t k;
    double end;

    /* Some hundred datagrams wait in the router's socket (best effort: the receive buffer
     * may keep fewer); the first turn of the flood reads a batch of them. */
    int flood = socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert_geq(udp_flood(flood, port, 300), 200);
    end = pu_now() + 10;
    while (f.flood == 0 && pu_now() < end)
        o2h_router_poll(b, 10);
    cr_assert_gt(f.flood, 0, "no datagram of the flood was dispatched");
    cr_assert_leq(f.flood, UDP_BATCH, "one turn took %ld datagrams: more than one batch", f.flood);
    long first_turn = f.flood;
    o2h_router_poll(b, 0);
    cr_assert_leq(f.flood - first_turn, UDP_BATCH, "the next turn took %ld datagrams",
                  f.flood - first_turn);
    cr_assert_gt(f.flood, first_turn, "the flood ran dry: it must still be readable");

    /* The flood is readable turn after turn; the control message comes in beside it. */
    k = frame(one, "/sink/ctl", 1);
    f.flood_at_write = f.flood;
    cr_assert_eq(write(ctl, one, k), (ssize_t)k);
    end = pu_now() + 10;
    while (!f.ctl && pu_now() < end) {
        f.flood_at_turn = f.flood;
        o2h_router_poll(b, 10);
    }
    long left = 0;
    for (int i = 0; i < 100 && f.flood > left; i++) { /* drain what the flood left */
        left = f.flood;
        o2h_router_poll(b, 5);
    }
    close(flood);
    close(ctl);
    o2h_router_free(b);

    cr_assert(f.ctl, "the control message never came beside the flood");
    long behind = f.flood_at_ctl - f.flood_at_write;
    cr_assert_gt(f.flood, f.flood_at_ctl,
                 "the flood was over before the control message: the test proves nothing");
    /* Served before the busy socket in the turn that finds it readable; before, the
     * socket ready first (the flood's) had its batches first. Should the kernel hand the
     * bytes over a turn late, that turn took one batch of the flood. */
    cr_assert_eq(f.flood_at_ctl - f.flood_at_turn, 0,
                 "%ld flood datagrams went before the control message in its turn",
                 f.flood_at_ctl - f.flood_at_turn);
    cr_assert_leq(behind, UDP_BATCH,
                  "%ld flood datagrams were dispatched before the control message", behind);
}
