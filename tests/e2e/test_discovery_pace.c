/*
 * How often static discovery announces: as O2, the longest interval is at
 * least 0.1 s per listed peer, so a large ensemble hears some 10
 * announcements a second per process rather than N every few seconds. A real
 * router in this process lists 30 peers; one of them is a socket here that
 * counts the !_o2/dy datagrams it gets.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "proc_util.h"

TestSuite(discovery_pace, .timeout = 60);

static int udp_socket(int *port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static int count_dy(int fd) {
    uint8_t buf[512];
    int n = 0;
    ssize_t got;
    while ((got = recv(fd, buf, sizeof buf, 0)) > 0)
        if (got > 20 && memcmp(buf + 12, "!_o2/dy", 8) == 0) n++;
    return n;
}

/* Announcements `fd` got in `seconds` from a router listing `n_peers` (the first: fd's port). */
static int announcements(int n_peers, double seconds) {
    int port, fd = udp_socket(&port);
    /* The other peers: ports of sockets held open here and never read. */
    int others[64], other_port;
    char peers[2048];
    int at = snprintf(peers, sizeof peers, "\"127.0.0.1:%d\"", port);
    for (int i = 1; i < n_peers; i++) {
        others[i] = udp_socket(&other_port);
        at += snprintf(peers + at, sizeof peers - (size_t)at, ", \"127.0.0.1:%d\"", other_port);
    }
    int own = pu_free_port();
    char json[4096];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"pace\", \"plugin_path\": [\"%s\", \"%s\"],"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},"
             "   {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],"
             " \"discovery\": [{\"type\": \"static\", \"peers\": [%s],"
             "   \"interval_min\": 0.05, \"interval_max\": 0.05}]}",
             TRANSPORT_DIR, DISCOVERY_DIR, own, own, peers);
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "pace", &o, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    int n = 0;
    double end = pu_now() + seconds;
    while (pu_now() < end) {
        o2h_router_poll(r, 10);
        n += count_dy(fd);
    }
    o2h_router_free(r);
    for (int i = 1; i < n_peers; i++)
        close(others[i]);
    close(fd);
    return n;
}

/* interval_max 0.05 s is below 0.1 s per peer in both: the longest interval is 0.2 s for
 * 2 peers, 3 s for 30. The schedule starts at 0.05 s and grows 1.5x a round. */
Test(discovery_pace, two_peers_are_announced_to_every_fifth_of_a_second) {
    int n = announcements(2, 4.0); /* 0.05, 0.075, 0.11, 0.17, then 0.2: some 23 */
    cr_assert_geq(n, 16, "%d announcements in 4 s", n);
    cr_assert_leq(n, 30, "%d announcements in 4 s: faster than 0.2 s", n);
}

Test(discovery_pace, thirty_peers_stretch_the_interval_to_three_seconds) {
    /* 0.05, 0.075, 0.11, ... 1.9, then 3 s: 10 by 4 s, where 0.2 s would give 23. */
    int n = announcements(30, 4.0);
    cr_assert_geq(n, 5, "%d announcements in 4 s: the schedule stopped", n);
    cr_assert_leq(n, 13, "%d announcements in 4 s to 30 peers", n);
}
