/*
 * The plugin ABI as a contract: a plugin built against the frozen 1.0
 * headers runs on today's router, every host member is filled, a plugin of
 * the wrong kind for its config section is refused, one plugin search rule
 * holds for every constructor, and deferred calls run after callbacks.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/o2hub.h>
#include <o2hub/plugin.h>

#include "loader.h"
#include "loop.h"

typedef struct answer {
    int got;
    int32_t n;
    char text[32];
} answer;

static void on_answer(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    answer *a = user_data;
    a->got++;
    snprintf(a->text, sizeof a->text, "%s", argv[0]->s);
    a->n = argv[1]->i;
}

static void poll_until(o2h_router *r, const int *flag, double seconds) {
    for (int i = 0; i < (int)(seconds * 100) && !*flag; i++)
        o2h_router_poll(r, 10);
}

Test(abi, a_plugin_built_against_frozen_1_0_headers_runs) {
    o2h_error err;
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"abi\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [{\"type\": \"frozen\", \"service\": \"old\"}]}",
             FROZEN_PLUGIN_DIR);
    o2h_router *r = o2h_router_new_from_json(json, "abi.json", NULL, &err);
    cr_assert_not_null(r, "%s", err.message);
    answer a = {0};
    cr_assert_eq(o2h_service_new(r, "t"), O2H_OK);
    cr_assert_eq(o2h_method_new(r, "/t/answer", "si", on_answer, &a, true, true), O2H_OK);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert_geq(o2h_status(r, "old"), 0, "the frozen plugin's service exists");
    cr_assert_eq(o2h_send(r, "/old/ask", 0, "si", "/t/answer", 41), O2H_OK);
    poll_until(r, &a.got, 2.0);
    cr_assert_eq(a.got, 1);
    cr_assert_str_eq(a.text, "frozen 1.0");
    cr_assert_eq(a.n, 42);
    o2h_router_free(r);
}

/* Every member after `size` of a table of function pointers is non-NULL. */
static void assert_all_set(const void *table, size_t first, const char *name) {
    uint32_t size;
    memcpy(&size, table, sizeof size);
    cr_assert_gt(size, first, "%s: size %u", name, size);
    for (size_t off = first; off + sizeof(void (*)(void)) <= size; off += sizeof(void (*)(void))) {
        void (*fn)(void);
        memcpy(&fn, (const char *)table + off, sizeof fn);
        cr_assert_not_null(fn, "%s: member at offset %zu is NULL", name, off);
    }
}

Test(abi, every_host_member_of_1_0_is_filled) {
    const o2h_host *h = host_table();
    cr_assert_eq(h->abi_major, O2H_ABI_MAJOR);
    cr_assert_eq(h->size, sizeof *h);
    cr_assert(O2H_HAS(h, bridge));
    cr_assert(O2H_HAS(h->loop, defer));
    assert_all_set(h->log, offsetof(o2h_host_log, write), "log");
    assert_all_set(h->cfg, offsetof(o2h_host_cfg, get_string), "cfg");
    assert_all_set(h->msg, offsetof(o2h_host_msg, msg_alloc), "msg");
    assert_all_set(h->loop, offsetof(o2h_host_loop, watch_fd), "loop");
    assert_all_set(h->link, offsetof(o2h_host_link, link_new), "link");
    assert_all_set(h->proc, offsetof(o2h_host_proc, ensemble), "proc");
    assert_all_set(h->bridge, offsetof(o2h_host_bridge, bridge_new), "bridge");
    /* the host struct itself: seven sub-table pointers */
    const void *const *subs = (const void *const *)&h->log;
    for (int i = 0; i < 7; i++)
        cr_assert_not_null(subs[i]);
}

Test(abi, o2h_has_says_no_beyond_a_smaller_table) {
    /* A table as an older router would have it: only `write`. */
    o2h_host_log older = {.size = offsetof(o2h_host_log, vwrite)};
    const o2h_host_log *t = &older;
    cr_assert(!O2H_HAS(t, vwrite));
    cr_assert(!O2H_HAS(t, enabled));
    older.size = sizeof older;
    cr_assert(O2H_HAS(t, enabled));
    const o2h_host_log *none = NULL;
    cr_assert(!O2H_HAS(none, write));
}

Test(abi, a_discovery_plugin_under_transports_is_refused_with_its_location) {
    o2h_error err;
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"abi\", \"plugin_path\": [\"%s\"],\n"
             " \"transports\": [\n  {\"type\": \"static\", \"peers\": []}]}",
             DISCOVERY_PLUGIN_DIR);
    cr_assert_null(o2h_router_new_from_json(json, "kind.json", NULL, &err));
    cr_assert_eq(err.code, O2H_CONFIG_ERROR);
    cr_assert_str_eq(err.file, "kind.json");
    cr_assert_eq(err.line, 3, "line %d", err.line);
    cr_assert(strstr(err.key_path, "type"), "key %s", err.key_path);
    cr_assert(strstr(err.message, "discovery plugin"), "%s", err.message);
    cr_assert(strstr(err.message, "\"transports\""), "%s", err.message);
}

Test(abi, o2hub_plugin_path_counts_for_every_constructor) {
    setenv("O2HUB_PLUGIN_PATH", "/nonexistent:" FROZEN_PLUGIN_DIR, 1);
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "abi"};
    o2h_error err;
    o2h_router *r = o2h_router_new(&o, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_add_plugin(r, "transports", "frozen", "{}", &err), O2H_OK, "%s",
                 err.message);
    o2h_router_free(r);
    r = o2h_router_new_from_json(
        "{\"ensemble\": \"abi\", \"transports\": [{\"type\": \"frozen\"}]}", "env.json", NULL,
        &err);
    cr_assert_not_null(r, "%s", err.message);
    o2h_router_free(r);
    unsetenv("O2HUB_PLUGIN_PATH");
}

typedef struct order {
    loop *lp;
    char seen[16];
    int n;
    o2h_deferred again;
} order;

static void mark_b(void *ctx) {
    order *o = ctx;
    o->seen[o->n++] = 'b';
}

static void mark_a(void *ctx) {
    order *o = ctx;
    o->seen[o->n++] = 'a';
    loop_defer(o->lp, &o->again, mark_b, o); /* deferred from the deferred phase */
}

Test(abi, deferred_calls_run_once_in_order_including_those_they_defer) {
    loop lp;
    cr_assert_eq(loop_init(&lp), 0);
    order o = {.lp = &lp};
    o2h_deferred d = {0};
    loop_defer(&lp, &d, mark_a, &o);
    loop_defer(&lp, &d, mark_a, &o); /* already pending: no second call */
    cr_assert_eq(o.n, 0, "nothing runs before the deferred phase");
    bool woken;
    loop_poll(&lp, 0, &woken);
    cr_assert_eq(o.n, 2);
    cr_assert_eq(memcmp(o.seen, "ab", 2), 0);
    loop_defer(&lp, &d, mark_a, &o);
    loop_fini(&lp); /* runs what is left */
    cr_assert_eq(o.n, 4);
}

static int full_send(void *instance, void *link_ctx, o2h_msg *msg) {
    return O2H_QUEUE_FULL;
}

static int warnings;
static void count_warnings(void *ctx, int level, const char *origin, const char *text) {
    if (level == O2H_LOG_WARN && strstr(text, "dropping messages")) warnings++;
}

Test(abi, a_link_that_starts_dropping_says_so_once_per_burst) {
    o2h_router_options o = {.struct_size = sizeof o,
                            .ensemble = "abi",
                            .log = count_warnings,
                            .log_level = O2H_LOG_WARN,
                            .log_level_fixed = true};
    o2h_router *r = o2h_router_new(&o, NULL);
    o2h_plugin slow = {.router = r, .type = "slow", .started = true};
    slow.transport.send = full_send;
    const o2h_host *h = host_table();
    o2h_link *link = h->link->link_new(&slow, NULL, "slow link");
    cr_assert_eq(h->link->service_add(&slow, "far", link), O2H_OK);
    warnings = 0;
    for (int i = 0; i < 1000; i++)
        o2h_send_cmd(r, "/far/x", 0, "i", i);
    cr_assert_eq(warnings, 1, "one line for a burst, not %d", warnings);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    cr_assert_eq(st.dropped_queue_full, 1000);
    h->link->link_free(link);
    o2h_router_free(r);
}
