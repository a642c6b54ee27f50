/*
 * GET /stats: every counter of the router (host->stats->text, ABI 1.1) and
 * this transport's own, in Prometheus' text exposition format 0.0.4, under
 * the same access rules as the WebSocket (ws_access.c). "stats": false
 * turns it off (404, as any missing file).
 *
 * On the loop (the default) each request reads the counters as they are.
 * With "mhd_thread" requests are answered on MHD's thread, which must not
 * call the host: the loop refreshes a snapshot every STATS_PERIOD seconds
 * and MHD's thread serves it, so values are at most that old.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_internal.h"

#define STATS_PERIOD 1.0
#define STATS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The router's text, malloc'd (NULL: no memory, or a router without ABI 1.1). */
static char *router_text(ws_transport *tr) {
    if (!O2H_HAS(tr->host, stats) || !tr->host->stats) return NULL;
    size_t size = 16384;
    for (int tries = 0; tries < 4; tries++) {
        char *buf = malloc(size);
        if (!buf) return NULL;
        size_t need = tr->host->stats->text(tr->self, buf, size);
        if (need < size) return buf;
        free(buf);
        size = need + 4096; /* a service may have appeared meanwhile */
    }
    return NULL;
}

static void refresh(void *ctx) {
    ws_transport *tr = ctx;
    char *text = router_text(tr);
    if (!text) return; /* keep the last one */
    pthread_mutex_lock(&tr->stats_lock);
    char *old = tr->stats_snapshot;
    tr->stats_snapshot = text;
    tr->stats_port = tr->port; /* tr->port is the loop's */
    pthread_mutex_unlock(&tr->stats_lock);
    free(old);
}

int o2h_ws_stats_start(ws_transport *tr) {
    if (!tr->stats || !tr->mhd_thread) return O2H_OK;
    if (pthread_mutex_init(&tr->stats_lock, NULL) != 0) return O2H_NO_MEMORY;
    tr->stats_lock_ready = true;
    return O2H_OK;
}

int o2h_ws_stats_listening(ws_transport *tr) {
    if (!tr->stats_lock_ready) return O2H_OK;
    refresh(tr);
    tr->stats_timer =
        tr->host->loop->timer_start(tr->self, STATS_PERIOD, STATS_PERIOD, refresh, tr);
    return tr->stats_timer ? O2H_OK : O2H_NO_MEMORY;
}

void o2h_ws_stats_stop(ws_transport *tr) {
    if (tr->stats_timer) tr->host->loop->timer_stop(tr->stats_timer);
    tr->stats_timer = NULL;
    if (tr->stats_lock_ready) pthread_mutex_destroy(&tr->stats_lock);
    tr->stats_lock_ready = false;
    free(tr->stats_snapshot);
    tr->stats_snapshot = NULL;
}

/* This transport's own counters, after the router's. */
static void own_counters(ws_transport *tr, int port, char *out, size_t size) {
    int clients = tr->mhd_thread ? atomic_load(&tr->clients) : tr->n_conns;
    snprintf(out, size,
             "# HELP o2hub_websocket_clients WebSocket clients connected now.\n"
             "# TYPE o2hub_websocket_clients gauge\n"
             "o2hub_websocket_clients{port=\"%d\"} %d\n"
             "# HELP o2hub_websocket_upgrades_busy WebSocket upgrades refused with 503: the "
             "hand-off queue was full.\n"
             "# TYPE o2hub_websocket_upgrades_busy counter\n"
             "o2hub_websocket_upgrades_busy{port=\"%d\"} %u\n"
             "# HELP o2hub_websocket_log_lines_dropped Log lines of the HTTP thread lost: "
             "its ring was full.\n"
             "# TYPE o2hub_websocket_log_lines_dropped counter\n"
             "o2hub_websocket_log_lines_dropped{port=\"%d\"} %u\n"
             "# HELP o2hub_websocket_stats_scrapes Answers to GET /stats.\n"
             "# TYPE o2hub_websocket_stats_scrapes counter\n"
             "o2hub_websocket_stats_scrapes{port=\"%d\"} %u\n",
             port, clients, port, atomic_load(&tr->refused_full), port,
             atomic_load(&tr->logs_dropped), port, atomic_load(&tr->stats_scrapes));
}

static char *copy_snapshot(ws_transport *tr, int *port) {
    pthread_mutex_lock(&tr->stats_lock);
    char *text = tr->stats_snapshot ? strdup(tr->stats_snapshot) : NULL;
    *port = tr->stats_port;
    pthread_mutex_unlock(&tr->stats_lock);
    return text;
}

enum MHD_Result o2h_ws_serve_stats(ws_transport *tr, struct MHD_Connection *conn) {
    int status;
    char what[300];
    const char *refusal =
        o2h_ws_http_refusal(tr, conn, "GET", WS_STATS_PATH, &status, what, sizeof what);
    if (refusal) {
        if (tr->mhd_thread)
            o2h_ws_log(tr, O2H_LOG_WARN, "refused %s", what); /* no host call here */
        else
            tr->host->proc->refused(tr->self, what);
        char *body = strdup(refusal);
        return body ? o2h_ws_respond(conn, (unsigned)status, "text/plain; charset=utf-8", body,
                                     strlen(body))
                    : MHD_NO;
    }
    int port = 0;
    char *router = tr->mhd_thread ? copy_snapshot(tr, &port) : router_text(tr);
    if (!tr->mhd_thread) port = tr->port;
    if (!router) {
        char *body =
            strdup(O2H_HAS(tr->host, stats)
                       ? "No counters yet.\n"
                       : "No counters: this router gives plugins none (ABI 1.1 needed).\n");
        return body ? o2h_ws_respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                     "text/plain; charset=utf-8", body, strlen(body))
                    : MHD_NO;
    }
    atomic_fetch_add(&tr->stats_scrapes, 1);
    char own[2048];
    own_counters(tr, port, own, sizeof own);
    size_t n = strlen(router), m = strlen(own);
    char *body = realloc(router, n + m + 1);
    if (!body) {
        free(router);
        return MHD_NO;
    }
    memcpy(body + n, own, m + 1);
    return o2h_ws_respond(conn, MHD_HTTP_OK, STATS_TYPE, body, strlen(body));
}
