/*
 * The O2lite C client library (sdk/o2lite) against a real o2hub host: a
 * router with the tcp and udp transports in this process (polled in the same
 * loop as the client), and the o2lite-imu example as a separate process.
 * Every wait is bounded; everything runs on 127.0.0.1.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "port_util.h"

#include "o2lite.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The host binds TCP and UDP on one number. */
static int free_port(void) {
    return pu_free_port();
}

static char ensemble[32];

/* A host on 127.0.0.1:port (TCP and UDP), the clock reference, optionally
 * announcing itself with the broadcast discovery plugin. */
static o2h_router *start_host(int port, bool discovery) {
    char json[1024];
    snprintf(ensemble, sizeof ensemble, "o2lc%d", (int)getpid());
    snprintf(json, sizeof json,
             "{\"ensemble\": \"%s\", \"log_level\": \"warn\", \"plugin_path\": [\"%s\", \"%s\"],"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],"
             " \"discovery\": [%s]}",
             ensemble, TRANSPORT_DIR, DISCOVERY_DIR, port, port,
             discovery ? "{\"type\": \"broadcast\"}" : "");
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "host.json", NULL, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert_eq(o2h_clock_set(r), O2H_OK);
    return r;
}

static o2h_router *host;

/* Run host and client for a moment. */
static void pump(void) {
    o2h_router_poll(host, 1);
    o2l_poll();
}

#define WAIT_FOR(cond, seconds)                                                                    \
    do {                                                                                           \
        double end_ = now_s() + (seconds);                                                         \
        while (!(cond)) {                                                                          \
            cr_assert_lt(now_s(), end_, "timed out waiting for " #cond);                           \
            pump();                                                                                \
        }                                                                                          \
    } while (0)

typedef struct got {
    int n;
    int32_t i;
    float f;
    double at; /* host time of arrival */
} got;

static void on_hub(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    got *g = user_data;
    g->n++;
    g->i = argv[0]->i;
    g->f = argv[1]->f;
}

static got client_got;

static void on_cmd(o2l_msg_ptr msg, const char *types, void *data, void *info) {
    client_got.n++;
    client_got.i = o2l_get_int32();
    client_got.at = o2h_time_get(host);
}

Test(o2lite_client, through_an_o2hub_host_both_ways_and_clock) {
    int port = free_port();
    host = start_host(port, false);
    got hub = {0};
    cr_assert_eq(o2h_service_new(host, "hub"), O2H_OK);
    cr_assert_eq(o2h_method_new(host, "/hub/x", "if", on_hub, &hub, false, true), O2H_OK);

    cr_assert_eq(o2l_initialize(ensemble), O2L_SUCCESS);
    o2l_set_services("imu");
    o2l_method_new("/imu/cmd", "i", true, on_cmd, NULL);
    cr_assert_eq(o2l_set_host("127.0.0.1", port, port), O2L_SUCCESS);

    /* the service appears on the host, bridged; then the client syncs */
    WAIT_FOR(o2l_bridge_id > 0, 3);
    WAIT_FOR(o2h_status(host, "imu") == O2H_STATUS_BRIDGE_NOTIME ||
                 o2h_status(host, "imu") == O2H_STATUS_BRIDGE,
             3);
    WAIT_FOR(o2h_status(host, "imu") == O2H_STATUS_BRIDGE, 3);
    cr_assert_eq(o2l_status(), O2L_SYNCED);
    double skew = o2l_time_get() - o2h_time_get(host);
    cr_assert(fabs(skew) < 0.002, "client clock off by %g s", skew);

    /* client -> host service, reliable and best effort */
    o2l_send_start("/hub/x", 0, "if", true);
    o2l_add_int32(1);
    o2l_add_float(2.5f);
    cr_assert_eq(o2l_send(), O2L_SUCCESS);
    WAIT_FOR(hub.n == 1, 3);
    cr_assert_eq(hub.i, 1);
    cr_assert_eq(hub.f, 2.5f);
    o2l_send_start("!hub/x", 0, NULL, false);
    o2l_add_int32(2);
    o2l_add_float(-1.0f);
    cr_assert_eq(o2l_send(), O2L_SUCCESS);
    WAIT_FOR(hub.n == 2, 3);
    cr_assert_eq(hub.i, 2);

    /* host -> client service, reliable and best effort */
    cr_assert_eq(o2h_send_cmd(host, "/imu/cmd", 0, "i", 41), O2H_OK);
    WAIT_FOR(client_got.n == 1, 3);
    cr_assert_eq(client_got.i, 41);
    cr_assert_eq(o2h_send(host, "/imu/cmd", 0, "i", 42), O2H_OK);
    WAIT_FOR(client_got.n == 2, 3);
    cr_assert_eq(client_got.i, 42);

    /* a timed message is held by the host until its time */
    double when = o2h_time_get(host) + 0.2;
    cr_assert_eq(o2h_send_cmd(host, "/imu/cmd", when, "i", 43), O2H_OK);
    WAIT_FOR(client_got.n == 3, 3);
    cr_assert_eq(client_got.i, 43);
    cr_assert_geq(client_got.at, when - 0.002, "arrived %g s early", when - client_got.at);
    cr_assert_eq(o2l_dropped(), 0);

    /* the client leaves: its service goes away on the host */
    o2l_finish();
    WAIT_FOR(o2h_status(host, "imu") == O2H_STATUS_UNKNOWN, 3);
    o2h_router_free(host);
}

Test(o2lite_client, discovers_the_host_by_broadcast_dy) {
    int port = free_port();
    host = start_host(port, true);
    cr_assert_eq(o2l_initialize(ensemble), O2L_SUCCESS);
    o2l_set_services("imu");
    cr_assert_eq(o2l_status(), O2L_DISCONNECTED);
    WAIT_FOR(o2l_bridge_id > 0, 5);
    WAIT_FOR(o2h_status(host, "imu") == O2H_STATUS_BRIDGE, 3);
    o2l_finish();
    o2h_router_free(host);
}

/* ---- the example, as a separate process ---------------------------------- */

static got sink;

static void on_sink(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    sink.n++;
    sink.f = argv[6]->f; /* temperature */
}

Test(o2lite_client, imu_example_streams_at_20_hz_and_prints_its_messages) {
    int port = free_port();
    host = start_host(port, false);
    cr_assert_eq(o2h_service_new(host, "sink"), O2H_OK);
    cr_assert_eq(o2h_method_new(host, "/sink/imu", "fffffff", on_sink, NULL, false, true), O2H_OK);
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    int out[2];
    cr_assert_eq(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        dup2(out[1], 2);
        execl(IMU_EXE, "o2lite-imu", "--ensemble", ensemble, "--service", "dev", "--to",
              "/sink/imu", "--host", "127.0.0.1", port_s, port_s, "--seconds", "10", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);

    WAIT_FOR(o2h_status(host, "dev") == O2H_STATUS_BRIDGE, 5);
    int first = sink.n;
    double start = now_s();
    WAIT_FOR(now_s() >= start + 1.0, 2);
    int per_second = sink.n - first;
    cr_assert(per_second >= 15 && per_second <= 25, "%d readings in 1 s", per_second);
    cr_assert(sink.f > 24.0f && sink.f < 26.0f);

    cr_assert_eq(o2h_send_cmd(host, "/dev/hello", 0, "si", "hi", 7), O2H_OK);
    char text[65536] = "";
    size_t used = 0;
    double end = now_s() + 3;
    while (!strstr(text, "/dev/hello \"hi\" 7")) {
        cr_assert_lt(now_s(), end, "no message printed; output:\n%s", text);
        ssize_t n = read(out[0], text + used, sizeof text - 1 - used);
        if (n > 0) used += (size_t)n;
        text[used] = 0;
        o2h_router_poll(host, 5);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    close(out[0]);
    WAIT_FOR(o2h_status(host, "dev") == O2H_STATUS_UNKNOWN, 3);
    o2h_router_free(host);
}
