/* Taps inside one router: copies, flags, modes, the TTL limit, untap. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <o2hub/o2hub.h>

typedef struct seen {
    int n;
    char address[8][32];
    uint32_t misc[8];
    int32_t value[8];
} seen;

static void note(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                 int argc, void *user_data) {
    seen *s = user_data;
    if (s->n >= 8) return;
    snprintf(s->address[s->n], sizeof s->address[s->n], "%s", o2h_msg_address(msg));
    s->misc[s->n] = o2h_msg_misc(msg);
    s->value[s->n] = argc > 0 ? argv[0]->i : 0;
    s->n++;
}

static o2h_router *router(void) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "taps"};
    return o2h_router_new(&o, NULL);
}

static void offer(o2h_router *r, const char *name, seen *s) {
    char path[32];
    snprintf(path, sizeof path, "/%s", name);
    cr_assert_eq(o2h_service_new(r, name), O2H_OK);
    cr_assert_eq(o2h_method_new(r, path, NULL, note, s, false, true), O2H_OK);
}

Test(taps, a_tapper_gets_a_copy_with_its_own_address) {
    o2h_router *r = router();
    seen a = {0}, spy = {0};
    offer(r, "a", &a);
    offer(r, "spy", &spy);
    cr_assert_eq(o2h_tap(r, "a", "spy", O2H_TAP_KEEP), O2H_OK);
    cr_assert_eq(o2h_tap(r, "a", "spy", O2H_TAP_KEEP), O2H_SERVICE_EXISTS);
    o2h_send_cmd(r, "/a/x/y", 0, "i", 7);
    cr_assert_eq(a.n, 1);
    cr_assert_eq(spy.n, 1);
    cr_assert_str_eq(spy.address[0], "/spy/x/y");
    cr_assert_eq(spy.value[0], 7);
    cr_assert(spy.misc[0] & O2H_FLAG_TAP);
    cr_assert(spy.misc[0] & O2H_FLAG_RELIABLE, "KEEP keeps the reliable flag");
    cr_assert_eq(spy.misc[0] >> 8, 1, "TTL 1 after one hop");
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    cr_assert_eq(st.tapped, 1);
    o2h_router_free(r);
}

Test(taps, modes_choose_the_flag) {
    o2h_router *r = router();
    seen a = {0}, rel = {0}, be = {0};
    offer(r, "a", &a);
    offer(r, "rel", &rel);
    offer(r, "be", &be);
    o2h_tap(r, "a", "rel", O2H_TAP_RELIABLE);
    o2h_tap(r, "a", "be", O2H_TAP_BEST_EFFORT);
    o2h_send(r, "!a/x", 0, "i", 1);
    cr_assert_eq(rel.n, 1);
    cr_assert(rel.misc[0] & O2H_FLAG_RELIABLE);
    cr_assert_str_eq(rel.address[0], "!rel/x", "the '!' prefix is kept");
    cr_assert_eq(be.n, 1);
    cr_assert_not(be.misc[0] & O2H_FLAG_RELIABLE);
    cr_assert_eq(o2h_tap(r, "a", "x", 7), O2H_BAD_ARGS);
    o2h_router_free(r);
}

Test(taps, chains_stop_after_three_hops) {
    o2h_router *r = router();
    seen s[5] = {{0}};
    const char *names[5] = {"s0", "s1", "s2", "s3", "s4"};
    for (int i = 0; i < 5; i++)
        offer(r, names[i], &s[i]);
    for (int i = 0; i < 4; i++)
        o2h_tap(r, names[i], names[i + 1], O2H_TAP_KEEP);
    o2h_send(r, "/s0/x", 0, "i", 1);
    cr_assert_eq(s[0].n, 1);
    cr_assert_eq(s[1].n, 1);
    cr_assert_eq(s[2].n, 1);
    cr_assert_eq(s[3].n, 1);
    cr_assert_eq(s[3].misc[0] >> 8, 3);
    cr_assert_eq(s[4].n, 0, "a fourth hop would pass O2's TTL limit");
    o2h_router_free(r);
}

Test(taps, untap_stops_the_copies_and_taps_wait_for_their_tappee) {
    o2h_router *r = router();
    seen a = {0}, spy = {0};
    offer(r, "spy", &spy);
    cr_assert_eq(o2h_tap(r, "later", "spy", O2H_TAP_KEEP), O2H_OK, "the tappee need not exist");
    cr_assert_eq(o2h_status(r, "later"), O2H_STATUS_UNKNOWN, "a tap is not a provider");
    cr_assert_eq(o2h_send(r, "/later/x", 0, "i", 1), O2H_NO_SERVICE);
    offer(r, "later", &a);
    o2h_send(r, "/later/x", 0, "i", 2);
    cr_assert_eq(spy.n, 1);
    cr_assert_eq(o2h_untap(r, "later", "spy"), O2H_OK);
    cr_assert_eq(o2h_untap(r, "later", "spy"), O2H_NOT_FOUND);
    o2h_send(r, "/later/x", 0, "i", 3);
    cr_assert_eq(spy.n, 1);
    cr_assert_eq(a.n, 2);
    o2h_router_free(r);
}

/* Buffers handed out by the router's pool so far (from the heap or its cache). */
static uint64_t pool_buffers(o2h_router *r) {
    o2h_pool_stats ps;
    o2h_pool_get_stats(o2h_router_pool(r), &ps);
    return ps.heap_allocs + ps.reuses;
}

Test(taps, three_taps_in_one_process_share_one_buffer) {
    o2h_router *r = router();
    seen a = {0}, t[3] = {{0}};
    const char *tappers[3] = {"t1", "tapper-two", "t3"};
    offer(r, "a", &a);
    for (int i = 0; i < 3; i++) {
        offer(r, tappers[i], &t[i]);
        cr_assert_eq(o2h_tap(r, "a", tappers[i], O2H_TAP_KEEP), O2H_OK);
    }
    o2h_send(r, "/a/x", 0, "i", 1); /* warm the pool */
    uint64_t before = pool_buffers(r);
    o2h_send(r, "/a/x", 0, "i", 2);
    uint64_t used = pool_buffers(r) - before;
    cr_assert_eq(used, 2, "one buffer for the message and one shared by its three copies, got %llu",
                 (unsigned long long)used);
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "/%s/x", tappers[i]);
        cr_assert_eq(t[i].n, 2);
        cr_assert_str_eq(t[i].address[1], want);
        cr_assert_eq(t[i].value[1], 2);
    }
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    cr_assert_eq(st.tapped, 6);
    cr_assert_eq(st.tap_buffers, 2, "one buffer per tapped message");
    o2h_router_free(r);
}

static void keep(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                 int argc, void *user_data) {
    *(o2h_msg **)user_data = o2h_msg_ref((o2h_msg *)msg);
}

Test(taps, a_copy_kept_by_a_handler_never_changes) {
    o2h_router *r = router();
    seen a = {0}, later = {0};
    o2h_msg *kept = NULL;
    offer(r, "a", &a);
    cr_assert_eq(o2h_service_new(r, "keeper"), O2H_OK);
    cr_assert_eq(o2h_method_new(r, "/keeper", NULL, keep, &kept, false, false), O2H_OK);
    offer(r, "later", &later);
    o2h_tap(r, "a", "keeper", O2H_TAP_KEEP);
    o2h_tap(r, "a", "later", O2H_TAP_KEEP);
    o2h_send(r, "/a/x", 0, "i", 5);
    cr_assert_not_null(kept);
    cr_assert_str_eq(o2h_msg_address(kept), "/keeper/x", "not rewritten for the next tapper");
    cr_assert_str_eq(later.address[0], "/later/x");
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    cr_assert_eq(st.tap_buffers, 2, "a kept buffer is not reused");
    o2h_msg_unref(kept);
    o2h_router_free(r);
}
