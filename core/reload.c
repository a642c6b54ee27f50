/*
 * o2h_router_reload_file: check the new file as `o2hub --check` does (a
 * scratch router made from it, plugins created and never started), then
 * compare it with what runs and apply what can change live:
 *
 *   log_level        live (unless the options fixed it)
 *   allow            live: new connections and datagrams are judged by the
 *                    new list; open connections stay
 *   services         live: added, withdrawn, properties changed
 *   clock.reference  live when it becomes true; false needs a restart
 *   ensemble, plugin_path, transports, discovery, plugins: restart
 *
 * The running plugins keep the config document they were made from; the new
 * document is freed once its live values have been copied.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

static char *dup_or_null(const char *s, bool *failed) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *failed = true;
    return d;
}

void o2h__reload_offered_fini(config_service_set *set) {
    for (int i = 0; i < set->n; i++) {
        free(set->names[i]);
        free(set->props[i]);
    }
    free(set->names);
    free(set->props);
    memset(set, 0, sizeof *set);
}

int o2h__reload_offered_init(config_service_set *set, const router_config *rc) {
    memset(set, 0, sizeof *set);
    if (rc->n_services == 0) return 0;
    set->names = calloc((size_t)rc->n_services, sizeof *set->names);
    set->props = calloc((size_t)rc->n_services, sizeof *set->props);
    bool failed = !set->names || !set->props;
    for (int i = 0; i < rc->n_services && !failed; i++) {
        set->names[i] = dup_or_null(rc->services[i].name, &failed);
        set->props[i] = dup_or_null(rc->services[i].properties, &failed);
        set->n = i + 1;
    }
    if (failed) o2h__reload_offered_fini(set);
    return failed ? -1 : 0;
}

typedef struct notes {
    o2h_reload_note_fn fn;
    void *ctx;
} notes;

static void note(const notes *n, const char *key, bool applied, const char *fmt, ...)
    O2H_PRINTF(4, 5);
static void note(const notes *n, const char *key, bool applied, const char *fmt, ...) {
    if (!n->fn) return;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    n->fn(n->ctx, key, applied, what);
}

static void reload_log_level(o2h_router *r, const router_config *nc, const notes *n) {
    int want = nc->log_level >= 0 ? nc->log_level : r->base_log_level;
    if (want == r->log_level) return;
    if (r->log_level_fixed) {
        note(n, "log_level", false, "\"%s\" ignored: the level given when starting (%s) stays",
             o2h_log_level_name(nc->log_level), o2h_log_level_name(r->log_level));
        return;
    }
    int was = r->log_level;
    r->log_level = want;
    note(n, "log_level", true, "%s (was %s)", o2h_log_level_name(want), o2h_log_level_name(was));
}

static bool same_nets(const allow_list *a, const allow_list *b) {
    if (!a->nets || !b->nets) return !a->nets && !b->nets;
    return a->n == b->n && memcmp(a->nets, b->nets, (size_t)a->n * sizeof *a->nets) == 0;
}

static void reload_allow(o2h_router *r, const router_config *nc, const notes *n) {
    if (same_nets(&r->allow, &nc->allow)) return;
    allow_net *nets = NULL;
    if (nc->allow.nets) {
        nets = calloc((size_t)nc->allow.n + 1, sizeof *nets);
        if (!nets) {
            note(n, "allow", false, "out of memory: the old list stays");
            return;
        }
        memcpy(nets, nc->allow.nets, (size_t)nc->allow.n * sizeof *nets);
    }
    free(r->allow.nets);
    r->allow.nets = nets;
    r->allow.n = nc->allow.nets ? nc->allow.n : 0;
    char text[400];
    o2h__allow_describe(&r->allow, text, sizeof text);
    note(n, "allow", true, "now %s (for new connections; open ones stay)", text);
}

static int find_service(const config_service_set *set, const char *name) {
    for (int i = 0; i < set->n; i++)
        if (strcmp(set->names[i], name) == 0) return i;
    return -1;
}

static bool same_props(const char *a, const char *b) {
    return (!a || !*a) ? (!b || !*b) : (b && strcmp(a, b) == 0);
}

static void reload_services(o2h_router *r, const router_config *nc, const notes *n) {
    config_service_set *old = &r->offered;
    char key[96];
    for (int i = 0; i < old->n; i++) {
        bool kept = false;
        for (int j = 0; j < nc->n_services && !kept; j++)
            kept = strcmp(nc->services[j].name, old->names[i]) == 0;
        if (kept) continue;
        snprintf(key, sizeof key, "services");
        int rc = o2h_service_free(r, old->names[i]);
        note(n, key, rc == O2H_OK, "\"%s\" withdrawn%s", old->names[i],
             rc == O2H_OK ? "" : " (it was not offered)");
    }
    for (int j = 0; j < nc->n_services; j++) {
        const config_service *s = &nc->services[j];
        int at = find_service(old, s->name);
        snprintf(key, sizeof key, "services[%d]", j);
        if (at >= 0 && same_props(old->props[at], s->properties)) continue;
        if (at >= 0) o2h_service_free(r, s->name); /* new properties: offered again */
        int rc = o2h__services_add_local(r, s->name, s->properties);
        note(n, key, rc == O2H_OK, "\"%s\" %s%s%s", s->name,
             at >= 0 ? "offered with new properties" : "offered", rc == O2H_OK ? "" : ": ",
             rc == O2H_OK ? "" : o2h_strerror(rc));
    }
    config_service_set now;
    if (o2h__reload_offered_init(&now, nc) == 0) {
        o2h__reload_offered_fini(old);
        *old = now;
    }
}

static void reload_clock(o2h_router *r, const router_config *nc, const notes *n) {
    if (nc->clock_reference && !r->clock.reference) {
        int rc = o2h_clock_set(r);
        note(n, "clock.reference", rc == O2H_OK, "this router is now the reference clock");
    } else if (!nc->clock_reference && r->config.clock_reference) {
        note(n, "clock.reference", false, "stays the reference clock until a restart");
    }
}

static bool same_paths(const router_config *a, const router_config *b) {
    if (a->n_plugin_path != b->n_plugin_path) return false;
    for (int i = 0; i < a->n_plugin_path; i++)
        if (strcmp(a->plugin_path[i], b->plugin_path[i]) != 0) return false;
    return true;
}

static bool same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_plugin(const config_plugin *a, const config_plugin *b) {
    return strcmp(a->kind_key, b->kind_key) == 0 && strcmp(a->type, b->type) == 0 &&
           same_str(a->file, b->file) && a->required == b->required &&
           o2h__config_cfg_equal(a->cfg, b->cfg);
}

/* Plugins are compared entry by entry, in the order of the file. */
static void report_plugins(const router_config *oc, const router_config *nc, const notes *n) {
    int most = oc->n_plugins > nc->n_plugins ? oc->n_plugins : nc->n_plugins;
    for (int i = 0; i < most; i++) {
        const config_plugin *a = i < oc->n_plugins ? &oc->plugins[i] : NULL;
        const config_plugin *b = i < nc->n_plugins ? &nc->plugins[i] : NULL;
        if (a && b && same_plugin(a, b)) continue;
        const config_plugin *which = b ? b : a;
        const char *what = !a ? "added" : !b ? "removed" : "changed";
        note(n, o2h__config_cfg_path(which->cfg), false, "%s \"%s\" %s: needs a restart",
             which->kind_key, which->type, what);
    }
}

/* The whole check `o2hub --check` makes: a router from the file, never started.
 * The running router's overrides (o2hub --set) apply to the new file too. */
static int check_file(o2h_router *r, const char *path, const char *const *sets, o2h_error *err) {
    o2h_router_options o = {.struct_size = sizeof o,
                            .log = r->log,
                            .log_ctx = r->log_ctx,
                            .log_level = O2H_LOG_ERROR,
                            .log_level_fixed = true,
                            .linked_plugins = (const o2h_plugin_entry_fn *)r->linked_plugins,
                            .config_set = sets};
    o2h_router *scratch = o2h_router_new_from_file(path, &o, err);
    if (!scratch) return err->code ? err->code : O2H_CONFIG_ERROR;
    o2h_router_free(scratch);
    return O2H_OK;
}

int o2h_router_reload_file(o2h_router *r, const char *path, o2h_reload_note_fn fn, void *ctx,
                           o2h_error *err) {
    o2h_error local;
    if (!err) err = &local;
    memset(err, 0, sizeof *err);
    if (!r || !path) return o2h__error_set(err, O2H_BAD_ARGS, "no router or no path");
    const char **sets = r->doc ? o2h__config_doc_set_texts(r->doc) : NULL;
    if (r->doc && !sets) return o2h__error_set(err, O2H_NO_MEMORY, "out of memory");
    int rc = check_file(r, path, sets, err);
    config_doc *doc = rc == O2H_OK ? o2h__config_doc_load_file(path, err) : NULL;
    if (rc == O2H_OK && !doc) rc = err->code;
    for (int i = 0; rc == O2H_OK && sets && sets[i]; i++)
        rc = o2h__config_doc_set(doc, sets[i], err);
    free(sets);
    router_config nc;
    if (rc == O2H_OK) rc = o2h__config_parse_router(doc, &nc, err); /* changed meanwhile? */
    if (rc != O2H_OK) {
        if (doc) o2h__config_doc_free(doc);
        return rc;
    }
    notes n = {fn, ctx};
    if (strcmp(nc.ensemble, r->ensemble) != 0)
        note(&n, "ensemble", false, "\"%s\" (now \"%s\"): needs a restart", nc.ensemble,
             r->ensemble);
    reload_log_level(r, &nc, &n);
    reload_allow(r, &nc, &n);
    reload_services(r, &nc, &n);
    reload_clock(r, &nc, &n);
    if (!same_paths(&r->config, &nc))
        note(&n, "plugin_path", false, "used when plugins are loaded: needs a restart");
    report_plugins(&r->config, &nc, &n);
    o2h__config_doc_free(doc);
    return O2H_OK;
}
