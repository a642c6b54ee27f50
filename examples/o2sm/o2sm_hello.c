/*
 * o2sm_hello — a small o2sm client: connects to the shm transport of a
 * running o2hub, offers SERVICE, and once a second sends "/PEER/hello" with
 * a counter and its O2 time; prints what it gets.
 *
 *   build/tools/o2hub --config examples/shm.json &
 *   build/examples/o2sm/o2sm_hello o2hub-demo alice bob &
 *   build/examples/o2sm/o2sm_hello o2hub-demo bob alice
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "o2sm.h"

static volatile sig_atomic_t running = 1;

static void on_signal(int sig) {
    (void)sig;
    running = 0;
}

static void on_hello(o2sm_client *c, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    printf("%s: hello %d from %s, sent at O2 time %.6f, now %.6f\n", (const char *)user_data,
           argv[0]->i, argv[1]->s, argv[2]->t, o2sm_time_get(c));
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: o2sm_hello NAME-OR-SOCKET SERVICE PEER\n");
        return 2;
    }
    const char *me = argv[2], *peer = argv[3];
    int err;
    o2sm_options opts = {.struct_size = sizeof opts, .label = "o2sm_hello"};
    o2sm_client *c = o2sm_connect(argv[1], &opts, &err);
    if (!c) {
        fprintf(stderr, "o2sm_hello: cannot connect to %s: %s\n", argv[1], o2h_strerror(err));
        return 1;
    }
    char path[80], to[80];
    snprintf(path, sizeof path, "/%s/hello", me);
    snprintf(to, sizeof to, "/%s/hello", peer);
    o2sm_service_new(c, me, NULL);
    o2sm_method_new(c, path, "ist", on_hello, (void *)me, true, true);
    printf("%s: client %d, segment %s\n", me, o2sm_get_id(c), o2sm_segment_name(c));
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    double next = o2sm_local_time();
    int n = 0;
    while (running) {
        if (o2sm_poll(c) < 0) {
            fprintf(stderr, "o2sm_hello: the host is gone\n");
            break;
        }
        if (o2sm_local_time() >= next) {
            next += 1;
            double now = o2sm_time_get(c);
            if (now >= 0) o2sm_send_cmd(c, to, 0, "ist", n++, me, now);
        }
        o2sm_wait(c, 100);
    }
    o2sm_finish(c);
    return 0;
}
