/*
 * o2server — an O2-style program (written against o2.h only, the way O2's own
 * test/o2server does it) for the o2compat e2e test. With o2client it checks:
 * request/response over N addresses, every argument type through
 * o2_send_start/o2_add_* and o2_extract_start/o2_get_next with coercion, clock
 * sync (this process is the reference), a timed message, a property and a tap
 * (the client taps "publish", offered here).
 *
 *   o2server ENSEMBLE [N_ADDRS] [t]     ("t": the benchmark replies over TCP)
 *
 * Prints "SERVER DONE" and exits 0 when everything went as expected.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "o2.h"

#define check(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            printf("SERVER CHECK FAILED: %s (%s:%d)\n", #x, __FILE__, __LINE__);                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int n_addrs = 20;
static bool use_tcp = false;
static char **client_addresses;
static int msg_count = 0;
static bool running = true;
static int published = 0;

static void server_test(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                        const void *user_data) {
    check(argc == 1);
    check(strcmp(types, "i") == 0);
    msg_count++;
    if (argv[0]->i32 == -1) {
        running = false;
        return;
    }
    check(msg_count == argv[0]->i32);
    if (use_tcp)
        o2_send_cmd(client_addresses[msg_count % n_addrs], 0, "i", msg_count);
    else
        o2_send(client_addresses[msg_count % n_addrs], 0, "i", msg_count);
}

/* Read every type the client sent, most of them coerced, with o2_get_next. */
static void types_test(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                       const void *user_data) {
    check(argv == NULL && argc == 0); /* parse = false */
    check(strcmp(msg->address, "!server/types") == 0 || strcmp(msg->address, "/server/types") == 0);
    check(msg->misc & O2_TCP_FLAG);
    int n = o2_extract_start(msg);
    O2arg_ptr a;
    check(n == (int)strlen("ihfdsSctBTFNImbvi[ii]"));
    check((a = o2_get_next(O2_DOUBLE)) && a->d == 42.0);               /* i as d */
    check((a = o2_get_next(O2_INT32)) && a->i32 == 1234567);           /* h as i */
    check((a = o2_get_next(O2_DOUBLE)) && a->d == 2.5);                /* f as d */
    check((a = o2_get_next(O2_FLOAT)) && a->f == 0.125f);              /* d as f */
    check((a = o2_get_next(O2_SYMBOL)) && strcmp(a->S, "hello") == 0); /* s as S */
    check((a = o2_get_next(O2_STRING)) && strcmp(a->s, "sym") == 0);   /* S as s */
    check((a = o2_get_next(O2_CHAR)) && a->c == 'x');
    check((a = o2_get_next(O2_TIME)) && a->t == 7.75);
    check((a = o2_get_next(O2_INT32)) && a->i32 == 1); /* B as i */
    check((a = o2_get_next(O2_BOOL)) && a->B == 1);    /* T as B */
    check((a = o2_get_next(O2_INT64)) && a->h == 0);   /* F as h */
    check(o2_get_next(O2_NIL) != NULL);
    check(o2_get_next(O2_INFINITUM) != NULL);
    check((a = o2_get_next(O2_MIDI)) && a->m == 0x00903c7fu);
    check((a = o2_get_next(O2_BLOB)) && a->b.size == 5 &&
          memcmp(a->b.data, "\x01\x02\x03\x04\x05", 5) == 0);
    check((a = o2_get_next(O2_VECTOR)) && a->v.len == 3); /* vi read as vd */
    check((a = o2_get_next(O2_DOUBLE)) && a->v.len == 3 && a->v.typ == 'd' && a->v.vd[0] == 7 &&
          a->v.vd[2] == 9);
    check(o2_get_next(O2_ARRAY_START) == o2_got_start_array);
    check((a = o2_get_next(O2_INT32)) && a->i32 == 10);
    check((a = o2_get_next(O2_FLOAT)) && a->f == 11.0f);
    check(o2_get_next(O2_ARRAY_END) == o2_got_end_array);
    check(o2_get_next(O2_INT32) == NULL); /* no more */
    o2_send_cmd("!client/types_ok", 0, "i", 1);
}

static void time_request(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                         const void *user_data) {
    o2_send_cmd(argv[0]->s, 0, "t", o2_time_get());
}

/* Stamped for the future by the client: must arrive at (not before) its time. */
static void timed(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                  const void *user_data) {
    double now = o2_time_get();
    check(msg->timestamp == argv[0]->d);
    o2_send_cmd("!client/timed_ok", 0, "d", now - msg->timestamp);
}

static void publish(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                    const void *user_data) {
    check(argv[0]->i32 == published);
    published++;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        printf("usage: o2server ENSEMBLE [N_ADDRS] [t]\n");
        return 2;
    }
    if (argc >= 3) n_addrs = atoi(argv[2]);
    if (argc >= 4) use_tcp = strchr(argv[3], 't') != NULL;
    check(n_addrs > 0);

    o2_network_enable(false); /* 127.0.0.1 only */
    check(o2_initialize(argv[1]) == O2_SUCCESS);
    check(o2_initialize(argv[1]) == O2_ALREADY_RUNNING);
    check(o2_ensemble_name && strcmp(o2_ensemble_name, argv[1]) == 0);
    check(o2_service_new("server") == O2_SUCCESS);
    check(o2_service_new("server") == O2_SERVICE_EXISTS);
    for (int i = 0; i < n_addrs; i++) {
        char path[100];
        snprintf(path, sizeof path, "/server/benchmark/%d", i);
        check(o2_method_new(path, "i", &server_test, NULL, false, true) == O2_SUCCESS);
    }
    check(o2_method_new("/server/types", NULL, &types_test, NULL, false, false) == O2_SUCCESS);
    check(o2_method_new("/server/time", "s", &time_request, NULL, false, true) == O2_SUCCESS);
    check(o2_method_new("/server/timed", "d", &timed, NULL, true, true) == O2_SUCCESS);
    check(o2_service_new("publish") == O2_SUCCESS);
    check(o2_method_new("/publish/i", "i", &publish, NULL, false, true) == O2_SUCCESS);
    /* A value that needs O2's escaping (';' ':' '\\'). */
    check(o2_service_set_property("server", "role", "echo;v1:x\\y") == O2_SUCCESS);
    check(o2_service_set_property("server", "kind", "test") == O2_SUCCESS);
    check(o2_service_set_property("nosuch", "kind", "test") == O2_FAIL);

    client_addresses = O2_MALLOCNT(n_addrs, char *);
    for (int i = 0; i < n_addrs; i++) {
        char path[100];
        snprintf(path, sizeof path, "!client/benchmark/%d", i);
        client_addresses[i] = O2_MALLOCNT(strlen(path) + 1, char);
        strcpy(client_addresses[i], path);
    }
    check(o2_clock_set(NULL, NULL) == O2_SUCCESS);
    check(o2_time_get() >= 0 && o2_clock_is_synchronized);

    double start = o2_local_time();
    while (o2_status("client") < O2_REMOTE_NOTIME) {
        check(o2_local_time() - start < 20); /* bounded */
        o2_poll();
        o2_sleep(2);
    }
    const char *pip, *iip;
    int port;
    check(o2_get_addresses(&pip, &iip, &port) == O2_SUCCESS && strcmp(iip, "7f000001") == 0);
    printf("server %s discovered the client at time %g\n", o2_get_proc_name(), o2_time_get());

    while (running) {
        check(o2_local_time() - start < 60);
        o2_poll();
        o2_sleep(1);
    }
    check(published == 10);
    double now = o2_time_get();
    while (o2_time_get() < now + 0.5) { /* let the last replies go out */
        o2_poll();
        o2_sleep(2);
    }
    for (int i = 0; i < n_addrs; i++)
        O2_FREE(client_addresses[i]);
    O2_FREE(client_addresses);
    o2_finish();
    printf("SERVER DONE\n");
    return 0;
}
