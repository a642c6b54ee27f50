/* Local dispatch: services, methods, patterns, typespecs, coercion, re-entrancy. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <o2hub/o2hub.h>

#define MAX_CALLS 16

typedef struct recorder {
    int calls;
    char paths[MAX_CALLS][64];
    char types[MAX_CALLS][16];
    int argc[MAX_CALLS];
    o2h_arg args[MAX_CALLS][4];
    bool had_argv[MAX_CALLS];
    bool reliable[MAX_CALLS];
    char strs[MAX_CALLS][4][32]; /* copies: the message is gone after the handler */
    double vec[MAX_CALLS][4];
} recorder;

static void record(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    (void)r;
    recorder *rec = user_data;
    if (rec->calls >= MAX_CALLS) return;
    int i = rec->calls++;
    snprintf(rec->paths[i], sizeof rec->paths[i], "%s", o2h_msg_address(msg));
    snprintf(rec->types[i], sizeof rec->types[i], "%s", types);
    rec->argc[i] = argc;
    rec->had_argv[i] = argv != NULL;
    rec->reliable[i] = o2h_msg_reliable(msg);
    const char *t = types;
    for (int k = 0; k < argc && k < 4; k++, t++) {
        rec->args[i][k] = *argv[k];
        if (*t == 's' || *t == 'S') {
            snprintf(rec->strs[i][k], sizeof rec->strs[i][k], "%s", argv[k]->s);
            rec->args[i][k].s = rec->strs[i][k];
        } else if (*t == 'v') {
            if (t[1] == 'd')
                for (int e = 0; e < argv[k]->v.len && e < 4; e++)
                    rec->vec[i][e] = ((const double *)argv[k]->v.data)[e];
            rec->args[i][k].v.data = rec->vec[i];
            t++;
        }
    }
}

static o2h_router *make_router(void) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    o2h_error err;
    o2h_router *r = o2h_router_new(&o, &err);
    cr_assert_not_null(r, "%s", err.message);
    return r;
}

static o2h_stats stats_of(o2h_router *r) {
    o2h_stats s = {.struct_size = sizeof s};
    o2h_router_get_stats(r, &s);
    return s;
}

Test(dispatch, exact_method_with_parsed_args) {
    o2h_router *r = make_router();
    recorder rec = {0};
    cr_assert_eq(o2h_service_new(r, "synth"), O2H_OK);
    cr_assert_eq(o2h_method_new(r, "/synth/freq", "ifs", record, &rec, false, true), O2H_OK);
    cr_assert_eq(o2h_send(r, "/synth/freq", 0, "ifs", 7, 440.5, "sine"), O2H_OK);
    cr_assert_eq(rec.calls, 1);
    cr_assert_eq(rec.argc[0], 3);
    cr_assert_eq(rec.args[0][0].i, 7);
    cr_assert_float_eq(rec.args[0][1].f, 440.5f, 1e-6);
    cr_assert_str_eq(rec.args[0][2].s, "sine");
    cr_assert_eq(stats_of(r).delivered, 1);
    o2h_router_free(r);
}

Test(dispatch, whole_service_handler_gets_every_address) {
    o2h_router *r = make_router();
    recorder rec = {0};
    o2h_service_new(r, "all");
    cr_assert_eq(o2h_method_new(r, "/all", NULL, record, &rec, false, false), O2H_OK);
    o2h_send(r, "/all/a", 0, "");
    o2h_send(r, "/all/b/c", 0, "i", 1);
    o2h_send(r, "!all/d", 0, "");
    cr_assert_eq(rec.calls, 3);
    cr_assert_str_eq(rec.paths[1], "/all/b/c");
    cr_assert_str_eq(rec.paths[2], "!all/d");
    cr_assert_not(rec.had_argv[0], "parse=false passes no argv");
    o2h_router_free(r);
}

Test(dispatch, pattern_reaches_every_matching_method) {
    o2h_router *r = make_router();
    recorder a = {0}, b = {0}, c = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/v1/freq", NULL, record, &a, false, false);
    o2h_method_new(r, "/s/v2/freq", NULL, record, &b, false, false);
    o2h_method_new(r, "/s/v2/amp", NULL, record, &c, false, false);
    cr_assert_eq(o2h_send(r, "/s/v*/freq", 0, ""), O2H_OK);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(c.calls, 0);
    o2h_send(r, "/s/v2/{amp,freq}", 0, "");
    cr_assert_eq(b.calls, 2);
    cr_assert_eq(c.calls, 1);
    o2h_send(r, "/s/v[!2]/freq", 0, "");
    cr_assert_eq(a.calls, 2);
    cr_assert_eq(b.calls, 2);
    o2h_send(r, "/s/v?/amp", 0, "");
    cr_assert_eq(c.calls, 2);
    o2h_router_free(r);
}

Test(dispatch, bang_address_skips_pattern_matching) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/x1", NULL, record, &a, false, false);
    cr_assert_eq(o2h_send(r, "!s/x?", 0, ""), O2H_NO_HANDLER);
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(o2h_send(r, "!s/x1", 0, ""), O2H_OK);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(stats_of(r).dropped_no_handler, 1);
    o2h_router_free(r);
}

Test(dispatch, typespec_mismatch_is_dropped_without_coercion) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/f", "f", record, &a, false, true);
    cr_assert_eq(o2h_send(r, "/s/f", 0, "i", 3), O2H_BAD_TYPE);
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(stats_of(r).dropped_bad_types, 1);
    o2h_router_free(r);
}

Test(dispatch, coercion_converts_to_the_typespec) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/f", "fdhS", record, &a, true, true);
    cr_assert_eq(o2h_send(r, "/s/f", 0, "iifs", 3, 4, 5.75, "sym"), O2H_OK);
    cr_assert_eq(a.calls, 1);
    cr_assert_str_eq(a.types[0], "fdhS", "handler sees the typespec after coercion");
    cr_assert_float_eq(a.args[0][0].f, 3.0f, 1e-9);
    cr_assert_float_eq(a.args[0][1].d, 4.0, 1e-12);
    cr_assert_eq(a.args[0][2].h, 5);
    cr_assert_str_eq(a.args[0][3].s, "sym");
    o2h_router_free(r);
}

Test(dispatch, wrong_argument_count_is_dropped_even_with_coercion) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/f", "ff", record, &a, true, true);
    cr_assert_eq(o2h_send(r, "/s/f", 0, "f", 1.0), O2H_BAD_TYPE);
    cr_assert_eq(o2h_send(r, "/s/f", 0, "fff", 1.0, 2.0, 3.0), O2H_BAD_TYPE);
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(stats_of(r).dropped_bad_types, 2);
    o2h_router_free(r);
}

Test(dispatch, blob_is_not_coerced_to_a_number) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/i", "i", record, &a, true, true);
    o2h_blob blob = {.size = 3, .data = (const uint8_t *)"abc"};
    cr_assert_eq(o2h_send(r, "/s/i", 0, "b", &blob), O2H_BAD_TYPE);
    cr_assert_eq(a.calls, 0);
    o2h_router_free(r);
}

Test(dispatch, any_types_with_parse_decodes_as_sent) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/any", NULL, record, &a, false, true);
    cr_assert_eq(o2h_send(r, "/s/any", 0, "hdT", (int64_t)1 << 40, 2.5), O2H_OK);
    cr_assert_eq(a.argc[0], 3);
    cr_assert_str_eq(a.types[0], "hdT");
    cr_assert_eq(a.args[0][0].h, (int64_t)1 << 40);
    cr_assert_float_eq(a.args[0][1].d, 2.5, 1e-12);
    o2h_router_free(r);
}

Test(dispatch, unknown_service_is_counted) {
    o2h_router *r = make_router();
    cr_assert_eq(o2h_send(r, "/nobody/x", 0, "i", 1), O2H_NO_SERVICE);
    cr_assert_eq(o2h_send(r, "/nobody/x", 0, ""), O2H_NO_SERVICE);
    cr_assert_eq(stats_of(r).dropped_no_service, 2);
    o2h_router_free(r);
}

typedef struct chain {
    o2h_router *r;
    char order[8];
    int n;
} chain;

static void first_handler(o2h_router *r, const o2h_msg *msg, const char *types,
                          const o2h_arg *const *argv, int argc, void *user_data) {
    chain *c = user_data;
    c->order[c->n++] = 'a';
    /* Delivered only after this handler returns: no re-entrancy. */
    cr_assert_eq(o2h_send(r, "/s/second", 0, ""), O2H_OK);
    c->order[c->n++] = 'A';
}

static void second_handler(o2h_router *r, const o2h_msg *msg, const char *types,
                           const o2h_arg *const *argv, int argc, void *user_data) {
    chain *c = user_data;
    c->order[c->n++] = 'b';
}

Test(dispatch, sends_from_a_handler_are_deferred_until_it_returns) {
    o2h_router *r = make_router();
    chain c = {.r = r};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/first", NULL, first_handler, &c, false, false);
    o2h_method_new(r, "/s/second", NULL, second_handler, &c, false, false);
    cr_assert_eq(o2h_send(r, "/s/first", 0, ""), O2H_OK);
    cr_assert_eq(c.n, 3);
    cr_assert_eq(memcmp(c.order, "aAb", 3), 0, "order was %.3s", c.order);
    o2h_router_free(r);
}

Test(dispatch, service_free_removes_methods) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/x", NULL, record, &a, false, false);
    cr_assert_eq(o2h_service_free(r, "s"), O2H_OK);
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_NO_SERVICE);
    cr_assert_eq(o2h_status(r, "s"), O2H_STATUS_UNKNOWN);
    cr_assert_eq(o2h_service_new(r, "s"), O2H_OK);
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_NO_HANDLER, "old methods are gone");
    cr_assert_eq(a.calls, 0);
    o2h_router_free(r);
}

Test(dispatch, method_replace_and_free) {
    o2h_router *r = make_router();
    recorder a = {0}, b = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/x", NULL, record, &a, false, false);
    o2h_method_new(r, "/s/x", NULL, record, &b, false, false);
    o2h_send(r, "/s/x", 0, "");
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(o2h_method_free(r, "/s/x"), O2H_OK);
    cr_assert_eq(o2h_method_free(r, "/s/x"), O2H_NOT_FOUND);
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_NO_HANDLER);
    o2h_router_free(r);
}

Test(dispatch, names_are_checked) {
    o2h_router *r = make_router();
    cr_assert_eq(o2h_service_new(r, "1abc"), O2H_BAD_NAME);
    cr_assert_eq(o2h_service_new(r, "a/b"), O2H_BAD_NAME);
    cr_assert_eq(o2h_service_new(r, "a*"), O2H_BAD_NAME);
    cr_assert_eq(o2h_service_new(r, ""), O2H_BAD_NAME);
    cr_assert_eq(o2h_service_new(r, "ok"), O2H_OK);
    cr_assert_eq(o2h_service_new(r, "ok"), O2H_SERVICE_EXISTS);
    cr_assert_eq(o2h_method_new(r, "/nosvc/x", NULL, record, NULL, false, false), O2H_NO_SERVICE);
    cr_assert_eq(o2h_method_new(r, "/ok/x*", NULL, record, NULL, false, false), O2H_BAD_NAME);
    cr_assert_eq(o2h_method_new(r, "/ok/x", "iq", record, NULL, false, false), O2H_BAD_TYPE);
    o2h_router_free(r);
}

Test(dispatch, bundle_elements_are_delivered_in_order) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s", NULL, record, &a, false, true);
    o2h_builder *b = o2h_builder_new(o2h_router_pool(r));
    o2h_builder_start(b);
    o2h_add_int32(b, 1);
    o2h_msg *m1 = o2h_builder_finish(b, 0, "/s/one", 0);
    o2h_builder_start(b);
    o2h_add_string(b, "two");
    o2h_msg *m2 = o2h_builder_finish(b, 0, "/s/two", 0);
    o2h_builder_start(b);
    cr_assert_eq(o2h_add_message(b, m1), O2H_OK);
    cr_assert_eq(o2h_add_message(b, m2), O2H_OK);
    o2h_msg *bundle = o2h_builder_finish(b, 0, "#s", 0);
    cr_assert_not_null(bundle);
    cr_assert_eq(o2h_send_msg(r, bundle), O2H_OK);
    cr_assert_eq(a.calls, 2);
    cr_assert_str_eq(a.paths[0], "/s/one");
    cr_assert_str_eq(a.paths[1], "/s/two");
    cr_assert(a.reliable[0], "bundle elements are delivered as reliable");
    o2h_msg_unref(m1);
    o2h_msg_unref(m2);
    o2h_builder_free(b);
    o2h_router_free(r);
}

Test(dispatch, timed_message_without_clock_is_dropped) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/x", NULL, record, &a, false, false);
    cr_assert_eq(o2h_send(r, "/s/x", 5.0, ""), O2H_NO_CLOCK);
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(stats_of(r).dropped_no_clock, 1);
    o2h_router_free(r);
}

Test(dispatch, reliable_flag_reaches_the_handler) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/x", NULL, record, &a, false, false);
    o2h_send_cmd(r, "/s/x", 0, "");
    o2h_send(r, "/s/x", 0, "");
    cr_assert(a.reliable[0]);
    cr_assert_not(a.reliable[1]);
    o2h_router_free(r);
}

Test(dispatch, builder_form_of_send) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/v", "vd", record, &a, true, true);
    o2h_builder *b = o2h_send_start(r);
    int32_t v[3] = {1, -2, 3};
    o2h_add_vector(b, 'i', 3, v);
    cr_assert_eq(o2h_send_finish(r, 0, "/s/v", true), O2H_OK);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.args[0][0].v.len, 3);
    cr_assert_eq(a.args[0][0].v.type, 'd');
    const double *d = a.args[0][0].v.data;
    cr_assert_float_eq(d[1], -2.0, 1e-12);
    o2h_router_free(r);
}

Test(dispatch, every_vararg_type_round_trips) {
    o2h_router *r = make_router();
    recorder a = {0};
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/all", NULL, record, &a, false, true);
    cr_assert_eq(o2h_send(r, "/s/all", 0, "tcmB", 1.25, 'x', (uint32_t)0x00903c7f, 1), O2H_OK);
    cr_assert_eq(a.calls, 1);
    cr_assert_float_eq(a.args[0][0].t, 1.25, 1e-12);
    cr_assert_eq(a.args[0][1].c, 'x');
    cr_assert_eq(a.args[0][2].m, 0x00903c7fu);
    cr_assert_eq(a.args[0][3].B, 1);
    cr_assert_eq(o2h_send(r, "/s/all", 0, "v", 1), O2H_BAD_TYPE, "vectors need the builder");
    o2h_router_free(r);
}

/* The router remembers the service and method it routed to last (a stream
 * to one address skips the lookups): every change must be seen at once. */
Test(dispatch, a_stream_sees_every_change_to_its_route) {
    o2h_router *r = make_router();
    recorder a = {0}, b = {0}, other = {0};
    o2h_service_new(r, "s");
    o2h_service_new(r, "ss");
    o2h_method_new(r, "/s/x", NULL, record, &a, false, false);
    o2h_method_new(r, "/ss/x", NULL, record, &other, false, false);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_OK);
    cr_assert_eq(a.calls, 3);
    /* A name that starts with the remembered one is another service. */
    cr_assert_eq(o2h_send(r, "/ss/x", 0, ""), O2H_OK);
    cr_assert_eq(other.calls, 1);
    cr_assert_eq(o2h_send(r, "/s/y", 0, ""), O2H_NO_HANDLER);
    cr_assert_eq(o2h_send(r, "/s/xy", 0, ""), O2H_NO_HANDLER, "a longer path is not /x");
    /* Replaced, removed, service gone and back: each one takes effect. */
    o2h_send(r, "/s/x", 0, "");
    o2h_method_new(r, "/s/x", NULL, record, &b, false, false);
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_OK);
    cr_assert_eq(a.calls, 4);
    cr_assert_eq(b.calls, 1);
    o2h_method_free(r, "/s/x");
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_NO_HANDLER);
    o2h_method_new(r, "/s/x", NULL, record, &a, false, false);
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_OK);
    cr_assert_eq(o2h_service_free(r, "s"), O2H_OK);
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_NO_SERVICE);
    o2h_service_new(r, "s");
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_NO_HANDLER, "old methods are gone");
    o2h_method_new(r, "/s", NULL, record, &b, false, false); /* the whole service */
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_OK);
    cr_assert_eq(b.calls, 2);
    cr_assert_eq(a.calls, 5);
    o2h_router_free(r);
}

static void free_own_method(o2h_router *r, const o2h_msg *msg, const char *types,
                            const o2h_arg *const *argv, int argc, void *user_data) {
    (void)msg, (void)types, (void)argv, (void)argc;
    (*(int *)user_data)++;
    o2h_method_free(r, "/s/x");
}

Test(dispatch, a_handler_that_removes_its_own_method_is_not_called_again) {
    o2h_router *r = make_router();
    int calls = 0;
    o2h_service_new(r, "s");
    o2h_method_new(r, "/s/x", NULL, free_own_method, &calls, false, false);
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_OK);
    cr_assert_eq(o2h_send(r, "/s/x", 0, ""), O2H_NO_HANDLER);
    cr_assert_eq(calls, 1);
    o2h_router_free(r);
}
