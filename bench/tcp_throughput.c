/*
 * bench/tcp_throughput — reliable messages per second from one o2hub process
 * to another over the tcp transport, beside a raw TCP sender/receiver that
 * moves the same framed bytes (one write per message, as the router does,
 * with TCP_NODELAY as the router sets it: the floor), and the same with
 * Nagle's coalescing on (what batching small writes could reach).
 *
 * o2hub runs twice: one o2h_send_finish per message from the main program
 * (each send is a loop turn of its own, so one write each), and bursts of
 * BURST messages sent by a handler (a chord, a sequencer step: one turn, so
 * the router writes the burst in one gather write).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "benchreport.h"
#include "netbench.h"

typedef struct counter {
    long n, want;
    bool done;
} counter;

static void on_msg(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    counter *c = user_data;
    if (++c->n == c->want) o2h_send_cmd(r, "/ack/done", 0, "i", (int32_t)c->n);
}

#define BURST 256

typedef struct burst_state {
    long sent;
} burst_state;

/* A burst in one turn: argv[0] messages, sent while this handler runs. */
static void on_burst(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    burst_state *st = user_data;
    for (int32_t k = 0; k < argv[0]->i; k++) {
        o2h_builder *b = o2h_send_start(r);
        o2h_add_int32(b, (int32_t)st->sent++);
        o2h_add_float(b, 0.5f);
        o2h_add_string(b, "note");
        o2h_send_finish(r, 0, "/sink/x", true);
    }
}

static void on_ack(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    ((counter *)user_data)->done = true;
}

static void receiver(int port, int peer_port, long n) {
    o2h_router *r = nb_router(port, peer_port);
    counter c = {.want = n};
    o2h_service_new(r, "sink");
    o2h_method_new(r, "/sink/x", "ifs", on_msg, &c, false, true);
    double end = nb_now() + 120;
    while (c.n < n && nb_now() < end)
        o2h_router_poll(r, 100);
    double linger = nb_now() + 1.0; /* let the ack leave */
    while (nb_now() < linger)
        o2h_router_poll(r, 10);
    o2h_router_free(r);
    exit(0);
}

/* Bursts from a handler; o2h_can_send is the back-pressure (O2_BLOCKED while the
 * socket refuses), as an O2 program does it. */
static long send_bursts(o2h_router *r, long n) {
    burst_state st = {0};
    o2h_service_new(r, "gen");
    o2h_method_new(r, "/gen/burst", "i", on_burst, &st, false, true);
    long waits = 0;
    while (st.sent < n) {
        if (o2h_can_send(r, "sink") == O2H_BLOCKED) {
            waits++;
            o2h_router_poll(r, 1);
            continue;
        }
        long k = n - st.sent < BURST ? n - st.sent : BURST;
        o2h_send(r, "/gen/burst", 0, "i", (int32_t)k);
        o2h_router_poll(r, 0);
    }
    return waits;
}

static double o2hub_rate(long n, bool bursts) {
    br_meter meter;
    br_start(&meter);
    int pa = nb_free_port(), pb = nb_free_port();
    pid_t child = fork();
    if (child == 0) receiver(pb, pa, n);
    o2h_router *r = nb_router(pa, pb);
    counter ack = {0};
    o2h_service_new(r, "ack");
    o2h_method_new(r, "/ack/done", "i", on_ack, &ack, false, true);
    if (!nb_wait_service(r, "sink", 10)) {
        fprintf(stderr, "tcp_throughput: receiver not found\n");
        exit(1);
    }
    long refused = 0;
    double t0 = nb_now();
    if (bursts) refused = send_bursts(r, n);
    for (long i = bursts ? n : 0; i < n;) {
        o2h_builder *b = o2h_send_start(r);
        o2h_add_int32(b, (int32_t)i);
        o2h_add_float(b, 0.5f);
        o2h_add_string(b, "note");
        int rc = o2h_send_finish(r, 0, "/sink/x", true);
        if (rc == O2H_QUEUE_FULL) {
            refused++;
            o2h_router_poll(r, 1); /* back-pressure: let the socket drain, then retry */
            continue;
        }
        i++;
        if ((i & 255) == 0) o2h_router_poll(r, 0);
    }
    while (!ack.done && nb_now() < t0 + 120)
        o2h_router_poll(r, 100);
    double elapsed = nb_now() - t0;
    waitpid(child, NULL, 0);
    o2h_router_free(r);
    if (bursts)
        printf("  o2hub tcp, %d a turn  %10.0f msgs/s  (%ld waits for O2H_BLOCKED)\n", BURST,
               n / elapsed, refused);
    else
        printf("  o2hub tcp, 1 a send   %10.0f msgs/s  (%ld retries after O2H_QUEUE_FULL)\n",
               n / elapsed, refused);
    br_report(&meter, &(br_result){.bench = "tcp_throughput",
                                   .path = bursts ? "o2hub-tcp-burst" : "o2hub-tcp",
                                   .payload = 40,
                                   .count = n,
                                   .msgs_s = n / elapsed});
    return n / elapsed;
}

/* The floor: a minimal framed sender and a receiver that parses 64 KB reads. */
static double raw_rate(long n, bool nodelay) {
    br_meter meter;
    br_start(&meter);
    int port;
    int lfd = nb_tcp_listen(&port);
    pid_t child = fork();
    if (child == 0) {
        int fd = nb_tcp_connect(port);
        static uint8_t buf[65536];
        long got = 0;
        size_t have = 0;
        while (got < n) {
            ssize_t k = read(fd, buf + have, sizeof buf - have);
            if (k <= 0) exit(1);
            have += (size_t)k;
            size_t at = 0;
            while (have - at >= 4) {
                uint32_t len = o2h_rd_u32(buf + at);
                if (have - at < 4 + len) break;
                at += 4 + len;
                got++;
            }
            memmove(buf, buf + at, have - at);
            have -= at;
        }
        (void)!write(fd, "k", 1);
        exit(0);
    }
    int fd = accept(lfd, NULL, NULL);
    /* As the tcp transport: no Nagle, each message leaves at once. Without
     * TCP_NODELAY the kernel coalesces small writes: what batching could reach. */
    int one = nodelay ? 1 : 0;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_int32(b, 1);
    o2h_add_float(b, 0.5f);
    o2h_add_string(b, "note");
    o2h_msg *m = o2h_builder_finish(b, 0, "/sink/x", 1);
    uint8_t frame[64];
    o2h_wr_u32(frame, m->length);
    memcpy(frame + 4, m->data, m->length);
    size_t flen = 4 + m->length;
    double t0 = nb_now();
    for (long i = 0; i < n; i++)
        if (write(fd, frame, flen) != (ssize_t)flen) exit(1);
    char ack;
    nb_read_full(fd, &ack, 1);
    double elapsed = nb_now() - t0;
    waitpid(child, NULL, 0);
    close(fd);
    close(lfd);
    o2h_msg_unref(m);
    o2h_builder_free(b);
    printf("  raw TCP %-13s %10.0f msgs/s\n", nodelay ? "(floor)" : "(Nagle)", n / elapsed);
    br_report(&meter, &(br_result){.bench = "tcp_throughput",
                                   .path = nodelay ? "raw-tcp" : "raw-tcp-nagle",
                                   .payload = 40,
                                   .count = n,
                                   .msgs_s = n / elapsed});
    return n / elapsed;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked children must not repeat buffered lines */
    long n = argc > 1 ? atol(argv[1]) : 200000;
    printf("bench tcp_throughput: %ld messages of 40 bytes (/sink/x ,ifs), 127.0.0.1\n", n);
    double floor = raw_rate(n, true);
    double nagle = raw_rate(n, false);
    double one = o2hub_rate(n, false);
    double burst = o2hub_rate(n, true);
    printf("  ratio o2hub/raw floor %10.2f (1 a send)  %.2f (%d a turn)\n", one / floor,
           burst / floor, BURST);
    printf("  ratio o2hub/raw Nagle %10.2f (1 a send)  %.2f (%d a turn)\n", one / nagle,
           burst / nagle, BURST);
    return 0;
}
