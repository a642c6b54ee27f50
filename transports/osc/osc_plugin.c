/*
 * The OSC transport plugin (o2hub_osc.so): configuration, lifecycle and the
 * transport ops. The config keys (docs/configuration.md, docs/osc.md):
 *
 *   { "type": "osc", "max_packet": 1048576, "queue_bytes": 1048576,
 *     "delegates": [ { "service": "synth", "address": "127.0.0.1:9000",
 *                      "protocol": "udp" | "tcp", "framing": "length" | "slip",
 *                      "replies": "fromsynth", "replies_from": "server" | "any",
 *                      "pace_us": 50 } ],
 *     "ports": [ { "port": 9001, "host": "0.0.0.0", "protocol": "udp" | "tcp",
 *                  "framing": "length" | "slip", "service": "fromosc", "pace_us": 50,
 *                  "max_connections": 1024 } ] }
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netaddr.h"
#include "osc.h"

osc_clock o2h_osc_plugin_clock(const osc_plugin *pl) {
    osc_clock c = {0};
    const o2h_host *h = pl->host;
    double t = h->loop->time_get(pl->self);
    c.synced = t >= 0;
    c.o2_now = c.synced ? t : h->loop->local_time(pl->self);
    c.ntp_now = o2h_osc_ntp_now();
    return c;
}

bool o2h_osc_plugin_reserve(uint8_t **buf, size_t *cap, size_t n) {
    if (n <= *cap) return true;
    size_t want = *cap ? *cap : 4096;
    while (want < n)
        want *= 2;
    uint8_t *b = realloc(*buf, want);
    if (!b) return false;
    *buf = b;
    *cap = want;
    return true;
}

/* ---- configuration ---- */

static bool valid_service(const char *s) {
    return isalpha((unsigned char)s[0]) && !strchr(s, '/') && strlen(s) < OSC_SERVICE_MAX;
}

static int required_string(const o2h_host *h, const o2h_cfg *item, const char *key,
                           const char **out) {
    int rc = h->cfg->get_string(item, key, NULL, out);
    if (rc == O2H_NOT_FOUND) return h->cfg->error(item, NULL, "missing required key \"%s\"", key);
    return rc;
}

static int read_service_key(const o2h_host *h, const o2h_cfg *item, const char *key, char *out) {
    const char *s;
    int rc = required_string(h, item, key, &s);
    if (rc != O2H_OK) return rc;
    if (!valid_service(s))
        return h->cfg->error(item, key,
                             "\"%s\" is not a service name (a letter first, no '/', at most %d "
                             "characters)",
                             s, OSC_SERVICE_MAX - 1);
    snprintf(out, OSC_SERVICE_MAX, "%s", s);
    return O2H_OK;
}

static int read_service(const o2h_host *h, const o2h_cfg *item, char *out) {
    return read_service_key(h, item, "service", out);
}

/* "replies": the service that gets what the server sends back; "replies_from" (UDP). */
static int read_replies(const o2h_host *h, const o2h_cfg *item, osc_delegate *d) {
    const char *from;
    d->replies.fd = -1;
    int rc = h->cfg->get_string(item, "replies", NULL, &from);
    if (rc == O2H_CONFIG_ERROR) return rc;
    d->has_replies = rc == O2H_OK;
    if (d->has_replies && read_service_key(h, item, "replies", d->replies.service) != O2H_OK)
        return O2H_CONFIG_ERROR;
    int64_t pace_us;
    rc = h->cfg->get_int(item, "pace_us", OSC_PACE_US_DEFAULT, 0, 100000, &pace_us);
    if (rc == O2H_CONFIG_ERROR) return rc;
    if (rc == O2H_OK && !d->has_replies)
        return h->cfg->error(item, "pace_us",
                             "pace_us applies to a delegate with \"replies\" only");
    d->replies.pace = (double)pace_us * 1e-6;
    rc = h->cfg->get_string(item, "replies_from", "server", &from);
    if (rc == O2H_CONFIG_ERROR) return rc;
    if (strcmp(from, "server") != 0 && strcmp(from, "any") != 0)
        return h->cfg->error(item, "replies_from", "\"%s\" is not \"server\" or \"any\"", from);
    if (rc == O2H_OK && (!d->has_replies || d->tcp))
        return h->cfg->error(item, "replies_from",
                             "replies_from applies to \"protocol\": \"udp\" with \"replies\" only");
    d->replies_from = from[0] == 'a' ? OSC_REPLIES_FROM_ANY : OSC_REPLIES_FROM_SERVER;
    return O2H_OK;
}

/* "protocol" ("udp" default, "tcp") and "framing" ("length" default, "slip"; TCP only). */
static int read_protocol(const o2h_host *h, const o2h_cfg *item, bool *tcp, osc_framing *framing) {
    const char *proto, *fr;
    if (h->cfg->get_string(item, "protocol", "udp", &proto) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    if (strcmp(proto, "udp") != 0 && strcmp(proto, "tcp") != 0)
        return h->cfg->error(item, "protocol", "\"%s\" is not \"udp\" or \"tcp\"", proto);
    *tcp = proto[0] == 't';
    int rc = h->cfg->get_string(item, "framing", "length", &fr);
    if (rc == O2H_CONFIG_ERROR) return rc;
    if (strcmp(fr, "length") != 0 && strcmp(fr, "slip") != 0)
        return h->cfg->error(item, "framing", "\"%s\" is not \"length\" or \"slip\"", fr);
    if (rc == O2H_OK && !*tcp)
        return h->cfg->error(item, "framing", "framing applies to \"protocol\": \"tcp\" only");
    *framing = fr[0] == 's' ? OSC_FRAMING_SLIP : OSC_FRAMING_LENGTH;
    return O2H_OK;
}

static int read_delegate(osc_plugin *pl, const o2h_cfg *item, osc_delegate *d) {
    const o2h_host *h = pl->host;
    d->pl = pl;
    d->replies.fd = -1;
    const char *address;
    if (read_service(h, item, d->service) != O2H_OK ||
        required_string(h, item, "address", &address) != O2H_OK ||
        read_protocol(h, item, &d->tcp, &d->framing) != O2H_OK ||
        read_replies(h, item, d) != O2H_OK)
        return O2H_CONFIG_ERROR;
    if (o2h_netaddr_resolve_endpoint(address, &d->addr) != 0)
        return h->cfg->error(item, "address",
                             "\"%s\" is not \"host:port\" (an IPv4 address or a name of one)",
                             address);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &d->addr.sin_addr, ip, sizeof ip);
    snprintf(d->address, sizeof d->address, "%s:%d", ip, ntohs(d->addr.sin_port));
    for (osc_delegate *o = pl->delegates; o < d; o++)
        if (strcmp(o->service, d->service) == 0)
            return h->cfg->error(item, "service", "service \"%s\" is delegated twice", d->service);
    return O2H_OK;
}

static int read_port(osc_plugin *pl, const o2h_cfg *item, osc_port *p) {
    const o2h_host *h = pl->host;
    p->pl = pl;
    p->fd = -1;
    const char *host;
    int64_t port;
    if (read_service(h, item, p->service) != O2H_OK ||
        read_protocol(h, item, &p->tcp, &p->framing) != O2H_OK ||
        h->cfg->get_string(item, "host", "0.0.0.0", &host) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    int rc = h->cfg->get_int(item, "port", 0, 0, 65535, &port);
    if (rc == O2H_NOT_FOUND) return h->cfg->error(item, NULL, "missing required key \"port\"");
    if (rc != O2H_OK) return rc;
    int64_t pace_us;
    if (h->cfg->get_int(item, "pace_us", OSC_PACE_US_DEFAULT, 0, 100000, &pace_us) ==
        O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    p->pace = (double)pace_us * 1e-6;
    rc = h->cfg->get_int(item, "max_connections", OSC_MAX_CONNECTIONS_DEFAULT, 1, 1 << 20,
                         &p->max_connections);
    if (rc == O2H_CONFIG_ERROR) return rc;
    if (rc == O2H_OK && !p->tcp)
        return h->cfg->error(item, "max_connections",
                             "max_connections applies to \"protocol\": \"tcp\" only");
    return o2h_netaddr_cfg_listen(h, item, host, (int)port, p->tcp ? O2H_NET_TCP : O2H_NET_UDP,
                                  &p->bind_addr);
}

static void plugin_free(osc_plugin *pl) {
    free(pl->delegates);
    free(pl->ports);
    free(pl->scratch);
    free(pl->frame);
    free(pl->rx);
    free(pl->outbox.bytes);
    free(pl);
}

static int read_list(osc_plugin *pl, const o2h_cfg *cfg, const char *key, bool delegates) {
    int n = pl->host->cfg->array_len(cfg, key);
    if (n < 0) return O2H_CONFIG_ERROR;
    if (n == 0) return O2H_OK;
    void *arr = calloc((size_t)n, delegates ? sizeof(osc_delegate) : sizeof(osc_port));
    if (!arr) return O2H_NO_MEMORY;
    if (delegates)
        pl->delegates = arr;
    else
        pl->ports = arr;
    for (int i = 0; i < n; i++) {
        const o2h_cfg *item = pl->host->cfg->array_item(cfg, key, i);
        if (!item || pl->host->cfg->as_string(item))
            return pl->host->cfg->error(item ? item : cfg, item ? NULL : key, "expected an object");
        int rc = delegates ? read_delegate(pl, item, &pl->delegates[i])
                           : read_port(pl, item, &pl->ports[i]);
        if (delegates)
            pl->n_delegates = i + 1;
        else
            pl->n_ports = i + 1;
        if (rc != O2H_OK) return rc;
    }
    return O2H_OK;
}

static int osc_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    osc_plugin *pl = calloc(1, sizeof *pl);
    if (!pl) return O2H_NO_MEMORY;
    pl->host = host;
    pl->self = self;
    pl->udp_fd = -1;
    int rc = O2H_OK;
    if (host->cfg->get_int(cfg, "max_packet", 1 << 20, 64, O2H_MSG_MAX_SIZE, &pl->max_packet) ==
            O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "queue_bytes", 1 << 20, 1024, (int64_t)1 << 32, &pl->queue_bytes) ==
            O2H_CONFIG_ERROR)
        rc = O2H_CONFIG_ERROR;
    if (rc == O2H_OK) rc = read_list(pl, cfg, "delegates", true);
    if (rc == O2H_OK) rc = read_list(pl, cfg, "ports", false);
    if (rc != O2H_OK) {
        plugin_free(pl);
        return rc == O2H_NO_MEMORY ? rc : O2H_CONFIG_ERROR;
    }
    *instance = pl;
    return O2H_OK;
}

static void osc_stop(void *instance);

static int osc_start(void *instance) {
    osc_plugin *pl = instance;
    if (!o2h_osc_plugin_reserve(&pl->scratch, &pl->scratch_cap, 4096)) return O2H_NO_MEMORY;
    bool input = pl->n_ports > 0;
    for (int i = 0; i < pl->n_delegates; i++)
        input = input || pl->delegates[i].has_replies;
    if (input && !pl->rx && !(pl->rx = malloc((size_t)OSC_RX_BATCH * OSC_RX_SIZE)))
        return O2H_NO_MEMORY;
    pl->udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pl->udp_fd < 0) return O2H_SOCKET_ERROR;
    int rc = O2H_OK;
    for (int i = 0; i < pl->n_ports && rc == O2H_OK; i++)
        rc = o2h_osc_port_start(&pl->ports[i]);
    for (int i = 0; i < pl->n_delegates && rc == O2H_OK; i++)
        rc = o2h_osc_delegate_start(&pl->delegates[i]);
    if (rc != O2H_OK) osc_stop(pl);
    return rc;
}

static void osc_stop(void *instance) {
    osc_plugin *pl = instance;
    o2h_osc_outbox_flush(pl); /* the last turn's datagrams, if the sockets take them */
    for (int i = 0; i < pl->n_delegates; i++)
        o2h_osc_delegate_stop(&pl->delegates[i]);
    for (int i = 0; i < pl->n_ports; i++)
        o2h_osc_port_stop(&pl->ports[i]);
    if (pl->udp_fd >= 0) close(pl->udp_fd);
    pl->udp_fd = -1;
}

static void osc_destroy(void *instance) {
    osc_plugin *pl = instance;
    osc_stop(pl);
    plugin_free(pl);
}

/* ---- transport ops ---- */

static int osc_send(void *instance, void *link_ctx, o2h_msg *msg) {
    (void)instance;
    return o2h_osc_delegate_send(link_ctx, msg);
}

static void osc_close(void *instance, void *link_ctx) {
    /* Delegates come from the config and live until stop(); nothing to do. */
    (void)instance;
    (void)link_ctx;
}

static const o2h_transport_ops osc_ops = {
    .connect = NULL,
    .send = osc_send,
    .close = osc_close,
};

static const o2h_plugin_desc osc_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "osc",
    .version = "1.0.0",
    .description = "OSC interop: O2 services delegated to OSC servers, OSC ports into services",
    .lifecycle = {osc_create, osc_start, osc_stop, osc_destroy},
    .ops = &osc_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &osc_desc;
}
