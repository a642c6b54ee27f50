/*
 * A private dbus and avahi-daemon for DNS-SD tests, isolated from anything
 * else on the machine:
 *  - dbus-daemon listens on DIR/bus (its own config, not the system bus);
 *    DBUS_SYSTEM_BUS_ADDRESS points this process and its children there.
 *  - avahi-daemon runs in a network namespace of its own (only lo, brought
 *    up by us, and allow-interfaces=lo as well) and a mount namespace with a
 *    fresh /run, so it never touches eth0, never meets a system avahi and
 *    leaves no pid file behind. Its clients reach it through the bus socket,
 *    and the TXT names carry 127.0.0.1, so processes talk over the main lo.
 * Both are children of the test (killed with it: PR_SET_PDEATHSIG) and are
 * stopped by PID.
 */
#ifndef O2HUB_TEST_AVAHI_ENV_H
#define O2HUB_TEST_AVAHI_ENV_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct avahi_env {
    char dir[128];
    char bus_path[192];
    pid_t dbus_pid;
    pid_t avahi_pid;
    int max_connections_per_user; /* of the bus; 0: dbus-daemon's default */
    char why[512];                /* why a start failed */
} avahi_env;

/* Write the configs into `dir` and point DBUS_SYSTEM_BUS_ADDRESS at the private bus
 * (nothing is started yet). Also sets AVAHI_COMPAT_NOWARN. */
void avahi_env_init(avahi_env *e, const char *dir);
/* Before the start: let one user hold at most `per_user` bus connections (avahi's
 * compat library makes one per DNSServiceRef), to test what a crowded bus refuses. */
void avahi_env_limit_connections(avahi_env *e, int per_user);
/* Start dbus (if not running) and avahi, and wait until a DNS-SD client can
 * browse. false with e->why filled when this machine cannot do it. */
bool avahi_env_start(avahi_env *e, double limit_s);
void avahi_env_stop_avahi(avahi_env *e);
void avahi_env_stop(avahi_env *e);

#endif
