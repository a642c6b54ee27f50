/*
 * MQTT discovery and forwarding with a real mosquitto started here on
 * 127.0.0.1 and an ephemeral port (plus a unix socket listener), and `peer`
 * processes (tests/e2e/peer.c) whose only discovery is the mqtt transport.
 *
 * The main test puts one peer in a network namespace of its own: its
 * 127.0.0.1 is not the other's, so neither can reach the other's TCP or UDP
 * port (the test checks this from both networks); that peer reaches the
 * broker through the unix socket. Everything between them goes through the
 * broker, which is killed and restarted in the middle.
 *
 * A broker given by name is looked up off the event loop: a peer whose
 * resolver (its own mount namespace, its own resolv.conf) asks a DNS server
 * of this test's that holds its answer for two seconds keeps answering
 * meanwhile, then reaches the broker.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "testproc.h"

static int broker_port;
static pid_t broker_pid;

/* 0 if a TCP connection to 127.0.0.1:port succeeds from here, else errno. */
static int tcp_probe(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* The same probe from inside the network namespace of process `pid`. */
static int tcp_probe_from(pid_t pid, int port) {
    pid_t c = fork();
    if (c == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(255);
        _exit(tcp_probe(port) & 0x7f);
    }
    int status;
    waitpid(c, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

static void net_ns_of(pid_t pid, char *out, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    ssize_t n = readlink(path, out, size - 1);
    out[n > 0 ? n : 0] = '\0';
}

/* ---- the broker ---- */

static void socket_path(char *out, size_t size) {
    snprintf(out, size, "%s/mqtt.sock", tmpdir);
}

static bool broker_ready(void) {
    char sock[128];
    socket_path(sock, sizeof sock);
    struct stat st;
    return tcp_probe(broker_port) == 0 && stat(sock, &st) == 0;
}

static void broker_start(void) {
    char conf[128], log[128], sock[128];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", tmpdir);
    snprintf(log, sizeof log, "%s/mosquitto.log", tmpdir);
    socket_path(sock, sizeof sock);
    unlink(sock); /* left behind by a killed broker */
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "per_listener_settings false\n"
            "listener %d 127.0.0.1\n"
            "listener 0 %s\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "user root\n" /* keep the user that owns tmpdir (no effect when not root) */
            "log_dest stderr\n",
            broker_port, sock);
    fclose(f);
    broker_pid = fork();
    if (broker_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(MOSQUITTO_EXE, "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    double end = now_s() + 10;
    while (!broker_ready() && now_s() < end)
        usleep(20000);
    cr_assert(broker_ready(), "mosquitto did not listen on 127.0.0.1:%d and %s", broker_port, sock);
}

static void broker_kill(void) {
    if (broker_pid <= 0) return;
    kill(broker_pid, SIGKILL);
    waitpid(broker_pid, NULL, 0);
    broker_pid = 0;
}

/* Publish raw payloads (a test's garbage) with libmosquitto, QoS 1, and wait for the acks. */
typedef struct raw_pub {
    const char *topic;
    const void *data;
    int len;
} raw_pub;

static void on_raw_published(struct mosquitto *m, void *ctx, int mid) {
    ++*(int *)ctx;
}

static void publish_raw(const raw_pub *pubs, int n) {
    int acked = 0;
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, &acked);
    cr_assert_not_null(m);
    mosquitto_publish_callback_set(m, on_raw_published);
    cr_assert_eq(mosquitto_connect(m, "127.0.0.1", broker_port, 10), MOSQ_ERR_SUCCESS);
    for (int i = 0; i < n; i++)
        cr_assert_eq(mosquitto_publish(m, NULL, pubs[i].topic, pubs[i].len, pubs[i].data, 1, false),
                     MOSQ_ERR_SUCCESS);
    double end = now_s() + 10;
    while (acked < n && now_s() < end)
        mosquitto_loop(m, 100, 1);
    cr_assert_eq(acked, n, "the broker acknowledged %d of %d garbage publishes", acked, n);
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
}

/* ---- peers ---- */

/* tcp+udp on 127.0.0.1:port, and the mqtt transport as the only discovery; `broker` is
 * the broker's address or, starting with '"', the JSON of the broker keys. */
static void mqtt_config(proc *p, const char *name, int port, const char *broker, bool direct) {
    char keys[400];
    if (broker[0] == '"')
        snprintf(keys, sizeof keys, "%s", broker);
    else
        snprintf(keys, sizeof keys, "\"broker\": \"%s\"", broker);
    snprintf(p->config, sizeof p->config, "%s/%s.json", tmpdir, name);
    FILE *f = fopen(p->config, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"ensemble\": \"e2e\", \"plugin_path\": [\"%s\"],\n"
            " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
            "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
            "                {\"type\": \"mqtt\", %s, \"keepalive\": 5,\n"
            "                 \"direct\": %s, \"reconnect_max\": 0.5}]}\n",
            TRANSPORT_DIR, port, port, keys, direct ? "true" : "false");
    fclose(f);
    p->port = port;
}

/* Poll "pongs FIRST LAST" until it says `want` (or the time is up); returns the last count. */
static int pongs_within(proc *p, int first, int last, int want, double limit_s) {
    double end = now_s() + limit_s;
    int got = -1;
    do {
        tell(p, "pongs %d %d", first, last);
        const char *at = expect(p, "pongs ", 5);
        cr_assert_not_null(at);
        got = atoi(at + 6);
        if (got >= want) break;
        usleep(100000);
    } while (now_s() < end);
    return got;
}

/* Reliable pings from p to `address` every 0.3 s until one is answered: the path works. */
static void until_answered(proc *p, const char *address, int base, double limit_s) {
    double end = now_s() + limit_s;
    for (int i = 0; now_s() < end; i++) {
        tell(p, "ping %s tcp %d", address, base + i);
        if (pongs_within(p, base + 1, base + 1000, 1, 0.3) > 0) return;
    }
    cr_assert_fail("%s never answered after the broker came back; output:\n%s", address, p->out);
}

static void suite_init(void) {
    make_tmpdir();
    broker_port = free_port();
    broker_start();
}

static void suite_fini(void) {
    broker_kill();
    remove_tmpdir();
}

TestSuite(mqtt, .init = suite_init, .fini = suite_fini, .timeout = 120);

Test(mqtt, only_through_the_broker_both_ways_and_after_a_broker_restart) {
    if (!netns_available()) cr_skip_test("needs a network namespace (root or CAP_SYS_ADMIN)");
    char tcp_broker[64], unix_broker[160], sock[128];
    snprintf(tcp_broker, sizeof tcp_broker, "127.0.0.1:%d", broker_port);
    socket_path(sock, sizeof sock);
    snprintf(unix_broker, sizeof unix_broker, "unix:%s", sock);

    /* A in this network, B in a network namespace of its own. */
    proc a = {0}, b = {.netns = true};
    int pa = free_port(), pb = free_port();
    while (pb == pa)
        pb = free_port();
    mqtt_config(&a, "a", pa, tcp_broker, false);
    mqtt_config(&b, "b", pb, unix_broker, false);
    start(&a);
    start(&b);
    must(&a, "ready", 5);
    must(&b, "ready", 5);

    /* Proof that the only path is the broker: other networks, and each one's
     * TCP port is unreachable from the other's network. */
    char ns_a[64], ns_b[64], ns_self[64];
    net_ns_of(a.pid, ns_a, sizeof ns_a);
    net_ns_of(b.pid, ns_b, sizeof ns_b);
    net_ns_of(getpid(), ns_self, sizeof ns_self);
    cr_assert_str_eq(ns_a, ns_self);
    cr_assert_str_neq(ns_a, ns_b, "B must run in another network namespace");
    cr_assert_eq(tcp_probe(pa), 0, "A's TCP port is reachable in A's network");
    cr_assert_eq(tcp_probe_from(b.pid, pb), 0, "B's TCP port is reachable in B's network");
    cr_assert_eq(tcp_probe(pb), ECONNREFUSED,
                 "B's TCP port must not be reachable from A's network");
    cr_assert_eq(tcp_probe_from(b.pid, pa), ECONNREFUSED,
                 "A's TCP port must not be reachable from B's network");
    cr_assert_eq(tcp_probe_from(b.pid, broker_port), ECONNREFUSED,
                 "B reaches the broker only through its unix socket");

    char name_a[32], name_b[32];
    process_name(&a, name_a, sizeof name_a);
    process_name(&b, name_b, sizeof name_b);
    tell(&a, "offer echoa");
    tell(&b, "offer echob");
    must(&a, "si echob ", 15);
    must(&b, "si echoa ", 15);

    /* Both ways, reliable (QoS 1) and best effort (QoS 0). */
    tell(&a, "ping /echob/ping tcp 1");
    must(&a, "pong 2 ", 5);
    tell(&a, "ping /echob/ping udp 3");
    must(&a, "pong 4 ", 5);
    tell(&b, "ping /echoa/ping tcp 5");
    must(&b, "pong 6 ", 5);
    tell(&b, "ping /echoa/ping udp 7");
    must(&b, "pong 8 ", 5);

    /* The broker dies: nothing gets through. */
    broker_kill();
    usleep(300000);
    tell(&a, "ping /echob/ping udp 9");
    cr_assert_null(expect(&a, "pong 10 ", 1.0), "a message passed while the broker was down");

    /* It comes back on the same port and socket: both reconnect by themselves. */
    broker_start();
    until_answered(&a, "/echob/ping", 5000, 20);
    until_answered(&b, "/echoa/ping", 6000, 20);

    /* Every reliable message sent after the recovery arrives, both ways. */
    enum { N = 500 };
    tell(&a, "quiet on");
    tell(&b, "quiet on");
    tell(&a, "pings /echob/ping tcp %d 10000", N);
    tell(&b, "pings /echoa/ping tcp %d 20000", N);
    must(&a, "pings sent 500", 10);
    must(&b, "pings sent 500", 10);
    cr_assert_eq(pongs_within(&a, 10001, 10000 + N, N, 30), N, "A: answers from B via the broker");
    cr_assert_eq(pongs_within(&b, 20001, 20000 + N, N, 30), N, "B: answers from A via the broker");
    cr_assert_eq(stat_field(&a, "invalid"), 0);
    cr_assert_eq(stat_field(&b, "invalid"), 0);

    tell(&a, "quit");
    tell(&b, "quit");
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

Test(mqtt, garbage_on_the_o2hub_topics_is_dropped_and_counted) {
    char broker[64];
    snprintf(broker, sizeof broker, "127.0.0.1:%d", broker_port);
    proc a = {0}, b = {0};
    int pa = free_port(), pb = free_port();
    while (pb == pa)
        pb = free_port();
    mqtt_config(&a, "a", pa, broker, false);
    mqtt_config(&b, "b", pb, broker, false);
    start(&a);
    start(&b);
    must(&a, "ready", 5);
    must(&b, "ready", 5);
    tell(&a, "offer echoa");
    must(&b, "si echoa ", 15);
    char name_a[32], inbox_a[64];
    process_name(&a, name_a, sizeof name_a);
    snprintf(inbox_a, sizeof inbox_a, "O2-e2e/%s", name_a);

    /* An O2 message whose bytes the garbage is cut from. */
    o2h_builder *bld = o2h_builder_new(NULL);
    o2h_add_string(bld, "not a process name");
    o2h_msg *m = o2h_builder_finish(bld, 0, "!_o2/mqtt/dy", O2H_FLAG_RELIABLE);
    uint8_t whole[256] = {0}, noise[42] = {0};
    memcpy(whole + 2, m->data, m->length); /* 2 bytes that carry nothing, as O2 sends */
    int whole_len = (int)m->length + 2;
    for (int i = 2; i < (int)sizeof noise; i++)
        noise[i] = (uint8_t)(i * 37 + 11);
    const char bad_port[] = "\0\0@00000000:7f000001:zzzz:1/dy/2.0.1";
    const char bad_vers[] = "\0\0@00000000:7f000001:9999:1/dy/2.x";
    raw_pub disc[] = {
        {"O2-e2e/disc", "", 0},
        {"O2-e2e/disc", "x", 1},
        {"O2-e2e/disc", "\0\0hello, o2hub", 14},
        {"O2-e2e/disc", bad_port, (int)sizeof bad_port - 1},
        {"O2-e2e/disc", bad_vers, (int)sizeof bad_vers - 1},
    };
    raw_pub inbox[] = {
        {inbox_a, "", 0},
        {inbox_a, "\0", 1},
        {inbox_a, noise, (int)sizeof noise},
        {inbox_a, whole, whole_len - 5},     /* truncated */
        {inbox_a, whole, whole_len},         /* well formed, but names no process */
        {inbox_a, whole + 2, whole_len - 2}, /* no 2-byte prefix: misaligned */
    };
    int n_disc = (int)(sizeof disc / sizeof disc[0]),
        n_inbox = (int)(sizeof inbox / sizeof inbox[0]);
    cr_assert_eq(stat_field(&a, "invalid"), 0);
    cr_assert_eq(stat_field(&b, "invalid"), 0);
    publish_raw(disc, n_disc);
    publish_raw(inbox, n_inbox);
    o2h_msg_unref(m);
    o2h_builder_free(bld);

    /* A counts every one; B (which gets /disc only) the /disc ones. */
    double end = now_s() + 10;
    long got_a = 0, got_b = 0;
    while (now_s() < end && (got_a < n_disc + n_inbox || got_b < n_disc)) {
        got_a = stat_field(&a, "invalid");
        got_b = stat_field(&b, "invalid");
        if (got_a < n_disc + n_inbox || got_b < n_disc) usleep(100000);
    }
    cr_assert_eq(got_a, n_disc + n_inbox);
    cr_assert_eq(got_b, n_disc);

    /* Both go on working through the broker, and count nothing more. */
    tell(&b, "ping /echoa/ping tcp 40");
    must(&b, "pong 41 ", 5);
    tell(&b, "ping /echoa/ping udp 42");
    must(&b, "pong 43 ", 5);
    cr_assert_eq(stat_field(&a, "invalid"), n_disc + n_inbox);
    cr_assert_eq(stat_field(&b, "invalid"), n_disc);

    /* A dies without a word: its will ("@A/bye" on /disc) tells B at once, long
     * before B's peer_timeout (10 s) would. */
    kill(a.pid, SIGKILL);
    must(&b, "si echoa -1", 5);
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

Test(mqtt, a_failover_broker_finds_direct_peers_that_then_talk_without_it) {
    /* O2's rule for two processes behind the same public address (o2hub has
     * no STUN: every process says 00000000): found on /disc, connected directly. */
    char broker[64], with_failover[200];
    snprintf(broker, sizeof broker, "127.0.0.1:%d", broker_port);
    proc a = {0}, b = {0};
    int pa = free_port(), pb = free_port(), dead = free_port();
    while (pb == pa)
        pb = free_port();
    /* A's first broker does not answer: it goes on to the next in its list. */
    snprintf(with_failover, sizeof with_failover,
             "\"broker\": \"127.0.0.1:%d\", \"failover\": [\"127.0.0.1:%d\"]", dead, broker_port);
    mqtt_config(&a, "a", pa, with_failover, true);
    mqtt_config(&b, "b", pb, broker, true);
    start(&a);
    start(&b);
    must(&a, "ready", 5);
    must(&b, "ready", 5);
    tell(&a, "offer echoa");
    must(&b, "si echoa ", 15);
    tell(&b, "ping /echoa/ping tcp 1");
    must(&b, "pong 2 ", 5);

    /* Without the broker they still talk: the path is their own TCP and UDP. */
    broker_kill();
    tell(&b, "ping /echoa/ping tcp 3");
    must(&b, "pong 4 ", 5);
    tell(&b, "ping /echoa/ping udp 5");
    must(&b, "pong 6 ", 5);
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

Test(mqtt, a_process_cut_off_from_the_broker_is_dropped_by_its_will_and_found_again) {
    char broker[64];
    snprintf(broker, sizeof broker, "127.0.0.1:%d", broker_port);
    proc a = {0}, b = {0};
    int pa = free_port(), pb = free_port();
    while (pb == pa)
        pb = free_port();
    /* A keeps B through its freeze (a long peer_timeout): only B drops the other. */
    char a_keys[200];
    snprintf(a_keys, sizeof a_keys, "\"broker\": \"%s\", \"peer_timeout\": 60", broker);
    mqtt_config(&a, "a", pa, a_keys, false);
    mqtt_config(&b, "b", pb, broker, false);
    start(&a);
    start(&b);
    must(&a, "ready", 5);
    must(&b, "ready", 5);
    tell(&a, "offer echoa");
    tell(&b, "offer echob");
    must(&b, "si echoa ", 15);
    must(&a, "si echob ", 15);

    /* A freezes: the broker stops hearing its keep-alives (1.5 x 5 s) and
     * publishes its will; B drops A and its services. */
    kill(a.pid, SIGSTOP);
    must(&b, "si echoa -1", 15);

    /* A wakes up, reconnects and announces itself; B makes a new link to it and
     * A sends its services again on B's request (!_o2/mqtt/dy). */
    kill(a.pid, SIGCONT);
    must(&b, "si echoa ", 15);
    tell(&b, "ping /echoa/ping tcp 1");
    must(&b, "pong 2 ", 5);
    tell(&a, "ping /echob/ping tcp 3");
    must(&a, "pong 4 ", 5);
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

/* ---- a broker name that takes long to resolve ---- */

#define DNS_ADDRESS "127.53.0.1" /* any 127/8 address is on lo */
#define DNS_HOLD_S 2.0

/* A DNS server that answers "slowbroker.test" A queries with 127.0.0.1 (other
 * types with no records), each DNS_HOLD_S after the first query came. */
typedef struct slow_dns {
    int fd;
    atomic_int queries, answered;
    atomic_bool stop;
    pthread_t thread;
} slow_dns;

/* A response to `q` (n bytes): the question copied, one A record if `a`. */
static size_t dns_answer(const uint8_t *q, size_t n, bool a, uint8_t *out) {
    memcpy(out, q, n);
    out[2] = 0x81; /* QR, RD */
    out[3] = 0x80; /* RA, NOERROR */
    out[6] = 0;
    out[7] = a ? 1 : 0; /* ANCOUNT */
    out[8] = out[9] = out[10] = out[11] = 0;
    if (!a) return n;
    static const uint8_t rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
    memcpy(out + n, rr, sizeof rr);
    return n + sizeof rr;
}

static void *slow_dns_run(void *arg) {
    slow_dns *d = arg;
    uint8_t held[4][512];
    size_t held_len[4];
    struct sockaddr_storage from[4];
    socklen_t from_len[4];
    int n_held = 0;
    double first = 0;
    while (!atomic_load(&d->stop)) {
        struct pollfd p = {.fd = d->fd, .events = POLLIN};
        if (poll(&p, 1, 20) > 0 && n_held < 4) {
            from_len[n_held] = sizeof from[n_held];
            ssize_t n = recvfrom(d->fd, held[n_held], sizeof held[n_held], 0,
                                 (struct sockaddr *)&from[n_held], &from_len[n_held]);
            if (n > 17) { /* header + a name + type and class */
                held_len[n_held++] = (size_t)n;
                if (atomic_fetch_add(&d->queries, 1) == 0) first = now_s();
            }
        }
        if (n_held == 0 || now_s() - first < DNS_HOLD_S) continue;
        for (int i = 0; i < n_held; i++) {
            const uint8_t *q = held[i];
            size_t n = held_len[i];
            uint16_t qtype = (uint16_t)(q[n - 4] << 8 | q[n - 3]);
            bool ours = n > 12 + 17 && memcmp(q + 12, "\012slowbroker\004test", 16) == 0;
            uint8_t out[600];
            size_t len = dns_answer(q, n, ours && qtype == 1, out);
            if (!ours) out[3] = 0x83; /* NXDOMAIN */
            sendto(d->fd, out, len, 0, (struct sockaddr *)&from[i], from_len[i]);
        }
        atomic_fetch_add(&d->answered, n_held);
        n_held = 0;
    }
    return NULL;
}

/* Can a child give itself its own /etc/resolv.conf (root, and a resolv.conf to cover)? */
static bool own_resolv_conf_possible(const char *path) {
    pid_t c = fork();
    if (c == 0)
        _exit(unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
                      mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL) == 0
                  ? 0
                  : 1);
    int status;
    waitpid(c, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

Test(mqtt, a_broker_name_that_resolves_slowly_never_stalls_the_router) {
    slow_dns dns = {.fd = socket(AF_INET, SOCK_DGRAM, 0)};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, DNS_ADDRESS, &a.sin_addr);
    if (bind(dns.fd, (struct sockaddr *)&a, sizeof a) != 0)
        cr_skip_test("cannot serve DNS on %s:53 (needs root): %s", DNS_ADDRESS, strerror(errno));
    char resolv[128];
    snprintf(resolv, sizeof resolv, "%s/resolv.conf", tmpdir);
    FILE *f = fopen(resolv, "w");
    cr_assert_not_null(f);
    fprintf(f, "nameserver %s\noptions timeout:10 attempts:1\n", DNS_ADDRESS);
    fclose(f);
    if (!own_resolv_conf_possible(resolv)) {
        close(dns.fd);
        cr_skip_test("cannot bind-mount a resolv.conf in a mount namespace (needs root)");
    }
    cr_assert_eq(pthread_create(&dns.thread, NULL, slow_dns_run, &dns), 0);

    proc p = {.resolv = resolv}, b = {0};
    char broker[64];
    snprintf(broker, sizeof broker, "slowbroker.test:%d", broker_port);
    int pa = free_port(), pb = free_port();
    while (pb == pa)
        pb = free_port();
    mqtt_config(&p, "slow", pa, broker, true);
    start(&p);
    must(&p, "ready", 5);
    double end = now_s() + 5;
    while (atomic_load(&dns.queries) == 0 && now_s() < end)
        usleep(5000);
    cr_assert_gt(atomic_load(&dns.queries), 0, "the peer never asked our DNS server:\n%s", p.out);

    /* While its lookup waits for an answer, the router works: a local round trip. */
    double t0 = now_s();
    tell(&p, "offer echoa");
    must(&p, "offered echoa", 1);
    tell(&p, "ping /echoa/ping tcp 1");
    must(&p, "pong 2 ", 1);
    double round_trip = now_s() - t0;
    cr_assert_eq(atomic_load(&dns.answered), 0, "the answer came too soon to tell");
    cr_assert_lt(round_trip, 0.5, "the router stalled %.2f s during the lookup", round_trip);

    /* The answer comes: it reaches the broker, where another peer finds its service. */
    snprintf(broker, sizeof broker, "127.0.0.1:%d", broker_port);
    mqtt_config(&b, "b", pb, broker, true);
    start(&b);
    must(&b, "ready", 5);
    must(&b, "si echoa ", 15);
    cr_assert_gt(atomic_load(&dns.answered), 0);
    stop(&p, SIGTERM);
    stop(&b, SIGTERM);
    atomic_store(&dns.stop, true);
    pthread_join(dns.thread, NULL);
    close(dns.fd);
}

/* ---- a broker that wants a user name and a password ---- */

/* Another mosquitto on 127.0.0.1:port that lets in only user "o2hub", password "s3cret". */
static pid_t auth_broker_start(int port) {
    char conf[128], pw[128], log[128], cmd[512];
    snprintf(conf, sizeof conf, "%s/auth.conf", tmpdir);
    snprintf(pw, sizeof pw, "%s/passwords", tmpdir);
    snprintf(log, sizeof log, "%s/auth.log", tmpdir);
    snprintf(cmd, sizeof cmd, "%s -c -b %s o2hub s3cret", MOSQUITTO_PASSWD_EXE, pw);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    chmod(pw, 0600); /* mosquitto warns about world-readable password files */
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "listener %d 127.0.0.1\n"
            "allow_anonymous false\n"
            "password_file %s\n"
            "persistence false\n"
            "user root\n"
            "log_dest stderr\n",
            port, pw);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(MOSQUITTO_EXE, "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    double end = now_s() + 10;
    while (tcp_probe(port) != 0 && now_s() < end)
        usleep(20000);
    cr_assert_eq(tcp_probe(port), 0, "the password broker did not listen on %d", port);
    return pid;
}

static int count_in(const char *text, const char *needle) {
    int n = 0;
    for (const char *at = text; (at = strstr(at, needle)); at += strlen(needle))
        n++;
    return n;
}

/*
 * A and B (configured with `keys_a`, `keys_b`) meet through a broker and ping;
 * C (`keys_c`) is turned away: it says `why` once although it keeps retrying,
 * and never finds A. `marker` is the text that appears once per streak.
 */
static void two_meet_one_turned_away(const char *keys_a, const char *keys_b, const char *keys_c,
                                     const char *why, const char *marker) {
    proc a = {0}, b = {0}, c = {0};
    mqtt_config(&a, "meet-a", free_port(), keys_a, false);
    mqtt_config(&b, "meet-b", free_port(), keys_b, false);
    mqtt_config(&c, "away-c", free_port(), keys_c, false);
    start(&a);
    start(&b);
    start(&c);
    must(&a, "ready", 5);
    must(&b, "ready", 5);
    must(&c, "ready", 5);
    tell(&a, "offer echoa");
    must(&b, "si echoa ", 15);
    tell(&b, "ping /echoa/ping tcp 1");
    must(&b, "pong 2 ", 5);

    must(&c, why, 10);
    expect(&c, "never printed", 2.5); /* collect what it says while it retries */
    cr_assert_eq(count_in(c.out, marker), 1, "%s", c.out);
    tell(&c, "status echoa");
    must(&c, "status echoa -", 5); /* negative: it never found A */
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
    stop(&c, SIGTERM);
}

Test(mqtt, a_broker_with_passwords_lets_in_who_knows_one_and_says_once_why_not) {
    int port = free_port();
    pid_t auth = auth_broker_start(port);
    char a[200], b[200], c[200];
    snprintf(a, sizeof a,
             "\"broker\": \"127.0.0.1:%d\", \"username\": \"o2hub\", \"password\": \"s3cret\"",
             port);
    /* B keeps its password out of the file: the environment it inherits has it. */
    snprintf(b, sizeof b,
             "\"broker\": \"127.0.0.1:%d\", \"username\": \"o2hub\", "
             "\"password_env\": \"O2HUB_TEST_MQTT_PASSWORD\"",
             port);
    snprintf(c, sizeof c,
             "\"broker\": \"127.0.0.1:%d\", \"username\": \"o2hub\", \"password\": \"guess\"",
             port);
    setenv("O2HUB_TEST_MQTT_PASSWORD", "s3cret", 1); /* inherited by the peers started next */
    two_meet_one_turned_away(a, b, c, "not authori", "refused the connection");
    unsetenv("O2HUB_TEST_MQTT_PASSWORD");
    kill(auth, SIGKILL);
    waitpid(auth, NULL, 0);
}

Test(mqtt, a_password_without_a_user_or_a_missing_variable_is_a_config_error) {
    proc p = {0};
    mqtt_config(&p, "nouser", free_port(), "\"broker\": \"127.0.0.1:1\", \"password\": \"x\"",
                false);
    start(&p);
    must(&p, "needs a \"username\"", 5);
    stop(&p, SIGTERM);
    proc q = {0};
    unsetenv("O2HUB_TEST_NO_SUCH_VARIABLE");
    mqtt_config(&q, "noenv", free_port(),
                "\"broker\": \"127.0.0.1:1\", \"username\": \"u\", "
                "\"password_env\": \"O2HUB_TEST_NO_SUCH_VARIABLE\"",
                false);
    start(&q);
    must(&q, "O2HUB_TEST_NO_SUCH_VARIABLE is not set", 5);
    stop(&q, SIGTERM);
}

/* ---- a broker that speaks TLS ---- */

/* A CA, and a certificate from it for localhost (and 127.0.0.1), in tmpdir. */
static bool make_certificates(void) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj /CN=o2hub-test-ca && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout server.key -out server.csr -subj /CN=localhost && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out server.pem -days 2 -extfile san.ext",
             tmpdir);
    return system(cmd) == 0;
}

static pid_t tls_broker_start(int port) {
    char conf[128], log[128];
    snprintf(conf, sizeof conf, "%s/tls.conf", tmpdir);
    snprintf(log, sizeof log, "%s/tls.log", tmpdir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "listener %d 127.0.0.1\n"
            "cafile %s/ca.pem\ncertfile %s/server.pem\nkeyfile %s/server.key\n"
            "allow_anonymous true\npersistence false\nuser root\nlog_dest stderr\n",
            port, tmpdir, tmpdir, tmpdir);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(MOSQUITTO_EXE, "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    double end = now_s() + 10;
    while (tcp_probe(port) != 0 && now_s() < end)
        usleep(20000);
    cr_assert_eq(tcp_probe(port), 0, "the TLS broker did not listen on %d", port);
    return pid;
}

Test(mqtt, over_tls_peers_that_trust_the_broker_meet_and_others_say_why_not) {
    if (!make_certificates()) cr_skip_test("openssl could not make the test certificates");
    int port = free_port();
    pid_t broker = tls_broker_start(port);
    char trusting[300], untrusting[200];
    /* By name, as a certificate is checked against the name. */
    snprintf(trusting, sizeof trusting,
             "\"broker\": \"localhost:%d\", \"tls\": true, \"ca_file\": \"%s/ca.pem\"", port,
             tmpdir);
    /* C trusts only the system's CAs: the test CA is not among them. */
    snprintf(untrusting, sizeof untrusting, "\"broker\": \"localhost:%d\", \"tls\": true", port);
    two_meet_one_turned_away(trusting, trusting, untrusting, "certificate verify failed",
                             "(retrying)");
    kill(broker, SIGKILL);
    waitpid(broker, NULL, 0);
}

Test(mqtt, tls_files_are_checked_when_the_config_is_read) {
    proc p = {0};
    mqtt_config(&p, "notls", free_port(), "\"broker\": \"127.0.0.1:1\", \"ca_file\": \"ca.pem\"",
                false);
    start(&p);
    must(&p, "needs \"tls\": true", 5);
    stop(&p, SIGTERM);
    proc q = {0};
    mqtt_config(&q, "nofile", free_port(),
                "\"broker\": \"127.0.0.1:1\", \"tls\": true, \"ca_file\": \"no-such-ca.pem\"",
                false);
    start(&q);
    must(&q, "no-such-ca.pem: No such file", 5);
    stop(&q, SIGTERM);
}

/* A program on O2's API calls o2_mqtt_enable("127.0.0.1", PORT), as O2
 * programs do, and meets an o2hub process through the broker. */
Test(mqtt, an_o2_api_program_enables_mqtt_with_a_port_and_meets_a_peer) {
    proc b = {0};
    char broker[64];
    snprintf(broker, sizeof broker, "127.0.0.1:%d", broker_port);
    mqtt_config(&b, "peer", free_port(), broker, false);
    start(&b);
    must(&b, "ready", 5);
    tell(&b, "offer peerside");
    must(&b, "offered peerside", 5);
    char out[160], port[16];
    snprintf(out, sizeof out, "%s/o2mqtt.out", tmpdir);
    snprintf(port, sizeof port, "%d", broker_port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("O2HUB_PLUGIN_PATH", TRANSPORT_DIR, 1);
        setenv("O2HUB_DISCOVERY", "none", 1);
        setenv("O2HUB_HOST", "127.0.0.1", 1);
        execl(O2MQTT_EXE, "o2mqtt", "e2e", port, (char *)NULL);
        _exit(127);
    }
    int status = -1;
    for (double end = now_s() + 40; now_s() < end;) {
        if (waitpid(pid, &status, WNOHANG) == pid) break;
        expect(&b, "\x01", 0.1); /* keep reading the peer meanwhile */
    }
    char text[2048] = "";
    FILE *f = fopen(out, "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
    }
    if (waitpid(pid, NULL, WNOHANG) == 0) kill(pid, SIGKILL);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "o2mqtt failed:\n%s", text);
    cr_assert(strstr(text, "MQTT DONE"), "%s", text);
    must(&b, "si o2side ", 10); /* and the peer saw the program's service */
    stop(&b, SIGTERM);
}

typedef struct disc_log {
    const char *name; /* the process whose announcements are kept */
    char first[96];
    int n, n_cs;
} disc_log;

static void on_disc(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg) {
    disc_log *d = ctx;
    (void)m;
    const char *text = (const char *)msg->payload;
    int len = msg->payloadlen;
    while (len > 0 && *text == '\0') { /* O2's 2-byte prefix */
        text++;
        len--;
    }
    if (len <= 0 || strncmp(text, d->name, strlen(d->name)) != 0) return;
    if (d->n++ == 0) snprintf(d->first, sizeof d->first, "%.*s", len, text);
    if (memmem(text, (size_t)len, "/cs/", 4)) d->n_cs++;
}

/* O2 processes join before they sync, so their first /disc says /dy/; an O2
 * process that must connect to a /cs/ sender by TCP logs an error otherwise. */
Test(mqtt, a_clock_reference_first_announces_dy_then_cs) {
    proc a = {0};
    int pa = free_port();
    snprintf(a.config, sizeof a.config, "%s/ref.json", tmpdir);
    FILE *f = fopen(a.config, "w");
    cr_assert_not_null(f);
    fprintf(
        f,
        "{\"ensemble\": \"e2e\", \"clock\": {\"reference\": true}, \"plugin_path\": [\"%s\"],\n"
        " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
        "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
        "                {\"type\": \"mqtt\", \"broker\": \"127.0.0.1:%d\", \"keepalive\": 5}]}\n",
        TRANSPORT_DIR, pa, pa, broker_port);
    fclose(f);
    a.port = pa;
    disc_log d = {.name = "@"};
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, &d);
    cr_assert_not_null(m);
    mosquitto_message_callback_set(m, on_disc);
    cr_assert_eq(mosquitto_connect(m, "127.0.0.1", broker_port, 10), MOSQ_ERR_SUCCESS);
    cr_assert_eq(mosquitto_subscribe(m, NULL, "O2-e2e/disc", 1), MOSQ_ERR_SUCCESS);
    for (int i = 0; i < 5; i++) /* the SUBACK before the process starts */
        mosquitto_loop(m, 50, 1);
    start(&a);
    must(&a, "ready", 5);
    double end = now_s() + 12; /* the keepalive (5 s) brings the second */
    while (now_s() < end && d.n_cs == 0)
        mosquitto_loop(m, 100, 1);
    stop(&a, SIGTERM);
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    cr_assert_geq(d.n, 2, "announcements seen: %d", d.n);
    cr_assert(strstr(d.first, "/dy/"), "first announcement: %s", d.first);
    cr_assert_gt(d.n_cs, 0, "a later one says the clock is synchronised");
}
