/*
 * bench/private_avahi — a private dbus and avahi-daemon for bench/ensemble's
 * dnssd runs where none runs on the machine: loopback only, in a network
 * namespace of their own (tests/e2e/avahi_env.h, as the DNS-SD tests start
 * them; needs root). A process of its own, so that the ensemble's processes
 * map avahi's libraries only when they load the dnssd plugin (their RSS is
 * measured).
 * Prints "ready BUS_ADDRESS" or "failed WHY" on a line of stdout, then waits
 * for stdin to close and stops both daemons by PID.
 * Usage: private_avahi DIR
 */
#include <stdio.h>
#include <unistd.h>

#include "avahi_env.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: private_avahi DIR\n");
        return 2;
    }
    static avahi_env env;
    avahi_env_init(&env, argv[1]);
    if (!avahi_env_start(&env, 15)) {
        printf("failed %s\n", env.why);
        return 1;
    }
    printf("ready unix:path=%s\n", env.bus_path);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    avahi_env_stop(&env);
    return 0;
}
