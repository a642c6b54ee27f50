/*
 * The WebSocket transport: an HTTP server (libmicrohttpd) that serves static
 * files from a root folder and upgrades GET /o2ws to a WebSocket carrying
 * O2's O2ws text protocol (docs/websocket.md#o2ws). Each WebSocket client that
 * joins with /_o2/ws/dy becomes a bridge (host->bridge->bridge_new): its services
 * are offered by this process, and messages the router sends them arrive
 * at o2h_ws_send() (ws_o2ws.c) as O2 messages, converted to O2ws text.
 *
 * This file is the plugin's lifecycle (config, start, stop), libmicrohttpd's
 * place on the loop and the descriptor; ws_internal.h lists the other files.
 *
 * Loop integration, two modes (docs/websocket.md compares them):
 *  - default: MHD runs in "external epoll" mode on the router's loop thread.
 *    MHD's epoll descriptor is watched with host->loop->watch_fd, MHD_run() is
 *    called when it is readable and when the timer armed from
 *    MHD_get_timeout() fires.
 *  - "mhd_thread": true: MHD runs its own polling thread (epoll). Static
 *    files are answered there entirely; an upgraded socket, and log lines,
 *    are handed to the loop through lock-free rings (handoff.h, ws_handoff.c)
 *    and an eventfd the loop watches, so every call into the core still
 *    happens on the loop thread. See "Threads" at struct ws_transport.
 * Either way an upgraded connection's socket is then a stream of this
 * plugin on the loop (ws_conn.c, transports/common/stream.h, as tcp's
 * connections are), so WebSocket traffic never goes through MHD.
 *
 * Config: { "type": "websocket", "host": "127.0.0.1", "port": 8080,
 *           "root": "www", "mounts": [{"url": "/sdk/", "root": "../sdk/js"}],
 *           "max_frame": 65536, "max_clients": 256,
 *           "send_queue_bytes": 4194304, "mhd_thread": false, "mhd_queue": 64,
 *           "allowed_origins": ["https://surface.example"], "token_env": "O2HUB_TOKEN",
 *           "max_per_address": 32, "header_timeout": 10, "stats": true }
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_path.h"
#include "tls_files.h"
#include "netaddr.h"
#include "ws_internal.h"

/* ---- small helpers ---- */

static char *join_path(const char *dir, const char *path) {
    size_t n = strlen(dir) + strlen(path) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, path);
    return s;
}

static char *resolve_cfg_path(ws_transport *tr, const o2h_cfg *cfg, const char *path) {
    if (path[0] == '/') return strdup(path);
    return join_path(tr->host->cfg->dir(cfg), path);
}

/* A folder ("root", a mount's "root"): relative to the config file, or, when
 * there is no such folder there, relative to the installed examples folder
 * (O2H_WS_INSTALLED_EXAMPLES, $datadir/o2hub/examples, where the example
 * configs' pages and sdk/js are installed in the source tree's layout). So a
 * config copied from there, as /etc/o2hub/hub.json is, still finds its pages. */
static char *resolve_cfg_folder(ws_transport *tr, const o2h_cfg *cfg, const char *path) {
    char *beside = resolve_cfg_path(tr, cfg, path);
#ifdef O2H_WS_INSTALLED_EXAMPLES
    struct stat st;
    if (!beside || path[0] == '/' || stat(beside, &st) == 0) return beside;
    char *installed = join_path(O2H_WS_INSTALLED_EXAMPLES, path);
    if (installed && stat(installed, &st) == 0 && S_ISDIR(st.st_mode)) {
        tr->host->log->write(tr->self, O2H_LOG_INFO, "%s: not found, serving the installed %s",
                             beside, installed);
        free(beside);
        return installed;
    }
    free(installed);
#endif
    return beside;
}

/* ---- libmicrohttpd on the loop ---- */

static void on_mhd_timer(void *ctx);

/* MHD must run again no later than it says (MHD_get_timeout): that is when
 * it closes idle connections and answers what is already buffered. */
static void arm_mhd_timer(ws_transport *tr) {
    MHD_UNSIGNED_LONG_LONG ms;
    if (tr->mhd_timer) tr->host->loop->timer_stop(tr->mhd_timer);
    tr->mhd_timer = NULL;
    if (MHD_get_timeout(tr->mhd, &ms) != MHD_YES) return;
    tr->mhd_timer = tr->host->loop->timer_start(tr->self, (double)ms / 1000.0, 0, on_mhd_timer, tr);
    if (!tr->mhd_timer)
        tr->host->log->write(tr->self, O2H_LOG_ERROR,
                             "cannot arm the HTTP server's timer: it runs on its next event only");
}

/*
 * Let MHD do its work, then arm the timer for its next timeout. Whatever
 * asks for a run meanwhile (o2h_ws_mhd_run_soon from our callbacks inside
 * MHD_run) gets one more pass here. A connection closed in a pass asks for
 * one (ws_http.c, on_connection): at its connection limit MHD takes its
 * listening socket out of its epoll set and puts it back only at the start
 * of a later MHD_run, so without that pass, once the connections that
 * filled the limit are gone, nothing would make MHD's descriptor readable
 * again and the port would never accept another connection.
 */
static void mhd_run(ws_transport *tr) {
    if (tr->mhd_thread || !tr->mhd) return;
    if (tr->in_mhd) {
        tr->mhd_again = true;
        return;
    }
    tr->in_mhd = true;
    do {
        tr->mhd_again = false;
        MHD_run(tr->mhd);
    } while (tr->mhd_again);
    tr->in_mhd = false;
    arm_mhd_timer(tr);
}

static void on_mhd_timer(void *ctx) {
    mhd_run(ctx);
}

/* mhd_thread is read first: it is fixed before MHD's thread starts, and this
 * is called there too (it then does nothing: that thread runs MHD again by
 * itself, and MHD wakes it when an upgraded socket is handed back). */
void o2h_ws_mhd_run_soon(ws_transport *tr) {
    if (tr->mhd_thread || !tr->mhd) return;
    if (tr->in_mhd) {
        tr->mhd_again = true;
        return;
    }
    if (tr->mhd_timer) tr->host->loop->timer_stop(tr->mhd_timer);
    tr->mhd_timer = tr->host->loop->timer_start(tr->self, 0, 0, on_mhd_timer, tr);
}

void o2h_ws_upgrade_close(ws_transport *tr, struct MHD_UpgradeResponseHandle *urh) {
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    o2h_ws_mhd_run_soon(tr); /* MHD frees the connection's slot only in MHD_run */
}

static void on_mhd_event(void *ctx, int fd, unsigned events) {
    (void)fd;
    (void)events;
    mhd_run(ctx);
}

/* ---- lifecycle ---- */

static void free_config(ws_transport *tr) {
    o2h_ws_free_access(tr);
    o2h_ws_free_layouts(tr);
    free(tr->root);
    free(tr->dnssd_name);
    ws_tls_free(tr->tls_cert);
    ws_tls_free(tr->tls_key);
    for (int i = 0; i < tr->n_mounts; i++)
        free(tr->mounts[i].dir);
}

/* A folder to serve must be one now, so that --check can say so. */
static int check_folder(ws_transport *tr, const o2h_cfg *cfg, const char *key, const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0)
        return tr->host->cfg->error(cfg, key, "folder %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return tr->host->cfg->error(cfg, key, "%s is not a folder", dir);
    return O2H_OK;
}

static int read_mounts(ws_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    int n = h->cfg->array_len(cfg, "mounts");
    if (n < 0) return O2H_CONFIG_ERROR;
    if (n > MAX_MOUNTS) return h->cfg->error(cfg, "mounts", "at most %d mounts", MAX_MOUNTS);
    for (int i = 0; i < n; i++) {
        const o2h_cfg *m = h->cfg->array_item(cfg, "mounts", i);
        const char *url, *dir;
        if (!m || h->cfg->get_string(m, "url", NULL, &url) != O2H_OK ||
            h->cfg->get_string(m, "root", NULL, &dir) != O2H_OK)
            return h->cfg->error(m ? m : cfg, m ? NULL : "mounts",
                                 "a mount is {\"url\": \"/prefix/\", \"root\": \"folder\"}");
        char norm[sizeof tr->mounts[0].url + 16];
        char probe[sizeof norm + 8];
        snprintf(probe, sizeof probe, "%s/x", url);
        if (http_resolve_path(probe, norm, sizeof norm) != 200 || strlen(norm) < 3 ||
            strlen(norm) - 2 >= sizeof tr->mounts[0].url)
            return h->cfg->error(m, "url", "\"%s\" is not a URL path prefix such as \"/sdk/\"",
                                 url);
        norm[strlen(norm) - 2] = '\0'; /* drop "/x" */
        snprintf(tr->mounts[i].url, sizeof tr->mounts[i].url, "%s", norm);
        tr->mounts[i].dir = resolve_cfg_folder(tr, cfg, dir);
        tr->mounts[i].fd = -1;
        tr->n_mounts = i + 1;
        if (!tr->mounts[i].dir) return O2H_NO_MEMORY;
        if (check_folder(tr, m, "root", tr->mounts[i].dir) != O2H_OK) return O2H_CONFIG_ERROR;
    }
    return O2H_OK;
}

/* "tls_cert" and "tls_key": both or neither; each file read now (tls_files.h). */
static int read_tls(ws_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    const char *cert = NULL, *key = NULL;
    if (h->cfg->get_string(cfg, "tls_cert", NULL, &cert) == O2H_CONFIG_ERROR ||
        h->cfg->get_string(cfg, "tls_key", NULL, &key) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    if (!cert && !key) return O2H_OK;
    if (!cert || !key)
        return h->cfg->error(cfg, cert ? "tls_cert" : "tls_key",
                             "HTTPS needs both \"tls_cert\" and \"tls_key\" (PEM files)");
    const char *keys[2] = {"tls_cert", "tls_key"}, *paths[2] = {cert, key};
    char **out[2] = {&tr->tls_cert, &tr->tls_key};
    for (int i = 0; i < 2; i++) {
        char *path = resolve_cfg_path(tr, cfg, paths[i]);
        if (!path) return O2H_NO_MEMORY;
        char why[PATH_MAX + 80];
        *out[i] = ws_tls_read_pem(path, why, sizeof why);
        free(path);
        if (!*out[i]) return h->cfg->error(cfg, keys[i], "%s", why);
    }
    return O2H_OK;
}

static int ws_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    ws_transport *tr = calloc(1, sizeof *tr);
    if (!tr) return O2H_NO_MEMORY;
    tr->host = host;
    tr->self = self;
    tr->root_fd = -1;
    tr->layouts_fd = -1;
    tr->handoff_efd = -1;
    const char *bind_host, *root, *dnssd_name = NULL;
    int64_t port;
    int rc = O2H_OK;
    if (host->cfg->get_string(cfg, "host", "127.0.0.1", &bind_host) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "port", 8080, 0, 65535, &port) == O2H_CONFIG_ERROR ||
        host->cfg->get_string(cfg, "root", NULL, &root) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "max_frame", 65536, 125, 16 << 20, &tr->max_frame) ==
            O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "max_clients", 256, 1, 65536, &tr->max_clients) ==
            O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "send_queue_bytes", 4 << 20, 1024, (int64_t)1 << 32,
                           &tr->queue_limit) == O2H_CONFIG_ERROR ||
        host->cfg->get_bool(cfg, "dnssd", false, &tr->dnssd) == O2H_CONFIG_ERROR ||
        host->cfg->get_string(cfg, "dnssd_name", host->proc->ensemble(self), &dnssd_name) ==
            O2H_CONFIG_ERROR ||
        host->cfg->get_bool(cfg, "mhd_thread", false, &tr->mhd_thread) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "mhd_queue", 64, 1, 65536, &tr->handoff_cap) == O2H_CONFIG_ERROR ||
        host->cfg->get_bool(cfg, "stats", true, &tr->stats) == O2H_CONFIG_ERROR)
        rc = O2H_CONFIG_ERROR;
    if (rc == O2H_OK && tr->dnssd && !http_dnssd_available())
        rc = host->cfg->error(cfg, "dnssd",
                              "this build has no DNS-SD (avahi's dns_sd.h was not found)");
    if (rc == O2H_OK && !(tr->dnssd_name = strdup(dnssd_name ? dnssd_name : "o2hub")))
        rc = O2H_NO_MEMORY;
    if (rc == O2H_OK) rc = o2h_ws_read_access(tr, cfg);
    if (rc == O2H_OK) rc = o2h_ws_read_limits(tr, cfg);
    if (rc == O2H_OK) rc = o2h_ws_read_layouts(tr, cfg);
    if (rc == O2H_OK)
        rc = o2h_netaddr_cfg_listen(host, cfg, bind_host, (int)port, O2H_NET_TCP, &tr->bind_addr);
    if (rc == O2H_OK) rc = read_mounts(tr, cfg);
    if (rc == O2H_OK) rc = read_tls(tr, cfg);
    if (rc == O2H_OK && root && !(tr->root = resolve_cfg_folder(tr, cfg, root))) rc = O2H_NO_MEMORY;
    if (rc == O2H_OK && tr->root) rc = check_folder(tr, cfg, "root", tr->root);
    if (rc == O2H_OK && !(tr->builder = host->msg->builder_new(self))) rc = O2H_NO_MEMORY;
    if (rc != O2H_OK) {
        free_config(tr);
        free(tr);
        return rc;
    }
    *instance = tr;
    return O2H_OK;
}

static int open_dir(ws_transport *tr, const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot open folder %s: %s", dir,
                             strerror(errno));
    return fd;
}

/* A TLS connection whose handshake is done: MHD serves its plain side. */
static void on_tls_ready(void *ctx, int fd, const struct sockaddr *client, socklen_t len) {
    ws_transport *tr = ctx;
    if (MHD_add_connection(tr->mhd, fd, client, len) != MHD_YES) /* MHD closes fd */
        tr->host->log->write(tr->self, O2H_LOG_DEBUG, "MHD refused a TLS connection: %s",
                             strerror(errno));
    /* Even when refused: at its limit MHD_add_connection frees closed
     * connections first, and only a run puts its state right again. */
    o2h_ws_mhd_run_soon(tr);
}

static int start_tls(ws_transport *tr) {
    tls_proxy_config cfg = {
        .host = tr->host,
        .self = tr->self,
        .bind_addr = tr->bind_addr,
        .cert_pem = tr->tls_cert,
        .key_pem = tr->tls_key,
        .max_connections = (int)tr->max_clients + 64,
        .handshake_timeout = 10.0,
        .hand = on_tls_ready,
        .hand_ctx = tr,
    };
    char why[256];
    tr->tls = tls_proxy_start(&cfg, why, sizeof why);
    if (!tr->tls) {
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot start HTTPS: %s", why);
        return O2H_NO_PORT;
    }
    tr->port = tls_proxy_port(tr->tls);
    return O2H_OK;
}

/* Where MHD's connections come from (tls_proxy.c, or its own listening
 * socket), and, on the loop, the watch on MHD's epoll descriptor. */
static int connect_mhd(ws_transport *tr) {
    if (tr->tls_cert) {
        int rc = start_tls(tr);
        if (rc != O2H_OK) return rc;
    } else {
        const union MHD_DaemonInfo *pi = MHD_get_daemon_info(tr->mhd, MHD_DAEMON_INFO_BIND_PORT);
        tr->port = pi ? pi->port : ntohs(tr->bind_addr.sin_port);
    }
    if (!tr->mhd_thread) {
        const union MHD_DaemonInfo *ei = MHD_get_daemon_info(tr->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        tr->mhd_watch =
            ei ? tr->host->loop->watch_fd(tr->self, ei->epoll_fd, O2H_EV_READ, on_mhd_event, tr)
               : NULL;
        if (!tr->mhd_watch) return O2H_SOCKET_ERROR;
    }
    return O2H_OK;
}

static int ws_start(void *instance) {
    ws_transport *tr = instance;
    if (tr->root && (tr->root_fd = open_dir(tr, tr->root)) < 0) return O2H_BAD_ARGS;
    for (int i = 0; i < tr->n_mounts; i++)
        if ((tr->mounts[i].fd = open_dir(tr, tr->mounts[i].dir)) < 0) return O2H_BAD_ARGS;
    int lrc = o2h_ws_limits_start(tr);
    if (lrc == O2H_OK) lrc = o2h_ws_stats_start(tr);
    if (lrc == O2H_OK) lrc = o2h_ws_layouts_start(tr);
    if (lrc != O2H_OK) return lrc;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
    if (tr->mhd_thread) {
        int rc = o2h_ws_handoff_start(tr);
        if (rc != O2H_OK) return rc;
        flags |= MHD_USE_INTERNAL_POLLING_THREAD;
    }
    tr->mhd = o2h_ws_http_start_daemon(tr, flags);
    if (!tr->mhd) {
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot start the HTTP server on port %d",
                             ntohs(tr->bind_addr.sin_port));
        return O2H_NO_PORT;
    }
    int rc = connect_mhd(tr);
    if (rc == O2H_OK) rc = o2h_ws_stats_listening(tr);
    if (rc != O2H_OK) {
        MHD_stop_daemon(tr->mhd);
        tr->mhd = NULL;
        return rc;
    }
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &tr->bind_addr.sin_addr, ip, sizeof ip);
    tr->host->log->write(tr->self, O2H_LOG_INFO,
                         "serving %s at http%s://%s:%d/ (WebSocket at %s; %s)",
                         tr->root ? tr->root : "no files", tr->tls_cert ? "s" : "", ip, tr->port,
                         WS_PATH, tr->mhd_thread ? "HTTP on its own thread" : "HTTP on the loop");
    if (tr->dnssd)
        tr->published =
            http_dnssd_start(tr->host, tr->self, tr->dnssd_name, tr->port, tr->tls != NULL);
    mhd_run(tr);
    return O2H_OK;
}

static void ws_stop(void *instance) {
    ws_transport *tr = instance;
    http_dnssd_stop(tr->published);
    tr->published = NULL;
    if (tr->mhd_thread) atomic_store(&tr->stopping, true);
    o2h_ws_close_all(tr);
    tls_proxy_stop(tr->tls); /* passes on what was just written, if it can at once */
    tr->tls = NULL;
    if (tr->mhd_thread && tr->mhd) o2h_ws_handoff_quiesce(tr);
    if (tr->mhd_timer) tr->host->loop->timer_stop(tr->mhd_timer);
    tr->mhd_timer = NULL;
    tr->host->loop->watch_remove(tr->mhd_watch);
    tr->mhd_watch = NULL;
    /* tr->mhd goes first: the connections MHD closes now must not ask for a run. */
    struct MHD_Daemon *mhd = tr->mhd;
    tr->mhd = NULL;
    if (mhd) MHD_stop_daemon(mhd); /* joins MHD's thread */
    o2h_ws_limits_stop(tr);
    o2h_ws_stats_stop(tr);
    o2h_ws_layouts_stop(tr);
    if (tr->mhd_thread) {
        if (tr->handoff_watch) tr->host->loop->watch_remove(tr->handoff_watch);
        tr->handoff_watch = NULL;
        o2h_ws_handoff_stop(tr);
    }
    if (tr->root_fd >= 0) close(tr->root_fd);
    tr->root_fd = -1;
    for (int i = 0; i < tr->n_mounts; i++) {
        if (tr->mounts[i].fd >= 0) close(tr->mounts[i].fd);
        tr->mounts[i].fd = -1;
    }
}

static void ws_destroy(void *instance) {
    ws_transport *tr = instance;
    ws_stop(tr);
    tr->host->msg->builder_free(tr->builder);
    o2ws_buf_free(&tr->text);
    free_config(tr);
    free(tr);
}

static const o2h_transport_ops ws_ops = {
    .connect = NULL,
    .send = o2h_ws_send,
    .close = o2h_ws_close,
    .pause = o2h_ws_pause,
    .queued = o2h_ws_queued,
};

static const o2h_plugin_desc ws_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "websocket",
    .version = "1.0.0",
    .description = "HTTP static files and the O2ws WebSocket bridge (browsers)",
    .lifecycle = {ws_create, ws_start, ws_stop, ws_destroy},
    .ops = &ws_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &ws_desc;
}
