/*
 * O2lite client against a scripted host on 127.0.0.1: the test plays the
 * host's side of the O2lite protocol with raw sockets (docs/o2lite.md),
 * checks every message the client sends byte for byte, and drives the client
 * with o2l_poll() while it waits (every wait is bounded).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "o2lite.h"

static const uint16_t discovery_ports[16] = {64541, 60238, 57143, 55764, 56975, 62711,
                                             57571, 53472, 51779, 63714, 53304, 61696,
                                             50665, 49404, 64828, 54859};

typedef struct host {
    int listener, conn, udp, udp_reply; /* udp_reply: replies come from another port (C7) */
    int tcp_port, udp_port, client_udp_port;
    uint8_t in[8192];
    size_t in_len;
} host;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bound_port(int s) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static int open_socket(int type) {
    int s = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    return s;
}

static void host_open(host *h) {
    memset(h, 0, sizeof *h);
    h->listener = open_socket(SOCK_STREAM);
    cr_assert_eq(listen(h->listener, 4), 0);
    h->udp = open_socket(SOCK_DGRAM);
    h->udp_reply = open_socket(SOCK_DGRAM);
    h->conn = -1;
    h->tcp_port = bound_port(h->listener);
    h->udp_port = bound_port(h->udp);
}

/* Poll the client and wait 1 ms on the host's sockets. */
static void tick(host *h) {
    o2l_poll();
    struct pollfd p[3] = {{h->listener, POLLIN, 0}, {h->udp, POLLIN, 0}, {h->conn, POLLIN, 0}};
    poll(p, h->conn >= 0 ? 3 : 2, 1);
}

#define WAIT_FOR(h, cond, seconds)                                                                 \
    do {                                                                                           \
        double end_ = mono() + (seconds);                                                          \
        while (!(cond)) {                                                                          \
            cr_assert_lt(mono(), end_, "timed out waiting for " #cond);                            \
            tick(h);                                                                               \
        }                                                                                          \
    } while (0)

static bool try_accept(host *h) {
    int c = accept4(h->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return false;
    if (h->conn >= 0) close(h->conn);
    h->conn = c;
    h->in_len = 0;
    return true;
}

/* Read what the client sent over TCP; true once a whole frame is buffered. */
static bool frame_ready(host *h) {
    ssize_t n = recv(h->conn, h->in + h->in_len, sizeof h->in - h->in_len, 0);
    if (n > 0) h->in_len += (size_t)n;
    if (h->in_len < 4) return false;
    uint32_t len = ntohl(*(uint32_t *)h->in);
    return h->in_len >= 4 + len;
}

/* Take one frame (without its length) into out; returns its length. */
static size_t next_frame(host *h, uint8_t *out) {
    WAIT_FOR(h, frame_ready(h), 3);
    uint32_t len = ntohl(*(uint32_t *)h->in);
    memcpy(out, h->in + 4, len);
    memmove(h->in, h->in + 4 + len, h->in_len - 4 - len);
    h->in_len -= 4 + len;
    return len;
}

static bool is_ping(const uint8_t *m, ssize_t n) {
    return n > 30 && !memcmp(m + 12, "!_o2/o2lite/cs/get", 19);
}

/* The next datagram the client sent; clock pings are skipped unless `pings`. */
static size_t next_datagram(host *h, uint8_t *out, size_t cap, bool pings) {
    ssize_t n = -1;
    WAIT_FOR(h, (n = recv(h->udp, out, cap, 0)) > 0 && (pings || !is_ping(out, n)), 3);
    return (size_t)n;
}

/* A tiny encoder, independent of the library: types i f s t (no arrays). */
static size_t enc(uint8_t *out, uint32_t misc, double time, const char *addr, const char *types,
                  ...) {
    size_t n = 0;
    uint64_t tb;
    va_list ap;
    va_start(ap, types);
    *(uint32_t *)out = htonl(misc);
    memcpy(&tb, &time, 8);
    *(uint32_t *)(out + 4) = htonl((uint32_t)(tb >> 32));
    *(uint32_t *)(out + 8) = htonl((uint32_t)tb);
    n = 12;
#define PUTSTR(s)                                                                                  \
    do {                                                                                           \
        size_t l_ = strlen(s) + 1;                                                                 \
        memset(out + n, 0, (l_ + 3) & ~3u);                                                        \
        memcpy(out + n, s, l_);                                                                    \
        n += (l_ + 3) & ~3u;                                                                       \
    } while (0)
    PUTSTR(addr);
    char ts[64];
    snprintf(ts, sizeof ts, ",%s", types);
    PUTSTR(ts);
    for (const char *t = types; *t; t++) {
        if (*t == 'i') {
            *(uint32_t *)(out + n) = htonl((uint32_t)va_arg(ap, int));
            n += 4;
        } else if (*t == 'f') {
            float f = (float)va_arg(ap, double);
            uint32_t u;
            memcpy(&u, &f, 4);
            *(uint32_t *)(out + n) = htonl(u);
            n += 4;
        } else if (*t == 't') {
            double d = va_arg(ap, double);
            memcpy(&tb, &d, 8);
            *(uint32_t *)(out + n) = htonl((uint32_t)(tb >> 32));
            *(uint32_t *)(out + n + 4) = htonl((uint32_t)tb);
            n += 8;
        } else if (*t == 's') {
            const char *s = va_arg(ap, const char *);
            PUTSTR(s);
        }
    }
    va_end(ap);
    return n;
}

static void send_frame(host *h, const uint8_t *msg, size_t len) {
    uint8_t buf[8192];
    *(uint32_t *)buf = htonl((uint32_t)len);
    memcpy(buf + 4, msg, len);
    cr_assert_eq(send(h->conn, buf, len + 4, MSG_NOSIGNAL), (ssize_t)(len + 4));
}

static void send_udp(int s, int port, const uint8_t *msg, size_t len) {
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(sendto(s, msg, len, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)len);
}

static void assert_msg(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len,
                       const char *what) {
    cr_assert_eq(got_len, want_len, "%s: length %zu, want %zu", what, got_len, want_len);
    for (size_t i = 0; i < want_len; i++)
        cr_assert_eq(got[i], want[i], "%s: byte %zu is %02x, want %02x", what, i, got[i], want[i]);
}

/* The client's !_o2/o2lite/con: remember its UDP port, check the rest. */
static void expect_con(host *h) {
    uint8_t got[1024], want[256];
    size_t n = next_frame(h, got);
    cr_assert_geq(n, 4);
    h->client_udp_port = (int)ntohl(*(uint32_t *)(got + n - 4));
    cr_assert(h->client_udp_port > 0 && h->client_udp_port < 65536);
    size_t wn = enc(want, 1, 0, "!_o2/o2lite/con", "si", "7f000001", h->client_udp_port);
    assert_msg(got, n, want, wn, "con");
}

static void expect_sv(host *h, const char *name, int exists) {
    uint8_t got[1024], want[256];
    size_t n = next_frame(h, got);
    size_t wn = enc(want, 1, 0, "!_o2/o2lite/sv", "siisi", name, exists, 1, "", 0);
    assert_msg(got, n, want, wn, name);
}

static void send_id(host *h, int id) {
    uint8_t m[64];
    /* misc 0x103: O2 hosts set the TAP flag and a TTL on bridge-bound messages (C6) */
    send_frame(h, m, enc(m, 0x103, 0, "!_o2/id", "i", id));
}

/* Accept the client, check con, give it an id, check its services. */
static void handshake(host *h, int id, const char *services) {
    WAIT_FOR(h, try_accept(h), 3);
    expect_con(h);
    cr_assert_eq(o2l_status(), O2L_CONNECTING);
    cr_assert_eq(o2l_bridge_id, -1);
    send_id(h, id);
    WAIT_FOR(h, o2l_bridge_id == id, 3);
    cr_assert_eq(o2l_status(), O2L_CONNECTED);
    char list[128], *save = NULL;
    snprintf(list, sizeof list, "%s", services);
    for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save))
        expect_sv(h, s, 1);
}

/* Answer 5 clock pings with host time = monotonic + offset; expect cs/cs.
 * first_serial: the serial the first ping must carry, or 0 to take it as it comes
 * (pings sent earlier and not answered use serials up). */
static void clock_sync(host *h, int id, int first_serial, double offset) {
    uint8_t drain[1024];
    while (recv(h->udp, drain, sizeof drain, 0) > 0)
        continue;
    bool was_synced = o2l_time_get() >= 0; /* a reconnection keeps the clock */
    for (int k = 0; k < 5; k++) {
        uint8_t got[1024], want[256];
        size_t n = next_datagram(h, got, sizeof got, true);
        if (!first_serial && n >= 48) first_serial = (int)ntohl(*(uint32_t *)(got + 44));
        size_t wn =
            enc(want, 0, 0, "!_o2/o2lite/cs/get", "iis", id, first_serial + k, "!_o2/cs/put");
        assert_msg(got, n, want, wn, "cs/get");
        if (!was_synced) cr_assert_lt(o2l_time_get(), 0, "not synchronised before 5 replies");
        uint8_t put[64];
        send_udp(h->udp_reply, h->client_udp_port, put,
                 enc(put, 0x102, 0, "!_o2/cs/put", "it", first_serial + k, mono() + offset));
    }
    uint8_t got[1024], want[64];
    size_t n = next_frame(h, got);
    assert_msg(got, n, want, enc(want, 1, 0, "!_o2/o2lite/cs/cs", ""), "cs/cs");
    cr_assert_eq(o2l_status(), O2L_SYNCED);
}

static int rate_calls;
static float last_rate;

static void on_rate(o2l_msg_ptr msg, const char *types, void *data, void *info) {
    rate_calls++;
    last_rate = o2l_get_float();
    cr_assert_not(o2l_get_error());
}

static char ensemble[32];

static void start_client(void) {
    snprintf(ensemble, sizeof ensemble, "o2lt%d", (int)getpid());
    cr_assert_eq(o2l_initialize(ensemble), O2L_SUCCESS);
    cr_assert_eq(o2l_initialize(ensemble), O2L_ALREADY_RUNNING);
    o2l_method_new("/imu/rate", "f", true, on_rate, NULL);
}

Test(o2lite_link, handshake_clock_sync_and_messages_both_ways) {
    host h;
    host_open(&h);
    start_client();
    cr_assert_eq(o2l_set_services("imu,led"), O2L_SUCCESS);
    cr_assert_eq(o2l_set_host("127.0.0.1", h.tcp_port, h.udp_port), O2L_SUCCESS);
    handshake(&h, 7, "imu,led");

    double offset = 1000.0;
    clock_sync(&h, 7, 1, offset);
    double err = o2l_time_get() - (mono() + offset);
    cr_assert(err > -0.005 && err < 0.005, "O2 time off by %g s", err);

    uint8_t m[256], got[1024], want[256];
    send_frame(&h, m, enc(m, 0x103, 0, "/imu/rate", "f", 20.0));
    WAIT_FOR(&h, rate_calls == 1, 3);
    cr_assert_eq(last_rate, 20.0f);
    send_udp(h.udp_reply, h.client_udp_port, m, enc(m, 0x102, 0, "!imu/rate", "f", 5.0));
    WAIT_FOR(&h, rate_calls == 2, 3);
    cr_assert_eq(last_rate, 5.0f);

    o2l_send_start("/hub/x", 1.5, "is", true);
    o2l_add_int32(42);
    o2l_add_string("tcp");
    cr_assert_eq(o2l_send(), O2L_SUCCESS);
    size_t n = next_frame(&h, got);
    assert_msg(got, n, want, enc(want, 1, 1.5, "/hub/x", "is", 42, "tcp"), "TCP send");
    o2l_send_start("/hub/y", 0, NULL, false);
    o2l_add_float(0.25f);
    cr_assert_eq(o2l_send(), O2L_SUCCESS);
    n = next_datagram(&h, got, sizeof got, false);
    assert_msg(got, n, want, enc(want, 0, 0, "/hub/y", "f", 0.25), "UDP send");

    /* a new list while connected: withdraw led, (re)announce imu and gps */
    cr_assert_eq(o2l_set_services("imu,gps"), O2L_SUCCESS);
    expect_sv(&h, "led", 0);
    expect_sv(&h, "imu", 1);
    expect_sv(&h, "gps", 1);
    cr_assert_eq(o2l_dropped(), 0);
}

Test(o2lite_link, tcp_framing_garbage_and_reconnection) {
    host h;
    host_open(&h);
    start_client();
    o2l_set_services("imu");
    o2l_set_host("127.0.0.1", h.tcp_port, h.udp_port);
    handshake(&h, 3, "imu");

    uint8_t a[64], buf[4096];
    size_t an = enc(a, 1, 0, "/imu/rate", "f", 1.0);
    /* two frames in one write */
    *(uint32_t *)buf = htonl((uint32_t)an);
    memcpy(buf + 4, a, an);
    memcpy(buf + 4 + an, buf, 4 + an);
    cr_assert_eq(send(h.conn, buf, 2 * (4 + an), 0), (ssize_t)(2 * (4 + an)));
    WAIT_FOR(&h, rate_calls == 2, 3);
    /* one frame, one byte at a time */
    for (size_t i = 0; i < 4 + an; i++) {
        cr_assert_eq(send(h.conn, buf + i, 1, 0), 1);
        o2l_poll();
    }
    WAIT_FOR(&h, rate_calls == 3, 3);
    /* longer than the client's buffer: skipped, the next frame still arrives */
    size_t big = O2L_MAX_MSG_LEN + 100;
    *(uint32_t *)buf = htonl((uint32_t)big);
    memset(buf + 4, 0x55, big);
    cr_assert_eq(send(h.conn, buf, 4 + big, 0), (ssize_t)(4 + big));
    send_frame(&h, a, an);
    WAIT_FOR(&h, rate_calls == 4, 3);
    cr_assert_eq(o2l_dropped(), 1);
    /* too short to be a message, and a frame of junk */
    *(uint32_t *)buf = htonl(8);
    memset(buf + 4, 0xff, 8);
    cr_assert_eq(send(h.conn, buf, 12, 0), 12);
    memset(buf, 0x2f, 24);
    send_frame(&h, buf, 24);
    send_frame(&h, a, an);
    WAIT_FOR(&h, rate_calls == 5, 3);
    cr_assert_eq(o2l_dropped(), 3);
    cr_assert_eq(o2l_status(), O2L_CONNECTED);

    /* a length O2 itself refuses (>= 64 KiB): the client hangs up ... */
    *(uint32_t *)buf = htonl(0x10000);
    cr_assert_eq(send(h.conn, buf, 4, 0), 4);
    WAIT_FOR(&h, o2l_status() != O2L_CONNECTED, 3);
    cr_assert_eq(o2l_bridge_id, -1);
    char c;
    WAIT_FOR(&h, recv(h.conn, &c, 1, 0) == 0, 3);
    /* ... and comes back (o2l_set_host retries every second), services and all */
    handshake(&h, 4, "imu");
    clock_sync(&h, 4, 0, 50.0);
    /* the host closes: the client notices and reconnects again */
    close(h.conn);
    h.conn = -1;
    WAIT_FOR(&h, o2l_status() != O2L_CONNECTED && o2l_status() != O2L_SYNCED, 3);
    handshake(&h, 5, "imu");
    /* still synchronised from before; cs/cs is sent again to the new connection */
    cr_assert_geq(o2l_time_get(), 0);
    clock_sync(&h, 5, 0, 50.0);
}

Test(o2lite_link, a_host_that_never_answers_is_left) {
    host h;
    host_open(&h);
    start_client();
    o2l_set_host("127.0.0.1", h.tcp_port, h.udp_port);
    WAIT_FOR(&h, try_accept(&h), 3);
    expect_con(&h);
    char c;
    /* no !_o2/id: the client gives up within its 3 s limit, then tries again */
    WAIT_FOR(&h, recv(h.conn, &c, 1, 0) == 0, 5);
    cr_assert_eq(o2l_status(), O2L_DISCONNECTED);
    WAIT_FOR(&h, try_accept(&h), 3);
    expect_con(&h);
}

static void send_dy_everywhere(host *h, const char *ens, int version) {
    uint8_t m[256];
    size_t n = enc(m, 1, 0, "!_o2/dy", "sissiii", ens, version, "00000000", "7f000001", h->tcp_port,
                   h->udp_port, 50);
    for (int i = 0; i < 16; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(discovery_ports[i]),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        sendto(h->udp_reply, m, n, 0, (struct sockaddr *)&a, sizeof a);
    }
}

Test(o2lite_link, discovery_by_o2_dy) {
    host h;
    host_open(&h);
    start_client();
    o2l_set_services("imu");
    cr_assert_eq(o2l_status(), O2L_DISCONNECTED);
    /* other ensembles and other major versions are ignored */
    double end = mono() + 0.3;
    while (mono() < end) {
        send_dy_everywhere(&h, "someone-else", 0x020001);
        send_dy_everywhere(&h, ensemble, 0x030001);
        tick(&h);
        cr_assert_not(try_accept(&h));
    }
    cr_assert_eq(o2l_status(), O2L_DISCONNECTED);
    /* the right ensemble: the client connects to the advertised TCP port */
    double next = 0;
    while (!try_accept(&h)) {
        if (mono() >= next) {
            send_dy_everywhere(&h, ensemble, 0x020001);
            next = mono() + 0.1;
        }
        cr_assert_lt(mono(), end + 3, "no connection after discovery");
        tick(&h);
    }
    expect_con(&h);
    send_id(&h, 1);
    expect_sv(&h, "imu", 1);
    /* the client's UDP messages go to the UDP port from the dy */
    o2l_send_start("/hub/z", 0, "", false);
    cr_assert_eq(o2l_send(), O2L_SUCCESS);
    uint8_t got[256], want[64];
    size_t n = next_datagram(&h, got, sizeof got, false);
    assert_msg(got, n, want, enc(want, 0, 0, "/hub/z", ""), "UDP after discovery");
}
