/*
 * The O2 process protocol: process names, the discovery handshake
 * (!_o2/dy), service announcements (!_o2/sv), /_o2/si notifications, and
 * the peers (other O2 processes) this router is connected to.
 */
#ifndef O2H_PROTO_H
#define O2H_PROTO_H

#include <stdbool.h>
#include <stdint.h>

#include "log_limit.h"
#include "o2hub/o2hub.h"
#include "o2hub/plugin.h"
#include "services.h"

/* What one process may ask this one to hold for it: far more than any real program offers,
 * a bound all the same (docs/security.md). More is refused, counted in "refused". */
#define PEER_MAX_SERVICES 65536u
#define PEER_MAX_TAPS 4096u

typedef struct peer {
    char name[32]; /* "@pppppppp:iiiiiiii:tttt" */
    o2h_link *tcp; /* reliable path; NULL once lost */
    o2h_link *udp; /* best-effort destination, or NULL */
    uint32_t ip;   /* internal IPv4, host order */
    int tcp_port;
    int udp_port;
    bool synced;                 /* it sent !_o2/cs/cs */
    bool our_hub;                /* we asked it to be our hub (hub.h) */
    bool hub_client;             /* it asked us to be its hub (/_o2/hub) */
    uint32_t n_services, n_taps; /* held here for it, at most PEER_MAX_SERVICES, PEER_MAX_TAPS */
    rate_limit over_bound_log;
    struct peer *next;
    /* A lost peer is unlinked at once and freed in the loop's deferred phase:
     * a loop over the peers may be sending when a failed send loses one. */
    o2h_deferred free_later;
} peer;

typedef struct hub_entry hub_entry;

typedef struct net_state {
    o2h_plugin *tcp_plugin;
    o2h_plugin *udp_plugin;
    uint32_t internal_ip;
    int tcp_port;
    int udp_port;
    peer *peers;
    hub_entry *hubs; /* the processes asked to be our hub (hub.h) */
    int n_hubs;
    bool announcing;        /* discovery plugins have been told our name */
    bool discovery_stopped; /* o2h_router_discovery_stop: discovery plugins are not told again */
} net_state;

/** Create the "_o2" service and the handlers for O2's system messages. */
int o2h__proto_init(o2h_router *r);
void o2h__proto_fini(o2h_router *r);

int o2h__proto_net_register(o2h_router *r, o2h_plugin *p, int proto, uint32_t ip, int port);

/** Tell the started discovery plugins this process's name and ports (once named). */
void o2h__proto_announce(o2h_router *r);

/** A `!_o2/dy` message for this process, or NULL before it has a name. */
o2h_msg *o2h__proto_dy_message(o2h_router *r, int flag);

/** A `!_o2/dy` message describing the peer `p` (a hub introduces processes with it). */
o2h_msg *o2h__proto_dy_of_peer(o2h_router *r, const peer *p, int flag);

/**
 * A process was found (a discovery message, a hub): the lesser name connects,
 * the greater asks it to with dy CALLBACK; nothing if it is already a peer.
 */
void o2h__proto_discovered(o2h_router *r, const char *name, uint32_t ip, int tcp, int udp);

/** The peer whose TCP port is `tcp` at internal IP `ip`, or NULL. */
peer *o2h__proto_peer_at(o2h_router *r, uint32_t ip, int tcp);

/** The peer's UDP port is `udp` after all (its dy REPLY): best effort goes there now. */
void o2h__proto_peer_udp_port(o2h_router *r, peer *p, int udp);

/** Is the peer an O2 process reached by the TCP transport (not through a broker)? */
bool o2h__proto_tcp_peer(const o2h_router *r, const peer *p);

/** A link is gone (closed by its transport): forget the peer it led to. */
void o2h__proto_link_closed(o2h_router *r, o2h_link *link);

/*
 * /_o2/si notices, as O2 2.x sends them, and the matching !_o2/sv to peers
 * for this process's own services.
 */

/**
 * A provider of `name` was added (or a peer re-announced it): a notice if it
 * is the active provider (`active`), and every peer is told when the
 * provider is this process's.
 */
void o2h__proto_service_added(o2h_router *r, const char *name, provider_kind kind, bool active);

/**
 * A provider of `name` left: a notice naming `process` (the one that left;
 * this process's name for its own providers) with status -1, then one for
 * the new active provider if the service remains; peers are told when the
 * provider was this process's.
 */
void o2h__proto_service_removed(o2h_router *r, const char *name, provider_kind kind,
                                const char *process);

/** The properties of this process's provider of `name` changed: a notice and the peers. */
void o2h__proto_properties_changed(o2h_router *r, const char *name);

/**
 * Tell the local /_o2/si handler (if any) the state of the service's active
 * provider. `later`: queued behind the notices sent directly meanwhile, as
 * O2 queues those of a clock status change.
 */
void o2h__proto_notify_si(o2h_router *r, const service *s, bool later);

/** Tell every peer that this process added or removed a tap. */
void o2h__proto_tap_changed(o2h_router *r, const char *tappee, const char *tapper, int mode,
                            bool added);

/** Open a link with a transport's connect() to ip:port (host order); NULL on failure. */
o2h_link *o2h__proto_connect(o2h_plugin *p, uint32_t ip, int port);

/** Make `link` the path to process `name` (host->process_link). */
int o2h__proto_process_link(o2h_router *r, o2h_link *link, const char *name);

/** Send to a peer: reliable messages over TCP, others over UDP when possible. */
int o2h__proto_send_to_peer(o2h_router *r, peer *p, o2h_msg *msg);

#endif
