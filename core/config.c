/*
 * Configuration documents: parsing with jansson, the router's schema, and
 * the o2h_cfg accessors plugins use. Every error is recorded once per
 * document (the first one wins) with its position recovered by
 * o2h__config_locate().
 */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "o2hub/plugin.h"

struct o2h_cfg {
    config_doc *doc;
    json_t *value;
    char path[256]; /* displayed key path, e.g. "transports[1].port" */
    size_t skip;    /* leading part of `path` that is not in the document's text */
    const char **read_keys;
    int n_read, cap_read;
    o2h_cfg **children;
    int n_children, cap_children;
};

/* An override: the key path it replaced ("transports[2].port") and its "KEY=VALUE". */
typedef struct config_set_item {
    char *path;
    char *text;
} config_set_item;

struct config_doc {
    char *name;
    char *dir;
    char *text;
    json_t *root;
    o2h_error error;
    bool has_error;
    o2h_cfg **cfgs; /* every cfg made for this doc, freed with it */
    int n_cfgs, cap_cfgs;
    char **strings; /* strings made for this doc (resolved paths, properties) */
    int n_strings, cap_strings;
    void *arrays[4];    /* path, plugin, service and allow arrays of o2h__config_parse_router */
    port_claim *claims; /* ports the plugins of this doc will listen on */
    int n_claims;
    config_set_item *sets; /* the overrides applied (o2h__config_doc_set) */
    int n_sets;
};

/* A port a plugin will listen on, so two cannot be given the same one. */
struct port_claim {
    int proto;
    char host[64];
    int port;
    char key_path[256];
};

/* ---- small helpers ---- */

static bool push(void ***arr, int *n, int *cap, void *item) {
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 8;
        void **a = realloc(*arr, (size_t)c * sizeof *a);
        if (!a) return false;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = item;
    return true;
}

static char *doc_strdup(config_doc *doc, const char *s) {
    char *copy = strdup(s);
    if (copy && !push((void ***)&doc->strings, &doc->n_strings, &doc->cap_strings, copy)) {
        free(copy);
        return NULL;
    }
    return copy;
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* "parent.key" (or "key" at the top), truncated to fit: paths only label errors. */
static void join_path(char *out, size_t size, const char *parent, const char *key) {
    size_t n = 0;
    for (const char *s = parent; *s && n + 1 < size; s++)
        out[n++] = *s;
    if (parent[0] && n + 1 < size) out[n++] = '.';
    for (const char *s = key; *s && n + 1 < size; s++)
        out[n++] = *s;
    out[n] = '\0';
}

/* Record the doc's first error at `path` (displayed), located at `locate_path`. */
static int record_verror(config_doc *doc, const char *path, const char *locate_path, bool at_key,
                         const char *fmt, va_list ap) O2H_PRINTF(5, 0);
static int record_verror(config_doc *doc, const char *path, const char *locate_path, bool at_key,
                         const char *fmt, va_list ap) {
    if (doc->has_error) return O2H_CONFIG_ERROR;
    o2h_error *e = &doc->error;
    memset(e, 0, sizeof *e);
    e->code = O2H_CONFIG_ERROR;
    snprintf(e->file, sizeof e->file, "%s", doc->name);
    snprintf(e->key_path, sizeof e->key_path, "%s", path);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    for (int i = doc->n_sets - 1; i >= 0; i--) {
        size_t n = strlen(doc->sets[i].path);
        if (strncmp(locate_path, doc->sets[i].path, n) == 0 &&
            strchr(".[", locate_path[n])) { /* the key itself or inside it ('\0' is in it) */
            snprintf(e->file, sizeof e->file, "%s, --set %s", doc->name, doc->sets[i].text);
            doc->has_error = true;
            return O2H_CONFIG_ERROR;
        }
    }
    o2h__config_locate(doc->text, locate_path, at_key, &e->line, &e->column);
    doc->has_error = true;
    return O2H_CONFIG_ERROR;
}

static const char *locate_part(const o2h_cfg *cfg, const char *path) {
    const char *p = path + (strlen(path) >= cfg->skip ? cfg->skip : strlen(path));
    return *p == '.' ? p + 1 : p;
}

static int cfg_record(const o2h_cfg *cfg, const char *key, bool at_key, const char *fmt, ...)
    O2H_PRINTF(4, 5);
static int cfg_record(const o2h_cfg *cfg, const char *key, bool at_key, const char *fmt, ...) {
    char path[sizeof cfg->path];
    if (key)
        join_path(path, sizeof path, cfg->path, key);
    else
        snprintf(path, sizeof path, "%s", cfg->path);
    va_list ap;
    va_start(ap, fmt);
    int rc = record_verror(cfg->doc, path, locate_part(cfg, path), at_key, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- documents ---- */

static config_doc *doc_new(const char *name, char *text, o2h_error *err) {
    config_doc *doc = calloc(1, sizeof *doc);
    if (!doc) {
        free(text);
        return NULL;
    }
    doc->text = text;
    doc->name = strdup(name);
    char *copy = strdup(name);
    doc->dir = copy ? strdup(dirname(copy)) : NULL;
    free(copy);
    if (!doc->name || !doc->dir) {
        o2h__config_doc_free(doc);
        return NULL;
    }
    json_error_t jerr;
    doc->root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc->root) {
        memset(err, 0, sizeof *err);
        err->code = O2H_CONFIG_ERROR;
        err->line = jerr.line;
        err->column = jerr.column;
        snprintf(err->file, sizeof err->file, "%s", name);
        snprintf(err->message, sizeof err->message, "invalid JSON: %s", jerr.text);
        o2h__config_doc_free(doc);
        return NULL;
    }
    return doc;
}

config_doc *o2h__config_doc_load_string(const char *text, const char *name, o2h_error *err) {
    char *copy = strdup(text ? text : "");
    if (!copy) return NULL;
    config_doc *doc = doc_new(name, copy, err);
    if (doc) {
        /* Text given directly: relative paths are relative to the current folder. */
        free(doc->dir);
        doc->dir = strdup(".");
    }
    return doc;
}

static char *read_file(const char *path, o2h_error *err) {
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (text = malloc((size_t)size + 1)) && fread(text, 1, (size_t)size, f) == (size_t)size) {
        text[size] = '\0';
        fclose(f);
        return text;
    }
    int saved = errno;
    free(text);
    if (f) fclose(f);
    memset(err, 0, sizeof *err);
    err->code = O2H_CONFIG_ERROR;
    snprintf(err->file, sizeof err->file, "%s", path);
    snprintf(err->message, sizeof err->message, "cannot read config file %s: %s", path,
             strerror(saved ? saved : EIO));
    return NULL;
}

config_doc *o2h__config_doc_load_file(const char *path, o2h_error *err) {
    char *text = read_file(path, err);
    return text ? doc_new(path, text, err) : NULL;
}

static void cfg_free(o2h_cfg *cfg) {
    free(cfg->read_keys);
    free(cfg->children);
    free(cfg);
}

void o2h__config_doc_free(config_doc *doc) {
    if (!doc) return;
    for (int i = 0; i < doc->n_cfgs; i++)
        cfg_free(doc->cfgs[i]);
    free(doc->cfgs);
    for (int i = 0; i < doc->n_strings; i++)
        free(doc->strings[i]);
    free(doc->strings);
    for (int i = 0; i < 4; i++)
        free(doc->arrays[i]);
    free(doc->claims);
    for (int i = 0; i < doc->n_sets; i++) {
        free(doc->sets[i].path);
        free(doc->sets[i].text);
    }
    free(doc->sets);
    if (doc->root) json_decref(doc->root);
    free(doc->text);
    free(doc->name);
    free(doc->dir);
    free(doc);
}

const char **o2h__config_doc_set_texts(const config_doc *doc) {
    const char **texts = calloc((size_t)doc->n_sets + 1, sizeof *texts);
    for (int i = 0; texts && i < doc->n_sets; i++)
        texts[i] = doc->sets[i].text;
    return texts;
}

int o2h__config_doc_set(config_doc *doc, const char *assignment, o2h_error *err) {
    char path[256], why[200] = "";
    int rc = o2h__config_set_json(doc->root, assignment, path, sizeof path, why, sizeof why);
    if (rc == O2H_OK) {
        config_set_item *items = realloc(doc->sets, (size_t)(doc->n_sets + 1) * sizeof *items);
        if (items) doc->sets = items;
        char *p = items ? strdup(path) : NULL, *t = p ? strdup(assignment) : NULL;
        if (t) {
            doc->sets[doc->n_sets++] = (config_set_item){.path = p, .text = t};
            return O2H_OK;
        }
        free(p);
        rc = O2H_NO_MEMORY;
        snprintf(why, sizeof why, "out of memory");
    }
    memset(err, 0, sizeof *err);
    err->code = rc == O2H_NO_MEMORY ? O2H_NO_MEMORY : O2H_CONFIG_ERROR;
    snprintf(err->file, sizeof err->file, "--set %s", assignment);
    snprintf(err->message, sizeof err->message, "%s", why);
    return err->code;
}

char *o2h__config_doc_dump(const config_doc *doc) {
    return doc && doc->root ? json_dumps(doc->root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
}

const char *o2h__config_doc_name(const config_doc *doc) {
    return doc->name;
}

const char *o2h__config_cfg_dir(const o2h_cfg *cfg) {
    return cfg && cfg->doc && cfg->doc->dir ? cfg->doc->dir : ".";
}

bool o2h__config_cfg_equal(const o2h_cfg *a, const o2h_cfg *b) {
    return a && b && json_equal(a->value, b->value);
}

const char *o2h__config_cfg_path(const o2h_cfg *cfg) {
    return cfg->path;
}

int o2h__config_doc_take_error(config_doc *doc, o2h_error *err) {
    if (!doc->has_error) return O2H_OK;
    if (err) *err = doc->error;
    return doc->error.code;
}

/* ---- cfg objects ---- */

static o2h_cfg *cfg_new(config_doc *doc, json_t *value, const char *path, size_t skip) {
    o2h_cfg *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return NULL;
    if (!push((void ***)&doc->cfgs, &doc->n_cfgs, &doc->cap_cfgs, cfg)) {
        free(cfg);
        return NULL;
    }
    cfg->doc = doc;
    cfg->value = value;
    cfg->skip = skip;
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    return cfg;
}

o2h_cfg *o2h__config_doc_root_cfg(config_doc *doc, const char *path_prefix) {
    o2h_cfg *cfg = cfg_new(doc, doc->root, path_prefix, strlen(path_prefix));
    if (cfg && !json_is_object(doc->root)) {
        cfg_record(cfg, NULL, false, "expected an object, found %s", type_name(doc->root));
        return NULL;
    }
    return cfg;
}

static void mark_read(const o2h_cfg *cfg_const, const char *key) {
    o2h_cfg *cfg = (o2h_cfg *)(uintptr_t)cfg_const; /* bookkeeping only */
    for (int i = 0; i < cfg->n_read; i++)
        if (strcmp(cfg->read_keys[i], key) == 0) return;
    /* The key string lives in the json object, which outlives the cfg. */
    const char *stored = NULL;
    const char *k;
    json_t *v;
    json_object_foreach(cfg->value, k, v) {
        if (strcmp(k, key) == 0) stored = k;
    }
    if (stored) push((void ***)&cfg->read_keys, &cfg->n_read, &cfg->cap_read, (void *)stored);
}

static json_t *member(const o2h_cfg *cfg, const char *key) {
    if (!cfg || !json_is_object(cfg->value)) return NULL;
    json_t *v = json_object_get(cfg->value, key);
    if (v) mark_read(cfg, key);
    return v;
}

static int wrong_type(const o2h_cfg *cfg, const char *key, const char *expected, const json_t *v) {
    return cfg_record(cfg, key, false, "expected %s, found %s", expected, type_name(v));
}

int o2h__config_cfg_string(const o2h_cfg *cfg, const char *key, const char *def, const char **out) {
    json_t *v = member(cfg, key);
    *out = def;
    if (!v) return O2H_NOT_FOUND;
    if (!json_is_string(v)) return wrong_type(cfg, key, "a string", v);
    *out = json_string_value(v);
    return O2H_OK;
}

int o2h__config_cfg_int(const o2h_cfg *cfg, const char *key, int64_t def, int64_t min, int64_t max,
                        int64_t *out) {
    json_t *v = member(cfg, key);
    *out = def;
    if (!v) return O2H_NOT_FOUND;
    if (!json_is_integer(v)) return wrong_type(cfg, key, "an integer", v);
    int64_t n = json_integer_value(v);
    if (n < min || n > max)
        return cfg_record(cfg, key, false, "%lld is out of range [%lld, %lld]", (long long)n,
                          (long long)min, (long long)max);
    *out = n;
    return O2H_OK;
}

int o2h__config_cfg_double(const o2h_cfg *cfg, const char *key, double def, double *out) {
    json_t *v = member(cfg, key);
    *out = def;
    if (!v) return O2H_NOT_FOUND;
    if (!json_is_number(v)) return wrong_type(cfg, key, "a number", v);
    *out = json_number_value(v);
    return O2H_OK;
}

int o2h__config_cfg_bool(const o2h_cfg *cfg, const char *key, bool def, bool *out) {
    json_t *v = member(cfg, key);
    *out = def;
    if (!v) return O2H_NOT_FOUND;
    if (!json_is_boolean(v)) return wrong_type(cfg, key, "a boolean", v);
    *out = json_is_true(v);
    return O2H_OK;
}

static o2h_cfg *child(const o2h_cfg *parent_const, json_t *value, const char *path) {
    o2h_cfg *parent = (o2h_cfg *)(uintptr_t)parent_const;
    o2h_cfg *c = cfg_new(parent->doc, value, path, parent->skip);
    if (c) push((void ***)&parent->children, &parent->n_children, &parent->cap_children, c);
    return c;
}

const o2h_cfg *o2h__config_cfg_object(const o2h_cfg *cfg, const char *key) {
    json_t *v = member(cfg, key);
    if (!v) return NULL;
    if (!json_is_object(v)) {
        wrong_type(cfg, key, "an object", v);
        return NULL;
    }
    char path[sizeof cfg->path];
    join_path(path, sizeof path, cfg->path, key);
    return child(cfg, v, path);
}

int o2h__config_cfg_array_len(const o2h_cfg *cfg, const char *key) {
    json_t *v = member(cfg, key);
    if (!v) return 0;
    if (!json_is_array(v)) {
        wrong_type(cfg, key, "an array", v);
        return -1;
    }
    return (int)json_array_size(v);
}

const o2h_cfg *o2h__config_cfg_array_item(const o2h_cfg *cfg, const char *key, int index) {
    json_t *v = member(cfg, key);
    json_t *item = json_is_array(v) && index >= 0 ? json_array_get(v, (size_t)index) : NULL;
    if (!item) return NULL;
    char base[sizeof cfg->path], path[sizeof cfg->path + 16];
    join_path(base, sizeof base, cfg->path, key);
    snprintf(path, sizeof path, "%s[%d]", base, index);
    return child(cfg, item, path);
}

const char *o2h__config_cfg_as_string(const o2h_cfg *cfg) {
    return cfg && json_is_string(cfg->value) ? json_string_value(cfg->value) : NULL;
}

int o2h__config_cfg_verror(const o2h_cfg *cfg, const char *key, const char *fmt, va_list ap) {
    char path[sizeof cfg->path];
    if (key) {
        join_path(path, sizeof path, cfg->path, key);
        mark_read(cfg, key);
    } else {
        snprintf(path, sizeof path, "%s", cfg->path);
    }
    return record_verror(cfg->doc, path, locate_part(cfg, path), false, fmt, ap);
}

int o2h__config_cfg_error(const o2h_cfg *cfg, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = o2h__config_cfg_verror(cfg, key, fmt, ap);
    va_end(ap);
    return rc;
}

/* The first key of this object (not its children) that nobody read is an unknown key. */
static int check_own_keys(const o2h_cfg *cfg) {
    if (!json_is_object(cfg->value)) return O2H_OK;
    const char *k;
    json_t *v;
    json_object_foreach(cfg->value, k, v) {
        bool read = false;
        for (int i = 0; i < cfg->n_read && !read; i++)
            read = strcmp(cfg->read_keys[i], k) == 0;
        if (!read) return cfg_record(cfg, k, true, "unknown key \"%s\"", k);
    }
    return O2H_OK;
}

int o2h__config_cfg_check_unread(const o2h_cfg *cfg) {
    if (!cfg) return O2H_OK;
    int own = check_own_keys(cfg);
    if (own != O2H_OK) return own;
    for (int i = 0; i < cfg->n_children; i++) {
        int rc = o2h__config_cfg_check_unread(cfg->children[i]);
        if (rc != O2H_OK) return rc;
    }
    return O2H_OK;
}

/* ---- the router's schema ---- */

static const char *const log_levels[] = {"error", "warn", "info", "debug"};

static bool valid_plugin_type(const char *t) {
    if (!t[0]) return false;
    for (; *t; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') || *t == '_')) return false;
    return true;
}

static const char *resolve_path(config_doc *doc, const char *path) {
    if (path[0] == '/') return path;
    char full[PATH_MAX];
    snprintf(full, sizeof full, "%s/%s", doc->dir, path);
    return doc_strdup(doc, full);
}

static int parse_log_level(const o2h_cfg *root, router_config *out) {
    const char *level;
    int rc = o2h__config_cfg_string(root, "log_level", NULL, &level);
    if (rc != O2H_OK) return rc == O2H_NOT_FOUND ? O2H_OK : rc;
    for (int i = 0; i < 4; i++)
        if (strcmp(level, log_levels[i]) == 0) {
            out->log_level = i;
            return O2H_OK;
        }
    return o2h__config_cfg_error(root, "log_level",
                                 "\"%s\" is not a log level (error, warn, info, debug)", level);
}

static int parse_clock(const o2h_cfg *root, router_config *out) {
    const o2h_cfg *clock = o2h__config_cfg_object(root, "clock");
    if (!clock) return root->doc->has_error ? O2H_CONFIG_ERROR : O2H_OK;
    if (o2h__config_cfg_bool(clock, "reference", false, &out->clock_reference) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    return o2h__config_cfg_check_unread(clock);
}

static int parse_plugin_path(const o2h_cfg *root, router_config *out) {
    int n = o2h__config_cfg_array_len(root, "plugin_path");
    if (n < 0) return O2H_CONFIG_ERROR;
    const char **paths = calloc((size_t)n + 1, sizeof *paths);
    if (!paths) return O2H_NO_MEMORY;
    root->doc->arrays[0] = paths;
    for (int i = 0; i < n; i++) {
        const o2h_cfg *item = o2h__config_cfg_array_item(root, "plugin_path", i);
        const char *dir = o2h__config_cfg_as_string(item);
        if (!dir) return wrong_type(item, NULL, "a string", item->value);
        if (!(paths[i] = resolve_path(root->doc, dir))) return O2H_NO_MEMORY;
    }
    out->plugin_path = paths;
    out->n_plugin_path = n;
    return O2H_OK;
}

/* "allow": networks O2 processes may be at, as CIDR text (kept as the doc's). */
static int parse_allow(const o2h_cfg *root, router_config *out) {
    int n = o2h__config_cfg_array_len(root, "allow");
    if (n < 0) return O2H_CONFIG_ERROR;
    if (n == 0 && !json_object_get(root->value, "allow")) return O2H_OK; /* the default */
    allow_net *nets = calloc((size_t)n + 1, sizeof *nets);
    if (!nets) return O2H_NO_MEMORY;
    root->doc->arrays[3] = nets;
    for (int i = 0; i < n; i++) {
        const o2h_cfg *item = o2h__config_cfg_array_item(root, "allow", i);
        const char *text = o2h__config_cfg_as_string(item);
        if (!text) return wrong_type(item, NULL, "a string", item->value);
        if (o2h__allow_parse_cidr(text, &nets[i]) != 0)
            return cfg_record(item, NULL, false,
                              "\"%s\" is not a network (e.g. \"192.168.1.0/24\" or \"10.0.0.7\")",
                              text);
    }
    out->allow.nets = nets;
    out->allow.n = n;
    return O2H_OK;
}

static int parse_plugin_entry(const o2h_cfg *item, const char *kind_key, config_plugin *p) {
    if (!json_is_object(item->value)) return wrong_type(item, NULL, "an object", item->value);
    p->kind_key = kind_key;
    p->cfg = (o2h_cfg *)(uintptr_t)item;
    p->required = true;
    int rc = o2h__config_cfg_string(item, "type", NULL, &p->type);
    if (rc == O2H_NOT_FOUND) return cfg_record(item, NULL, false, "missing required key \"type\"");
    if (rc != O2H_OK) return rc;
    if (!valid_plugin_type(p->type))
        return o2h__config_cfg_error(item, "type", "\"%s\" is not a plugin type (use a-z, 0-9, _)",
                                     p->type);
    if (o2h__config_cfg_bool(item, "required", true, &p->required) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    const char *file;
    rc = o2h__config_cfg_string(item, "file", NULL, &file);
    if (rc == O2H_CONFIG_ERROR) return rc;
    if (rc == O2H_OK && !(p->file = resolve_path(item->doc, file))) return O2H_NO_MEMORY;
    return O2H_OK;
}

static int parse_plugins(const o2h_cfg *root, router_config *out) {
    static const char *const kinds[] = {"transports", "discovery", "plugins"};
    int total = 0, lens[3];
    for (int k = 0; k < 3; k++) {
        if ((lens[k] = o2h__config_cfg_array_len(root, kinds[k])) < 0) return O2H_CONFIG_ERROR;
        total += lens[k];
    }
    config_plugin *plugins = calloc((size_t)total + 1, sizeof *plugins);
    if (!plugins) return O2H_NO_MEMORY;
    root->doc->arrays[1] = plugins;
    int n = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < lens[k]; i++) {
            const o2h_cfg *item = o2h__config_cfg_array_item(root, kinds[k], i);
            int rc = item ? parse_plugin_entry(item, kinds[k], &plugins[n++]) : O2H_NO_MEMORY;
            if (rc != O2H_OK) return rc;
        }
    out->plugins = plugins;
    out->n_plugins = n;
    return O2H_OK;
}

static bool valid_property_key(const char *k) {
    if (!k[0]) return false;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9')))
            return false;
    return true;
}

/* O2's property string: ";key:value;..." with ':' ';' '\' in values escaped by '\'. */
static int parse_properties(const o2h_cfg *props, char **out) {
    size_t size = 2;
    const char *k;
    json_t *v;
    json_object_foreach(props->value, k, v) {
        mark_read(props, k);
        if (!valid_property_key(k))
            return cfg_record(props, k, true, "property name \"%s\" must be alphanumeric", k);
        if (!json_is_string(v)) return wrong_type(props, k, "a string", v);
        size += strlen(k) + 2 + 2 * strlen(json_string_value(v));
    }
    char *s = malloc(size), *w = s;
    if (!s) return O2H_NO_MEMORY;
    *w++ = ';';
    json_object_foreach(props->value, k, v) {
        w += sprintf(w, "%s:", k);
        for (const char *c = json_string_value(v); *c; c++) {
            if (*c == ':' || *c == ';' || *c == '\\') *w++ = '\\';
            *w++ = *c;
        }
        *w++ = ';';
    }
    *w = '\0';
    *out = doc_strdup(props->doc, s);
    free(s);
    return *out ? O2H_OK : O2H_NO_MEMORY;
}

static int parse_service(const o2h_cfg *item, config_service *svc) {
    if (!json_is_object(item->value)) return wrong_type(item, NULL, "an object", item->value);
    int rc = o2h__config_cfg_string(item, "name", NULL, &svc->name);
    if (rc == O2H_NOT_FOUND) return cfg_record(item, NULL, false, "missing required key \"name\"");
    if (rc != O2H_OK) return rc;
    if (!o2h__names_valid_service(svc->name))
        return o2h__config_cfg_error(
            item, "name",
            "\"%s\" is not a valid service name (a letter first, at most 63 "
            "characters, no '/' or pattern characters)",
            svc->name);
    const o2h_cfg *props = o2h__config_cfg_object(item, "properties");
    if (props && json_object_size(props->value) > 0) {
        rc = parse_properties(props, &svc->properties);
        if (rc != O2H_OK) return rc;
    }
    if (item->doc->has_error) return O2H_CONFIG_ERROR;
    return o2h__config_cfg_check_unread(item);
}

static int parse_services(const o2h_cfg *root, router_config *out) {
    int n = o2h__config_cfg_array_len(root, "services");
    if (n < 0) return O2H_CONFIG_ERROR;
    config_service *svcs = calloc((size_t)n + 1, sizeof *svcs);
    if (!svcs) return O2H_NO_MEMORY;
    root->doc->arrays[2] = svcs;
    for (int i = 0; i < n; i++) {
        const o2h_cfg *item = o2h__config_cfg_array_item(root, "services", i);
        int rc = parse_service(item, &svcs[i]);
        if (rc != O2H_OK) return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(svcs[j].name, svcs[i].name) == 0)
                return o2h__config_cfg_error(item, "name",
                                             "service \"%s\" is already listed (services[%d])",
                                             svcs[i].name, j);
    }
    out->services = svcs;
    out->n_services = n;
    return O2H_OK;
}

static int parse_router(config_doc *doc, router_config *out) {
    o2h_cfg *root = cfg_new(doc, doc->root, "", 0);
    if (!root) return O2H_NO_MEMORY;
    if (!json_is_object(doc->root))
        return cfg_record(root, NULL, false, "expected an object, found %s", type_name(doc->root));
    int rc = o2h__config_cfg_string(root, "ensemble", NULL, &out->ensemble);
    if (rc == O2H_NOT_FOUND)
        return cfg_record(root, NULL, false, "missing required key \"ensemble\"");
    if (rc != O2H_OK) return rc;
    if (!o2h__names_valid_ensemble(out->ensemble))
        return o2h__config_cfg_error(root, "ensemble",
                                     "\"%s\" is not a valid ensemble name (1 to 63 printable "
                                     "characters, no spaces or '/')",
                                     out->ensemble);
    /* "$schema" names the JSON Schema for editors (sdk/schema); nothing to do with it. */
    const char *schema_url;
    if (o2h__config_cfg_string(root, "$schema", NULL, &schema_url) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    if ((rc = parse_log_level(root, out)) != O2H_OK) return rc;
    if ((rc = parse_clock(root, out)) != O2H_OK) return rc;
    if ((rc = parse_plugin_path(root, out)) != O2H_OK) return rc;
    if ((rc = parse_allow(root, out)) != O2H_OK) return rc;
    if ((rc = parse_plugins(root, out)) != O2H_OK) return rc;
    if ((rc = parse_services(root, out)) != O2H_OK) return rc;
    /* Only the top level's own keys: plugin objects are checked after each create(). */
    return check_own_keys(root);
}

int o2h__config_parse_router(config_doc *doc, router_config *out, o2h_error *err) {
    memset(out, 0, sizeof *out);
    out->log_level = -1;
    int rc = parse_router(doc, out);
    if (rc == O2H_CONFIG_ERROR || doc->has_error) return o2h__config_doc_take_error(doc, err);
    if (rc != O2H_OK) {
        memset(err, 0, sizeof *err);
        err->code = rc;
        snprintf(err->file, sizeof err->file, "%s", doc->name);
        snprintf(err->message, sizeof err->message, "%s", "out of memory reading the config");
    }
    return rc;
}

static bool hosts_overlap(const char *a, const char *b) {
    return strcmp(a, b) == 0 || strcmp(a, "0.0.0.0") == 0 || strcmp(b, "0.0.0.0") == 0;
}

int o2h__config_cfg_claim_port(const o2h_cfg *cfg, const char *key, int proto, const char *host,
                               int port) {
    if (port <= 0) return O2H_OK; /* the system picks a free one */
    config_doc *doc = cfg->doc;
    const char *bind_host = host && host[0] ? host : "0.0.0.0";
    for (int i = 0; i < doc->n_claims; i++) {
        const port_claim *c = &doc->claims[i];
        if (c->proto == proto && c->port == port && hosts_overlap(c->host, bind_host))
            return cfg_record(cfg, key, false, "%s port %d is already taken by %s",
                              proto == O2H_NET_UDP ? "UDP" : "TCP", port, c->key_path);
    }
    port_claim *more = realloc(doc->claims, (size_t)(doc->n_claims + 1) * sizeof *more);
    if (!more) return O2H_NO_MEMORY;
    doc->claims = more;
    port_claim *c = &more[doc->n_claims++];
    c->proto = proto;
    c->port = port;
    snprintf(c->host, sizeof c->host, "%s", bind_host);
    join_path(c->key_path, sizeof c->key_path, cfg->path, key ? key : "");
    return O2H_OK;
}
