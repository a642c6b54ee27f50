/*
 * OSC ports under bad input: each malformed packet (UDP, TCP with length
 * framing, TCP with SLIP) is dropped and counted exactly once in the
 * router's invalid-message counter, and the port keeps delivering valid
 * messages afterwards. Config mistakes are errors that name their key.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "osc_helpers.h"

static void on_ok(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                  int argc, void *user_data) {
    int *n = user_data;
    (*n)++;
}

typedef struct bytes {
    uint8_t b[256];
    size_t n;
} bytes;

static bytes mk(const void *p, size_t n) {
    bytes b = {.n = n};
    memcpy(b.b, p, n);
    return b;
}

/* "/ok ,i 1": a valid message */
static const uint8_t valid[] = {'/', 'o', 'k', 0, ',', 'i', 0, 0, 0, 0, 0, 1};

static int udp_to(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static int tcp_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* A bundle nested `depth` deep around "/ok ,i 1". */
static bytes depth_bomb(int depth) {
    bytes b = {0};
    memcpy(b.b, valid, sizeof valid);
    b.n = sizeof valid;
    for (int k = 0; k < depth; k++) {
        uint8_t tmp[256];
        memcpy(tmp, "#bundle\0\0\0\0\0\0\0\0\1", 16);
        tmp[16] = 0, tmp[17] = 0, tmp[18] = 0, tmp[19] = (uint8_t)b.n;
        memcpy(tmp + 20, b.b, b.n);
        b.n += 20;
        memcpy(b.b, tmp, b.n);
    }
    return b;
}

Test(osc, malformed_osc_is_dropped_and_counted, .timeout = 60) {
    int udp = free_port(SOCK_DGRAM), tcp = free_port(SOCK_STREAM), slip = free_port(SOCK_STREAM);
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "\"max_packet\": 4096, \"ports\": ["
             "{\"port\": %d, \"host\": \"127.0.0.1\", \"service\": \"fromosc\"},"
             "{\"port\": %d, \"host\": \"127.0.0.1\", \"protocol\": \"tcp\", \"service\": "
             "\"fromosc\"},"
             "{\"port\": %d, \"host\": \"127.0.0.1\", \"protocol\": \"tcp\", \"framing\": "
             "\"slip\", \"service\": \"fromosc\"}]",
             udp, tcp, slip);
    o2h_router *r = osc_router(cfg);
    cr_assert_not_null(r);
    int ok = 0;
    o2h_service_new(r, "fromosc");
    o2h_method_new(r, "/fromosc/ok", "i", on_ok, &ok, false, true);

    bytes bad[] = {
        mk("/ab\0/x\0Z", 8),                    /* nonzero padding after the address */
        mk("/abcdefg", 8),                      /* unterminated address */
        mk("/a\0\0,s\0\0abcd", 12),             /* unterminated string argument */
        mk("/a\0\0,ii\0\0\0\0\1", 12),          /* an argument missing */
        mk("/a\0\0,b\0\0\xff\xff\xff\xff", 12), /* blob longer than everything */
        mk("/a\0\0,r\0\0\0\0\0\0", 12),         /* unsupported type tag */
        mk("/a\0\0,i\0\0\0\0\0\1\0\0\0\2", 16), /* trailing bytes */
        mk("/a\0\0\0", 5),                      /* not a multiple of 4 */
        mk("#bundle\0\0\0\0\0\0\0\0\1\0\0\0\x40/a\0\0,\0\0\0", 28), /* element past the end */
        mk("#bundlX\0\0\0\0\0\0\0\0\1", 16),                        /* bad bundle header */
        mk("abc\0", 4),                                             /* neither message nor bundle */
        depth_bomb(9),                                              /* bundles nested too deeply */
    };
    int n_bad = (int)(sizeof bad / sizeof bad[0]);
    int fd = udp_to(udp);
    uint64_t count = invalid_count(r);
    for (int k = 0; k < n_bad; k++) {
        cr_assert_eq(send(fd, bad[k].b, bad[k].n, 0), (ssize_t)bad[k].n);
        cr_assert(poll_invalid(r, count + 1, 2), "UDP bad packet %d not counted", k);
        count++;
    }
    bytes deep_ok = depth_bomb(8);
    cr_assert_eq(send(fd, deep_ok.b, deep_ok.n, 0), (ssize_t)deep_ok.n);
    cr_assert_eq(send(fd, valid, sizeof valid, 0), (ssize_t)sizeof valid);
    cr_assert(poll_until(r, &ok, 2, 2), "the UDP port stopped delivering");
    cr_assert_eq(invalid_count(r), count, "valid packets were counted as invalid");
    fprintf(stderr, "UDP: %d malformed packets dropped and counted, then 2 valid ones delivered\n",
            n_bad);
    close(fd);

    /* TCP, length framing: a bad packet in a good frame leaves the stream usable. */
    fd = tcp_to(tcp);
    for (int k = 0; k < n_bad; k++) {
        uint8_t frame[300] = {0, 0, 0, (uint8_t)bad[k].n};
        memcpy(frame + 4, bad[k].b, bad[k].n);
        cr_assert_eq(send(fd, frame, 4 + bad[k].n, 0), (ssize_t)(4 + bad[k].n));
        cr_assert(poll_invalid(r, count + 1, 2), "TCP bad packet %d not counted", k);
        count++;
    }
    uint8_t frame[64] = {0, 0, 0, sizeof valid};
    memcpy(frame + 4, valid, sizeof valid);
    cr_assert_eq(send(fd, frame, 4 + sizeof valid, 0), (ssize_t)(4 + sizeof valid));
    cr_assert(poll_until(r, &ok, 3, 2), "the TCP connection stopped delivering");
    /* A length over max_packet: counted, and the connection is closed. */
    uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};
    cr_assert_eq(send(fd, huge, 4, 0), 4);
    cr_assert(poll_invalid(r, count + 1, 2));
    count++;
    char sink[16];
    bool closed = false;
    for (int i = 0; i < 200 && !closed; i++) {
        o2h_router_poll(r, 5);
        closed = recv(fd, sink, sizeof sink, MSG_DONTWAIT) == 0;
    }
    cr_assert(closed, "the connection with a bad length prefix stays open");
    close(fd);
    fd = tcp_to(tcp); /* the port itself still works */
    cr_assert_eq(send(fd, frame, 4 + sizeof valid, 0), (ssize_t)(4 + sizeof valid));
    cr_assert(poll_until(r, &ok, 4, 2));
    close(fd);
    fprintf(stderr,
            "TCP: %d malformed packets and a bad length prefix counted; port still delivers\n",
            n_bad);

    /* SLIP: a bad escape drops one packet; the next one arrives. */
    fd = tcp_to(slip);
    uint8_t bad_escape[] = {0xC0, '/', 'a', 0xDB, 0x01, 0xC0};
    cr_assert_eq(send(fd, bad_escape, sizeof bad_escape, 0), (ssize_t)sizeof bad_escape);
    cr_assert(poll_invalid(r, count + 1, 2));
    count++;
    uint8_t slip_frame[64] = {0xC0};
    memcpy(slip_frame + 1, valid, sizeof valid);
    slip_frame[1 + sizeof valid] = 0xC0;
    cr_assert_eq(send(fd, slip_frame, sizeof valid + 2, 0), (ssize_t)(sizeof valid + 2));
    cr_assert(poll_until(r, &ok, 5, 2));
    cr_assert_eq(invalid_count(r), count);
    close(fd);
    fprintf(stderr,
            "SLIP: a bad escape counted; the next packet delivered. Invalid counter: %llu\n",
            (unsigned long long)count);
    o2h_router_free(r);
}

static void expect_config_error(const char *osc_json, const char *key, const char *words) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"osctest\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [{\"type\": \"osc\", %s}]}",
             TRANSPORT_DIR, osc_json);
    o2h_router_options o = {.struct_size = sizeof o};
    o2h_error err = {0};
    o2h_router *r = o2h_router_new_from_json(json, "osc.json", &o, &err);
    cr_assert_null(r, "accepted: %s", osc_json);
    cr_assert_str_eq(err.key_path, key, "%s: key \"%s\", message \"%s\"", osc_json, err.key_path,
                     err.message);
    cr_assert(strstr(err.message, words), "message \"%s\" lacks \"%s\"", err.message, words);
}

Test(osc, config_errors_name_their_key) {
    expect_config_error("\"delegates\": [{\"service\": \"s\", \"address\": \"127.0.0.1:9\","
                        " \"protocol\": \"sctp\"}]",
                        "transports[0].delegates[0].protocol", "sctp");
    expect_config_error("\"delegates\": [{\"service\": \"s\", \"address\": \"nowhere\"}]",
                        "transports[0].delegates[0].address", "host:port");
    expect_config_error("\"delegates\": [{\"address\": \"127.0.0.1:9\"}]",
                        "transports[0].delegates[0]", "service");
    expect_config_error("\"delegates\": [{\"service\": \"9x\", \"address\": \"127.0.0.1:9\"}]",
                        "transports[0].delegates[0].service", "not a service name");
    expect_config_error("\"delegates\": [{\"service\": \"s\", \"address\": \"127.0.0.1:9\"},"
                        " {\"service\": \"s\", \"address\": \"127.0.0.1:10\"}]",
                        "transports[0].delegates[1].service", "twice");
    expect_config_error("\"ports\": [{\"port\": 9001, \"service\": \"s\", \"framing\": \"slip\"}]",
                        "transports[0].ports[0].framing", "tcp");
    expect_config_error("\"ports\": [{\"port\": 9001, \"service\": \"s\", \"protocol\": \"tcp\","
                        " \"framing\": \"cobs\"}]",
                        "transports[0].ports[0].framing", "cobs");
    expect_config_error("\"ports\": [{\"service\": \"s\"}]", "transports[0].ports[0]", "port");
    expect_config_error("\"ports\": [{\"port\": 70000, \"service\": \"s\"}]",
                        "transports[0].ports[0].port", "");
    expect_config_error("\"ports\": [{\"port\": 9001, \"service\": \"s\", \"colour\": 1}]",
                        "transports[0].ports[0].colour", "unknown key");
    expect_config_error("\"ports\": {}", "transports[0].ports", "array");
    expect_config_error("\"delegates\": [{\"service\": \"s\", \"address\": \"127.0.0.1:9\","
                        " \"replies\": \"1r\"}]",
                        "transports[0].delegates[0].replies", "not a service name");
    expect_config_error("\"delegates\": [{\"service\": \"s\", \"address\": \"127.0.0.1:9\","
                        " \"replies\": \"r\", \"replies_from\": \"anyone\"}]",
                        "transports[0].delegates[0].replies_from", "anyone");
    expect_config_error("\"delegates\": [{\"service\": \"s\", \"address\": \"127.0.0.1:9\","
                        " \"replies_from\": \"any\"}]",
                        "transports[0].delegates[0].replies_from", "replies");
    expect_config_error("\"delegates\": [{\"service\": \"s\", \"address\": \"127.0.0.1:9\","
                        " \"protocol\": \"tcp\", \"replies\": \"r\", \"replies_from\": \"any\"}]",
                        "transports[0].delegates[0].replies_from", "udp");
    expect_config_error("\"delegates\": [{\"service\": \"s\", \"address\": \"127.0.0.1:9\","
                        " \"pace_us\": 10}]",
                        "transports[0].delegates[0].pace_us", "replies");
}
