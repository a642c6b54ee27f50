/*
 * Shared parts of the network benchmarks: two o2hub processes (this one and
 * a forked child) on 127.0.0.1 with the tcp, udp and static plugins, and raw
 * socket baselines that carry the same bytes with no router at all.
 */
#include "netbench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "port_util.h"

double nb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A port free for TCP and UDP now: routers here bind both on it. */
int nb_free_port(void) {
    return pu_free_port();
}

o2h_router *nb_router(int port, int peer_port) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"bench\", \"plugin_path\": [\"%s\", \"%s\"],"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},"
             "  {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],"
             " \"discovery\": [{\"type\": \"static\", \"peers\": [\"127.0.0.1:%d\"]}]}",
             NB_TRANSPORT_DIR, NB_DISCOVERY_DIR, port, port, peer_port);
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "bench", &o, &err);
    if (!r) {
        fprintf(stderr, "bench: %s\n", err.message);
        exit(1);
    }
    if (o2h_router_start(r) != O2H_OK) exit(1);
    return r;
}

bool nb_wait_service(o2h_router *r, const char *service, double limit_s) {
    double end = nb_now() + limit_s;
    while (o2h_status(r, service) < 0 && nb_now() < end)
        o2h_router_poll(r, 10);
    return o2h_status(r, service) >= 0;
}

/* ---- raw sockets ---- */

int nb_tcp_listen(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    listen(fd, 4);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

int nb_tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    while (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        usleep(1000);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int nb_udp_bind(int *port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

bool nb_read_full(int fd, void *buf, size_t len) {
    uint8_t *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n <= 0) return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* ---- other processes ---- */

/* schedstat's second field: ns waiting for a CPU while runnable. */
double nb_proc_wait_s(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    unsigned long long on_cpu = 0, waited = 0;
    int ok = fscanf(f, "%llu %llu", &on_cpu, &waited) == 2;
    fclose(f);
    return ok ? (double)waited * 1e-9 : -1;
}

/* CPU time of a process in seconds (schedstat: ns on the CPU), or -1. */
double nb_proc_cpu_s(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned long long ns = 0;
        int ok = fscanf(f, "%llu", &ns) == 1;
        fclose(f);
        if (ok) return (double)ns * 1e-9;
    }
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f) return -1;
    char buf[1024];
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
     */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void nb_choose_cpus(bool one_cpu, int *first, int *second) {
    *first = *second = -1;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        if (*first < 0)
            *first = *second = cpu;
        else if (!one_cpu) {
            *second = cpu;
            return;
        }
    }
}

void nb_pin_to(int cpu) {
    if (cpu < 0) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) perror("sched_setaffinity (left unpinned)");
}

long nb_proc_rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    fclose(f);
    return kb;
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double nb_percentile(double *values, int n, double q) {
    qsort(values, (size_t)n, sizeof *values, cmp_double);
    int i = (int)(q * (n - 1) + 0.5);
    return values[i];
}
