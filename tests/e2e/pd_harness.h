/*
 * pd_harness.h — what a test of the Pd external needs: child processes
 * (headless pd, o2ctl) whose stdout and stderr it reads, bounded waits for a
 * line of their output, a free loopback port and patches written from code.
 * Static functions in a header, so that each Pd test is one executable with
 * no library of its own. The including file defines PD_EXE, PD_EXTERNAL_DIR,
 * PD_PRELOAD, O2CTL_EXE, TRANSPORT_DIR and DISCOVERY_DIR (meson's c_args).
 */
#ifndef O2HUB_TESTS_PD_HARNESS_H
#define O2HUB_TESTS_PD_HARNESS_H

#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

typedef struct pdh_proc {
    pid_t pid;
    int fd; /* stdout and stderr together */
    char out[1 << 16];
    size_t used;
} pdh_proc;

#define PDH_MAX_RUNNING 8

static pdh_proc *pdh_running[PDH_MAX_RUNNING];
static int pdh_failures;

static inline double pdh_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* SIGTERM, then SIGKILL after 3 s; by PID only. */
static inline void pdh_stop(pdh_proc *p) {
    if (p->pid <= 0) return;
    kill(p->pid, SIGTERM);
    double end = pdh_now() + 3;
    int st;
    while (waitpid(p->pid, &st, WNOHANG) == 0) {
        if (pdh_now() > end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            break;
        }
        usleep(10000);
    }
    p->pid = 0;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
}

static inline void pdh_stop_all(void) {
    for (int i = 0; i < PDH_MAX_RUNNING; i++)
        if (pdh_running[i]) pdh_stop(pdh_running[i]);
}

/* One TAP-style line; a failed check counts. */
static inline void pdh_check(bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s - ", ok ? "ok" : "not ok");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (!ok) pdh_failures++;
}

static inline void pdh_spawn(pdh_proc *p, char *const argv[]) {
    int fds[2];
    if (pipe(fds) != 0) exit(1);
    memset(p, 0, sizeof *p);
    p->pid = fork();
    if (p->pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        setenv("O2HUB_PLUGIN_PATH", TRANSPORT_DIR ":" DISCOVERY_DIR, 1);
        if (PD_PRELOAD[0] && strcmp(argv[0], PD_EXE) == 0) {
            /* sanitizer build: pd is not instrumented, so its runtimes go first */
            setenv("LD_PRELOAD", PD_PRELOAD, 1);
            setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    p->fd = fds[0];
    for (int i = 0; i < PDH_MAX_RUNNING; i++)
        if (!pdh_running[i]) {
            pdh_running[i] = p;
            break;
        }
}

/* Read what is there within `ms`; false at the end of the output. */
static inline bool pdh_drain(pdh_proc *p, int ms) {
    if (p->fd < 0) return false;
    struct pollfd pf = {.fd = p->fd, .events = POLLIN};
    if (poll(&pf, 1, ms) <= 0) return true;
    ssize_t n = read(p->fd, p->out + p->used, sizeof p->out - 1 - p->used);
    if (n <= 0) return false;
    p->used += (size_t)n;
    p->out[p->used] = 0;
    return true;
}

/* Wait at most `limit` seconds for `needle` in p's output. */
static inline const char *pdh_expect(pdh_proc *p, const char *needle, double limit) {
    double end = pdh_now() + limit;
    for (;;) {
        const char *hit = strstr(p->out, needle);
        if (hit) return hit;
        if (pdh_now() > end) return NULL;
        if (!pdh_drain(p, 50)) return strstr(p->out, needle);
    }
}

/* Run to completion (at most `limit` s): the exit status, -1 on timeout. */
static inline int pdh_run(pdh_proc *p, char *const argv[], double limit) {
    pdh_spawn(p, argv);
    double end = pdh_now() + limit;
    int st;
    while (waitpid(p->pid, &st, WNOHANG) == 0) {
        pdh_drain(p, 20);
        if (pdh_now() > end) {
            pdh_stop(p);
            return -1;
        }
    }
    while (pdh_drain(p, 0) && p->fd >= 0) {
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        if (poll(&pf, 1, 0) <= 0) break;
    }
    p->pid = 0;
    close(p->fd);
    p->fd = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A loopback port free for both TCP and UDP (the transports bind both). */
static inline int pdh_free_port(void) {
    for (int tries = 0; tries < 50; tries++) {
        int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        bool ok = bind(u, (struct sockaddr *)&a, sizeof a) == 0 &&
                  getsockname(u, (struct sockaddr *)&a, &len) == 0 &&
                  bind(t, (struct sockaddr *)&a, sizeof a) == 0;
        close(u);
        close(t);
        if (ok) return ntohs(a.sin_port);
    }
    return -1;
}

/* ---- Patches ------------------------------------------------------------- */

typedef struct pdh_patch {
    char text[8192];
    size_t len;
    int n; /* objects so far: the next one's index */
} pdh_patch;

/* Append "#X KIND x y ARGS;" and return the object's index. */
static inline int pdh_obj(pdh_patch *p, const char *kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len, "#X %s 10 %d ", kind,
                               10 + 30 * p->n);
    p->len += (size_t)vsnprintf(p->text + p->len, sizeof p->text - p->len, fmt, ap);
    p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len, ";\n");
    va_end(ap);
    return p->n++;
}

static inline void pdh_wire(pdh_patch *p, int from, int outlet, int to, int inlet) {
    p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len,
                               "#X connect %d %d %d %d;\n", from, outlet, to, inlet);
}

/* [print NAME] on `from`'s outlet; its index. */
static inline int pdh_print(pdh_patch *p, int from, int outlet, const char *name) {
    int pr = pdh_obj(p, "obj", "print %s", name);
    pdh_wire(p, from, outlet, pr, 0);
    return pr;
}

static inline bool pdh_write_patch(const char *path, const pdh_patch *p) {
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fprintf(f, "#N canvas 0 0 800 1200 12;\n%s", p->text);
    return fclose(f) == 0;
}

/* Headless pd with the built external on its path, opening `patch_path`. */
static inline void pdh_start_pd(pdh_proc *p, const char *patch_path) {
    char *argv[] = {PD_EXE,  "-nogui",        "-noaudio", "-stderr",          "-noprefs", "-nrt",
                    "-path", PD_EXTERNAL_DIR, "-open",    (char *)patch_path, NULL};
    pdh_spawn(p, argv);
}

/* o2ctl -e ENSEMBLE -H 127.0.0.1 ARGS...: run it (limit > 0 s) or start it (limit <= 0). */
static inline int pdh_o2ctl(pdh_proc *p, const char *ensemble, double limit,
                            const char *const *args) {
    char *argv[40] = {O2CTL_EXE, "-e", (char *)ensemble, "-H", "127.0.0.1"};
    int n = 5;
    for (int i = 0; args[i] && n < 39; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    if (limit <= 0) {
        pdh_spawn(p, argv);
        return 0;
    }
    return pdh_run(p, argv, limit);
}

#endif
