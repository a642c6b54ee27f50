/*
 * Connection limits of the listening transports (transports/common/listener.h),
 * on the o2hub daemon with a tcp transport and an OSC TCP port whose
 * messages go, through a TCP delegate, to a server in this test:
 *
 * - Out of file descriptors (ulimit -n 128 on the daemon, 400 connections
 *   held): the daemon does not spin (CPU measured from /proc), logs one
 *   warning per listener and episode, and once the clients are gone accepts
 *   and serves new connections again.
 * - max_connections: connections over it are closed at once, logged once,
 *   and a slot freed is taken again.
 *
 * Every wait is bounded and waits for an event (a log line, a reply, an EOF).
 */
#include <sys/resource.h>

#include <o2hub/o2hub.h>

#include "proc_util.h"

#define CLIENTS 200    /* per listener */
#define FD_LIMIT 128   /* the daemon's RLIMIT_NOFILE */
#define CPU_WINDOW 5.0 /* seconds */
#define CPU_MAX 0.05   /* of one core */
#define RECOVERY 2.0   /* seconds from the clients closing to new ones served */
#define CAP 3          /* max_connections in the cap test */
#define OVER_CAP 2

TestSuite(limits, .timeout = 90);

typedef struct daemon_env {
    child d;
    char dir[64];
    int tcp_port, osc_port;
    int delegate_listen; /* our OSC server, for the daemon's TCP delegate */
    int delegate;        /* the daemon's connection to it */
} daemon_env;

/* ---- small socket helpers ---- */

static int listen_any(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static bool readable_within(int fd, double limit_s) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, (int)(limit_s * 1000) + 1) > 0;
}

/* A connection to 127.0.0.1:port, non-blocking when asked (no wait for the handshake). */
static int connect_to(int port, bool nonblocking) {
    int fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    cr_assert(rc == 0 || (nonblocking && errno == EINPROGRESS), "connect: %s", strerror(errno));
    return fd;
}

static bool send_all(int fd, const void *data, size_t len) {
    return send(fd, data, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/* Read exactly `len` bytes within the limit; false on EOF, error or time out. */
static bool recv_all(int fd, uint8_t *buf, size_t len, double limit_s) {
    double end = pu_now() + limit_s;
    for (size_t got = 0; got < len;) {
        if (!readable_within(fd, end - pu_now())) return false;
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0) return false;
        got += (size_t)n;
    }
    return true;
}

/* ---- the O2 side: an O2lite "con" answered by "!_o2/id" ---- */

/* Send !_o2/o2lite/con; the id the daemon gives back, or 0 if it closed the
 * connection instead (or said nothing within the limit). */
static int o2lite_id(int fd, double limit_s) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, "7f000001");
    o2h_add_int32(b, 0);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/o2lite/con", O2H_FLAG_RELIABLE);
    o2h_builder_free(b);
    uint8_t frame[256];
    o2h_wr_u32(frame, m->length);
    memcpy(frame + 4, m->data, m->length);
    bool sent = send_all(fd, frame, 4 + m->length);
    o2h_msg_unref(m);
    uint8_t hdr[4], body[256];
    if (!sent || !recv_all(fd, hdr, 4, limit_s)) return 0;
    uint32_t len = o2h_rd_u32(hdr);
    if (len > sizeof body || !recv_all(fd, body, len, limit_s)) return 0;
    o2h_msg *reply = o2h_msg_from_bytes(NULL, body, len, NULL, NULL);
    cr_assert_not_null(reply);
    cr_assert_str_eq(o2h_msg_address(reply), "!_o2/id");
    o2h_reader rd;
    o2h_arg arg;
    o2h_reader_init(&rd, reply, NULL, 0);
    cr_assert_eq(o2h_reader_next(&rd, 'i', &arg), O2H_OK);
    o2h_msg_unref(reply);
    return arg.i;
}

/* ---- the OSC side: a message into the port comes out of the delegate ---- */

static const uint8_t osc_head[12] = "/hello\0\0,i\0"; /* then an int32 */

static bool osc_send(int fd, int32_t value) {
    uint8_t frame[20];
    o2h_wr_u32(frame, 16);
    memcpy(frame + 4, osc_head, sizeof osc_head);
    o2h_wr_u32(frame + 16, (uint32_t)value);
    return send_all(fd, frame, sizeof frame);
}

/* One message from the delegate: it must be /hello `value`. */
static void osc_expect(daemon_env *e, int32_t value, double limit_s) {
    uint8_t frame[20];
    cr_assert(recv_all(e->delegate, frame, sizeof frame, limit_s),
              "the OSC message %d did not come through the delegate", value);
    cr_assert_eq(o2h_rd_u32(frame), 16);
    cr_assert_eq(memcmp(frame + 4, osc_head, sizeof osc_head), 0);
    cr_assert_eq((int32_t)o2h_rd_u32(frame + 16), value);
}

/* Send `value` on fd: true if it came through the delegate, false if the
 * daemon closed fd instead. */
static bool osc_served(daemon_env *e, int fd, int32_t value, double limit_s) {
    osc_send(fd, value); /* may fail: the daemon may have closed fd already */
    struct pollfd p[2] = {{.fd = e->delegate, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    cr_assert_gt(poll(p, 2, (int)(limit_s * 1000)), 0, "neither served nor closed");
    if (p[0].revents) {
        osc_expect(e, value, limit_s);
        return true;
    }
    char byte;
    cr_assert_leq(recv(fd, &byte, 1, 0), 0, "the port answered OSC");
    return false;
}

/* ---- the daemon ---- */

static void start_daemon(daemon_env *e, const char *tcp_extra, const char *port_extra) {
    snprintf(e->dir, sizeof e->dir, "/tmp/o2hub-limits-XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir));
    e->tcp_port = pu_free_port();
    do
        e->osc_port = pu_free_port();
    while (e->osc_port == e->tcp_port);
    int delegate_port;
    e->delegate_listen = listen_any(&delegate_port);
    char path[128];
    snprintf(path, sizeof path, "%s/limits.json", e->dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"ensemble\": \"limits\", \"log_level\": \"info\", \"plugin_path\": [\"%s\"],\n"
            " \"transports\": [\n"
            "  {\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d%s},\n"
            "  {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
            "  {\"type\": \"osc\",\n"
            "   \"delegates\": [{\"service\": \"fwd\", \"address\": \"127.0.0.1:%d\","
            " \"protocol\": \"tcp\"}],\n"
            "   \"ports\": [{\"port\": %d, \"host\": \"127.0.0.1\", \"protocol\": \"tcp\","
            " \"service\": \"fwd\"%s}]}]}\n",
            TRANSPORT_DIR, e->tcp_port, tcp_extra, e->tcp_port, delegate_port, e->osc_port,
            port_extra);
    fclose(f);
    char *argv[] = {O2HUB_EXE, "--config", path, NULL};
    pu_spawn(&e->d, argv, NULL, false);
    cr_assert(readable_within(e->delegate_listen, 10), "the delegate did not connect:\n%s",
              e->d.out);
    e->delegate = accept(e->delegate_listen, NULL, NULL);
    cr_assert_geq(e->delegate, 0);
    cr_assert_not_null(pu_expect(&e->d, "router started", 10), "%s", e->d.out);
}

static void stop_daemon(daemon_env *e) {
    pu_kill(&e->d);
    close(e->delegate);
    close(e->delegate_listen);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    cr_assert_eq(system(cmd), 0);
}

/* Lines of the daemon's output containing `needle`. */
static int count(const child *c, const char *needle) {
    int n = 0;
    for (const char *at = c->out; (at = strstr(at, needle)); at += strlen(needle))
        n++;
    return n;
}

/* Read the daemon's output until `needle` is there `n` times (bounded). */
static bool wait_count(child *c, const char *needle, int n, double limit_s) {
    double end = pu_now() + limit_s;
    while (count(c, needle) < n && pu_now() < end)
        pu_read(c, 50);
    return count(c, needle) >= n;
}

/* utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15). */
static long cpu_ticks(pid_t pid) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')'); /* the name may hold spaces */
    cr_assert_not_null(p);
    unsigned long utime, stime;
    cr_assert_eq(
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime), 2);
    return (long)(utime + stime);
}

static bool raise_fd_limit(rlim_t want) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= want) return true;
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    setrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur >= want;
}

/* ---- out of file descriptors ---- */

typedef struct episode_lines {
    char starved[96], recovered[96];
} episode_lines;

static episode_lines lines_for(const char *what, int port) {
    episode_lines l;
    snprintf(l.starved, sizeof l.starved, "%s port %d: out of file descriptors", what, port);
    snprintf(l.recovered, sizeof l.recovered, "%s port %d: accepting connections again", what,
             port);
    return l;
}

/* The daemon's CPU, as a share of one core, over CPU_WINDOW seconds (reading its output). */
static double cpu_share(daemon_env *e) {
    long t0 = cpu_ticks(e->d.pid);
    double w0 = pu_now();
    while (pu_now() - w0 < CPU_WINDOW)
        pu_read(&e->d, 100);
    long t1 = cpu_ticks(e->d.pid);
    return (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK) / (pu_now() - w0);
}

/* Every episode ended: as many recoveries as warnings, for both listeners. */
static bool all_recovered(daemon_env *e, const episode_lines *tcp, const episode_lines *osc,
                          double limit_s) {
    double end = pu_now() + limit_s;
    for (;;) {
        bool done = count(&e->d, tcp->recovered) == count(&e->d, tcp->starved) &&
                    count(&e->d, osc->recovered) == count(&e->d, osc->starved);
        if (done || pu_now() > end) return done;
        pu_read(&e->d, 50);
    }
}

Test(limits, out_of_descriptors_neither_spins_nor_floods_the_log_and_recovers) {
    if (!raise_fd_limit(2 * CLIENTS + 100)) cr_skip("RLIMIT_NOFILE too low for the clients");
    daemon_env e;
    start_daemon(&e, "", "");
    struct rlimit rl = {FD_LIMIT, FD_LIMIT};
    cr_assert_eq(prlimit(e.d.pid, RLIMIT_NOFILE, &rl, NULL), 0, "%s", strerror(errno));
    episode_lines tcp = lines_for(": TCP", e.tcp_port), osc = lines_for("OSC TCP", e.osc_port);
    static int clients[2 * CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        clients[i] = connect_to(e.tcp_port, true);
    cr_assert(wait_count(&e.d, tcp.starved, 1, 10), "no warning for the TCP port:\n%s", e.d.out);
    for (int i = 0; i < CLIENTS; i++)
        clients[CLIENTS + i] = connect_to(e.osc_port, true);
    cr_assert(wait_count(&e.d, osc.starved, 1, 10), "no warning for the OSC port:\n%s", e.d.out);

    double share = cpu_share(&e);
    fprintf(stderr, "daemon CPU out of descriptors: %.2f %% of a core over %.0f s\n", share * 100,
            CPU_WINDOW);
    cr_assert_lt(share, CPU_MAX, "the daemon used %.1f %% of a core", share * 100);
    cr_assert_eq(count(&e.d, tcp.starved), 1, "%s", e.d.out);
    cr_assert_eq(count(&e.d, osc.starved), 1, "%s", e.d.out);

    /* Within RECOVERY of the clients closing, both listeners accept again and
     * new connections are served. (Connecting before the listener has
     * drained its backlog could cost a SYN retransmission: 1 s.) */
    for (int i = 0; i < 2 * CLIENTS; i++)
        close(clients[i]);
    double deadline = pu_now() + RECOVERY;
    cr_assert(all_recovered(&e, &tcp, &osc, deadline - pu_now()), "no recovery:\n%s", e.d.out);
    int fd = connect_to(e.tcp_port, false);
    cr_assert_gt(o2lite_id(fd, deadline - pu_now()), 0, "a new TCP connection was not served:\n%s",
                 e.d.out);
    int ofd = connect_to(e.osc_port, false);
    cr_assert(osc_send(ofd, 7));
    osc_expect(&e, 7, deadline - pu_now());
    cr_assert(all_recovered(&e, &tcp, &osc, 1), "an episode did not end:\n%s", e.d.out);
    fprintf(stderr, "served again %.2f s after the clients closed; episodes: TCP %d, OSC %d\n",
            pu_now() - (deadline - RECOVERY), count(&e.d, tcp.starved), count(&e.d, osc.starved));
    close(fd);
    close(ofd);
    stop_daemon(&e);
}

/* ---- max_connections ---- */

/* A connection is made over and over until the daemon serves one (bounded). */
static int tcp_served_within(daemon_env *e, double limit_s) {
    for (double end = pu_now() + limit_s; pu_now() < end;) {
        int fd = connect_to(e->tcp_port, false);
        if (o2lite_id(fd, end - pu_now()) > 0) return fd;
        close(fd);
    }
    return -1;
}

static int osc_served_within(daemon_env *e, double limit_s) {
    for (double end = pu_now() + limit_s; pu_now() < end;) {
        int fd = connect_to(e->osc_port, false);
        if (osc_served(e, fd, 99, end - pu_now())) return fd;
        close(fd);
    }
    return -1;
}

Test(limits, max_connections_closes_the_ones_over_it) {
    daemon_env e;
    char extra[64];
    snprintf(extra, sizeof extra, ", \"max_connections\": %d", CAP);
    start_daemon(&e, extra, extra);
    int tcp[CAP + OVER_CAP], osc[CAP + OVER_CAP];
    for (int i = 0; i < CAP + OVER_CAP; i++) {
        tcp[i] = connect_to(e.tcp_port, false);
        osc[i] = connect_to(e.osc_port, false);
    }
    int tcp_served = 0, osc_served_n = 0, tcp_open = -1, osc_open = -1;
    for (int i = 0; i < CAP + OVER_CAP; i++) {
        if (o2lite_id(tcp[i], 2) > 0) tcp_served++, tcp_open = i;
        if (osc_served(&e, osc[i], i, 2)) osc_served_n++, osc_open = i;
    }
    cr_assert_eq(tcp_served, CAP, "%s", e.d.out);
    cr_assert_eq(osc_served_n, CAP, "%s", e.d.out);
    char tcp_line[96], osc_line[96];
    snprintf(tcp_line, sizeof tcp_line, ": TCP port %d: %d connections open, the most allowed",
             e.tcp_port, CAP);
    snprintf(osc_line, sizeof osc_line, "OSC TCP port %d: %d connections open, the most allowed",
             e.osc_port, CAP);
    cr_assert(wait_count(&e.d, tcp_line, 1, 2) && wait_count(&e.d, osc_line, 1, 2), "%s", e.d.out);
    cr_assert_eq(count(&e.d, tcp_line), 1, "logged more than once in ten seconds:\n%s", e.d.out);
    cr_assert_eq(count(&e.d, osc_line), 1, "logged more than once in ten seconds:\n%s", e.d.out);

    /* A slot freed is taken again. */
    close(tcp[tcp_open]);
    close(osc[osc_open]);
    tcp[tcp_open] = tcp_served_within(&e, 2);
    osc[osc_open] = osc_served_within(&e, 2);
    cr_assert_geq(tcp[tcp_open], 0, "no TCP connection served after one closed:\n%s", e.d.out);
    cr_assert_geq(osc[osc_open], 0, "no OSC connection served after one closed:\n%s", e.d.out);
    for (int i = 0; i < CAP + OVER_CAP; i++) {
        close(tcp[i]);
        close(osc[i]);
    }
    stop_daemon(&e);
}
