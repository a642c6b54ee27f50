/*
 * The host side of O2lite over TCP and UDP, driven by a client written here
 * from the wire description (docs/o2lite.md) with raw sockets, so each
 * step of the protocol is checked byte for byte against a real o2hub router
 * with its real tcp and udp plugins. (The C client library in sdk/o2lite is
 * tested against the host in its own e2e test.)
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "port_util.h"

#define WAIT_S 3.0

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The host binds TCP and UDP on one number. */
static int free_port(void) {
    return pu_free_port();
}

typedef struct client {
    o2h_router *host;
    int host_port;
    int tcp, udp, udp_port;
    uint8_t inbuf[65536];
    size_t inlen;
    int id;
} client;

static o2h_router *start_host(int port) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"lite\", \"log_level\": \"warn\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}]}",
             TRANSPORT_DIR, port, port);
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "lite.json", NULL, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    return r;
}

static void send_tcp(client *c, o2h_msg *m) {
    uint32_t len = htonl(m->length);
    cr_assert_eq(send(c->tcp, &len, 4, 0), 4);
    cr_assert_eq(send(c->tcp, m->data, m->length, 0), (ssize_t)m->length);
    o2h_msg_unref(m);
}

static void send_udp(client *c, o2h_msg *m) {
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)c->host_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(sendto(c->udp, m->data, m->length, 0, (struct sockaddr *)&a, sizeof a),
                 (ssize_t)m->length);
    o2h_msg_unref(m);
}

/* A message from the client: builder-made, as O2 encodes it. */
static o2h_msg *build(const char *address, bool reliable, const char *types, ...) {
    o2h_builder *b = o2h_builder_new(NULL);
    va_list ap;
    va_start(ap, types);
    for (const char *t = types; *t; t++) {
        if (*t == 'i') o2h_add_int32(b, va_arg(ap, int));
        if (*t == 'f') o2h_add_float(b, (float)va_arg(ap, double));
        if (*t == 's') o2h_add_string(b, va_arg(ap, const char *));
    }
    va_end(ap);
    o2h_msg *m = o2h_builder_finish(b, 0, address, reliable ? O2H_FLAG_RELIABLE : 0);
    o2h_builder_free(b);
    return m;
}

/* The next message the host sends the client (TCP when `tcp`, else UDP), or NULL. */
static o2h_msg *receive(client *c, bool tcp) {
    double deadline = now_s() + WAIT_S;
    while (now_s() < deadline) {
        o2h_router_poll(c->host, 5);
        if (tcp) {
            ssize_t n = recv(c->tcp, c->inbuf + c->inlen, sizeof c->inbuf - c->inlen, MSG_DONTWAIT);
            if (n > 0) c->inlen += (size_t)n;
            if (c->inlen >= 4) {
                uint32_t len;
                memcpy(&len, c->inbuf, 4);
                len = ntohl(len);
                if (c->inlen >= 4 + len) {
                    o2h_msg *m = o2h_msg_from_bytes(NULL, c->inbuf + 4, len, NULL, NULL);
                    memmove(c->inbuf, c->inbuf + 4 + len, c->inlen - 4 - len);
                    c->inlen -= 4 + len;
                    return m;
                }
            }
        } else {
            uint8_t buf[4096];
            ssize_t n = recv(c->udp, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) return o2h_msg_from_bytes(NULL, buf, (size_t)n, NULL, NULL);
        }
    }
    return NULL;
}

static bool poll_until_status(o2h_router *r, const char *svc, int want) {
    double deadline = now_s() + WAIT_S;
    while (now_s() < deadline) {
        if (o2h_status(r, svc) == want) return true;
        o2h_router_poll(r, 5);
    }
    return o2h_status(r, svc) == want;
}

/* TCP connect, !_o2/o2lite/con, wait for !_o2/id. */
static void connect_client(client *c, o2h_router *host, int port) {
    memset(c, 0, sizeof *c);
    c->host = host;
    c->host_port = port;
    c->udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(c->udp, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(c->udp, (struct sockaddr *)&a, &len);
    c->udp_port = ntohs(a.sin_port);
    c->tcp = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = htons((uint16_t)port);
    cr_assert_eq(connect(c->tcp, (struct sockaddr *)&a, sizeof a), 0, "%s", strerror(errno));
    send_tcp(c, build("!_o2/o2lite/con", true, "si", "7f000001", c->udp_port));
    o2h_msg *id = receive(c, true);
    cr_assert_not_null(id, "no !_o2/id from the host");
    cr_assert_str_eq(o2h_msg_address(id), "!_o2/id");
    cr_assert_str_eq(o2h_msg_types(id), "i");
    o2h_reader rd;
    o2h_arg arg;
    o2h_reader_init(&rd, id, NULL, 0);
    o2h_reader_next(&rd, 'i', &arg);
    c->id = arg.i;
    cr_assert_gt(c->id, 0);
    o2h_msg_unref(id);
}

static void close_client(client *c) {
    close(c->tcp);
    close(c->udp);
}

static int32_t first_int(const o2h_msg *m) {
    o2h_reader rd;
    o2h_arg a;
    o2h_reader_init(&rd, m, NULL, 0);
    cr_assert_eq(o2h_reader_next(&rd, 'i', &a), O2H_OK);
    return a.i;
}

typedef struct got {
    int n;
    float f;
} got;

static void on_reply(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    got *g = user_data;
    g->n++;
    g->f = argv[0]->f;
}

Test(o2lite_host, client_services_messages_both_ways_and_clock) {
    int port = free_port();
    o2h_router *host = start_host(port);
    cr_assert_eq(o2h_clock_set(host), O2H_OK, "the host is the reference");
    client c;
    connect_client(&c, host, port);

    /* Its service is ours now, bridged and not yet synced. */
    send_tcp(&c, build("!_o2/o2lite/sv", true, "siisi", "imu", 1, 1, "", 0));
    cr_assert(poll_until_status(host, "imu", O2H_STATUS_BRIDGE_NOTIME), "status %d",
              o2h_status(host, "imu"));

    /* Host -> client: reliable over TCP, best effort over UDP. */
    cr_assert_eq(o2h_send_cmd(host, "/imu/cmd", 0, "i", 41), O2H_OK);
    o2h_msg *m = receive(&c, true);
    cr_assert_not_null(m);
    cr_assert_str_eq(o2h_msg_address(m), "/imu/cmd");
    cr_assert_eq(first_int(m), 41);
    o2h_msg_unref(m);
    cr_assert_eq(o2h_send(host, "/imu/cmd", 0, "i", 42), O2H_OK);
    m = receive(&c, false);
    cr_assert_not_null(m, "nothing by UDP");
    cr_assert_eq(first_int(m), 42);
    o2h_msg_unref(m);

    /* Client -> host service, by UDP. */
    got g = {0};
    cr_assert_eq(o2h_service_new(host, "sink"), O2H_OK);
    cr_assert_eq(o2h_method_new(host, "/sink/f", "f", on_reply, &g, false, true), O2H_OK);
    send_udp(&c, build("/sink/f", false, "f", 2.5));
    double deadline = now_s() + WAIT_S;
    while (g.n == 0 && now_s() < deadline)
        o2h_router_poll(host, 5);
    cr_assert_eq(g.n, 1);
    cr_assert_float_eq(g.f, 2.5f, 0);

    /* Clock: a ping by UDP gets the host's time back by UDP; then cs/cs. */
    send_udp(&c, build("!_o2/o2lite/cs/get", false, "iis", c.id, 7, "!_o2/cs/put"));
    m = receive(&c, false);
    cr_assert_not_null(m, "no clock reply");
    cr_assert_str_eq(o2h_msg_address(m), "!_o2/cs/put");
    cr_assert_str_eq(o2h_msg_types(m), "it");
    o2h_reader rd;
    o2h_arg a;
    o2h_reader_init(&rd, m, NULL, 0);
    o2h_reader_next(&rd, 'i', &a);
    cr_assert_eq(a.i, 7);
    o2h_reader_next(&rd, 't', &a);
    cr_assert(a.t >= 0 && a.t <= o2h_time_get(host));
    o2h_msg_unref(m);
    send_tcp(&c, build("!_o2/o2lite/cs/cs", true, ""));
    cr_assert(poll_until_status(host, "imu", O2H_STATUS_BRIDGE));

    /* Status query. */
    send_tcp(&c, build("!_o2/o2lite/st", true, "s", "sink"));
    m = receive(&c, true);
    cr_assert_not_null(m);
    cr_assert_str_eq(o2h_msg_address(m), "!_o2/st");
    o2h_reader_init(&rd, m, NULL, 0);
    o2h_reader_next(&rd, 's', &a);
    cr_assert_str_eq(a.s, "sink");
    o2h_reader_next(&rd, 'i', &a);
    cr_assert_eq(a.i, O2H_STATUS_LOCAL);
    o2h_msg_unref(m);

    /* Gone at once when it disconnects. */
    close_client(&c);
    cr_assert(poll_until_status(host, "imu", O2H_STATUS_UNKNOWN));
    o2h_router_free(host);
}

Test(o2lite_host, timed_messages_wait_on_the_host) {
    int port = free_port();
    o2h_router *host = start_host(port);
    o2h_clock_set(host);
    client c;
    connect_client(&c, host, port);
    send_tcp(&c, build("!_o2/o2lite/sv", true, "siisi", "dev", 1, 1, "", 0));
    cr_assert(poll_until_status(host, "dev", O2H_STATUS_BRIDGE_NOTIME));
    double t0 = o2h_time_get(host);
    cr_assert_eq(o2h_send_cmd(host, "/dev/at", t0 + 0.1, "i", 1), O2H_OK);
    o2h_msg *m = receive(&c, true);
    double t1 = o2h_time_get(host);
    cr_assert_not_null(m);
    cr_assert_geq(t1, t0 + 0.1, "sent before its time: %.4f", t1 - t0);
    o2h_msg_unref(m);
    close_client(&c);
    o2h_router_free(host);
}

Test(o2lite_host, many_clients_and_a_tap) {
    int port = free_port();
    o2h_router *host = start_host(port);
    enum { N = 8 };
    client c[N];
    for (int i = 0; i < N; i++) {
        connect_client(&c[i], host, port);
        char name[16];
        snprintf(name, sizeof name, "dev%d", i);
        send_tcp(&c[i], build("!_o2/o2lite/sv", true, "siisi", name, 1, 1, "", 0));
    }
    for (int i = 1; i < N; i++)
        cr_assert_neq(c[i].id, c[i - 1].id, "every client has its own id");
    cr_assert(poll_until_status(host, "dev7", O2H_STATUS_BRIDGE_NOTIME));
    /* Client 0 taps dev1: a message to dev1 reaches both. */
    send_tcp(&c[0], build("!_o2/o2lite/sv", true, "siisi", "dev0", 1, 0, "dev1", O2H_TAP_RELIABLE));
    for (int i = 0; i < 50; i++)
        o2h_router_poll(host, 1);
    cr_assert_eq(o2h_send_cmd(host, "/dev1/x", 0, "i", 5), O2H_OK);
    o2h_msg *m1 = receive(&c[1], true), *m0 = receive(&c[0], true);
    cr_assert_not_null(m1);
    cr_assert_not_null(m0, "the tapper got no copy");
    cr_assert_str_eq(o2h_msg_address(m0), "/dev0/x");
    o2h_msg_unref(m0);
    o2h_msg_unref(m1);
    for (int i = 0; i < N; i++)
        close_client(&c[i]);
    cr_assert(poll_until_status(host, "dev0", O2H_STATUS_UNKNOWN));
    o2h_router_free(host);
}

Test(o2lite_host, con_from_udp_or_twice_is_ignored) {
    int port = free_port();
    o2h_router *host = start_host(port);
    client c;
    connect_client(&c, host, port);
    int first = c.id;
    send_tcp(&c, build("!_o2/o2lite/con", true, "si", "7f000001", c.udp_port));
    send_udp(&c, build("!_o2/o2lite/con", false, "si", "7f000001", c.udp_port));
    send_udp(&c, build("!_o2/o2lite/sv", false, "siisi", "sneaky", 1, 1, "", 0));
    for (int i = 0; i < 50; i++)
        o2h_router_poll(host, 1);
    cr_assert_eq(o2h_status(host, "sneaky"), O2H_STATUS_UNKNOWN, "sv by UDP names no client");
    send_tcp(&c, build("!_o2/o2lite/sv", true, "siisi", "ok", 1, 1, "", 0));
    cr_assert(poll_until_status(host, "ok", O2H_STATUS_BRIDGE_NOTIME));
    cr_assert_eq(first, c.id);
    close_client(&c);
    o2h_router_free(host);
}

Test(o2lite_host, a_client_offering_its_service_again_keeps_it) {
    int port = free_port();
    o2h_router *host = start_host(port);
    client c;
    connect_client(&c, host, port);
    /* O2's o2lite client re-sends its whole list when the list changes. */
    send_tcp(&c, build("!_o2/o2lite/sv", true, "siisi", "dev", 1, 1, "", 0));
    send_tcp(&c, build("!_o2/o2lite/sv", true, "siisi", "dev", 1, 1, ";k:v;", 0));
    cr_assert(poll_until_status(host, "dev", O2H_STATUS_BRIDGE_NOTIME));
    for (int i = 0; i < 20; i++)
        o2h_router_poll(host, 1);
    char value[16] = "";
    cr_assert_eq(o2h_service_get_property(host, "dev", "k", value, sizeof value), O2H_OK);
    cr_assert_str_eq(value, "v", "the second offer's properties are taken");
    send_tcp(&c, build("!_o2/o2lite/sv", true, "siisi", "dev", 0, 1, "", 0));
    cr_assert(poll_until_status(host, "dev", O2H_STATUS_UNKNOWN), "one removal removes it");
    close_client(&c);
    o2h_router_free(host);
}

static void count_taps(void *ctx, const o2h_service_info *info) {
    if (info->status == O2H_STATUS_TAP) ++*(int *)ctx;
}

static int taps_known(o2h_router *r) {
    int n = 0;
    o2h_services_list(r, count_taps, &n);
    return n;
}

static uint64_t refused(o2h_router *r) {
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    return st.refused;
}

static void offer(client *c, const char *prefix, int i, bool add) {
    char name[32];
    snprintf(name, sizeof name, "%s%d", prefix, i);
    send_tcp(c, build("!_o2/o2lite/sv", true, "siisi", name, add, 1, "", 0));
}

/* A light client cannot make the host hold more than 1024 services or taps for it. */
Test(o2lite_host, a_client_has_bounded_services_and_taps) {
    int port = free_port();
    o2h_router *host = start_host(port);
    client c;
    connect_client(&c, host, port);
    enum { BOUND = 1024, OVER = 10 };
    for (int i = 0; i < BOUND + OVER; i++) {
        offer(&c, "s", i, true);
        if (i % 64 == 0) o2h_router_poll(host, 0);
    }
    cr_assert(poll_until_status(host, "s1023", O2H_STATUS_BRIDGE_NOTIME), "the bound is served");
    for (int i = 0; i < 50; i++)
        o2h_router_poll(host, 1);
    cr_assert_eq(o2h_status(host, "s1024"), O2H_STATUS_UNKNOWN, "one over the bound is refused");
    cr_assert_eq(o2h_status(host, "s1033"), O2H_STATUS_UNKNOWN);
    cr_assert_eq(refused(host), OVER, "each refusal counted");

    /* Offering one again (new properties) is no new service; removing one makes room. */
    send_tcp(&c, build("!_o2/o2lite/sv", true, "siisi", "s5", 1, 1, ";k:v;", 0));
    offer(&c, "s", 0, false);
    offer(&c, "s", 2000, true);
    cr_assert(poll_until_status(host, "s2000", O2H_STATUS_BRIDGE_NOTIME), "room after a removal");
    cr_assert_eq(o2h_status(host, "s0"), O2H_STATUS_UNKNOWN);
    cr_assert_eq(refused(host), OVER);

    /* Taps: the same bound, on their own. */
    for (int i = 0; i < BOUND + OVER; i++) {
        char tappee[32];
        snprintf(tappee, sizeof tappee, "t%d", i);
        send_tcp(&c, build("!_o2/o2lite/sv", true, "siisi", "s1", 1, 0, tappee, O2H_TAP_KEEP));
        if (i % 64 == 0) o2h_router_poll(host, 0);
    }
    double deadline = now_s() + WAIT_S;
    while (refused(host) < 2 * OVER && now_s() < deadline)
        o2h_router_poll(host, 5);
    cr_assert_eq(taps_known(host), BOUND, "taps held: %d", taps_known(host));
    cr_assert_eq(refused(host), 2 * OVER);

    /* Another client is not hurt, and all of it goes when the first leaves. */
    client d;
    connect_client(&d, host, port);
    offer(&d, "other", 1, true);
    cr_assert(poll_until_status(host, "other1", O2H_STATUS_BRIDGE_NOTIME));
    close_client(&c);
    cr_assert(poll_until_status(host, "s1023", O2H_STATUS_UNKNOWN));
    cr_assert_eq(taps_known(host), 0);
    close_client(&d);
    o2h_router_free(host);
}
