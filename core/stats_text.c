/*
 * The router's counters as Prometheus text (exposition format 0.0.4), for
 * the websocket transport's /stats and for embedders: o2h_router_stats_text.
 * Metric names are o2hub_<counter>; per-service and per-plugin counters
 * carry labels. Written as snprintf does, so a caller can size its buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "text_out.h"

#include "router.h"

static void put_label(o2h__text_out *o, const char *s) {
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            o2h__text_put(o, "\\%c", *s);
        else if (*s == '\n')
            o2h__text_put(o, "\\n");
        else
            o2h__text_put(o, "%c", *s);
    }
}

static void put_head(o2h__text_out *o, const char *name, const char *type, const char *help) {
    o2h__text_put(o, "# HELP o2hub_%s %s\n# TYPE o2hub_%s %s\n", name, help, name, type);
}

/* One line per o2h_stats field, in o2h_stats_name order. */
static const char *const stats_help[] = {
    "Messages given to a local handler.",
    "Messages given to a transport link.",
    "Messages dropped: no provider for the service.",
    "Messages dropped: a local service without a matching method.",
    "Messages dropped: types did not match the method's typespec.",
    "Messages dropped: malformed bytes from a transport.",
    "Messages dropped: timed and no clock.",
    "Messages dropped: a bounded queue was full.",
    "Messages dropped: a transport refused the message.",
    "Tap copies made.",
    "Buffers tap copies used.",
    "Processes, clients and connections refused by access rules.",
    "Process-protocol messages naming malformed processes.",
    "Reliable messages that waited for a full link (not lost).",
    "Times a link was paused because what it sent waited.",
};

static void put_router(o2h__text_out *o, const o2h_router *r) {
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    int n = o2h_stats_count();
    for (int i = 0; i < n; i++) {
        uint64_t v;
        const char *name = o2h_stats_name(i, &st, &v);
        bool known = i < (int)(sizeof stats_help / sizeof stats_help[0]);
        put_head(o, name, "counter", known ? stats_help[i] : "A router counter.");
        o2h__text_put(o, "o2hub_%s %llu\n", name, (unsigned long long)v);
    }
}

static void put_services(o2h__text_out *o, const o2h_router *r) {
    put_head(o, "service_routed", "counter", "Messages this router routed to a service.");
    uint32_t pos = 0;
    const char *key;
    void *value;
    while (o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        const service *s = value;
        if (!s->n_providers) continue;
        o2h__text_put(o, "o2hub_service_routed{service=\"");
        put_label(o, s->name);
        o2h__text_put(o, "\"} %llu\n", (unsigned long long)s->routed);
    }
}

typedef struct plugin_metric {
    const char *name, *type, *help;
} plugin_metric;

static const plugin_metric plugin_metrics[] = {
    {"plugin_received", "counter", "Messages a plugin delivered to the router."},
    {"plugin_forwarded", "counter", "Messages the router gave a plugin's links."},
    {"plugin_dropped", "counter", "Messages a plugin's links refused (queue full, send error)."},
    {"plugin_invalid", "counter", "Malformed input a plugin dropped or delivered."},
    {"plugin_refused", "counter", "Clients or connections a plugin refused by access rules."},
    {"plugin_links_opened", "counter", "Links (connections, clients) a plugin opened."},
    {"plugin_links_open", "gauge", "Links of a plugin open now."},
};

static uint64_t plugin_value(const plugin_counts *c, int i) {
    switch (i) {
    case 0: return c->received;
    case 1: return c->forwarded;
    case 2: return c->dropped;
    case 3: return c->invalid;
    case 4: return c->refused;
    case 5: return c->links_opened;
    default: return c->links_opened - c->links_closed;
    }
}

static void put_plugins(o2h__text_out *o, const o2h_router *r) {
    int n = (int)(sizeof plugin_metrics / sizeof plugin_metrics[0]);
    for (int i = 0; i < n; i++) {
        put_head(o, plugin_metrics[i].name, plugin_metrics[i].type, plugin_metrics[i].help);
        for (const o2h_plugin *p = r->plugins; p; p = p->next) {
            o2h__text_put(o, "o2hub_%s{plugin=\"", plugin_metrics[i].name);
            put_label(o, p->type);
            o2h__text_put(o, "\",entry=\"");
            put_label(o, p->entry);
            o2h__text_put(o, "\"} %llu\n", (unsigned long long)plugin_value(&p->counts, i));
        }
    }
}

size_t o2h_router_stats_text(const o2h_router *r, char *buf, size_t size) {
    o2h__text_out o = {buf, size, 0};
    if (buf && size) buf[0] = '\0';
    if (!r) return 0;
    put_head(&o, "info", "gauge", "This router: version, ensemble and O2 process name.");
    o2h__text_put(&o, "o2hub_info{version=\"");
    put_label(&o, o2h_version_string());
    o2h__text_put(&o, "\",ensemble=\"");
    put_label(&o, r->ensemble);
    o2h__text_put(&o, "\",process=\"");
    put_label(&o, r->process_name);
    o2h__text_put(&o, "\"} 1\n");
    put_head(&o, "uptime_seconds", "gauge", "Seconds since the router was made.");
    o2h__text_put(&o, "o2hub_uptime_seconds %.3f\n", o2h_local_time(r));
    put_router(&o, r);
    put_services(&o, r);
    put_plugins(&o, r);
    return o.len;
}
