/* The scheduler: timed messages wait for their O2 time, in order, never early. */
#include <criterion/criterion.h>
#include <string.h>

#include <o2hub/o2hub.h>

#include "router.h"

typedef struct arrivals {
    int n;
    int32_t order[16];
    double late[16]; /* arrival time minus stamp */
} arrivals;

static void arrive(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    arrivals *a = user_data;
    if (a->n >= 16) return;
    a->late[a->n] = o2h_time_get(r) - o2h_msg_time(msg);
    a->order[a->n++] = argv[0]->i;
}

static o2h_router *reference_router(arrivals *a) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "sched"};
    o2h_router *r = o2h_router_new(&o, NULL);
    cr_assert_lt(o2h_time_get(r), 0, "no clock before o2h_clock_set");
    cr_assert_eq(o2h_clock_set(r), O2H_OK);
    cr_assert_geq(o2h_time_get(r), 0);
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/x", "i", arrive, a, false, true);
    return r;
}

static void poll_until(o2h_router *r, const arrivals *a, int n, double limit_s) {
    double end = o2h_local_time(r) + limit_s;
    while (a->n < n && o2h_local_time(r) < end)
        o2h_router_poll(r, 100);
}

Test(sched, timed_messages_arrive_in_time_order_and_never_early) {
    arrivals a = {0};
    o2h_router *r = reference_router(&a);
    double now = o2h_time_get(r);
    cr_assert_eq(o2h_send(r, "/s/x", now + 0.06, "i", 3), O2H_OK);
    cr_assert_eq(o2h_send(r, "/s/x", now + 0.02, "i", 1), O2H_OK);
    cr_assert_eq(o2h_send(r, "/s/x", now + 0.04, "i", 2), O2H_OK);
    cr_assert_eq(a.n, 0, "nothing is delivered before its time");
    poll_until(r, &a, 3, 5.0);
    cr_assert_eq(a.n, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(a.order[i], i + 1);
        cr_assert_geq(a.late[i], 0.0, "message %d came %.6f s early", i, -a.late[i]);
    }
    o2h_router_free(r);
}

Test(sched, equal_times_keep_their_order) {
    arrivals a = {0};
    o2h_router *r = reference_router(&a);
    double t = o2h_time_get(r) + 0.01;
    for (int i = 0; i < 8; i++)
        o2h_send(r, "/s/x", t, "i", i);
    poll_until(r, &a, 8, 5.0);
    cr_assert_eq(a.n, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(a.order[i], i);
    o2h_router_free(r);
}

Test(sched, past_times_are_delivered_at_once) {
    arrivals a = {0};
    o2h_router *r = reference_router(&a);
    double now = o2h_time_get(r);
    o2h_send(r, "/s/x", now > 0.001 ? now - 0.001 : 0, "i", 9);
    cr_assert_eq(a.n, 1);
    o2h_router_free(r);
}

Test(sched, pending_messages_are_released_at_shutdown) {
    arrivals a = {0};
    o2h_router *r = reference_router(&a);
    o2h_pool_stats st;
    for (int i = 0; i < 100; i++)
        o2h_send(r, "/s/x", o2h_time_get(r) + 60, "i", i);
    o2h_pool_get_stats(o2h_router_pool(r), &st);
    cr_assert_eq(st.in_use, 100, "100 messages wait in the scheduler");
    o2h_router_free(r); /* ASan/LeakSanitizer runs see a leak here if they were not released */
    cr_assert_eq(a.n, 0);
}

Test(sched, clock_from_config) {
    o2h_router *r = o2h_router_new_from_json(
        "{\"ensemble\": \"c\", \"clock\": {\"reference\": true}}", "c.json", NULL, NULL);
    cr_assert_not_null(r);
    cr_assert_geq(o2h_time_get(r), 0);
    o2h_service_new(r, "s");
    cr_assert_eq(o2h_status(r, "s"), O2H_STATUS_LOCAL, "a reference clock is synchronised");
    o2h_router_free(r);
}

Test(sched, a_bundle_stamped_ahead_waits_as_a_whole) {
    arrivals a = {0};
    o2h_router *r = reference_router(&a);
    o2h_builder *b = o2h_builder_new(o2h_router_pool(r));
    o2h_msg *elems[2];
    for (int i = 0; i < 2; i++) {
        o2h_builder_start(b);
        o2h_add_int32(b, i + 1);
        elems[i] = o2h_builder_finish(b, 0, "/s/x", 0);
    }
    o2h_builder_start(b);
    o2h_add_message(b, elems[0]);
    o2h_add_message(b, elems[1]);
    double at = o2h_time_get(r) + 0.05;
    o2h_msg *bundle = o2h_builder_finish(b, at, "#s", 0);
    cr_assert_eq(o2h_send_msg(r, bundle), O2H_OK);
    cr_assert_eq(a.n, 0, "held until its time");
    poll_until(r, &a, 2, 5.0);
    cr_assert_eq(a.n, 2);
    cr_assert_eq(a.order[0], 1);
    cr_assert_eq(a.order[1], 2);
    cr_assert_geq(o2h_time_get(r), at);
    for (int i = 0; i < 2; i++)
        o2h_msg_unref(elems[i]);
    o2h_builder_free(b);
    o2h_router_free(r);
}

/* Found by fuzz_proto (UBSan): a stamp far in the future overflowed the
 * timer's nanosecond conversion. It is held (capped), never delivered early. */
Test(sched, a_stamp_far_in_the_future_is_held_safely) {
    arrivals a = {0};
    o2h_router *r = reference_router(&a);
    cr_assert_eq(o2h_send(r, "/s/x", 1e188, "i", 1), O2H_OK);
    for (int i = 0; i < 5; i++)
        o2h_router_poll(r, 1);
    cr_assert_eq(a.n, 0);
    o2h_router_free(r);
}

/* ---- clock jumps (O2's time jump callback) ---- */

typedef struct jumps {
    int calls;
    double old_global, new_global;
    bool answer;
} jumps;

static bool on_jump(void *ctx, double local_time, double old_global, double new_global) {
    jumps *j = ctx;
    j->calls++;
    j->old_global = old_global;
    j->new_global = new_global;
    return j->answer;
}

Test(sched, a_jump_callback_decides_big_clock_changes) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "jump"};
    o2h_router *r = o2h_router_new(&o, NULL);
    jumps j = {.answer = true};
    o2h_time_jump_callback_set(r, on_jump, &j);
    double l = o2h_local_time(r);
    o2h__clock_estimate(r, 100.0, l); /* the first estimate sets the clock: no callback */
    cr_assert_eq(j.calls, 0);
    cr_assert_float_eq(o2h_time_get(r), 100.0 + (o2h_local_time(r) - l), 1e-3);

    l = o2h_local_time(r);
    o2h__clock_estimate(r, 50.0, l); /* 50 s back: the callback says jump */
    cr_assert_eq(j.calls, 1);
    cr_assert_float_eq(j.new_global, 50.0, 1e-9);
    cr_assert_gt(j.old_global, 99.9);
    cr_assert_lt(o2h_time_get(r), 51.0, "jumped back at once");

    j.answer = false;
    l = o2h_local_time(r);
    o2h__clock_estimate(r, 40.0, l); /* 10 s back, declined: the clock stops, never runs back */
    cr_assert_eq(j.calls, 2);
    double t1 = o2h_time_get(r);
    cr_assert_geq(t1, 50.0);
    for (int i = 0; i < 3; i++)
        o2h_router_poll(r, 5);
    cr_assert_float_eq(o2h_time_get(r), t1, 1e-9, "stopped until local time catches up");

    l = o2h_local_time(r);
    o2h__clock_estimate(r, t1 + 0.5, l); /* small errors slew: no callback */
    cr_assert_eq(j.calls, 2);
    o2h_router_free(r);
}
