/*
 * What one HTTP client may hold before its request is in:
 *  - "max_per_address": connections from one IP address at once, WebSocket
 *    clients included (MHD counts an upgraded connection until its socket
 *    is handed back). MHD enforces it (MHD_OPTION_PER_IP_CONNECTION_LIMIT):
 *    it closes a connection over it as soon as it has accepted it.
 *  - "header_timeout": seconds a connection has to send a whole request,
 *    from its start or from the end of its previous request. libmicrohttpd
 *    0.9.75 only has an inactivity timeout (MHD_OPTION_CONNECTION_TIMEOUT),
 *    which a client that trickles a byte every few seconds never reaches,
 *    and no call that closes a connection from outside its own callbacks.
 *    So each connection waiting for a request is on a list in the order of
 *    its deadline (all deadlines are "now + header_timeout" when set), and a
 *    loop timer shuts down, with shutdown(SHUT_RDWR), the socket of each one
 *    past its deadline. MHD then finds end of file on it and closes it as
 *    it closes any connection: its counts, per-address limit and callbacks
 *    stay right, which closing the descriptor behind its back would break.
 * With "mhd_thread" MHD's callbacks below run on MHD's thread and the timer
 * on the loop: the list is under `lock`. A descriptor on the list is still
 * open, since MHD tells us a connection is closed (on_connection) before it
 * closes its socket.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "ws_internal.h"

/* One HTTP connection (MHD's socket_context). */
struct ws_http_conn {
    struct ws_http_conn *prev, *next; /* on the waiting list */
    int fd;
    double deadline; /* for the whole request, while waiting */
    bool waiting;    /* on the list */
    bool upgraded;   /* now a WebSocket: no request to wait for any more */
    char peer[64];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int o2h_ws_read_limits(ws_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    if (h->cfg->get_int(cfg, "max_per_address", 32, 0, 65536, &tr->max_per_address) ==
            O2H_CONFIG_ERROR ||
        h->cfg->get_int(cfg, "header_timeout", 10, 1, 3600, &tr->header_timeout) ==
            O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    return O2H_OK;
}

/* With the lock held. */
static void wait_for_request(ws_transport *tr, ws_http_conn *hc) {
    hc->deadline = now_s() + (double)tr->header_timeout;
    hc->waiting = true;
    hc->next = NULL;
    hc->prev = tr->waiting_tail;
    if (hc->prev)
        hc->prev->next = hc;
    else
        tr->waiting_head = hc;
    tr->waiting_tail = hc;
}

/* With the lock held. */
static void stop_waiting(ws_transport *tr, ws_http_conn *hc) {
    if (!hc->waiting) return;
    hc->waiting = false;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        tr->waiting_head = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    else
        tr->waiting_tail = hc->prev;
    hc->prev = hc->next = NULL;
}

static ws_http_conn *http_conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void conn_started(ws_transport *tr, struct MHD_Connection *conn, void **socket_context) {
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    ws_http_conn *hc = fi ? calloc(1, sizeof *hc) : NULL;
    if (!hc) {
        o2h_ws_log(tr, O2H_LOG_WARN, "no memory: an HTTP connection has no header_timeout");
        return;
    }
    hc->fd = fi->connect_fd;
    o2h_ws_client_address(conn, hc->peer, sizeof hc->peer);
    pthread_mutex_lock(&tr->limits_lock);
    wait_for_request(tr, hc);
    pthread_mutex_unlock(&tr->limits_lock);
    *socket_context = hc;
}

void o2h_ws_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    ws_transport *tr = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_started(tr, conn, socket_context);
        return;
    }
    ws_http_conn *hc = *socket_context;
    if (hc) {
        pthread_mutex_lock(&tr->limits_lock);
        stop_waiting(tr, hc);
        pthread_mutex_unlock(&tr->limits_lock);
        free(hc);
        *socket_context = NULL;
    }
    /* On the loop a closed connection asks for one more MHD_run (websocket.c). */
    o2h_ws_mhd_run_soon(tr);
}

void o2h_ws_request_in(ws_transport *tr, struct MHD_Connection *conn, bool upgrading) {
    ws_http_conn *hc = http_conn_of(conn);
    if (!hc) return;
    pthread_mutex_lock(&tr->limits_lock);
    stop_waiting(tr, hc);
    hc->upgraded = upgrading;
    pthread_mutex_unlock(&tr->limits_lock);
}

void o2h_ws_request_done(ws_transport *tr, struct MHD_Connection *conn) {
    ws_http_conn *hc = http_conn_of(conn);
    if (!hc) return;
    pthread_mutex_lock(&tr->limits_lock);
    if (!hc->upgraded && !hc->waiting) wait_for_request(tr, hc); /* kept alive: the next one */
    pthread_mutex_unlock(&tr->limits_lock);
}

/* The loop's timer: the connections past their deadline are shut down (each
 * once: it leaves the list) and counted as refused; MHD closes them. */
static void on_limits_tick(void *ctx) {
    ws_transport *tr = ctx;
    char what[8][160];
    int n = 0, more = 0;
    double now = now_s();
    pthread_mutex_lock(&tr->limits_lock);
    ws_http_conn *hc;
    while ((hc = tr->waiting_head) && hc->deadline <= now) {
        shutdown(hc->fd, SHUT_RDWR);
        if (n < 8)
            snprintf(what[n++], sizeof what[0],
                     "HTTP connection from %s: no whole request in %llds (\"header_timeout\")",
                     hc->peer, (long long)tr->header_timeout);
        else
            more++;
        stop_waiting(tr, hc);
    }
    pthread_mutex_unlock(&tr->limits_lock);
    for (int i = 0; i < n; i++) /* outside the lock: MHD's thread may be waiting for it */
        tr->host->proc->refused(tr->self, what[i]);
    for (int i = 0; i < more; i++)
        tr->host->proc->refused(tr->self, "HTTP connection: no whole request in time");
    if (n) o2h_ws_mhd_run_soon(tr); /* on the loop, MHD sees the end of file sooner */
}

int o2h_ws_limits_start(ws_transport *tr) {
    if (pthread_mutex_init(&tr->limits_lock, NULL) != 0) return O2H_NO_MEMORY;
    tr->limits_lock_ready = true;
    /* A quarter of the deadline, at most 1 s: a late client goes within that of it. */
    double tick = (double)tr->header_timeout / 4.0;
    if (tick > 1.0) tick = 1.0;
    tr->limits_timer = tr->host->loop->timer_start(tr->self, tick, tick, on_limits_tick, tr);
    return tr->limits_timer ? O2H_OK : O2H_NO_MEMORY;
}

void o2h_ws_limits_stop(ws_transport *tr) {
    if (tr->limits_timer) tr->host->loop->timer_stop(tr->limits_timer);
    tr->limits_timer = NULL;
    if (tr->limits_lock_ready) pthread_mutex_destroy(&tr->limits_lock);
    tr->limits_lock_ready = false;
}
