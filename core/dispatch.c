/* Routing of messages and delivery to local methods. */
#include <stdlib.h>
#include <string.h>

#include "msg_internal.h"
#include "names.h"
#include "pattern.h"
#include "router.h"

static int grow_dispatch_buffers(o2h_router *r, uint32_t nargs, size_t scratch) {
    if (nargs > r->args_cap) {
        uint32_t cap = nargs < 16 ? 16 : nargs;
        o2h_arg *args = realloc(r->args, cap * sizeof *args);
        if (!args) return O2H_NO_MEMORY;
        r->args = args;
        const o2h_arg **argv = realloc(r->argv, cap * sizeof *argv);
        if (!argv) return O2H_NO_MEMORY;
        r->argv = argv;
        r->args_cap = cap;
    }
    if (scratch > r->scratch_size) {
        uint8_t *s = realloc(r->scratch, scratch);
        if (!s) return O2H_NO_MEMORY;
        r->scratch = s;
        r->scratch_size = scratch;
    }
    return O2H_OK;
}

void o2h__dispatch_fini(o2h_router *r) {
    free(r->args);
    free(r->argv);
    free(r->scratch);
    r->args = NULL;
    r->argv = NULL;
    r->scratch = NULL;
    r->args_cap = 0;
    r->scratch_size = 0;
}

/*
 * Decode the arguments as `want` asks (coercing where the reader can). Fails
 * with O2H_BAD_TYPE when an argument cannot be read as asked or the numbers
 * of arguments differ.
 */
static int decode_args(o2h_router *r, const o2h_msg *msg, const char *want, size_t nwant,
                       int *argc) {
    /* Coercion at most doubles an element (int32 -> double): 2x covers every vector. */
    int rc = grow_dispatch_buffers(r, (uint32_t)nwant, 2u * msg->length + 64u);
    if (rc != O2H_OK) return rc;
    o2h_reader rd;
    rc = o2h_reader_init(&rd, msg, r->scratch, r->scratch_size);
    if (rc != O2H_OK) return rc;
    int n = 0;
    for (const char *t = want; *t; t++) {
        o2h_arg *a = &r->args[n];
        if (*t == O2H_VECTOR) a->v.type = t[1] ? t[1] : 0;
        if (o2h_reader_next(&rd, *t, a) != O2H_OK) return O2H_BAD_TYPE;
        r->argv[n++] = a;
        if (*t == O2H_VECTOR && t[1]) t++;
    }
    if (o2h_reader_peek(&rd) != 0) return O2H_BAD_TYPE;
    *argc = n;
    return O2H_OK;
}

static int call_method(o2h_router *r, const method *m, const o2h_msg *msg) {
    const char *types = o2h_msg_types(msg);
    const char *want = m->typespec ? m->typespec : types;
    bool exact = !m->typespec || names_equal(types, m->typespec);
    if (!exact && !m->coerce) {
        r->stats.dropped_bad_types++;
        return O2H_BAD_TYPE;
    }
    int argc = 0;
    if (m->parse || !exact) {
        size_t nwant = m->typespec ? m->n_types : strlen(want);
        int rc = decode_args(r, msg, want, nwant, &argc);
        if (rc != O2H_OK) {
            r->stats.dropped_bad_types++;
            o2h__router_log(r, O2H_LOG_DEBUG, "core", "dropped %s: types ,%s do not fit ,%s",
                            o2h_msg_address(msg), types, want);
            return rc;
        }
    }
    r->dispatch_depth++;
    m->handler(r, msg, want, m->parse ? r->argv : NULL, m->parse ? argc : 0, m->user_data);
    r->dispatch_depth--;
    r->stats.delivered++;
    return O2H_OK;
}

static int dispatch_pattern(o2h_router *r, service *svc, const o2h_msg *msg, const char *rest) {
    int matched = 0, rc = O2H_OK;
    uint32_t pos = 0;
    const char *key;
    void *value;
    while (o2h__strmap_next(&svc->methods, &pos, &key, &value)) {
        if (!o2h__pattern_match(rest, key)) continue;
        matched++;
        int one = call_method(r, value, msg);
        if (one != O2H_OK) rc = one;
    }
    if (matched == 0) {
        r->stats.dropped_no_handler++;
        return O2H_NO_HANDLER;
    }
    return rc;
}

int o2h__dispatch_local(o2h_router *r, service *svc, const o2h_msg *msg, const char *rest) {
    if (svc->whole) return call_method(r, svc->whole, msg);
    const char *addr = o2h_msg_address(msg);
    /* '!' promises no pattern characters: skip the scan. */
    if (addr[0] == '/' && o2h__names_has_pattern(rest)) return dispatch_pattern(r, svc, msg, rest);
    method *m =
        svc->hot && names_equal(svc->hot->key, rest) ? svc->hot : strmap_get(&svc->methods, rest);
    if (m) svc->hot = m;
    if (!m) {
        r->stats.dropped_no_handler++;
        o2h__router_log(r, O2H_LOG_DEBUG, "core", "dropped %s: no handler", addr);
        return O2H_NO_HANDLER;
    }
    return call_method(r, m, msg);
}

static int route_bundle(o2h_router *r, const o2h_msg *bundle) {
    uint32_t pos = 0, len;
    const uint8_t *elem;
    int rc = O2H_OK;
    while (o2h_bundle_next(bundle, &pos, &elem, &len)) {
        int code;
        o2h_msg *m = o2h_msg_from_bytes(r->pool, elem, len, &code, NULL);
        if (!m) {
            rc = code;
            continue;
        }
        /* As O2 does: embedded messages travel as reliable ones. */
        o2h_msg_set_flags(m, o2h_msg_misc(m) | O2H_FLAG_RELIABLE);
        msg_set_origin(m, msg_origin(bundle)); /* its elements came the same way */
        int one = o2h__router_route(r, m);
        if (one != O2H_OK) rc = one;
    }
    return rc;
}

/* A bundle stamped in the future waits in the scheduler as a whole, then its
 * elements are routed at its time (each one's own stamp still applies). */
static int route_or_hold_bundle(o2h_router *r, o2h_msg *bundle) {
    double when = o2h_msg_time(bundle);
    if (when > 0 && !r->clock.synced) {
        r->stats.dropped_no_clock++;
        return O2H_NO_CLOCK;
    }
    if (when > 0 && when > o2h_time_get(r)) return o2h__sched_insert(r, o2h_msg_ref(bundle));
    return route_bundle(r, bundle);
}

#define MAX_TAP_TTL 3 /* O2_MAX_TAP_FORWARDING: copies of copies stop here */

/* This process's own provider of the service (methods here, or a link of ours). */
static const provider *own_provider(const service *svc) {
    for (uint32_t i = 0; i < svc->n_providers; i++)
        if (svc->providers[i].kind != PROVIDER_PEER) return &svc->providers[i];
    return NULL;
}

/* A bridge that asks for it gets timed messages at their time: O2 holds them
 * for O2lite clients, which cannot schedule. */
static bool held_for_bridge(o2h_router *r, const o2h_link *link, const o2h_msg *msg) {
    const bridge *b = link->bridge;
    double when = o2h_msg_time(msg);
    return b && b->schedule_first && when > 0 && r->clock.synced && when > o2h_time_get(r);
}

/* Through a link: a bridge picks its path (reliable or best effort). */
static int send_to_link(o2h_router *r, o2h_link *link, o2h_msg *msg) {
    return link->bridge ? o2h__bridge_send(r, link->bridge, msg) : o2h__link_send(r, link, msg);
}

/* Bytes of a copy of `msg` addressed to `tapper` (the rest of the path unchanged). */
static uint32_t tap_copy_length(const o2h_msg *msg, const char *tapper) {
    const char *addr = o2h_msg_address(msg);
    size_t rest = strlen(addr + 1 + strcspn(addr + 1, "/"));
    uint32_t old_alen = pad4((uint32_t)strlen(addr) + 1);
    uint32_t new_alen = pad4((uint32_t)(1 + strlen(tapper) + rest) + 1);
    return msg->length - old_alen + new_alen;
}

/*
 * Write into `copy` the tap copy of `msg` for `t`: the tapper's address, the
 * TAP flag, TTL + 1, the send mode the tap asks for, and the original body.
 */
static void tap_rewrite(o2h_msg *copy, const o2h_msg *msg, const tap *t) {
    const char *addr = o2h_msg_address(msg);
    const char *rest = addr + 1 + strcspn(addr + 1, "/");
    uint32_t old_alen = pad4((uint32_t)strlen(addr) + 1);
    uint32_t body = msg->length - O2H_MSG_ADDRESS_OFFSET - old_alen;
    size_t tlen = strlen(t->tapper), rlen = strlen(rest);
    uint32_t new_alen = pad4((uint32_t)(1 + tlen + rlen) + 1);
    uint32_t misc = o2h_msg_misc(msg);
    bool reliable =
        t->mode == O2H_TAP_KEEP ? (misc & O2H_FLAG_RELIABLE) != 0 : t->mode == O2H_TAP_RELIABLE;
    uint32_t ttl = (misc >> 8) + 1;
    uint8_t *p = copy->data;
    memcpy(p + 4, msg->data + 4, 8); /* timestamp */
    o2h_wr_u32(p, (ttl << 8) | O2H_FLAG_TAP | (reliable ? O2H_FLAG_RELIABLE : 0));
    p += O2H_MSG_ADDRESS_OFFSET;
    memset(p + new_alen - 4, 0, 4);
    p[0] = (uint8_t)addr[0];
    memcpy(p + 1, t->tapper, tlen);
    memcpy(p + 1 + tlen, rest, rlen);
    memcpy(p + new_alen, msg->data + O2H_MSG_ADDRESS_OFFSET + old_alen, body);
    copy->length = O2H_MSG_ADDRESS_OFFSET + new_alen + body;
    msg_set_layout(copy, 0, 0);            /* a reused copy: its address length changed */
    msg_set_origin(copy, msg_origin(msg)); /* a full tapper's link pauses the original's sender */
}

static void deliver_tapped_locally(o2h_router *r, o2h_msg *copy);

/*
 * After a delivery to the active local provider: a copy to every tapper.
 *
 * The copies share one buffer: it is sized for the longest tapper address
 * and rewritten for each tapper in turn. Delivery is synchronous, so the
 * buffer is free again as soon as a handler or transport returns, unless
 * one of them kept a reference (a TCP link queueing it, a handler holding
 * on): then, and only then, the next tapper gets a fresh buffer, so nobody
 * ever sees a copy change under them.
 */
static void copy_to_taps(o2h_router *r, const service *svc, const o2h_msg *msg) {
    if ((o2h_msg_misc(msg) >> 8) >= MAX_TAP_TTL) return;
    uint32_t size = 0;
    for (uint32_t i = 0; i < svc->n_taps; i++) {
        uint32_t n = tap_copy_length(msg, svc->taps[i].tapper);
        if (n > size) size = n;
    }
    o2h_msg *copy = NULL;
    /* Taps may change while copies are delivered: re-read the count each time. */
    for (uint32_t i = 0; i < svc->n_taps; i++) {
        uint32_t need = tap_copy_length(msg, svc->taps[i].tapper);
        if (copy && (o2h_msg_refcount(copy) > 1 || need > copy->capacity)) {
            o2h_msg_unref(copy);
            copy = NULL;
        }
        if (!copy) {
            copy = o2h_msg_alloc(r->pool, need > size ? need : size);
            if (!copy) return;
            r->stats.tap_buffers++;
        }
        tap_rewrite(copy, msg, &svc->taps[i]);
        if (svc->taps[i].owner)
            o2h__proto_send_to_peer(r, svc->taps[i].owner, copy);
        else
            deliver_tapped_locally(r, copy);
        r->stats.tapped++;
    }
    if (copy) o2h_msg_unref(copy);
}

/* Inline: most services have no taps, and every message passes here. */
static inline void forward_to_taps(o2h_router *r, const service *svc, const o2h_msg *msg) {
    if (svc->n_taps != 0) copy_to_taps(r, svc, msg);
}

/* A tap copy goes to this process's own provider even when another process is active. */
static void deliver_tapped_locally(o2h_router *r, o2h_msg *copy) {
    const char *name;
    size_t len;
    if (!o2h__names_service_of(o2h_msg_address(copy), &name, &len)) return;
    const char *rest = name + len; /* after the service: "/x" of "/svc/x" */
    service *svc = o2h__services_find(&r->services, name, len);
    const provider *own = svc ? own_provider(svc) : NULL;
    if (!own) {
        r->stats.dropped_no_service++;
        return;
    }
    if (own->kind == PROVIDER_LINK) {
        send_to_link(r, own->link, copy);
        return;
    }
    o2h__dispatch_local(r, svc, copy, rest);
    forward_to_taps(r, svc, copy);
}

/*
 * The provider a message goes to: the active one, except that a message that
 * came from another process is never passed on to a third: while views of
 * who is active differ (they converge as /_o2/sv spreads), it is delivered
 * to this process's own provider, or dropped. Two processes that each
 * believe the other active can then never bounce a message forever.
 */
static const provider *choose_provider(const service *svc, const o2h_msg *msg) {
    const provider *active = &svc->providers[0];
    const o2h_link *from = msg_origin(msg);
    bool from_peer = from && from->peer;
    if (!from_peer || active->kind != PROVIDER_PEER) return active;
    for (uint32_t i = 0; i < svc->n_providers; i++)
        if (svc->providers[i].kind != PROVIDER_PEER) return &svc->providers[i];
    return NULL;
}

/* `rest`: the address after the service name, from the address itself, so
 * that "@our-name/x" reaches "_o2" too. */
static int route_to_provider(o2h_router *r, service *svc, o2h_msg *msg, const char *rest) {
    const provider *p = choose_provider(svc, msg);
    if (!p) {
        r->stats.dropped_no_service++;
        return O2H_NO_SERVICE;
    }
    if (p->kind == PROVIDER_LINK) {
        if (held_for_bridge(r, p->link, msg)) return o2h__sched_insert(r, o2h_msg_ref(msg));
        int rc = send_to_link(r, p->link, msg);
        forward_to_taps(r, svc, msg); /* served here, as the link's provider is ours */
        return rc;
    }
    if (p->kind == PROVIDER_PEER) return o2h__proto_send_to_peer(r, p->peer, msg);
    /* A future time waits in the scheduler; that needs a synchronised clock. */
    double when = o2h_msg_time(msg);
    if (when > 0 && !r->clock.synced) {
        r->stats.dropped_no_clock++;
        o2h__router_log(r, O2H_LOG_DEBUG, "core", "dropped %s: timed message and no clock",
                        o2h_msg_address(msg));
        return O2H_NO_CLOCK;
    }
    if (when > 0 && when > o2h_time_get(r)) return o2h__sched_insert(r, o2h_msg_ref(msg));
    int rc = o2h__dispatch_local(r, svc, msg, rest);
    forward_to_taps(r, svc, msg);
    return rc;
}

/* The service routed to last, if `addr` names it too: a stream of messages
 * to one service skips the name scan and the hash lookup. */
static service *hot_service(const o2h_router *r, const char *addr) {
    service *hot = r->services.hot;
    if (!hot || hot->n_providers == 0) return NULL;
    if (addr[0] != '/' && addr[0] != '!' && addr[0] != '#') return NULL;
    if (!names_starts_with(addr + 1, hot->name, hot->name_len)) return NULL;
    char after = addr[1 + hot->name_len];
    return after == '/' || after == '\0' ? hot : NULL;
}

int o2h__router_route(o2h_router *r, o2h_msg *msg) {
    const char *name;
    size_t len;
    int rc;
    service *svc = hot_service(r, o2h_msg_address(msg));
    if (svc) {
        name = o2h_msg_address(msg) + 1;
        len = svc->name_len;
    }
    if (!svc && !o2h__names_service_of(o2h_msg_address(msg), &name, &len)) {
        r->stats.dropped_no_service++;
        rc = O2H_BAD_NAME;
    } else {
        if (!svc) svc = o2h__services_find(&r->services, name, len);
        if (svc) r->services.hot = svc;
        /* Our own process name stands for "_o2", as in O2. */
        if (!svc && len == strlen(r->process_name) && memcmp(name, r->process_name, len) == 0)
            svc = o2h__services_find(&r->services, "_o2", 3);
        if (svc) svc->routed++;
        if (!svc) {
            r->stats.dropped_no_service++;
            o2h__router_log(r, O2H_LOG_DEBUG, "core", "dropped %s: no service (came by %s)",
                            o2h_msg_address(msg),
                            msg_origin(msg) ? msg_origin(msg)->description : "-");
            rc = O2H_NO_SERVICE;
        } else if ((o2h_msg_misc(msg) & O2H_FLAG_TAP) && own_provider(svc)) {
            deliver_tapped_locally(r, msg);
            rc = O2H_OK;
        } else if (o2h_msg_is_bundle(msg) && svc->providers[0].kind == PROVIDER_LOCAL) {
            rc = route_or_hold_bundle(r, msg);
        } else {
            rc = route_to_provider(r, svc, msg, name + len);
        }
    }
    o2h_msg_unref(msg);
    return rc;
}
