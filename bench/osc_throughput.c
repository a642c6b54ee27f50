/*
 * bench/osc_throughput — OSC into o2hub's OSC port (UDP and TCP), delivered
 * to an O2 handler, beside liblo's own server receiving the same messages in
 * the same run. Three senders, each a child process:
 *
 *  - flood: liblo's client (lo_send_message) as fast as it can, each message
 *    "/x ,dfs" carrying its send time, so the rate and the one-way latency
 *    under load come from the same messages;
 *  - blast: a raw socket writing pre-framed "/x ,ifs" messages in large
 *    batches (sendmmsg for UDP, 32 KB writes for TCP): a sender that is not
 *    the bottleneck, so the rate is what each receiver can take;
 *  - paced: liblo's client, one "/x ,d" message every 500 µs, as a live
 *    controller sends: the one-way latency when nothing queues.
 *
 * The rate is messages delivered per second from the moment the sender is
 * told to start to the last arrival, so UDP losses count against the
 * receiver that lost them; they are also printed.
 */

#include <arpa/inet.h>
#include <lo/lo.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "benchreport.h"
#include "netbench.h"

typedef enum { FLOOD, BLAST, PACED } sender_kind;
static const char *const kind_bench[] = {"osc_throughput", "osc_blast", "osc_latency"};
static const int kind_payload[] = {32, 28, 20}; /* OSC bytes per message */

#define PACED_COUNT 2000      /* messages for the paced latency runs */
#define PACED_INTERVAL_US 500 /* 2000 messages a second: a live controller, not a flood */
#define BLAST_BATCH 64        /* UDP datagrams per sendmmsg */
#define BLAST_TCP_MSGS 1024   /* framed messages per TCP write (32 KB) */

typedef struct tally {
    long n;
    double last;
    double go;   /* when the sender was told to start */
    double *lat; /* one-way latency of each timestamped message */
    long n_lat, cap_lat;
} tally;

static void count(tally *t, const double *sent) {
    double now = nb_now();
    t->n++;
    t->last = now;
    if (sent && t->n_lat < t->cap_lat) t->lat[t->n_lat++] = now - *sent;
}

/* "/x ,ifs 1 0.5 note": 28 bytes, the blast message. */
static size_t blast_message(uint8_t *out) {
    static const uint8_t m[28] = {'/', 'x', 0,    0, ',', 'i', 'f', 's', 0,   0,   0, 0, 0, 0,
                                  0,   1,   0x3f, 0, 0,   0,   'n', 'o', 't', 'e', 0, 0, 0, 0};
    memcpy(out, m, sizeof m);
    return sizeof m;
}

static void blast_udp(int port, long n) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) _exit(2);
    uint8_t msg[28];
    struct iovec iov = {msg, blast_message(msg)};
    struct mmsghdr batch[BLAST_BATCH];
    for (int i = 0; i < BLAST_BATCH; i++)
        batch[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov, .msg_iovlen = 1}};
    for (long sent = 0; sent < n;) {
        int k = n - sent < BLAST_BATCH ? (int)(n - sent) : BLAST_BATCH;
        int r = sendmmsg(fd, batch, (unsigned)k, 0);
        if (r < 0) _exit(2);
        sent += r;
    }
    close(fd);
}

static void blast_tcp(int port, long n) {
    int fd = nb_tcp_connect(port);
    static uint8_t buf[BLAST_TCP_MSGS * 32];
    for (int i = 0; i < BLAST_TCP_MSGS; i++) {
        uint8_t *m = buf + i * 32;
        uint32_t len = htonl((uint32_t)blast_message(m + 4));
        memcpy(m, &len, 4);
    }
    for (long sent = 0; sent < n;) {
        long k = n - sent < BLAST_TCP_MSGS ? n - sent : BLAST_TCP_MSGS;
        if (write(fd, buf, (size_t)k * 32) != k * 32) _exit(2);
        sent += k;
    }
    close(fd);
}

static void send_liblo(int proto, int port, long n, sender_kind kind) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    lo_address to = lo_address_new_with_proto(proto, "127.0.0.1", p);
    for (long i = 0; i < n; i++) {
        lo_message m = lo_message_new();
        lo_message_add_double(m, nb_now()); /* CLOCK_MONOTONIC: shared by the processes */
        if (kind == FLOOD) {
            lo_message_add_float(m, 0.5f);
            lo_message_add_string(m, "note");
        }
        if (lo_send_message(to, "/x", m) < 0) _exit(2);
        lo_message_free(m);
        if (kind == PACED) usleep(PACED_INTERVAL_US);
    }
    lo_address_free(to);
}

/* Forks the sender; it starts when the receiver writes a byte to *go_fd. */
static pid_t start_sender(int proto, int port, long n, sender_kind kind, int *go_fd) {
    int fds[2];
    if (pipe(fds) != 0) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        char go;
        if (read(fds[0], &go, 1) != 1) _exit(1);
        if (kind == BLAST && proto == LO_UDP)
            blast_udp(port, n);
        else if (kind == BLAST)
            blast_tcp(port, n);
        else
            send_liblo(proto, port, n, kind);
        _exit(0);
    }
    close(fds[0]);
    *go_fd = fds[1];
    return pid;
}

/* Receive until all `n` arrived, or nothing came for 0.5 s (10 s before the first). */
static bool done(const tally *t, long n, double started) {
    double idle_since = t->n ? t->last : started;
    return t->n >= n || nb_now() - idle_since > (t->n ? 0.5 : 10);
}

/* ---- the two receivers ---- */

static void on_sink(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    count(user_data, types[0] == 'd' ? &argv[0]->d : NULL);
}

/* pace_us < 0: the port's default read pacing (transports/osc/osc_pace.h). */
static void receive_o2hub(int proto, int port, long n, int go, tally *t, int pace_us) {
    char json[512], pace[32] = "";
    if (pace_us >= 0) snprintf(pace, sizeof pace, ", \"pace_us\": %d", pace_us);
    snprintf(json, sizeof json,
             "{\"ensemble\": \"bench\", \"plugin_path\": [\"%s\"], \"transports\": [{\"type\": "
             "\"osc\", \"ports\": [{\"port\": %d, \"host\": \"127.0.0.1\", \"protocol\": \"%s\", "
             "\"service\": \"sink\"%s}]}]}",
             NB_TRANSPORT_DIR, port, proto == LO_TCP ? "tcp" : "udp", pace);
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "bench", &o, &err);
    if (!r || o2h_router_start(r) != O2H_OK) {
        fprintf(stderr, "bench: %s\n", r ? "cannot start" : err.message);
        exit(1);
    }
    o2h_service_new(r, "sink");
    o2h_method_new(r, "/sink/x", NULL, on_sink, t, false, true);
    t->go = nb_now();
    (void)!write(go, "g", 1);
    double started = nb_now();
    while (!done(t, n, started))
        o2h_router_poll(r, 50);
    o2h_router_free(r);
}

static int on_lo(const char *path, const char *types, lo_arg **argv, int argc, lo_message msg,
                 void *user_data) {
    count(user_data, types[0] == 'd' ? &argv[0]->d : NULL);
    return 0;
}

static void receive_liblo(int proto, int port, long n, int go, tally *t) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    lo_server s = lo_server_new_with_proto(p, proto, NULL);
    if (!s) exit(1);
    lo_server_add_method(s, "/x", NULL, on_lo, t);
    t->go = nb_now();
    (void)!write(go, "g", 1);
    double started = nb_now();
    while (!done(t, n, started))
        lo_server_recv_noblock(s, 50);
    lo_server_free(s);
}

/* ---- one run ---- */

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

/* Runs one receiver (liblo's, or o2hub's with `pace_us` as in receive_o2hub)
 * against one sender; prints and reports; returns msgs/s. */
static double run(bool o2hub, int pace_us, int proto, sender_kind kind, long n) {
    long segs = tcp_out_segments();
    br_meter meter;
    br_start(&meter);
    int port = nb_free_port(), go;
    tally t = {.cap_lat = kind == BLAST ? 0 : n};
    t.lat = t.cap_lat ? malloc((size_t)t.cap_lat * sizeof *t.lat) : NULL;
    pid_t sender = start_sender(proto, port, n, kind, &go);
    if (o2hub)
        receive_o2hub(proto, port, n, go, &t, pace_us);
    else
        receive_liblo(proto, port, n, go, &t);
    waitpid(sender, NULL, 0);
    close(go);

    bool tcp = proto == LO_TCP;
    char path[48];
    snprintf(path, sizeof path, "%s-%s%s", o2hub ? "o2hub-osc" : "liblo", tcp ? "tcp" : "udp",
             pace_us == 0 ? "-unpaced" : "");
    /* Delivered messages per second from the sender's start: UDP losses count against it. */
    double span = t.last - t.go;
    double rate = kind != PACED && t.n > 0 && span > 0 ? (double)t.n / span : 0;
    double p50 = t.n_lat ? nb_percentile(t.lat, (int)t.n_lat, 0.5) : 0;
    double p99 = t.n_lat ? nb_percentile(t.lat, (int)t.n_lat, 0.99) : 0;
    printf("  %-16s %s  ",
           !o2hub    ? "liblo server"
           : pace_us ? "o2hub OSC port"
                     : "  ...unpaced",
           tcp ? "TCP" : "UDP");
    if (kind != PACED) printf("%9.0f msgs/s, %ld of %ld arrived", rate, t.n, n);
    if (t.n_lat) printf("; one-way p50 %7.1f us, p99 %8.1f us", p50 * 1e6, p99 * 1e6);
    long after = tcp_out_segments();
    if (tcp && segs >= 0 && after >= 0)
        printf("; %.3f TCP segments/msg", (double)(after - segs) / (double)n);
    printf("\n");
    br_report(&meter, &(br_result){.bench = kind_bench[kind],
                                   .path = path,
                                   .payload = kind_payload[kind],
                                   .count = t.n,
                                   .msgs_s = rate,
                                   .lat_s = t.lat,
                                   .n_lat = (int)t.n_lat,
                                   .no_cpu = kind == PACED});
    free(t.lat);
    return rate;
}

/* OSC_BENCH_PACE_US: the o2hub rows' pace_us instead of the port's default (for tuning it). */
static int default_pace_us = -1;

static void compare(sender_kind kind, long n, const char *title) {
    printf("%s\n", title);
    for (int k = 0; k < 2; k++) {
        int proto = k ? LO_TCP : LO_UDP;
        double lo = run(false, -1, proto, kind, n);
        double o2 = run(true, default_pace_us, proto, kind, n);
        if (kind != PACED)
            printf("  %s: o2hub / liblo = %.2f\n", k ? "TCP" : "UDP", lo > 0 ? o2 / lo : 0);
        if (kind == FLOOD) run(true, 0, proto, kind, n); /* what pacing trades */
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked children must not repeat buffered lines */
    long n = argc > 1 ? atol(argv[1]) : 200000;
    const char *pace = getenv("OSC_BENCH_PACE_US");
    if (pace && *pace) default_pace_us = atoi(pace);
    printf("bench osc_throughput: OSC into o2hub's OSC port and into liblo's server, 127.0.0.1\n");
    compare(FLOOD, n,
            "flood: liblo's client as fast as it can, /x ,dfs (32 bytes) with its send time");
    compare(BLAST, n, "blast: a raw socket, pre-framed /x ,ifs (28 bytes) in batches");
    char title[128];
    snprintf(title, sizeof title, "paced: liblo's client, /x ,d (20 bytes), one every %d us",
             PACED_INTERVAL_US);
    compare(PACED, PACED_COUNT, title);
    return 0;
}
