/*
 * bench/osc_throughput — OSC messages per second into o2hub's OSC port (UDP
 * and TCP) delivered to an O2 handler, beside liblo's own server receiving
 * the same messages, in the same run. The sender is the same for both: a
 * child process using liblo's client (lo_send_message, "/x ,ifs 1 0.5 note").
 * Each receiver times the span from its first message to its last; UDP
 * losses are reported, not hidden.
 */
#include <lo/lo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "benchreport.h"
#include "netbench.h"

typedef struct tally {
    long n;
    double first, last;
    double go; /* when the sender was told to start */
} tally;

static void count(tally *t) {
    double now = nb_now();
    if (t->n++ == 0) t->first = now;
    t->last = now;
}

#define LAT_COUNT 2000      /* paced messages for the latency runs */
#define LAT_INTERVAL_US 500 /* 2000 messages a second: a live controller, not a flood */

/* The sender: waits for the go byte, then sends `n` messages with liblo: as
 * fast as it can (/x ,ifs), or `paced` (/x ,d carrying the send time). */
static pid_t start_sender(int proto, int port, long n, int *go_fd, bool paced) {
    int fds[2];
    if (pipe(fds) != 0) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        char go;
        if (read(fds[0], &go, 1) != 1) _exit(1);
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        lo_address to = lo_address_new_with_proto(proto, "127.0.0.1", p);
        lo_message m = lo_message_new();
        lo_message_add_int32(m, 1);
        lo_message_add_float(m, 0.5f);
        lo_message_add_string(m, "note");
        for (long i = 0; i < n && !paced; i++)
            if (lo_send_message(to, "/x", m) < 0) _exit(2);
        for (long i = 0; i < n && paced; i++) {
            lo_message t = lo_message_new();
            lo_message_add_double(t, nb_now()); /* CLOCK_MONOTONIC: shared by the processes */
            if (lo_send_message(to, "/x", t) < 0) _exit(2);
            lo_message_free(t);
            usleep(LAT_INTERVAL_US);
        }
        lo_message_free(m);
        lo_address_free(to);
        _exit(0);
    }
    close(fds[0]);
    *go_fd = fds[1];
    return pid;
}

/* Receive until all `n` arrived, or nothing came for 0.5 s. */
static bool done(const tally *t, long n, double started) {
    double idle_since = t->n ? t->last : started;
    return t->n >= n || nb_now() - idle_since > (t->n ? 0.5 : 10);
}

static void report(const br_meter *meter, const char *what, const char *path, const tally *t,
                   long n) {
    double span = t->last - t->first;
    double rate = span > 0 ? (double)(t->n - 1) / span : 0;
    printf("  %-26s %10.0f msgs/s received, %ld of %ld arrived; %10.0f msgs/s from the start\n",
           what, rate, t->n, n, t->last > t->go ? (double)t->n / (t->last - t->go) : 0);
    br_report(
        meter,
        &(br_result){
            .bench = "osc_throughput", .path = path, .payload = 28, .count = t->n, .msgs_s = rate});
}

static void on_sink(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    count(user_data);
}

/* TCP segments this machine has sent (Linux: /proc/net/snmp), to compare how
 * the sender's data was packed with each receiver. -1 if unknown. */
static long tcp_out_segments(void) {
    FILE *f = fopen("/proc/net/snmp", "r");
    char line[1024];
    long segs = -1;
    bool header_seen = false;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "Tcp:", 4) != 0) continue;
        if (!header_seen) {
            header_seen = true; /* the first Tcp: line names the fields */
            continue;
        }
        /* Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails
         *      EstabResets CurrEstab InSegs OutSegs ... */
        long v[11];
        if (sscanf(line, "Tcp: %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10]) == 11)
            segs = v[10];
    }
    if (f) fclose(f);
    return segs;
}

static void report_segments(long before, long n) {
    long after = tcp_out_segments();
    if (before >= 0 && after >= 0)
        printf("  %-26s %10.2f TCP segments per message (both directions)\n", "",
               (double)(after - before) / (double)n);
}

static double o2hub_rate(int proto, long n) {
    long segs = tcp_out_segments();
    br_meter meter;
    br_start(&meter);
    int port = nb_free_port();
    int go;
    pid_t sender = start_sender(proto, port, n, &go, false);
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"bench\", \"plugin_path\": [\"%s\"], \"transports\": [{\"type\": "
             "\"osc\", \"ports\": [{\"port\": %d, \"host\": \"127.0.0.1\", \"protocol\": \"%s\", "
             "\"service\": \"sink\"}]}]}",
             NB_TRANSPORT_DIR, port, proto == LO_TCP ? "tcp" : "udp");
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "bench", &o, &err);
    if (!r || o2h_router_start(r) != O2H_OK) {
        fprintf(stderr, "bench: %s\n", r ? "cannot start" : err.message);
        exit(1);
    }
    tally t = {0};
    o2h_service_new(r, "sink");
    o2h_method_new(r, "/sink/x", "ifs", on_sink, &t, false, true);
    t.go = nb_now();
    (void)!write(go, "g", 1);
    double started = nb_now();
    while (!done(&t, n, started))
        o2h_router_poll(r, 50);
    waitpid(sender, NULL, 0);
    close(go);
    o2h_router_free(r);
    report(&meter, proto == LO_TCP ? "o2hub OSC port, TCP" : "o2hub OSC port, UDP",
           proto == LO_TCP ? "o2hub-osc-tcp" : "o2hub-osc-udp", &t, n);
    if (proto == LO_TCP) report_segments(segs, n);
    return t.last > t.first ? (double)(t.n - 1) / (t.last - t.first) : 0;
}

static int on_lo(const char *path, const char *types, lo_arg **argv, int argc, lo_message msg,
                 void *user_data) {
    count(user_data);
    return 0;
}

static double liblo_rate(int proto, long n) {
    long segs = tcp_out_segments();
    br_meter meter;
    br_start(&meter);
    int port = nb_free_port();
    int go;
    pid_t sender = start_sender(proto, port, n, &go, false);
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    lo_server s = lo_server_new_with_proto(p, proto, NULL);
    if (!s) exit(1);
    tally t = {0};
    lo_server_add_method(s, "/x", "ifs", on_lo, &t);
    t.go = nb_now();
    (void)!write(go, "g", 1);
    double started = nb_now();
    while (!done(&t, n, started))
        lo_server_recv_noblock(s, 50);
    waitpid(sender, NULL, 0);
    close(go);
    lo_server_free(s);
    report(&meter, proto == LO_TCP ? "liblo server, TCP" : "liblo server, UDP",
           proto == LO_TCP ? "liblo-tcp" : "liblo-udp", &t, n);
    if (proto == LO_TCP) report_segments(segs, n);
    return t.last > t.first ? (double)(t.n - 1) / (t.last - t.first) : 0;
}

/* ---- latency of paced messages: what a live controller sees ---- */

typedef struct lat {
    double s[LAT_COUNT];
    int n;
} lat;

static void on_sink_lat(o2h_router *r, const o2h_msg *msg, const char *types,
                        const o2h_arg *const *argv, int argc, void *user_data) {
    lat *l = user_data;
    if (l->n < LAT_COUNT) l->s[l->n++] = nb_now() - argv[0]->d;
}

static int on_lo_lat(const char *path, const char *types, lo_arg **argv, int argc, lo_message msg,
                     void *user_data) {
    lat *l = user_data;
    if (l->n < LAT_COUNT) l->s[l->n++] = nb_now() - argv[0]->d;
    return 0;
}

static void report_latency(const char *what, const char *path, lat *l) {
    br_meter none;
    br_start(&none);
    br_report(&none, &(br_result){.bench = "osc_latency",
                                  .path = path,
                                  .payload = 20,
                                  .count = l->n,
                                  .lat_s = l->s,
                                  .n_lat = l->n,
                                  .no_cpu = true});
    double p50 = nb_percentile(l->s, l->n, 0.5), p99 = nb_percentile(l->s, l->n, 0.99);
    printf("  %-26s one-way p50 %7.1f us  p99 %7.1f us  (%d of %d, paced)\n", what, p50 * 1e6,
           p99 * 1e6, l->n, LAT_COUNT);
}

static void o2hub_latency(int proto) {
    int port = nb_free_port(), go;
    pid_t sender = start_sender(proto, port, LAT_COUNT, &go, true);
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"bench\", \"plugin_path\": [\"%s\"], \"transports\": [{\"type\": "
             "\"osc\", \"ports\": [{\"port\": %d, \"host\": \"127.0.0.1\", \"protocol\": \"%s\", "
             "\"service\": \"sink\"}]}]}",
             NB_TRANSPORT_DIR, port, proto == LO_TCP ? "tcp" : "udp");
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "bench", &o, &err);
    if (!r || o2h_router_start(r) != O2H_OK) exit(1);
    static lat l;
    l.n = 0;
    o2h_service_new(r, "sink");
    o2h_method_new(r, "/sink/x", "d", on_sink_lat, &l, false, true);
    (void)!write(go, "g", 1);
    for (double end = nb_now() + 10; l.n < LAT_COUNT && nb_now() < end;)
        o2h_router_poll(r, 50);
    waitpid(sender, NULL, 0);
    close(go);
    o2h_router_free(r);
    report_latency(proto == LO_TCP ? "o2hub OSC port, TCP" : "o2hub OSC port, UDP",
                   proto == LO_TCP ? "o2hub-osc-tcp" : "o2hub-osc-udp", &l);
}

static void liblo_latency(int proto) {
    int port = nb_free_port(), go;
    pid_t sender = start_sender(proto, port, LAT_COUNT, &go, true);
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    lo_server s = lo_server_new_with_proto(p, proto, NULL);
    if (!s) exit(1);
    static lat l;
    l.n = 0;
    lo_server_add_method(s, "/x", "d", on_lo_lat, &l);
    (void)!write(go, "g", 1);
    for (double end = nb_now() + 10; l.n < LAT_COUNT && nb_now() < end;)
        lo_server_recv_noblock(s, 50);
    waitpid(sender, NULL, 0);
    close(go);
    lo_server_free(s);
    report_latency(proto == LO_TCP ? "liblo server, TCP" : "liblo server, UDP",
                   proto == LO_TCP ? "liblo-tcp" : "liblo-udp", &l);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked children must not repeat buffered lines */
    long n = argc > 1 ? atol(argv[1]) : 200000;
    printf("bench osc_throughput: %ld OSC messages (/x ,ifs, 28 bytes) from a liblo client, "
           "127.0.0.1\n",
           n);
    for (int k = 0; k < 2; k++) {
        int proto = k ? LO_TCP : LO_UDP;
        double lo = liblo_rate(proto, n);
        double o2 = o2hub_rate(proto, n);
        printf("  %s: o2hub / liblo = %.2f\n", k ? "TCP" : "UDP", lo > 0 ? o2 / lo : 0);
    }
    printf("latency: %d messages, one every %d us, from the same liblo client\n", LAT_COUNT,
           LAT_INTERVAL_US);
    for (int k = 0; k < 2; k++) {
        liblo_latency(k ? LO_TCP : LO_UDP);
        o2hub_latency(k ? LO_TCP : LO_UDP);
    }
    return 0;
}
