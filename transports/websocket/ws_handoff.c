/*
 * "mhd_thread": true: MHD runs on its own thread and must never call the
 * host table, so upgraded sockets and log lines reach the loop through two
 * lock-free rings (handoff.h) and an eventfd the loop watches. An upgrade
 * reserves its slot before the 101 goes out (ws_http.c), so the hand-over
 * itself cannot find the ring full; at stop the loop waits, bounded, until
 * every reservation is handed over or given back.
 */
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ws_internal.h"

#define LOG_QUEUE 256     /* log lines from MHD's thread waiting for the loop */
#define STOP_WAIT_MS 2000 /* at stop, how long we wait for upgrades in flight */

/* An upgraded socket on its way from MHD's thread to the loop. */
typedef struct ws_handoff {
    MHD_socket sock;
    struct MHD_UpgradeResponseHandle *urh;
    char peer[64]; /* the client's address, as o2h_ws_adopt() logs it */
    size_t extra_len;
    char extra[]; /* bytes that came after the upgrade request */
} ws_handoff;

/* Wake the loop: something is in a ring (or a counter moved). */
void o2h_ws_handoff_signal(ws_transport *tr) {
    uint64_t one = 1;
    ssize_t w = write(tr->handoff_efd, &one, sizeof one);
    (void)w; /* EAGAIN only when the counter is saturated: the loop is awake anyway */
}

static bool on_loop_thread(const ws_transport *tr) {
    return !tr->mhd_thread || pthread_equal(pthread_self(), tr->loop_thread);
}

/* host->log->write from whichever thread runs MHD's callbacks: on MHD's own thread
 * the line goes to the loop through the `logs` ring (lost and counted when
 * it is full). The first byte of a queued line is the level. */
void o2h_ws_log(ws_transport *tr, int level, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + 1, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (on_loop_thread(tr)) {
        tr->host->log->write(tr->self, level, "%s", line + 1);
        return;
    }
    line[0] = (char)('0' + level);
    char *copy = strdup(line);
    if (!copy || !handoff_push(&tr->logs, copy)) {
        free(copy);
        atomic_fetch_add(&tr->logs_dropped, 1);
        if (level <= O2H_LOG_WARN) atomic_fetch_add(&tr->logs_dropped_notable, 1);
    }
    o2h_ws_handoff_signal(tr);
}

void o2h_ws_release_reservation(ws_transport *tr) {
    atomic_fetch_sub(&tr->pending, 1);
    o2h_ws_handoff_signal(tr); /* ws_stop may be waiting for pending to reach 0 */
}

void o2h_ws_handoff_upgrade(ws_transport *tr, MHD_socket sock,
                            struct MHD_UpgradeResponseHandle *urh, const char *peer,
                            const char *extra, size_t extra_len) {
    ws_handoff *h = malloc(sizeof *h + extra_len);
    if (h) {
        h->sock = sock;
        h->urh = urh;
        snprintf(h->peer, sizeof h->peer, "%s", peer);
        h->extra_len = extra_len;
        if (extra_len) memcpy(h->extra, extra, extra_len);
    }
    /* The push cannot fail: pending <= handoff_cap <= the ring's capacity. */
    if (!h || !handoff_push(&tr->upgrades, h)) {
        free(h);
        o2h_ws_upgrade_close(tr, urh);
        o2h_ws_release_reservation(tr);
        return;
    }
    o2h_ws_handoff_signal(tr);
}

/* What MHD's thread could not do since last time, counted there, told here. */
static void report_losses(ws_transport *tr) {
    unsigned refused = atomic_load(&tr->refused_full);
    if (refused != tr->refused_seen) {
        tr->host->log->write(
            tr->self, O2H_LOG_WARN,
            "%u WebSocket upgrade(s) refused with HTTP 503: the hand-off queue to the "
            "loop was full (mhd_queue %lld; %u refused in all)",
            refused - tr->refused_seen, (long long)tr->handoff_cap, refused);
        tr->refused_seen = refused;
    }
    /* Only lost warnings and errors are worth a warning: under a flood of bad
     * requests the lost lines are mostly "HTTP 404" debug lines. */
    unsigned dropped = atomic_load(&tr->logs_dropped);
    unsigned notable = atomic_load(&tr->logs_dropped_notable);
    if (dropped != tr->dropped_seen) {
        tr->host->log->write(
            tr->self, notable != tr->notable_seen ? O2H_LOG_WARN : O2H_LOG_DEBUG,
            "%u log line(s) of the HTTP thread lost (%u warnings or errors): its queue "
            "to the loop was full",
            dropped - tr->dropped_seen, notable - tr->notable_seen);
        tr->dropped_seen = dropped;
        tr->notable_seen = notable;
    }
}

/* What take_handoffs does with an upgraded socket. */
enum handoff_fate { HANDOFF_ADOPT, HANDOFF_CLOSE, HANDOFF_FORGET /* MHD has stopped */ };

/* The loop takes what MHD's thread queued (the eventfd is readable). */
static void take_handoffs(ws_transport *tr, enum handoff_fate fate) {
    uint64_t n;
    ssize_t r = read(tr->handoff_efd, &n, sizeof n);
    (void)r;
    char *line;
    while ((line = handoff_pop(&tr->logs))) {
        tr->host->log->write(tr->self, line[0] - '0', "%s", line + 1);
        free(line);
    }
    ws_handoff *h;
    while ((h = handoff_pop(&tr->upgrades))) {
        atomic_fetch_sub(&tr->pending, 1);
        if (fate == HANDOFF_ADOPT)
            o2h_ws_adopt(tr, h->sock, h->urh, h->peer, h->extra, h->extra_len);
        else if (fate == HANDOFF_CLOSE)
            o2h_ws_upgrade_close(tr, h->urh);
        free(h);
    }
    report_losses(tr);
}

static void on_handoff_event(void *ctx, int fd, unsigned events) {
    (void)fd;
    (void)events;
    take_handoffs(ctx, HANDOFF_ADOPT);
}

/* "mhd_thread": the eventfd and the rings, before MHD's thread starts. */
int o2h_ws_handoff_start(ws_transport *tr) {
    atomic_store(&tr->pending, 0);
    atomic_store(&tr->clients, 0);
    atomic_store(&tr->stopping, false);
    tr->loop_thread = pthread_self();
    if (handoff_init(&tr->upgrades, (size_t)tr->handoff_cap) != 0 ||
        handoff_init(&tr->logs, LOG_QUEUE) != 0)
        return O2H_NO_MEMORY;
    tr->handoff_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (tr->handoff_efd < 0) return O2H_SOCKET_ERROR;
    tr->handoff_watch =
        tr->host->loop->watch_fd(tr->self, tr->handoff_efd, O2H_EV_READ, on_handoff_event, tr);
    return tr->handoff_watch ? O2H_OK : O2H_SOCKET_ERROR;
}

/* "mhd_thread": no more upgrades; close those handed over and not taken,
 * and wait (bounded) until MHD's thread has handed over or given back every
 * slot it reserved, so that none arrives once we stop looking. */
void o2h_ws_handoff_quiesce(ws_transport *tr) {
    atomic_store(&tr->stopping, true);
    if (tr->handoff_watch) tr->host->loop->watch_remove(tr->handoff_watch);
    tr->handoff_watch = NULL;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        take_handoffs(tr, HANDOFF_CLOSE);
        if (atomic_load(&tr->pending) <= 0) return;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= STOP_WAIT_MS) {
            tr->host->log->write(tr->self, O2H_LOG_WARN,
                                 "%d WebSocket upgrade(s) still in flight at stop: MHD closes them",
                                 atomic_load(&tr->pending));
            return;
        }
        struct pollfd p = {.fd = tr->handoff_efd, .events = POLLIN};
        poll(&p, 1, (int)(STOP_WAIT_MS - waited)); /* woken by o2h_ws_handoff_signal */
    }
}

/* After MHD's thread has ended: the last log lines, then the rings go. */
void o2h_ws_handoff_stop(ws_transport *tr) {
    if (tr->handoff_efd >= 0) {
        take_handoffs(tr, HANDOFF_FORGET);
        close(tr->handoff_efd);
    }
    tr->handoff_efd = -1;
    handoff_free(&tr->upgrades);
    handoff_free(&tr->logs);
}
