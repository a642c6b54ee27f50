/*
 * bench/roundtrip — p50/p99 round-trip latency between two o2hub processes
 * (a message to a service in the other process, and its reply), over TCP
 * (reliable) and UDP (best effort), beside raw TCP and UDP ping-pong of the
 * same bytes. The paths take turns in blocks (see main), so a drift of the
 * machine's speed during the run does not favour one of them.
 *
 * Where the processes run decides the figure more than the software does: on
 * a VM a round trip between two CPUs waits for a halted vCPU to wake (tens
 * of µs each way), one on a single CPU does not, and an unpinned pair stays
 * wherever the scheduler first put it. So the pinger runs on one CPU and every
 * echoing process on another (two CPUs, the default), or all on one with
 * `--one-cpu` (the software's own cost; the paths are named "…-1cpu").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "benchreport.h"
#include "netbench.h"

/* The CPUs of the pinger and of every echoing process (see the top of this
 * file); -1 leaves a process unpinned. */
static int pinger_cpu = -1, echo_cpu = -1;

static void on_ping(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    if (argv[0]->i < 0) {
        *(bool *)user_data = true; /* the end */
        return;
    }
    if (o2h_msg_reliable(msg))
        o2h_send_cmd(r, "/back/pong", 0, "i", argv[0]->i);
    else
        o2h_send(r, "/back/pong", 0, "i", argv[0]->i);
}

static void on_pong(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    *(int32_t *)user_data = argv[0]->i;
}

static void echo_process(int port, int peer_port) {
    o2h_router *r = nb_router(port, peer_port);
    bool end = false;
    o2h_service_new(r, "echo");
    o2h_method_new(r, "/echo/ping", "i", on_ping, &end, false, true);
    double limit = nb_now() + 300;
    while (!end && nb_now() < limit)
        o2h_router_poll(r, 100);
    o2h_router_free(r);
    exit(0);
}

/*
 * The four paths run interleaved: after a warm-up, blocks of BLOCK round trips
 * take turns (the order rotating each block), so the speed of this machine,
 * which drifts within a run on a VM, weighs on every path alike and the
 * ratios to the raw floor are steadier than those of paths measured one
 * after another.
 */
#define BLOCK 250
#define WARMUP 100

typedef struct path path;
struct path {
    const char *what, *name;
    bool (*once)(path *p, int32_t i); /**< one round trip; false when lost */
    pid_t child;                      /**< the echoing process (CPU time is read per block) */
    int fd;                           /**< raw paths */
    struct sockaddr_in to;            /**< raw UDP */
    o2h_router *r;                    /**< o2hub paths */
    int32_t *last;
    bool reliable;
    double *rtt;
    int done, lost;
    double cpu_s;
};

static bool raw_tcp_once(path *p, int32_t i) {
    uint8_t frame[44] = {0};
    o2h_wr_u32(frame, 40);
    o2h_wr_u32(frame + 4, (uint32_t)i);
    if (write(p->fd, frame, sizeof frame) != (ssize_t)sizeof frame) return false;
    return nb_read_full(p->fd, frame, sizeof frame);
}

static bool raw_udp_once(path *p, int32_t i) {
    uint8_t msg[40] = {0};
    o2h_wr_u32(msg, (uint32_t)i);
    sendto(p->fd, msg, sizeof msg, 0, (struct sockaddr *)&p->to, sizeof p->to);
    return recv(p->fd, msg, sizeof msg, 0) == (ssize_t)sizeof msg;
}

static bool o2hub_once(path *p, int32_t i) {
    double t0 = nb_now();
    if (p->reliable)
        o2h_send_cmd(p->r, "/echo/ping", 0, "i", i);
    else
        o2h_send(p->r, "/echo/ping", 0, "i", i);
    while (*p->last != i && nb_now() - t0 < 1.0)
        o2h_router_poll(p->r, 1000);
    return *p->last == i;
}

static void run_block(path *p, int count, bool keep) {
    double cpu0 = nb_proc_cpu_s(getpid()) + nb_proc_cpu_s(p->child);
    for (int k = 0; k < count; k++) {
        double t0 = nb_now();
        int32_t i = (int32_t)(p->done + p->lost) + (keep ? WARMUP : k);
        if (!p->once(p, i)) {
            if (keep) p->lost++;
            continue;
        }
        if (keep) p->rtt[p->done++] = nb_now() - t0;
    }
    if (keep) p->cpu_s += nb_proc_cpu_s(getpid()) + nb_proc_cpu_s(p->child) - cpu0;
}

static void report(const path *p) {
    br_meter meter;
    br_start(&meter);
    br_report(&meter, &(br_result){.bench = "roundtrip",
                                   .path = p->name,
                                   .payload = 40,
                                   .count = p->done,
                                   .lat_s = p->rtt,
                                   .n_lat = p->done,
                                   .cpu_s = p->cpu_s});
    /* br_report has written the samples in order; sorting them now is harmless */
    double p50 = nb_percentile(p->rtt, p->done, 0.50), p99 = nb_percentile(p->rtt, p->done, 0.99);
    printf("  %-22s p50 %7.1f us   p99 %7.1f us", p->what, p50 * 1e6, p99 * 1e6);
    if (p->lost) printf("   (%d lost)", p->lost);
    printf("\n");
}

static void start_raw_tcp(path *p) {
    int port;
    int lfd = nb_tcp_listen(&port);
    p->child = fork();
    if (p->child == 0) {
        nb_pin_to(echo_cpu);
        int fd = nb_tcp_connect(port);
        uint8_t buf[44];
        while (nb_read_full(fd, buf, sizeof buf))
            (void)!write(fd, buf, sizeof buf);
        exit(0);
    }
    p->fd = accept(lfd, NULL, NULL);
    close(lfd);
}

static void start_raw_udp(path *p) {
    int port_a, port_b;
    p->fd = nb_udp_bind(&port_a);
    int b = nb_udp_bind(&port_b);
    p->child = fork();
    if (p->child == 0) {
        nb_pin_to(echo_cpu);
        close(p->fd);
        uint8_t buf[64];
        struct sockaddr_storage from;
        for (;;) {
            socklen_t len = sizeof from;
            ssize_t k = recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
            if (k <= 1) exit(0);
            sendto(b, buf, (size_t)k, 0, (struct sockaddr *)&from, len);
        }
    }
    close(b);
    p->to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port_b)};
    p->to.sin_addr.s_addr = htonl(0x7f000001);
}

/* One echoing o2hub process serves both o2hub paths. */
static o2h_router *start_o2hub(pid_t *child, int32_t *last) {
    int pa = nb_free_port(), pb = nb_free_port();
    *child = fork();
    if (*child == 0) {
        nb_pin_to(echo_cpu);
        echo_process(pb, pa);
    }
    o2h_router *r = nb_router(pa, pb);
    o2h_service_new(r, "back");
    o2h_method_new(r, "/back/pong", "i", on_pong, last, false, true);
    if (!nb_wait_service(r, "echo", 10)) exit(1);
    return r;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked children must not repeat buffered lines */
    int n = 10000;
    bool one_cpu = false;
    for (int k = 1; k < argc; k++) {
        if (strcmp(argv[k], "--one-cpu") == 0)
            one_cpu = true;
        else
            n = atoi(argv[k]);
    }
    nb_choose_cpus(one_cpu, &pinger_cpu, &echo_cpu);
    nb_pin_to(pinger_cpu);
    printf("bench roundtrip: %d round trips of a 1-argument message, 127.0.0.1, the four paths "
           "interleaved in blocks of %d, pinger on CPU %d, echo on CPU %d\n",
           n, BLOCK, pinger_cpu, echo_cpu);
    int32_t last = -1;
    pid_t o2hub_child;
    o2h_router *r = start_o2hub(&o2hub_child, &last);
    path paths[] = {
        {.what = "raw TCP (floor)", .name = "raw-tcp", .once = raw_tcp_once},
        {.what = "raw UDP (floor)", .name = "raw-udp", .once = raw_udp_once},
        {.what = "o2hub TCP", .name = "o2hub-tcp", .once = o2hub_once, .reliable = true},
        {.what = "o2hub UDP", .name = "o2hub-udp", .once = o2hub_once},
    };
    static const char *const one_cpu_names[] = {"raw-tcp-1cpu", "raw-udp-1cpu", "o2hub-tcp-1cpu",
                                                "o2hub-udp-1cpu"};
    enum { N_PATHS = sizeof paths / sizeof paths[0] };
    start_raw_tcp(&paths[0]);
    start_raw_udp(&paths[1]);
    for (int k = 2; k < N_PATHS; k++) {
        paths[k].r = r;
        paths[k].last = &last;
        paths[k].child = o2hub_child;
    }
    for (int k = 0; k < N_PATHS; k++) {
        if (one_cpu) paths[k].name = one_cpu_names[k];
        paths[k].rtt = malloc(sizeof *paths[k].rtt * (size_t)(n > 0 ? n : 1));
        run_block(&paths[k], WARMUP, false);
    }
    for (int block = 0, left = n; left > 0; block++, left -= BLOCK)
        for (int k = 0; k < N_PATHS; k++)
            run_block(&paths[(block + k) % N_PATHS], left < BLOCK ? left : BLOCK, true);

    o2h_send_cmd(r, "/echo/ping", 0, "i", -1);
    double linger = nb_now() + 0.2;
    while (nb_now() < linger)
        o2h_router_poll(r, 10);
    close(paths[0].fd);
    sendto(paths[1].fd, "x", 1, 0, (struct sockaddr *)&paths[1].to, sizeof paths[1].to);
    for (int k = 0; k < 3; k++)
        waitpid(paths[k].child, NULL, 0);
    for (int k = 0; k < N_PATHS; k++)
        report(&paths[k]);
    for (int k = 0; k < N_PATHS; k++)
        free(paths[k].rtt);
    close(paths[1].fd);
    o2h_router_free(r);
    return 0;
}
