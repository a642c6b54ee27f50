/*
 * libmicrohttpd's callbacks: GET and HEAD of static files below "root" and
 * the "mounts" (opened beneath their folders' descriptors, never following
 * a symbolic link), the WebSocket upgrade of GET /o2ws (RFC 6455
 * handshake), GET /stats (ws_stats.c) and /layouts/ (ws_layouts.c). With "mhd_thread" these run on
 * MHD's own thread, so they read only configuration fixed before it started and log through
 * o2h_ws_log; the upgraded socket goes to the loop through ws_handoff.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include "http_path.h"
#include "ws_internal.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* One upgrade request in "mhd_thread" mode (MHD's req_cls; MHD's thread). */
typedef struct upgrade_req {
    int kind;    /* WS_REQ_UPGRADE */
    bool handed; /* on_upgraded took its reservation */
} upgrade_req;

/* "ip:port" of the client: from MHD, because with TLS the upgraded socket
 * is a socket pair's end, not the client's connection. */
void o2h_ws_client_address(struct MHD_Connection *connection, char *out, size_t size) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    char ip[INET6_ADDRSTRLEN];
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, size, "%s:%d", ip, ntohs(in->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, size, "[%s]:%d", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(out, size, "?");
    }
}

/* MHD hands us the upgraded socket: on the loop thread inside MHD_run, or on
 * MHD's thread, which queues it for the loop in the slot upgrade() reserved. */
static void on_upgraded(void *cls, struct MHD_Connection *connection, void *req_cls,
                        const char *extra_in, size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh) {
    ws_transport *tr = cls;
    char peer[64];
    o2h_ws_client_address(connection, peer, sizeof peer);
    if (!tr->mhd_thread) {
        o2h_ws_adopt(tr, sock, urh, peer, extra_in, extra_in_size);
        return;
    }
    upgrade_req *u = req_cls; /* set by upgrade() before the 101 was queued */
    if (u) u->handed = true;
    o2h_ws_handoff_upgrade(tr, sock, urh, peer, extra_in, extra_in_size);
}

/* MHD is done with a request (on MHD's thread in "mhd_thread" mode): an
 * upgrade that never reached on_upgraded gives its reservation back. */
static void on_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    ws_transport *tr = cls;
    o2h_ws_request_done(tr, connection);
    if (!*req_cls || *req_cls == tr) return; /* not an upgrade_req */
    if (o2h_ws_is_layout_req(*req_cls)) {
        o2h_ws_layout_req_free(*req_cls);
        *req_cls = NULL;
        return;
    }
    upgrade_req *u = *req_cls;
    if (!u->handed) {
        o2h_ws_log(tr, O2H_LOG_DEBUG,
                   "WebSocket upgrade ended before the 101 (%d): slot given back", (int)toe);
        o2h_ws_release_reservation(tr);
    }
    free(u);
    *req_cls = NULL;
}

/* Marks a response as `type`, never cached or sniffed. */
void o2h_ws_uncached(struct MHD_Response *r, const char *type) {
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

/* A response owning `body` (malloc'd; freed whatever happens), never cached or sniffed. */
enum MHD_Result o2h_ws_respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               char *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    o2h_ws_uncached(r, type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                    const char *hname, const char *hvalue) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (hname) MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Whether a comma-separated header value has `token` (case-insensitive). */
static bool has_token(const char *value, const char *token) {
    size_t tl = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - p) == tl && strncasecmp(p, token, tl) == 0) return true;
        p = end;
    }
    return false;
}

static void accept_key(const char *key, char out[29]) {
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(key), (const uint8_t *)key);
    sha1_update(&ctx, strlen(WS_GUID), (const uint8_t *)WS_GUID);
    sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
    base64_encode_raw(out, SHA1_DIGEST_SIZE, digest);
    out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

/* Sec-WebSocket-Key: 16 random bytes in base64 (RFC 6455 §4.1). */
static bool key_ok(const char *key) {
    uint8_t raw[BASE64_DECODE_LENGTH(24) + 1];
    size_t raw_len = sizeof raw;
    struct base64_decode_ctx dctx;
    base64_decode_init(&dctx);
    return key && strlen(key) == 24 && base64_decode_update(&dctx, &raw_len, raw, 24, key) &&
           base64_decode_final(&dctx) && raw_len == 16;
}

/* "mhd_thread": reserve a slot in the hand-off queue now, while a 503 can
 * still be answered: on_upgraded (after the 101) must not find it full.
 * NULL when reserved, else the 503's text (*retry: worth a Retry-After). */
static const char *reserve_slot(ws_transport *tr, void **req_cls, bool *retry) {
    if (atomic_load(&tr->clients) + atomic_load(&tr->pending) >= tr->max_clients)
        return "Too many WebSocket clients.\n";
    if (atomic_fetch_add(&tr->pending, 1) >= tr->handoff_cap) {
        atomic_fetch_sub(&tr->pending, 1);
        atomic_fetch_add(&tr->refused_full, 1);
        o2h_ws_handoff_signal(tr);
        *retry = true;
        return "Busy: too many WebSocket upgrades at once, try again.\n";
    }
    upgrade_req *u = atomic_load(&tr->stopping) ? NULL : calloc(1, sizeof *u);
    if (!u) {
        o2h_ws_release_reservation(tr);
        return "Shutting down.\n";
    }
    u->kind = WS_REQ_UPGRADE;
    *req_cls = u; /* on_completed gives the slot back if on_upgraded never runs */
    return NULL;
}

static enum MHD_Result upgrade(ws_transport *tr, struct MHD_Connection *conn, void **req_cls) {
    const char *upgrade_h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
    const char *connection = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection");
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    const char *version =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    if (!upgrade_h || !has_token(upgrade_h, "websocket") || !connection ||
        !has_token(connection, "upgrade"))
        return respond_text(conn, MHD_HTTP_UPGRADE_REQUIRED, "This is a WebSocket endpoint.\n",
                            "Upgrade", "websocket");
    if (!version || strcmp(version, "13") != 0)
        return respond_text(conn, MHD_HTTP_UPGRADE_REQUIRED, "WebSocket version 13 only.\n",
                            "Sec-WebSocket-Version", "13");
    if (!key_ok(key))
        return respond_text(conn, MHD_HTTP_BAD_REQUEST, "Bad Sec-WebSocket-Key.\n", NULL, NULL);
    int status;
    const char *refusal = o2h_ws_access_refusal(tr, conn, &status);
    if (refusal) return respond_text(conn, (unsigned)status, refusal, NULL, NULL);
    if (!tr->mhd_thread && tr->n_conns >= tr->max_clients)
        return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Too many WebSocket clients.\n",
                            NULL, NULL);
    if (tr->mhd_thread) {
        bool retry = false;
        const char *busy = reserve_slot(tr, req_cls, &retry);
        if (busy)
            return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, busy,
                                retry ? "Retry-After" : NULL, retry ? "1" : NULL);
    }
    o2h_ws_request_in(tr, conn, true);
    char accept[29];
    accept_key(key, accept);
    struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgraded, tr);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    return ret;
}

/* Open `rel` below `dirfd`, one component at a time, never following a
 * symbolic link. Returns the fd or -HTTP status. */
static int open_beneath(int dirfd, const char *rel, struct stat *st) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", rel);
    int cur = dup(dirfd);
    if (cur < 0) return -500;
    char *save = NULL;
    char *part = strtok_r(path, "/", &save);
    while (part) {
        char *next = strtok_r(NULL, "/", &save);
        int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (next ? O_DIRECTORY : 0);
        int fd = openat(cur, part, flags);
        int err = errno;
        close(cur);
        if (fd < 0) return err == ENOENT || err == ENOTDIR ? -404 : -403;
        cur = fd;
        part = next;
    }
    if (fstat(cur, st) != 0) {
        close(cur);
        return -500;
    }
    return cur;
}

/* The folder's descriptor for `rel` (a mount's, else the root's; -1: none)
 * and, in *inner, the path below it. */
static int folder_of(const ws_transport *tr, const char *rel, const char **inner) {
    for (int i = 0; i < tr->n_mounts; i++) {
        size_t n = strlen(tr->mounts[i].url);
        if (strncmp(rel, tr->mounts[i].url, n) == 0 && (rel[n] == '/' || rel[n] == '\0')) {
            *inner = rel[n] ? rel + n + 1 : HTTP_INDEX_FILE;
            return tr->mounts[i].fd;
        }
    }
    *inner = rel;
    return tr->root_fd;
}

static enum MHD_Result serve_file(ws_transport *tr, struct MHD_Connection *conn, const char *url) {
    char rel[1024];
    int status = http_resolve_path(url, rel, sizeof rel);
    if (status != 200) {
        o2h_ws_log(tr, O2H_LOG_DEBUG, "HTTP %d for %s", status, url);
        return respond_text(conn, (unsigned)status,
                            status == 403   ? "Forbidden.\n"
                            : status == 414 ? "URI too long.\n"
                                            : "Bad request.\n",
                            NULL, NULL);
    }
    const char *inner;
    int dirfd = folder_of(tr, rel, &inner);
    if (dirfd < 0) return respond_text(conn, MHD_HTTP_NOT_FOUND, "Not found.\n", NULL, NULL);
    struct stat st;
    int fd = open_beneath(dirfd, inner, &st);
    if (fd >= 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        char loc[1100];
        snprintf(loc, sizeof loc, "%s/", url);
        return respond_text(conn, MHD_HTTP_MOVED_PERMANENTLY, "Moved.\n", "Location", loc);
    }
    if (fd >= 0 && !S_ISREG(st.st_mode)) {
        close(fd);
        fd = -403;
    }
    if (fd < 0) {
        o2h_ws_log(tr, O2H_LOG_DEBUG, "HTTP %d for %s", -fd, url);
        return respond_text(conn, (unsigned)-fd, fd == -404 ? "Not found.\n" : "Forbidden.\n", NULL,
                            NULL);
    }
    struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, http_mime_type(inner));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    ws_transport *tr = cls;
    (void)version;
    /* Answer once the whole request is in (the first call has only the headers):
     * an answer given earlier makes MHD close the connection after it. */
    if (!*req_cls && o2h_ws_is_layouts_url(tr, url))
        return o2h_ws_layouts_begin(tr, conn, url, method, req_cls);
    if (o2h_ws_is_layout_req(*req_cls))
        return o2h_ws_layouts_request(tr, conn, url, method, upload_data, upload_data_size,
                                      *req_cls);
    if (!*req_cls) {
        *req_cls = tr; /* any non-NULL marker */
        return MHD_YES;
    }
    if (*upload_data_size) { /* discard a request body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    o2h_ws_request_in(tr, conn, false);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET or HEAD only.\n", "Allow",
                            "GET, HEAD");
    if (strcmp(url, WS_PATH) == 0) return upgrade(tr, conn, req_cls);
    if (tr->stats && strcmp(url, WS_STATS_PATH) == 0) return o2h_ws_serve_stats(tr, conn);
    return serve_file(tr, conn, url);
}

/* No unescaping by MHD: http_resolve_path decodes the path exactly once. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    ws_transport *tr = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    o2h_ws_log(tr, O2H_LOG_DEBUG, "libmicrohttpd: %s", line);
}

struct MHD_Daemon *o2h_ws_http_start_daemon(ws_transport *tr, unsigned flags) {
    /* HTTPS: tls_proxy.c listens and hands MHD plain streams (see there why). */
    struct MHD_OptionItem listen_options[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &tr->bind_addr},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (tr->tls_cert) flags |= MHD_USE_NO_LISTEN_SOCKET;
    /* MHD sends files with sendfile() only where SIGPIPE cannot kill the
     * process: on its own thread (it blocks the signal there), or when told
     * that the process ignores it, as the o2hub daemon does; else it uses
     * pread() and send(). */
    struct sigaction pipe_action;
    int sigpipe_ignored =
        sigaction(SIGPIPE, NULL, &pipe_action) == 0 && pipe_action.sa_handler == SIG_IGN;
    /* clang-format off */
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, tr,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, tr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, tr,
                            MHD_OPTION_NOTIFY_CONNECTION, o2h_ws_on_connection, tr,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)tr->max_per_address,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)(tr->max_clients + 64),
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                            MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, tr,
                            MHD_OPTION_SIGPIPE_HANDLED_BY_APP, sigpipe_ignored,
                            MHD_OPTION_ARRAY, tr->tls_cert ? listen_options + 2 : listen_options,
                            MHD_OPTION_END);
    /* clang-format on */
}
