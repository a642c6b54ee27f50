/*
 * bench/ensemble — what an ensemble of N o2hub processes on one machine
 * costs: N processes (forked, each an embedded router with the tcp and udp
 * transports on 127.0.0.1) find each other by static or broadcast discovery
 * (and dnssd through avahi-daemon: the machine's, or one of its own, below)
 * and form O2's full mesh: every pair
 * holds a TCP connection, and every process synchronises its clock with
 * process 0 (the reference). Measured from this (coordinating, router-less)
 * process:
 *   mesh_s     from the first fork until every process sees every other's
 *              service (status known);
 *   synced_s   until every process sees every other's service as REMOTE
 *              (both clocks synchronised);
 *   rss_kb     VmRSS of each process once idle (median and largest);
 *   cpu_pct    CPU time of each process over an idle window (10 s), as a
 *              percentage of one core (/proc/PID/schedstat), median and largest;
 *   clock_s    clock-sync messages per second per process in that window
 *              (pings to the reference's _cs service and their replies);
 *   net_s      every message a process's tcp and udp links carried per
 *              second in that window (clock sync and discovery repeats);
 *   disc_s     discovery datagrams the discovery plugin took per second.
 * One line per configuration:
 *   ENSEMBLE discovery=D n=N formed=1 mesh_s=X synced_s=X rss_kb=X rss_kb_max=X
 *            cpu_pct=X cpu_pct_max=X clock_s=X net_s=X disc_s=X
 * Exits 1 when an ensemble did not form.
 * Usage: ensemble [--quick] [--discovery static|broadcast|dnssd]... [N]...
 *   (default: N = 8 16 32 64, static, broadcast and dnssd; --quick: N = 8,
 *   a 2 s window)
 * dnssd needs an avahi-daemon. Where none runs, bench/private_avahi starts a
 * private dbus and avahi-daemon for the dnssd ensembles (lo only, in a network
 * namespace of their own, as the DNS-SD tests run them; root) and stops them
 * after; where it cannot, dnssd is skipped, with the reason.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <o2hub/o2hub.h>

#include "netbench.h"

#define MAX_N 256
#define FORM_LIMIT_S 60.0

/* What a child writes to its report pipe. */
enum { REP_MESH = 1, REP_SYNCED, REP_COUNTS, REP_GAVE_UP };
typedef struct report {
    int kind, index;
    double t;                            /* REP_MESH, REP_SYNCED: when (CLOCK_MONOTONIC) */
    int seen;                            /* REP_GAVE_UP: how many others it saw */
    double net_msgs, disc_msgs, cs_msgs; /* REP_COUNTS */
} report;

/* The child's router, for its signal handlers (one router per child process). */
static o2h_router *child_router;
static volatile sig_atomic_t counts_wanted, stop_wanted;

static void on_term(int sig) {
    (void)sig;
    stop_wanted = 1;
    if (child_router) o2h_router_wake(child_router);
}

static void on_usr1(int sig) {
    (void)sig;
    counts_wanted = 1;
    if (child_router) o2h_router_wake(child_router);
}

static char *config_json(const char *discovery, const char *ensemble, int i, int n,
                         const int *ports) {
    size_t size = 1024 + (size_t)n * 32;
    char *json = malloc(size);
    if (!json) exit(1);
    int len =
        snprintf(json, size,
                 "{\"ensemble\": \"%s\", \"plugin_path\": [\"%s\", \"%s\"],"
                 " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},"
                 "  {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],"
                 " \"discovery\": [{\"type\": \"%s\"",
                 ensemble, NB_TRANSPORT_DIR, NB_DISCOVERY_DIR, ports[i], ports[i], discovery);
    if (strcmp(discovery, "static") == 0) {
        len += snprintf(json + len, size - (size_t)len, ", \"peers\": [");
        for (int j = 0, first = 1; j < n; j++) {
            if (j == i) continue;
            len += snprintf(json + len, size - (size_t)len, "%s\"127.0.0.1:%d\"", first ? "" : ",",
                            ports[j]);
            first = 0;
        }
        len += snprintf(json + len, size - (size_t)len, "]");
    }
    snprintf(json + len, size - (size_t)len, "}]}");
    return json;
}

static void child_write(int fd, const report *rep) {
    (void)!write(fd, rep, sizeof *rep); /* < PIPE_BUF: atomic */
}

/* How many of the others this process sees (status known, or REMOTE when `synced`). */
static int others_seen(o2h_router *r, int i, int n, bool synced) {
    int seen = 0;
    for (int j = 0; j < n; j++) {
        if (j == i) continue;
        char name[16];
        snprintf(name, sizeof name, "m%d", j);
        int st = o2h_status(r, name);
        if (synced ? st == O2H_STATUS_REMOTE : st >= 0) seen++;
    }
    return seen;
}

/* Sum the counters of the stats text: tcp/udp links' messages in and out,
 * discovery plugins' datagrams in, and messages routed to the clock service. */
static void child_counts(o2h_router *r, report *rep) {
    static char buf[1 << 16];
    static const char cs_line[] = "o2hub_service_routed{service=\"_cs\"} ";
    o2h_router_stats_text(r, buf, sizeof buf);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        bool in = strncmp(line, "o2hub_plugin_received{", 22) == 0;
        bool out = strncmp(line, "o2hub_plugin_forwarded{", 23) == 0;
        const char *sp = strrchr(line, ' ');
        double v = sp ? atof(sp + 1) : 0;
        if (in || out) {
            bool net = strstr(line, "plugin=\"tcp\"") || strstr(line, "plugin=\"udp\"");
            if (net)
                rep->net_msgs += v;
            else if (in)
                rep->disc_msgs += v;
        } else if (strncmp(line, cs_line, strlen(cs_line)) == 0) {
            rep->cs_msgs += v;
        }
    }
}

static void child(const char *discovery, const char *ensemble, int i, int n, const int *ports,
                  int rep_fd) {
    signal(SIGTERM, on_term);
    signal(SIGUSR1, on_usr1);
    char *json = config_json(discovery, ensemble, i, n, ports);
    /* ENSEMBLE_DEBUG: each process says what it saw, and logs at debug level. */
    o2h_router_options o = {.struct_size = sizeof o,
                            .log_level = getenv("ENSEMBLE_DEBUG") ? O2H_LOG_DEBUG : O2H_LOG_ERROR};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "ensemble", &o, &err);
    free(json);
    if (!r) {
        fprintf(stderr, "ensemble[%d]: %s\n", i, err.message);
        _exit(1);
    }
    child_router = r;
    char name[16];
    snprintf(name, sizeof name, "m%d", i);
    if (o2h_router_start(r) != O2H_OK || o2h_service_new(r, name) != O2H_OK) {
        child_write(rep_fd, &(report){.kind = REP_GAVE_UP, .index = i, .seen = -1});
        _exit(1);
    }
    if (i == 0) o2h_clock_set(r);
    bool mesh = false;
    double limit = nb_now() + FORM_LIMIT_S;
    while (nb_now() < limit && !stop_wanted) {
        o2h_router_poll(r, 20);
        if (!mesh && others_seen(r, i, n, false) == n - 1) {
            mesh = true;
            child_write(rep_fd, &(report){.kind = REP_MESH, .index = i, .t = nb_now()});
        }
        if (mesh && others_seen(r, i, n, true) == n - 1) {
            child_write(rep_fd, &(report){.kind = REP_SYNCED, .index = i, .t = nb_now()});
            break;
        }
    }
    if (getenv("ENSEMBLE_DEBUG"))
        fprintf(stderr, "ensemble[%d] %s sees %d, %d synced, own status %d\n", i, name,
                others_seen(r, i, n, false), others_seen(r, i, n, true), o2h_status(r, name));
    if (nb_now() >= limit)
        child_write(
            rep_fd,
            &(report){.kind = REP_GAVE_UP, .index = i, .seen = others_seen(r, i, n, false)});
    /* Idle: sleep in the loop until asked for counters (SIGUSR1) or to stop (SIGTERM). */
    while (!stop_wanted) {
        o2h_router_poll(r, -1);
        if (!counts_wanted) continue;
        counts_wanted = 0;
        report rep = {.kind = REP_COUNTS, .index = i};
        child_counts(r, &rep);
        child_write(rep_fd, &rep);
    }
    child_router = NULL;
    o2h_router_free(r);
    _exit(0);
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Read reports of `kind` until `want` arrived or `limit` (absolute) passed; others go to `any`. */
typedef struct gather {
    int fd;
    int n;
    double mesh_t[MAX_N], synced_t[MAX_N];
    int mesh, synced, gave_up, min_seen;
    report counts[MAX_N];
    int n_counts;
} gather;

static void gather_read(gather *g, double limit, int (*done)(const gather *)) {
    while (!done(g) && nb_now() < limit) {
        struct pollfd p = {.fd = g->fd, .events = POLLIN};
        int ms = (int)((limit - nb_now()) * 1000) + 1;
        if (poll(&p, 1, ms) <= 0) continue;
        report rep;
        ssize_t k = read(g->fd, &rep, sizeof rep);
        if (k != (ssize_t)sizeof rep) {
            if (k == 0) return; /* every child gone */
            continue;
        }
        if (rep.index < 0 || rep.index >= g->n) continue;
        switch (rep.kind) {
        case REP_MESH: g->mesh_t[rep.index] = rep.t, g->mesh++; break;
        case REP_SYNCED: g->synced_t[rep.index] = rep.t, g->synced++; break;
        case REP_GAVE_UP:
            g->gave_up++;
            if (rep.seen < g->min_seen) g->min_seen = rep.seen;
            break;
        case REP_COUNTS: g->counts[g->n_counts++] = rep; break;
        }
    }
}

static int formed_or_gave_up(const gather *g) {
    return g->synced + g->gave_up >= g->n;
}

static int all_counted(const gather *g) {
    return g->n_counts >= g->n;
}

/* Ask every child for its counters; sums them into `sum`. */
static bool collect_counts(gather *g, const pid_t *pids, report *sum) {
    g->n_counts = 0;
    for (int i = 0; i < g->n; i++)
        kill(pids[i], SIGUSR1);
    gather_read(g, nb_now() + 10, all_counted);
    *sum = (report){0};
    for (int i = 0; i < g->n_counts; i++) {
        sum->net_msgs += g->counts[i].net_msgs;
        sum->disc_msgs += g->counts[i].disc_msgs;
        sum->cs_msgs += g->counts[i].cs_msgs;
    }
    return g->n_counts == g->n;
}

static double max_of(const double *v, int n) {
    double m = 0;
    for (int i = 0; i < n; i++)
        if (v[i] > m) m = v[i];
    return m;
}

/* Whether `port` is free for both TCP and UDP on 127.0.0.1. */
static bool port_free(int port) {
    bool ok = true;
    for (int type = 0; type < 2 && ok; type++) {
        int fd = socket(AF_INET, type ? SOCK_DGRAM : SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0) close(fd);
    }
    return ok;
}

/* The next port free for TCP and UDP below the kernel's ephemeral range (32768 up, where the
 * processes' own sockets get their ports, so that none takes a port given to a later one). */
static int free_port_pair(int *next) {
    if (!*next) *next = 20000 + (int)(getpid() % 400) * 30;
    while (*next < 32700 && !port_free(*next))
        (*next)++;
    return (*next)++;
}

static bool run_ensemble(const char *discovery, int n, double window_s) {
    static int ports[MAX_N];
    static pid_t pids[MAX_N];
    char ensemble[64];
    snprintf(ensemble, sizeof ensemble, "bench-ens-%d-%s-%d", (int)getpid(), discovery, n);
    /* static: ports known before the start, to list as peers; broadcast, dnssd: any free port. */
    int next = 0;
    for (int i = 0; i < n; i++)
        ports[i] = strcmp(discovery, "static") == 0 ? free_port_pair(&next) : 0;
    int pipefd[2];
    if (pipe(pipefd) != 0) exit(1);
    static gather g;
    g = (gather){.fd = pipefd[0], .n = n, .min_seen = n};
    double t0 = nb_now();
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(pipefd[0]);
            child(discovery, ensemble, i, n, ports, pipefd[1]);
        }
    }
    close(pipefd[1]);
    gather_read(&g, t0 + FORM_LIMIT_S + 5, formed_or_gave_up);
    bool formed = g.synced == n;
    double mesh_s = g.mesh == n ? max_of(g.mesh_t, n) - t0 : -1;
    double synced_s = formed ? max_of(g.synced_t, n) - t0 : -1;
    double settle = nb_now() + 2.0; /* the first clock pings come fast; then it is idle */
    while (nb_now() < settle)
        usleep(100000);
    static double cpu0[MAX_N];
    for (int i = 0; i < n; i++)
        cpu0[i] = nb_proc_cpu_s(pids[i]);
    report c0, c1;
    bool counted = collect_counts(&g, pids, &c0);
    double w0 = nb_now();
    while (nb_now() < w0 + window_s)
        usleep(100000);
    counted = collect_counts(&g, pids, &c1) && counted;
    double w = nb_now() - w0;
    static long rss[MAX_N], cpu_permille[MAX_N];
    for (int i = 0; i < n; i++) {
        rss[i] = nb_proc_rss_kb(pids[i]);
        double c = nb_proc_cpu_s(pids[i]);
        cpu_permille[i] = c >= 0 && cpu0[i] >= 0 ? (long)((c - cpu0[i]) / w * 1e5) : -1;
    }
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    close(pipefd[0]);
    qsort(rss, (size_t)n, sizeof *rss, cmp_long);
    qsort(cpu_permille, (size_t)n, sizeof *cpu_permille, cmp_long);
    /* Each ping to _cs is routed once by its sender and once by the reference, and has a reply. */
    double clock_s = counted ? (c1.cs_msgs - c0.cs_msgs) / w / n : -1;
    double net_s = counted ? (c1.net_msgs - c0.net_msgs) / w / n : -1;
    double disc_s = counted ? (c1.disc_msgs - c0.disc_msgs) / w / n : -1;
    printf("  %-9s N=%-3d %s mesh %6.2f s  synced %6.2f s  RSS %ld KB (max %ld)  idle CPU "
           "%.3f %% (max %.3f %%)  clock %.2f msgs/s  net %.2f msgs/s  discovery %.2f/s\n",
           discovery, n, formed ? "formed" : "NOT FORMED", mesh_s, synced_s, rss[n / 2], rss[n - 1],
           cpu_permille[n / 2] / 1000.0, cpu_permille[n - 1] / 1000.0, clock_s, net_s, disc_s);
    if (!formed)
        printf("  (%d of %d processes formed; %d gave up, the fewest others seen %d of %d)\n",
               g.synced, n, g.gave_up, g.min_seen, n - 1);
    if (failed) printf("  (%d processes did not exit cleanly)\n", failed);
    printf("ENSEMBLE discovery=%s n=%d formed=%d mesh_s=%.3f synced_s=%.3f rss_kb=%ld "
           "rss_kb_max=%ld cpu_pct=%.3f cpu_pct_max=%.3f clock_s=%.2f net_s=%.2f disc_s=%.2f "
           "window_s=%.1f\n",
           discovery, n, formed, mesh_s, synced_s, rss[n / 2], rss[n - 1],
           cpu_permille[n / 2] / 1000.0, cpu_permille[n - 1] / 1000.0, clock_s, net_s, disc_s, w);
    return formed && !failed;
}

/* Whether an avahi-daemon answers (its own check; exit 0 when one runs). */
static bool avahi_running(void) {
    return system("avahi-daemon --check >/dev/null 2>&1") == 0;
}

/* The dnssd ensembles' avahi-daemon: the machine's if one runs, else a private one
 * from bench/private_avahi. false, with `why`, when there is none. */
typedef struct dnssd_daemon {
    pid_t helper;  /* private_avahi, or 0 */
    int to_helper; /* its stdin: closing it stops the daemons */
    char dir[64];
    char why[720];
} dnssd_daemon;

/* One line from fd within `seconds` (without its newline); false on EOF or timeout. */
static bool read_line(int fd, char *line, size_t size, double seconds) {
    size_t used = 0;
    double end = nb_now() + seconds;
    while (used + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ms = (int)((end - nb_now()) * 1000);
        if (ms <= 0 || poll(&p, 1, ms) <= 0) break;
        ssize_t n = read(fd, line + used, 1);
        if (n <= 0) break;
        if (line[used] == '\n') {
            line[used] = '\0';
            return true;
        }
        used++;
    }
    line[used] = '\0';
    return false;
}

static bool start_private_avahi(dnssd_daemon *d) {
    snprintf(d->dir, sizeof d->dir, "/tmp/o2hub-bench-avahi-XXXXXX");
    int in[2], out[2];
    if (!mkdtemp(d->dir) || pipe(in) != 0 || pipe(out) != 0) {
        snprintf(d->why, sizeof d->why, "no avahi-daemon runs, and: %s", strerror(errno));
        return false;
    }
    d->helper = fork();
    if (d->helper == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl(NB_PRIVATE_AVAHI, NB_PRIVATE_AVAHI, d->dir, (char *)NULL);
        printf("failed cannot run %s (built where avahi's dns_sd library is): %s\n",
               NB_PRIVATE_AVAHI, strerror(errno));
        fflush(stdout);
        _exit(1);
    }
    close(in[0]);
    close(out[1]);
    d->to_helper = in[1];
    char line[600];
    bool got = read_line(out[0], line, sizeof line, 30);
    close(out[0]);
    if (got && strncmp(line, "ready ", 6) == 0) {
        setenv("DBUS_SYSTEM_BUS_ADDRESS", line + 6, 1);
        setenv("AVAHI_COMPAT_NOWARN", "1", 1);
        printf("  dnssd     through a private avahi-daemon (lo, its own network namespace)\n");
        return true;
    }
    snprintf(d->why, sizeof d->why, "no avahi-daemon runs, and a private one did not start: %s",
             got && strncmp(line, "failed ", 7) == 0 ? line + 7 : "no answer from private_avahi");
    return false;
}

static void dnssd_daemon_stop(dnssd_daemon *d) {
    if (d->helper > 0) {
        close(d->to_helper);
        waitpid(d->helper, NULL, 0);
        d->helper = 0;
        unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    }
    if (d->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
        if (system(cmd) != 0) fprintf(stderr, "ensemble: could not remove %s\n", d->dir);
        d->dir[0] = '\0';
    }
}

static bool dnssd_daemon_start(dnssd_daemon *d) {
    *d = (dnssd_daemon){0};
    if (avahi_running()) return true;
    if (start_private_avahi(d)) return true;
    dnssd_daemon_stop(d);
    return false;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked children must not repeat buffered lines */
    const char *discoveries[8];
    int n_disc = 0, sizes[16], n_sizes = 0;
    double window = 10.0;
    bool all_formed = true, quick = false;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--quick") == 0) {
            window = 2.0;
            quick = true;
        } else if (strcmp(argv[a], "--discovery") == 0 && a + 1 < argc && n_disc < 8) {
            discoveries[n_disc++] = argv[++a];
        } else if (atoi(argv[a]) >= 2 && atoi(argv[a]) <= MAX_N && n_sizes < 16) {
            sizes[n_sizes++] = atoi(argv[a]);
        } else {
            fprintf(stderr,
                    "usage: ensemble [--quick] [--discovery static|broadcast|dnssd]... "
                    "[N (2..%d)]...\n",
                    MAX_N);
            return 2;
        }
    }
    if (!n_sizes && quick) sizes[n_sizes++] = 8;
    if (!n_sizes) {
        int d[] = {8, 16, 32, 64};
        for (int i = 0; i < 4; i++)
            sizes[n_sizes++] = d[i];
    }
    if (!n_disc) {
        discoveries[n_disc++] = "static";
        discoveries[n_disc++] = "broadcast";
        discoveries[n_disc++] = "dnssd";
    }
    /* Each process holds N-1 connections and a few sockets; the coordinator a pipe. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    printf("bench ensemble: N processes on 127.0.0.1 forming O2's full mesh, idle window %.0f s\n",
           window);
    for (int d = 0; d < n_disc; d++) {
        bool dnssd = strcmp(discoveries[d], "dnssd") == 0;
        static dnssd_daemon daemon;
        if (dnssd && !dnssd_daemon_start(&daemon)) {
            printf("  dnssd     skipped: %s\n", daemon.why);
            printf("SKIP bench=ensemble discovery=dnssd reason=no-avahi-daemon\n");
            continue;
        }
        for (int s = 0; s < n_sizes; s++)
            if (!run_ensemble(discoveries[d], sizes[s], window)) all_formed = false;
        if (dnssd) dnssd_daemon_stop(&daemon);
    }
    return all_formed ? 0 : 1; /* the smoke tests check that the ensembles form */
}
