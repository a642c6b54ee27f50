/* Loading plugins: find the shared object, check its ABI, call its lifecycle. */
#ifndef O2H_LOADER_H
#define O2H_LOADER_H

#include <stdbool.h>
#include <limits.h>
#include <stdint.h>

#include "o2hub/o2hub.h"
#include "o2hub/plugin.h"

/* What went through one plugin, as the core sees it (o2h_router_stats_text). */
typedef struct plugin_counts {
    uint64_t received;  /* messages it delivered to the core */
    uint64_t forwarded; /* messages the core gave its links */
    uint64_t dropped;   /* messages its links refused (queue full, send error) */
    uint64_t invalid;   /* malformed input it counted or delivered */
    uint64_t refused;   /* clients or connections it refused by access rules */
    uint64_t links_opened, links_closed;
} plugin_counts;

struct o2h_plugin {
    o2h_router *router;
    void *dl;
    const o2h_plugin_desc *desc;
    o2h_plugin_lifecycle lifecycle;
    o2h_transport_ops transport; /* zero-filled beyond the plugin's ops_size */
    o2h_discovery_ops discovery;
    void *instance;
    char type[64];
    char entry[96]; /* where the config lists it, e.g. "transports[1]" */
    plugin_counts counts;
    char path[PATH_MAX];
    bool required;
    bool started;
    struct o2h_plugin *next;
};

/**
 * Find the shared object for `type` (or use `file` if given) in `dirs`,
 * dlopen it and check its descriptor. On error returns NULL and fills *err
 * naming the file and, for ABI problems, the expected and found versions.
 */
o2h_plugin *o2h__loader_open(o2h_router *r, const char *type, const char *file,
                             const char *const *dirs, int n_dirs, o2h_error *err);

/**
 * Report every plugin that could be loaded: the linked-in ones, then each
 * o2hub_TYPE.so (or TYPE/o2hub_TYPE.so) in `dirs` and the install dir, in
 * search order; a type found earlier shadows later files of that type.
 */
int o2h__loader_list(o2h_router *r, const char *const *dirs, int n_dirs, o2h_plugin_info_fn fn,
                     void *ctx);

/** Destroy the instance (if created) and dlclose. */
void o2h__loader_close(o2h_plugin *p);

/** The host table handed to every plugin (constant). */
const o2h_host *o2h__host_table(void);

#endif
