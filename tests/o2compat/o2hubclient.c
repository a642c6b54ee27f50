/*
 * o2hubclient — a program in O2's style that finds the ensemble through a
 * hub with o2_hub, as O2's hubclient does.
 *
 *   o2hubclient ENSEMBLE HUB_PORT
 *
 * The hub is at 127.0.0.1:HUB_PORT; some other client of it offers "echo"
 * (/echo/ping "si": reply-to, n; it answers "is" n + 1). Checks o2_hub's
 * results as O2 gives them, then pings echo through what the hub told us.
 * Prints "o2hubclient OK" and exits 0 when everything went as expected.
 * It also builds against O2 itself (a build with hub support) and passes
 * there with an o2hub hub.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "o2.h"

#define check(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            printf("o2hubclient CHECK FAILED: %s (%s:%d)\n", #x, __FILE__, __LINE__);              \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int pong = -1;

static void on_pong(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                    const void *user_data) {
    pong = argv[0]->i32;
    printf("pong %d from %s\n", pong, argv[1]->s);
}

/* Poll until `*flag` differs from `unset` or `seconds` pass. */
static bool wait_for(const int *flag, int unset, double seconds) {
    for (int i = 0; i < (int)(seconds * 500) && *flag == unset; i++) {
        o2_poll();
        o2_sleep(2);
    }
    return *flag != unset;
}

static int echo_status(void) {
    int known = 0;
    for (int i = 0; i < 5000 && !known; i++) {
        o2_poll();
        known = o2_status("echo") >= O2_REMOTE_NOTIME;
        if (!known) o2_sleep(2);
    }
    return known;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: o2hubclient ENSEMBLE HUB_PORT\n");
        return 2;
    }
    int hub_port = atoi(argv[2]);
    o2_internet_enable(false);
    check(o2_hub(O2_VERSION, "0.0.0.0", "127.0.0.1", hub_port, hub_port) == O2_NOT_INITIALIZED);
    check(o2_initialize(argv[1]) == O2_SUCCESS);
    check(o2_status("echo") == O2_UNKNOWN);
    /* What O2 fails, and in its order. */
    check(o2_hub(0x010000, "0.0.0.0", "127.0.0.1", hub_port, hub_port) == O2_FAIL);
#ifdef O2H_O2_PROTOCOL_VERSION /* o2hub refuses a port O2 would try to connect to */
    check(o2_hub(O2_VERSION, "0.0.0.0", "127.0.0.1", 0, 0) == O2_BAD_ARGS);
#else
    check(o2_hub(O2_VERSION, "0.0.0.0", "127.0.0.1", 0, 0) == O2_SUCCESS);
#endif
    /* NULL addresses only stop discovery. */
    check(o2_hub(O2_VERSION, NULL, NULL, 0, 0) == O2_SUCCESS);
    check(o2_hub(O2_VERSION, "0.0.0.0", "127.0.0.1", hub_port, hub_port) == O2_SUCCESS);
    /* Again for the same hub: nothing more happens. */
    check(o2_hub(O2_VERSION, "0.0.0.0", "localhost", hub_port, hub_port) == O2_SUCCESS);
    check(echo_status());
    printf("echo known, status %d\n", o2_status("echo"));

    check(o2_service_new("hubc") == O2_SUCCESS);
    check(o2_method_new("/hubc/pong", "is", on_pong, NULL, false, true) == O2_SUCCESS);
    check(o2_send_cmd("/echo/ping", 0, "si", "/hubc/pong", 20) == O2_SUCCESS);
    check(wait_for(&pong, -1, 10));
    check(pong == 21);
    o2_finish();
    printf("o2hubclient OK\n");
    return 0;
}
