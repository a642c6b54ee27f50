/*
 * Hub discovery (docs/discovery-hub.md; O2's src/discovery.cpp and the
 * "Hubs" notes of src/o2.cpp), in both roles.
 *
 * Client: of us and the hub, the lesser name connects, as always. If that
 * is us, our dy on the new connection says HUB instead of CONNECT; the hub
 * answers dy REPLY (which also carries its UDP port) and we send !_o2/hub.
 * If the hub is the lesser, we send it dy CALLBACK, it connects with dy
 * CONNECT, and we send !_o2/hub at once.
 *
 * Hub: on !_o2/hub from a peer, each other O2 process we are connected to
 * and that peer are introduced: the lesser of the two gets the greater's
 * !_o2/dy INFO over TCP and connects to it. Processes that join us later are
 * introduced to the peers that asked, as O2's o2_hub documentation promises
 * (O2 2.0.1 itself does it only for later hub clients).
 */
#include "hub.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg_internal.h"
#include "router.h"

#define MAX_HUBS 16

static bool named(const o2h_router *r) {
    return r->process_name[0] == '@';
}

static hub_entry *find_hub(const o2h_router *r, uint32_t ip, int tcp) {
    for (hub_entry *h = r->net.hubs; h; h = h->next)
        if (h->ip == ip && h->tcp_port == tcp) return h;
    return NULL;
}

bool o2h__hub_is(const o2h_router *r, uint32_t ip, int tcp) {
    return find_hub(r, ip, tcp) != NULL;
}

void o2h__hub_ask(o2h_router *r, peer *p) {
    if (!p->tcp) return;
    p->our_hub = true;
    o2h_builder *b = r->pbuilder;
    o2h_builder_start(b);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/hub", O2H_FLAG_RELIABLE);
    if (!m) return;
    o2h__router_log(r, O2H_LOG_INFO, "core", "asking %s to be our hub", p->name);
    o2h__link_send(r, p->tcp, m);
    o2h_msg_unref(m);
}

/* Connect to the hub (or ask it to connect), or ask it if it is a peer already. */
static void reach_hub(o2h_router *r, hub_entry *h) {
    if (strcmp(h->name, r->process_name) == 0) return; /* we are our own hub */
    peer *p = o2h__proto_peer_at(r, h->ip, h->tcp_port);
    if (p) {
        if (!p->our_hub && o2h__proto_tcp_peer(r, p)) o2h__hub_ask(r, p);
        return;
    }
    o2h__proto_discovered(r, h->name, h->ip, h->tcp_port, h->udp_port);
}

int o2h__hub_use(o2h_router *r, const char *pip, uint32_t ip, int tcp, int udp) {
    if (!o2h__allow_permits(&r->allow, ip)) {
        struct in_addr a = {.s_addr = htonl(ip)};
        char ipbuf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a, ipbuf, sizeof ipbuf);
        r->stats.refused++;
        o2h__router_log_limited(r, &r->refused_log, O2H_LOG_WARN, "core",
                                "refused hub %s:%d: not in \"allow\"", ipbuf, tcp);
        return O2H_FAIL;
    }
    hub_entry *h = find_hub(r, ip, tcp);
    if (!h) {
        if (r->net.n_hubs >= MAX_HUBS || !(h = calloc(1, sizeof *h))) {
            o2h__router_log(r, O2H_LOG_WARN, "core", "cannot use another hub (at most %d)",
                            MAX_HUBS);
            return O2H_FAIL;
        }
        snprintf(h->name, sizeof h->name, "@%.8s:%08x:%04x", pip, ip, (unsigned)tcp);
        h->ip = ip;
        h->tcp_port = tcp;
        h->udp_port = udp > 0 && udp <= 65535 ? udp : tcp;
        h->next = r->net.hubs;
        r->net.hubs = h;
        r->net.n_hubs++;
        o2h__router_log(r, O2H_LOG_INFO, "core", "using %s as a hub", h->name);
    }
    if (named(r)) reach_hub(r, h);
    return O2H_OK;
}

void o2h__hub_named(o2h_router *r) {
    for (hub_entry *h = r->net.hubs; h; h = h->next)
        reach_hub(r, h);
}

void o2h__hub_replied(o2h_router *r, o2h_link *from, const char *name, int udp) {
    peer *p = from->peer;
    if (!p || p->tcp != from || !p->our_hub) {
        o2h__router_log(r, O2H_LOG_DEBUG, "core", "ignored dy REPLY from %s: not our hub", name);
        return;
    }
    if (strcmp(p->name, name) != 0) {
        /* As O2: a hub is known by its full name, and this is another process. */
        o2h__router_log(r, O2H_LOG_WARN, "core",
                        "the hub we reached as %s answered as %s: name the hub by the address "
                        "in its process name",
                        p->name, name);
        o2h__link_close(from);
        return;
    }
    o2h__proto_peer_udp_port(r, p, udp);
    o2h__hub_ask(r, p);
}

/* ---- the hub's side ---- */

typedef struct introduction {
    o2h_link *to;
    o2h_msg *dy;
} introduction;

/*
 * Introduce `p` to every other O2 process (only those that use us as their
 * hub when `clients_only`): the lesser of each pair gets the greater's dy
 * INFO. The messages are made first and sent after, since a send that finds
 * its connection broken may free a peer.
 */
static void introduce(o2h_router *r, peer *p, bool clients_only) {
    int n = 0, k = 0;
    for (peer *q = r->net.peers; q; q = q->next)
        n++;
    introduction *list = calloc((size_t)n + 1, sizeof *list);
    if (!list) return;
    for (peer *q = r->net.peers; q; q = q->next) {
        int order = strcmp(q->name, p->name);
        if (order == 0 || (clients_only && !q->hub_client) || !o2h__proto_tcp_peer(r, q)) continue;
        peer *greater = order > 0 ? q : p, *lesser = order > 0 ? p : q;
        list[k].dy = o2h__proto_dy_of_peer(r, greater, O2H_DY_INFO);
        if (list[k].dy) list[k++].to = lesser->tcp;
    }
    if (k)
        o2h__router_log(r, O2H_LOG_DEBUG, "core", "hub: %s and %d process%s introduced", p->name, k,
                        k == 1 ? "" : "es");
    for (int i = 0; i < k; i++) {
        o2h__link_send(r, list[i].to, list[i].dy);
        o2h_msg_unref(list[i].dy);
    }
    free(list);
}

void o2h__hub_peer_added(o2h_router *r, peer *p) {
    if (o2h__proto_tcp_peer(r, p)) introduce(r, p, true);
}

/* !_o2/hub: the peer that sent it wants us as its hub. */
static void handle_hub(o2h_router *r, const o2h_msg *msg, const char *types,
                       const o2h_arg *const *argv, int argc, void *user_data) {
    o2h_link *from = msg_origin(msg);
    peer *p = from ? from->peer : NULL;
    if (!p || p->tcp != from || !o2h__proto_tcp_peer(r, p)) {
        o2h__router_log(r, O2H_LOG_DEBUG, "core", "ignored !_o2/hub from an unknown process");
        return;
    }
    if (!p->hub_client) o2h__router_log(r, O2H_LOG_INFO, "core", "%s uses us as its hub", p->name);
    p->hub_client = true;
    introduce(r, p, false);
}

int o2h__hub_init(o2h_router *r) {
    return o2h__services_add_method(r, "/_o2/hub", NULL, handle_hub, NULL, false, false);
}

void o2h__hub_fini(o2h_router *r) {
    while (r->net.hubs) {
        hub_entry *h = r->net.hubs;
        r->net.hubs = h->next;
        free(h);
    }
    r->net.n_hubs = 0;
}

/* ---- the embedding API ---- */

/* "IPv4:PORT" or "@pppppppp:iiiiiiii:tttt"; 0 on success. */
static int parse_hub_address(const char *text, char pip[9], uint32_t *ip, int *tcp) {
    char host[INET_ADDRSTRLEN], tail;
    unsigned iip, port;
    if (text[0] == '@') {
        if (strlen(text) != 23 ||
            sscanf(text, "@%8[0-9a-f]:%8x:%4x%c", pip, &iip, &port, &tail) != 3 ||
            strlen(pip) != 8 || text[9] != ':' || text[18] != ':')
            return -1;
        *ip = iip;
    } else {
        struct in_addr a;
        const char *colon = strrchr(text, ':');
        if (!colon || colon == text || (size_t)(colon - text) >= sizeof host ||
            sscanf(colon + 1, "%5u%c", &port, &tail) != 1)
            return -1;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        if (inet_pton(AF_INET, host, &a) != 1) return -1;
        *ip = ntohl(a.s_addr);
        snprintf(pip, 9, "00000000");
    }
    *tcp = (int)port;
    return port > 0 && port <= 65535 ? 0 : -1;
}

int o2h_router_hub(o2h_router *r, const char *address) {
    char pip[9];
    uint32_t ip;
    int tcp;
    if (!r || !address || parse_hub_address(address, pip, &ip, &tcp) != 0) return O2H_BAD_ARGS;
    return o2h__hub_use(r, pip, ip, tcp, tcp);
}

int o2h_router_discovery_stop(o2h_router *r) {
    if (!r) return O2H_BAD_ARGS;
    r->net.discovery_stopped = true;
    for (o2h_plugin *p = r->plugins; p; p = p->next)
        if (p->started && p->desc->kind == O2H_PLUGIN_DISCOVERY && p->discovery.withdraw)
            p->discovery.withdraw(p->instance);
    return O2H_OK;
}
