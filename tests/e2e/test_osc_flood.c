/*
 * Read pacing under a flood (transports/osc/osc_pace.h): liblo's client, in
 * its own process, sends as fast as it can into an OSC port. Over TCP every
 * message arrives, in order, while the port reads from its timer; once the
 * flood stops the port goes back to reading on every wake-up, and a lone
 * message after it is delivered. Over UDP the same start and end of pacing.
 * The router's debug log says when pacing starts and ends; the tests wait
 * for those lines, so they fail if pacing never engages or never ends.
 */
#include <criterion/criterion.h>
#include <lo/lo.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "osc_helpers.h"

#define FLOOD_COUNT 20000

typedef struct flood {
    int n, out_of_order;
    int floods, floods_over; /* log lines */
} flood;

static void on_log(void *ctx, int level, const char *origin, const char *text) {
    flood *f = ctx;
    (void)level, (void)origin;
    if (strstr(text, ": a flood: reading every")) f->floods++;
    if (strstr(text, ": flood over after")) f->floods_over++;
}

static void on_seq(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    flood *f = user_data;
    (void)r, (void)msg, (void)types, (void)argc;
    if (argv[0]->i != f->n) f->out_of_order++;
    f->n++;
}

/* A child process sending `count` messages /seq ,i 0..count-1 with liblo. */
static pid_t start_flood(int proto, int port, int count) {
    pid_t pid = fork();
    if (pid == 0) {
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        lo_address to = lo_address_new_with_proto(proto, "127.0.0.1", p);
        for (int i = 0; i < count; i++)
            if (lo_send(to, "/seq", "i", i) < 0) _exit(2);
        lo_address_free(to);
        _exit(0);
    }
    return pid;
}

static o2h_router *flood_router(int proto, int port, flood *f) {
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "\"ports\": [{\"port\": %d, \"host\": \"127.0.0.1\", \"protocol\": \"%s\","
             " \"service\": \"fromosc\"}]",
             port, proto == LO_TCP ? "tcp" : "udp");
    o2h_router *r = osc_router_logged(cfg, on_log, f);
    cr_assert_not_null(r);
    cr_assert_eq(o2h_service_new(r, "fromosc"), O2H_OK);
    cr_assert_eq(o2h_method_new(r, "/fromosc/seq", "i", on_seq, f, false, true), O2H_OK);
    return r;
}

/* After the flood: pacing has ended and one more message is delivered at once. */
static void check_flood_over(o2h_router *r, flood *f, int proto, int port) {
    cr_assert(poll_until(r, &f->floods_over, f->floods, 5), "pacing never ended (%d of %d)",
              f->floods_over, f->floods);
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    lo_address to = lo_address_new_with_proto(proto, "127.0.0.1", p);
    int before = f->n;
    f->n = -1000000; /* an out-of-order mark: the value is not checked here */
    f->out_of_order = 0;
    cr_assert_geq(lo_send(to, "/seq", "i", 7), 0);
    cr_assert(poll_until(r, &f->out_of_order, 1, 5), "a lone message after the flood was lost");
    lo_address_free(to);
    fprintf(stderr, "  after %d messages: %d flood(s), each ended; a lone message arrived\n",
            before, f->floods);
}

Test(osc, tcp_flood_is_paced_and_loses_nothing, .timeout = 90) {
    int port = free_port(SOCK_STREAM);
    flood f = {0};
    o2h_router *r = flood_router(LO_TCP, port, &f);
    pid_t sender = start_flood(LO_TCP, port, FLOOD_COUNT);
    cr_assert(poll_until(r, &f.n, FLOOD_COUNT, 60), "%d of %d arrived", f.n, FLOOD_COUNT);
    int status;
    cr_assert_eq(waitpid(sender, &status, 0), sender);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the sender failed");
    cr_assert_eq(f.out_of_order, 0, "%d messages out of order", f.out_of_order);
    cr_assert_geq(f.floods, 1, "pacing never started under a flood of %d", FLOOD_COUNT);
    fprintf(stderr, "TCP flood: %d of %d in order\n", f.n, FLOOD_COUNT);
    check_flood_over(r, &f, LO_TCP, port);
    o2h_router_free(r);
}

Test(osc, udp_flood_is_paced_then_reads_resume, .timeout = 90) {
    int port = free_port(SOCK_DGRAM);
    flood f = {0};
    o2h_router *r = flood_router(LO_UDP, port, &f);
    pid_t sender = start_flood(LO_UDP, port, FLOOD_COUNT);
    int status;
    /* The router must keep reading while the sender runs: poll until it exits. */
    double end = now_mono() + 60;
    while (waitpid(sender, &status, WNOHANG) == 0 && now_mono() < end)
        o2h_router_poll(r, 5);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the sender failed");
    poll_until(r, &f.n, FLOOD_COUNT, 1); /* the last datagrams in the socket */
    cr_assert_geq(f.floods, 1, "pacing never started under a flood of %d", FLOOD_COUNT);
    fprintf(stderr, "UDP flood: %d of %d arrived (UDP may drop; %d out of order)\n", f.n,
            FLOOD_COUNT, f.out_of_order);
    check_flood_over(r, &f, LO_UDP, port);
    o2h_router_free(r);
}
