/*
 * Plugin loading. The order of checks matters: the descriptor's first three
 * fields (ABI major, minor, struct size) are read before anything else, so a
 * plugin from another ABI is refused before any field whose layout may
 * differ is touched.
 */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "router.h"

/* ABI 1.0's structs are this router's minimum: a plugin's may be larger
 * (built for a newer minor: refused earlier) or as large, never smaller. When
 * a later minor appends to one of these, its 1.0 size becomes a constant here. */
#define DESC_SIZE_1_0 sizeof(o2h_plugin_desc)
#define TRANSPORT_OPS_SIZE_1_0 offsetof(o2h_transport_ops, queued)
#define DISCOVERY_OPS_SIZE_1_0 sizeof(o2h_discovery_ops)

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Why `path` cannot be a plugin file, or NULL if it can be opened. */
static const char *not_a_file(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return strerror(errno);
    if (S_ISDIR(st.st_mode)) return "is a directory, not a shared object";
    if (!S_ISREG(st.st_mode)) return "is not a regular file";
    return NULL;
}

static bool valid_type_name(const char *type) {
    if (!type || !type[0] || strlen(type) >= 64) return false;
    for (const char *c = type; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return false;
    return true;
}

/* Look for DIR/o2hub_TYPE.so, then DIR/TYPE/o2hub_TYPE.so (the build tree's layout). */
static bool find_in_dir(const char *dir, const char *type, char *out, size_t size) {
    snprintf(out, size, "%s/o2hub_%s.so", dir, type);
    if (is_file(out)) return true;
    snprintf(out, size, "%s/%s/o2hub_%s.so", dir, type, type);
    return is_file(out);
}

static int find_plugin(const char *type, const char *const *dirs, int n_dirs, char *out,
                       size_t size, o2h_error *err) {
    char searched[400] = "";
    size_t used = 0;
    for (int i = 0; i <= n_dirs; i++) {
        const char *dir = i < n_dirs ? dirs[i] : O2H_PLUGIN_INSTALL_DIR;
        if (find_in_dir(dir, type, out, size)) return O2H_OK;
        if (used < sizeof searched)
            used += (size_t)snprintf(searched + used, sizeof searched - used, "%s%s", i ? ", " : "",
                                     dir);
    }
    return o2h__error_set(err, O2H_PLUGIN_NOT_FOUND,
                          "plugin \"%s\" not found: no o2hub_%s.so in %s", type, type, searched);
}

static int check_abi(const o2h_plugin_desc *d, const char *path, o2h_error *err) {
    if (d->abi_major != O2H_ABI_MAJOR)
        return o2h__error_set(err, O2H_PLUGIN_ABI,
                              "%s: built for plugin ABI %u.%u, this router supports ABI %d.%d "
                              "(major versions must match); rebuild the plugin against this o2hub",
                              path, d->abi_major, d->abi_minor, O2H_ABI_MAJOR, O2H_ABI_MINOR);
    if (d->abi_minor > O2H_ABI_MINOR)
        return o2h__error_set(err, O2H_PLUGIN_ABI,
                              "%s: built for plugin ABI %u.%u, newer than this router's %d.%d; "
                              "upgrade o2hub or rebuild the plugin",
                              path, d->abi_major, d->abi_minor, O2H_ABI_MAJOR, O2H_ABI_MINOR);
    if (d->struct_size < DESC_SIZE_1_0)
        return o2h__error_set(err, O2H_PLUGIN_ABI,
                              "%s: plugin descriptor is %u bytes, ABI %d.%d needs at least %zu",
                              path, d->struct_size, O2H_ABI_MAJOR, O2H_ABI_MINOR, DESC_SIZE_1_0);
    return O2H_OK;
}

static int check_kind(const o2h_plugin_desc *d, const char *path, o2h_error *err) {
    size_t need = 0;
    switch (d->kind) {
    case O2H_PLUGIN_TRANSPORT: need = TRANSPORT_OPS_SIZE_1_0; break;
    case O2H_PLUGIN_DISCOVERY: need = DISCOVERY_OPS_SIZE_1_0; break;
    case O2H_PLUGIN_EXTENSION: need = 0; break;
    default:
        return o2h__error_set(err, O2H_PLUGIN_INVALID, "%s: unknown plugin kind %d", path,
                              (int)d->kind);
    }
    if (need && (!d->ops || d->ops_size < need))
        return o2h__error_set(err, O2H_PLUGIN_ABI,
                              "%s: operations table is %u bytes, ABI %d.%d needs at least %zu",
                              path, d->ops ? d->ops_size : 0, O2H_ABI_MAJOR, O2H_ABI_MINOR, need);
    if (!d->lifecycle.create || !d->lifecycle.destroy)
        return o2h__error_set(err, O2H_PLUGIN_INVALID, "%s: plugin has no create() or destroy()",
                              path);
    if (!d->name)
        return o2h__error_set(err, O2H_PLUGIN_INVALID, "%s: plugin descriptor has no name", path);
    return O2H_OK;
}

static const o2h_plugin_desc *resolve_entry(void *dl, const char *path, o2h_error *err) {
    void *sym = dlsym(dl, O2H_PLUGIN_ENTRY_NAME);
    if (!sym) {
        o2h__error_set(err, O2H_PLUGIN_INVALID, "%s: not an o2hub plugin: no symbol %s", path,
                       O2H_PLUGIN_ENTRY_NAME);
        return NULL;
    }
    o2h_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object -> function pointer without a cast warning */
    const o2h_plugin_desc *d = entry();
    if (!d)
        o2h__error_set(err, O2H_PLUGIN_INVALID, "%s: %s() returned NULL", path,
                       O2H_PLUGIN_ENTRY_NAME);
    return d;
}

static void copy_ops(o2h_plugin *p) {
    const o2h_plugin_desc *d = p->desc;
    p->lifecycle = d->lifecycle;
    if (d->kind == O2H_PLUGIN_TRANSPORT)
        memcpy(&p->transport, d->ops,
               d->ops_size < sizeof p->transport ? d->ops_size : sizeof p->transport);
    else if (d->kind == O2H_PLUGIN_DISCOVERY)
        memcpy(&p->discovery, d->ops,
               d->ops_size < sizeof p->discovery ? d->ops_size : sizeof p->discovery);
}

static o2h_plugin *plugin_new(o2h_router *r, const o2h_plugin_desc *d, void *dl, const char *type,
                              const char *path, o2h_error *err) {
    o2h_plugin *p = calloc(1, sizeof *p);
    if (!p) {
        o2h__error_set(err, O2H_NO_MEMORY, "out of memory loading %s", path);
        return NULL;
    }
    p->router = r;
    p->dl = dl;
    p->desc = d;
    snprintf(p->type, sizeof p->type, "%s", type);
    snprintf(p->path, sizeof p->path, "%s", path);
    copy_ops(p);
    return p;
}

/*
 * The plugin linked into the program (o2h_router_options.linked_plugins)
 * whose descriptor is named `type`. *found says whether there was one; it may
 * still fail the checks. A descriptor of another ABI major version is passed
 * over unread: its name field cannot be trusted to be where ours is.
 */
static o2h_plugin *open_linked(o2h_router *r, const char *type, bool *found, o2h_error *err) {
    *found = false;
    for (const o2h_plugin_entry_fn *e = r->linked_plugins; e && *e; e++) {
        const o2h_plugin_desc *d = (*e)();
        if (!d || d->abi_major != O2H_ABI_MAJOR || d->struct_size < DESC_SIZE_1_0 || !d->name ||
            strcmp(d->name, type) != 0)
            continue;
        *found = true;
        char what[96];
        snprintf(what, sizeof what, "linked-in plugin \"%s\"", type);
        if (check_abi(d, what, err) != O2H_OK || check_kind(d, what, err) != O2H_OK) return NULL;
        return plugin_new(r, d, NULL, type, what, err);
    }
    return NULL;
}

o2h_plugin *o2h__loader_open(o2h_router *r, const char *type, const char *file,
                             const char *const *dirs, int n_dirs, o2h_error *err) {
    char path[PATH_MAX];
    if (!valid_type_name(type)) {
        o2h__error_set(err, O2H_CONFIG_ERROR, "invalid plugin type \"%s\" (use [a-z0-9_])",
                       type ? type : "");
        return NULL;
    }
    if (!file) {
        bool linked;
        o2h_plugin *p = open_linked(r, type, &linked, err);
        if (linked) return p;
    }
    if (file) {
        snprintf(path, sizeof path, "%s", file);
        const char *why = not_a_file(path);
        if (why) {
            o2h__error_set(err, O2H_PLUGIN_NOT_FOUND, "plugin \"%s\": file %s: %s", type, path,
                           why);
            return NULL;
        }
    } else if (find_plugin(type, dirs, n_dirs, path, sizeof path, err) != O2H_OK) {
        return NULL;
    }
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        o2h__error_set(err, O2H_PLUGIN_INVALID, "%s: not a plugin: cannot load it: %s", path,
                       dlerror());
        return NULL;
    }
    const o2h_plugin_desc *d = resolve_entry(dl, path, err);
    if (!d || check_abi(d, path, err) != O2H_OK || check_kind(d, path, err) != O2H_OK) {
        dlclose(dl);
        return NULL;
    }
    if (strcmp(d->name, type) != 0) {
        o2h__error_set(err, O2H_PLUGIN_INVALID,
                       "%s: plugin calls itself \"%s\", config asked for \"%s\"", path, d->name,
                       type);
        dlclose(dl);
        return NULL;
    }
    o2h_plugin *p = plugin_new(r, d, dl, type, path, err);
    if (!p) dlclose(dl);
    return p;
}

void o2h__loader_close(o2h_plugin *p) {
    if (!p) return;
    if (p->started && p->lifecycle.stop) p->lifecycle.stop(p->instance);
    p->started = false;
    if (p->instance) p->lifecycle.destroy(p->instance);
    p->instance = NULL;
    /* What the plugin deferred runs while its code is still loaded. */
    if (p->router) o2h__loop_run_deferred(&p->router->lp);
    if (p->dl) dlclose(p->dl);
    free(p);
}

/* ---- listing what could be loaded (o2hub --list-plugins) ---- */

static const char *kind_word(o2h_plugin_kind kind) {
    switch (kind) {
    case O2H_PLUGIN_TRANSPORT: return "transport";
    case O2H_PLUGIN_DISCOVERY: return "discovery";
    case O2H_PLUGIN_EXTENSION: return "extension";
    default: return "unknown";
    }
}

static void report(const o2h_plugin_desc *d, const char *type, const char *file, const char *error,
                   bool shadowed, o2h_plugin_info_fn fn, void *ctx) {
    bool readable = d && d->abi_major == O2H_ABI_MAJOR && d->struct_size >= DESC_SIZE_1_0;
    o2h_plugin_info info = {
        .name = readable && d->name ? d->name : type,
        .kind = readable ? kind_word(d->kind) : "",
        .abi_major = d ? d->abi_major : 0,
        .abi_minor = d ? d->abi_minor : 0,
        .version = readable && d->version ? d->version : "",
        .description = readable && d->description ? d->description : "",
        .file = file,
        .error = error,
        .shadowed = shadowed,
    };
    fn(ctx, &info);
}

/* "o2hub_TYPE.so" -> TYPE in `out`; false for other names. */
static bool type_of_file(const char *name, char *out, size_t size) {
    size_t len = strlen(name);
    if (len <= 9 || strncmp(name, "o2hub_", 6) != 0 || strcmp(name + len - 3, ".so") != 0 ||
        len - 9 >= size)
        return false;
    memcpy(out, name + 6, len - 9);
    out[len - 9] = '\0';
    return valid_type_name(out);
}

typedef struct seen_types {
    char (*names)[64];
    int n, cap;
} seen_types;

/* Whether `type` was listed before (and remember it if not). */
static bool seen_before(seen_types *seen, const char *type) {
    for (int i = 0; i < seen->n; i++)
        if (strcmp(seen->names[i], type) == 0) return true;
    if (seen->n == seen->cap) {
        int cap = seen->cap ? seen->cap * 2 : 16;
        char(*names)[64] = realloc(seen->names, (size_t)cap * sizeof *names);
        if (!names) return false;
        seen->names = names;
        seen->cap = cap;
    }
    snprintf(seen->names[seen->n++], sizeof seen->names[0], "%s", type);
    return false;
}

static void describe_file(const char *path, const char *type, seen_types *seen,
                          o2h_plugin_info_fn fn, void *ctx) {
    bool shadowed = seen_before(seen, type);
    o2h_error err = {0};
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        report(NULL, type, path, dlerror(), shadowed, fn, ctx);
        return;
    }
    const o2h_plugin_desc *d = resolve_entry(dl, path, &err);
    if (d && check_abi(d, path, &err) == O2H_OK && check_kind(d, path, &err) == O2H_OK &&
        strcmp(d->name, type) != 0)
        o2h__error_set(&err, O2H_PLUGIN_INVALID, "%s: plugin calls itself \"%s\"", path, d->name);
    report(d, type, path, err.code ? err.message : NULL, shadowed, fn, ctx);
    dlclose(dl);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every o2hub_TYPE.so in `dir` and in its sub-folders TYPE/ (the build tree), by name. */
static void describe_dir(const char *dir, seen_types *seen, o2h_plugin_info_fn fn, void *ctx) {
    DIR *dh = opendir(dir);
    if (!dh) return;
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(dh));) {
        char type[64], path[PATH_MAX];
        if (type_of_file(e->d_name, type, sizeof type))
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        else if (valid_type_name(e->d_name))
            snprintf(path, sizeof path, "%s/%s/o2hub_%s.so", dir, e->d_name, e->d_name);
        else
            continue;
        if (!is_file(path)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, (size_t)cap * sizeof *grown);
            if (!grown) break;
            names = grown;
        }
        if (!(names[n] = strdup(path))) break;
        n++;
    }
    closedir(dh);
    qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        char type[64];
        const char *base = strrchr(names[i], '/');
        if (type_of_file(base ? base + 1 : names[i], type, sizeof type))
            describe_file(names[i], type, seen, fn, ctx);
        free(names[i]);
    }
    free(names);
}

int o2h__loader_list(o2h_router *r, const char *const *dirs, int n_dirs, o2h_plugin_info_fn fn,
                     void *ctx) {
    seen_types seen = {0};
    for (const o2h_plugin_entry_fn *e = r->linked_plugins; e && *e; e++) {
        const o2h_plugin_desc *d = (*e)();
        if (!d) continue; /* not in this build (o2hub_dnssd_entry without avahi) */
        o2h_error err = {0};
        bool ok = check_abi(d, "linked-in plugin", &err) == O2H_OK &&
                  check_kind(d, "linked-in plugin", &err) == O2H_OK;
        report(d, "?", "linked-in", ok ? NULL : err.message, ok && seen_before(&seen, d->name), fn,
               ctx);
    }
    for (int i = 0; i <= n_dirs; i++)
        describe_dir(i < n_dirs ? dirs[i] : O2H_PLUGIN_INSTALL_DIR, &seen, fn, ctx);
    free(seen.names);
    return O2H_OK;
}
