/*
 * Bridges (O2's bridge model, docs/design.md): a light client — an
 * O2lite device, a browser, a shared-memory thread — reaches the ensemble
 * through this process. Each connected client is one bridge, carried by one
 * transport link; the services it offers are offered by this process, so
 * other processes see them under our name.
 *
 * The O2lite protocol over the TCP and UDP transports is handled here in the
 * core (o2lite_host.c); other bridge transports (WebSocket, shared memory)
 * speak their own framing and call the same functions through the host table.
 */
#ifndef O2H_BRIDGE_H
#define O2H_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "log_limit.h"
#include "o2hub/o2hub.h"

/* What one light client may ask this process to hold for it: enough for any
 * real surface or device, small enough that a hostile client cannot grow the
 * router (docs/security.md). More is refused, counted in "refused", logged. */
#define BRIDGE_MAX_SERVICES 1024u
#define BRIDGE_MAX_TAPS 1024u

typedef struct bridge_tap {
    char *tappee, *tapper;
} bridge_tap;

typedef struct bridge {
    int id;              /* unique in this router, from 1 */
    char protocol[8];    /* "O2lite", "O2ws", "O2sm" */
    o2h_link *link;      /* the client's link (reliable path) */
    o2h_link *udp;       /* best-effort path (O2lite over UDP), or NULL */
    bool synced;         /* the client reported clock sync (…/cs/cs) */
    bool schedule_first; /* hold timed messages here and send them at their time */
    bridge_tap *taps;    /* taps the client asked for, removed when it leaves */
    uint32_t n_taps;
    uint32_t n_services; /* services it offers through us, at most BRIDGE_MAX_SERVICES */
    rate_limit over_bound_log;
    struct bridge *next;
} bridge;

typedef struct bridge_set {
    bridge *list;
    int next_id;
} bridge_set;

/** Make `link` a bridge of `protocol`; NULL if out of memory or already one. */
bridge *o2h__bridge_new(o2h_router *r, o2h_link *link, const char *protocol, bool schedule_first);

/** The bridge with this id, or NULL. */
bridge *o2h__bridge_find(o2h_router *r, int id);

/** The link is going away: forget its bridge (its services are removed by the caller). */
void o2h__bridge_link_closed(o2h_router *r, o2h_link *link);

/** Free every bridge (router shutdown). */
void o2h__bridge_fini(o2h_router *r);

/**
 * A service item from the client, as in O2's …/sv "siisi": a service added
 * or removed, or (is_service false) a tap of `props_or_tappee` by `name`.
 */
int o2h__bridge_service(o2h_router *r, bridge *b, const char *name, bool added, bool is_service,
                        const char *props_or_tappee, int mode);

/** The client has clock sync: its services' status changes (BRIDGE_NOTIME -> BRIDGE). */
void o2h__bridge_set_synced(o2h_router *r, bridge *b);

/** Send to the client: reliable messages on its link, others by UDP when it has that path. */
int o2h__bridge_send(o2h_router *r, bridge *b, o2h_msg *msg);

#endif
