/*
 * Fault tests, each bounded in time: a peer killed mid-stream, a
 * half-open connection and partial frames, a thousand O2lite clients, ten
 * thousand services, a 1 MB message, a burst of UDP at a slow receiver.
 * They assert no crash, bounded memory, and no lost reliable message while
 * the link is up. The ASan build runs them too (LeakSanitizer at exit).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "testproc.h"

TestSuite(faults, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 120);

static long field_after(const char *line, const char *key) {
    const char *at = line ? strstr(line, key) : NULL;
    return at ? atol(at + strlen(key)) : -1;
}

static long rss_of(proc *p) {
    tell(p, "rss");
    return field_after(expect(p, "rss ", 5), "rss ");
}

static void pair(proc *a, proc *b) {
    int pa = free_port(), pb = free_port();
    int to_b[2] = {pb, -1}, to_a[2] = {pa, -1};
    write_config(a, "a", pa, to_b, NULL);
    write_config(b, "b", pb, to_a, NULL);
    start(a);
    start(b);
}

Test(faults, a_receiver_killed_mid_stream_leaves_the_sender_well) {
    proc a = {0}, b = {0};
    pair(&a, &b);
    tell(&b, "sink sink");
    must(&b, "sink sink", 5);
    for (double end = now_s() + 10; now_s() < end;) {
        tell(&a, "status sink");
        if (expect(&a, "status sink 1", 0.2)) break;
    }
    long before = rss_of(&a);
    /* About a gigabyte: still streaming when the receiver dies. */
    tell(&a, "flood /sink 1000000 1000");
    usleep(100 * 1000); /* let the stream start; the kill is what is tested */
    stop(&b, SIGKILL);
    const char *done = expect(&a, "flood ok", 60);
    int status = 0;
    pid_t gone = done ? 0 : waitpid(a.pid, &status, WNOHANG);
    cr_assert_not_null(
        done, "the sender hung or died (%s %d):\n%s",
        gone > 0 ? (WIFSIGNALED(status) ? "signal" : "exit") : "running",
        gone > 0 ? (WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)) : 0, a.out);
    tell(&a, "status sink");
    must(&a, "status sink -1", 5);
    tell(&a, "name");
    must(&a, "name @", 5);
    long after = rss_of(&a);
    cr_assert_lt(after - before, 64 * 1024, "RSS grew by %ld KB", after - before);
    stop(&a, SIGTERM);
}

Test(faults, half_open_connections_and_partial_frames_do_not_block_others) {
    proc a = {0}, b = {0};
    pair(&a, &b);
    tell(&b, "offer echo");
    must(&b, "offered echo", 5);
    tell(&a, "offer back");
    must(&a, "offered back", 5);
    /* Connections to A that stop mid-frame or never say anything. */
    int silent = tcp_to(a.port);
    int partial = tcp_to(a.port);
    uint8_t two[2] = {0, 0};
    cr_assert_eq(send(partial, two, 2, 0), 2);
    int big = tcp_to(a.port);
    uint8_t head[64] = {0};
    send_frame(big, head, sizeof head, 1000000); /* claims 1 MB, sends 64 bytes */
    for (double end = now_s() + 10; now_s() < end;) {
        tell(&a, "status echo");
        if (expect(&a, "status echo 1", 0.2)) break;
    }
    for (int i = 0; i < 20; i++) {
        tell(&a, "ping /echo/ping tcp %d", i);
        char want[32];
        snprintf(want, sizeof want, "pong %d ", i + 1);
        must(&a, want, 5);
    }
    close(silent);
    close(partial);
    close(big);
    tell(&a, "ping /echo/ping tcp 100");
    must(&a, "pong 101 ", 5);
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

Test(faults, ten_thousand_services_reach_a_peer) {
    proc a = {0}, b = {0};
    pair(&a, &b);
    tell(&a, "many svc 10000");
    must(&a, "many ok 10000", 10);
    bool seen = false;
    for (double end = now_s() + 30; !seen && now_s() < end;) {
        tell(&b, "status svc9999");
        seen = expect(&b, "status svc9999 1", 0.2) != NULL;
    }
    cr_assert(seen, "svc9999 never reached B:\n%s", b.out);
    tell(&b, "status svc0");
    must(&b, "status svc0 1", 5);
    tell(&b, "status svc5000");
    must(&b, "status svc5000 1", 5);
    stop(&a, SIGTERM);
    /* Asked again until B has seen A go: an answer may come before B reads the close. */
    bool gone = false;
    for (double end = now_s() + 30; !gone && now_s() < end;) { /* 10 000 notices first */
        tell(&b, "status svc1");
        gone = expect(&b, "status svc1 -1", 0.2) != NULL;
    }
    cr_assert(gone, "svc1 still known to B after A stopped:\n%s", b.out);
    stop(&b, SIGTERM);
}

Test(faults, a_megabyte_message_and_reliable_order) {
    proc a = {0}, b = {0};
    pair(&a, &b);
    tell(&b, "sink sink");
    must(&b, "sink sink", 5);
    for (double end = now_s() + 10; now_s() < end;) {
        tell(&a, "status sink");
        if (expect(&a, "status sink 1", 0.2)) break;
    }
    /* 1,000,000 bytes of blob: a message just under the 1 MiB limit. */
    tell(&a, "flood /sink 1 1000000");
    must(&a, "flood ok 1 full 0 other 0", 10);
    /* Then many reliable ones, while the link is up: none lost, none reordered. */
    tell(&a, "flood /sink 20000 100");
    const char *line = expect(&a, "flood ok", 30);
    cr_assert_not_null(line);
    long ok = field_after(line, "flood ok ");
    bool all = false;
    for (double end = now_s() + 20; !all && now_s() < end;) {
        tell(&b, "count");
        const char *c = expect(&b, "count ", 2);
        all = c && field_after(c, "count ") == 1 + ok;
        if (all) {
            cr_assert_eq(field_after(c, "bytes "), 1000000 + 100 * ok);
            cr_assert_eq(field_after(c, "inorder "), 1);
        }
    }
    cr_assert(all, "B did not get all %ld reliable messages:\n%s", 1 + ok, b.out);
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

Test(faults, a_udp_burst_at_a_slow_receiver_stays_bounded) {
    proc a = {0}, b = {0};
    pair(&a, &b);
    tell(&b, "sink sink");
    must(&b, "sink sink", 5);
    tell(&b, "slow 20");
    must(&b, "slow 20", 5);
    for (double end = now_s() + 10; now_s() < end;) {
        tell(&a, "status sink");
        if (expect(&a, "status sink 1", 0.2)) break;
    }
    long rss_a = rss_of(&a), rss_b = rss_of(&b);
    tell(&a, "burst /sink 1000000 32");
    const char *line = expect(&a, "burst ok", 90);
    cr_assert_not_null(line, "the sender did not finish:\n%s", a.out);
    tell(&b, "count");
    const char *c = expect(&b, "count ", 10);
    cr_assert_not_null(c, "the receiver stopped answering:\n%s", b.out);
    long got = field_after(c, "count ");
    cr_assert_gt(got, 0);
    cr_assert_leq(got, 1000000);
    long grow_a = rss_of(&a) - rss_a, grow_b = rss_of(&b) - rss_b;
    cr_log_info("burst: %s; receiver got %ld; RSS growth A %ld KB, B %ld KB", line, got, grow_a,
                grow_b);
    cr_assert_lt(grow_a, 64 * 1024);
    cr_assert_lt(grow_b, 64 * 1024);
    stop(&a, SIGTERM);
    stop(&b, SIGTERM);
}

/* ---- a thousand O2lite clients on one host (raw sockets, in this process) ---- */

enum { CLIENTS = 1000 };

typedef struct lite {
    int fd;
    int id;
    uint8_t in[256];
    size_t have;
} lite;

static o2h_msg *build1(const char *address, const char *types, const char *s, int32_t i,
                       int32_t j) {
    o2h_builder *b = o2h_builder_new(NULL);
    for (const char *t = types; *t; t++) {
        if (*t == 's') o2h_add_string(b, t == types ? s : "");
        if (*t == 'i') o2h_add_int32(b, t == types + 1 ? i : j);
    }
    o2h_msg *m = o2h_builder_finish(b, 0, address, O2H_FLAG_RELIABLE);
    o2h_builder_free(b);
    return m;
}

static bool send_all(int fd, o2h_msg *m) {
    uint8_t frame[256];
    o2h_wr_u32(frame, m->length);
    memcpy(frame + 4, m->data, m->length);
    ssize_t n = send(fd, frame, 4 + m->length, MSG_NOSIGNAL);
    uint32_t len = m->length;
    o2h_msg_unref(m);
    return n == (ssize_t)(4 + len);
}

/* One whole message from the client's stream, or NULL for now. */
static o2h_msg *next_msg(lite *c) {
    ssize_t n = recv(c->fd, c->in + c->have, sizeof c->in - c->have, MSG_DONTWAIT);
    if (n > 0) c->have += (size_t)n;
    if (c->have < 4) return NULL;
    uint32_t len = o2h_rd_u32(c->in);
    if (c->have < 4 + len) return NULL;
    o2h_msg *m = o2h_msg_from_bytes(NULL, c->in + 4, len, NULL, NULL);
    memmove(c->in, c->in + 4 + len, c->have - 4 - len);
    c->have -= 4 + len;
    return m;
}

static bool raise_fd_limit(rlim_t want) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= want) return true;
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    setrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur >= want;
}

Test(faults, a_thousand_o2lite_clients_on_one_host) {
    if (!raise_fd_limit(3 * CLIENTS + 100)) cr_skip("RLIMIT_NOFILE too low for 1000 clients");
    int port = free_port();
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"many\", \"log_level\": \"warn\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}]}",
             TRANSPORT_DIR, port, port);
    o2h_error err;
    o2h_router *host = o2h_router_new_from_json(json, "many.json", NULL, &err);
    cr_assert_not_null(host, "%s", err.message);
    cr_assert_eq(o2h_router_start(host), O2H_OK);
    static lite c[CLIENTS];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* Connect without blocking, letting the host accept as we go. */
    for (int i = 0; i < CLIENTS; i++) {
        c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        cr_assert_geq(c[i].fd, 0, "%s", strerror(errno));
        int rc = connect(c[i].fd, (struct sockaddr *)&a, sizeof a);
        cr_assert(rc == 0 || errno == EINPROGRESS, "%s", strerror(errno));
        if (i % 32 == 0) o2h_router_poll(host, 0);
    }
    for (int i = 0; i < 100; i++)
        o2h_router_poll(host, 1);
    for (int i = 0; i < CLIENTS; i++) {
        int flags = fcntl(c[i].fd, F_GETFL);
        fcntl(c[i].fd, F_SETFL, flags & ~O_NONBLOCK);
        cr_assert(send_all(c[i].fd, build1("!_o2/o2lite/con", "si", "7f000001", 0, 0)),
                  "client %d: %s", i, strerror(errno));
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        cr_assert(send_all(c[i].fd, build1("!_o2/o2lite/sv", "siisi", name, 1, 1)));
        if (i % 16 == 0) o2h_router_poll(host, 0);
    }
    double deadline = now_s() + 30;
    int with_id = 0;
    while (with_id < CLIENTS && now_s() < deadline) {
        o2h_router_poll(host, 1);
        for (int i = 0; i < CLIENTS; i++) {
            if (c[i].id) continue;
            o2h_msg *m = next_msg(&c[i]);
            if (!m) continue;
            o2h_reader rd;
            o2h_arg arg;
            o2h_reader_init(&rd, m, NULL, 0);
            if (strcmp(o2h_msg_address(m), "!_o2/id") == 0 && o2h_reader_next(&rd, 'i', &arg) == 0)
                c[i].id = arg.i, with_id++;
            o2h_msg_unref(m);
        }
    }
    cr_assert_eq(with_id, CLIENTS, "only %d clients got an id", with_id);
    for (int i = 0; i < CLIENTS; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        cr_assert_eq(o2h_status(host, name), O2H_STATUS_BRIDGE_NOTIME, "%s", name);
    }
    /* A message to each client's service reaches exactly that client. */
    for (int i = 0; i < CLIENTS; i++) {
        char address[32];
        snprintf(address, sizeof address, "/c%d/hello", i);
        cr_assert_eq(o2h_send_cmd(host, address, 0, "i", i), O2H_OK);
    }
    int delivered = 0;
    static bool got[CLIENTS];
    deadline = now_s() + 30;
    while (delivered < CLIENTS && now_s() < deadline) {
        o2h_router_poll(host, 1);
        for (int i = 0; i < CLIENTS; i++) {
            if (got[i]) continue;
            o2h_msg *m = next_msg(&c[i]);
            if (!m) continue;
            o2h_reader rd;
            o2h_arg arg;
            o2h_reader_init(&rd, m, NULL, 0);
            cr_assert_eq(o2h_reader_next(&rd, 'i', &arg), O2H_OK);
            cr_assert_eq(arg.i, i, "client %d got %d's message", i, arg.i);
            got[i] = true;
            delivered++;
            o2h_msg_unref(m);
        }
    }
    cr_assert_eq(delivered, CLIENTS);
    for (int i = 0; i < CLIENTS; i++)
        close(c[i].fd);
    deadline = now_s() + 10;
    while (o2h_status(host, "c999") != O2H_STATUS_UNKNOWN && now_s() < deadline)
        o2h_router_poll(host, 5);
    for (int i = 0; i < 20; i++)
        o2h_router_poll(host, 1);
    for (int i = 0; i < CLIENTS; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        cr_assert_eq(o2h_status(host, name), O2H_STATUS_UNKNOWN, "%s outlived its client", name);
    }
    o2h_router_free(host);
}
