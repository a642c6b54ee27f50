/* What the Pd e2e tests share (see pd_harness.h). */
#include "pd_harness.h"
#include "port_util.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int failures;
char tmpdir[64];
static proc *running[16];

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void check(bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s - ", ok ? "ok" : "not ok");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (!ok) failures++;
}

static void closed(proc *p) {
    p->pid = 0;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    if (p->in) fclose(p->in);
    p->in = NULL;
}

static void reap(proc *p, int sig, double limit) {
    if (p->pid <= 0) return;
    kill(p->pid, sig);
    double end = now_s() + limit;
    int st;
    while (waitpid(p->pid, &st, WNOHANG) == 0) {
        if (now_s() > end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            break;
        }
        drain(p, 10);
    }
    while (drain(p, 0) && p->fd >= 0) { /* the rest of its output */
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        if (poll(&pf, 1, 0) <= 0) break;
    }
    closed(p);
}

void stop(proc *p) {
    reap(p, SIGTERM, 3);
}

void kill_hard(proc *p) {
    reap(p, SIGKILL, 3);
}

static void stop_all(void) {
    for (int i = 0; i < 16; i++)
        if (running[i]) stop(running[i]);
}

void spawn_with(proc *p, char *const argv[], bool want_stdin, bool netns) {
    static bool registered;
    if (!registered) atexit(stop_all);
    registered = true;
    int fds[2], in[2] = {-1, -1};
    if (pipe(fds) != 0 || (want_stdin && pipe(in) != 0)) exit(1);
    memset(p, 0, sizeof *p);
    p->pid = fork();
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        if (netns && (unshare(CLONE_NEWNET) != 0 || loopback_up() != 0)) _exit(126);
        if (want_stdin) {
            dup2(in[0], 0);
            close(in[1]);
        }
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        setenv("O2HUB_PLUGIN_PATH", TRANSPORT_DIR ":" DISCOVERY_DIR, 1);
        if (PD_PRELOAD[0] && strcmp(argv[0], PD_EXE) == 0) {
            /* sanitizer build: its runtimes first; Pd itself frees little at exit */
            setenv("LD_PRELOAD", PD_PRELOAD, 1);
            setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    p->fd = fds[0];
    if (want_stdin) {
        close(in[0]);
        p->in = fdopen(in[1], "w");
    }
    for (int i = 0; i < 16; i++)
        if (running[i] == p) return;
    for (int i = 0; i < 16; i++)
        if (!running[i]) {
            running[i] = p;
            return;
        }
}

void spawn(proc *p, char *const argv[]) {
    spawn_with(p, argv, false, false);
}

bool drain(proc *p, int ms) {
    if (p->fd < 0) return false;
    struct pollfd pf = {.fd = p->fd, .events = POLLIN};
    if (poll(&pf, 1, ms) <= 0) return true;
    ssize_t n = read(p->fd, p->out + p->used, sizeof p->out - 1 - p->used);
    if (n <= 0) return false;
    p->used += (size_t)n;
    p->out[p->used] = 0;
    return true;
}

static const char *expect_from(proc *p, size_t from, const char *needle, double limit) {
    double end = now_s() + limit;
    for (;;) {
        const char *hit = strstr(p->out + from, needle);
        if (hit || now_s() > end) return hit;
        if (!drain(p, 50)) return strstr(p->out + from, needle);
    }
}

const char *expect(proc *p, const char *needle, double limit) {
    return expect_from(p, 0, needle, limit);
}

const char *expect_next(proc *p, const char *needle, double limit) {
    const char *hit = expect_from(p, p->seen, needle, limit);
    if (hit) p->seen = (size_t)(hit - p->out) + strlen(needle);
    return hit;
}

int run(proc *p, char *const argv[], double limit) {
    spawn(p, argv);
    double end = now_s() + limit;
    int st;
    while (waitpid(p->pid, &st, WNOHANG) == 0) {
        drain(p, 20);
        if (now_s() > end) {
            stop(p);
            return -1;
        }
    }
    while (drain(p, 0) && p->fd >= 0) {
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        if (poll(&pf, 1, 0) <= 0) break;
    }
    closed(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void tell(proc *p, const char *fmt, ...) {
    if (!p->in) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->in, fmt, ap);
    va_end(ap);
    fputc('\n', p->in);
    fflush(p->in);
}

int free_port(void) {
    return pu_free_port();
}

void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pd-test-XXXXXX");
    if (!mkdtemp(tmpdir)) exit(1);
}

void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) failures++;
}

void write_file(char *path, size_t size, const char *name, const char *text) {
    snprintf(path, size, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) exit(1);
    fputs(text, f);
    fclose(f);
}

/* ---- Patches ----------------------------------------------------------------- */

int obj(patch *p, const char *kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len, "#X %s 10 %d ", kind,
                               10 + 30 * p->n);
    p->len += (size_t)vsnprintf(p->text + p->len, sizeof p->text - p->len, fmt, ap);
    p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len, ";\n");
    va_end(ap);
    return p->n++;
}

void wire(patch *p, int from, int outlet, int to, int inlet) {
    p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len,
                               "#X connect %d %d %d %d;\n", from, outlet, to, inlet);
}

int receive_print(patch *p, const char *path_args, const char *name) {
    int r = obj(p, "obj", "o2receive %s", path_args);
    int pr = obj(p, "obj", "print %s", name);
    int pt = obj(p, "obj", "print %s_T", name);
    wire(p, r, 0, pr, 0);
    wire(p, r, 1, pt, 0);
    return r;
}

int status_print(patch *p, const char *service, const char *name) {
    int st = obj(p, "obj", "o2.status %s", service);
    wire(p, st, 0, obj(p, "obj", "print %s", name), 0);
    return st;
}

void answer_peer(patch *p, const char *svc, const char *peer_svc) {
    /* (reply address, n) -> address $1, then (n + 1, pd) */
    int ping = obj(p, "obj", "o2receive /%s/ping", svc);
    wire(p, ping, 0, obj(p, "obj", "print PING"), 0);
    int tll = obj(p, "obj", "t l l");
    int split_addr = obj(p, "obj", "list split 1");
    int addr = obj(p, "msg", "address \\$1");
    int split_n = obj(p, "obj", "list split 1");
    int plus = obj(p, "obj", "+ 1");
    int pd = obj(p, "obj", "list append pd");
    int reply = obj(p, "obj", "o2send -t is");
    wire(p, ping, 0, tll, 0);
    wire(p, tll, 1, split_addr, 0);
    wire(p, split_addr, 0, addr, 0);
    wire(p, addr, 0, reply, 0);
    wire(p, tll, 0, split_n, 0);
    wire(p, split_n, 1, plus, 0);
    wire(p, plus, 0, pd, 0);
    wire(p, pd, 0, reply, 0);
    /* the peer's service is there (again): ask it something */
    int st = status_print(p, peer_svc, "STATUS");
    int moses = obj(p, "obj", "moses 0");
    int ask = obj(p, "msg", "/%s/pong 100", svc);
    int to_peer = obj(p, "obj", "o2send /%s/ping -t si", peer_svc);
    wire(p, st, 0, moses, 0);
    wire(p, moses, 1, ask, 0);
    wire(p, ask, 0, to_peer, 0);
    char pong[64];
    snprintf(pong, sizeof pong, "/%s/pong", svc);
    receive_print(p, pong, "PONG");
}

void write_patch(char *path, size_t size, const char *name, const patch *p) {
    snprintf(path, size, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) exit(1);
    fprintf(f, "#N canvas 0 0 800 1200 12;\n%s", p->text);
    fclose(f);
}

void start_pd(proc *p, const char *patch_path) {
    char *argv[] = {PD_EXE,  "-nogui",        "-noaudio", "-stderr",          "-noprefs", "-nrt",
                    "-path", PD_EXTERNAL_DIR, "-open",    (char *)patch_path, NULL};
    spawn(p, argv);
}

int o2ctl_in(const char *ensemble, proc *p, double limit, const char *const *args) {
    char *argv[40] = {O2CTL_EXE, "-e", (char *)ensemble, "-H", "127.0.0.1"};
    int n = 5;
    for (int i = 0; args[i] && n < 39; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    if (limit > 0) return run(p, argv, limit);
    spawn(p, argv);
    return 0;
}
