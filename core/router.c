/* Router lifecycle: creation, configuration, plugins, the poll loop. */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include "msg_internal.h"
#include "names.h"
#include "properties.h"

#define DEFAULT_POST_LIMIT 4096u

const char *o2h_version_string(void) {
    return O2H_VERSION_STRING;
}

static int router_copy_linked(o2h_router *r, const o2h_plugin_entry_fn *linked) {
    size_t n = 0;
    while (linked && linked[n])
        n++;
    if (n == 0) return O2H_OK;
    r->linked_plugins = calloc(n + 1, sizeof *r->linked_plugins);
    if (!r->linked_plugins) return O2H_NO_MEMORY;
    memcpy(r->linked_plugins, linked, n * sizeof *linked);
    return O2H_OK;
}

/* $O2HUB_PLUGIN_PATH as NUL-separated dirs ending with an empty one, or NULL. */
static char *env_plugin_path(void) {
    const char *env = getenv("O2HUB_PLUGIN_PATH");
    if (!env || !*env) return NULL;
    size_t len = strlen(env);
    char *out = calloc(len + 2, 1), *w = out;
    if (!out) return NULL;
    for (const char *d = env; *d;) {
        size_t k = strcspn(d, ":");
        if (k) {
            memcpy(w, d, k);
            w += k + 1;
        }
        d += k + (d[k] == ':');
    }
    return out;
}

o2h_router *o2h_router_new(const o2h_router_options *opts, o2h_error *err) {
    o2h_router_options o = {0};
    if (opts) memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
    if (!o2h__names_valid_ensemble(o.ensemble)) {
        o2h__error_set(err, O2H_BAD_NAME, "invalid ensemble name \"%s\" (1..63 printable, no '/')",
                       o.ensemble ? o.ensemble : "");
        return NULL;
    }
    o2h_router *r = calloc(1, sizeof *r);
    if (!r) {
        o2h__error_set(err, O2H_NO_MEMORY, "out of memory");
        return NULL;
    }
    snprintf(r->ensemble, sizeof r->ensemble, "%s", o.ensemble);
    /* The local process is "_o2" until a network transport gives it its @name. */
    snprintf(r->process_name, sizeof r->process_name, "_o2");
    if (router_copy_linked(r, o.linked_plugins) != O2H_OK) {
        o2h__error_set(err, O2H_NO_MEMORY, "out of memory");
        free(r);
        return NULL;
    }
    r->env_plugin_path = env_plugin_path();
    o2h__allow_read_local(&r->allow); /* part of the default "allow": this machine's own LANs */
    r->log_level = o.log_level;
    r->base_log_level = o.log_level;
    r->log_level_fixed = o.log_level_fixed;
    r->log = o.log;
    r->log_ctx = o.log_ctx;
    r->t0_ns = o2h__loop_now_ns();
    r->stats.struct_size = sizeof r->stats;
    atomic_init(&r->stop_requested, false);
    o2h__post_queue_init(&r->posts, o.post_queue_limit ? o.post_queue_limit : DEFAULT_POST_LIMIT);
    o2h__services_init(&r->services);
    r->pool = o2h_pool_new();
    r->builder = o2h_builder_new(r->pool);
    r->vbuilder = o2h_builder_new(r->pool);
    r->pbuilder = o2h_builder_new(r->pool);
    bool loop_ok = o2h__loop_init(&r->lp) == 0;
    if (!r->pool || !r->builder || !r->vbuilder || !r->pbuilder || !loop_ok ||
        o2h__proto_init(r) != O2H_OK || o2h__clock_init(r) != O2H_OK) {
        o2h__error_set(err, loop_ok ? O2H_NO_MEMORY : O2H_FAIL,
                       loop_ok ? "out of memory" : "cannot create epoll/eventfd/timerfd");
        if (!loop_ok) r->lp.epfd = r->lp.wakefd = r->lp.timerfd = -1;
        o2h_router_free(r);
        return NULL;
    }
    return r;
}

int o2h_router_add_plugin_dir(o2h_router *r, const char *dir) {
    char **dirs = realloc(r->plugin_dirs, (size_t)(r->n_plugin_dirs + 1) * sizeof *dirs);
    if (!dirs) return O2H_NO_MEMORY;
    r->plugin_dirs = dirs;
    if (!(dirs[r->n_plugin_dirs] = strdup(dir))) return O2H_NO_MEMORY;
    r->n_plugin_dirs++;
    return O2H_OK;
}

/*
 * The one search order, whichever constructor made the router: the
 * router's own dirs (options, config "plugin_path", o2h_router_add_plugin_dir)
 * in the order given, then $O2HUB_PLUGIN_PATH (read when the router is made),
 * then the install dir (the loader adds it last).
 */
static char **plugin_search_dirs(const o2h_router *r, int *n) {
    *n = 0;
    const char *env = r->env_plugin_path;
    size_t max = (size_t)r->n_plugin_dirs + 1 + (env ? strlen(env) : 0);
    char **dirs = calloc(max, sizeof *dirs);
    if (!dirs) return NULL;
    for (int i = 0; i < r->n_plugin_dirs; i++)
        dirs[(*n)++] = r->plugin_dirs[i];
    for (char *d = r->env_plugin_path; d && *d; d += strlen(d) + 1)
        dirs[(*n)++] = d;
    return dirs;
}

char *o2h_router_config_text(const o2h_router *r) {
    return r ? o2h__config_doc_dump(r->doc) : NULL;
}

int o2h_router_plugins_list(o2h_router *r, o2h_plugin_info_fn fn, void *ctx) {
    if (!r || !fn) return O2H_BAD_ARGS;
    int n_dirs;
    char **dirs = plugin_search_dirs(r, &n_dirs);
    if (!dirs) return O2H_NO_MEMORY;
    int rc = o2h__loader_list(r, (const char *const *)dirs, n_dirs, fn, ctx);
    free(dirs);
    return rc;
}

static bool kind_fits(const char *kind_key, o2h_plugin_kind kind) {
    if (strcmp(kind_key, "transports") == 0) return kind == O2H_PLUGIN_TRANSPORT;
    if (strcmp(kind_key, "discovery") == 0) return kind == O2H_PLUGIN_DISCOVERY;
    return true; /* "plugins" takes any kind */
}

static const char *kind_name(o2h_plugin_kind kind) {
    switch (kind) {
    case O2H_PLUGIN_TRANSPORT: return "transport";
    case O2H_PLUGIN_DISCOVERY: return "discovery";
    default: return "extension";
    }
}

static void append_plugin(o2h_router *r, o2h_plugin *p) {
    o2h_plugin **tail = &r->plugins;
    while (*tail)
        tail = &(*tail)->next;
    *tail = p;
}

/*
 * Load and create one plugin. Config errors are always fatal; a plugin that
 * cannot be loaded or created is fatal only when required.
 */
static int load_plugin(o2h_router *r, config_doc *doc, const config_plugin *cp, o2h_error *err) {
    o2h_error why = {0};
    int n_dirs;
    char **dirs = plugin_search_dirs(r, &n_dirs);
    if (!dirs) return o2h__error_set(err, O2H_NO_MEMORY, "out of memory");
    o2h_plugin *p =
        o2h__loader_open(r, cp->type, cp->file, (const char *const *)dirs, n_dirs, &why);
    free(dirs);
    int rc = why.code;
    if (p && !kind_fits(cp->kind_key, p->desc->kind)) {
        /* Its ops would be read as another kind's: refused, located at its "type". */
        o2h__config_cfg_error(cp->cfg, "type", "%s is a %s plugin, it cannot be listed in \"%s\"",
                              p->path, kind_name(p->desc->kind), cp->kind_key);
        o2h__loader_close(p);
        return o2h__config_doc_take_error(doc, err);
    }
    if (p) {
        p->required = cp->required;
        snprintf(p->entry, sizeof p->entry, "%s", o2h__config_cfg_path(cp->cfg));
        rc = p->lifecycle.create(o2h__host_table(), p, cp->cfg, &p->instance);
        /* Keys the plugin did not read are unknown keys (only checked when it read the rest). */
        if (rc == O2H_OK) o2h__config_cfg_check_unread(cp->cfg);
        int cfg_rc = o2h__config_doc_take_error(doc, err);
        if (cfg_rc != O2H_OK) {
            o2h__loader_close(p);
            return cfg_rc;
        }
        if (rc != O2H_OK) {
            rc = o2h__error_set(&why, O2H_PLUGIN_FAILED, "%s: create() failed: %s", p->path,
                                o2h_strerror(rc));
            o2h__loader_close(p);
            p = NULL;
        }
    }
    if (p) {
        append_plugin(r, p);
        o2h__router_log(r, O2H_LOG_INFO, "core", "loaded %s plugin \"%s\" %s from %s", cp->kind_key,
                        p->desc->name, p->desc->version ? p->desc->version : "", p->path);
        return O2H_OK;
    }
    if (cp->required) {
        /* Said at the entry that asked for it: FILE:LINE:COL: transports[2].type: ... */
        o2h__config_cfg_error(cp->cfg, cp->file ? "file" : "type", "%s", why.message);
        o2h__config_doc_take_error(doc, err);
        err->code = rc;
        return rc;
    }
    o2h__router_log(r, O2H_LOG_WARN, "core",
                    "optional plugin \"%s\" not loaded, going on without it: %s", cp->type,
                    why.message);
    return O2H_OK;
}

int o2h_router_allow(o2h_router *r, const char *cidr) {
    allow_net net;
    if (!r || !cidr || o2h__allow_parse_cidr(cidr, &net) != 0) return O2H_BAD_ARGS;
    return o2h__allow_add(&r->allow, net) == 0 ? O2H_OK : O2H_NO_MEMORY;
}

static int apply_config(o2h_router *r, config_doc *doc, const router_config *rc_, o2h_error *err) {
    if (rc_->allow.nets) { /* "allow": [] too: then no address at all */
        r->allow.nets = calloc((size_t)rc_->allow.n + 1, sizeof *r->allow.nets);
        if (!r->allow.nets) return o2h__error_set(err, O2H_NO_MEMORY, "out of memory");
        memcpy(r->allow.nets, rc_->allow.nets, (size_t)rc_->allow.n * sizeof *r->allow.nets);
        r->allow.n = rc_->allow.n;
    }
    for (int i = 0; i < rc_->n_plugin_path; i++)
        if (o2h_router_add_plugin_dir(r, rc_->plugin_path[i]) != O2H_OK)
            return o2h__error_set(err, O2H_NO_MEMORY, "out of memory");
    if (rc_->clock_reference) o2h_clock_set(r);
    for (int i = 0; i < rc_->n_services; i++) {
        int rc = o2h__services_add_local(r, rc_->services[i].name, rc_->services[i].properties);
        if (rc != O2H_OK)
            return o2h__error_set(err, rc, "service \"%s\": %s", rc_->services[i].name,
                                  o2h_strerror(rc));
    }
    for (int i = 0; i < rc_->n_plugins; i++) {
        int rc = load_plugin(r, doc, &rc_->plugins[i], err);
        if (rc != O2H_OK) return rc;
    }
    return O2H_OK;
}

static o2h_router *router_from_doc(config_doc *doc, const o2h_router_options *opts,
                                   o2h_error *err) {
    o2h_router_options o = {.struct_size = sizeof o};
    if (opts) memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
    o.struct_size = sizeof o;
    for (const char *const *set = o.config_set; doc && set && *set; set++) {
        if (o2h__config_doc_set(doc, *set, err) != O2H_OK) {
            o2h__config_doc_free(doc);
            return NULL;
        }
    }
    router_config rc_;
    if (!doc || o2h__config_parse_router(doc, &rc_, err) != O2H_OK) {
        o2h__config_doc_free(doc);
        return NULL;
    }
    o.ensemble = rc_.ensemble;
    int base_log_level = o.log_level;
    if (rc_.log_level >= 0 && !o.log_level_fixed) o.log_level = rc_.log_level;
    o2h_router *r = o2h_router_new(&o, err);
    if (!r) {
        o2h__config_doc_free(doc);
        return NULL;
    }
    r->doc = doc;
    r->base_log_level = base_log_level;
    r->config = rc_;
    if (o2h__reload_offered_init(&r->offered, &rc_) != 0) {
        o2h__error_set(err, O2H_NO_MEMORY, "out of memory");
        o2h_router_free(r);
        return NULL;
    }
    if (apply_config(r, doc, &rc_, err) != O2H_OK) {
        o2h_router_free(r);
        return NULL;
    }
    return r;
}

o2h_router *o2h_router_new_from_file(const char *path, const o2h_router_options *opts,
                                     o2h_error *err) {
    return router_from_doc(o2h__config_doc_load_file(path, err), opts, err);
}

o2h_router *o2h_router_new_from_json(const char *json, const char *name,
                                     const o2h_router_options *opts, o2h_error *err) {
    return router_from_doc(o2h__config_doc_load_string(json, name ? name : "<json>", err), opts,
                           err);
}

static int start_plugin(o2h_router *r, o2h_plugin *p) {
    if (p->started) return O2H_OK;
    int rc = p->lifecycle.start ? p->lifecycle.start(p->instance) : O2H_OK;
    if (rc == O2H_OK) {
        p->started = true;
        return O2H_OK;
    }
    o2h__router_log(r, p->required ? O2H_LOG_ERROR : O2H_LOG_WARN, "core",
                    "plugin \"%s\" failed to start: %s%s", p->type, o2h_strerror(rc),
                    p->required ? "" : " (optional: going on without it)");
    return p->required ? O2H_PLUGIN_FAILED : O2H_OK;
}

int o2h_router_add_plugin(o2h_router *r, const char *kind_key, const char *type,
                          const char *config_json, o2h_error *err) {
    o2h_error local;
    if (!err) err = &local;
    char name[96];
    snprintf(name, sizeof name, "%s plugin config", type ? type : "?");
    config_doc *doc = o2h__config_doc_load_string(config_json ? config_json : "{}", name, err);
    if (!doc) return err->code;
    int rc = O2H_NO_MEMORY;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s[%s]", kind_key ? kind_key : "plugins", type ? type : "");
    config_plugin cp = {.kind_key = kind_key ? kind_key : "plugins",
                        .type = type,
                        .required = true,
                        .cfg = o2h__config_doc_root_cfg(doc, prefix)};
    if (!cp.cfg) {
        rc = o2h__config_doc_take_error(doc, err);
        o2h__config_doc_free(doc);
        return rc;
    }
    /* Plugins may keep strings from their cfg: the doc lives as long as the
     * router. Room for it is made first, so that a plugin never points into a
     * doc that could not be kept. */
    config_doc **docs = realloc(r->extra_docs, (size_t)(r->n_extra_docs + 1) * sizeof *docs);
    if (!docs) {
        o2h__config_doc_free(doc);
        return o2h__error_set(err, O2H_NO_MEMORY, "out of memory");
    }
    r->extra_docs = docs;
    rc = load_plugin(r, doc, &cp, err);
    if (rc != O2H_OK) {
        o2h__config_doc_free(doc);
        return rc;
    }
    docs[r->n_extra_docs++] = doc;
    if (r->started) {
        o2h_plugin *p = r->plugins;
        while (p && p->next)
            p = p->next;
        if (p) rc = start_plugin(r, p);
        if (rc == O2H_OK && p && (p->discovery.announce || p->transport.announce))
            o2h__proto_announce(r);
    }
    return rc;
}

int o2h_router_start(o2h_router *r) {
    for (o2h_plugin *p = r->plugins; p; p = p->next) {
        int rc = start_plugin(r, p);
        if (rc != O2H_OK) return rc;
    }
    r->started = true;
    o2h__router_log(r, O2H_LOG_INFO, "core", "router started in ensemble \"%s\"", r->ensemble);
    o2h__router_turn_begin(r);
    o2h__proto_announce(r);  /* discovery plugins started after the transports named us */
    o2h__router_turn_end(r); /* what the plugins and the announcement queued goes out */
    return O2H_OK;
}

void o2h__router_drain_posts(o2h_router *r) {
    o2h_msg *m = o2h__post_queue_take_all(&r->posts);
    while (m) {
        o2h_msg *next = msg_next(m);
        msg_set_next(m, NULL);
        o2h__router_send_from(r, m, NULL);
        m = next;
    }
}

int o2h_router_poll_io(o2h_router *r, int timeout_ms) {
    r->dispatch_depth++; /* what arrives waits in the pending queue */
    bool woken = false;
    int n = o2h__loop_poll(&r->lp, timeout_ms, &woken);
    r->dispatch_depth--;
    return n < 0 ? O2H_FAIL : n;
}

int o2h_router_poll(o2h_router *r, int timeout_ms) {
    o2h__router_turn_begin(r);
    o2h__router_route_pending(r); /* what arrived during o2h_router_poll_io */
    o2h__router_turn_end(r);
    bool woken = false;
    int n = o2h__loop_poll(&r->lp, timeout_ms, &woken);
    if (n < 0) return O2H_FAIL;
    if (woken) {
        o2h__router_drain_posts(r);
        o2h__loop_run_deferred(&r->lp);
    }
    return n;
}

int o2h_router_run(o2h_router *r) {
    while (!atomic_load(&r->stop_requested)) {
        int rc = o2h_router_poll(r, -1);
        if (rc < 0) return rc;
    }
    atomic_store(&r->stop_requested, false);
    return O2H_OK;
}

void o2h_router_stop(o2h_router *r) {
    atomic_store(&r->stop_requested, true);
    o2h__loop_wake(&r->lp);
}

void o2h_router_wake(o2h_router *r) {
    o2h__loop_wake(&r->lp);
}

int o2h_router_post(o2h_router *r, o2h_msg *msg) {
    if (!msg) return O2H_BAD_ARGS;
    if (o2h__post_queue_push(&r->posts, msg) != 0) return O2H_QUEUE_FULL;
    o2h__loop_wake(&r->lp);
    return O2H_OK;
}

int o2h_router_fd(const o2h_router *r) {
    return r->lp.epfd;
}

static void stop_plugins_reversed(o2h_plugin *p) {
    if (!p) return;
    stop_plugins_reversed(p->next);
    if (p->started && p->lifecycle.stop) p->lifecycle.stop(p->instance);
    p->started = false;
}

void o2h_router_free(o2h_router *r) {
    if (!r) return;
    /* What the embedder's last calls queued is written before the sockets close. */
    o2h__loop_run_deferred(&r->lp);
    r->closing = true;
    /* Stop everything first, last started first, then destroy. */
    stop_plugins_reversed(r->plugins);
    o2h__loop_run_deferred(&r->lp);
    while (r->plugins) {
        o2h_plugin *p = r->plugins;
        r->plugins = p->next;
        o2h__loader_close(p);
    }
    o2h__sched_fini(r);
    o2h__clock_fini(r);
    o2h__post_queue_fini(&r->posts);
    while (r->pending_head) {
        o2h_msg *m = r->pending_head;
        r->pending_head = msg_next(m);
        o2h_msg_unref(m);
    }
    o2h__services_fini(&r->services);
    o2h__proto_fini(r);
    o2h__bridge_fini(r);
    o2h__dispatch_fini(r);
    o2h__loop_fini(&r->lp);
    o2h_builder_free(r->builder);
    o2h_builder_free(r->vbuilder);
    o2h_builder_free(r->pbuilder);
    o2h_pool_free(r->pool);
    for (int i = 0; i < r->n_plugin_dirs; i++)
        free(r->plugin_dirs[i]);
    free(r->plugin_dirs);
    free(r->env_plugin_path);
    o2h__allow_fini(&r->allow);
    free(r->linked_plugins);
    o2h__reload_offered_fini(&r->offered);
    o2h__config_doc_free(r->doc);
    for (int i = 0; i < r->n_extra_docs; i++)
        o2h__config_doc_free(r->extra_docs[i]);
    free(r->extra_docs);
    free(r);
}

const char *o2h_router_ensemble(const o2h_router *r) {
    return r->ensemble;
}
o2h_pool *o2h_router_pool(o2h_router *r) {
    return r->pool;
}
void o2h_router_set_log_level(o2h_router *r, int level) {
    r->log_level = level;
}

double o2h_local_time(const o2h_router *r) {
    return (double)(o2h__loop_now_ns() - r->t0_ns) * 1e-9;
}

double o2h_time_get(const o2h_router *r) {
    return o2h__clock_global(r);
}

int o2h_clock_set(o2h_router *r) {
    return o2h__clock_become_reference(r);
}

int o2h_clock_roundtrip(const o2h_router *r, double *mean, double *min) {
    const clock_state *c = &r->clock;
    double m = -1, n = -1;
    int rc = O2H_NO_CLOCK;
    if (c->reference) {
        m = n = 0;
        rc = O2H_OK;
    } else if (c->replies >= CLOCK_HISTORY) {
        m = c->mean_rtt;
        n = c->min_rtt;
        rc = O2H_OK;
    }
    if (mean) *mean = m;
    if (min) *min = n;
    return rc;
}

void o2h_router_get_stats(const o2h_router *r, o2h_stats *stats) {
    o2h_stats s = r->stats;
    s.dropped_queue_full += atomic_load(&r->posts.dropped);
    uint32_t size = stats->struct_size;
    if (size == 0 || size > sizeof s) size = sizeof s;
    memcpy(stats, &s, size);
    stats->struct_size = size;
}

#define STATS_FIELD_(name)                                                                         \
    { #name, offsetof(o2h_stats, name) }
static const struct {
    const char *name;
    size_t offset;
} stats_fields[] = {
    STATS_FIELD_(delivered),          STATS_FIELD_(forwarded),
    STATS_FIELD_(dropped_no_service), STATS_FIELD_(dropped_no_handler),
    STATS_FIELD_(dropped_bad_types),  STATS_FIELD_(dropped_invalid),
    STATS_FIELD_(dropped_no_clock),   STATS_FIELD_(dropped_queue_full),
    STATS_FIELD_(dropped_send_error), STATS_FIELD_(tapped),
    STATS_FIELD_(tap_buffers),        STATS_FIELD_(refused),
    STATS_FIELD_(dropped_bad_names),  STATS_FIELD_(held),
    STATS_FIELD_(paused_links),
};
_Static_assert(sizeof stats_fields / sizeof stats_fields[0] ==
                   (sizeof(o2h_stats) - offsetof(o2h_stats, delivered)) / sizeof(uint64_t),
               "every counter of o2h_stats has a name");

int o2h_stats_count(void) {
    return (int)(sizeof stats_fields / sizeof stats_fields[0]);
}

const char *o2h_stats_name(int i, const o2h_stats *stats, uint64_t *value) {
    if (i < 0 || i >= o2h_stats_count()) return NULL;
    size_t off = stats_fields[i].offset;
    if (value) {
        *value = 0;
        if (stats && off + sizeof *value <= stats->struct_size)
            memcpy(value, (const char *)stats + off, sizeof *value);
    }
    return stats_fields[i].name;
}

/* ---- services and methods ---- */

int o2h_service_new(o2h_router *r, const char *name) {
    return o2h__services_add_local(r, name, NULL);
}

int o2h_service_free(o2h_router *r, const char *name) {
    return o2h__services_remove(r, name, PROVIDER_LOCAL, NULL);
}

int o2h_method_new(o2h_router *r, const char *path, const char *typespec, o2h_handler handler,
                   void *user_data, bool coerce, bool parse) {
    return o2h__services_add_method(r, path, typespec, handler, user_data, coerce, parse);
}

int o2h_method_free(o2h_router *r, const char *path) {
    return o2h__services_remove_method(r, path);
}

int o2h_status(o2h_router *r, const char *name) {
    service *s = o2h__services_find(&r->services, name, strlen(name));
    return s ? o2h__service_status(r, s) : O2H_STATUS_UNKNOWN;
}

int o2h_can_send(o2h_router *r, const char *name) {
    service *s = name ? o2h__services_find(&r->services, name, strlen(name)) : NULL;
    if (!s) return O2H_NO_SERVICE;
    const provider *p = &s->providers[0];
    const o2h_link *link = p->kind == PROVIDER_LINK   ? p->link
                           : p->kind == PROVIDER_PEER ? p->peer->tcp
                                                      : NULL;
    if (link && link->bridge) link = link->bridge->link;
    if (!link) return O2H_OK;
    return o2h__link_hold_busy(link) || o2h__link_queued(link) ? O2H_BLOCKED : O2H_OK;
}

const char *o2h_router_process_name(const o2h_router *r) {
    return r->process_name[0] == '@' ? r->process_name : NULL;
}

int o2h_tap(o2h_router *r, const char *tappee, const char *tapper, int mode) {
    if (!tappee || !tapper || strlen(tappee) > 127 || !o2h__names_valid_service(tapper))
        return O2H_BAD_NAME;
    int rc = o2h__services_add_tap(r, tappee, tapper, NULL, mode);
    if (rc == O2H_OK) o2h__proto_tap_changed(r, tappee, tapper, mode, true);
    return rc;
}

int o2h_untap(o2h_router *r, const char *tappee, const char *tapper) {
    if (!tappee || !tapper) return O2H_BAD_ARGS;
    int rc = o2h__services_remove_tap(r, tappee, tapper, NULL);
    if (rc == O2H_OK) o2h__proto_tap_changed(r, tappee, tapper, 0, false);
    return rc;
}

/* ---- service directory ---- */

int o2h_services_list(o2h_router *r, o2h_service_visit visit, void *ctx) {
    uint32_t pos = 0;
    const char *key;
    void *value;
    int n = 0;
    while (o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        const service *s = value;
        if (s->n_providers) {
            const provider *p = &s->providers[0];
            o2h_service_info info = {
                .name = s->name,
                .status = o2h__service_status(r, s),
                .process = o2h__provider_process(r, p),
                .properties = p->properties ? p->properties + (p->properties[0] == ';') : "",
                .providers = (int)s->n_providers,
            };
            if (visit) visit(ctx, &info);
            n++;
        }
        for (uint32_t i = 0; i < s->n_taps; i++) {
            o2h_service_info info = {
                .name = s->name,
                .status = O2H_STATUS_TAP,
                .process = s->taps[i].owner ? s->taps[i].owner->name : r->process_name,
                .tapper = s->taps[i].tapper,
            };
            if (visit) visit(ctx, &info);
            n++;
        }
    }
    return n;
}

/* ---- properties ---- */

static provider *own_provider(o2h_router *r, const char *name) {
    service *s = name ? o2h__services_find(&r->services, name, strlen(name)) : NULL;
    for (uint32_t i = 0; s && i < s->n_providers; i++)
        if (s->providers[i].kind != PROVIDER_PEER) return &s->providers[i];
    return NULL;
}

static int replace_properties(o2h_router *r, const char *name, provider *p, char *props) {
    if (!props) return O2H_NO_MEMORY;
    free(p->properties);
    p->properties = props;
    o2h__proto_properties_changed(r, name); /* peers and /_o2/si */
    return O2H_OK;
}

int o2h_service_set_property(o2h_router *r, const char *name, const char *attr, const char *value) {
    provider *p = own_provider(r, name);
    if (!p) return O2H_NO_SERVICE;
    if (!o2h__props_valid_attr(attr) || !value) return O2H_BAD_ARGS;
    return replace_properties(r, name, p, o2h__props_set(p->properties, attr, value));
}

int o2h_service_property_free(o2h_router *r, const char *name, const char *attr) {
    provider *p = own_provider(r, name);
    if (!p) return O2H_NO_SERVICE;
    if (!o2h__props_valid_attr(attr)) return O2H_BAD_ARGS;
    char *without = o2h__props_remove(p->properties, attr);
    if (without && strcmp(without, p->properties ? p->properties : "") == 0) {
        free(without);
        return O2H_NOT_FOUND;
    }
    return replace_properties(r, name, p, without);
}

int o2h_service_get_property(o2h_router *r, const char *name, const char *attr, char *buf,
                             size_t size) {
    service *s = name ? o2h__services_find(&r->services, name, strlen(name)) : NULL;
    if (!s) return O2H_NO_SERVICE;
    return o2h__props_get(s->providers[0].properties, attr, buf, size) ? O2H_OK : O2H_NOT_FOUND;
}

int o2h_service_search(o2h_router *r, const char *attr, const char *pattern, const char **names,
                       int max) {
    uint32_t pos = 0;
    const char *key;
    void *value;
    int found = 0;
    while (o2h__strmap_next(&r->services.by_name, &pos, &key, &value)) {
        const service *s = value;
        if (s->n_providers == 0 || !o2h__props_match(s->providers[0].properties, attr, pattern))
            continue;
        if (found < max && names) names[found] = s->name;
        found++;
    }
    return found;
}
