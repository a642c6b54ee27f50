#include "osc_helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double now_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int free_port(int type) {
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

o2h_router *osc_router(const char *osc_json) {
    return osc_router_logged(osc_json, NULL, NULL);
}

o2h_router *osc_router_logged(const char *osc_json, o2h_log_fn log, void *log_ctx) {
    char json[4096];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"osctest\", \"clock\": {\"reference\": true},"
             " \"plugin_path\": [\"%s\"], \"transports\": [{\"type\": \"osc\", %s}]}",
             TRANSPORT_DIR, osc_json);
    o2h_router_options o = {.struct_size = sizeof o,
                            .log_level = log ? O2H_LOG_DEBUG : O2H_LOG_WARN,
                            .log = log,
                            .log_ctx = log_ctx};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "osc-test", &o, &err);
    if (!r) {
        fprintf(stderr, "router: %s (%s)\n", err.message, err.key_path);
        return NULL;
    }
    if (o2h_router_start(r) != O2H_OK) {
        o2h_router_free(r);
        return NULL;
    }
    return r;
}

bool poll_until(o2h_router *r, const int *counter, int want, double limit_s) {
    double end = now_mono() + limit_s;
    while (*counter < want && now_mono() < end)
        o2h_router_poll(r, 5);
    return *counter >= want;
}

uint64_t invalid_count(o2h_router *r) {
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    return st.dropped_invalid;
}

bool poll_invalid(o2h_router *r, uint64_t want, double limit_s) {
    double end = now_mono() + limit_s;
    while (invalid_count(r) < want && now_mono() < end)
        o2h_router_poll(r, 5);
    return invalid_count(r) >= want;
}

void child_spawn(child *c, char *const argv[]) {
    int fds[2];
    if (pipe(fds) != 0) abort();
    memset(c, 0, sizeof *c);
    c->pid = fork();
    if (c->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    c->out = fds[0];
    fcntl(c->out, F_SETFL, O_NONBLOCK);
}

static void child_read(child *c) {
    for (;;) {
        if (c->used + 1 >= sizeof c->buf) return;
        ssize_t n = read(c->out, c->buf + c->used, sizeof c->buf - 1 - c->used);
        if (n <= 0) return;
        c->used += (size_t)n;
        c->buf[c->used] = '\0';
    }
}

bool child_line(child *c, o2h_router *r, const char *needle, double limit_s, char *line,
                size_t size) {
    double end = now_mono() + limit_s;
    for (;;) {
        child_read(c);
        const char *at = strstr(c->buf + c->seen, needle);
        const char *eol = at ? strchr(at, '\n') : NULL;
        if (eol) {
            const char *bol = at;
            while (bol > c->buf + c->seen && bol[-1] != '\n')
                bol--;
            size_t n = (size_t)(eol - bol) < size - 1 ? (size_t)(eol - bol) : size - 1;
            memcpy(line, bol, n);
            line[n] = '\0';
            c->seen = (size_t)(eol + 1 - c->buf);
            return true;
        }
        if (now_mono() >= end) return false;
        if (r)
            o2h_router_poll(r, 2);
        else
            usleep(2000);
    }
}

int child_wait(child *c, o2h_router *r, double limit_s) {
    double end = now_mono() + limit_s;
    for (;;) {
        int status;
        pid_t p = waitpid(c->pid, &status, WNOHANG);
        if (p == c->pid) {
            child_read(c);
            close(c->out);
            c->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (now_mono() >= end) return -1;
        if (r)
            o2h_router_poll(r, 2);
        else
            usleep(2000);
    }
}

void child_kill(child *c) {
    if (c->pid <= 0) return;
    kill(c->pid, SIGTERM);
    waitpid(c->pid, NULL, 0);
    close(c->out);
    c->pid = 0;
}
