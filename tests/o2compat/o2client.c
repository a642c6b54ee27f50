/*
 * o2client — the other half of o2server (see there), in O2's style.
 *
 *   o2client ENSEMBLE [MAX_MSGS[t]] [N_ADDRS]
 *
 * Prints one "... OK" line per feature and "CLIENT DONE", exits 0 when
 * everything went as expected.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "o2.h"

#define check(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            printf("CLIENT CHECK FAILED: %s (%s:%d)\n", #x, __FILE__, __LINE__);                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int max_msg_count = 1000;
static int n_addrs = 20;
static bool use_tcp = false;
static char **server_addresses;
static int msg_count = 0;
static bool running = true;
static double started;

static int types_ok = -1;
static double server_time = -1, timed_late = -100;
static int copies = 0;
static int si_server_seen = 0;
static char server_process[O2_MAX_PROCNAME_LEN];
static float rt_mean = -1, rt_min = -1;

static void client_test(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                        const void *user_data) {
    msg_count++;
    int32_t i = msg_count + 1;
    if (msg_count >= max_msg_count) {
        i = -1;
        running = false;
    }
    if (use_tcp)
        o2_send_cmd(server_addresses[msg_count % n_addrs], 0, "i", i);
    else
        o2_send(server_addresses[msg_count % n_addrs], 0, "i", i);
    check(msg_count == argv[0]->i32);
}

static void on_types_ok(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                        const void *user_data) {
    types_ok = argv[0]->i32;
}

static void on_time(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                    const void *user_data) {
    server_time = argv[0]->t;
}

static void on_timed_ok(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                        const void *user_data) {
    timed_late = argv[0]->d;
}

/* Copies of what the client sends to "publish" (offered by the server). */
static void on_copy(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                    const void *user_data) {
    check(strcmp(msg->address + 1, "spy/i") == 0);
    check(argv[0]->i32 == copies);
    check(*(const int *)user_data == 77);
    copies++;
}

static void on_si(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                  const void *user_data) {
    if (strcmp(argv[0]->s, "server") == 0) {
        si_server_seen = argv[1]->i32;
        snprintf(server_process, sizeof server_process, "%s", argv[2]->s);
    }
}

/* The server process's answer to !@server/cs/rt. */
static void on_rt(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                  const void *user_data) {
    check(strcmp(argv[0]->s, server_process) == 0);
    rt_mean = argv[1]->f;
    rt_min = argv[2]->f;
}

/* Poll until `done` holds, at most `limit` seconds. */
#define poll_until(done, limit)                                                                    \
    do {                                                                                           \
        double until_ = o2_local_time() + (limit);                                                 \
        while (!(done)) {                                                                          \
            check(o2_local_time() < until_);                                                       \
            o2_poll();                                                                             \
            o2_sleep(1);                                                                           \
        }                                                                                          \
    } while (0)

static int find_service(const char *name) {
    for (int i = 0; o2_service_name(i); i++)
        if (strcmp(o2_service_name(i), name) == 0 && o2_service_type(i) != O2_TAP) return i;
    return -1;
}

static bool server_property_seen(void) {
    o2_services_list();
    int i = find_service("server");
    const char *role = i >= 0 ? o2_service_getprop(i, "role") : NULL;
    bool ok = role && strcmp(role, "echo;v1:x\\y") == 0;
    O2_FREE(role);
    if (!ok) o2_services_list_free();
    return ok;
}

static void clock_test(void) {
    double t0 = o2_time_get();
    o2_send_cmd("!server/time", 0, "s", "!client/time");
    poll_until(server_time >= 0, 5);
    double t1 = o2_time_get();
    double err = server_time - (t0 + t1) / 2;
    printf("clock: server - client = %.3f ms (round trip %.3f ms)\n", err * 1e3, (t1 - t0) * 1e3);
    check(fabs(err) < 0.005);
    double mean, min;
    check(o2_roundtrip(&mean, &min) == O2_SUCCESS && min >= 0 && min <= mean && mean < 1);
    /* O2's round-trip query to a process: !@name/cs/rt "s" -> "sff" */
    check(server_process[0] == '@');
    char address[64];
    snprintf(address, sizeof address, "!%s/cs/rt", server_process);
    check(o2_send_cmd(address, 0, "s", "!client/rt") == O2_SUCCESS);
    poll_until(rt_mean >= 0, 5);
    check(rt_mean == 0 && rt_min == 0); /* the server is the reference */
    printf("CLOCK OK\n");
}

static void property_test(void) {
    poll_until(server_property_seen(), 5); /* leaves the snapshot in place */
    int i = find_service("server");
    check(o2_service_type(i) == O2_REMOTE);
    check(o2_service_process(i)[0] == '@');
    check(o2_service_tapper(i) == NULL);
    check(strstr(o2_service_properties(i), "kind:test;") != NULL);
    check(o2_service_search(0, "kind", ":test;") == i);
    check(o2_service_search(0, "role", ":echo") == i);
    check(o2_service_search(0, "role", "x\\\\y;") == i);
    check(o2_service_search(0, "role", ":cho") == -1);
    check(o2_service_search(i + 1, "kind", "test") == -1);
    const char *none = o2_service_getprop(i, "nosuch");
    check(none == NULL);
    /* the client's own tap on "publish" is in the list too */
    bool tap_listed = false;
    for (int k = 0; o2_service_name(k); k++)
        if (o2_service_type(k) == O2_TAP && strcmp(o2_service_name(k), "publish") == 0 &&
            strcmp(o2_service_tapper(k), "spy") == 0)
            tap_listed = true;
    check(tap_listed);
    o2_services_list_free();
    check(si_server_seen == O2_REMOTE);
    printf("PROPERTY OK\n");
}

static void types_test(void) {
    int32_t vec[3] = {7, 8, 9};
    check(o2_send_start() == O2_SUCCESS);
    o2_add_int32(42);
    o2_add_int64(1234567);
    o2_add_float(2.5f);
    o2_add_double(0.125);
    o2_add_string("hello");
    o2_add_symbol("sym");
    o2_add_char('x');
    o2_add_time(7.75);
    o2_add_bool(true);
    o2_add_true();
    o2_add_false();
    o2_add_nil();
    o2_add_infinitum();
    o2_add_midi(0x00903c7f);
    O2blob_ptr blob = o2_blob_new(5);
    memcpy(blob->data, "\x01\x02\x03\x04\x05", 5);
    o2_add_blob(blob);
    O2_FREE(blob);
    o2_add_vector(O2_INT32, 3, vec);
    o2_add_start_array();
    o2_add_int32(10);
    o2_add_int32(11);
    o2_add_end_array();
    /* built as a message first, to check o2_message_finish + o2_message_send */
    O2message_ptr m = o2_message_finish(0, "!server/types", true);
    check(m && strcmp(m->data.address, "!server/types") == 0);
    check(strcmp(o2_msg_types(m), "ihfdsSctBTFNImbvi[ii]") == 0);
    check(o2_message_send(m) == O2_SUCCESS);
    poll_until(types_ok >= 0, 5);
    check(types_ok == 1);
    printf("TYPES OK\n");
}

static void timed_test(void) {
    double when = o2_time_get() + 0.2;
    check(o2_send_cmd("!server/timed", when, "d", when) == O2_SUCCESS);
    poll_until(timed_late > -100, 5);
    printf("timed: delivered %.3f ms after its time\n", timed_late * 1e3);
    check(timed_late >= -0.002 && timed_late < 0.1);
    printf("TIMED OK\n");
}

static void tap_test(void) {
    for (int k = 0; k < 10; k++)
        check(o2_send_cmd("!publish/i", 0, "i", k) == O2_SUCCESS);
    poll_until(copies == 10, 5);
    printf("TAP OK\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        printf("usage: o2client ENSEMBLE [MAX_MSGS[t]] [N_ADDRS]\n");
        return 2;
    }
    if (argc >= 3) {
        max_msg_count = atoi(argv[2]);
        use_tcp = strchr(argv[2], 't') != NULL;
    }
    if (argc >= 4) n_addrs = atoi(argv[3]);
    static const int cookie = 77;

    check(o2_time_get() < 0);
    check(o2_status("server") == O2_FAIL); /* not initialized */
    o2_network_enable(false);
    check(o2_initialize(argv[1]) == O2_SUCCESS);
    started = o2_local_time();
    check(o2_service_new("client") == O2_SUCCESS);
    for (int i = 0; i < n_addrs; i++) {
        char path[100];
        snprintf(path, sizeof path, "/client/benchmark/%d", i);
        check(o2_method_new(path, "i", &client_test, NULL, false, true) == O2_SUCCESS);
    }
    check(o2_method_new("/client/types_ok", "i", &on_types_ok, NULL, false, true) == O2_SUCCESS);
    check(o2_method_new("/client/time", "t", &on_time, NULL, false, true) == O2_SUCCESS);
    check(o2_method_new("/client/timed_ok", "d", &on_timed_ok, NULL, false, true) == O2_SUCCESS);
    check(o2_method_new("/_o2/si", "siss", &on_si, NULL, false, true) == O2_SUCCESS);
    check(o2_method_new("/client/rt", "sff", &on_rt, NULL, false, true) == O2_SUCCESS);
    check(o2_service_new("spy") == O2_SUCCESS);
    check(o2_method_new("/spy/i", "i", &on_copy, &cookie, false, true) == O2_SUCCESS);
    check(o2_tap("publish", "spy", TAP_RELIABLE) == O2_SUCCESS);

    server_addresses = O2_MALLOCNT(n_addrs, char *);
    for (int i = 0; i < n_addrs; i++) {
        char path[100];
        snprintf(path, sizeof path, "!server/benchmark/%d", i);
        server_addresses[i] = O2_MALLOCNT(strlen(path) + 1, char);
        strcpy(server_addresses[i], path);
    }

    /* O2_REMOTE (not _NOTIME): the server is known and our clocks agree. */
    poll_until(o2_status("server") >= O2_REMOTE, 20);
    check(o2_clock_is_synchronized);
    printf("client %s discovered the server; time is %g\n", o2_get_proc_name(), o2_time_get());

    clock_test();
    property_test();
    types_test();
    timed_test();
    tap_test();

    double t0 = o2_local_time();
    if (use_tcp)
        o2_send_cmd("!server/benchmark/0", 0, "i", 1);
    else
        o2_send("!server/benchmark/0", 0, "i", 1);
    poll_until(!running, 30);
    double dt = o2_local_time() - t0;
    printf("BENCHMARK OK %d round trips in %.3f s (%.1f us each, %s)\n", msg_count, dt,
           dt / msg_count * 1e6, use_tcp ? "tcp" : "udp");
    check(o2_untap("publish", "spy") == O2_SUCCESS);
    double now = o2_time_get();
    while (o2_time_get() < now + 0.2) {
        o2_poll();
        o2_sleep(2);
    }
    for (int i = 0; i < n_addrs; i++)
        O2_FREE(server_addresses[i]);
    O2_FREE(server_addresses);
    o2_finish();
    check(o2_ensemble_name == NULL);
    printf("CLIENT DONE\n");
    return 0;
}
