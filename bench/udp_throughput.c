/*
 * bench/udp_throughput — best-effort messages per second from one o2hub
 * process to another over the udp transport, beside a raw UDP sender and
 * receiver of the same datagrams (one sendto per datagram: the per-message
 * floor). Both receivers time the span from their first to their last
 * datagram; losses are reported, not hidden.
 *
 * o2hub runs twice: one o2h_send per message from the main program (each a
 * loop turn of its own: one datagram a system call), and bursts of BURST
 * sent by a handler (one turn: one sendmmsg for the burst).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "benchreport.h"
#include "netbench.h"

typedef struct tally {
    long n;
    double first, last;
    bool end;
} tally;

static void on_msg(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    tally *t = user_data;
    double now = nb_now();
    if (t->n++ == 0) t->first = now;
    t->last = now;
}

static void on_end(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    tally *t = user_data;
    t->end = true;
    o2h_send_cmd(r, "/ack/done", 0, "id", (int32_t)t->n, t->last - t->first);
}

static void receiver(int port, int peer_port) {
    o2h_router *r = nb_router(port, peer_port);
    tally t = {0};
    o2h_service_new(r, "sink");
    o2h_method_new(r, "/sink/x", "ifs", on_msg, &t, false, true);
    o2h_method_new(r, "/sink/end", "", on_end, &t, false, false);
    double limit = nb_now() + 120;
    while (!t.end && nb_now() < limit)
        o2h_router_poll(r, 100);
    double linger = nb_now() + 0.5;
    while (nb_now() < linger)
        o2h_router_poll(r, 10);
    o2h_router_free(r);
    exit(0);
}

typedef struct result {
    long n;
    double span;
    bool done;
} result;

static void on_ack(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    result *res = user_data;
    res->n = argv[0]->i;
    res->span = argv[1]->d;
    res->done = true;
}

#define BURST 256

/* A burst in one turn: argv[0] datagrams, sent while this handler runs. */
static void on_burst(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    long *sent = user_data;
    for (int32_t k = 0; k < argv[0]->i; k++) {
        o2h_builder *b = o2h_send_start(r);
        o2h_add_int32(b, (int32_t)(*sent)++);
        o2h_add_float(b, 0.5f);
        o2h_add_string(b, "note");
        o2h_send_finish(r, 0, "/sink/x", false);
    }
}

static double o2hub_rate(long n, bool bursts) {
    br_meter meter;
    br_start(&meter);
    int pa = nb_free_port(), pb = nb_free_port();
    pid_t child = fork();
    if (child == 0) receiver(pb, pa);
    o2h_router *r = nb_router(pa, pb);
    result res = {0};
    o2h_service_new(r, "ack");
    o2h_method_new(r, "/ack/done", "id", on_ack, &res, false, true);
    if (!nb_wait_service(r, "sink", 10)) exit(1);
    long refused = 0, sent = 0;
    o2h_service_new(r, "gen");
    o2h_method_new(r, "/gen/burst", "i", on_burst, &sent, false, true);
    while (bursts && sent < n) {
        o2h_send(r, "/gen/burst", 0, "i", (int32_t)(n - sent < BURST ? n - sent : BURST));
        o2h_router_poll(r, 0);
    }
    for (long i = bursts ? n : 0; i < n; i++) {
        o2h_builder *b = o2h_send_start(r);
        o2h_add_int32(b, (int32_t)i);
        o2h_add_float(b, 0.5f);
        o2h_add_string(b, "note");
        if (o2h_send_finish(r, 0, "/sink/x", false) == O2H_QUEUE_FULL) refused++;
        if ((i & 255) == 0) o2h_router_poll(r, 0);
    }
    o2h_send_cmd(r, "/sink/end", 0, "");
    double limit = nb_now() + 30;
    while (!res.done && nb_now() < limit)
        o2h_router_poll(r, 100);
    waitpid(child, NULL, 0);
    o2h_router_free(r);
    double rate = res.span > 0 ? res.n / res.span : 0;
    char what[32];
    snprintf(what, sizeof what, bursts ? "%d a turn " : "1 a send   ", BURST);
    printf("  o2hub udp, %s %10.0f msgs/s received, %ld of %ld arrived (%ld refused "
           "by a full socket)\n",
           what, rate, res.n, n, refused);
    br_report(&meter, &(br_result){.bench = "udp_throughput",
                                   .path = bursts ? "o2hub-udp-burst" : "o2hub-udp",
                                   .payload = 40,
                                   .count = res.n,
                                   .msgs_s = rate});
    return rate;
}

static double raw_rate(long n) {
    br_meter meter;
    br_start(&meter);
    int port, rport;
    int rfd = nb_udp_bind(&port);
    int pipefd[2];
    (void)!pipe(pipefd);
    pid_t child = fork();
    if (child == 0) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
        setsockopt(rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        uint8_t buf[64];
        long got = 0;
        double first = 0, last = 0;
        while (recv(rfd, buf, sizeof buf, 0) > 0) {
            last = nb_now();
            if (got++ == 0) first = last;
        }
        double span = last - first;
        (void)!write(pipefd[1], &got, sizeof got);
        (void)!write(pipefd[1], &span, sizeof span);
        exit(0);
    }
    int sfd = nb_udp_bind(&rport);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(0x7f000001);
    uint8_t msg[40] = {0};
    usleep(50000); /* the receiver's recv is already waiting on the bound socket */
    for (long i = 0; i < n; i++)
        sendto(sfd, msg, sizeof msg, 0, (struct sockaddr *)&to, sizeof to);
    long got;
    double span;
    nb_read_full(pipefd[0], &got, sizeof got);
    nb_read_full(pipefd[0], &span, sizeof span);
    waitpid(child, NULL, 0);
    printf("  raw UDP (floor)       %10.0f msgs/s received, %ld of %ld arrived\n",
           span > 0 ? got / span : 0, got, n);
    br_report(&meter, &(br_result){.bench = "udp_throughput",
                                   .path = "raw-udp",
                                   .payload = 40,
                                   .count = got,
                                   .msgs_s = span > 0 ? got / span : 0});
    return span > 0 ? got / span : 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked children must not repeat buffered lines */
    long n = argc > 1 ? atol(argv[1]) : 200000;
    printf("bench udp_throughput: %ld datagrams of 40 bytes (/sink/x ,ifs), 127.0.0.1\n", n);
    double floor = raw_rate(n);
    double one = o2hub_rate(n, false);
    double burst = o2hub_rate(n, true);
    if (floor > 0)
        printf("  ratio o2hub/raw floor %10.2f (1 a send)  %.2f (%d a turn)\n", one / floor,
               burst / floor, BURST);
    return 0;
}
