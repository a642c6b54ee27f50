/*
 * Who may join through the WebSocket: a page served by this server (its
 * Origin is the request's own Host), one listed in "allowed_origins", or a
 * client that sends no Origin (not a browser: node, an O2lite device). Any
 * other web page the user visits is refused with 403, so that it cannot
 * send to the ensemble or snoop on it (cross-site WebSocket hijacking). With
 * "token" (or "token_env"), the upgrade URL must also carry ?token=... —
 * the monitor and the SDK pass on the token of the page's own URL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ws_internal.h"

#define MAX_ORIGINS 32

static int read_token(ws_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    const char *token = NULL, *env = NULL;
    if (h->cfg->get_string(cfg, "token", NULL, &token) == O2H_CONFIG_ERROR ||
        h->cfg->get_string(cfg, "token_env", NULL, &env) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    if (token && env)
        return h->cfg->error(cfg, "token_env", "give \"token\" or \"token_env\", not both");
    if (env) {
        token = getenv(env);
        if (!token || !*token)
            return h->cfg->error(cfg, "token_env", "the environment variable %s is not set", env);
    }
    if (token && strlen(token) < 8)
        return h->cfg->error(cfg, token == getenv(env ? env : "") ? "token_env" : "token",
                             "a token needs at least 8 characters");
    if (token && !(tr->token = strdup(token))) return O2H_NO_MEMORY;
    return O2H_OK;
}

int o2h_ws_read_access(ws_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    int n = h->cfg->array_len(cfg, "allowed_origins");
    if (n < 0) return O2H_CONFIG_ERROR;
    if (n > MAX_ORIGINS)
        return h->cfg->error(cfg, "allowed_origins", "at most %d origins", MAX_ORIGINS);
    tr->origins = calloc((size_t)n + 1, sizeof *tr->origins);
    if (!tr->origins) return O2H_NO_MEMORY;
    for (int i = 0; i < n; i++) {
        const o2h_cfg *item = h->cfg->array_item(cfg, "allowed_origins", i);
        const char *o = h->cfg->as_string(item);
        if (!o || (strcmp(o, "*") != 0 && strncmp(o, "http://", 7) != 0 &&
                   strncmp(o, "https://", 8) != 0))
            return h->cfg->error(item, NULL,
                                 "an origin is \"http://host:port\", \"https://host\" or \"*\"");
        if (!(tr->origins[i] = strdup(o))) return O2H_NO_MEMORY;
        tr->n_origins = i + 1;
    }
    return read_token(tr, cfg);
}

void o2h_ws_free_access(ws_transport *tr) {
    for (int i = 0; i < tr->n_origins; i++)
        free(tr->origins[i]);
    free(tr->origins);
    tr->origins = NULL;
    tr->n_origins = 0;
    if (tr->token) memset(tr->token, 0, strlen(tr->token));
    free(tr->token);
    tr->token = NULL;
}

/* The page's own server: "scheme://HOST" where HOST is what the request's Host says. */
static bool same_origin(const char *origin, const char *host) {
    const char *rest = strstr(origin, "://");
    return host && rest && strcasecmp(rest + 3, host) == 0;
}

static bool origin_allowed(const ws_transport *tr, const char *origin, const char *host) {
    if (!origin) return true; /* not a browser: browsers always send it on a WebSocket upgrade */
    if (same_origin(origin, host)) return true;
    for (int i = 0; i < tr->n_origins; i++)
        if (strcmp(tr->origins[i], "*") == 0 || strcasecmp(tr->origins[i], origin) == 0)
            return true;
    return false;
}

/* Compares every byte, so the time taken tells nothing about the token. */
static bool token_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = (unsigned)(la ^ lb);
    for (size_t i = 0; i < lb; i++)
        diff |= (unsigned)(b[i] ^ a[la ? i % la : 0]);
    return diff == 0;
}

const char *o2h_ws_access_refusal(ws_transport *tr, struct MHD_Connection *conn, int *status) {
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    char what[300];
    if (!origin_allowed(tr, origin, host)) {
        snprintf(what, sizeof what,
                 "a WebSocket client from origin %.200s: not this server's, not in "
                 "\"allowed_origins\"",
                 origin);
        tr->host->proc->refused(tr->self, what);
        *status = MHD_HTTP_FORBIDDEN;
        return "This page's origin may not use this server's WebSocket.\n";
    }
    if (tr->token) {
        const char *given = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
        if (!given || !token_equal(given, tr->token)) {
            snprintf(what, sizeof what, "a WebSocket client%s%.200s: %s token",
                     origin ? " from " : "", origin ? origin : "", given ? "wrong" : "no");
            tr->host->proc->refused(tr->self, what);
            *status = MHD_HTTP_FORBIDDEN;
            return "A valid ?token= is required.\n";
        }
    }
    return NULL;
}

/* "Authorization: Bearer TOKEN" (what Prometheus' authorization setting sends). */
static const char *bearer_token(struct MHD_Connection *conn) {
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return NULL;
    auth += 7;
    while (*auth == ' ')
        auth++;
    return auth;
}

const char *o2h_ws_http_refusal(const ws_transport *tr, struct MHD_Connection *conn,
                                const char *method, const char *path, int *status, char *what,
                                size_t what_size) {
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    *status = MHD_HTTP_FORBIDDEN;
    if (!origin_allowed(tr, origin, host)) {
        snprintf(what, what_size,
                 "%s %s from origin %.200s: not this server's, not in \"allowed_origins\"", method,
                 path, origin);
        return "This page's origin may not use this server's HTTP endpoints.\n";
    }
    if (!tr->token) return NULL;
    const char *given = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
    if (!given) given = bearer_token(conn);
    if (given && token_equal(given, tr->token)) return NULL;
    snprintf(what, what_size, "%s %s: %s token", method, path, given ? "wrong" : "no");
    *status = MHD_HTTP_UNAUTHORIZED;
    return "A valid ?token= or \"Authorization: Bearer\" is required.\n";
}
