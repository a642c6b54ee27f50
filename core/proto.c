/*
 * The O2 process protocol (docs/tcp-udp.md): naming, the !_o2/dy
 * handshake, !_o2/sv service lists, /_o2/si notifications.
 *
 * Roles: of two processes, the one with the lesser name connects (client);
 * the greater one (server), when it discovers the lesser first, asks it to
 * connect with a short-lived TCP connection carrying dy CALLBACK.
 */
#include "proto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "loader.h"
#include "msg_internal.h"
#include "monitor.h"
#include "o2lite_host.h"
#include "names.h"
#include "router.h"

#define O2_MAJOR(v) ((v)&0xff0000)

/* ---- helpers ---- */

static bool named(const o2h_router *r) {
    return r->process_name[0] == '@';
}

static peer *find_peer(o2h_router *r, const char *name) {
    for (peer *p = r->net.peers; p; p = p->next)
        if (strcmp(p->name, name) == 0) return p;
    return NULL;
}

static void dotted(uint32_t ip, char *out, size_t size) {
    struct in_addr a = {.s_addr = htonl(ip)};
    inet_ntop(AF_INET, &a, out, (socklen_t)size);
}

o2h_link *o2h__proto_connect(o2h_plugin *p, uint32_t ip, int port) {
    if (!p || !p->transport.connect) return NULL;
    char addr[32], ipbuf[INET_ADDRSTRLEN];
    dotted(ip, ipbuf, sizeof ipbuf);
    snprintf(addr, sizeof addr, "%s:%d", ipbuf, port);
    o2h_link *link = NULL;
    return p->transport.connect(p->instance, addr, &link) == O2H_OK ? link : NULL;
}

/* Send a message the core made on one link, then release it. */
static void send_and_release(o2h_router *r, o2h_link *link, o2h_msg *msg) {
    if (!msg) return;
    if (link) o2h__link_send(r, link, msg);
    o2h_msg_unref(msg);
}

void o2h__proto_announce(o2h_router *r) {
    if (!named(r) || r->closing) return;
    o2h_process_info info = {.ensemble = r->ensemble,
                             .name = r->process_name,
                             .version = O2H_O2_PROTOCOL_VERSION,
                             .tcp_port = r->net.tcp_port,
                             .udp_port = r->net.udp_port,
                             .internal_ip = r->net.internal_ip};
    for (o2h_plugin *p = r->plugins; p; p = p->next) {
        if (!p->started) continue;
        if (p->desc->kind == O2H_PLUGIN_DISCOVERY && r->net.discovery_stopped) continue;
        if (p->desc->kind == O2H_PLUGIN_DISCOVERY && p->discovery.announce)
            p->discovery.announce(p->instance, &info);
        else if (p->desc->kind == O2H_PLUGIN_TRANSPORT && p->transport.announce)
            p->transport.announce(p->instance, &info); /* a transport that also discovers */
    }
    r->net.announcing = true;
}

/* ---- messages this process sends ---- */

static o2h_msg *dy_for(o2h_router *r, const char *pip, const char *iip, int tcp, int udp,
                       int flag) {
    o2h_builder *b = r->pbuilder;
    o2h_builder_start(b);
    o2h_add_string(b, r->ensemble);
    o2h_add_int32(b, O2H_O2_PROTOCOL_VERSION);
    o2h_add_string(b, pip);
    o2h_add_string(b, iip);
    o2h_add_int32(b, tcp);
    o2h_add_int32(b, udp);
    o2h_add_int32(b, flag);
    return o2h_builder_finish(b, 0, "!_o2/dy", O2H_FLAG_RELIABLE);
}

o2h_msg *o2h__proto_dy_message(o2h_router *r, int flag) {
    if (!named(r)) return NULL;
    char iip[16];
    snprintf(iip, sizeof iip, "%08x", r->net.internal_ip);
    /* public IP: no STUN, as O2 offline */
    return dy_for(r, "00000000", iip, r->net.tcp_port, r->net.udp_port, flag);
}

o2h_msg *o2h__proto_dy_of_peer(o2h_router *r, const peer *p, int flag) {
    char pip[9], iip[9]; /* "@pppppppp:iiiiiiii:tttt" */
    if (strlen(p->name) < 19) return NULL;
    snprintf(pip, sizeof pip, "%.8s", p->name + 1);
    snprintf(iip, sizeof iip, "%.8s", p->name + 10);
    return dy_for(r, pip, iip, p->tcp_port, p->udp_port, flag);
}

/* Every service but the local process's own names ("_o2", "@...") is announced. */
static bool announced_name(const char *name) {
    return strcmp(name, "_o2") != 0 && name[0] != '@';
}

/* The properties as O2 sends them in !_o2/sv: with the leading ';', ";" for none. */
static const char *sv_properties(const provider *p) {
    return p->properties && p->properties[0] ? p->properties : ";";
}

/* !_o2/sv with every service this process offers. */
static o2h_msg *full_service_list(o2h_router *r) {
    o2h_builder *b = r->pbuilder;
    o2h_builder_start(b);
    o2h_add_string(b, r->process_name);
    uint32_t pos = 0;
    const char *key;
    void *value;
    while (o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        service *s = value;
        for (uint32_t i = 0; i < s->n_providers; i++) {
            if (s->providers[i].kind == PROVIDER_PEER || !announced_name(s->name)) continue;
            o2h_add_string(b, s->name);
            o2h_add_true(b);
            o2h_add_true(b);
            o2h_add_string(b, sv_properties(&s->providers[i]));
            o2h_add_int32(b, 0);
        }
        for (uint32_t i = 0; i < s->n_taps; i++) {
            if (s->taps[i].owner) continue; /* only the taps this process owns */
            o2h_add_string(b, s->taps[i].tapper);
            o2h_add_true(b);
            o2h_add_false(b);
            o2h_add_string(b, s->name);
            o2h_add_int32(b, s->taps[i].mode);
        }
    }
    return o2h_builder_finish(b, 0, "!_o2/sv", O2H_FLAG_RELIABLE);
}

void o2h__proto_tap_changed(o2h_router *r, const char *tappee, const char *tapper, int mode,
                            bool added) {
    if (r->closing || !named(r)) return;
    for (peer *p = r->net.peers; p; p = p->next) {
        if (!p->tcp) continue;
        o2h_builder *b = r->pbuilder;
        o2h_builder_start(b);
        o2h_add_string(b, r->process_name);
        o2h_add_string(b, tapper);
        o2h_add_tf(b, added);
        o2h_add_false(b); /* a tap */
        o2h_add_string(b, tappee);
        o2h_add_int32(b, added ? mode : 0);
        send_and_release(r, p->tcp, o2h_builder_finish(b, 0, "!_o2/sv", O2H_FLAG_RELIABLE));
    }
}

static o2h_msg *one_service_item(o2h_router *r, const char *name, bool added,
                                 const char *properties) {
    o2h_builder *b = r->pbuilder;
    o2h_builder_start(b);
    o2h_add_string(b, r->process_name);
    o2h_add_string(b, name);
    o2h_add_tf(b, added);
    o2h_add_true(b); /* a service, not a tap */
    o2h_add_string(b, added ? properties : "");
    o2h_add_int32(b, 0);
    return o2h_builder_finish(b, 0, "!_o2/sv", O2H_FLAG_RELIABLE);
}

/* ---- /_o2/si ---- */

static bool si_wanted(o2h_router *r) {
    service *o2 = o2h__services_find(&r->services, "_o2", 3);
    return o2 && o2h__strmap_getn(&o2->methods, "/si", 3);
}

/*
 * One !_o2/si notice: service, status, process, properties (without the
 * leading ';'). `later` queues it as O2 queues the notices of a clock
 * status change (o2_clock_status_change blocks re-entry): they reach the
 * handler after the ones sent directly meanwhile, as in O2.
 */
static void send_si(o2h_router *r, const char *name, int status, const char *process,
                    const char *props, bool later) {
    if (!si_wanted(r)) return;
    if (!props) props = "";
    if (props[0] == ';') props++;
    o2h_builder *b = o2h_builder_new(r->pool);
    if (!b) return;
    o2h_add_string(b, name);
    o2h_add_int32(b, status);
    o2h_add_string(b, process);
    o2h_add_string(b, props);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/si", 0);
    o2h_builder_free(b);
    if (!m) return;
    if (later)
        o2h__router_send_later(r, m);
    else
        o2h__router_send_from(r, m, NULL); /* queued if a handler is running */
}

void o2h__proto_notify_si(o2h_router *r, const service *s, bool later) {
    if (r->closing || s->n_providers == 0) return;
    const provider *top = &s->providers[0];
    /* O2 names the process of a remote provider, "_o2" for this one's (and its bridges'). */
    const char *process = top->kind == PROVIDER_PEER ? top->peer->name : "_o2";
    send_si(r, s->name, o2h__service_status(r, s), process, top->properties, later);
}

/* Tell every peer about one service this process offers (or no longer does). */
static void tell_peers(o2h_router *r, const char *name, bool added, const char *props) {
    if (!announced_name(name) || !named(r)) return;
    for (peer *p = r->net.peers; p; p = p->next) {
        if (!p->tcp) continue;
        send_and_release(r, p->tcp, one_service_item(r, name, added, props ? props : ""));
    }
}

static const char *own_properties(o2h_router *r, const service *s) {
    for (uint32_t i = 0; s && i < s->n_providers; i++)
        if (s->providers[i].kind != PROVIDER_PEER) return s->providers[i].properties;
    return NULL;
}

void o2h__proto_service_added(o2h_router *r, const char *name, provider_kind kind, bool active) {
    if (r->closing) return;
    service *s = o2h__services_find(&r->services, name, strlen(name));
    if (!s) return;
    /* As O2's service_provider_new: a notice only when the new provider is the active one. */
    if (active) o2h__proto_notify_si(r, s, false);
    if (strcmp(name, "_cs") == 0) o2h__clock_reference_changed(r);
    if (kind != PROVIDER_PEER) tell_peers(r, name, true, own_properties(r, s));
}

void o2h__proto_properties_changed(o2h_router *r, const char *name) {
    if (r->closing) return;
    service *s = o2h__services_find(&r->services, name, strlen(name));
    if (!s) return;
    const char *props = own_properties(r, s);
    /* As O2's o2_set_service_properties: the service's status, this process's own
     * name and new properties, and nothing before the process has a name. */
    if (named(r)) send_si(r, name, o2h__service_status(r, s), r->process_name, props, false);
    tell_peers(r, name, true, props);
}

void o2h__proto_service_removed(o2h_router *r, const char *name, provider_kind kind,
                                const char *process) {
    if (r->closing) return;
    /* As O2's remove_service: first the provider that left (status -1), then,
     * if the service is still offered, its active provider. */
    send_si(r, name, O2H_STATUS_UNKNOWN, process, "", false);
    service *s = o2h__services_find(&r->services, name, strlen(name));
    if (s) o2h__proto_notify_si(r, s, false);
    if (strcmp(name, "_cs") == 0) o2h__clock_reference_changed(r);
    if (kind != PROVIDER_PEER) tell_peers(r, name, false, "");
}

/* ---- peers ---- */

static peer *peer_new(o2h_router *r, const char *name, uint32_t ip, int tcp_port, int udp_port) {
    peer *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ip = ip;
    p->tcp_port = tcp_port;
    p->udp_port = udp_port;
    p->next = r->net.peers;
    r->net.peers = p;
    return p;
}

static void peer_unlink(o2h_router *r, peer *gone) {
    for (peer **pp = &r->net.peers; *pp; pp = &(*pp)->next)
        if (*pp == gone) {
            *pp = gone->next;
            return;
        }
}

static void free_peer(void *ctx) {
    free(ctx);
}

/* The peer is gone: its services everywhere, its links, and tell discovery. */
static void peer_lost(o2h_router *r, peer *p) {
    o2h__router_log(r, O2H_LOG_INFO, "core", "lost process %s", p->name);
    peer_unlink(r, p);
    o2h__services_remove_peer_everywhere(r, p);
    if (p->tcp) p->tcp->peer = NULL;
    if (p->udp) {
        p->udp->peer = NULL;
        o2h__link_close(p->udp);
    }
    o2h__loop_defer(&r->lp, &p->free_later, free_peer, p);
    o2h__proto_announce(r); /* start the discovery backoff over, to find it again */
}

void o2h__proto_link_closed(o2h_router *r, o2h_link *link) {
    peer *p = link->peer;
    if (!p) return;
    link->peer = NULL;
    if (p->udp == link) {
        p->udp = NULL;
        return;
    }
    if (p->tcp == link) {
        p->tcp = NULL;
        peer_lost(r, p);
    }
}

static void send_callback(o2h_router *r, uint32_t ip, int tcp);

static void attach_udp(o2h_router *r, peer *p) {
    p->udp = o2h__proto_connect(r->net.udp_plugin, p->ip, p->udp_port);
    if (p->udp) p->udp->peer = p;
}

void o2h__proto_peer_udp_port(o2h_router *r, peer *p, int udp) {
    if (udp == p->udp_port || udp <= 0 || udp > 65535) return;
    p->udp_port = udp;
    if (p->udp) {
        p->udp->peer = NULL;
        o2h__link_close(p->udp);
        p->udp = NULL;
    }
    attach_udp(r, p);
}

peer *o2h__proto_peer_at(o2h_router *r, uint32_t ip, int tcp) {
    for (peer *p = r->net.peers; p; p = p->next)
        if (p->ip == ip && p->tcp_port == tcp) return p;
    return NULL;
}

bool o2h__proto_tcp_peer(const o2h_router *r, const peer *p) {
    return p->tcp && !p->tcp->freed && p->tcp->plugin == r->net.tcp_plugin;
}

/*
 * We are the lesser name: connect, then send dy CONNECT and our service
 * list; dy HUB instead when it is a process we asked to be our hub (it
 * answers dy REPLY, then we send !_o2/hub).
 */
static void connect_as_client(o2h_router *r, const char *name, uint32_t ip, int tcp, int udp) {
    o2h_link *link = o2h__proto_connect(r->net.tcp_plugin, ip, tcp);
    if (!link) {
        o2h__router_log(r, O2H_LOG_WARN, "core", "cannot connect to %s", name);
        return;
    }
    peer *p = peer_new(r, name, ip, tcp, udp);
    if (!p) {
        o2h__link_close(link);
        return;
    }
    p->tcp = link;
    link->peer = p;
    attach_udp(r, p);
    p->our_hub = o2h__hub_is(r, ip, tcp);
    o2h__router_log(r, O2H_LOG_INFO, "core", "connecting to process %s%s", name,
                    p->our_hub ? " (our hub)" : "");
    send_and_release(r, link, o2h__proto_dy_message(r, p->our_hub ? O2H_DY_HUB : O2H_DY_CONNECT));
    o2h__clock_announce_sync_on(r, link);
    send_and_release(r, link, full_service_list(r));
    if (link->freed) return; /* the connection failed at once: the peer is gone */
    o2h__services_add_peer(r, name, p, NULL);
    o2h__hub_peer_added(r, p);
}

void o2h__proto_discovered(o2h_router *r, const char *name, uint32_t ip, int tcp, int udp) {
    if (find_peer(r, name) || strcmp(r->process_name, name) == 0) return;
    if (strcmp(r->process_name, name) < 0)
        connect_as_client(r, name, ip, tcp, udp);
    else
        send_callback(r, ip, tcp);
}

/* We are the greater name: ask the peer to connect to us. */
static void send_callback(o2h_router *r, uint32_t ip, int tcp) {
    o2h_link *link = o2h__proto_connect(r->net.tcp_plugin, ip, tcp);
    if (!link) return;
    send_and_release(r, link, o2h__proto_dy_message(r, O2H_DY_CALLBACK));
    o2h__link_close(link); /* the transport flushes, then closes */
}

/*
 * A lesser process connected to us and named itself: dy CONNECT, or dy HUB
 * (`hub_request`: it wants us as its hub; we answer dy REPLY first). When it
 * is a process we asked to be our hub, it connected because we sent it dy
 * CALLBACK: we ask with !_o2/hub first, as O2 does.
 */
static void accept_client(o2h_router *r, o2h_link *from, const char *name, uint32_t ip, int tcp,
                          int udp, bool hub_request) {
    /* A link speaks for one process, named once: a second dy CONNECT (another
     * name) or one from an O2lite client's link is ignored. */
    if (from->peer || from->bridge) return;
    peer *old = find_peer(r, name);
    if (old) peer_lost(r, old); /* a restarted process with the same name */
    peer *p = peer_new(r, name, ip, tcp, udp);
    if (!p) return;
    p->tcp = from;
    from->peer = p;
    attach_udp(r, p);
    p->our_hub = !hub_request && o2h__hub_is(r, ip, tcp);
    o2h__router_log(r, O2H_LOG_INFO, "core", "accepted process %s%s", name,
                    hub_request  ? " (asks us to be its hub)"
                    : p->our_hub ? " (our hub)"
                                 : "");
    if (hub_request) send_and_release(r, from, o2h__proto_dy_message(r, O2H_DY_REPLY));
    if (p->our_hub) o2h__hub_ask(r, p);
    o2h__clock_announce_sync_on(r, from);
    send_and_release(r, from, full_service_list(r));
    if (from->freed) return; /* it closed meanwhile: the peer is gone */
    o2h__services_add_peer(r, name, p, NULL);
    if (!hub_request) o2h__hub_peer_added(r, p); /* else its !_o2/hub introduces it */
}

/* A transport's link is the only path to a process (O2's MQTT "process via broker"). */
int o2h__proto_process_link(o2h_router *r, o2h_link *link, const char *name) {
    if (!named(r)) return O2H_NOT_INITIALIZED;
    unsigned tcp;
    char pip[9], iip[9], tail;
    if (!link || !name || strlen(name) != 23 ||
        sscanf(name, "@%8[0-9a-f]:%8[0-9a-f]:%4x%c", pip, iip, &tcp, &tail) != 3 ||
        strlen(pip) != 8 || strlen(iip) != 8 || strcmp(name, r->process_name) == 0)
        return O2H_BAD_NAME;
    peer *p = find_peer(r, name);
    if (p && p->tcp != link) return O2H_ALREADY_RUNNING;
    if (!p && (link->peer || link->bridge)) return O2H_ALREADY_RUNNING;
    if (!p) {
        p = peer_new(r, name, (uint32_t)strtoul(iip, NULL, 16), (int)tcp, 0);
        if (!p) return O2H_NO_MEMORY;
        p->tcp = link; /* no p->udp: best-effort messages take the same link */
        link->peer = p;
        o2h__router_log(r, O2H_LOG_INFO, "core", "process %s reached through %s", name,
                        link->description);
    }
    /* Also again for a known process: it lost us and asks for our state anew. */
    o2h__clock_announce_sync_on(r, link);
    send_and_release(r, link, full_service_list(r));
    o2h__services_add_peer(r, name, p, NULL);
    return O2H_OK;
}

/* A process outside "allow" (or at an address no process has): never reached. */
static void refuse_process(o2h_router *r, const char *name, uint32_t ip, const o2h_link *from) {
    char ipbuf[INET_ADDRSTRLEN], nets[256];
    dotted(ip, ipbuf, sizeof ipbuf);
    o2h__allow_describe(&r->allow, nets, sizeof nets);
    r->stats.refused++;
    o2h__router_log_limited(r, &r->refused_log, O2H_LOG_WARN, "core",
                            "refused process %s at %s (came by %s): not in \"allow\" (%s)", name,
                            ipbuf, from ? from->description : "-", nets);
}

/* ---- handlers of system messages ---- */

static void handle_dy(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    const char *ensemble = argv[0]->s, *iip = argv[3]->s;
    int32_t version = argv[1]->i, tcp = argv[4]->i, udp = argv[5]->i, flag = argv[6]->i;
    if (strcmp(ensemble, r->ensemble) != 0 ||
        O2_MAJOR(version) != O2_MAJOR(O2H_O2_PROTOCOL_VERSION))
        return;
    if (!named(r)) return;
    o2h_link *from = msg_origin(msg);
    if (tcp <= 0 || tcp > 65535 || udp < 0 || udp > 65535 || !o2h__names_is_ip_hex(argv[2]->s) ||
        !o2h__names_is_ip_hex(iip)) {
        /* O2 builds these fields one way only: anything else is not an O2 process. */
        r->stats.dropped_bad_names++;
        o2h__router_log_limited(r, &r->bad_name_log, O2H_LOG_WARN, "core",
                                "dropped !_o2/dy naming @%.16s:%.16s:%x (came by %s): not an O2 "
                                "process name",
                                argv[2]->s, iip, (unsigned)tcp, from ? from->description : "-");
        return;
    }
    char name[32];
    snprintf(name, sizeof name, "@%s:%s:%04x", argv[2]->s, iip, (unsigned)tcp);
    if (strcmp(name, r->process_name) == 0) return;
    uint32_t ip = (uint32_t)strtoul(iip, NULL, 16);
    if (!o2h__allow_permits(&r->allow, ip)) {
        refuse_process(r, name, ip, from);
        if (from && (flag == O2H_DY_CONNECT || flag == O2H_DY_HUB)) o2h__link_close(from);
        return;
    }
    switch (flag) {
    case O2H_DY_CONNECT:
        if (from) accept_client(r, from, name, ip, tcp, udp, false);
        return;
    case O2H_DY_HUB:
        if (from)
            accept_client(r, from, name, ip, tcp, udp, true);
        else /* made in this process (the static plugin's "hub"): use it as a hub */
            o2h__hub_use(r, argv[2]->s, ip, tcp, udp);
        return;
    case O2H_DY_REPLY:
        if (from) o2h__hub_replied(r, from, name, udp);
        return;
    case O2H_DY_CALLBACK:
        if (from) o2h__link_close(from);
        if (!find_peer(r, name) && strcmp(r->process_name, name) < 0)
            connect_as_client(r, name, ip, tcp, udp);
        return;
    default: /* INFO and the rest: discovery */ o2h__proto_discovered(r, name, ip, tcp, udp);
    }
}

/* One item of !_o2/sv: name, added, is-service, properties or tappee, send mode. */
static int read_sv_item(o2h_reader *rd, const char **name, bool *added, bool *is_service,
                        const char **props, int *mode) {
    o2h_arg a;
    if (o2h_reader_next(rd, 's', &a) != O2H_OK) return O2H_BAD_TYPE;
    *name = a.s;
    if (o2h_reader_next(rd, 'B', &a) != O2H_OK) return O2H_BAD_TYPE;
    *added = a.B;
    if (o2h_reader_next(rd, 'B', &a) != O2H_OK) return O2H_BAD_TYPE;
    *is_service = a.B;
    if (o2h_reader_next(rd, 's', &a) != O2H_OK) return O2H_BAD_TYPE;
    *props = a.s;
    int rc = o2h_reader_next(rd, 'i', &a);
    *mode = a.i;
    return rc;
}

/* A process over its bound: refused, counted, logged once per burst. */
static void refuse_over_bound(o2h_router *r, peer *p, const char *what, unsigned bound) {
    r->stats.refused++;
    o2h__router_log_limited(r, &p->over_bound_log, O2H_LOG_WARN, "core",
                            "process %s: more than %u %s refused", p->name, bound, what);
}

static void peer_add_service(o2h_router *r, peer *p, const char *name, const char *props) {
    bool again = o2h__services_offered_by(r, name, PROVIDER_PEER, p);
    if (!again && p->n_services >= PEER_MAX_SERVICES) {
        refuse_over_bound(r, p, "services", PEER_MAX_SERVICES);
        return;
    }
    if (o2h__services_add_peer(r, name, p, props) == O2H_OK && !again) p->n_services++;
}

static void peer_add_tap(o2h_router *r, peer *p, const char *tappee, const char *tapper, int mode) {
    if (p->n_taps >= PEER_MAX_TAPS) {
        refuse_over_bound(r, p, "taps", PEER_MAX_TAPS);
        return;
    }
    if (o2h__services_add_tap(r, tappee, tapper, p, mode) == O2H_OK) p->n_taps++;
}

static void handle_sv(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    o2h_link *from = msg_origin(msg);
    peer *p = from ? from->peer : NULL;
    o2h_reader rd;
    o2h_arg a;
    if (!p || o2h_reader_init(&rd, msg, NULL, 0) != O2H_OK || o2h_reader_next(&rd, 's', &a) != 0 ||
        strcmp(a.s, p->name) != 0) {
        o2h__router_log(r, O2H_LOG_DEBUG, "core", "ignored !_o2/sv from an unknown process");
        return;
    }
    const char *name, *props;
    bool added, is_service;
    int mode;
    while (o2h_reader_peek(&rd) &&
           read_sv_item(&rd, &name, &added, &is_service, &props, &mode) == O2H_OK) {
        if (!name[0] || strcmp(name, "_o2") == 0) continue;
        o2h__router_log(r, O2H_LOG_DEBUG, "core", "sv from %s (%s): %s %s %s \"%s\" %d", p->name,
                        from->description, name, added ? "T" : "F", is_service ? "T" : "F", props,
                        mode);
        if (added && is_service)
            peer_add_service(r, p, name, props);
        else if (!added && (is_service || !props[0])) {
            /* O2 2.0.1 announces removal as (F, F, ""): accept both forms. */
            if (o2h__services_remove(r, name, PROVIDER_PEER, p) == O2H_OK && p->n_services)
                p->n_services--;
        } else if (added) /* a tap: `name` taps `props` */
            peer_add_tap(r, p, props, name, mode);
        else if (o2h__services_remove_tap(r, props, name, p) == O2H_OK && p->n_taps)
            p->n_taps--;
    }
}

/* ---- setup ---- */

int o2h__proto_init(o2h_router *r) {
    int rc = o2h__services_add_internal(r, "_o2");
    if (rc == O2H_OK)
        rc = o2h__services_add_method(r, "/_o2/dy", "sissiii", handle_dy, NULL, true, true);
    if (rc == O2H_OK)
        rc = o2h__services_add_method(r, "/_o2/sv", NULL, handle_sv, NULL, false, false);
    if (rc == O2H_OK) rc = o2h__o2lite_host_init(r);
    if (rc == O2H_OK) rc = o2h__monitor_init(r);
    if (rc == O2H_OK) rc = o2h__hub_init(r);
    return rc;
}

void o2h__proto_fini(o2h_router *r) {
    while (r->net.peers) {
        peer *p = r->net.peers;
        r->net.peers = p->next;
        if (p->tcp) p->tcp->peer = NULL;
        if (p->udp) p->udp->peer = NULL;
        free(p);
    }
    o2h__hub_fini(r);
}

int o2h__proto_net_register(o2h_router *r, o2h_plugin *p, int proto, uint32_t ip, int port) {
    if (port <= 0 || port > 65535) return O2H_BAD_ARGS;
    if (proto == O2H_NET_TCP) {
        if (r->net.tcp_plugin && r->net.tcp_plugin != p) return O2H_ALREADY_RUNNING;
        r->net.tcp_plugin = p;
        r->net.tcp_port = port;
        r->net.internal_ip = ip;
    } else if (proto == O2H_NET_UDP) {
        if (r->net.udp_plugin && r->net.udp_plugin != p) return O2H_ALREADY_RUNNING;
        r->net.udp_plugin = p;
        r->net.udp_port = port;
    } else {
        return O2H_BAD_ARGS;
    }
    if (r->net.tcp_plugin && r->net.udp_plugin && !named(r)) {
        snprintf(r->process_name, sizeof r->process_name, "@00000000:%08x:%04x", r->net.internal_ip,
                 (unsigned)r->net.tcp_port);
        o2h__router_log(r, O2H_LOG_INFO, "core", "process name %s", r->process_name);
        o2h__proto_announce(r);
        o2h__hub_named(r); /* hubs asked for before we had a name */
    }
    return O2H_OK;
}

int o2h__proto_send_to_peer(o2h_router *r, peer *p, o2h_msg *msg) {
    o2h_link *link = (o2h_msg_reliable(msg) || !p->udp) ? p->tcp : p->udp;
    if (!link) {
        r->stats.dropped_send_error++;
        return O2H_SEND_FAIL;
    }
    return o2h__link_send(r, link, msg);
}
