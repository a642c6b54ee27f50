/*
 * The front door, as docs/hub.md tells a new user to walk through it:
 *
 *   bash scripts/run-router.sh          # the default hub, examples/hub.json
 *   o2ctl list                          # shows the hub's services
 *   open http://127.0.0.1:8080/         # the web monitor
 *   o2ctl dump osc                      # then an O2lite device and oscsend reach it
 *
 * run-router.sh runs with O2HUB_NO_BUILD=1 (this build is used as it is, the
 * way the script runs it after building: exec BUILD/tools/o2hub) and
 * O2HUB_BUILD_DIR set to this build. hub.json is used unchanged except
 * through the documented overrides (o2hub --set): ephemeral ports instead
 * of 40000, 8080 and 8000, 127.0.0.1 instead of every interface, and no
 * broadcast off this machine. Every process gets O2HUB_ENSEMBLE (a name of
 * this test's own, so that parallel tests never meet) and O2HUB_HOST
 * (loopback); o2ctl gets no option at all for `list`. DBUS_SYSTEM_BUS_ADDRESS
 * points nowhere, so ZeroConf is unavailable whatever this machine runs:
 * the hub says so in one info line and the broadcast fallback does the work.
 * A second test gives the hub a private avahi-daemon (as the dnssd tests do)
 * and takes broadcast away: plain `o2ctl list` then finds it by ZeroConf.
 */
#include <limits.h>
#include <poll.h>

#include "proc_util.h"
#ifdef HAVE_AVAHI_ENV
#include "avahi_env.h"
#endif

static char ensemble_env[96], build_env[PATH_MAX + 32];

static const char *const common_env[] = {ensemble_env, "O2HUB_HOST=127.0.0.1",
                                         "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/bus",
                                         NULL};

/* The whole HTTP answer to GET `path` from 127.0.0.1:port (bounded), in `out`. */
static void http_get(int port, const char *path, char *out, size_t size) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect to %d: %s", port,
                 strerror(errno));
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t used = 0;
    double end = pu_now() + 5;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left_ms = (int)((end - pu_now()) * 1000);
        cr_assert(left_ms > 0 && poll(&p, 1, left_ms) == 1, "no answer to GET %s", path);
        ssize_t r = read(fd, out + used, size - 1 - used);
        if (r <= 0) break;
        used += (size_t)r;
        if (used == size - 1) break;
    }
    out[used] = '\0';
    close(fd);
}

/* o2ctl with `args` and the common environment; waits for its exit. */
static int o2ctl(child *c, const char *const *args, double limit) {
    char *argv[16] = {O2CTL_EXE};
    int n = 1;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pu_spawn(c, argv, common_env, false);
    return limit > 0 ? pu_wait(c, limit) : 0;
}

Test(front_door, hub_list_monitor_device_and_osc, .timeout = 120) {
    snprintf(ensemble_env, sizeof ensemble_env, "O2HUB_ENSEMBLE=front-%d", (int)getpid());
    snprintf(build_env, sizeof build_env, "O2HUB_BUILD_DIR=%s", BUILD_ROOT);
    int o2_port = pu_free_port(), web_port = pu_free_port(), osc_port = pu_free_port();
    cr_assert(o2_port > 0 && web_port > 0 && osc_port > 0 && o2_port != web_port &&
              web_port != osc_port && o2_port != osc_port);
    char set_tcp[64], set_udp[64], set_web[64], set_osc[64];
    snprintf(set_tcp, sizeof set_tcp, "transports.tcp.port=%d", o2_port);
    snprintf(set_udp, sizeof set_udp, "transports.udp.port=%d", o2_port);
    snprintf(set_web, sizeof set_web, "transports.websocket.port=%d", web_port);
    snprintf(set_osc, sizeof set_osc, "transports.osc.ports[0].port=%d", osc_port);

    /* 1. bash scripts/run-router.sh (no config: examples/hub.json) */
    char *hub_argv[] = {"/bin/bash", SOURCE_ROOT "/scripts/run-router.sh",
                        "--set",     set_tcp,
                        "--set",     set_udp,
                        "--set",     set_web,
                        "--set",     set_osc,
                        "--set",     "transports.tcp.host=127.0.0.1",
                        "--set",     "transports.udp.host=127.0.0.1",
                        "--set",     "transports.osc.ports[0].host=127.0.0.1",
                        "--set",     "discovery.broadcast.broadcast=false",
                        NULL};
    const char *hub_env[] = {ensemble_env, build_env, "O2HUB_NO_BUILD=1",
                             "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/bus", NULL};
    child hub;
    pu_spawn(&hub, hub_argv, hub_env, false);
    cr_assert_not_null(pu_expect(&hub, "o2hub is running: ensemble \"front-", 20), "hub:\n%s",
                       hub.out);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", web_port);
    cr_assert_not_null(pu_expect(&hub, url, 5), "the banner gives the monitor's URL:\n%s", hub.out);
    cr_assert_not_null(pu_expect(&hub, "try            o2ctl list", 5),
                       "the ensemble is o2ctl's default here, so plain o2ctl list:\n%s", hub.out);
    /* No avahi reachable: one info line, no warning, and the hub goes on. */
    cr_assert_not_null(strstr(hub.out, "info dnssd: avahi-daemon (or dbus) is not running"),
                       "hub:\n%s", hub.out);
    cr_assert_null(strstr(hub.out, "warn dnssd"), "hub:\n%s", hub.out);
    cr_assert_null(strstr(hub.out, "*** WARNING ***"), "avahi's compat warning is off:\n%s",
                   hub.out);

    /* 2. o2ctl list, no options: the hub's service, found by discovery */
    child c;
    const char *list[] = {"list", NULL};
    int st = -1;
    for (int attempt = 0; attempt < 3 && st != 0; attempt++) {
        if (attempt) pu_kill(&c);
        st = o2ctl(&c, list, 20);
        if (st != 0) fprintf(stderr, "o2ctl list, attempt %d:\n%s", attempt + 1, c.out);
    }
    cr_assert_eq(st, 0, "o2ctl list:\n%s\nhub:\n%s", c.out, hub.out);
    const char *row = strstr(c.out, "\nhub ");
    cr_assert_not_null(row, "o2ctl list:\n%s", c.out);
    cr_assert_not_null(strstr(row, "REMOTE"), "o2ctl list:\n%s", c.out);
    pu_kill(&c);

    /* 3. the web monitor at / and the JS SDK at /sdk/ */
    static char page[1 << 16];
    http_get(web_port, "/", page, sizeof page);
    cr_assert(strncmp(page, "HTTP/1.", 7) == 0 && strstr(page, " 200 "), "%.300s", page);
    cr_assert_not_null(strstr(page, "<title>o2hub monitor</title>"), "%.600s", page);
    http_get(web_port, "/sdk/o2ws.js", page, sizeof page);
    cr_assert_not_null(strstr(page, " 200 "), "%.300s", page);
    cr_assert_not_null(strstr(page, "export"), "the JS SDK module: %.300s", page);

    /* 4. o2ctl dump osc; the O2lite device and oscsend reach it */
    child dump;
    const char *dump_args[] = {"dump", "osc", NULL};
    o2ctl(&dump, dump_args, 0);
    cr_assert_not_null(pu_expect(&dump, "offering osc", 10), "dump:\n%s", dump.out);

    child imu;
    char *imu_argv[] = {IMU_EXE, "--to", "/osc/imu", "--seconds", "60", NULL};
    pu_spawn(&imu, imu_argv, common_env, false);
    cr_assert_not_null(pu_expect(&dump, "/osc/imu ,fffffff", 30), "dump:\n%s\nimu:\n%s\nhub:\n%s",
                       dump.out, imu.out, hub.out);

    /* oscsend until it gets through: the hub may learn of the dump a moment after it starts */
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", osc_port);
    const char *got = NULL;
    for (int attempt = 0; attempt < 40 && !got; attempt++) {
        child osc;
        char *osc_argv[] = {OSCSEND_EXE, "localhost", port_text, "/hello", "ifs",
                            "60",        "0.5",       "piano",   NULL};
        pu_spawn(&osc, osc_argv, NULL, false);
        cr_assert_eq(pu_wait(&osc, 10), 0, "oscsend:\n%s", osc.out);
        pu_kill(&osc);
        got = pu_expect(&dump, "/osc/hello ,ifs 60 0.5 \"piano\"", 0.25);
    }
    cr_assert_not_null(got, "dump:\n%s\nhub:\n%s", dump.out, hub.out);

    pu_kill(&imu);
    pu_kill(&dump);
    kill(hub.pid, SIGTERM); /* run-router.sh execs o2hub: this is o2hub */
    cr_assert_eq(pu_wait(&hub, 10), 0, "hub:\n%s", hub.out);
    cr_assert_not_null(strstr(hub.out, "o2hub: stopped;"), "hub:\n%s", hub.out);
    pu_kill(&hub);
}

Test(front_door, nothing_running_is_said, .timeout = 60) {
    /* no hub in this ensemble: o2ctl list says so and fails, as the docs promise */
    snprintf(ensemble_env, sizeof ensemble_env, "O2HUB_ENSEMBLE=nobody-%d", (int)getpid());
    child c;
    const char *list[] = {"list", NULL};
    cr_assert_eq(o2ctl(&c, list, 20), 1, "%s", c.out);
    cr_assert_not_null(strstr(c.out, "no services found"), "%s", c.out);
    cr_assert_not_null(strstr(c.out, "run-router.sh"), "%s", c.out);
    pu_kill(&c);
}

#ifdef HAVE_AVAHI_ENV
Test(front_door, o2ctl_finds_the_hub_by_zeroconf, .timeout = 120) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/o2hub-front-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    avahi_env env;
    avahi_env_init(&env, dir); /* DBUS_SYSTEM_BUS_ADDRESS: the private bus, for every child */
    if (!avahi_env_start(&env, 10)) {
        fprintf(stderr, "front door ZeroConf test skipped: %s\n", env.why);
        avahi_env_stop(&env);
        cr_skip_test("this machine cannot run avahi-daemon: %s", env.why);
    }
    snprintf(ensemble_env, sizeof ensemble_env, "O2HUB_ENSEMBLE=zc-%d", (int)getpid());
    snprintf(build_env, sizeof build_env, "O2HUB_BUILD_DIR=%s", BUILD_ROOT);
    int o2_port = pu_free_port(), web_port = pu_free_port(), osc_port = pu_free_port();
    char set_tcp[64], set_udp[64], set_web[64], set_osc[64];
    snprintf(set_tcp, sizeof set_tcp, "transports.tcp.port=%d", o2_port);
    snprintf(set_udp, sizeof set_udp, "transports.udp.port=%d", o2_port);
    snprintf(set_web, sizeof set_web, "transports.websocket.port=%d", web_port);
    snprintf(set_osc, sizeof set_osc, "transports.osc.ports[0].port=%d", osc_port);
    char *hub_argv[] = {"/bin/bash", SOURCE_ROOT "/scripts/run-router.sh",
                        "--set",     set_tcp,
                        "--set",     set_udp,
                        "--set",     set_web,
                        "--set",     set_osc,
                        "--set",     "transports.tcp.host=127.0.0.1",
                        "--set",     "transports.udp.host=127.0.0.1",
                        "--set",     "transports.osc.ports[0].host=127.0.0.1",
                        "--set",     "discovery=[{\"type\": \"dnssd\", \"interface\": \"lo\"}]",
                        NULL};
    const char *hub_env[] = {ensemble_env, build_env, "O2HUB_NO_BUILD=1", NULL};
    child hub;
    pu_spawn(&hub, hub_argv, hub_env, false);
    cr_assert_not_null(pu_expect(&hub, "DNS-SD is up", 20), "hub:\n%s", hub.out);
    cr_assert_not_null(pu_expect(&hub, "discovery      dnssd\n", 5), "hub:\n%s", hub.out);

    child c;
    const char *list_env[] = {ensemble_env, "O2HUB_HOST=127.0.0.1", NULL};
    char *argv[] = {O2CTL_EXE, "list", NULL};
    int st = -1;
    for (int attempt = 0; attempt < 3 && st != 0; attempt++) {
        if (attempt) pu_kill(&c);
        pu_spawn(&c, argv, list_env, false);
        st = pu_wait(&c, 20);
        if (st != 0) fprintf(stderr, "o2ctl list, attempt %d:\n%s", attempt + 1, c.out);
    }
    cr_assert_eq(st, 0, "o2ctl list:\n%s\nhub:\n%s", c.out, hub.out);
    cr_assert_not_null(strstr(c.out, "\nhub "), "o2ctl list:\n%s", c.out);
    pu_kill(&c);
    /* without ZeroConf it would not: broadcast alone finds nothing */
    const char *b_env[] = {ensemble_env, "O2HUB_HOST=127.0.0.1", "O2HUB_DISCOVERY=broadcast", NULL};
    char *b_argv[] = {O2CTL_EXE, "-w", "1.5", "list", NULL};
    pu_spawn(&c, b_argv, b_env, false);
    cr_assert_eq(pu_wait(&c, 20), 1, "o2ctl -D broadcast list:\n%s", c.out);
    pu_kill(&c);

    kill(hub.pid, SIGTERM);
    cr_assert_eq(pu_wait(&hub, 10), 0, "hub:\n%s", hub.out);
    pu_kill(&hub);
    avahi_env_stop(&env);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
}
#endif
