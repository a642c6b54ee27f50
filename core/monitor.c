/*
 * What a monitor (the web monitor page, o2ctl) asks a router about itself
 * beyond O2's own system messages:
 *
 *   /_o2/hub/counts "s" reply-to  ->  reply-to "t" + ("sh")*: this router's
 *       O2 time (or local time when it has no clock: negative values never
 *       occur as O2 time, so the sign tells), then for each service the
 *       number of messages this router has routed to it. A monitor computes
 *       rates from two answers. At most COUNTS_MAX services per answer.
 */
#include "monitor.h"

#include "router.h"

#define COUNTS_MAX 1000

static void handle_counts(o2h_router *r, const o2h_msg *msg, const char *types,
                          const o2h_arg *const *argv, int argc, void *user_data) {
    const char *reply_to = argv[0]->s;
    if (reply_to[0] != '/' && reply_to[0] != '!') return;
    o2h_builder *b = o2h_builder_new(r->pool);
    if (!b) return;
    double now = o2h_time_get(r);
    o2h_add_time(b, now >= 0 ? now : -o2h_local_time(r));
    uint32_t pos = 0, n = 0;
    const char *key;
    void *value;
    while (n < COUNTS_MAX && o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        const service *s = value;
        if (!s->n_providers) continue;
        o2h_add_string(b, s->name);
        o2h_add_int64(b, (int64_t)s->routed);
        n++;
    }
    /* Then the router's own counters, as "#name": no service name starts with '#'. */
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    for (int i = 0; i < o2h_stats_count(); i++) {
        uint64_t v;
        char name[48];
        snprintf(name, sizeof name, "#%s", o2h_stats_name(i, &st, &v));
        o2h_add_string(b, name);
        o2h_add_int64(b, (int64_t)v);
    }
    o2h_msg *m = o2h_builder_finish(b, 0, reply_to, O2H_FLAG_RELIABLE);
    o2h_builder_free(b);
    if (m) o2h__router_send_from(r, m, NULL);
}

int o2h__monitor_init(o2h_router *r) {
    return o2h__services_add_method(r, "/_o2/hub/counts", "s", handle_counts, NULL, false, true);
}
