/*
 * Helpers for e2e tests that run programs as child processes: spawn with
 * extra environment variables, collect stdout+stderr, wait (bounded) for a
 * line or for the exit. Header-only; each test file includes it once.
 */
#ifndef O2H_TEST_PROC_UTIL_H
#define O2H_TEST_PROC_UTIL_H

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

#include "port_util.h"

typedef struct child {
    pid_t pid;
    int out_fd;
    FILE *in;
    char out[1 << 17];
    size_t used;
    size_t seen;
    int status; /* exit status once reaped, -1 before */
} child;

static inline double pu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Start argv[0] with `env` ("NAME=value" strings, NULL-terminated, may be
 * NULL) added to the environment. stdin is a pipe (c->in) when want_stdin.
 */
static inline void pu_spawn(child *c, char *const argv[], const char *const *env, bool want_stdin) {
    int out[2], in[2] = {-1, -1};
    cr_assert_eq(pipe(out), 0);
    if (want_stdin) cr_assert_eq(pipe(in), 0);
    memset(c, 0, sizeof *c);
    c->status = -1;
    c->pid = fork();
    cr_assert(c->pid >= 0);
    if (c->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        if (want_stdin) {
            dup2(in[0], 0);
            close(in[1]);
        } else {
            int null = open("/dev/null", O_RDONLY);
            dup2(null, 0);
        }
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(out[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    c->out_fd = out[0];
    if (want_stdin) {
        close(in[0]);
        c->in = fdopen(in[1], "w");
    }
}

/* Read what is available, waiting at most `ms`. Returns false at EOF. */
static inline bool pu_read(child *c, int ms) {
    struct pollfd p = {.fd = c->out_fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0) return true;
    ssize_t n = read(c->out_fd, c->out + c->used, sizeof c->out - 1 - c->used);
    if (n <= 0) return false;
    c->used += (size_t)n;
    c->out[c->used] = '\0';
    return true;
}

/* Wait (bounded) for `needle` after what was matched before; the line it is on, or NULL. */
static inline const char *pu_expect(child *c, const char *needle, double limit_s) {
    double end = pu_now() + limit_s;
    for (;;) {
        const char *at = strstr(c->out + c->seen, needle);
        if (at) {
            const char *eol = strchr(at, '\n');
            c->seen = eol ? (size_t)(eol - c->out) + 1 : c->used;
            const char *bol = at;
            while (bol > c->out && bol[-1] != '\n')
                bol--;
            return bol;
        }
        double left = end - pu_now();
        if (left <= 0) return NULL;
        if (!pu_read(c, (int)(left * 1000) + 1) && !strstr(c->out + c->seen, needle)) return NULL;
    }
}

/* Wait (bounded) for the exit; collects the rest of the output. Returns the status or -1. */
static inline int pu_wait(child *c, double limit_s) {
    double end = pu_now() + limit_s;
    while (c->status < 0) {
        int st;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            c->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (pu_now() > end) return -1;
        pu_read(c, 20);
    }
    double drain_end = pu_now() + 2; /* the rest of the output, up to EOF */
    while (pu_now() < drain_end && c->used < sizeof c->out - 1 && pu_read(c, 50)) {
    }
    return c->status;
}

static inline void pu_kill(child *c) {
    if (c->pid > 0 && c->status < 0) {
        kill(c->pid, SIGTERM);
        if (pu_wait(c, 5) < 0) {
            kill(c->pid, SIGKILL);
            pu_wait(c, 5);
        }
    }
    if (c->in) fclose(c->in);
    c->in = NULL;
    if (c->out_fd > 0) close(c->out_fd);
    c->out_fd = -1;
}

static inline void pu_tell(child *c, const char *line) {
    fprintf(c->in, "%s\n", line);
    fflush(c->in);
}

#endif
