#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "router.h"

/* O2's ping schedule: every 0.1 s for 5 pings, every 0.5 s until 5 s, then every 10 s. */
static double ping_interval(const clock_state *c, double since_start) {
    if (c->pings_sent < 5) return 0.1;
    return since_start < 5.0 ? 0.5 : 10.0;
}

double o2h__clock_global(const o2h_router *r) {
    const clock_state *c = &r->clock;
    if (!c->synced) return -1.0;
    double l = o2h_local_time(r);
    if (c->rate != 1.0 && l >= c->rate_until)
        return c->g_base + (c->rate_until - c->l_base) * c->rate + (l - c->rate_until);
    return c->g_base + (l - c->l_base) * c->rate;
}

/* Queue a notice for every service whose active provider is `p`'s (REMOTE now). */
static void notify_peer_services(o2h_router *r, const peer *p) {
    uint32_t pos = 0;
    const char *key;
    void *value;
    /* Queued notices leave the table as it is, so it can be walked meanwhile. */
    while (o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        const service *s = value;
        if (s->n_providers && s->providers[0].kind == PROVIDER_PEER && s->providers[0].peer == p)
            o2h__proto_notify_si(r, s, true);
    }
}

/* Queue a notice for every service whose active provider is of `kind` in this
 * process: its own (LOCAL, "_o2" among them) or its synchronised bridges'. */
static void notify_own_services(o2h_router *r, provider_kind kind) {
    uint32_t pos = 0;
    const char *key;
    void *value;
    while (o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        const service *s = value;
        if (!s->n_providers || s->providers[0].kind != kind) continue;
        /* A link without a bridge is an OSC delegation: O2 reports no change for it. */
        if (kind == PROVIDER_LINK &&
            !(s->providers[0].link->bridge && s->providers[0].link->bridge->synced))
            continue;
        o2h__proto_notify_si(r, s, true);
    }
}

static o2h_msg *cs_message(o2h_router *r) {
    o2h_builder *b = r->pbuilder;
    o2h_builder_start(b);
    o2h_add_string(b, r->process_name);
    return o2h_builder_finish(b, 0, "!_o2/cs/cs", O2H_FLAG_RELIABLE);
}

void o2h__clock_announce_sync_on(o2h_router *r, o2h_link *link) {
    if (!r->clock.synced || r->process_name[0] != '@' || !link) return;
    o2h_msg *m = cs_message(r);
    if (m) {
        o2h__link_send(r, link, m);
        o2h_msg_unref(m);
    }
}

/*
 * As O2's announce_synchronized: every peer is told (!_o2/cs/cs), oldest
 * connection first; the services of the peers that are synchronised become
 * REMOTE, those of synchronised bridges BRIDGE, then this process's own
 * LOCAL. The notices are queued, as O2 queues them.
 */
static void became_synced(o2h_router *r) {
    o2h__router_log(r, O2H_LOG_INFO, "core", "clock synchronised%s",
                    r->clock.reference ? " (reference)" : "");
    size_t n = 0;
    for (peer *p = r->net.peers; p; p = p->next)
        n++;
    peer **oldest_first = calloc(n + 1, sizeof *oldest_first);
    size_t k = n;
    for (peer *p = r->net.peers; p && oldest_first; p = p->next)
        oldest_first[--k] = p;
    for (size_t i = 0; oldest_first && i < n; i++) {
        o2h__clock_announce_sync_on(r, oldest_first[i]->tcp);
        if (oldest_first[i]->synced) notify_peer_services(r, oldest_first[i]);
    }
    free(oldest_first);
    notify_own_services(r, PROVIDER_LINK);
    notify_own_services(r, PROVIDER_LOCAL);
}

/* A new estimate of global time at local time `l`: set, slew or jump. */
void o2h__clock_estimate(o2h_router *r, double estimate, double l) {
    clock_state *c = &r->clock;
    if (!c->synced) {
        c->synced = true;
        c->g_base = estimate;
        c->l_base = l;
        c->rate = 1.0;
        became_synced(r);
        return;
    }
    double now = o2h__clock_global(r);
    double error = estimate - now;
    c->g_base = now;
    c->l_base = l;
    if ((error > 1.0 || error < -1.0) && c->jump_fn && c->jump_fn(c->jump_ctx, l, now, estimate)) {
        c->g_base = estimate; /* the application asked for the jump */
        c->rate = 1.0;
    } else if (error > 1.0) {
        c->g_base = estimate; /* far behind: jump forward */
        c->rate = 1.0;
    } else if (error >= -1.0) {
        /* Slew: never jump back, and reach the estimate in 10x the error. */
        c->rate = error >= 0 ? 1.1 : 0.9;
        c->rate_until = l + 10.0 * (error >= 0 ? error : -error);
    } else {
        c->rate = 0.0; /* far ahead: stop until local time catches up */
        c->rate_until = l - error;
    }
}

static void send_ping(o2h_router *r);

static void on_ping_timer(void *ctx) {
    send_ping(ctx);
}

static void send_ping(o2h_router *r) {
    clock_state *c = &r->clock;
    char reply_to[48];
    snprintf(reply_to, sizeof reply_to, "!%s/cs/put", r->process_name);
    c->serial++;
    c->sent_at = o2h_local_time(r);
    c->pings_sent++;
    o2h__router_send_internal(r, "!_cs/get", "is", c->serial, reply_to);
    o2h__loop_timer_stop(c->ping_timer);
    c->ping_timer = o2h__loop_timer_start(&r->lp, ping_interval(c, c->sent_at - c->ping_start), 0,
                                          on_ping_timer, r);
}

/* !@us/cs/put "it": serial, reference time. */
static void handle_put(o2h_router *r, const o2h_msg *msg, const char *types,
                       const o2h_arg *const *argv, int argc, void *user_data) {
    clock_state *c = &r->clock;
    if (c->reference || argv[0]->i != c->serial) return; /* a late reply to an old ping */
    double now = o2h_local_time(r);
    double rtt = now - c->sent_at;
    double ref_now = argv[1]->t + rtt / 2;
    int slot = c->replies % CLOCK_HISTORY;
    c->rtt[slot] = rtt;
    c->offset[slot] = ref_now - now;
    c->replies++;
    if (c->replies < CLOCK_HISTORY) return;
    int best = 0;
    double sum = 0;
    for (int i = 0; i < CLOCK_HISTORY; i++) {
        sum += c->rtt[i];
        if (c->rtt[i] < c->rtt[best]) best = i;
    }
    c->mean_rtt = sum / CLOCK_HISTORY;
    c->min_rtt = c->rtt[best];
    o2h__clock_estimate(r, now + c->offset[best], now);
}

/* !_cs/get "is" at the reference: serial, reply-to. */
static void handle_get(o2h_router *r, const o2h_msg *msg, const char *types,
                       const o2h_arg *const *argv, int argc, void *user_data) {
    if (!r->clock.synced) return;
    o2h__router_send_internal(r, argv[1]->s, "it", argv[0]->i, o2h__clock_global(r));
}

/* !_o2/cs/cs "s": a peer process obtained sync. */
static void handle_cs(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    for (peer *p = r->net.peers; p; p = p->next)
        if (strcmp(p->name, argv[0]->s) == 0 && !p->synced) {
            p->synced = true;
            if (r->clock.synced) notify_peer_services(r, p); /* REMOTE_NOTIME -> REMOTE */
        }
}

/* !@us/cs/rt "s": reply-to; answer "sff" (our name, mean and minimum ping round trip), as O2. */
static void handle_rt(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    double mean, min;
    if (o2h_clock_roundtrip(r, &mean, &min) != O2H_OK) mean = min = 0; /* O2's initial values */
    o2h__router_send_internal(r, argv[0]->s, "sff", r->process_name, mean, min);
}

int o2h__clock_init(o2h_router *r) {
    r->clock.rate = 1.0;
    int rc = o2h__services_add_method(r, "/_o2/cs/put", "it", handle_put, NULL, true, true);
    if (rc == O2H_OK)
        rc = o2h__services_add_method(r, "/_o2/cs/cs", "s", handle_cs, NULL, false, true);
    if (rc == O2H_OK)
        rc = o2h__services_add_method(r, "/_o2/cs/rt", "s", handle_rt, NULL, false, true);
    return rc;
}

void o2h_time_jump_callback_set(o2h_router *r, o2h_time_jump_fn fn, void *ctx) {
    r->clock.jump_fn = fn;
    r->clock.jump_ctx = ctx;
}

void o2h__clock_fini(o2h_router *r) {
    o2h__loop_timer_stop(r->clock.ping_timer);
    r->clock.ping_timer = NULL;
}

int o2h__clock_become_reference(o2h_router *r) {
    clock_state *c = &r->clock;
    if (c->reference) return O2H_OK;
    o2h__loop_timer_stop(c->ping_timer);
    c->ping_timer = NULL;
    bool was_synced = c->synced;
    double now = o2h_local_time(r);
    c->reference = true;
    if (!was_synced) {
        c->synced = true;
        c->g_base = now;
        c->l_base = now;
        c->rate = 1.0;
        /* Before "_cs" exists, as in O2's o2_clock_set: its notices are queued ... */
        became_synced(r);
    }
    /* ... and "_cs" (announced to every process like any other service) is
     * told at once, so outside a handler its notice comes first. */
    int rc = o2h__services_add_internal(r, "_cs");
    if (rc == O2H_OK)
        rc = o2h__services_add_method(r, "/_cs/get", "is", handle_get, NULL, true, true);
    if (rc == O2H_OK) {
        const service *cs = o2h__services_find(&r->services, "_cs", 3);
        o2h__proto_service_added(r, "_cs", PROVIDER_LOCAL,
                                 cs && cs->providers[0].kind == PROVIDER_LOCAL);
    }
    return rc == O2H_SERVICE_EXISTS ? O2H_OK : rc;
}

void o2h__clock_reference_changed(o2h_router *r) {
    clock_state *c = &r->clock;
    if (c->reference || r->closing) return;
    service *cs = o2h__services_find(&r->services, "_cs", 3);
    bool remote_ref = cs && cs->providers[0].kind == PROVIDER_PEER;
    if (remote_ref && !c->ping_timer && r->process_name[0] == '@') {
        c->pings_sent = 0;
        c->ping_start = o2h_local_time(r);
        send_ping(r);
    } else if (!remote_ref && c->ping_timer) {
        o2h__loop_timer_stop(c->ping_timer); /* once synchronised, a process stays so */
        c->ping_timer = NULL;
    }
}
