/*
 * The host side of O2lite over TCP and UDP (docs/o2lite.md): a client
 * connects to our TCP port and sends !_o2/o2lite/con; that link becomes a
 * bridge. Its services, clock pings, status and list queries arrive as
 * !_o2/o2lite/... messages to our "_o2" service.
 */
#include "o2lite_host.h"

#include <stdlib.h>
#include <string.h>

#include "router.h"

#define LOOPBACK 0x7f000001u

/* The bridge the message being handled came from, or NULL (logged). */
static bridge *from_bridge(o2h_router *r, const o2h_msg *msg, const char *what) {
    o2h_link *from = msg_origin(msg);
    if (from && from->bridge && from->bridge->link == from) return from->bridge;
    o2h__router_log(r, O2H_LOG_DEBUG, "core", "ignored %s: not from an O2lite client", what);
    return NULL;
}

static void reply(o2h_router *r, bridge *b, o2h_msg *m) {
    if (!m) return;
    o2h__bridge_send(r, b, m);
    o2h_msg_unref(m);
}

static void handle_con(o2h_router *r, const o2h_msg *msg, const char *types,
                       const o2h_arg *const *argv, int argc, void *user_data) {
    o2h_link *from = msg_origin(msg);
    if (!from || from->peer || from->bridge || !r->net.tcp_plugin ||
        from->plugin != r->net.tcp_plugin) {
        o2h__router_log(r, O2H_LOG_DEBUG, "core", "ignored !_o2/o2lite/con: not a new TCP client");
        return;
    }
    bridge *b = o2h__bridge_new(r, from, "O2lite", true);
    if (!b) return;
    uint32_t ip = (uint32_t)strtoul(argv[0]->s, NULL, 16);
    int port = argv[1]->i;
    if (port > 0 && port <= 65535) {
        b->udp = o2h__proto_connect(r->net.udp_plugin, ip ? ip : LOOPBACK, port);
        if (b->udp) b->udp->bridge = b;
    }
    o2h_builder *bd = r->pbuilder;
    o2h_builder_start(bd);
    o2h_add_int32(bd, b->id);
    reply(r, b, o2h_builder_finish(bd, 0, "!_o2/id", O2H_FLAG_RELIABLE));
}

static void handle_sv(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    bridge *b = from_bridge(r, msg, "!_o2/o2lite/sv");
    if (!b) return;
    int rc = o2h__bridge_service(r, b, argv[0]->s, argv[1]->i != 0, argv[2]->i != 0, argv[3]->s,
                                 argv[4]->i);
    if (rc != O2H_OK)
        o2h__router_log(r, O2H_LOG_DEBUG, "core", "O2lite client %d: service %s: %s", b->id,
                        argv[0]->s, o2h_strerror(rc));
}

/* A clock ping: answered with our O2 time, only once we have one. It comes by
 * UDP, so the client names itself by its bridge id. */
static void handle_cs_get(o2h_router *r, const o2h_msg *msg, const char *types,
                          const o2h_arg *const *argv, int argc, void *user_data) {
    bridge *b = o2h__bridge_find(r, argv[0]->i);
    const char *reply_to = argv[2]->s;
    if (!b || !r->clock.synced || (reply_to[0] != '!' && reply_to[0] != '/')) return;
    o2h_builder *bd = r->pbuilder;
    o2h_builder_start(bd);
    o2h_add_int32(bd, argv[1]->i);
    o2h_add_time(bd, o2h_time_get(r));
    reply(r, b, o2h_builder_finish(bd, 0, reply_to, 0));
}

static void handle_cs_cs(o2h_router *r, const o2h_msg *msg, const char *types,
                         const o2h_arg *const *argv, int argc, void *user_data) {
    bridge *b = from_bridge(r, msg, "!_o2/o2lite/cs/cs");
    if (b) o2h__bridge_set_synced(r, b);
}

static void handle_st(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    bridge *b = from_bridge(r, msg, "!_o2/o2lite/st");
    if (!b) return;
    o2h_builder *bd = r->pbuilder;
    o2h_builder_start(bd);
    o2h_add_string(bd, argv[0]->s);
    o2h_add_int32(bd, o2h_status(r, argv[0]->s));
    reply(r, b, o2h_builder_finish(bd, 0, "!_o2/st", O2H_FLAG_RELIABLE));
}

static void send_ls_item(o2h_router *r, bridge *b, const char *name, int type, const char *process,
                         const char *extra) {
    o2h_builder *bd = r->pbuilder;
    o2h_builder_start(bd);
    o2h_add_string(bd, name);
    o2h_add_int32(bd, type);
    o2h_add_string(bd, process);
    o2h_add_string(bd, extra);
    reply(r, b, o2h_builder_finish(bd, 0, "!_o2/ls", O2H_FLAG_RELIABLE));
}

/* Every service (name, status, provider process — "_o2" for this one —,
 * properties) and tap (tappee, O2_TAP, tapper's process, tapper), then an
 * empty terminator, as O2 answers. */
static void handle_ls(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    bridge *b = from_bridge(r, msg, "!_o2/o2lite/ls");
    if (!b) return;
    uint32_t pos = 0;
    const char *key;
    void *value;
    while (o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        service *s = value;
        if (s->n_providers) {
            const provider *p = &s->providers[0];
            const char *props = p->properties ? p->properties + (p->properties[0] == ';') : "";
            const char *process = p->kind == PROVIDER_PEER ? p->peer->name : "_o2";
            send_ls_item(r, b, s->name, o2h__service_status(r, s), process, props);
        }
        for (uint32_t i = 0; i < s->n_taps; i++)
            send_ls_item(r, b, s->name, O2H_STATUS_TAP,
                         s->taps[i].owner ? s->taps[i].owner->name : "_o2", s->taps[i].tapper);
    }
    send_ls_item(r, b, "", 0, "", "");
}

int o2h__o2lite_host_init(o2h_router *r) {
    static const struct {
        const char *path, *types;
        o2h_handler handler;
    } methods[] = {
        {"/_o2/o2lite/con", "si", handle_con},        {"/_o2/o2lite/sv", "siisi", handle_sv},
        {"/_o2/o2lite/cs/get", "iis", handle_cs_get}, {"/_o2/o2lite/cs/cs", "", handle_cs_cs},
        {"/_o2/o2lite/st", "s", handle_st},           {"/_o2/o2lite/ls", "", handle_ls},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        int rc = o2h__services_add_method(r, methods[i].path, methods[i].types, methods[i].handler,
                                          NULL, true, true);
        if (rc != O2H_OK) return rc;
    }
    return O2H_OK;
}
