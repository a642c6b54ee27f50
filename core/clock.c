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

double clock_global(const o2h_router *r) {
    const clock_state *c = &r->clock;
    if (!c->synced) return -1.0;
    double l = o2h_local_time(r);
    if (c->rate != 1.0 && l >= c->rate_until)
        return c->g_base + (c->rate_until - c->l_base) * c->rate + (l - c->rate_until);
    return c->g_base + (l - c->l_base) * c->rate;
}

/*
 * Tell /_o2/si about services whose status just changed: all of them when
 * this process got sync (only_peer NULL), else those `only_peer` provides.
 */
static void notify_services(o2h_router *r, const peer *only_peer) {
    uint32_t pos = 0, n = 0;
    const char *key;
    void *value;
    char **names = calloc(r->services.by_name.count + 1, sizeof *names);
    while (names && strmap_next(&r->services.by_name, &pos, &key, &value)) {
        const service *s = value;
        if (strcmp(key, "_o2") == 0 || s->n_providers == 0) continue; /* no "_o2", no tap-only */
        if (only_peer &&
            !(s->providers[0].kind == PROVIDER_PEER && s->providers[0].peer == only_peer))
            continue;
        names[n++] = strdup(key);
    }
    for (uint32_t i = 0; i < n; i++) {
        if (names[i]) proto_service_changed(r, names[i], PROVIDER_PEER, true);
        free(names[i]);
    }
    free(names);
}

static o2h_msg *cs_message(o2h_router *r) {
    o2h_builder *b = r->pbuilder;
    o2h_builder_start(b);
    o2h_add_string(b, r->process_name);
    return o2h_builder_finish(b, 0, "!_o2/cs/cs", O2H_FLAG_RELIABLE);
}

void clock_announce_sync_on(o2h_router *r, o2h_link *link) {
    if (!r->clock.synced || r->process_name[0] != '@' || !link) return;
    o2h_msg *m = cs_message(r);
    if (m) {
        link_send(r, link, m);
        o2h_msg_unref(m);
    }
}

static void became_synced(o2h_router *r) {
    router_log(r, O2H_LOG_INFO, "core", "clock synchronised%s",
               r->clock.reference ? " (reference)" : "");
    for (peer *p = r->net.peers; p; p = p->next)
        clock_announce_sync_on(r, p->tcp);
    notify_services(r, NULL);
}

/* A new estimate of global time at local time `l`: set, slew or jump. */
void clock_estimate(o2h_router *r, double estimate, double l) {
    clock_state *c = &r->clock;
    if (!c->synced) {
        c->synced = true;
        c->g_base = estimate;
        c->l_base = l;
        c->rate = 1.0;
        became_synced(r);
        return;
    }
    double now = clock_global(r);
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
    o2h_send(r, "!_cs/get", 0, "is", c->serial, reply_to);
    loop_timer_stop(c->ping_timer);
    c->ping_timer =
        loop_timer_start(&r->lp, ping_interval(c, c->sent_at - c->ping_start), 0, on_ping_timer, r);
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
    clock_estimate(r, now + c->offset[best], now);
}

/* !_cs/get "is" at the reference: serial, reply-to. */
static void handle_get(o2h_router *r, const o2h_msg *msg, const char *types,
                       const o2h_arg *const *argv, int argc, void *user_data) {
    if (!r->clock.synced) return;
    o2h_send(r, argv[1]->s, 0, "it", argv[0]->i, clock_global(r));
}

/* !_o2/cs/cs "s": a peer process obtained sync. */
static void handle_cs(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    for (peer *p = r->net.peers; p; p = p->next)
        if (strcmp(p->name, argv[0]->s) == 0 && !p->synced) {
            p->synced = true;
            if (r->clock.synced) notify_services(r, p); /* REMOTE_NOTIME -> REMOTE */
        }
}

/* !@us/cs/rt "s": reply-to; answer "sff" (our name, mean and minimum ping round trip), as O2. */
static void handle_rt(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    double mean, min;
    if (o2h_clock_roundtrip(r, &mean, &min) != O2H_OK) mean = min = 0; /* O2's initial values */
    o2h_send(r, argv[0]->s, 0, "sff", r->process_name, mean, min);
}

int clock_init(o2h_router *r) {
    r->clock.rate = 1.0;
    int rc = services_add_method(r, "/_o2/cs/put", "it", handle_put, NULL, true, true);
    if (rc == O2H_OK) rc = services_add_method(r, "/_o2/cs/cs", "s", handle_cs, NULL, false, true);
    if (rc == O2H_OK) rc = services_add_method(r, "/_o2/cs/rt", "s", handle_rt, NULL, false, true);
    return rc;
}

void o2h_time_jump_callback_set(o2h_router *r, o2h_time_jump_fn fn, void *ctx) {
    r->clock.jump_fn = fn;
    r->clock.jump_ctx = ctx;
}

void clock_fini(o2h_router *r) {
    loop_timer_stop(r->clock.ping_timer);
    r->clock.ping_timer = NULL;
}

int clock_become_reference(o2h_router *r) {
    clock_state *c = &r->clock;
    if (c->reference) return O2H_OK;
    loop_timer_stop(c->ping_timer);
    c->ping_timer = NULL;
    bool was_synced = c->synced;
    double now = o2h_local_time(r);
    c->reference = true;
    if (!was_synced) {
        c->synced = true;
        c->g_base = now;
        c->l_base = now;
        c->rate = 1.0;
    }
    /* "_cs" is announced to every process like any other service. */
    int rc = services_add_internal(r, "_cs");
    if (rc == O2H_OK) rc = services_add_method(r, "/_cs/get", "is", handle_get, NULL, true, true);
    if (rc == O2H_OK) proto_service_changed(r, "_cs", PROVIDER_LOCAL, true);
    if (rc == O2H_OK && !was_synced) became_synced(r);
    return rc == O2H_SERVICE_EXISTS ? O2H_OK : rc;
}

void clock_reference_changed(o2h_router *r) {
    clock_state *c = &r->clock;
    if (c->reference || r->closing) return;
    service *cs = services_find(&r->services, "_cs", 3);
    bool remote_ref = cs && cs->providers[0].kind == PROVIDER_PEER;
    if (remote_ref && !c->ping_timer && r->process_name[0] == '@') {
        c->pings_sent = 0;
        c->ping_start = o2h_local_time(r);
        send_ping(r);
    } else if (!remote_ref && c->ping_timer) {
        loop_timer_stop(c->ping_timer); /* once synchronised, a process stays so */
        c->ping_timer = NULL;
    }
}
