/*
 * bench/roundtrip — p50/p99 round-trip latency between two o2hub processes
 * (a message to a service in the other process, and its reply), over TCP
 * (reliable) and UDP (best effort), beside raw TCP and UDP ping-pong of the
 * same bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "benchreport.h"
#include "netbench.h"

static void on_ping(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    if (argv[0]->i < 0) {
        *(bool *)user_data = true; /* the end */
        return;
    }
    if (o2h_msg_reliable(msg))
        o2h_send_cmd(r, "/back/pong", 0, "i", argv[0]->i);
    else
        o2h_send(r, "/back/pong", 0, "i", argv[0]->i);
}

static void on_pong(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    *(int32_t *)user_data = argv[0]->i;
}

static void echo_process(int port, int peer_port) {
    o2h_router *r = nb_router(port, peer_port);
    bool end = false;
    o2h_service_new(r, "echo");
    o2h_method_new(r, "/echo/ping", "i", on_ping, &end, false, true);
    double limit = nb_now() + 300;
    while (!end && nb_now() < limit)
        o2h_router_poll(r, 100);
    o2h_router_free(r);
    exit(0);
}

static void report(const br_meter *meter, const char *what, const char *path, double *rtt, int n) {
    br_report(meter, &(br_result){.bench = "roundtrip",
                                  .path = path,
                                  .payload = 40,
                                  .count = n,
                                  .rate_from_elapsed = false,
                                  .lat_s = rtt,
                                  .n_lat = n});
    double p50 = nb_percentile(rtt, n, 0.50), p99 = nb_percentile(rtt, n, 0.99);
    printf("  %-22s p50 %7.1f us   p99 %7.1f us\n", what, p50 * 1e6, p99 * 1e6);
}

static void o2hub_roundtrips(int n) {
    int pa = nb_free_port(), pb = nb_free_port();
    pid_t child = fork();
    if (child == 0) echo_process(pb, pa);
    o2h_router *r = nb_router(pa, pb);
    int32_t last = -1;
    o2h_service_new(r, "back");
    o2h_method_new(r, "/back/pong", "i", on_pong, &last, false, true);
    if (!nb_wait_service(r, "echo", 10)) exit(1);
    double *rtt = malloc(sizeof *rtt * (size_t)n);
    for (int mode = 0; mode < 2; mode++) {
        bool reliable = mode == 0;
        int done = 0, lost = 0;
        br_meter meter;
        br_start(&meter);
        for (int i = 0; i < n + 100; i++) { /* the first 100 warm up */
            double t0 = nb_now();
            if (reliable)
                o2h_send_cmd(r, "/echo/ping", 0, "i", i);
            else
                o2h_send(r, "/echo/ping", 0, "i", i);
            while (last != i && nb_now() - t0 < 1.0)
                o2h_router_poll(r, 1000);
            if (last != i) {
                lost++;
                continue;
            }
            if (i >= 100) rtt[done++] = nb_now() - t0;
        }
        report(&meter, reliable ? "o2hub TCP" : "o2hub UDP", reliable ? "o2hub-tcp" : "o2hub-udp",
               rtt, done);
        if (lost) printf("  (%d lost)\n", lost);
    }
    o2h_send_cmd(r, "/echo/ping", 0, "i", -1);
    double linger = nb_now() + 0.2;
    while (nb_now() < linger)
        o2h_router_poll(r, 10);
    waitpid(child, NULL, 0);
    free(rtt);
    o2h_router_free(r);
}

static void raw_tcp_roundtrips(int n) {
    br_meter meter;
    br_start(&meter);
    int port;
    int lfd = nb_tcp_listen(&port);
    uint8_t frame[44] = {0};
    o2h_wr_u32(frame, 40);
    pid_t child = fork();
    if (child == 0) {
        int fd = nb_tcp_connect(port);
        uint8_t buf[44];
        while (nb_read_full(fd, buf, sizeof buf))
            (void)!write(fd, buf, sizeof buf);
        exit(0);
    }
    int fd = accept(lfd, NULL, NULL);
    double *rtt = malloc(sizeof *rtt * (size_t)n);
    for (int i = 0; i < n + 100; i++) {
        double t0 = nb_now();
        (void)!write(fd, frame, sizeof frame);
        nb_read_full(fd, frame, sizeof frame);
        if (i >= 100) rtt[i - 100] = nb_now() - t0;
    }
    report(&meter, "raw TCP (floor)", "raw-tcp", rtt, n);
    close(fd);
    close(lfd);
    waitpid(child, NULL, 0);
    free(rtt);
}

static void raw_udp_roundtrips(int n) {
    br_meter meter;
    br_start(&meter);
    int port_a, port_b;
    int a = nb_udp_bind(&port_a);
    int b = nb_udp_bind(&port_b);
    pid_t child = fork();
    if (child == 0) {
        close(a);
        uint8_t buf[64];
        struct sockaddr_storage from;
        for (;;) {
            socklen_t len = sizeof from;
            ssize_t k = recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
            if (k <= 1) exit(0);
            sendto(b, buf, (size_t)k, 0, (struct sockaddr *)&from, len);
        }
    }
    close(b);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_b)};
    to.sin_addr.s_addr = htonl(0x7f000001);
    uint8_t msg[40] = {0};
    double *rtt = malloc(sizeof *rtt * (size_t)n);
    for (int i = 0; i < n + 100; i++) {
        double t0 = nb_now();
        sendto(a, msg, sizeof msg, 0, (struct sockaddr *)&to, sizeof to);
        recv(a, msg, sizeof msg, 0);
        if (i >= 100) rtt[i - 100] = nb_now() - t0;
    }
    report(&meter, "raw UDP (floor)", "raw-udp", rtt, n);
    sendto(a, "x", 1, 0, (struct sockaddr *)&to, sizeof to);
    waitpid(child, NULL, 0);
    close(a);
    free(rtt);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked children must not repeat buffered lines */
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    printf("bench roundtrip: %d round trips of a 1-argument message, 127.0.0.1\n", n);
    raw_tcp_roundtrips(n);
    raw_udp_roundtrips(n);
    o2hub_roundtrips(n);
    return 0;
}
