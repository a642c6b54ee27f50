/*
 * End to end: the o2hub daemon as a separate process, configured from a JSON
 * file, loading the skeleton transport, carrying real datagrams on 127.0.0.1.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>
#include <o2hub/plugin.h>

typedef struct daemon_proc {
    pid_t pid;
    int err_fd; /* the daemon's stderr */
    char log[16384];
    size_t used;
} daemon_proc;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void spawn(daemon_proc *d, const char *const *args) {
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    memset(d, 0, sizeof *d);
    d->pid = fork();
    cr_assert_geq(d->pid, 0);
    if (d->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        dup2(pipefd[1], 1);               /* keep the TAP stream on our stdout clean */
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(O2HUB_EXE, (char *const *)args);
        _exit(127);
    }
    close(pipefd[1]);
    d->err_fd = pipefd[0];
}

/* Read the daemon's stderr until `needle` shows up or `limit_s` passes. */
static const char *wait_for_log(daemon_proc *d, const char *needle, double limit_s) {
    double end = now_s() + limit_s;
    for (;;) {
        const char *at = strstr(d->log, needle);
        if (at) return at;
        double left = end - now_s();
        if (left <= 0) return NULL;
        struct pollfd p = {.fd = d->err_fd, .events = POLLIN};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0) continue;
        ssize_t n = read(d->err_fd, d->log + d->used, sizeof d->log - 1 - d->used);
        if (n <= 0) return strstr(d->log, needle);
        d->used += (size_t)n;
        d->log[d->used] = '\0';
    }
}

/* waitpid with a bound; returns the exit status, or -1 if it did not exit in time. */
static int wait_exit(daemon_proc *d, double limit_s) {
    double end = now_s() + limit_s;
    int status;
    while (now_s() < end) {
        pid_t p = waitpid(d->pid, &status, WNOHANG);
        if (p == d->pid) {
            wait_for_log(d, "\x01never", 0.05); /* collect the last lines */
            close(d->err_fd);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        struct pollfd none;
        poll(&none, 0, 10);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    close(d->err_fd);
    return -1;
}

static int udp_bound(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static char tmpdir[64];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/o2hub-e2e-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    (void)!system(cmd);
}

TestSuite(daemon, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 30);

static o2h_msg *build_msg(const char *address, int32_t i, const char *s) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_builder_start(b);
    o2h_add_int32(b, i);
    o2h_add_string(b, s);
    o2h_msg *m = o2h_builder_finish(b, 0, address, 0);
    o2h_builder_free(b);
    return m;
}

static void send_to(int fd, unsigned port, const void *data, size_t len) {
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(sendto(fd, data, len, 0, (struct sockaddr *)&to, sizeof to), (ssize_t)len);
}

static unsigned start_skeleton_daemon(daemon_proc *d, uint16_t sink_port, const char *extra) {
    char cfg[2048], path[128];
    snprintf(cfg, sizeof cfg,
             "{\n  \"ensemble\": \"e2e\",\n  \"plugin_path\": [\"%s\", \"%s\"],\n"
             "  \"transports\": [%s{\"type\": \"skeleton\", \"port\": 0,\n"
             "    \"forward\": [{\"service\": \"out\", \"to\": \"127.0.0.1:%u\"}]}]\n}\n",
             SKELETON_PLUGIN_DIR, TEST_PLUGIN_DIR, extra, sink_port);
    snprintf(path, sizeof path, "%s/router.json", tmpdir);
    write_file(path, cfg);
    const char *args[] = {"o2hub", "--config", path, "--log-level", "info", NULL};
    spawn(d, args);
    const char *at = wait_for_log(d, "listening on 127.0.0.1:", 10);
    cr_assert_not_null(at, "daemon did not report its port; log:\n%s", d->log);
    unsigned port = 0;
    sscanf(at, "listening on 127.0.0.1:%u", &port);
    cr_assert_gt(port, 0);
    return port;
}

Test(daemon, message_goes_in_and_out_through_the_skeleton_plugin) {
    uint16_t sink_port;
    int sink = udp_bound(&sink_port);
    daemon_proc d;
    unsigned port = start_skeleton_daemon(&d, sink_port, "");

    /* A datagram to the daemon addressed to "out" is forwarded to our sink unchanged. */
    o2h_msg *m = build_msg("/out/hello", 42, "through the router");
    send_to(sink, port, m->data, m->length);
    struct pollfd p = {.fd = sink, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1, "nothing forwarded; log:\n%s", d.log);
    uint8_t buf[512];
    ssize_t n = recv(sink, buf, sizeof buf, 0);
    cr_assert_eq((size_t)n, m->length);
    cr_assert_eq(memcmp(buf, m->data, m->length), 0);
    o2h_msg_unref(m);

    /* Garbage is dropped and counted; the router keeps serving. */
    static const char garbage[] = "\xff\xff\xff\xff not an O2 message";
    send_to(sink, port, garbage, sizeof garbage - 1);
    m = build_msg("/out/again", 7, "still alive");
    send_to(sink, port, m->data, m->length);
    cr_assert_eq(poll(&p, 1, 5000), 1, "router stopped serving after garbage");
    n = recv(sink, buf, sizeof buf, 0);
    cr_assert_eq((size_t)n, m->length);
    o2h_msg_unref(m);

    kill(d.pid, SIGTERM);
    cr_assert_eq(wait_exit(&d, 10), 0, "SIGTERM must stop it cleanly; log:\n%s", d.log);
    cr_assert(strstr(d.log, "forwarded 2"), "log:\n%s", d.log);
    cr_assert(strstr(d.log, "dropped_invalid 1,"), "log:\n%s", d.log);
    close(sink);
}

Test(daemon, plugin_with_newer_abi_is_refused_and_the_router_goes_on) {
    uint16_t sink_port;
    int sink = udp_bound(&sink_port);
    daemon_proc d;
    unsigned port =
        start_skeleton_daemon(&d, sink_port, "{\"type\": \"abinext\", \"required\": false}, ");
    char want[64];
    snprintf(want, sizeof want, "built for plugin ABI %d.%d", O2H_ABI_MAJOR + 1, O2H_ABI_MINOR);
    cr_assert(strstr(d.log, want), "log:\n%s", d.log);
    cr_assert(strstr(d.log, "going on without it"), "log:\n%s", d.log);
    o2h_msg *m = build_msg("/out/ok", 1, "x");
    send_to(sink, port, m->data, m->length);
    struct pollfd p = {.fd = sink, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1);
    o2h_msg_unref(m);
    kill(d.pid, SIGINT);
    cr_assert_eq(wait_exit(&d, 10), 0, "SIGINT must stop it cleanly");
    close(sink);
}

Test(daemon, check_reports_line_7_with_the_key_path) {
    char path[128];
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    write_file(path, "{\n"
                     "  \"ensemble\": \"demo\",\n"
                     "  \"plugin_path\": [],\n"
                     "  \"transports\": [\n"
                     "    {\n"
                     "      \"type\": \"skeleton\",\n"
                     "      \"required\": \"yes\"\n"
                     "    }\n"
                     "  ]\n"
                     "}\n");
    const char *args[] = {"o2hub", "--config", path, "--check", NULL};
    daemon_proc d;
    spawn(&d, args);
    cr_assert_eq(wait_exit(&d, 10), 1);
    char want[256];
    snprintf(want, sizeof want, "%s:7:19: transports[0].required: ", path);
    cr_assert(strstr(d.log, want), "want %s in:\n%s", want, d.log);
}

Test(daemon, check_accepts_every_example_config) {
    const char *configs[] = {
        EXAMPLES_DIR "/router.json", EXAMPLES_DIR "/network-a.json", EXAMPLES_DIR "/network-b.json",
        EXAMPLES_DIR "/osc.json",    EXAMPLES_DIR "/shm.json",
#ifdef HAVE_WEBSOCKET
        EXAMPLES_DIR "/hub.json",    EXAMPLES_DIR "/monitor.json",   EXAMPLES_DIR "/websocket.json",
#endif
#ifdef HAVE_MQTT
        EXAMPLES_DIR "/mqtt.json"
#endif
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        const char *args[] = {"o2hub",        "--config",  configs[i], "--check",
                              "--plugin-dir", PLUGIN_DIRS, NULL};
        daemon_proc d;
        spawn(&d, args);
        cr_assert_eq(wait_exit(&d, 10), 0, "%s:\n%s", configs[i], d.log);
    }
}

Test(daemon, usage_errors_and_version) {
    const char *no_config[] = {"o2hub", NULL};
    daemon_proc d;
    spawn(&d, no_config);
    cr_assert_eq(wait_exit(&d, 10), 2);
    cr_assert(strstr(d.log, "--config FILE is required"), "log:\n%s", d.log);
    const char *bad_level[] = {"o2hub", "--config", "x.json", "--log-level", "loud", NULL};
    spawn(&d, bad_level);
    cr_assert_eq(wait_exit(&d, 10), 2);
    cr_assert(strstr(d.log, "unknown log level \"loud\""), "log:\n%s", d.log);
    const char *version[] = {"o2hub", "--version", NULL};
    spawn(&d, version);
    cr_assert_eq(wait_exit(&d, 10), 0);
    cr_assert(strstr(d.log, "o2hub 0.1.0"), "log:\n%s", d.log);
    cr_assert(strstr(d.log, "plugin ABI 1."), "log:\n%s", d.log);
    const char *help[] = {"o2hub", "--help", NULL};
    spawn(&d, help);
    cr_assert_eq(wait_exit(&d, 10), 0);
    cr_assert(strstr(d.log, "--list-plugins"), "log:\n%s", d.log);
    const char *bad_set[] = {"o2hub",        "--config",  EXAMPLES_DIR "/router.json",
                             "--check",      "--set",     "transports.skeleton.port=x",
                             "--plugin-dir", PLUGIN_DIRS, NULL};
    spawn(&d, bad_set);
    cr_assert_eq(wait_exit(&d, 10), 1);
    cr_assert(strstr(d.log, "--set transports.skeleton.port=x: transports[0].port: "),
              "an error in an override names it:\n%s", d.log);
}

/* --list-plugins: every plugin of every --plugin-dir (they accumulate), described. */
Test(daemon, list_plugins_describes_each) {
    const char *args[] = {"o2hub",      "--list-plugins", "--plugin-dir",
                          SKELETON_DIR, "--plugin-dir",   TRANSPORT_DIR,
                          NULL};
    daemon_proc d;
    spawn(&d, args);
    cr_assert_eq(wait_exit(&d, 10), 0, "%s", d.log);
    cr_assert(strstr(d.log, "NAME       KIND       ABI  VERSION  DESCRIPTION / FILE"), "%s", d.log);
    char want[128]; /* the plugins of this build carry this build's ABI version */
    snprintf(want, sizeof want, "\ntcp        transport  %d.%d  1.0.0    O2 reliable transport",
             O2H_ABI_MAJOR, O2H_ABI_MINOR);
    const char *tcp = strstr(d.log, want);
    cr_assert_not_null(tcp, "%s", d.log);
    cr_assert(strstr(tcp, TRANSPORT_DIR "/o2hub_tcp.so"), "%s", d.log);
    cr_assert(strstr(d.log, "\nskeleton "), "the first --plugin-dir is searched too:\n%s", d.log);
    const char *none[] = {"o2hub", "--list-plugins", NULL};
    spawn(&d, none);
    cr_assert_eq(wait_exit(&d, 10), 0, "run from the build tree, it finds the build's: %s", d.log);
    cr_assert(strstr(d.log, "\nudp "), "%s", d.log);
}
