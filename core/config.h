/*
 * Configuration files: JSON parsed with jansson (duplicate keys rejected),
 * checked against the router's schema, with every error located as
 * FILE:LINE:COLUMN and a key path such as "transports[1].port".
 *
 * jansson keeps no positions for parsed values, so positions are recovered
 * only when an error is reported: o2h__config_locate() re-scans the original text
 * along the key path (cheap, and only on the error path).
 */
#ifndef O2H_CONFIG_H
#define O2H_CONFIG_H

#include <stdarg.h>
#include <stdbool.h>

#include <jansson.h>

#include "allow.h"
#include "o2hub/types.h"

typedef struct config_doc config_doc;

/** Parse a file. On error returns NULL and fills *err (file, line, column). */
config_doc *o2h__config_doc_load_file(const char *path, o2h_error *err);

/** Parse text; `name` stands for the file name in errors. */
config_doc *o2h__config_doc_load_string(const char *text, const char *name, o2h_error *err);

void o2h__config_doc_free(config_doc *doc);

/** The document as parsed (and overridden), as compact JSON text to free(). */
char *o2h__config_doc_dump(const config_doc *doc);

/**
 * Apply one override "KEY.PATH=VALUE" (o2hub --set; see config_set.c) to the
 * parsed document. Later errors about that key name the override instead of
 * a line of the file. On a bad path returns O2H_CONFIG_ERROR and fills *err.
 */
int o2h__config_doc_set(config_doc *doc, const char *assignment, o2h_error *err);
/** The overrides applied to `doc`, in order, NULL-terminated (free the array, not the
 * strings: they are the doc's); NULL when out of memory. */
const char **o2h__config_doc_set_texts(const config_doc *doc);

/**
 * The work of o2h__config_doc_set on a JSON tree: `path_out` receives the
 * key path with indexes ("transports[2].port"), `why` the reason of a
 * failure (O2H_BAD_ARGS, O2H_NO_MEMORY).
 */
int o2h__config_set_json(json_t *root, const char *assignment, char *path_out, size_t path_size,
                         char *why, size_t why_size);

/** The file name as given (used to resolve relative plugin_path entries). */
const char *o2h__config_doc_name(const config_doc *doc);

/** The folder of the file a cfg comes from ("." for text), for plugins' relative paths. */
const char *o2h__config_cfg_dir(const o2h_cfg *cfg);

/** One plugin entry: an object of "transports", "discovery" or "plugins". */
typedef struct config_plugin {
    const char *kind_key; /* "transports" | "discovery" | "plugins" */
    const char *type;     /* the "type" value */
    const char *file;     /* "file" value or NULL: an explicit shared object path */
    bool required;        /* "required", default true */
    o2h_cfg *cfg;         /* the object, for the plugin (keys type/file/required marked read) */
} config_plugin;

typedef struct config_service {
    const char *name;
    char *properties; /* ";key:value;..." escaped as O2 does, or NULL */
} config_service;

/** The router-level settings of a config file. Strings point into the doc. */
typedef struct port_claim port_claim;

/**
 * The plugin whose config `cfg` is will listen on `port` (O2H_NET_TCP or
 * O2H_NET_UDP) at `host` ("0.0.0.0" or NULL: every address). A second claim
 * of the same protocol and port on an overlapping address is a config error
 * at `key`, naming the first. Port 0 (any free port) never clashes.
 */
int o2h__config_cfg_claim_port(const o2h_cfg *cfg, const char *key, int proto, const char *host,
                               int port);

typedef struct router_config {
    const char *ensemble; /* required */
    int log_level;        /* -1 when absent */
    bool clock_reference;
    const char **plugin_path; /* resolved against the config file's folder */
    int n_plugin_path;
    allow_list allow; /* nets == NULL: the default; the doc owns the array */
    config_plugin *plugins;
    int n_plugins;
    config_service *services;
    int n_services;
} router_config;

/**
 * Check the document against the schema and fill *out (owned by the doc).
 * Unknown keys, wrong types, bad values: O2H_CONFIG_ERROR with *err located.
 */
int o2h__config_parse_router(config_doc *doc, router_config *out, o2h_error *err);

/**
 * A cfg for the root object of `doc` (o2h_router_add_plugin parses one
 * plugin's object on its own); key paths in errors start with `path_prefix`
 * (e.g. "transports[0]"). NULL and an error recorded if the root is not an
 * object.
 */
o2h_cfg *o2h__config_doc_root_cfg(config_doc *doc, const char *path_prefix);

/**
 * After a plugin's create(): every key of `cfg` (recursively, for child
 * objects the plugin opened) that the plugin did not read is an error:
 * returns O2H_CONFIG_ERROR and records "unknown key" at the first one.
 */
int o2h__config_cfg_check_unread(const o2h_cfg *cfg);

/** Whether two cfgs hold equal JSON values. */
bool o2h__config_cfg_equal(const o2h_cfg *a, const o2h_cfg *b);

/** The key path of a cfg ("transports[1]"). */
const char *o2h__config_cfg_path(const o2h_cfg *cfg);

/** The first error recorded through a cfg of this doc (O2H_OK if none). */
int o2h__config_doc_take_error(config_doc *doc, o2h_error *err);

/* The host table's cfg_* functions (see plugin.h for their contracts). */
int o2h__config_cfg_string(const o2h_cfg *cfg, const char *key, const char *def, const char **out);
int o2h__config_cfg_int(const o2h_cfg *cfg, const char *key, int64_t def, int64_t min, int64_t max,
                        int64_t *out);
int o2h__config_cfg_double(const o2h_cfg *cfg, const char *key, double def, double *out);
int o2h__config_cfg_bool(const o2h_cfg *cfg, const char *key, bool def, bool *out);
const o2h_cfg *o2h__config_cfg_object(const o2h_cfg *cfg, const char *key);
int o2h__config_cfg_array_len(const o2h_cfg *cfg, const char *key);
const o2h_cfg *o2h__config_cfg_array_item(const o2h_cfg *cfg, const char *key, int index);
const char *o2h__config_cfg_as_string(const o2h_cfg *cfg);
int o2h__config_cfg_verror(const o2h_cfg *cfg, const char *key, const char *fmt, va_list ap)
    O2H_PRINTF(3, 0);
int o2h__config_cfg_error(const o2h_cfg *cfg, const char *key, const char *fmt, ...)
    O2H_PRINTF(3, 4);

/**
 * Find the position of `key_path` ("a.b[2].c"; "" = the root value) in JSON
 * `text`. With `at_key`, the position of the member's key (its opening
 * quote); otherwise of its value. Returns true and 1-based *line, *column
 * (column counts bytes) when found.
 */
bool o2h__config_locate(const char *text, const char *key_path, bool at_key, int *line,
                        int *column);

#endif
