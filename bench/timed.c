/*
 * bench/timed — how late the scheduler delivers: 1000 messages stamped
 * 200 ms ahead (1 ms apart), on a reference clock; prints the p50/p99/max
 * lateness (delivery time minus stamp) and whether any came early or out
 * of order.
 */
#include <stdio.h>
#include <stdlib.h>

#include <o2hub/o2hub.h>

#include "benchreport.h"
#include "netbench.h"

#define COUNT 1000

typedef struct lateness {
    double late[COUNT];
    int n, early, out_of_order;
    int32_t last;
} lateness;

static void on_msg(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    lateness *l = user_data;
    double late = o2h_time_get(r) - o2h_msg_time(msg);
    if (late < 0) l->early++;
    if (argv[0]->i != l->last + 1) l->out_of_order++;
    l->last = argv[0]->i;
    if (l->n < COUNT) l->late[l->n++] = late;
}

int main(void) {
    br_meter meter;
    br_start(&meter);
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "timed"};
    o2h_router *r = o2h_router_new(&o, NULL);
    o2h_clock_set(r);
    lateness l = {.last = -1};
    o2h_service_new(r, "t");
    o2h_method_new(r, "/t/x", "i", on_msg, &l, false, true);
    double start = o2h_time_get(r) + 0.2;
    for (int i = 0; i < COUNT; i++)
        o2h_send(r, "/t/x", start + i * 0.001, "i", i);
    while (l.n < COUNT && o2h_time_get(r) < start + 10)
        o2h_router_poll(r, 100);
    br_report(&meter, &(br_result){.bench = "timed",
                                   .path = "scheduler",
                                   .payload = 40,
                                   .count = l.n,
                                   .lat_s = l.late,
                                   .n_lat = l.n});
    printf("bench timed: %d messages stamped 200 ms ahead, 1 ms apart (scheduler, timerfd)\n", l.n);
    printf("  lateness p50 %6.1f us   p99 %6.1f us   max %6.1f us\n",
           nb_percentile(l.late, l.n, 0.5) * 1e6, nb_percentile(l.late, l.n, 0.99) * 1e6,
           nb_percentile(l.late, l.n, 1.0) * 1e6);
    printf("  early %d   out of order %d\n", l.early, l.out_of_order);
    o2h_router_free(r);
    return l.n == COUNT && l.early == 0 && l.out_of_order == 0 ? 0 : 1;
}
