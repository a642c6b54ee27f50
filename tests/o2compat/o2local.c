/*
 * o2local — one O2-style process (o2.h only): local dispatch with parse and
 * coercion, handlers that read with o2_extract_start/o2_get_next, bundles,
 * o2_message_finish/o2_message_send, the local-time scheduler, timed messages
 * with and without a clock, method and service removal, names and errors,
 * and the plugin-backed calls when their plugin is missing.
 * Prints "LOCAL DONE" and exits 0 when every check holds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "o2.h"

#define check(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            printf("LOCAL CHECK FAILED: %s (%s:%d)\n", #x, __FILE__, __LINE__);                    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int a_calls, any_calls, bundle_calls, lt_calls, timed_calls, vec_calls;
static double lt_at, timed_at;

static void on_a(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                 const void *user_data) {
    check(argc == 3 && strcmp(types, "dfs") == 0);
    check(argv[0]->d == 1 && argv[1]->f == 2.5f && strcmp(argv[2]->s, "x") == 0);
    check(msg->timestamp == 0 && (msg->misc & O2_TCP_FLAG) == 0);
    a_calls++;
}

static void on_any(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                   const void *user_data) {
    check(argc == 2 && strcmp(types, "hb") == 0);
    check(argv[0]->h == -5000000000LL);
    check(argv[1]->b.size == 3 && memcmp(argv[1]->b.data, "abc", 3) == 0);
    any_calls++;
}

static void on_bundle_elem(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                           const void *user_data) {
    check(argv[0]->i32 == bundle_calls + 1);
    bundle_calls++;
}

static void on_lt(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                  const void *user_data) {
    lt_at = o2_local_time();
    lt_calls++;
    if (lt_calls == 2) o2_stop_flag = true; /* ends o2_run */
}

static void on_timed(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                     const void *user_data) {
    timed_at = o2_time_get();
    check(msg->timestamp == argv[0]->t);
    timed_calls++;
}

static void on_vec(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                   const void *user_data) {
    check(argv == NULL);
    check(o2_extract_start(msg) == 4); /* type codes: v f s T */
    O2arg_ptr a = o2_get_next(O2_VECTOR);
    check(a && a->v.len == 4);
    a = o2_get_next(O2_INT64); /* vf as vh */
    check(a && a->v.typ == 'h' && a->v.vh[0] == 1 && a->v.vh[3] == 4);
    check(o2_get_next(O2_ARRAY_START) == NULL); /* next is 's', not an array */
    a = o2_get_next(O2_SYMBOL);
    check(a && strcmp(a->S, "tail") == 0);
    a = o2_get_next(O2_FLOAT); /* 'T' as a number */
    check(a && a->f == 1.0f);
    check(o2_get_next(O2_INT32) == NULL);
    vec_calls++;
}

#define poll_until(done, limit)                                                                    \
    do {                                                                                           \
        double until_ = o2_local_time() + (limit);                                                 \
        while (!(done)) {                                                                          \
            check(o2_local_time() < until_);                                                       \
            o2_poll();                                                                             \
            o2_sleep(1);                                                                           \
        }                                                                                          \
    } while (0)

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char version[32];
    check(o2_version(version) == O2_VERSION && strcmp(version, "2.0.1") == 0);
    check(o2_poll() == O2_NOT_INITIALIZED);
    check(o2_initialize("bad/name") == O2_BAD_NAME);
    o2_network_enable(false);
    check(o2_initialize("o2local") == O2_SUCCESS);
    check(o2_network_enable(true) == O2_ALREADY_RUNNING);
    check(o2_service_new("local") == O2_SUCCESS);
    check(o2_service_new("bad/name") == O2_BAD_NAME);
    check(o2_status("local") == O2_LOCAL_NOTIME);
    /* O2's o2_can_send: a local service can always be sent to; nobody's is O2_FAIL */
    check(o2_can_send("local") == O2_SUCCESS);
    check(o2_can_send("nobody") == O2_FAIL);
    check(o2_can_send("bad/name") == O2_BAD_NAME);

    /* parse + coerce: "ifs" arrives, the handler wants "dfs" */
    check(o2_method_new("/local/a", "dfs", &on_a, NULL, true, true) == O2_SUCCESS);
    check(o2_send("/local/a", 0, "ifs", 1, 2.5, "x") == O2_SUCCESS);
    check(a_calls == 1);
    check(o2_send("!local/a", 0, "ifs", 1, 2.5, "x") == O2_SUCCESS);
    check(a_calls == 2);
    /* any types, parsed */
    check(o2_method_new("/local/any", NULL, &on_any, NULL, false, true) == O2_SUCCESS);
    O2blob_ptr blob = o2_blob_new(3);
    memcpy(blob->data, "abc", 3);
    check(o2_send_cmd("/local/any", 0, "hb", (int64_t)-5000000000LL, blob) == O2_SUCCESS);
    O2_FREE(blob);
    check(any_calls == 1);
    /* a handler that parses itself */
    check(o2_method_new("/local/vec", NULL, &on_vec, NULL, false, false) == O2_SUCCESS);
    float fv[4] = {1, 2, 3, 4};
    o2_send_start();
    o2_add_vector(O2_FLOAT, 4, fv);
    o2_add_string("tail");
    o2_add_true();
    check(o2_send_finish(0, "/local/vec", false) == O2_SUCCESS);
    check(vec_calls == 1);
    /* o2_extract_start on a message that is not being delivered */
    o2_send_start();
    o2_add_int32(5);
    o2_add_string("five");
    O2message_ptr m = o2_message_finish(0, "/local/nothing", false);
    check(o2_extract_start(&m->data) == 2);
    O2arg_ptr a = o2_get_next(O2_DOUBLE);
    check(a && a->d == 5.0);
    a = o2_get_next(O2_STRING);
    check(a && strcmp(a->s, "five") == 0);
    o2_message_print(m);
    printf("\n");
    O2_FREE(m);

    /* a bundle of two messages */
    check(o2_method_new("/local/b", "i", &on_bundle_elem, NULL, false, true) == O2_SUCCESS);
    o2_send_start();
    o2_add_int32(1);
    O2message_ptr m1 = o2_message_finish(0, "/local/b", true);
    o2_send_start();
    o2_add_int32(2);
    O2message_ptr m2 = o2_message_finish(0, "/local/b", true);
    o2_send_start();
    check(o2_add_message(m1) == O2_SUCCESS && o2_add_message(m2) == O2_SUCCESS);
    O2_FREE(m1);
    O2_FREE(m2);
    check(o2_send_finish(0, "#local", true) == O2_SUCCESS);
    poll_until(bundle_calls == 2, 2);

    /* the local-time scheduler */
    check(o2_method_new("/local/lt", "", &on_lt, NULL, false, true) == O2_SUCCESS);
    o2_send_start();
    double t0 = o2_local_time();
    m = o2_message_finish(t0 + 0.1, "/local/lt", true);
    check(o2_schedule_msg(&o2_ltsched, m) == O2_SUCCESS);
    poll_until(lt_calls == 1, 2);
    printf("local-time message %.1f ms late\n", (lt_at - t0 - 0.1) * 1e3);
    check(lt_at >= t0 + 0.1);

    /* timed messages: none without a clock, on time with one */
    check(o2_method_new("/local/timed", "t", &on_timed, NULL, false, true) == O2_SUCCESS);
    check(o2_time_get() == -1 && !o2_clock_is_synchronized);
    check(o2_send("/local/timed", 5.0, "t", 5.0) == O2_NO_CLOCK);
    check(o2_clock_set(NULL, NULL) == O2_SUCCESS);
    check(o2_status("local") == O2_LOCAL);
    double when = o2_time_get() + 0.05;
    check(o2_send("/local/timed", when, "t", when) == O2_SUCCESS);
    check(timed_calls == 0);
    poll_until(timed_calls == 1, 2);
    check(timed_at >= when);
    double mean, min;
    check(o2_roundtrip(&mean, &min) == O2_SUCCESS && mean == 0); /* the reference */

    /* o2_run until a handler sets o2_stop_flag */
    check(o2_send("/local/lt", o2_time_get() + 0.05, "") == O2_SUCCESS);
    check(o2_run(100) == O2_SUCCESS);
    check(lt_calls == 2 && o2_stop_flag);
    check(o2_method_new("/local/stop", "", NULL, NULL, false, true) == O2_BAD_ARGS);

    /* removal */
    check(o2_method_free("/local/a") == O2_SUCCESS);
    check(o2_method_free("/local/a") == O2_FAIL);
    check(o2_send("/local/a", 0, "ifs", 1, 2.5, "x") != O2_SUCCESS);
    check(a_calls == 2);
    check(o2_service_free("local") == O2_SUCCESS);
    check(o2_status("local") == O2_UNKNOWN);
    check(o2_send("/local/any", 0, "") == O2_NO_SERVICE);

    /* names and text */
    char pip[16], iip[16];
    int port;
    check(o2_parse_name("@c0a80001:7f000001:d431", pip, iip, &port) == O2_SUCCESS);
    check(strcmp(pip, "c0a80001") == 0 && strcmp(iip, "7f000001") == 0 && port == 0xd431);
    check(o2_parse_name("nonsense", pip, iip, &port) == O2_FAIL);
    check(o2_get_proc_name() && o2_get_proc_name()[0] == '@');
    check(strstr(o2_error_to_string(O2_NO_SERVICE), "NO_SERVICE") != NULL);
    check(strcmp(o2_status_to_string(O2_REMOTE), "O2_REMOTE") == 0);

    /* plugin-backed calls: a clear failure when the plugin is not installed */
    int rc = o2_osc_delegate("oscout", "127.0.0.1", 9, false);
    printf("o2_osc_delegate rc=%d\n", rc);
    check(rc == O2_SUCCESS || rc == O2_FAIL);

    o2_finish();
    check(o2_ensemble_name == NULL);
    check(o2_initialize("o2local2") == O2_SUCCESS); /* again after o2_finish */
    o2_finish();
    printf("LOCAL DONE\n");
    return 0;
}
