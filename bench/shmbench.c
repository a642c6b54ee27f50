#include "shmbench.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

double sb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t sb_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

o2h_router *sb_router(char *socket_path, size_t size, const char *extra) {
    snprintf(socket_path, size, "/tmp/o2sm-bench-%d-%ld.sock", (int)getpid(), (long)sb_now_ns());
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"bench\", \"log_level\": \"warn\", \"plugin_path\": [\"%s\"],"
             " \"clock\": {\"reference\": true},"
             " \"transports\": [{\"type\": \"shm\", \"name\": \"bench%d\", \"socket\": \"%s\","
             " \"ring_bytes\": 1048576%s}]}",
             SB_TRANSPORT_DIR, (int)getpid(), socket_path, extra ? extra : "");
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "bench.json", NULL, &err);
    if (!r || o2h_router_start(r) != O2H_OK) {
        fprintf(stderr, "router: %s\n", r ? "start failed" : err.message);
        exit(1);
    }
    return r;
}

typedef struct connector {
    const char *path;
    o2sm_options opts;
    o2sm_client *c;
    int err;
    atomic_int done;
} connector;

static void *connect_thread(void *arg) {
    connector *k = arg;
    k->c = o2sm_connect(k->path, &k->opts, &k->err);
    atomic_store(&k->done, 1);
    return NULL;
}

o2sm_client *sb_connect(o2h_router *r, const char *socket_path, int send_wait_ms,
                        uint32_t spin_max_ns) {
    connector k = {.path = socket_path,
                   .opts = {.struct_size = sizeof k.opts,
                            .label = "bench",
                            .send_wait_ms = send_wait_ms,
                            .spin_max_ns = spin_max_ns}};
    pthread_t t;
    pthread_create(&t, NULL, connect_thread, &k);
    while (!atomic_load(&k.done))
        o2h_router_poll(r, 1);
    pthread_join(t, NULL);
    if (!k.c) {
        fprintf(stderr, "o2sm_connect: %s\n", o2h_strerror(k.err));
        exit(1);
    }
    return k.c;
}

int sb_wait_service(o2h_router *r, const char *service, double limit_s) {
    double end = sb_now() + limit_s;
    while (o2h_status(r, service) < 0 && sb_now() < end)
        o2h_router_poll(r, 1);
    return o2h_status(r, service);
}

int sb_rings_new(sb_rings *r, uint64_t ring_bytes) {
    char name[64];
    snprintf(name, sizeof name, "/o2hub-bench-rings-%d", (int)getpid());
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return -1;
    shm_unlink(name);
    uint64_t hdr = o2sm_header_size();
    r->size = (size_t)(hdr + 2 * ring_bytes);
    if (ftruncate(fd, (off_t)r->size) != 0) {
        close(fd);
        return -1;
    }
    r->mem = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (r->mem == MAP_FAILED) return -1;
    o2sm_seg *s = r->mem;
    uint8_t *base = r->mem;
    o2sm_ring_attach(&r->a_tx, &s->to_host, base + hdr, ring_bytes, true);
    o2sm_ring_attach(&r->b_rx, &s->to_host, base + hdr, ring_bytes, false);
    o2sm_ring_attach(&r->b_tx, &s->to_client, base + hdr + ring_bytes, ring_bytes, true);
    o2sm_ring_attach(&r->a_rx, &s->to_client, base + hdr + ring_bytes, ring_bytes, false);
    return 0;
}

void sb_rings_free(sb_rings *r) {
    munmap(r->mem, r->size);
}

o2h_msg *sb_message(int64_t v) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_int64(b, v);
    o2h_msg *m = o2h_builder_finish(b, 0, "/bench/x", 0);
    o2h_builder_free(b);
    return m;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double sb_percentile(double *values, int n, double q) {
    qsort(values, (size_t)n, sizeof *values, cmp_double);
    int i = (int)(q * (n - 1) + 0.5);
    return values[i];
}
