/*
 * The o2lite client's DNS-SD discovery (sdk/o2lite/o2l_dnssd.c) against a
 * real avahi-daemon: a private dbus and avahi, loopback only, in namespaces
 * of their own (avahi_env.h), started and stopped by each test. The hosts
 * here announce themselves only by DNS-SD (no broadcast plugin), as O2 2.x
 * processes do by default, so the client's UDP discovery cannot find them.
 *
 * - An o2hub host in this process is found; messages go both ways and the
 *   clock syncs.
 * - Registrations made by the test: another ensemble, another major version,
 *   a TXT name whose TCP port is not the SRV port are never connected to; a
 *   good one appearing later ("ens #2") is, and it receives the client's
 *   !_o2/o2lite/con.
 * - The o2lite-imu example (`--dnssd`, a separate process) finds the host.
 * - The client starts while avahi is down and connects once it is up.
 *
 * If this machine cannot run avahi-daemon (not installed, no namespaces), the
 * tests say why and are skipped.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dns_sd.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "avahi_env.h"
#include "o2l_dnssd.h"
#include "o2lite.h"

static char tmpdir[64];
static avahi_env env;
static char ensemble[32];
static o2h_router *host;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/o2hub-o2ldnssd-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    avahi_env_init(&env, tmpdir);
    snprintf(ensemble, sizeof ensemble, "o2ld%d", (int)getpid());
}

static void teardown(void) {
    o2l_finish();
    if (host) o2h_router_free(host);
    host = NULL;
    avahi_env_stop(&env);
    if (!tmpdir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    (void)!system(cmd);
    tmpdir[0] = '\0';
}

TestSuite(o2lite_dnssd, .init = setup, .fini = teardown, .timeout = 120);

#define SKIP_WITHOUT_AVAHI()                                                                       \
    do {                                                                                           \
        if (!avahi_env_start(&env, 10)) {                                                          \
            fprintf(stderr, "o2lite dnssd test skipped: %s\n", env.why);                           \
            teardown(); /* criterion does not run .fini after a skip */                            \
            cr_skip_test("this machine cannot run avahi-daemon: %s", env.why);                     \
        }                                                                                          \
    } while (0)

/* A host on 127.0.0.1 (ephemeral TCP and UDP ports) announced by DNS-SD only;
 * the clock reference. */
static o2h_router *start_host(void) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"%s\", \"log_level\": \"warn\", \"plugin_path\": [\"%s\", \"%s\"],"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\"},"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\"}],"
             " \"discovery\": [{\"type\": \"dnssd\", \"retry_min\": 0.2, \"retry_max\": 1.0}]}",
             ensemble, TRANSPORT_DIR, DISCOVERY_DIR);
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "host.json", NULL, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert_eq(o2h_clock_set(r), O2H_OK);
    return r;
}

/* ---- the test's own DNS-SD registrations, processed while waiting ---- */

#define MAX_REFS 8
static DNSServiceRef refs[MAX_REFS];
static int n_refs;

static void DNSSD_API on_registered(DNSServiceRef ref, DNSServiceFlags flags,
                                    DNSServiceErrorType err, const char *name, const char *type,
                                    const char *domain, void *ctx) {
    cr_assert_eq(err, 0, "registering a fake host failed: %d", err);
}

/* A _o2proc._tcp registration as an O2 process makes it. */
static void fake_host(const char *instance, const char *txt_name, const char *vers, int port) {
    uint8_t txt[128];
    size_t n = 0;
    const char *items[2] = {txt_name, vers};
    const char *keys[2] = {"name", "vers"};
    for (int i = 0; i < 2; i++) {
        char item[80];
        int len = snprintf(item, sizeof item, "%s=%s", keys[i], items[i]);
        txt[n] = (uint8_t)len;
        memcpy(txt + n + 1, item, (size_t)len);
        n += 1 + (size_t)len;
    }
    cr_assert_lt(n_refs, MAX_REFS);
    int err = DNSServiceRegister(&refs[n_refs], 0, 0, instance, "_o2proc._tcp", NULL, NULL,
                                 htons((uint16_t)port), (uint16_t)n, txt, on_registered, NULL);
    cr_assert_eq(err, 0, "DNSServiceRegister: %d", err);
    n_refs++;
}

static void pump(void) {
    if (host) o2h_router_poll(host, 0);
    o2l_poll();
    struct pollfd p[MAX_REFS];
    for (int i = 0; i < n_refs; i++)
        p[i] = (struct pollfd){.fd = DNSServiceRefSockFD(refs[i]), .events = POLLIN};
    if (poll(p, (nfds_t)n_refs, 1) > 0)
        for (int i = 0; i < n_refs; i++)
            if (p[i].revents) DNSServiceProcessResult(refs[i]);
    if (!n_refs) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void pump_for(double seconds) {
    double end = now_s() + seconds;
    while (now_s() < end)
        pump();
}

#define WAIT_FOR(cond, seconds)                                                                    \
    do {                                                                                           \
        double end_ = now_s() + (seconds);                                                         \
        while (!(cond)) {                                                                          \
            cr_assert_lt(now_s(), end_, "timed out waiting for " #cond);                           \
            pump();                                                                                \
        }                                                                                          \
    } while (0)

static int listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- an o2hub host, found by DNS-SD alone ---- */

typedef struct got {
    int n;
    int32_t i;
} got;

static void on_hub(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    got *g = user_data;
    g->n++;
    g->i = argv[0]->i;
}

static got client_got;

static void on_cmd(o2l_msg_ptr msg, const char *types, void *data, void *info) {
    client_got.n++;
    client_got.i = o2l_get_int32();
}

Test(o2lite_dnssd, finds_an_o2hub_host_messages_both_ways_and_clock) {
    SKIP_WITHOUT_AVAHI();
    host = start_host();
    got hub = {0};
    cr_assert_eq(o2h_service_new(host, "hub"), O2H_OK);
    cr_assert_eq(o2h_method_new(host, "/hub/x", "i", on_hub, &hub, false, true), O2H_OK);

    cr_assert_eq(o2l_dnssd_enable(), O2L_FAIL, "not initialized yet");
    cr_assert_eq(o2l_initialize(ensemble), O2L_SUCCESS);
    cr_assert_eq(o2l_dnssd_enable(), O2L_SUCCESS);
    o2l_set_services("imu");
    o2l_method_new("/imu/cmd", "i", true, on_cmd, NULL);

    WAIT_FOR(o2l_bridge_id >= 0, 15);
    WAIT_FOR(o2h_status(host, "imu") >= 0, 3);
    WAIT_FOR(o2l_status() == O2L_SYNCED, 5);
    cr_assert_gt(o2l_time_get(), 0);

    o2l_send_start("/hub/x", 0, "i", true);
    o2l_add_int32(41);
    cr_assert_eq(o2l_send(), O2L_SUCCESS);
    WAIT_FOR(hub.n == 1, 3);
    cr_assert_eq(hub.i, 41);
    cr_assert_eq(o2h_send_cmd(host, "/imu/cmd", 0, "i", 42), O2H_OK);
    WAIT_FOR(client_got.n == 1, 3);
    cr_assert_eq(client_got.i, 42);
}

/* ---- what it connects to, and what not ---- */

/* A connection accepted on `fd` within `seconds`, or -1. */
static int accept_within(int fd, double seconds) {
    double end = now_s() + seconds;
    while (now_s() < end) {
        int c = accept(fd, NULL, NULL);
        if (c >= 0) return c;
        cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "accept: %s", strerror(errno));
        pump();
    }
    return -1;
}

Test(o2lite_dnssd, connects_only_to_its_ensemble_major_version_and_consistent_ports) {
    SKIP_WITHOUT_AVAHI();
    cr_assert_eq(o2l_initialize(ensemble), O2L_SUCCESS);
    cr_assert_eq(o2l_dnssd_enable(), O2L_SUCCESS);
    char instance[64], txt[40], other[48];
    int p_v3, p_other, p_ports, p_good;
    int l_v3 = listener(&p_v3), l_other = listener(&p_other), l_ports = listener(&p_ports);
    snprintf(txt, sizeof txt, "@00000000:7f000001:%04x:%04x", p_v3, p_v3);
    fake_host(ensemble, txt, "3.0.0", p_v3);
    snprintf(other, sizeof other, "%sx", ensemble); /* starts like ours */
    snprintf(txt, sizeof txt, "@00000000:7f000001:%04x:%04x", p_other, p_other);
    fake_host(other, txt, "2.0.1", p_other);
    snprintf(instance, sizeof instance, "%s #3", ensemble);
    snprintf(txt, sizeof txt, "@00000000:7f000001:%04x:%04x", p_ports + 1, p_ports);
    fake_host(instance, txt, "2.0.1", p_ports);

    /* Each is browsed and resolved within milliseconds; none may be connected to. */
    pump_for(3);
    cr_assert_eq(o2l_status(), O2L_DISCONNECTED);
    cr_assert_lt(accept(l_v3, NULL, NULL), 0, "connected to a host of O2 3.x");
    cr_assert_lt(accept(l_other, NULL, NULL), 0, "connected to another ensemble");
    cr_assert_lt(accept(l_ports, NULL, NULL), 0, "connected although TXT and SRV ports differ");

    /* A good one appears, renamed as avahi renames: connected, and introduced to. */
    int l_good = listener(&p_good);
    snprintf(instance, sizeof instance, "%s #2", ensemble);
    snprintf(txt, sizeof txt, "@0a000001:7f000001:%04x:%04x", p_good, p_good);
    fake_host(instance, txt, "2.0.1", p_good);
    int c = accept_within(l_good, 15);
    cr_assert_geq(c, 0, "the good host was never connected to");
    WAIT_FOR(o2l_status() == O2L_CONNECTING, 1);
    uint8_t buf[256];
    size_t have = 0;
    double end = now_s() + 3;
    while (have < 24 && now_s() < end) {
        ssize_t n = recv(c, buf + have, sizeof buf - have, MSG_DONTWAIT);
        if (n > 0) have += (size_t)n;
        pump();
    }
    cr_assert_geq(have, 24);
    cr_assert(memmem(buf, have, "!_o2/o2lite/con", 15) != NULL, "no !_o2/o2lite/con");
    close(c);
    close(l_good);
    close(l_v3);
    close(l_other);
    close(l_ports);
    for (int i = 0; i < n_refs; i++)
        DNSServiceRefDeallocate(refs[i]);
    n_refs = 0;
}

/* ---- the example program ---- */

static void on_reading(o2h_router *r, const o2h_msg *msg, const char *types,
                       const o2h_arg *const *argv, int argc, void *user_data) {
    (*(int *)user_data)++;
}

/* The imu example, a separate process, asked for DNS-SD (--dnssd) or not. */
static pid_t start_imu(bool ask_dnssd) {
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        const char *args[12] = {IMU_EXE};
        int n = 1;
        if (ask_dnssd) args[n++] = "--dnssd";
        const char *rest[] = {"--ensemble", ensemble, "--to", "/hub/imu", "--seconds", "30"};
        for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
            args[n++] = rest[i];
        execv(IMU_EXE, (char *const *)args);
        _exit(127);
    }
    return pid;
}

/* The imu example, as a separate process, finds the host and its readings arrive. */
static void imu_finds_the_host(bool ask_dnssd) {
    host = start_host();
    int readings = 0;
    cr_assert_eq(o2h_service_new(host, "hub"), O2H_OK);
    cr_assert_eq(o2h_method_new(host, "/hub/imu", "fffffff", on_reading, &readings, false, true),
                 O2H_OK);
    pid_t pid = start_imu(ask_dnssd);
    WAIT_FOR(o2h_status(host, "imu") >= 0, 15);
    WAIT_FOR(readings >= 5, 5);
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
}

/* Linked with libo2lite_dnssd, a client browses DNS-SD without being asked, as
 * O2's o2lite does: the host here answers no UDP discovery. */
Test(o2lite_dnssd, the_imu_example_finds_the_host_by_zeroconf_by_default) {
    SKIP_WITHOUT_AVAHI();
    imu_finds_the_host(false);
}

Test(o2lite_dnssd, the_imu_example_with_dnssd_asked_for_finds_the_host_too) {
    SKIP_WITHOUT_AVAHI();
    imu_finds_the_host(true);
}

/* ---- avahi down at start ---- */

Test(o2lite_dnssd, starts_while_avahi_is_down_and_connects_once_it_is_up) {
    host = start_host();
    cr_assert_eq(o2l_initialize(ensemble), O2L_SUCCESS);
    cr_assert_eq(o2l_dnssd_enable(), O2L_SUCCESS);
    pump_for(1); /* no daemon: browse fails, quietly, and is retried */
    cr_assert_eq(o2l_status(), O2L_DISCONNECTED);
    SKIP_WITHOUT_AVAHI();
    WAIT_FOR(o2l_bridge_id >= 0, 20);
    WAIT_FOR(o2h_status(host, "imu") >= 0 || o2l_status() >= O2L_CONNECTED, 3);
}
