/*
 * The service table: service name -> providers (the active one first, chosen
 * by O2's tie rule: greatest process name wins) and, for a service this
 * router offers itself, its methods.
 */
#ifndef O2H_SERVICES_H
#define O2H_SERVICES_H

#include <stdbool.h>

#include "o2hub/o2hub.h"
#include "strmap.h"

typedef enum provider_kind {
    PROVIDER_LOCAL = 1, /* methods in this router */
    PROVIDER_LINK = 2,  /* a transport link of this process (bridge client, delegate) */
    PROVIDER_PEER = 3,  /* another O2 process */
} provider_kind;

struct peer;

typedef struct provider {
    provider_kind kind;
    o2h_link *link;    /* PROVIDER_LINK only */
    struct peer *peer; /* PROVIDER_PEER only */
    char *properties;  /* ";key:value;..." or NULL */
} provider;

typedef struct method {
    char *key;      /* path after the service name: "" (whole service) or "/a/b" */
    char *typespec; /* NULL: any arguments */
    uint32_t n_types;
    o2h_handler handler;
    void *user_data;
    bool coerce;
    bool parse;
} method;

/* A tap: copies of every message delivered to the service go to `tapper`. */
typedef struct tap {
    char *tapper;
    struct peer *owner; /* the tapper's process; NULL: this one */
    int mode;           /* O2H_TAP_KEEP, O2H_TAP_RELIABLE, O2H_TAP_BEST_EFFORT */
} tap;

typedef struct service {
    char *name;
    uint32_t name_len;
    provider *providers; /* providers[0] is active; none: an entry kept for its taps */
    uint32_t n_providers;
    uint32_t cap_providers;
    tap *taps;
    uint32_t n_taps, cap_taps;
    strmap methods;  /* key -> method*, only while a local provider exists */
    method *whole;   /* handler for every message to the service, or NULL */
    method *hot;     /* the method found last (a stream to one address skips the lookup) */
    uint64_t routed; /* messages this router routed to the service (for monitors) */
} service;

typedef struct service_table {
    strmap by_name;
    service *hot; /* the service routed to last (a stream skips the lookup), or NULL */
} service_table;

void o2h__services_init(service_table *t);
void o2h__services_fini(service_table *t);

/** A service with at least one provider, or NULL. */
service *o2h__services_find(const service_table *t, const char *name, size_t len);

/** Add a tap on `tappee` (which need not exist yet). O2H_SERVICE_EXISTS if it is there. */
int o2h__services_add_tap(o2h_router *r, const char *tappee, const char *tapper, struct peer *owner,
                          int mode);
int o2h__services_remove_tap(o2h_router *r, const char *tappee, const char *tapper,
                             struct peer *owner);

/** Offer `name` locally; O2H_SERVICE_EXISTS if a local-process provider exists. */
int o2h__services_add_local(o2h_router *r, const char *name, const char *properties);

/** Add a link as a provider (the local process's, for ties). */
int o2h__services_add_link(o2h_router *r, const char *name, o2h_link *link);

/** Add another process as a provider of `name` (any name, "@..." included). */
int o2h__services_add_peer(o2h_router *r, const char *name, struct peer *who,
                           const char *properties);

/** Add a link as a provider with properties (";key:value;..." or NULL). */
int o2h__services_add_link_props(o2h_router *r, const char *name, o2h_link *link,
                                 const char *props);

/** The status of the services `link` provides changed: tell /_o2/si. */
void o2h__services_link_status_changed(o2h_router *r, o2h_link *link);

/** A local service the core itself uses ("_o2"): no name checks, no announcement. */
int o2h__services_add_internal(o2h_router *r, const char *name);

/**
 * Remove a provider (matched by kind and link or peer); the service
 * disappears with its last provider.
 */
int o2h__services_remove(o2h_router *r, const char *name, provider_kind kind,
                         const void *link_or_peer);

/** True when the provider (kind and link or peer) already offers `name`. */
bool o2h__services_offered_by(const o2h_router *r, const char *name, provider_kind kind,
                              const void *link_or_peer);

/** Remove `peer` from every service it provides. */
void o2h__services_remove_peer_everywhere(o2h_router *r, struct peer *who);

/** True when `s` is offered by this process (locally or by one of its links). */
bool o2h__service_is_ours(const o2h_router *r, const service *s);

/** Status of the service's active provider (enum o2h_status). */
int o2h__service_status(const o2h_router *r, const service *s);

/** Remove `link` from every service it provides. */
void o2h__services_remove_link_everywhere(o2h_router *r, o2h_link *link);

int o2h__services_add_method(o2h_router *r, const char *path, const char *typespec,
                             o2h_handler handler, void *user_data, bool coerce, bool parse);
int o2h__services_remove_method(o2h_router *r, const char *path);

/** The process name a provider counts as, for O2's tie rule. */
const char *o2h__provider_process(const o2h_router *r, const provider *p);

#endif
