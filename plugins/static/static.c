/*
 * Static discovery: the peers are listed in the config. Until it is told to
 * stop, it sends this process's !_o2/dy (INFO) as a UDP datagram to every
 * listed address, first every "interval_min" seconds, then less and less
 * often up to "interval_max". The core calls announce() again whenever a
 * peer process is lost, which starts the fast rate over, so a restarted
 * peer is found again quickly. Known peers ignore the repeats.
 *
 * Config: { "type": "static", "peers": ["127.0.0.1:50000", ...],
 *           "hub": "127.0.0.1:50001",
 *           "interval_min": 0.1, "interval_max": 4.0 }
 * Each address is a peer's UDP port (O2 processes usually use one number
 * for both their UDP and TCP ports).
 *
 * "hub" names a process (its internal IP and TCP port) to use as a hub, as
 * O2's o2_hub: the core connects to it and to every process it reports. On
 * the same schedule the plugin hands the core a !_o2/dy HUB describing the
 * hub, which a router takes as "use this process as a hub" when it comes by
 * no link; the core ignores the repeats while the hub is connected and so
 * reconnects after the hub is lost.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <o2hub/plugin.h>

#include "netaddr.h"

#define GROWTH 1.5

typedef struct static_discovery {
    const o2h_host *host;
    o2h_plugin *self;
    struct sockaddr_in *peers;
    int n_peers;
    bool has_hub;
    struct sockaddr_in hub;
    o2h_builder *builder; /* the hub request */
    double interval_min, interval_max, interval;
    int fd;
    o2h_timer *timer;
} static_discovery;

static void schedule(static_discovery *sd, double delay);

/* !_o2/dy HUB describing the hub (public IP 00000000, UDP port as TCP), to the core. */
static void request_hub(static_discovery *sd) {
    const o2h_host *h = sd->host;
    char iip[9];
    snprintf(iip, sizeof iip, "%08x", (unsigned)ntohl(sd->hub.sin_addr.s_addr));
    int port = ntohs(sd->hub.sin_port);
    h->msg->builder_start(sd->builder);
    h->msg->add_string(sd->builder, h->proc->ensemble(sd->self));
    h->msg->add_int32(sd->builder, O2H_O2_PROTOCOL_VERSION);
    h->msg->add_string(sd->builder, "00000000");
    h->msg->add_string(sd->builder, iip);
    h->msg->add_int32(sd->builder, port);
    h->msg->add_int32(sd->builder, port);
    h->msg->add_int32(sd->builder, O2H_DY_HUB);
    o2h_msg *m = h->msg->builder_finish(sd->builder, 0, "!_o2/dy", O2H_FLAG_RELIABLE);
    if (m) h->link->deliver(sd->self, NULL, m);
}

static void send_dy(static_discovery *sd) {
    if (sd->has_hub && sd->builder) request_hub(sd);
    o2h_msg *dy = sd->host->proc->dy_message(sd->self, O2H_DY_INFO);
    if (!dy) return;
    for (int i = 0; i < sd->n_peers; i++)
        sendto(sd->fd, dy->data, dy->length, MSG_DONTWAIT, (struct sockaddr *)&sd->peers[i],
               sizeof sd->peers[i]);
    sd->host->msg->msg_unref(dy);
}

static void on_tick(void *ctx) {
    static_discovery *sd = ctx;
    send_dy(sd);
    sd->interval *= GROWTH;
    /* As O2: at least 0.1 s per peer, so that each hears some 10 announcements a second. */
    double longest = 0.1 * sd->n_peers > sd->interval_max ? 0.1 * sd->n_peers : sd->interval_max;
    if (sd->interval > longest) sd->interval = longest;
    schedule(sd, sd->interval);
}

static void schedule(static_discovery *sd, double delay) {
    sd->host->loop->timer_stop(sd->timer); /* safe from inside the timer's own callback */
    sd->timer = sd->host->loop->timer_start(sd->self, delay, 0, on_tick, sd);
}

static int read_peers(static_discovery *sd, const o2h_cfg *cfg) {
    const o2h_host *h = sd->host;
    int n = h->cfg->array_len(cfg, "peers");
    if (n < 0) return O2H_CONFIG_ERROR;
    sd->peers = calloc((size_t)n + 1, sizeof *sd->peers);
    if (!sd->peers) return O2H_NO_MEMORY;
    for (int i = 0; i < n; i++) {
        const o2h_cfg *item = h->cfg->array_item(cfg, "peers", i);
        const char *text = h->cfg->as_string(item);
        if (!text || o2h_netaddr_resolve_endpoint(text, &sd->peers[i]) != 0)
            return h->cfg->error(item, NULL,
                                 "expected \"host:port\" (an IPv4 address or a name with an "
                                 "IPv4 address), as \"127.0.0.1:50000\" or \"localhost:50000\"");
    }
    sd->n_peers = n;
    return O2H_OK;
}

static int read_hub(static_discovery *sd, const o2h_cfg *cfg) {
    const char *text = NULL;
    int rc = sd->host->cfg->get_string(cfg, "hub", NULL, &text);
    if (rc == O2H_CONFIG_ERROR) return rc;
    if (!text) return O2H_OK;
    if (o2h_netaddr_parse_endpoint(text, &sd->hub) != 0 || sd->hub.sin_addr.s_addr == INADDR_ANY)
        return sd->host->cfg->error(cfg, "hub",
                                    "expected the hub's \"IPv4:port\" (its TCP port), as "
                                    "\"127.0.0.1:50000\"");
    sd->has_hub = true;
    return O2H_OK;
}

static int static_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg,
                         void **instance) {
    static_discovery *sd = calloc(1, sizeof *sd);
    if (!sd) return O2H_NO_MEMORY;
    sd->host = host;
    sd->self = self;
    sd->fd = -1;
    int rc = read_peers(sd, cfg);
    if (rc == O2H_OK) rc = read_hub(sd, cfg);
    if (rc == O2H_OK &&
        (host->cfg->get_double(cfg, "interval_min", 0.1, &sd->interval_min) == O2H_CONFIG_ERROR ||
         host->cfg->get_double(cfg, "interval_max", 4.0, &sd->interval_max) == O2H_CONFIG_ERROR))
        rc = O2H_CONFIG_ERROR;
    if (rc == O2H_OK && (sd->interval_min <= 0 || sd->interval_max < sd->interval_min))
        rc = host->cfg->error(cfg, NULL, "need 0 < interval_min <= interval_max");
    if (rc != O2H_OK) {
        free(sd->peers);
        free(sd);
        return rc;
    }
    *instance = sd;
    return O2H_OK;
}

static int static_start(void *instance) {
    static_discovery *sd = instance;
    sd->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sd->fd < 0) return O2H_SOCKET_ERROR;
    if (sd->has_hub && !(sd->builder = sd->host->msg->builder_new(sd->self))) return O2H_NO_MEMORY;
    return O2H_OK;
}

static int static_announce(void *instance, const o2h_process_info *info) {
    static_discovery *sd = instance;
    (void)info; /* the core builds the dy message; we only carry it */
    sd->interval = sd->interval_min;
    send_dy(sd);
    schedule(sd, sd->interval);
    return O2H_OK;
}

static int static_withdraw(void *instance) {
    static_discovery *sd = instance;
    sd->host->loop->timer_stop(sd->timer);
    sd->timer = NULL;
    return O2H_OK;
}

static void static_stop(void *instance) {
    static_discovery *sd = instance;
    static_withdraw(sd);
    if (sd->fd >= 0) close(sd->fd);
    sd->fd = -1;
    if (sd->builder) sd->host->msg->builder_free(sd->builder);
    sd->builder = NULL;
}

static void static_destroy(void *instance) {
    static_discovery *sd = instance;
    free(sd->peers);
    free(sd);
}

static const o2h_discovery_ops static_ops = {
    .announce = static_announce,
    .withdraw = static_withdraw,
};

static const o2h_plugin_desc static_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_discovery_ops),
    .kind = O2H_PLUGIN_DISCOVERY,
    .name = "static",
    .version = "1.0.0",
    .description = "discovery of peers listed in the config, by !_o2/dy datagrams with backoff, "
                   "and of a hub's processes",
    .lifecycle = {static_create, static_start, static_stop, static_destroy},
    .ops = &static_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &static_desc;
}
