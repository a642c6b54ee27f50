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

static o2h_router *frozen_router(const char *transports, o2h_error *err) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"abi\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [%s]}",
             FROZEN_PLUGIN_DIR, transports);
    return o2h_router_new_from_json(json, "abi.json", NULL, err);
}

Test(abi, a_1_1_plugin_s_queued_bytes_block_o2h_can_send) {
    o2h_error err;
    o2h_router *r = frozen_router("{\"type\": \"frozen11\", \"service\": \"q\"}", &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert_eq(o2h_can_send(r, "q"), O2H_OK);
    cr_assert_eq(o2h_send(r, "!q/x", 0, "i", 1), O2H_OK);
    cr_assert_eq(o2h_can_send(r, "q"), O2H_BLOCKED, "bytes wait in the transport");
    o2h_router_poll(r, 0); /* its timer "writes" them */
    cr_assert_eq(o2h_can_send(r, "q"), O2H_OK);
    o2h_router_free(r);
}

Test(abi, a_1_0_plugin_without_queued_never_blocks_o2h_can_send) {
    o2h_error err;
    o2h_router *r = frozen_router("{\"type\": \"frozen\", \"service\": \"old\"}", &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert_eq(o2h_send(r, "!old/ask", 0, "si", "/nowhere/x", 1), O2H_OK);
    cr_assert_eq(o2h_can_send(r, "old"), O2H_OK, "its ops end before queued: read as NULL");
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
    const o2h_host *h = o2h__host_table();
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

Test(abi, every_host_member_of_1_1_is_filled) {
    const o2h_host *h = o2h__host_table();
    cr_assert_geq(h->abi_minor, 1);
    cr_assert(O2H_HAS(h, stats));
    assert_all_set(h->stats, offsetof(o2h_host_stats, text), "stats");
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
    o2h__loop_defer(o->lp, &o->again, mark_b, o); /* deferred from the deferred phase */
}

Test(abi, deferred_calls_run_once_in_order_including_those_they_defer) {
    loop lp;
    cr_assert_eq(o2h__loop_init(&lp), 0);
    order o = {.lp = &lp};
    o2h_deferred d = {0};
    o2h__loop_defer(&lp, &d, mark_a, &o);
    o2h__loop_defer(&lp, &d, mark_a, &o); /* already pending: no second call */
    cr_assert_eq(o.n, 0, "nothing runs before the deferred phase");
    bool woken;
    o2h__loop_poll(&lp, 0, &woken);
    cr_assert_eq(o.n, 2);
    cr_assert_eq(memcmp(o.seen, "ab", 2), 0);
    o2h__loop_defer(&lp, &d, mark_a, &o);
    o2h__loop_fini(&lp); /* runs what is left */
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
    const o2h_host *h = o2h__host_table();
    o2h_link *link = h->link->link_new(&slow, NULL, "slow link");
    cr_assert_eq(h->link->service_add(&slow, "far", link), O2H_OK);
    warnings = 0;
    for (int i = 0; i < 1000; i++)
        o2h_send(r, "/far/x", 0, "i", i); /* best effort: reliable ones would wait */
    cr_assert_eq(warnings, 1, "one line for a burst, not %d", warnings);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    cr_assert_eq(st.dropped_queue_full, 1000);
    h->link->link_free(link);
    o2h_router_free(r);
}

/* A transport whose queue is full until `room`; it records what it sent and pauses. */
typedef struct fake_tr {
    bool room;
    int sent[16];
    int n_sent;
    int pauses, resumes;
} fake_tr;

static int fake_send(void *instance, void *link_ctx, o2h_msg *msg) {
    fake_tr *t = instance;
    if (!t->room) return O2H_QUEUE_FULL;
    o2h_reader rd;
    o2h_arg a;
    o2h_reader_init(&rd, msg, NULL, 0);
    if (o2h_reader_next(&rd, 'i', &a) == O2H_OK && t->n_sent < 16) t->sent[t->n_sent++] = a.i;
    return O2H_OK;
}

static int fake_pause(void *instance, void *link_ctx, bool paused) {
    fake_tr *t = instance;
    if (paused)
        t->pauses++;
    else
        t->resumes++;
    return O2H_OK;
}

static o2h_msg *numbered(int i, bool reliable) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_builder_start(b);
    o2h_add_int32(b, i);
    o2h_msg *m = o2h_builder_finish(b, 0, "/far/x", reliable ? O2H_FLAG_RELIABLE : 0);
    o2h_builder_free(b);
    return m;
}

Test(abi, reliable_messages_for_a_full_link_wait_in_order_and_pause_their_sender) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "abi"};
    o2h_router *r = o2h_router_new(&o, NULL);
    fake_tr out = {0}, in = {0};
    o2h_plugin dst = {.router = r, .type = "dst", .started = true, .instance = &out};
    o2h_plugin src = {.router = r, .type = "src", .started = true, .instance = &in};
    dst.transport.send = fake_send;
    src.transport.send = fake_send;
    src.transport.pause = fake_pause;
    const o2h_host *h = o2h__host_table();
    o2h_link *full = h->link->link_new(&dst, NULL, "full link");
    o2h_link *from = h->link->link_new(&src, NULL, "sender link");
    cr_assert_eq(h->link->service_add(&dst, "far", full), O2H_OK);
    cr_assert_eq(o2h_can_send(r, "far"), O2H_OK);
    cr_assert_eq(o2h_can_send(r, "nosuch"), O2H_NO_SERVICE);
    for (int i = 1; i <= 3; i++)
        h->link->deliver(&src, from, numbered(i, true));
    h->link->deliver(&src, from, numbered(99, false)); /* best effort: dropped as before */
    cr_assert_eq(out.n_sent, 0);
    cr_assert_eq(in.pauses, 1, "the sender is paused once");
    cr_assert_eq(o2h_can_send(r, "far"), O2H_BLOCKED);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    cr_assert_eq(st.held, 3);
    cr_assert_eq(st.dropped_queue_full, 1, "only the best-effort one");
    out.room = true;
    h->link->drained(full);
    cr_assert_eq(out.n_sent, 3);
    cr_assert_eq(out.sent[0] * 100 + out.sent[1] * 10 + out.sent[2], 123, "in order");
    cr_assert_eq(in.resumes, 1);
    cr_assert_eq(o2h_can_send(r, "far"), O2H_OK);
    /* Without drained(), the retry timer sends what waits. */
    out.room = false;
    o2h_send_cmd(r, "/far/x", 0, "i", 4);
    cr_assert_eq(o2h_can_send(r, "far"), O2H_BLOCKED);
    out.room = true;
    for (int i = 0; i < 50 && out.n_sent < 4; i++)
        o2h_router_poll(r, 10);
    cr_assert_eq(out.n_sent, 4);
    cr_assert_eq(out.sent[3], 4);
    h->link->link_free(from);
    h->link->link_free(full);
    o2h_router_free(r);
}

Test(abi, a_full_hold_refuses_with_blocked_and_a_freed_link_drops_what_it_held) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "abi"};
    o2h_router *r = o2h_router_new(&o, NULL);
    fake_tr out = {0};
    o2h_plugin dst = {.router = r, .type = "dst", .started = true, .instance = &out};
    dst.transport.send = fake_send;
    const o2h_host *h = o2h__host_table();
    o2h_link *full = h->link->link_new(&dst, NULL, "full link");
    cr_assert_eq(h->link->service_add(&dst, "far", full), O2H_OK);
    int rc = O2H_OK, n = 0;
    while (rc == O2H_OK && n < 100000) {
        rc = o2h_send_cmd(r, "/far/x", 0, "i", n);
        n++;
    }
    cr_assert_eq(rc, O2H_BLOCKED, "the hold is bounded");
    cr_assert_eq(n - 1, 65536, "held %d", n - 1);
    h->link->link_free(full);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    cr_assert_eq(st.dropped_send_error, 65536, "lost with the link, and counted");
    o2h_router_free(r);
}

typedef struct log_capture {
    char text[1024];
} log_capture;

static void capture_line(void *ctx, int level, const char *origin, const char *text) {
    log_capture *c = ctx;
    (void)level;
    if (strcmp(origin, "frozen11") == 0) snprintf(c->text, sizeof c->text, "%s", text);
}

Test(abi, a_plugin_built_against_1_1_reads_the_counters) {
    log_capture cap = {{0}};
    o2h_router_options o = {.struct_size = sizeof o,
                            .ensemble = "abi",
                            .log_level = O2H_LOG_WARN,
                            .log = capture_line,
                            .log_ctx = &cap};
    o2h_error err;
    o2h_router *r = o2h_router_new(&o, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_add_plugin_dir(r, FROZEN_PLUGIN_DIR), O2H_OK);
    cr_assert_eq(o2h_router_add_plugin(r, "transports", "frozen11", "{}", &err), O2H_OK, "%s",
                 err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert(strstr(cap.text, "bytes of counters, o2hub_delivered"), "%s", cap.text);
    o2h_router_free(r);
}
