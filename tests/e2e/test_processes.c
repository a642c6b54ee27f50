/*
 * O2 processes on 127.0.0.1, each a separate `peer` process (tests/e2e/peer.c)
 * with the tcp, udp and static plugins: discovery, echo over TCP and UDP,
 * loss and reconnection, service ties, garbage on raw sockets, a receiver
 * that stops reading.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "testproc.h"

/* ASan's quarantine and shadow memory make every process several times larger. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_SCALE 4
#else
#define RSS_SCALE 1
#endif

TestSuite(processes, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 60);

Test(processes, echo_over_tcp_and_udp_loss_and_reconnection) {
    proc a = {0}, b = {0};
    int pa = free_port(), pb = free_port();
    write_config(&a, "a", pa, (int[]){pb, -1}, NULL);
    write_config(&b, "b", pb, (int[]){pa, -1}, NULL);
    start(&a);
    start(&b);
    must(&a, "ready", 5);
    must(&b, "ready", 5);
    tell(&a, "offer echo");
    must(&a, "offered echo", 5);
    must(&b, "si echo 1 @", 10); /* REMOTE_NOTIME, provided by A */
    char name_a[32];
    process_name(&a, name_a, sizeof name_a);

    tell(&b, "ping /echo/ping tcp 42");
    must(&b, "pong 43 @", 5);
    tell(&b, "ping /echo/ping udp 7");
    must(&b, "pong 8 @", 5);

    /* A dies: B learns it from the TCP connection, its status and /_o2/si say so. */
    stop(&a, SIGKILL);
    char gone[64];
    snprintf(gone, sizeof gone, "si echo -1 %s", name_a); /* names the process that left */
    must(&b, gone, 10);
    tell(&b, "status echo");
    must(&b, "status echo -1", 5);

    /* A comes back on the same port: B's discovery finds it without help. */
    start(&a);
    must(&a, "ready", 5);
    tell(&a, "offer echo");
    must(&b, "si echo 1 @", 10);
    tell(&b, "ping /echo/ping tcp 99");
    must(&b, "pong 100 @", 5);
    tell(&a, "quit");
    tell(&b, "quit");
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

Test(processes, three_providers_the_highest_process_name_wins) {
    proc p[3] = {{0}};
    int ports[3] = {free_port(), free_port(), free_port()};
    char names[3][32];
    for (int i = 0; i < 3; i++) {
        int others[3] = {ports[(i + 1) % 3], ports[(i + 2) % 3], -1};
        char file[8];
        snprintf(file, sizeof file, "p%d", i);
        write_config(&p[i], file, ports[i], others, NULL);
        start(&p[i]);
        must(&p[i], "ready", 5);
        process_name(&p[i], names[i], sizeof names[i]);
    }
    /* p0 and p1 offer "svc"; p2 sends to it. */
    tell(&p[0], "offer svc");
    tell(&p[1], "offer svc");
    must(&p[2], "si svc 1", 10);
    const char *winner = strcmp(names[0], names[1]) > 0 ? names[0] : names[1];
    char want[64];
    snprintf(want, sizeof want, "si svc 1 %s", winner);
    /* Both announcements reach p2 in some order; the last word is the winner's. */
    double end = now_s() + 10;
    bool settled = false;
    while (!settled && now_s() < end) {
        tell(&p[2], "ping /svc/ping tcp 1");
        const char *at = expect(&p[2], "pong 2 ", 5);
        if (!at) {
            for (int i = 0; i < 2; i++)
                expect(&p[i], "\x01", 0.2); /* collect their output */
            cr_assert_fail("no reply.\np0 %s:\n%s\np1 %s:\n%s\np2 %s:\n%s", names[0], p[0].out,
                           names[1], p[1].out, names[2], p[2].out);
        }
        settled = strncmp(at + 7, winner, strlen(winner)) == 0;
    }
    cr_assert(settled, "messages never went to the highest name %s:\n%s", winner, p[2].out);
    for (int i = 0; i < 5; i++) {
        tell(&p[2], "ping /svc/ping udp %d", 10 + i);
        char pong[64];
        snprintf(pong, sizeof pong, "pong %d %s", 11 + i, winner);
        must(&p[2], pong, 5);
    }
    for (int i = 0; i < 3; i++)
        stop(&p[i], SIGTERM);
}

/* ---- raw sockets ---- */

Test(processes, garbage_is_dropped_and_counted_and_service_goes_on) {
    proc a = {0}, b = {0};
    int pa = free_port(), pb = free_port();
    write_config(&a, "a", pa, (int[]){pb, -1}, NULL);
    write_config(&b, "b", pb, (int[]){pa, -1}, NULL);
    start(&a);
    start(&b);
    must(&a, "ready", 5);
    tell(&a, "offer echo");
    must(&b, "si echo 1", 10);

    /* A valid message to build broken ones from. */
    o2h_builder *bld = o2h_builder_new(NULL);
    o2h_add_string(bld, "/x/y");
    o2h_add_int32(bld, 1);
    o2h_msg *good = o2h_builder_finish(bld, 0, "/echo/ping", O2H_FLAG_RELIABLE);
    uint8_t bad[256];

    /* Well framed but malformed: each is dropped, the connection stays. */
    int fd = tcp_to(pa);
    memcpy(bad, good->data, good->length);
    bad[good->length - 9] = 'Q'; /* inside the string argument's padding */
    send_frame(fd, bad, good->length, good->length);
    memcpy(bad, good->data, good->length);
    bad[21] = '#'; /* a bad type code in ",si" */
    send_frame(fd, bad, good->length, good->length);
    send_frame(fd, good->data, 16, 16); /* truncated: a header and no address end */
    /* A length that is not a multiple of 4: framing is lost, the connection closes. */
    send_frame(fd, good->data, good->length, 5);
    close(fd);
    /* A 1 GB length prefix: refused before any allocation. */
    fd = tcp_to(pa);
    send_frame(fd, good->data, good->length, 1u << 30);
    close(fd);
    /* Random bytes on TCP and UDP. */
    srand(99);
    fd = tcp_to(pa);
    for (int i = 0; i < 64; i++)
        bad[i] = (uint8_t)rand();
    (void)!write(fd, bad, 64);
    close(fd);
    for (int i = 0; i < 50; i++) {
        size_t len = (size_t)(rand() % 128);
        for (size_t k = 0; k < len; k++)
            bad[k] = (uint8_t)rand();
        udp_to(pa, bad, len);
    }
    udp_to(pa, good->data, 17); /* a truncated datagram */

    /* A still serves B. */
    tell(&b, "ping /echo/ping tcp 5");
    must(&b, "pong 6", 5);
    tell(&b, "ping /echo/ping udp 6");
    must(&b, "pong 7", 5);
    long invalid = stat_field(&a, "invalid");
    /* 3 framed + 2 bad prefixes + random TCP (1 bad prefix) + 51 datagrams. */
    cr_assert_geq(invalid, 50, "only %ld drops counted:\n%s", invalid, a.out);
    o2h_msg_unref(good);
    o2h_builder_free(bld);
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

/* A fake O2 process that connects, introduces itself, offers "sink", then never reads. */
static int fake_stalled_peer(int port_of_a, int fake_port) {
    int fd = tcp_to(port_of_a);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, "e2e");
    o2h_add_int32(b, 0x020001);
    o2h_add_string(b, "00000000");
    o2h_add_string(b, "7f000001");
    o2h_add_int32(b, fake_port);
    o2h_add_int32(b, fake_port);
    o2h_add_int32(b, 54); /* CONNECT */
    o2h_msg *dy = o2h_builder_finish(b, 0, "!_o2/dy", 1);
    char name[32];
    snprintf(name, sizeof name, "@00000000:7f000001:%04x", fake_port);
    o2h_builder_start(b);
    o2h_add_string(b, name);
    o2h_add_string(b, "sink");
    o2h_add_true(b);
    o2h_add_true(b);
    o2h_add_string(b, ";");
    o2h_add_int32(b, 0);
    o2h_msg *sv = o2h_builder_finish(b, 0, "!_o2/sv", 1);
    send_frame(fd, dy->data, dy->length, dy->length);
    send_frame(fd, sv->data, sv->length, sv->length);
    o2h_msg_unref(dy);
    o2h_msg_unref(sv);
    o2h_builder_free(b);
    return fd;
}

Test(processes, a_receiver_that_stops_reading_never_grows_the_senders_memory) {
    proc a = {0};
    int pa = free_port();
    /* A 1 MB bound on each link's send queue. */
    write_config(&a, "a", pa, (int[]){-1}, ", \"send_queue_bytes\": 1048576");
    start(&a);
    must(&a, "ready", 5);
    int fake = fake_stalled_peer(pa, 1); /* @...:0001: lower than A, a plausible client */
    must(&a, "si sink 1", 5);
    tell(&a, "rss");
    const char *at = expect(&a, "rss ", 5);
    long before = atol(at + 4);
    /* 20 000 reliable 4 KB messages = 80 MB offered to a peer that reads nothing. */
    tell(&a, "flood /sink/x 20000 4096");
    at = expect(&a, "flood ok", 30);
    cr_assert_not_null(at, "%s", a.out);
    int ok = 0, full = 0, other = 0;
    sscanf(at, "flood ok %d full %d other %d", &ok, &full, &other);
    tell(&a, "rss");
    at = expect(&a, "rss ", 5);
    long after = atol(at + 4);
    fprintf(stderr,
            "stalled receiver: %d queued or held, %d refused with O2H_BLOCKED; RSS %ld -> %ld kB\n",
            ok, full, before, after);
    /* What was accepted fits in the kernel's socket buffers, the 1 MB queue and
     * the 4 MB the core holds for a full link; the rest is refused, never lost. */
    cr_assert_gt(full, 15000, "the bounded queue must refuse: ok %d full %d", ok, full);
    cr_assert_eq(other, 0);
    cr_assert_lt(after - before, RSS_SCALE * 16 * 1024, "RSS grew by %ld kB", after - before);
    long counted = stat_field(&a, "queue_full");
    cr_assert_eq(counted, full, "every refusal is counted");
    close(fake);
    stop(&a, SIGTERM);
}

Test(processes, broadcast_discovery_on_o2s_ports_finds_a_peer) {
    proc a = {0}, b = {0};
    const char *bc = "{\"type\": \"broadcast\", \"interval_max\": 1.0}";
    write_config_with(&a, "a", free_port(), bc, NULL, NULL);
    write_config_with(&b, "b", free_port(), bc, NULL, NULL);
    start(&a);
    start(&b);
    must(&a, "ready", 5);
    must(&b, "ready", 5);
    tell(&a, "offer found");
    must(&b, "si found 1 @", 10);
    tell(&b, "ping /found/ping tcp 1");
    must(&b, "pong 2 @", 5);
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

Test(processes, clock_sync_to_a_reference_within_a_millisecond) {
    proc a = {0}, b = {0};
    int pa = free_port(), pb = free_port();
    char disc_a[128], disc_b[128];
    snprintf(disc_a, sizeof disc_a, "{\"type\": \"static\", \"peers\": [\"127.0.0.1:%d\"]}", pb);
    snprintf(disc_b, sizeof disc_b, "{\"type\": \"static\", \"peers\": [\"127.0.0.1:%d\"]}", pa);
    write_config_with(&a, "a", pa, disc_a, NULL, ", \"clock\": {\"reference\": true}");
    write_config_with(&b, "b", pb, disc_b, NULL, NULL);
    start(&a);
    start(&b);
    must(&a, "ready", 5);
    must(&b, "ready", 5);
    tell(&b, "time");
    must(&b, "time -1", 5); /* no clock yet */
    tell(&a, "offer echo");
    must(&b, "si echo 1 @", 10); /* REMOTE_NOTIME before sync */
    must(&b, "si echo 5 @", 10); /* REMOTE once both are synchronised */
    tell(&b, "status echo");
    must(&b, "status echo 5", 5);
    /* A check is only as exact as its round trip is short (the reply's time is
     * compared with the midpoint): judge the one with the shortest round trip,
     * as the clock sync itself does. */
    long best_err = 0, best_rtt = -1;
    for (int i = 0; i < 10; i++) {
        tell(&b, "timecheck echo");
        const char *at = expect(&b, "timecheck ", 5);
        cr_assert_not_null(at, "%s", b.out);
        long err_us = 0, rtt_us = 0;
        sscanf(at, "timecheck %ld %ld", &err_us, &rtt_us);
        fprintf(stderr, "clock: error %ld us, round trip %ld us\n", err_us, rtt_us);
        if (best_rtt < 0 || rtt_us < best_rtt) best_err = err_us, best_rtt = rtt_us;
    }
    cr_assert_lt(labs(best_err), 1000, "clocks differ by %ld us (round trip %ld us)", best_err,
                 best_rtt);
    /* The round trips of B's pings, asked locally and by A over the network. */
    tell(&b, "roundtrip");
    const char *rt = expect(&b, "roundtrip ", 5);
    long mean_us = -1, least_us = -1;
    cr_assert_not_null(rt);
    cr_assert_eq(sscanf(rt, "roundtrip %ld %ld", &mean_us, &least_us), 2, "%s", rt);
    cr_assert(least_us > 0 && least_us <= mean_us && mean_us < 100000, "%ld %ld", mean_us,
              least_us);
    tell(&a, "roundtrip");
    must(&a, "roundtrip none", 5); /* the reference does not ping */
    char name_b[32];
    process_name(&b, name_b, sizeof name_b);
    tell(&a, "rt %s", name_b);
    char want[64];
    snprintf(want, sizeof want, "rt %s ", name_b);
    must(&a, want, 5);
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

Test(processes, a_subscriber_in_a_third_process_gets_a_copy_of_every_message) {
    proc p[3] = {{0}};
    int ports[3] = {free_port(), free_port(), free_port()};
    for (int i = 0; i < 3; i++) {
        int others[3] = {ports[(i + 1) % 3], ports[(i + 2) % 3], -1};
        char file[8];
        snprintf(file, sizeof file, "t%d", i);
        write_config(&p[i], file, ports[i], others, NULL);
        start(&p[i]);
        must(&p[i], "ready", 5);
    }
    tell(&p[0], "offer echo");
    tell(&p[2], "subscribe echo spy");
    must(&p[2], "subscribed", 5);
    must(&p[1], "si echo 1", 10);
    must(&p[0], "si spy 1", 10); /* A knows the tapper's process: the tap is announced */
    for (int i = 0; i < 10; i++)
        tell(&p[1], "ping /echo/ping %s %d", i % 2 ? "udp" : "tcp", i);
    /* Replies over UDP and TCP may overtake each other: count them, in any order. */
    for (int i = 0; i < 10; i++)
        must(&p[1], "pong ", 5);
    /* Every message to echo reached the subscriber as /spy/ping. */
    for (int i = 0; i < 10; i++)
        must(&p[2], "tapped /spy/ping", 5);
    for (int i = 0; i < 3; i++)
        stop(&p[i], SIGTERM);
}

/* Ask until `p` reports `want` (properties propagate asynchronously). */
static void poll_command(proc *p, const char *command, const char *reply, const char *want) {
    double end = now_s() + 10;
    while (now_s() < end) {
        tell(p, "%s", command);
        const char *at = expect(p, reply, 5);
        cr_assert_not_null(at, "%s", p->out);
        if (strncmp(at, want, strlen(want)) == 0) return;
        struct pollfd none;
        poll(&none, 0, 50);
    }
    cr_assert_fail("never got \"%s\" for \"%s\":\n%s", want, command, p->out);
}

Test(processes, a_property_set_in_one_process_is_seen_and_found_in_the_others) {
    proc p[3] = {{0}};
    int ports[3] = {free_port(), free_port(), free_port()};
    for (int i = 0; i < 3; i++) {
        int others[3] = {ports[(i + 1) % 3], ports[(i + 2) % 3], -1};
        char file[8];
        snprintf(file, sizeof file, "q%d", i);
        write_config(&p[i], file, ports[i], others, NULL);
        start(&p[i]);
        must(&p[i], "ready", 5);
    }
    tell(&p[0], "offer synth");
    must(&p[1], "si synth 1", 10);
    must(&p[2], "si synth 1", 10);
    tell(&p[0], "setprop synth location stage:left");
    must(&p[0], "setprop O2H_OK", 5);
    for (int i = 1; i < 3; i++) {
        poll_command(&p[i], "getprop synth location", "prop synth location",
                     "prop synth location stage:left");
        poll_command(&p[i], "search location :stage", "found ", "found 1 synth");
    }
    for (int i = 0; i < 3; i++)
        stop(&p[i], SIGTERM);
}

/* A numeric "counter NAME V" answer of a peer. */
static long counter_of(proc *p, const char *name) {
    tell(p, "counter %s", name);
    char want[64];
    snprintf(want, sizeof want, "counter %s ", name);
    const char *at = expect(p, want, 5);
    cr_assert_not_null(at, "no counter %s:\n%s", name, p->out);
    return atol(at + strlen(want));
}

/*
 * Back-pressure through a relay: A pushes reliable messages (waiting while
 * o2h_can_send says blocked) to service x of R; R taps x to B, which reads
 * slowly. R's link to B fills, R holds the copies and pauses A's link, A's
 * path blocks, A waits. Every message reaches R and every copy B, in order;
 * nothing is dropped and R's memory stays bounded. O2HUB_RELAY_COUNT sets how
 * many (10 million by hand; fewer in the suite), O2HUB_RELAY_SLOW how slow
 * B is ("US [EVERY]": microseconds of sleep per message or every EVERY
 * messages; "3" by default).
 */
Test(processes, reliable_messages_through_a_relay_to_a_slow_receiver_all_arrive_in_order,
     .timeout = 600) {
    const char *env = getenv("O2HUB_RELAY_COUNT");
    int n = env ? atoi(env) : 100000;
    const char *slow = getenv("O2HUB_RELAY_SLOW");
    proc a = {0}, relay = {0}, b = {0};
    int pa = free_port(), pr = free_port(), pb = free_port();
    write_config(&a, "a", pa, (int[]){pr, pb, -1}, NULL);
    write_config(&relay, "r", pr, (int[]){pa, pb, -1}, NULL);
    write_config(&b, "b", pb, (int[]){pa, pr, -1}, NULL);
    start(&a);
    start(&relay);
    start(&b);
    must(&relay, "ready", 5);
    tell(&relay, "sink x");
    must(&relay, "sink x", 5);
    tell(&b, "tapsink x bt");
    must(&b, "tapsink", 5);
    tell(&b, "slow %s", slow ? slow : "3");
    must(&relay, "si bt 1", 10);
    must(&a, "si x 1", 10);
    tell(&relay, "rss");
    long before = atol(expect(&relay, "rss ", 5) + 4);
    double t0 = now_s();
    const int size = 200; /* 20 MB in all: more than the relay's 4 MB queue and the kernel's */
    tell(&a, "push /x/data %d %d", n, size);
    char want[64];
    snprintf(want, sizeof want, "push ok %d ", n);
    must(&a, want, 540);
    /* Everything pushed reaches the relay's sink and the tapper, in order. */
    long got = 0;
    for (double end = now_s() + 60; now_s() < end && got < n;) {
        tell(&b, "count");
        const char *at = expect(&b, "count ", 5);
        got = at ? atol(at + 6) : 0;
    }
    double secs = now_s() - t0;
    tell(&relay, "rss");
    long after = atol(expect(&relay, "rss ", 5) + 4);
    char inorder[64];
    snprintf(inorder, sizeof inorder, "count %d bytes %ld inorder 1", n, (long)size * n);
    tell(&relay, "count");
    must(&relay, inorder, 5);
    tell(&b, "count");
    must(&b, inorder, 5);
    long held = counter_of(&relay, "held"), paused = counter_of(&relay, "paused_links");
    long dropped = counter_of(&relay, "dropped_queue_full") +
                   counter_of(&relay, "dropped_send_error") + counter_of(&a, "dropped_queue_full");
    fprintf(stderr,
            "relay: %d reliable messages in %.1f s to a slow tapper, all in order; relay held %ld, "
            "paused A %ld times, RSS %ld -> %ld kB\n",
            n, secs, held, paused, before, after);
    cr_assert_eq(dropped, 0, "nothing dropped");
    cr_assert_gt(held, 0, "the relay's link to the slow tapper filled (else no back-pressure ran)");
    cr_assert_gt(paused, 0, "the relay paused the sender");
    cr_assert_lt(after - before, RSS_SCALE * 32 * 1024, "relay RSS grew by %ld kB", after - before);
    stop(&a, SIGTERM);
    stop(&relay, SIGTERM);
    stop(&b, SIGTERM);
}
