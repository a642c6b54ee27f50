#include "services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg_internal.h"
#include "names.h"
#include "proto.h"
#include "router.h"

void o2h__services_init(service_table *t) {
    o2h__strmap_init(&t->by_name);
}

static void method_free(method *m) {
    if (!m) return;
    free(m->key);
    free(m->typespec);
    free(m);
}

static void free_methods(service *s) {
    uint32_t pos = 0;
    const char *key;
    void *value;
    while (o2h__strmap_next(&s->methods, &pos, &key, &value))
        method_free(value);
    o2h__strmap_fini(&s->methods);
    method_free(s->whole);
    s->whole = NULL;
    s->hot = NULL;
}

static void service_destroy(service *s) {
    free_methods(s);
    for (uint32_t i = 0; i < s->n_taps; i++)
        free(s->taps[i].tapper);
    free(s->taps);
    for (uint32_t i = 0; i < s->n_providers; i++)
        free(s->providers[i].properties);
    free(s->providers);
    free(s->name);
    free(s);
}

void o2h__services_fini(service_table *t) {
    uint32_t pos = 0;
    const char *key;
    void *value;
    while (o2h__strmap_next(&t->by_name, &pos, &key, &value))
        service_destroy(value);
    o2h__strmap_fini(&t->by_name);
}

service *o2h__services_find(const service_table *t, const char *name, size_t len) {
    service *s = o2h__strmap_getn(&t->by_name, name, len);
    return s && s->n_providers > 0 ? s : NULL;
}

static void service_drop(service_table *t, service *s) {
    if (t->hot == s) t->hot = NULL;
    o2h__strmap_remove(&t->by_name, s->name);
    service_destroy(s);
}

/* The entry goes when it has neither providers nor taps. */
static void drop_if_empty(o2h_router *r, service *s) {
    if (s->n_providers > 0 || s->n_taps > 0) return;
    service_drop(&r->services, s);
}

const char *o2h__provider_process(const o2h_router *r, const provider *p) {
    return p->kind == PROVIDER_PEER ? p->peer->name : r->process_name;
}

bool o2h__service_is_ours(const o2h_router *r, const service *s) {
    (void)r;
    return s->n_providers > 0 && s->providers[0].kind != PROVIDER_PEER;
}

int o2h__service_status(const o2h_router *r, const service *s) {
    /* Remote and bridged services need the other side's sync too (its /_o2/cs/cs):
     * until then they report the NOTIME codes. */
    switch (s->providers[0].kind) {
    case PROVIDER_LOCAL: return r->clock.synced ? O2H_STATUS_LOCAL : O2H_STATUS_LOCAL_NOTIME;
    case PROVIDER_PEER:
        return r->clock.synced && s->providers[0].peer->synced ? O2H_STATUS_REMOTE
                                                               : O2H_STATUS_REMOTE_NOTIME;
    default: {
        /* A link without a bridge is a delegation (OSC). */
        const struct bridge *b = s->providers[0].link->bridge;
        if (!b) return r->clock.synced ? O2H_STATUS_TO_OSC : O2H_STATUS_TO_OSC_NOTIME;
        return r->clock.synced && b->synced ? O2H_STATUS_BRIDGE : O2H_STATUS_BRIDGE_NOTIME;
    }
    }
}

static service *service_get_or_create(o2h_router *r, const char *name) {
    service *s = strmap_get(&r->services.by_name, name);
    if (s) return s;
    s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name))) {
        free(s);
        return NULL;
    }
    s->name_len = (uint32_t)strlen(name);
    o2h__strmap_init(&s->methods);
    if (o2h__strmap_put(&r->services.by_name, name, s) != 0) {
        service_destroy(s);
        return NULL;
    }
    return s;
}

static bool has_local_process_provider(const service *s) {
    for (uint32_t i = 0; i < s->n_providers; i++)
        if (s->providers[i].kind != PROVIDER_PEER) return true;
    return false;
}

static bool same_provider(const provider *p, provider_kind kind, const void *link_or_peer) {
    if (p->kind != kind) return false;
    if (kind == PROVIDER_PEER) return p->peer == link_or_peer;
    if (kind == PROVIDER_LINK) return p->link == link_or_peer;
    return true;
}

bool o2h__services_offered_by(const o2h_router *r, const char *name, provider_kind kind,
                              const void *link_or_peer) {
    const service *s = strmap_get(&r->services.by_name, name);
    for (uint32_t i = 0; s && i < s->n_providers; i++)
        if (same_provider(&s->providers[i], kind, link_or_peer)) return true;
    return false;
}

/* O2's tie rule: the provider whose process name is greatest is active (index 0). */
static void promote_best(const o2h_router *r, service *s) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < s->n_providers; i++)
        if (strcmp(o2h__provider_process(r, &s->providers[i]),
                   o2h__provider_process(r, &s->providers[best])) > 0)
            best = i;
    if (best != 0) {
        provider tmp = s->providers[0];
        s->providers[0] = s->providers[best];
        s->providers[best] = tmp;
    }
}

static int insert_provider(o2h_router *r, service *s, provider p) {
    if (s->n_providers == s->cap_providers) {
        uint32_t cap = s->cap_providers ? s->cap_providers * 2 : 2;
        provider *np = realloc(s->providers, cap * sizeof *np);
        if (!np) return O2H_NO_MEMORY;
        s->providers = np;
        s->cap_providers = cap;
    }
    s->providers[s->n_providers++] = p;
    promote_best(r, s);
    return O2H_OK;
}

/* `*active`: the provider added (or re-announced) is the active one. */
static int add_provider(o2h_router *r, const char *name, provider p, bool check_name,
                        bool *active) {
    *active = false;
    if (check_name && !o2h__names_valid_service(name)) return O2H_BAD_NAME;
    bool existed = strmap_get(&r->services.by_name, name) != NULL;
    service *s = service_get_or_create(r, name);
    if (!s) return O2H_NO_MEMORY;
    const void *who = p.kind == PROVIDER_PEER ? (const void *)p.peer : (const void *)p.link;
    for (uint32_t i = 0; i < s->n_providers; i++) {
        bool again =
            p.kind == PROVIDER_PEER
                ? same_provider(&s->providers[i], PROVIDER_PEER, p.peer)
                : p.kind == PROVIDER_LINK && same_provider(&s->providers[i], PROVIDER_LINK, p.link);
        if (again) {
            /* A peer or a bridge client offering it again (O2lite clients re-send
             * their whole list): keep one entry, take the new properties. */
            free(s->providers[i].properties);
            s->providers[i].properties = p.properties;
            *active = i == 0;
            /* O2 treats a bridge's repeat as a change of properties. */
            if (p.kind == PROVIDER_LINK) o2h__proto_properties_changed(r, name);
            return O2H_OK;
        }
    }
    if (p.kind != PROVIDER_PEER && has_local_process_provider(s)) return O2H_SERVICE_EXISTS;
    int rc = insert_provider(r, s, p);
    if (rc != O2H_OK && !existed) service_drop(&r->services, s);
    if (rc != O2H_OK) return rc;
    *active = same_provider(&s->providers[0], p.kind, who);
    if (check_name) o2h__proto_service_added(r, name, p.kind, *active);
    return O2H_OK;
}

int o2h__services_add_local(o2h_router *r, const char *name, const char *properties) {
    provider p = {.kind = PROVIDER_LOCAL};
    if (properties && !(p.properties = strdup(properties))) return O2H_NO_MEMORY;
    bool active;
    int rc = add_provider(r, name, p, true, &active);
    if (rc != O2H_OK) free(p.properties);
    return rc;
}

int o2h__services_add_link(o2h_router *r, const char *name, o2h_link *link) {
    return o2h__services_add_link_props(r, name, link, NULL);
}

int o2h__services_add_link_props(o2h_router *r, const char *name, o2h_link *link,
                                 const char *props) {
    provider p = {.kind = PROVIDER_LINK, .link = link};
    if (props && !(p.properties = strdup(props))) return O2H_NO_MEMORY;
    bool active;
    int rc = add_provider(r, name, p, true, &active);
    if (rc != O2H_OK) free(p.properties);
    return rc;
}

void o2h__services_link_status_changed(o2h_router *r, o2h_link *link) {
    /* As O2's o2_clock_status_change: nothing changes before this process has sync. */
    if (!r->clock.synced) return;
    uint32_t pos = 0;
    const char *key;
    void *value;
    /* Notices are queued, so the table does not change meanwhile. */
    while (o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        service *s = value;
        if (s->n_providers && s->providers[0].kind == PROVIDER_LINK && s->providers[0].link == link)
            o2h__proto_notify_si(r, s, true);
    }
}

int o2h__services_add_internal(o2h_router *r, const char *name) {
    bool active;
    return add_provider(r, name, (provider){.kind = PROVIDER_LOCAL}, false, &active);
}

int o2h__services_add_peer(o2h_router *r, const char *name, struct peer *who,
                           const char *properties) {
    provider p = {.kind = PROVIDER_PEER, .peer = who};
    if (properties && properties[0] && !(p.properties = strdup(properties))) return O2H_NO_MEMORY;
    /* Peers may announce any name, "@..." process names included; dispatch checks addresses. */
    if (!name[0] || strlen(name) > 127 || strchr(name, '/')) {
        free(p.properties);
        return O2H_BAD_NAME;
    }
    bool active;
    int rc = add_provider(r, name, p, false, &active);
    if (rc != O2H_OK) free(p.properties);
    if (rc == O2H_OK) o2h__proto_service_added(r, name, PROVIDER_PEER, active);
    return rc;
}

static void remove_provider_at(o2h_router *r, service *s, uint32_t i) {
    provider_kind kind = s->providers[i].kind;
    char name[128], process[32];
    snprintf(name, sizeof name, "%s", s->name);
    /* O2 names the process that left: a peer, or this one ("_o2" until it has a name). */
    snprintf(process, sizeof process, "%s",
             kind == PROVIDER_PEER ? s->providers[i].peer->name : r->process_name);
    if (kind == PROVIDER_LOCAL) free_methods(s);
    free(s->providers[i].properties);
    s->providers[i] = s->providers[--s->n_providers];
    /* If the active provider left, the greatest remaining takes over. */
    if (i == 0) promote_best(r, s);
    drop_if_empty(r, s);
    o2h__proto_service_removed(r, name, kind, process);
}

int o2h__services_remove(o2h_router *r, const char *name, provider_kind kind,
                         const void *link_or_peer) {
    service *s = strmap_get(&r->services.by_name, name);
    if (!s) return O2H_NO_SERVICE;
    for (uint32_t i = 0; i < s->n_providers; i++) {
        if (same_provider(&s->providers[i], kind, link_or_peer)) {
            remove_provider_at(r, s, i);
            return O2H_OK;
        }
    }
    return O2H_NO_SERVICE;
}

static void remove_everywhere(o2h_router *r, provider_kind kind, const void *link_or_peer);

void o2h__services_remove_link_everywhere(o2h_router *r, o2h_link *link) {
    remove_everywhere(r, PROVIDER_LINK, link);
}

static void remove_taps_of(o2h_router *r, struct peer *owner);

void o2h__services_remove_peer_everywhere(o2h_router *r, struct peer *who) {
    remove_everywhere(r, PROVIDER_PEER, who);
    remove_taps_of(r, who); /* a process's taps leave with it */
}

static void remove_everywhere(o2h_router *r, provider_kind kind, const void *link_or_peer) {
    /* Collect first: removing may delete services and rehash the table. */
    uint32_t pos = 0, n = 0;
    const char *key;
    void *value;
    char **names = calloc(r->services.by_name.count + 1, sizeof *names);
    if (!names) return;
    while (o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        service *s = value;
        for (uint32_t i = 0; i < s->n_providers; i++)
            if (same_provider(&s->providers[i], kind, link_or_peer)) names[n++] = strdup(s->name);
    }
    for (uint32_t i = 0; i < n; i++) {
        if (names[i]) o2h__services_remove(r, names[i], kind, link_or_peer);
        free(names[i]);
    }
    free(names);
}

/* ---- methods ---- */

static service *local_service_of_path(o2h_router *r, const char *path, const char **rest) {
    const char *name;
    size_t len;
    if (!path || path[0] != '/' || !o2h__names_service_of(path, &name, &len)) return NULL;
    service *s = o2h__services_find(&r->services, name, len);
    if (!s) return NULL;
    for (uint32_t i = 0; i < s->n_providers; i++) {
        if (s->providers[i].kind == PROVIDER_LOCAL) {
            *rest = name + len;
            return s;
        }
    }
    return NULL;
}

static bool valid_typespec(const char *t) {
    for (; *t; t++)
        if (!strchr("ihfdtsSbcmBTFNIv[]", *t)) return false;
    return true;
}

int o2h__services_add_method(o2h_router *r, const char *path, const char *typespec,
                             o2h_handler handler, void *user_data, bool coerce, bool parse) {
    const char *rest;
    if (!handler) return O2H_BAD_ARGS;
    service *s = local_service_of_path(r, path, &rest);
    if (!s) return O2H_NO_SERVICE;
    if (o2h__names_has_pattern(rest)) return O2H_BAD_NAME;
    if (typespec && !valid_typespec(typespec)) return O2H_BAD_TYPE;
    method *m = calloc(1, sizeof *m);
    if (!m) return O2H_NO_MEMORY;
    *m = (method){.handler = handler, .user_data = user_data, .coerce = coerce, .parse = parse};
    m->key = strdup(rest);
    m->typespec = typespec ? strdup(typespec) : NULL;
    m->n_types = typespec ? (uint32_t)strlen(typespec) : 0;
    if (!m->key || (typespec && !m->typespec)) {
        method_free(m);
        return O2H_NO_MEMORY;
    }
    s->hot = NULL;
    if (rest[0] == '\0') {
        method_free(s->whole);
        s->whole = m;
        return O2H_OK;
    }
    method *old = strmap_get(&s->methods, rest);
    if (o2h__strmap_put(&s->methods, rest, m) != 0) {
        method_free(m);
        return O2H_NO_MEMORY;
    }
    method_free(old);
    return O2H_OK;
}

int o2h__services_remove_method(o2h_router *r, const char *path) {
    const char *rest;
    service *s = local_service_of_path(r, path, &rest);
    if (!s) return O2H_NO_SERVICE;
    s->hot = NULL;
    if (rest[0] == '\0') {
        if (!s->whole) return O2H_NOT_FOUND;
        method_free(s->whole);
        s->whole = NULL;
        return O2H_OK;
    }
    method *m = o2h__strmap_remove(&s->methods, rest);
    if (!m) return O2H_NOT_FOUND;
    method_free(m);
    return O2H_OK;
}

/* ---- taps ---- */

int o2h__services_add_tap(o2h_router *r, const char *tappee, const char *tapper, struct peer *owner,
                          int mode) {
    if (!tappee[0] || !tapper[0] || mode < O2H_TAP_KEEP || mode > O2H_TAP_BEST_EFFORT)
        return O2H_BAD_ARGS;
    service *s = service_get_or_create(r, tappee);
    if (!s) return O2H_NO_MEMORY;
    for (uint32_t i = 0; i < s->n_taps; i++)
        if (s->taps[i].owner == owner && strcmp(s->taps[i].tapper, tapper) == 0)
            return O2H_SERVICE_EXISTS;
    if (s->n_taps == s->cap_taps) {
        uint32_t cap = s->cap_taps ? s->cap_taps * 2 : 2;
        tap *t = realloc(s->taps, cap * sizeof *t);
        if (!t) return O2H_NO_MEMORY;
        s->taps = t;
        s->cap_taps = cap;
    }
    char *copy = strdup(tapper);
    if (!copy) return O2H_NO_MEMORY;
    s->taps[s->n_taps++] = (tap){.tapper = copy, .owner = owner, .mode = mode};
    return O2H_OK;
}

int o2h__services_remove_tap(o2h_router *r, const char *tappee, const char *tapper,
                             struct peer *owner) {
    service *s = strmap_get(&r->services.by_name, tappee);
    for (uint32_t i = 0; s && i < s->n_taps; i++) {
        if (s->taps[i].owner != owner || strcmp(s->taps[i].tapper, tapper) != 0) continue;
        free(s->taps[i].tapper);
        s->taps[i] = s->taps[--s->n_taps];
        drop_if_empty(r, s);
        return O2H_OK;
    }
    return O2H_NOT_FOUND;
}

static void remove_taps_of(o2h_router *r, struct peer *owner) {
    uint32_t pos = 0, n = 0;
    const char *key;
    void *value;
    char **names = calloc(r->services.by_name.count + 1, sizeof *names);
    while (names && o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        service *s = value;
        for (uint32_t i = 0; i < s->n_taps; i++) {
            if (s->taps[i].owner != owner) continue;
            names[n++] = strdup(s->name);
            break;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        service *s = names[i] ? strmap_get(&r->services.by_name, names[i]) : NULL;
        for (uint32_t k = 0; s && k < s->n_taps;) {
            if (s->taps[k].owner == owner) {
                free(s->taps[k].tapper);
                s->taps[k] = s->taps[--s->n_taps];
            } else {
                k++;
            }
        }
        if (s) drop_if_empty(r, s);
        free(names[i]);
    }
    free(names);
}
