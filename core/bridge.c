/* Bridges: light clients whose services this process offers for them. */
#include "bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "names.h"
#include "router.h"
#include "services.h"

bridge *o2h__bridge_new(o2h_router *r, o2h_link *link, const char *protocol, bool schedule_first) {
    if (!link || link->bridge || link->peer) return NULL;
    bridge *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->id = ++r->bridges.next_id;
    snprintf(b->protocol, sizeof b->protocol, "%s", protocol ? protocol : "bridge");
    b->link = link;
    b->schedule_first = schedule_first;
    link->bridge = b;
    b->next = r->bridges.list;
    r->bridges.list = b;
    o2h__router_log(r, O2H_LOG_INFO, "core", "%s client %d connected (%s)", b->protocol, b->id,
                    link->description);
    return b;
}

bridge *o2h__bridge_find(o2h_router *r, int id) {
    for (bridge *b = r->bridges.list; b; b = b->next)
        if (b->id == id) return b;
    return NULL;
}

static void close_udp(bridge *b) {
    o2h_link *udp = b->udp;
    if (!udp) return;
    b->udp = NULL;
    udp->bridge = NULL;
    o2h__link_close(udp);
}

static void free_taps(bridge *b) {
    for (uint32_t i = 0; i < b->n_taps; i++) {
        free(b->taps[i].tappee);
        free(b->taps[i].tapper);
    }
    free(b->taps);
    b->taps = NULL;
    b->n_taps = 0;
}

static void bridge_destroy(bridge *b) {
    close_udp(b);
    free_taps(b);
    free(b);
}

static void unlink_bridge(o2h_router *r, bridge *gone) {
    for (bridge **pp = &r->bridges.list; *pp; pp = &(*pp)->next)
        if (*pp == gone) {
            *pp = gone->next;
            return;
        }
}

void o2h__bridge_link_closed(o2h_router *r, o2h_link *link) {
    bridge *b = link->bridge;
    if (!b) return;
    link->bridge = NULL;
    if (b->udp == link) { /* the best-effort path alone is gone */
        b->udp = NULL;
        return;
    }
    unlink_bridge(r, b);
    o2h__router_log(r, O2H_LOG_INFO, "core", "%s client %d left", b->protocol, b->id);
    /* Its taps go with it; its services go with the link (the caller). */
    for (uint32_t i = 0; i < b->n_taps; i++)
        if (o2h__services_remove_tap(r, b->taps[i].tappee, b->taps[i].tapper, NULL) == O2H_OK)
            o2h__proto_tap_changed(r, b->taps[i].tappee, b->taps[i].tapper, 0, false);
    bridge_destroy(b);
}

void o2h__bridge_fini(o2h_router *r) {
    while (r->bridges.list) {
        bridge *b = r->bridges.list;
        r->bridges.list = b->next;
        b->link->bridge = NULL;
        if (b->udp) b->udp->bridge = NULL;
        bridge_destroy(b);
    }
}

static int remember_tap(bridge *b, const char *tappee, const char *tapper) {
    bridge_tap *t = realloc(b->taps, (b->n_taps + 1) * sizeof *t);
    if (!t) return O2H_NO_MEMORY;
    b->taps = t;
    t[b->n_taps].tappee = strdup(tappee);
    t[b->n_taps].tapper = strdup(tapper);
    if (!t[b->n_taps].tappee || !t[b->n_taps].tapper) {
        free(t[b->n_taps].tappee);
        free(t[b->n_taps].tapper);
        return O2H_NO_MEMORY;
    }
    b->n_taps++;
    return O2H_OK;
}

static void forget_tap(bridge *b, const char *tappee, const char *tapper) {
    for (uint32_t i = 0; i < b->n_taps; i++)
        if (strcmp(b->taps[i].tappee, tappee) == 0 && strcmp(b->taps[i].tapper, tapper) == 0) {
            free(b->taps[i].tappee);
            free(b->taps[i].tapper);
            b->taps[i] = b->taps[--b->n_taps];
            return;
        }
}

/* A client over its bound: refused, counted, logged once per burst. */
static int refuse_over_bound(o2h_router *r, bridge *b, const char *what, unsigned bound) {
    r->stats.refused++;
    o2h__router_log_limited(r, &b->over_bound_log, O2H_LOG_WARN, "core",
                            "%s client %d: more than %u %s refused", b->protocol, b->id, bound,
                            what);
    return O2H_TOO_LARGE;
}

static int bridge_add_or_remove_service(o2h_router *r, bridge *b, const char *name, bool added,
                                        const char *props_or_empty) {
    if (!added) {
        int rc = o2h__services_remove(r, name, PROVIDER_LINK, b->link);
        if (rc == O2H_OK && b->n_services) b->n_services--;
        return rc;
    }
    bool again = o2h__services_offered_by(r, name, PROVIDER_LINK, b->link);
    if (!again && b->n_services >= BRIDGE_MAX_SERVICES)
        return refuse_over_bound(r, b, "services", BRIDGE_MAX_SERVICES);
    /* O2 clients send "" or ";key:value;...": keep only a real property list. */
    const char *props =
        props_or_empty && props_or_empty[0] == ';' && props_or_empty[1] ? props_or_empty : NULL;
    int rc = o2h__services_add_link_props(r, name, b->link, props);
    if (rc == O2H_OK && !again) b->n_services++;
    if (rc == O2H_SERVICE_EXISTS)
        o2h__router_log(r, O2H_LOG_WARN, "core", "%s client %d offers %s, which this process has",
                        b->protocol, b->id, name);
    return rc;
}

static int bridge_add_or_remove_tap(o2h_router *r, bridge *b, const char *tapper, bool added,
                                    const char *tappee, int mode) {
    if (!tappee[0] || strlen(tappee) > 127 || !o2h__names_valid_service(tapper))
        return O2H_BAD_NAME;
    if (!added) {
        forget_tap(b, tappee, tapper);
        int rc = o2h__services_remove_tap(r, tappee, tapper, NULL);
        if (rc == O2H_OK) o2h__proto_tap_changed(r, tappee, tapper, 0, false);
        return rc;
    }
    if (b->n_taps >= BRIDGE_MAX_TAPS) return refuse_over_bound(r, b, "taps", BRIDGE_MAX_TAPS);
    int rc = o2h__services_add_tap(r, tappee, tapper, NULL, mode);
    if (rc != O2H_OK) return rc;
    if (remember_tap(b, tappee, tapper) != O2H_OK) {
        o2h__services_remove_tap(r, tappee, tapper, NULL);
        return O2H_NO_MEMORY;
    }
    o2h__proto_tap_changed(r, tappee, tapper, mode, true);
    return O2H_OK;
}

int o2h__bridge_service(o2h_router *r, bridge *b, const char *name, bool added, bool is_service,
                        const char *props_or_tappee, int mode) {
    if (!is_service) return bridge_add_or_remove_tap(r, b, name, added, props_or_tappee, mode);
    return bridge_add_or_remove_service(r, b, name, added, props_or_tappee);
}

void o2h__bridge_set_synced(o2h_router *r, bridge *b) {
    if (b->synced) return;
    b->synced = true;
    o2h__router_log(r, O2H_LOG_INFO, "core", "%s client %d has clock sync", b->protocol, b->id);
    o2h__services_link_status_changed(r, b->link);
}

int o2h__bridge_send(o2h_router *r, bridge *b, o2h_msg *msg) {
    o2h_link *link = (o2h_msg_reliable(msg) || !b->udp) ? b->link : b->udp;
    return o2h__link_send(r, link, msg);
}
