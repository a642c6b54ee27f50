/*
 * The O2ws protocol (docs/websocket.md#o2ws) on one connection: a client joins
 * with /_o2/ws/dy and becomes a bridge (host->bridge->bridge_new); its
 * /_o2/ws/ system messages (services, clock, status, list) are answered
 * here; other text messages go to the core as O2 messages, and messages the
 * router sends the client come back (o2h_ws_send) as O2ws text.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_internal.h"

static void send_text(ws_conn *c, o2ws_buf *text) {
    if (c->dead || c->closing) return; /* nothing after our close frame */
    int rc = o2h_ws_queue_text(c, text);
    if (rc == O2H_SEND_FAIL || rc == O2H_NO_MEMORY) o2h_ws_conn_destroy(c);
}

/* A reply of our own to the client, typed "s" "i" "t" from the varargs. */
static void reply(ws_conn *c, const char *address, const char *types, ...) {
    ws_transport *tr = c->tr;
    o2ws_buf *b = &tr->text;
    if (o2h_ws_text_start(b) != O2H_OK) return;
    char num[48];
    va_list ap;
    va_start(ap, types);
    int n =
        snprintf(num, sizeof num, "%c%s%c0%cT%c", O2WS_ETX, types, O2WS_ETX, O2WS_ETX, O2WS_ETX);
    o2ws_buf_append(b, address, strlen(address));
    o2ws_buf_append(b, num, (size_t)n);
    for (const char *t = types; *t; t++) {
        if (*t == 's') {
            const char *s = va_arg(ap, const char *);
            o2ws_buf_append(b, s, strlen(s));
            n = 0;
        } else if (*t == 'i') {
            n = snprintf(num, sizeof num, "%d", va_arg(ap, int));
        } else {
            n = snprintf(num, sizeof num, "%.6f", va_arg(ap, double));
        }
        num[n++] = O2WS_ETX;
        o2ws_buf_append(b, num, (size_t)n);
    }
    va_end(ap);
    send_text(c, b);
}

static bool is_system(const char *address, const char *name) {
    return (address[0] == '/' || address[0] == '!') && strncmp(address + 1, "_o2/ws/", 7) == 0 &&
           strcmp(address + 8, name) == 0;
}

static bool types_are(char *const *f, int n, const char *types) {
    return strcmp(f[1], types) == 0 && n == 4 + (int)strlen(types);
}

static bool parse_i(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < INT_MIN || v > INT_MAX) return false;
    *out = (int)v;
    return true;
}

static void on_dy(ws_conn *c, char *const *f, int n) {
    ws_transport *tr = c->tr;
    if (!types_are(f, n, "s")) {
        o2h_ws_conn_fail(c, WS_CLOSE_POLICY, "bad /_o2/ws/dy");
        return;
    }
    if (strcmp(f[4], tr->host->proc->ensemble(tr->self)) != 0) {
        tr->host->log->write(tr->self, O2H_LOG_WARN, "WebSocket %s gave ensemble \"%s\": dropped",
                             c->peer, f[4]);
        /* The reason names our ensemble, so that a page can say what to ask for instead (the
         * client passed the access check to get here; discovery announces the name anyway). */
        char reason[WS_CLOSE_REASON_MAX + 1];
        snprintf(reason, sizeof reason, "wrong ensemble: this router is in \"%s\"",
                 tr->host->proc->ensemble(tr->self));
        o2h_ws_conn_fail(c, WS_CLOSE_POLICY, reason);
        return;
    }
    if (c->bridge_id <= 0) {
        int id = tr->host->bridge->bridge_new(tr->self, c->link, "O2ws", 0);
        if (id <= 0) {
            o2h_ws_conn_fail(c, WS_CLOSE_INTERNAL, "cannot make a bridge");
            return;
        }
        c->bridge_id = id;
    }
    reply(c, "!_o2/id", "i", c->bridge_id);
}

static void on_system(ws_conn *c, char *const *f, int n, const char *name) {
    ws_transport *tr = c->tr;
    const o2h_host *h = tr->host;
    int a, b, mode, id, seq;
    if (strcmp(name, "sv") == 0 && types_are(f, n, "siisi") && parse_i(f[5], &a) &&
        parse_i(f[6], &b) && parse_i(f[8], &mode)) {
        int rc = h->bridge->service(tr->self, c->link, f[4], a != 0, b != 0, f[7], mode);
        if (rc != O2H_OK)
            h->log->write(tr->self, O2H_LOG_INFO, "WebSocket client %d: service %s: error %d",
                          c->bridge_id, f[4], rc);
    } else if (strcmp(name, "cs/get") == 0 && types_are(f, n, "iis") && parse_i(f[4], &id) &&
               parse_i(f[5], &seq) && (f[6][0] == '/' || f[6][0] == '!')) {
        double now = h->loop->time_get(tr->self);
        if (now >= 0) reply(c, f[6], "it", seq, now); /* no answer before we have a clock */
    } else if (strcmp(name, "cs/cs") == 0 && types_are(f, n, "")) {
        h->bridge->synced(tr->self, c->link);
    } else if (strcmp(name, "st") == 0 && types_are(f, n, "s")) {
        reply(c, "!_o2/st", "si", f[4], h->link->service_status(tr->self, f[4]));
    } else if (strcmp(name, "ls") == 0 && types_are(f, n, "")) {
        /* The core lists services for O2lite clients of any bridge: ask it for us. */
        h->msg->builder_start(tr->builder);
        o2h_msg *m = h->msg->builder_finish(tr->builder, 0, "!_o2/o2lite/ls", O2H_FLAG_RELIABLE);
        if (m) h->link->deliver(tr->self, c->link, m);
    } else if (strcmp(name, "dy") == 0) {
        on_dy(c, f, n);
    } else {
        h->link->count_invalid(tr->self, "bad O2ws system message");
    }
}

void o2h_ws_on_text(ws_conn *c, uint8_t *data, size_t len) {
    ws_transport *tr = c->tr;
    char *fields[O2WS_MAX_FIELDS];
    int n = o2ws_split((char *)data, len, fields, O2WS_MAX_FIELDS);
    if (n < 4) {
        tr->host->link->count_invalid(tr->self, "O2ws text is not ETX-separated fields");
        return;
    }
    const char *address = fields[0];
    if (c->bridge_id <= 0 && !is_system(address, "dy")) {
        o2h_ws_conn_fail(c, WS_CLOSE_POLICY, "the first message must be /_o2/ws/dy");
        return;
    }
    if ((address[0] == '/' || address[0] == '!') && strncmp(address + 1, "_o2/ws/", 7) == 0) {
        on_system(c, fields, n, address + 8);
        return;
    }
    const char *why;
    o2h_msg *m = o2ws_to_msg(tr->host, tr->builder, fields, n, &why);
    if (!m) {
        tr->host->link->count_invalid(tr->self, why);
        return;
    }
    tr->host->link->deliver(tr->self, c->link, m);
}

int o2h_ws_send(void *instance, void *link_ctx, o2h_msg *msg) {
    ws_transport *tr = instance;
    ws_conn *c = link_ctx;
    if (c->dead || c->closing) return O2H_SEND_FAIL;
    if (o2h_ws_text_start(&tr->text) != O2H_OK) return O2H_NO_MEMORY;
    int rc = o2ws_from_msg(tr->host, msg, &tr->text);
    if (rc == O2H_BAD_TYPE) {
        tr->host->log->write(tr->self, O2H_LOG_DEBUG, "WebSocket client %d: bundle not sent",
                             c->bridge_id);
        return rc;
    }
    if (rc != O2H_OK) return rc;
    rc = o2h_ws_queue_text(c, &tr->text);
    if (rc == O2H_SEND_FAIL) o2h_ws_conn_destroy(c);
    return rc;
}
