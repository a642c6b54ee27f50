/*
 * bench/isolation — does a best-effort flood through a router delay a
 * reliable control stream through the same router to another service?
 * Five processes on 127.0.0.1:
 *   router     an o2hub router (tcp+udp; an O2lite host), the one in the middle;
 *   ctl-rx     an o2hub process offering service "ctl" (a synth, say);
 *   sink-rx    an o2hub process offering service "sink" (a visualiser);
 *   ctl-tx     an O2lite client of the router: /ctl/x by TCP at 1 kHz;
 *   flood-tx   an O2lite client of the router: /sink/x by UDP at 200 k msgs/s,
 *              bursts of 200 every millisecond, each built by O2lite; in the
 *              flood phase a burst leaves as segmented sends (UDP GSO: runs of
 *              up to 64 same-size datagrams, as a batching gateway or an o2hub
 *              process sends them), in the flood-single phase as one sendmmsg
 *              of single datagrams.
 * The control stream runs a 1 s warm-up, then `seconds` in each of three
 * phases, idle, flood and flood-single, interleaved in 0.5 s slots so that
 * what else this shared machine runs meets all three alike; the first 50 ms
 * of an idle slot, while the flood's queues drain, count as none of them.
 * Its lateness is the one-way delay from ctl-tx's send to ctl-rx's handler
 * (both read CLOCK_MONOTONIC); p50/p99/p99.9 per phase and the ratio of the
 * p99s (the goal: under the flood at most 2x idle). The flood rows give the
 * rate sink-rx received over each flood phase's slots.
 * Usage: isolation [--quick] [seconds] [flood msgs/s]   (default 10 s, 200000)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>
#include <o2lite.h>

#include "benchreport.h"
#include "netbench.h"

#define MAX_SAMPLES 200000
#define TICK_S 0.001 /* the control period, and the flood's burst period */
#define SLOT_S 0.5   /* idle and flood alternate */
#define SETTLE_S 0.05
#define MAX_BURST 1024 /* messages in one flood burst: up to 1 M msgs/s */

enum { PHASE_WARMUP, PHASE_IDLE, PHASE_FLOOD, PHASE_FLOOD_SINGLE, PHASE_END };
#define N_PHASES 3 /* measured: idle, flood, flood-single (phase - PHASE_IDLE) */
enum { READY_ROUTER, READY_CTL_RX, READY_SINK_RX, READY_CTL_TX, READY_FLOOD_TX, N_READY };

/* Shared by the processes (an anonymous shared mapping made before the forks). */
typedef struct shared {
    atomic_int ready[N_READY];
    atomic_int go;
    double t0;              /* when the warm-up starts (CLOCK_MONOTONIC) */
    double seconds;         /* each of the measured phases */
    int flood_rate;         /* msgs/s */
    atomic_int ctl_rx_done; /* ctl-rx saw the end */
    int n_lat[N_PHASES];
    double lat[N_PHASES][MAX_SAMPLES / 2];
    long ctl_sent[N_PHASES], ctl_out_of_order, ctl_failed;
    long flood_sent[2], flood_failed[2], flood_received[2]; /* flood, flood-single */
    atomic_int no_segmentation; /* this kernel refused UDP_SEGMENT: flood went single */
    long router_dropped, router_held;
} shared;

static shared *sh;

static double end_time(void) {
    return sh->t0 + 1.0 + N_PHASES * sh->seconds;
}

/* Which phase time `t` is in: slots of SLOT_S after a 1 s warm-up, in turn
 * idle, flood, flood-single. */
static int phase_at(double t) {
    if (t < sh->t0 + 1.0) return PHASE_WARMUP;
    if (t >= end_time()) return PHASE_END;
    double in = t - sh->t0 - 1.0;
    int slot = (int)(in / SLOT_S);
    if (slot % N_PHASES) return PHASE_IDLE + slot % N_PHASES;
    return slot > 0 && in - slot * SLOT_S < SETTLE_S ? PHASE_WARMUP : PHASE_IDLE;
}

static bool is_flood(int phase) {
    return phase == PHASE_FLOOD || phase == PHASE_FLOOD_SINGLE;
}

static void sleep_until(double t) {
    struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = (long)((t - (double)(time_t)t) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

static void wait_go(void) {
    while (!atomic_load(&sh->go))
        usleep(1000);
}

static o2h_router *router_at(int port, const int *peers, int n_peers) {
    char json[1024];
    int len =
        snprintf(json, sizeof json,
                 "{\"ensemble\": \"bench-iso\", \"plugin_path\": [\"%s\", \"%s\"],"
                 " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},"
                 "  {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],"
                 " \"discovery\": [{\"type\": \"static\", \"peers\": [",
                 NB_TRANSPORT_DIR, NB_DISCOVERY_DIR, port, port);
    for (int i = 0; i < n_peers; i++)
        len += snprintf(json + len, sizeof json - (size_t)len, "%s\"127.0.0.1:%d\"", i ? "," : "",
                        peers[i]);
    snprintf(json + len, sizeof json - (size_t)len, "]}]}");
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "isolation", &o, &err);
    if (!r) {
        fprintf(stderr, "isolation: %s\n", err.message);
        _exit(1);
    }
    if (o2h_router_start(r) != O2H_OK) _exit(1);
    return r;
}

/* ---- the router in the middle ---- */

static volatile sig_atomic_t stop_wanted;
static o2h_router *the_router;
static void on_term(int sig) {
    (void)sig;
    stop_wanted = 1;
    if (the_router) o2h_router_wake(the_router);
}

static void router_process(int port, int ctl_port, int sink_port) {
    int peers[2] = {ctl_port, sink_port};
    o2h_router *r = router_at(port, peers, 2);
    the_router = r;
    signal(SIGTERM, on_term);
    o2h_service_new(r, "hub");
    o2h_clock_set(r);
    double limit = nb_now() + 30;
    while ((o2h_status(r, "ctl") < 0 || o2h_status(r, "sink") < 0) && nb_now() < limit)
        o2h_router_poll(r, 10);
    atomic_store(&sh->ready[READY_ROUTER], 1);
    while (!stop_wanted)
        o2h_router_poll(r, -1);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    sh->router_dropped = (long)(st.dropped_queue_full + st.dropped_send_error);
    sh->router_held = (long)st.held;
    o2h_router_free(r);
    _exit(0);
}

/* ---- ctl-rx and sink-rx ---- */

typedef struct ctl_state {
    int32_t last_seq;
} ctl_state;

static void on_ctl(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    ctl_state *c = user_data;
    double late = nb_now() - argv[2]->d;
    int phase = argv[0]->i;
    if (phase == PHASE_END) {
        atomic_store(&sh->ctl_rx_done, 1);
        return;
    }
    if (argv[1]->i != c->last_seq + 1) sh->ctl_out_of_order++;
    c->last_seq = argv[1]->i;
    int m = phase - PHASE_IDLE;
    if (m >= 0 && m < N_PHASES && sh->n_lat[m] < MAX_SAMPLES / 2) sh->lat[m][sh->n_lat[m]++] = late;
}

static void on_sink(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    if (is_flood(argv[0]->i)) sh->flood_received[argv[0]->i - PHASE_FLOOD]++;
}

static void receiver_process(int port, int router_port, bool ctl) {
    o2h_router *r = router_at(port, &router_port, 1);
    ctl_state c = {.last_seq = -1};
    o2h_service_new(r, ctl ? "ctl" : "sink");
    if (ctl)
        o2h_method_new(r, "/ctl/x", "iid", on_ctl, &c, false, true);
    else
        o2h_method_new(r, "/sink/x", "iid", on_sink, NULL, false, true);
    double limit = nb_now() + 30;
    while (o2h_status(r, "hub") < 0 && nb_now() < limit)
        o2h_router_poll(r, 10);
    atomic_store(&sh->ready[ctl ? READY_CTL_RX : READY_SINK_RX], 1);
    while (!atomic_load(&sh->go) && nb_now() < limit)
        o2h_router_poll(r, 10);
    double end = end_time() + 2.0;
    while (nb_now() < end && !(ctl && atomic_load(&sh->ctl_rx_done)))
        o2h_router_poll(r, 50);
    o2h_router_free(r);
    _exit(0);
}

/* ---- ctl-tx and flood-tx: O2lite clients of the router ---- */

static void lite_connect(int router_port, int ready) {
    o2l_initialize("bench-iso");
    o2l_set_host("127.0.0.1", router_port, router_port);
    double limit = nb_now() + 30;
    while (o2l_status() < O2L_CONNECTED && nb_now() < limit) {
        o2l_poll();
        usleep(1000);
    }
    atomic_store(&sh->ready[ready], 1);
    wait_go();
}

static void ctl_tx_process(int router_port) {
    lite_connect(router_port, READY_CTL_TX);
    int32_t seq = 0;
    for (double t = sh->t0;; t += TICK_S) {
        sleep_until(t);
        if (nb_now() > t + TICK_S) t = nb_now(); /* fell behind: no burst of catch-up sends */
        o2l_poll();
        int phase = phase_at(nb_now()); /* when it leaves, should this process be late */
        o2l_send_start("/ctl/x", 0, "iid", true);
        o2l_add_int32(phase);
        o2l_add_int32(seq++);
        o2l_add_double(nb_now());
        if (o2l_send() != O2L_SUCCESS)
            sh->ctl_failed++;
        else if (phase >= PHASE_IDLE && phase < PHASE_END)
            sh->ctl_sent[phase - PHASE_IDLE]++;
        if (phase == PHASE_END) break;
    }
    double linger = nb_now() + 0.5; /* the end message leaves before the socket closes */
    while (nb_now() < linger) {
        o2l_poll();
        usleep(1000);
    }
    o2l_finish();
    _exit(0);
}

/* A datagram socket connected to the router's UDP port, for the flood's bursts. */
static int udp_to(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) _exit(1);
    return fd;
}

#define SEG_MAX 64   /* datagrams in one segmented send (older kernels' limit) */
#define FLOOD_MSG 64 /* room for one flood message */

typedef struct burst {
    uint8_t bytes[MAX_BURST * FLOOD_MSG]; /* the messages, one after another */
    size_t len[MAX_BURST];
    int n;
    int segs[MAX_BURST]; /* datagrams in each send */
    struct iovec iov[MAX_BURST];
    struct mmsghdr msgs[MAX_BURST];
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } cmsg[MAX_BURST];
} burst;

/* Build a burst of `count` flood messages with O2lite, back to back in one buffer. */
static void build_burst(burst *b, int count, int phase, int32_t *seq) {
    double sent_at = nb_now();
    size_t at = 0;
    for (b->n = 0; b->n < count; b->n++) {
        size_t len;
        o2l_send_start("/sink/x", 0, "iid", false);
        o2l_add_int32(phase);
        o2l_add_int32((*seq)++);
        o2l_add_double(sent_at);
        const uint8_t *m = o2l_message_bytes(&len);
        if (!len || len > FLOOD_MSG) break;
        memcpy(b->bytes + at, m, len);
        b->len[b->n] = len;
        at += len;
    }
}

/* Cut the burst into sends: single datagrams, or (segmented) runs of up to
 * SEG_MAX same-size ones with their size in a UDP_SEGMENT message. */
static int cut_burst(burst *b, bool segmented) {
    int sends = 0;
    size_t at = 0;
    for (int i = 0; i < b->n; sends++) {
        int k = 1;
        while (segmented && i + k < b->n && k < SEG_MAX && b->len[i + k] == b->len[i])
            k++;
        size_t bytes = 0;
        for (int j = 0; j < k; j++)
            bytes += b->len[i + j];
        b->iov[sends] = (struct iovec){.iov_base = b->bytes + at, .iov_len = bytes};
        struct msghdr *h = &b->msgs[sends].msg_hdr;
        *h = (struct msghdr){.msg_iov = &b->iov[sends], .msg_iovlen = 1};
        if (k > 1) {
            h->msg_control = b->cmsg[sends].buf;
            h->msg_controllen = sizeof b->cmsg[sends].buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t size = (uint16_t)b->len[i];
            memcpy(CMSG_DATA(c), &size, sizeof size);
        }
        b->segs[sends] = k;
        at += bytes;
        i += k;
    }
    return sends;
}

/* Send the burst; returns the datagrams that left. A kernel that refuses
 * segmentation (EIO, EINVAL) gets single datagrams from then on. */
static int send_burst(int fd, burst *b, bool segmented) {
    int sends = cut_burst(b, segmented);
    int done = 0, left = 0;
    while (done < sends) {
        int k = sendmmsg(fd, b->msgs + done, (unsigned)(sends - done), 0);
        if (k < 0 && segmented && done == 0 && (errno == EIO || errno == EINVAL)) {
            atomic_store(&sh->no_segmentation, 1);
            return send_burst(fd, b, false);
        }
        if (k <= 0) break;
        for (int i = done; i < done + k; i++)
            left += b->segs[i];
        done += k;
    }
    return left;
}

/* Each burst's messages are built by O2lite and leave together, as a sensor
 * gateway would batch them: one sendto per message would make this load
 * generator the busiest process on a 2-core machine, and the figure would be
 * about it rather than about the router. The flood-single phase sends each as
 * its own datagram in one sendmmsg: that system call then runs the kernel's
 * loopback path 200 times, and on a kernel without involuntary preemption
 * (PREEMPT_NONE) whatever else waits for that core waits for all of it. */
static void flood_tx_process(int router_port) {
    lite_connect(router_port, READY_FLOOD_TX);
    int fd = udp_to(router_port);
    int count = (int)(sh->flood_rate * TICK_S);
    if (count > MAX_BURST) count = MAX_BURST;
    static burst b;
    int32_t seq = 0;
    for (double t = sh->t0; t < end_time(); t += TICK_S) {
        sleep_until(t);
        o2l_poll();
        /* A burst that falls behind into another slot is skipped, not sent there. */
        int phase = phase_at(t);
        if (!is_flood(phase) || phase_at(nb_now()) != phase) continue;
        int f = phase - PHASE_FLOOD;
        build_burst(&b, count, phase, &seq);
        bool segmented = phase == PHASE_FLOOD && !atomic_load(&sh->no_segmentation);
        int sent = send_burst(fd, &b, segmented);
        sh->flood_sent[f] += sent;
        sh->flood_failed[f] += count - sent;
    }
    close(fd);
    o2l_finish();
    _exit(0);
}

/* ---- the coordinator ---- */

/* The machine's count of UDP datagrams dropped for a full receive buffer (/proc/net/snmp). */
static long udp_rcvbuf_errors(void) {
    FILE *f = fopen("/proc/net/snmp", "r");
    if (!f) return -1;
    char names[1024], values[1024];
    long result = -1;
    while (fgets(names, sizeof names, f) && fgets(values, sizeof values, f)) {
        if (strncmp(names, "Udp:", 4) != 0 || strncmp(values, "Udp:", 4) != 0) continue;
        char *sn, *sv;
        char *n = strtok_r(names, " \n", &sn), *v = strtok_r(values, " \n", &sv);
        for (; n && v; n = strtok_r(NULL, " \n", &sn), v = strtok_r(NULL, " \n", &sv))
            if (strcmp(n, "RcvbufErrors") == 0) result = atol(v);
        break;
    }
    fclose(f);
    return result;
}

static void report_phase(const br_meter *m, int phase, const char *path, double *p50, double *p99) {
    int n = sh->n_lat[phase];
    double *copy = malloc(sizeof *copy * (size_t)(n ? n : 1));
    memcpy(copy, sh->lat[phase], sizeof *copy * (size_t)n);
    br_report(m, &(br_result){.bench = "isolation",
                              .path = path,
                              .payload = 48,
                              .count = n,
                              .lat_s = sh->lat[phase],
                              .n_lat = n,
                              .no_cpu = true});
    if (n) {
        *p99 = nb_percentile(copy, n, 0.99);
        *p50 = nb_percentile(copy, n, 0.5);
        printf("  %-28s %6d msgs  p50 %8.1f us  p99 %8.1f us  p99.9 %8.1f us  max %8.1f us\n", path,
               n, nb_percentile(copy, n, 0.5) * 1e6, *p99 * 1e6,
               nb_percentile(copy, n, 0.999) * 1e6, nb_percentile(copy, n, 1.0) * 1e6);
    }
    free(copy);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked children must not repeat buffered lines */
    double seconds = 10;
    int rate = 200000;
    int a = 1;
    if (a < argc && strcmp(argv[a], "--quick") == 0) {
        seconds = 2;
        a++;
    }
    if (a < argc) seconds = atof(argv[a++]);
    if (a < argc) rate = atoi(argv[a++]);
    if (seconds <= 0 || rate < 1000) {
        fprintf(stderr, "usage: isolation [--quick] [seconds] [flood msgs/s >= 1000]\n");
        return 2;
    }
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) return 1;
    memset(sh, 0, sizeof *sh);
    seconds = SLOT_S * (int)(seconds / SLOT_S + 0.5); /* whole slots, at least one */
    if (seconds < SLOT_S) seconds = SLOT_S;
    sh->seconds = seconds;
    sh->flood_rate = rate;
    printf("bench isolation: 1 kHz TCP control stream (O2lite -> router -> ctl), %.1f s idle, "
           "%.1f s beside %d msgs/s UDP (O2lite -> router -> sink) sent segmented, %.1f s beside "
           "it sent as single datagrams, in %.1f s slots, 127.0.0.1\n",
           seconds, seconds, rate, seconds, SLOT_S);
    br_meter meter;
    br_start(&meter);
    int p_router = nb_free_port(), p_ctl = nb_free_port(), p_sink = nb_free_port();
    pid_t pids[5];
    if ((pids[0] = fork()) == 0) router_process(p_router, p_ctl, p_sink);
    if ((pids[1] = fork()) == 0) receiver_process(p_ctl, p_router, true);
    if ((pids[2] = fork()) == 0) receiver_process(p_sink, p_router, false);
    if ((pids[3] = fork()) == 0) ctl_tx_process(p_router);
    if ((pids[4] = fork()) == 0) flood_tx_process(p_router);
    double limit = nb_now() + 30;
    bool ready = false;
    while (!ready && nb_now() < limit) {
        ready = true;
        for (int i = 0; i < N_READY; i++)
            ready = ready && atomic_load(&sh->ready[i]);
        usleep(5000);
    }
    if (!ready) {
        printf("  the processes did not connect within 30 s\n");
        for (int i = 0; i < 5; i++)
            kill(pids[i], SIGKILL);
        return 1;
    }
    sh->t0 = nb_now() + 0.2;
    atomic_store(&sh->go, 1);
    /* Per measured phase: the router's CPU (share of one core), how long the router and
     * ctl-rx waited for a CPU while runnable (the part of the lateness that is this
     * machine's scheduling, not the router's loop), and the machine's UDP drops in its
     * slots (for the idle phase, where the queues drain). */
    double cpu_in[N_PHASES] = {0}, wait_in[2][N_PHASES] = {{0}};
    long rcvbuf_drops = 0;
    double t = sh->t0 + 1.0;
    sleep_until(t);
    double cpu = nb_proc_cpu_s(pids[0]);
    double waited[2] = {nb_proc_wait_s(pids[0]), nb_proc_wait_s(pids[1])};
    long rcvbuf = udp_rcvbuf_errors();
    for (int slot = 0; t + SLOT_S / 2 < end_time(); slot++) {
        t += SLOT_S;
        sleep_until(t);
        double c = nb_proc_cpu_s(pids[0]);
        long e = udp_rcvbuf_errors();
        cpu_in[slot % N_PHASES] += c - cpu;
        rcvbuf_drops += e - rcvbuf;
        cpu = c;
        rcvbuf = e;
        for (int p = 0; p < 2; p++) {
            double w = nb_proc_wait_s(pids[p]);
            wait_in[p][slot % N_PHASES] += w - waited[p];
            waited[p] = w;
        }
    }
    for (int i = 1; i < 5; i++)
        waitpid(pids[i], NULL, 0);
    kill(pids[0], SIGTERM);
    waitpid(pids[0], NULL, 0);

    static const char *const ctl_path[N_PHASES] = {"ctl-idle", "ctl-under-flood",
                                                   "ctl-under-flood-single"};
    static const char *const flood_path[2] = {"flood-to-sink", "flood-single-to-sink"};
    double p50[N_PHASES] = {0}, p99[N_PHASES] = {0};
    for (int m = 0; m < N_PHASES; m++)
        report_phase(&meter, m, ctl_path[m], &p50[m], &p99[m]);
    double got_rate[2];
    for (int f = 0; f < 2; f++) {
        got_rate[f] = (double)sh->flood_received[f] / sh->seconds;
        br_report(&meter, &(br_result){.bench = "isolation",
                                       .path = flood_path[f],
                                       .payload = 48,
                                       .count = sh->flood_received[f],
                                       .msgs_s = got_rate[f]});
        printf("  %s: %ld sent (%ld refused by the client), %ld received by sink-rx = %.0f msgs/s "
               "(%.1f %%)\n",
               flood_path[f], sh->flood_sent[f], sh->flood_failed[f], sh->flood_received[f],
               got_rate[f],
               sh->flood_sent[f] ? 100.0 * (double)sh->flood_received[f] / (double)sh->flood_sent[f]
                                 : 0);
    }
    if (atomic_load(&sh->no_segmentation))
        printf(
            "  this kernel refused segmented UDP sends: the flood phase sent single datagrams\n");
    printf("  router dropped %ld, held %ld; UDP datagrams this machine dropped for a full receive "
           "buffer: %ld\n",
           sh->router_dropped, sh->router_held, rcvbuf_drops);
    long sent = 0, got = 0;
    for (int m = 0; m < N_PHASES; m++) {
        sent += sh->ctl_sent[m];
        got += sh->n_lat[m];
    }
    printf("  control: %ld sent, %ld received (reliable: none may be lost), %ld out of order, "
           "%ld refused by the client\n",
           sent, got, sh->ctl_out_of_order, sh->ctl_failed);
    double cpu_pct[N_PHASES], router_wait[N_PHASES], ctl_rx_wait[N_PHASES]; /* ms per s */
    for (int m = 0; m < N_PHASES; m++) {
        cpu_pct[m] = cpu_in[m] / sh->seconds * 100;
        router_wait[m] = wait_in[0][m] / sh->seconds * 1e3;
        ctl_rx_wait[m] = wait_in[1][m] / sh->seconds * 1e3;
    }
    printf("  the router's CPU, %% of a core: %.1f idle, %.1f under the flood, %.1f under the "
           "single-datagram flood\n",
           cpu_pct[0], cpu_pct[1], cpu_pct[2]);
    printf("  waiting for a CPU while runnable, ms per s (idle, flood, flood-single): the router "
           "%.1f, %.1f, %.1f; ctl-rx %.1f, %.1f, %.1f\n",
           router_wait[0], router_wait[1], router_wait[2], ctl_rx_wait[0], ctl_rx_wait[1],
           ctl_rx_wait[2]);
    double ratio[N_PHASES], ratio50[N_PHASES];
    for (int m = 0; m < N_PHASES; m++) {
        ratio[m] = p99[0] > 0 ? p99[m] / p99[0] : -1;
        ratio50[m] = p50[0] > 0 ? p50[m] / p50[0] : -1;
    }
    printf("  control p99 under the flood / idle: %.2f (goal <= 2); p50: %.2f; "
           "under the single-datagram flood: p99 %.2f, p50 %.2f\n",
           ratio[1], ratio50[1], ratio[2], ratio50[2]);
    printf("ISOLATION p50_idle_us=%.2f p50_flood_us=%.2f ratio_p50=%.3f "
           "p99_idle_us=%.2f p99_flood_us=%.2f ratio=%.3f flood_msgs_s=%.0f "
           "flood_sent_s=%.0f p50_single_us=%.2f p99_single_us=%.2f ratio_p50_single=%.3f "
           "ratio_single=%.3f single_msgs_s=%.0f single_sent_s=%.0f segmented=%d ctl_lost=%ld "
           "router_cpu_idle_pct=%.1f router_cpu_flood_pct=%.1f router_cpu_single_pct=%.1f "
           "router_wait_idle_ms_s=%.1f router_wait_flood_ms_s=%.1f router_wait_single_ms_s=%.1f "
           "ctl_rx_wait_idle_ms_s=%.1f ctl_rx_wait_flood_ms_s=%.1f ctl_rx_wait_single_ms_s=%.1f\n",
           p50[0] * 1e6, p50[1] * 1e6, ratio50[1], p99[0] * 1e6, p99[1] * 1e6, ratio[1],
           got_rate[0], (double)sh->flood_sent[0] / sh->seconds, p50[2] * 1e6, p99[2] * 1e6,
           ratio50[2], ratio[2], got_rate[1], (double)sh->flood_sent[1] / sh->seconds,
           !atomic_load(&sh->no_segmentation), sent - got, cpu_pct[0], cpu_pct[1], cpu_pct[2],
           router_wait[0], router_wait[1], router_wait[2], ctl_rx_wait[0], ctl_rx_wait[1],
           ctl_rx_wait[2]);
    return sent == got ? 0 : 1;
}
