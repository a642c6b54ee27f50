/*
 * End to end: the o2hub daemon as a service. Its log lines (UTC time in
 * text, one JSON object per line with --log-format json, "<N>" priorities
 * and no time when stderr is the journal), and SIGHUP: a good new config
 * takes effect while it runs (a new "allow" refuses a sender that was let
 * in, a new log level shows lines it hid), a bad one is refused with its
 * file:line:col and the running config stays. --log-syslog is checked
 * against a /dev/log of the test's own, in a mount namespace.
 */
#include <jansson.h>
#include <regex.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "proc_util.h"

static char tmpdir[64];
static char cfg_path[128];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/o2hub-ops-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(cfg_path, sizeof cfg_path, "%s/o2hub.json", tmpdir);
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    (void)!system(cmd);
}

TestSuite(operations, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 60);

/* Written whole under another name, then renamed: a reload never reads half a file. */
static void write_config(const char *fmt, ...) {
    char tmp[160], text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(tmp, sizeof tmp, "%s.new", cfg_path);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(rename(tmp, cfg_path), 0);
}

/*
 * Start the daemon with `args` after --config; stdout and stderr are one
 * pipe. `journal`: JOURNAL_STREAM names that pipe (1), another stream (-1),
 * or is unset (0).
 */
static void start(child *c, const char *const *args, int journal) {
    int out[2];
    cr_assert_eq(pipe(out), 0);
    struct stat st;
    cr_assert_eq(fstat(out[1], &st), 0);
    char env[96];
    snprintf(env, sizeof env, "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (journal < 0 ? 1 : 0));
    char *argv[16] = {(char *)O2HUB_EXE, (char *)"--config", cfg_path};
    int n = 3;
    for (int i = 0; args && args[i] && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    memset(c, 0, sizeof *c);
    c->status = -1;
    c->pid = fork();
    cr_assert(c->pid >= 0);
    if (c->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (journal)
            putenv(env);
        else
            unsetenv("JOURNAL_STREAM");
        setenv("O2HUB_PLUGIN_PATH", TRANSPORT_PLUGIN_DIR, 1);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1); /* the log is stderr; stdout has the start banner */
        dup2(out[1], 2);
        close(out[0]);
        close(out[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    c->out_fd = out[0];
}

static int stop(child *c) {
    kill(c->pid, SIGTERM);
    int rc = pu_wait(c, 10);
    close(c->out_fd);
    c->out_fd = -1;
    return rc;
}

/* Every line of the output matches `pattern` (extended regex). */
static void assert_every_line(const child *c, const char *pattern) {
    regex_t re;
    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    char *copy = strdup(c->out), *save = NULL;
    int lines = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cr_expect_eq(regexec(&re, line, 0, NULL, 0), 0, "line does not match %s: %s", pattern,
                     line);
        lines++;
    }
    cr_assert_geq(lines, 3, "the daemon said something:\n%s", c->out);
    free(copy);
    regfree(&re);
}

static void udp_config(int port, const char *extra) {
    write_config("{\"ensemble\": \"ops\", \"log_level\": \"info\"%s,\n"
                 " \"transports\": [{\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}]}\n",
                 extra, port);
}

Test(operations, text_lines_start_with_the_utc_time) {
    udp_config(pu_free_port(), "");
    child c;
    start(&c, NULL, 0);
    cr_assert_not_null(pu_expect(&c, "router started", 10), "%s", c.out);
    cr_assert_eq(stop(&c), 0, "%s", c.out);
    cr_assert_not_null(strstr(c.out, "o2hub: stopped; delivered 0"), "%s", c.out);
    assert_every_line(&c, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                          "o2hub(\\[ops\\])? (error|warn|info|debug) [a-z0-9_]+: ");
}

Test(operations, json_lines_parse_one_by_one) {
    udp_config(pu_free_port(), "");
    child c;
    const char *args[] = {"--log-format", "json", NULL};
    start(&c, args, 1); /* JSON even on the journal */
    cr_assert_not_null(pu_expect(&c, "router started", 10), "%s", c.out);
    cr_assert_eq(stop(&c), 0, "%s", c.out);
    char *copy = strdup(c.out), *save = NULL;
    int lines = 0;
    bool stopped = false;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        cr_assert_not_null(o, "not JSON (%s): %s", e.text, line);
        const char *keys[] = {"time", "level", "source", "ensemble", "message"};
        for (int i = 0; i < 5; i++)
            cr_assert(json_is_string(json_object_get(o, keys[i])), "no \"%s\": %s", keys[i], line);
        cr_assert(json_is_integer(json_object_get(o, "pid")), "%s", line);
        regex_t re;
        regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$",
                REG_EXTENDED | REG_NOSUB);
        cr_assert_eq(regexec(&re, json_string_value(json_object_get(o, "time")), 0, NULL, 0), 0,
                     "%s", line);
        regfree(&re);
        json_t *counters = json_object_get(o, "counters");
        if (counters) {
            stopped = true;
            cr_assert(json_is_integer(json_object_get(counters, "delivered")), "%s", line);
            cr_assert(json_is_integer(json_object_get(counters, "refused")), "%s", line);
            cr_assert_str_eq(json_string_value(json_object_get(o, "event")), "stopped");
        }
        json_decref(o);
        lines++;
    }
    free(copy);
    cr_assert_geq(lines, 3, "%s", c.out);
    cr_assert(stopped, "the stop line carries the counters:\n%s", c.out);
}

Test(operations, on_the_journal_lines_have_priorities_and_no_time) {
    udp_config(pu_free_port(), "");
    child c;
    start(&c, NULL, 1);
    cr_assert_not_null(pu_expect(&c, "<6>core: router started", 10), "%s", c.out);
    cr_assert_eq(stop(&c), 0, "%s", c.out);
    cr_assert_not_null(strstr(c.out, "<4>o2hub: stopped;"), "%s", c.out);
    assert_every_line(&c, "^<[0-7]>[a-z0-9_]+: ");
}

Test(operations, another_stream_in_journal_stream_is_not_the_journal) {
    udp_config(pu_free_port(), "");
    child c;
    start(&c, NULL, -1);
    cr_assert_not_null(pu_expect(&c, "router started", 10), "%s", c.out);
    cr_assert_eq(stop(&c), 0, "%s", c.out);
    cr_assert_null(strstr(c.out, "<6>"), "%s", c.out);
    assert_every_line(&c, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T");
}

/* A datagram that is no O2 message, from `ip` (any of 127.0.0.0/8). */
static void send_junk(const char *ip, int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in from = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &from.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&from, sizeof from), 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    const char junk[] = "this is not an O2 message";
    cr_assert_eq(sendto(fd, junk, sizeof junk, 0, (struct sockaddr *)&to, sizeof to),
                 (ssize_t)sizeof junk);
    close(fd);
}

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

Test(operations, sighup_applies_a_good_config_and_keeps_the_old_one_for_a_bad_one) {
    int port = pu_free_port();
    udp_config(port, "");
    child c;
    start(&c, NULL, 0);
    cr_assert_not_null(pu_expect(&c, "router started", 10), "%s", c.out);
    /* A reload with no change says so. */
    kill(c.pid, SIGHUP);
    cr_assert_not_null(pu_expect(&c, "reloaded ", 10), "%s", c.out);
    cr_assert_not_null(strstr(c.out, ": 0 changes"), "%s", c.out);

    /* Good: debug lines now, only 127.0.0.1 may send, and a restart named for the port. */
    write_config("{\"ensemble\": \"ops\", \"log_level\": \"debug\",\n"
                 " \"allow\": [\"127.0.0.1/32\"],\n"
                 " \"transports\": [{\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}]}\n",
                 port == 65535 ? port - 1 : port + 1);
    kill(c.pid, SIGHUP);
    cr_assert_not_null(pu_expect(&c, "reload: log_level: debug (was info)", 10), "%s", c.out);
    cr_assert_not_null(pu_expect(&c, "reload: allow: now 127.0.0.1/32", 10), "%s", c.out);
    cr_assert_not_null(pu_expect(&c,
                                 "reload: transports[0]: transports \"udp\" changed: needs a "
                                 "restart",
                                 10),
                       "%s", c.out);
    cr_assert_not_null(pu_expect(&c, "reloaded ", 10), "%s", c.out);
    send_junk("127.0.0.1", port);
    cr_assert_not_null(pu_expect(&c, "debug udp: dropped malformed message", 10),
                       "the new level shows debug lines:\n%s", c.out);
    send_junk("127.0.0.2", port);
    cr_assert_not_null(pu_expect(&c, "refused a UDP datagram from 127.0.0.2: not in \"allow\"", 10),
                       "the new allow list refuses 127.0.0.2:\n%s", c.out);

    /* Bad: refused with where and why; the running config stays. */
    write_config("{\"ensemble\": \"ops\", \"log_level\": \"info\",\n"
                 " \"allow\": [\"not a network\"]}\n");
    kill(c.pid, SIGHUP);
    const char *line = pu_expect(&c, "refused, the running config stays", 10);
    cr_assert_not_null(line, "%s", c.out);
    char where[200];
    snprintf(where, sizeof where, "%s:2:12: allow[0]: \"not a network\" is not a network",
             cfg_path);
    cr_assert_not_null(strstr(line, where), "names %s:\n%s", where, c.out);
    send_junk("127.0.0.1", port);
    cr_assert_not_null(pu_expect(&c, "debug udp: dropped malformed message", 10),
                       "still at debug:\n%s", c.out);
    send_junk("127.0.0.2", port); /* still refused: counted (its log line is rate-limited) */
    send_junk("127.0.0.1", port);
    cr_assert_not_null(pu_expect(&c, "debug udp: dropped malformed message", 10), "%s", c.out);
    cr_assert_eq(stop(&c), 0, "%s", c.out);
    cr_assert_not_null(strstr(c.out, "dropped_invalid 3,"), "%s", c.out);
    cr_assert_not_null(strstr(c.out, "refused 2,"), "%s", c.out);
    cr_assert_eq(count(c.out, "reload: allow"), 1, "%s", c.out);
}

/*
 * In a mount namespace of its own (root only: else the test is skipped),
 * with a tmpfs on /dev, this process binds /dev/log, runs the daemon with
 * --log-syslog, stops it by its PID once "router started" has come, and
 * writes every datagram it got as one line to `out_fd`, then "exit N".
 */
static void run_with_own_syslog(int out_fd) {
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("none", "/dev", "tmpfs", 0, NULL) != 0) {
        dprintf(out_fd, "skip: no mount namespace (%s)\n", strerror(errno));
        _exit(0);
    }
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "/dev/log"};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0) _exit(3);
    pid_t d = fork();
    if (d == 0) {
        dup2(out_fd, 1);
        dup2(out_fd, 2);
        setenv("O2HUB_PLUGIN_PATH", TRANSPORT_PLUGIN_DIR, 1);
        execl(O2HUB_EXE, O2HUB_EXE, "--config", cfg_path, "--log-syslog", (char *)NULL);
        _exit(127);
    }
    bool stopping = false;
    int status = -1;
    for (double end = pu_now() + 20; pu_now() < end;) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, 50) == 1) {
            char dgram[2048];
            ssize_t n = recv(s, dgram, sizeof dgram - 1, 0);
            if (n > 0) {
                dgram[n] = '\0';
                dprintf(out_fd, "syslog %s\n", dgram);
                if (!stopping && strstr(dgram, "router started")) {
                    kill(d, SIGTERM);
                    stopping = true;
                }
            }
            continue;
        }
        int st;
        if (waitpid(d, &st, WNOHANG) == d) {
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
    }
    if (status < 0) kill(d, SIGKILL);
    dprintf(out_fd, "exit %d\n", status);
    _exit(0);
}

Test(operations, log_syslog_sends_every_line_to_dev_log) {
    udp_config(pu_free_port(), "");
    int out[2];
    cr_assert_eq(pipe(out), 0);
    child c = {.status = -1};
    c.pid = fork();
    cr_assert(c.pid >= 0);
    if (c.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(out[0]);
        run_with_own_syslog(out[1]);
    }
    close(out[1]);
    c.out_fd = out[0];
    cr_assert_eq(pu_wait(&c, 30), 0, "%s", c.out);
    close(c.out_fd);
    if (strncmp(c.out, "skip:", 5) == 0) cr_skip_test("%s", c.out);
    cr_assert_not_null(strstr(c.out, "exit 0\n"), "%s", c.out);
    /* LOG_DAEMON (3 << 3) with info (6) and warning (4) */
    cr_assert_not_null(strstr(c.out, "syslog <30>"), "%s", c.out);
    cr_assert(strstr(c.out, "o2hub[") && strstr(c.out, "]: core: router started"), "%s", c.out);
    cr_assert_not_null(strstr(c.out, "syslog <28>"), "%s", c.out);
    cr_assert_not_null(strstr(c.out, ": o2hub: stopped; delivered 0"), "%s", c.out);
    char *copy = strdup(c.out), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        cr_assert(strncmp(line, "syslog <", 8) == 0 || strncmp(line, "exit ", 5) == 0,
                  "only syslog, nothing on stderr: %s", line);
    free(copy);
}
