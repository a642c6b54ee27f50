/*
 * The process client of the shm e2e test: connects to the host at SOCKET,
 * offers ME, waits for "/ME/go", exchanges N messages with PEER (see
 * shm_exchange.h) and reports on stdout, then keeps serving until the host
 * goes away or it is killed:
 *
 *   shm_client SOCKET ME PEER N WINDOW
 *   -> "ready ID SEGMENT"
 *   -> "synced"                         once o2sm_time_get() works
 *   -> "done sent S received R errors E send_sum X recv_sum Y stats full F wakeups W sleeps Z"
 *   -> "failed ..."                     on any error
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "o2sm.h"
#include "shm_exchange.h"

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: shm_client SOCKET ME PEER N WINDOW\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int err;
    o2sm_options opts = {.struct_size = sizeof opts, .label = "e2e process", .send_wait_ms = 100};
    o2sm_client *c = o2sm_connect(argv[1], &opts, &err);
    if (!c) {
        printf("failed connect %s\n", o2h_strerror(err));
        return 1;
    }
    exchange x;
    if (exchange_init(&x, c, argv[2], argv[3], (uint32_t)atol(argv[4]), (uint32_t)atol(argv[5])) !=
        O2H_OK) {
        printf("failed init\n");
        return 1;
    }
    printf("ready %d %s\n", o2sm_get_id(c), o2sm_segment_name(c));
    double deadline = o2sm_local_time() + 10;
    while ((o2sm_time_get(c) < 0 || !x.go) && o2sm_local_time() < deadline) {
        if (o2sm_poll(c) < 0) break;
        o2sm_wait(c, 5);
    }
    if (!x.go || o2sm_time_get(c) < 0) {
        printf("failed no go or no clock\n");
        return 1;
    }
    printf("synced\n");
    if (exchange_run(&x, 120) != 0) {
        printf("failed exchange sent %u received %u acked %u errors %u send_errors %u\n", x.sent,
               x.received, x.acked, x.errors, x.send_errors);
        return 1;
    }
    o2sm_stats st;
    o2sm_get_stats(c, &st);
    printf("done sent %u received %u errors %u send_sum %" PRIx64 " recv_sum %" PRIx64
           " stats full %" PRIu64 " wakeups %" PRIu64 " sleeps %" PRIu64 "\n",
           x.sent, x.received, x.errors, x.send_sum, x.recv_sum, st.send_full, st.wakeups_sent,
           st.sleeps);
    /* Serve until the host leaves (or SIGKILL). */
    while (o2sm_poll(c) >= 0)
        o2sm_wait(c, 100);
    o2sm_finish(c);
    return 0;
}
