/*
 * o2hub/o2hub.h — the embedding API: create a router, configure it from JSON,
 * offer services and methods, send messages, run its event loop.
 *
 * Threading: a router belongs to the thread that runs its loop (the one that
 * calls o2h_router_poll or o2h_router_run). Every function here must be
 * called on that thread, except the ones marked "thread-safe":
 * o2h_router_stop, o2h_router_wake and o2h_router_post.
 *
 * There is no global state: any number of routers can live in one process.
 */
#ifndef O2HUB_O2HUB_H
#define O2HUB_O2HUB_H

#include <stdarg.h>
#include <stdbool.h>

#include "msg.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** "0.1.0" */
O2H_EXPORT const char *o2h_version_string(void);

/** "error", "warn", "info" or "debug": a level's name as o2hub's logs write it. */
O2H_EXPORT const char *o2h_log_level_name(int level);

/* ---- Router lifecycle ---------------------------------------------------- */

/** Called for every log line at or above the router's level. */
typedef void (*o2h_log_fn)(void *ctx, int level, const char *origin, const char *text);

/** Options for o2h_router_new(); zero-initialise, then set what you need. */
typedef struct o2h_router_options {
    uint32_t struct_size; /**< sizeof(o2h_router_options) */
    const char *ensemble; /**< ensemble name (required unless a config gives one) */
    int log_level;        /**< enum o2h_log_level; 0 means ERROR only */
    o2h_log_fn log;       /**< NULL: lines go to stderr */
    void *log_ctx;
    uint32_t post_queue_limit; /**< bound on o2h_router_post's queue; 0 = 4096 */
    bool log_level_fixed;      /**< true: a config file's "log_level" does not override log_level */
    /**
     * Plugins linked into this program, NULL-terminated (the array is copied):
     * each the entry function of a plugin compiled with
     * -DO2H_PLUGIN_ENTRY=<a name of its own>, e.g. the o2hub_linked_plugins
     * library (o2hub/linked_plugins.h). A config "type" or
     * o2h_router_add_plugin() naming one of them (by its descriptor's name)
     * uses it, checked as a loaded one is; no shared object is looked for.
     */
    const o2h_plugin_entry_fn *linked_plugins;
    /**
     * Overrides for o2h_router_new_from_file/_json, NULL-terminated: each
     * "KEY.PATH=VALUE" replaces (or adds) one value of the config before it
     * is read, as o2hub's --set does. KEY.PATH is a key path as errors print
     * it ("transports[2].port", "ensemble"); an entry of "transports",
     * "discovery" or "plugins" may be named by its type instead of its index
     * when only one has it ("transports.websocket.port"). VALUE is JSON, or
     * else a string. Errors about an overridden key name the override.
     */
    const char *const *config_set;
} o2h_router_options;

/**
 * A new router with no plugins. On error returns NULL and fills *err
 * (bad ensemble name, no memory, no epoll).
 */
O2H_EXPORT o2h_router *o2h_router_new(const o2h_router_options *opts, o2h_error *err);

/**
 * A new router configured from the JSON file at `path` (its format is in
 * docs/configuration.md): ensemble, log level, plugin path, transports,
 * discovery, services.
 * Plugins are loaded and created but not started. `opts` may be NULL; its
 * ensemble and log level are overridden by the file. On error returns NULL
 * and fills *err with file, line, column and key path.
 */
O2H_EXPORT o2h_router *o2h_router_new_from_file(const char *path, const o2h_router_options *opts,
                                                o2h_error *err);

/** As o2h_router_new_from_file, from JSON text; `name` is used in error messages. */
O2H_EXPORT o2h_router *o2h_router_new_from_json(const char *json, const char *name,
                                                const o2h_router_options *opts, o2h_error *err);

/**
 * Load one plugin by name (found in the router's plugin path, then the
 * install dir) and create it with the JSON object text `config_json`
 * (NULL = "{}"). `kind_key` is "transports", "discovery" or "plugins".
 * Started at once if the router is running.
 */
O2H_EXPORT int o2h_router_add_plugin(o2h_router *r, const char *kind_key, const char *type,
                                     const char *config_json, o2h_error *err);

/** Append a directory to the plugin search path (searched in order). */
O2H_EXPORT int o2h_router_add_plugin_dir(o2h_router *r, const char *dir);

/**
 * Add a network ("192.168.1.0/24", or one address) where O2 processes may
 * be: this router connects only to processes there and lets in only those.
 * The first call replaces the default (loopback, 10/8, 172.16/12,
 * 192.168/16, 169.254/16, and the networks of this machine's interfaces);
 * 0.0.0.0/8, multicast and broadcast addresses are never allowed. The
 * config's "allow" key does the same. O2H_BAD_ARGS for text that is not a
 * network.
 */
O2H_EXPORT int o2h_router_allow(o2h_router *r, const char *cidr);

/**
 * Use the O2 process at `address` as a hub, as O2's o2_hub() does: this
 * router connects to it (or, when its name is the lesser, asks it to
 * connect), asks it for the processes it knows, and connects to each of
 * them. `address` is "IPv4:PORT", the hub's internal IP and TCP port, for a
 * hub without a public IP (o2hub routers, O2 offline); or a full O2
 * process name "@pppppppp:iiiiiiii:tttt". The address must be the one in
 * the hub's process name: the hub's answer is checked against it, as O2
 * does. Its UDP port is learned from its answer.
 *
 * Called before the router has a name (before o2h_router_start), the hub
 * is reached once it has one. Calling again with the same hub does nothing
 * more; once connected, the connection is not retried if the hub goes
 * away (the static discovery plugin's "hub" key retries). Every router
 * answers such requests from others. Discovery plugins keep running: see
 * o2h_router_discovery_stop. Returns O2H_OK, O2H_BAD_ARGS for an address
 * that is neither form, O2H_FAIL when "allow" refuses it or 16 hubs are in
 * use.
 */
O2H_EXPORT int o2h_router_hub(o2h_router *r, const char *address);

/**
 * Stop announcing this router through its discovery plugins (broadcast,
 * dnssd, static): each is withdrawn now and not told again, as O2 stops its
 * discovery broadcasts once o2_hub() is called. What each still does is
 * its own: broadcast keeps listening, so processes that find us still
 * connect; dnssd stops browsing too. Transports that announce (mqtt) are
 * not affected. Returns O2H_OK.
 */
O2H_EXPORT int o2h_router_discovery_stop(o2h_router *r);

/** One plugin as o2h_router_plugins_list finds it. */
typedef struct o2h_plugin_info {
    const char *name;   /**< the "type" configs use */
    const char *kind;   /**< "transport", "discovery", "extension" ("" if unreadable) */
    unsigned abi_major; /**< the plugin ABI it was built for */
    unsigned abi_minor;
    const char *version;     /**< the plugin's own version ("" if none) */
    const char *description; /**< one line ("" if none) */
    const char *file;        /**< its shared object, or "linked-in" */
    const char *error;       /**< NULL if this router can load it, else why not */
    bool shadowed;           /**< a plugin of this type found earlier is the one used */
} o2h_plugin_info;

typedef void (*o2h_plugin_info_fn)(void *ctx, const o2h_plugin_info *info);

/**
 * Call `fn` for every plugin this router could load, in search order: the
 * linked-in ones, then each plugin file in the router's plugin dirs,
 * $O2HUB_PLUGIN_PATH and the install dir (each file is opened to read its
 * descriptor, then closed). For `o2hub --list-plugins`.
 */
O2H_EXPORT int o2h_router_plugins_list(o2h_router *r, o2h_plugin_info_fn fn, void *ctx);

/** Start every plugin (open sockets, announce). */
O2H_EXPORT int o2h_router_start(o2h_router *r);

/**
 * Do all pending work: timers, sockets, posted messages. Waits at most
 * `timeout_ms` for something to happen (0 = do not wait, -1 = until
 * something happens). Returns the number of events handled or an error.
 */
O2H_EXPORT int o2h_router_poll(o2h_router *r, int timeout_ms);

/**
 * As o2h_router_poll, but no handler runs: messages that arrive wait and are
 * handled, in order, by the next o2h_router_poll. For a sender that waits
 * for a full path to drain (o2h_can_send) without being re-entered, as O2's
 * blocking o2_send_cmd does.
 */
O2H_EXPORT int o2h_router_poll_io(o2h_router *r, int timeout_ms);

/** Poll until o2h_router_stop() is called. Returns O2H_OK. */
O2H_EXPORT int o2h_router_run(o2h_router *r);

/** Make o2h_router_run return (thread-safe, async-signal-safe). */
O2H_EXPORT void o2h_router_stop(o2h_router *r);

/** Interrupt a waiting o2h_router_poll (thread-safe, async-signal-safe). */
O2H_EXPORT void o2h_router_wake(o2h_router *r);

/**
 * Hand a message to the router from another thread (thread-safe). The
 * router takes the reference. The message must come from a pool-less builder
 * or o2h_msg_alloc(NULL, ...). Fails with O2H_QUEUE_FULL when the bounded
 * queue is full (the message is released and the drop counted).
 */
O2H_EXPORT int o2h_router_post(o2h_router *r, o2h_msg *msg);

/**
 * A file descriptor that becomes readable when the router has work, for
 * embedding in another event loop: poll it, then call o2h_router_poll(r, 0).
 */
O2H_EXPORT int o2h_router_fd(const o2h_router *r);

/** Stop and destroy plugins, drop pending messages, free everything. */
O2H_EXPORT void o2h_router_free(o2h_router *r);

/** The router's ensemble name. */
O2H_EXPORT const char *o2h_router_ensemble(const o2h_router *r);

/**
 * The process name, "@pppppppp:iiiiiiii:tttt" (public IP, internal IP, TCP
 * port in hex), once TCP and UDP transports have started; NULL before.
 */
O2H_EXPORT const char *o2h_router_process_name(const o2h_router *r);

/**
 * The configuration the router was made from, as read (with the
 * o2h_router_options.config_set overrides applied), as compact JSON text;
 * NULL for a router made by o2h_router_new. Free it with free().
 */
O2H_EXPORT char *o2h_router_config_text(const o2h_router *r);

/** The router's message pool (for builders and o2h_msg_alloc on its thread). */
O2H_EXPORT o2h_pool *o2h_router_pool(o2h_router *r);

/** Change the log level (enum o2h_log_level). */
O2H_EXPORT void o2h_router_set_log_level(o2h_router *r, int level);

/* ---- Reloading the configuration ---------------------------------------- */

/**
 * What a reload did with one key that changed: `key` is its path
 * ("log_level", "allow", "services[2]", "transports[1]"), `applied` says
 * whether the running router now follows the new value, `what` says what
 * changed or why it needs a restart.
 */
typedef void (*o2h_reload_note_fn)(void *ctx, const char *key, bool applied, const char *what);

/**
 * Read the config file at `path` again (the daemon's SIGHUP). The new file
 * is checked completely first, as o2h_router_new_from_file does (plugins
 * loaded and created, not started: what `o2hub --check` does). If it is
 * bad, nothing changes: returns the error code and fills *err with file,
 * line, column and key. If it is good, the keys that can change while the
 * router runs are applied ("log_level" unless log_level_fixed, "allow",
 * "services", "clock" becoming a reference) and `note` (may be NULL) is
 * called for every key that differs, applied or not (ensemble, plugin
 * path, any plugin entry: those need a restart). Returns O2H_OK.
 */
O2H_EXPORT int o2h_router_reload_file(o2h_router *r, const char *path, o2h_reload_note_fn note,
                                      void *ctx, o2h_error *err);

/* ---- Services and methods ------------------------------------------------ */

/**
 * A method handler. `argv`/`argc` hold the arguments decoded (and coerced to
 * the method's typespec) when the method was created with parse = true;
 * otherwise argv is NULL and argc 0 and the handler reads `msg` itself.
 * `types` is the message's type string (without ','), or the typespec when
 * arguments were coerced. Everything is valid only during the call; take a
 * reference with o2h_msg_ref to keep the message.
 */
typedef void (*o2h_handler)(o2h_router *r, const o2h_msg *msg, const char *types,
                            const o2h_arg *const *argv, int argc, void *user_data);

/**
 * Offer a local service. Names start with a letter, contain no '/', and are
 * at most 63 characters. O2H_SERVICE_EXISTS if this router already offers it.
 */
O2H_EXPORT int o2h_service_new(o2h_router *r, const char *name);

/** Withdraw a local service and its methods. */
O2H_EXPORT int o2h_service_free(o2h_router *r, const char *name);

/**
 * Install a handler for `path` ("/service" for every message to the service,
 * or "/service/node/..."). The service must exist locally. `typespec` NULL
 * accepts any arguments; otherwise a message whose types do not match is
 * coerced (if `coerce`) or dropped and counted. A new handler on an existing
 * path replaces the old one.
 */
O2H_EXPORT int o2h_method_new(o2h_router *r, const char *path, const char *typespec,
                              o2h_handler handler, void *user_data, bool coerce, bool parse);

/** Remove the handler at `path`. O2H_NOT_FOUND if there is none. */
O2H_EXPORT int o2h_method_free(o2h_router *r, const char *path);

/**
 * Properties of a service this router offers: `attr` (alphanumeric) set to
 * `value`, sent to every process (as O2 does, escaped in the ";attr:value;"
 * string) and reported through /_o2/si.
 */
O2H_EXPORT int o2h_service_set_property(o2h_router *r, const char *service, const char *attr,
                                        const char *value);

/** Remove one property of a service this router offers. */
O2H_EXPORT int o2h_service_property_free(o2h_router *r, const char *service, const char *attr);

/**
 * The value of `attr` for the active provider of `service` (here or in any
 * process), unescaped into `buf`. O2H_NOT_FOUND if there is none.
 */
O2H_EXPORT int o2h_service_get_property(o2h_router *r, const char *service, const char *attr,
                                        char *buf, size_t size);

/**
 * Services whose `attr` matches `pattern` with O2's rules (":abc" starts
 * with abc, "abc;" ends with it, ":abc;" equals it, else contains it).
 * Stores up to `max` names (valid until services change) and returns how
 * many services match.
 */
O2H_EXPORT int o2h_service_search(o2h_router *r, const char *attr, const char *pattern,
                                  const char **names, int max);

/** Tap modes: how copies travel (O2's TAP_KEEP, TAP_RELIABLE, TAP_BEST_EFFORT). */
enum o2h_tap_mode {
    O2H_TAP_KEEP = 0,        /**< as the original message did */
    O2H_TAP_RELIABLE = 1,    /**< always reliably */
    O2H_TAP_BEST_EFFORT = 2, /**< always best effort */
};

/**
 * Publish/subscribe: after every message delivered to `tappee` (by whichever
 * process offers it), a copy addressed to `tapper` (same path after the
 * service name, same timestamp) goes to this process. The tap is announced
 * to every process and removed when this process goes away. Copies of
 * copies stop after 3 hops (O2's TTL).
 */
O2H_EXPORT int o2h_tap(o2h_router *r, const char *tappee, const char *tapper, int mode);

/** Remove a tap made with o2h_tap. */
O2H_EXPORT int o2h_untap(o2h_router *r, const char *tappee, const char *tapper);

/**
 * Status of `service` as O2 reports it (enum o2h_status), or
 * O2H_STATUS_UNKNOWN when no provider is known.
 */
O2H_EXPORT int o2h_status(o2h_router *r, const char *service);

/** One entry of o2h_services_list: a known service, or a tap on one. */
typedef struct o2h_service_info {
    const char *name;       /**< the service (for a tap: the tapped service) */
    int status;             /**< o2h_status() of the service; O2H_STATUS_TAP for a tap */
    const char *process;    /**< the active provider's process name ("@pip:iip:port", or "_o2"
                                 for this router before it has a name); for a tap: the
                                 tapper's process */
    const char *properties; /**< the active provider's "attr:value;..." (escaped as O2 sends
                                 them, "" if none); NULL for a tap */
    const char *tapper;     /**< for a tap: the service copies go to; NULL otherwise */
    int providers;          /**< how many processes offer the service (ties); 0 for a tap */
} o2h_service_info;

typedef void (*o2h_service_visit)(void *ctx, const o2h_service_info *info);

/**
 * A snapshot of the service directory, as O2's o2_services_list reports it:
 * `visit` is called once per service that has a provider (its active one)
 * and once per tap. Order is unspecified; strings are valid only during
 * the call, and `visit` must not change services. Returns the number of
 * calls.
 */
O2H_EXPORT int o2h_services_list(o2h_router *r, o2h_service_visit visit, void *ctx);

/* ---- Sending ------------------------------------------------------------- */

/**
 * Build and send a message: best effort (o2h_send) or reliable
 * (o2h_send_cmd). `types` uses the codes i h f d t s S b c m B T F N I
 * (b takes an const o2h_blob *; m an uint32_t; B, T/F an int). Returns
 * O2H_OK, O2H_NO_SERVICE (dropped and counted), O2H_BAD_TYPE, ...
 */
O2H_EXPORT int o2h_send(o2h_router *r, const char *address, double time, const char *types, ...);
O2H_EXPORT int o2h_send_cmd(o2h_router *r, const char *address, double time, const char *types,
                            ...);
/** The va_list form; `flags` is O2H_FLAG_RELIABLE or 0. */
O2H_EXPORT int o2h_sendv(o2h_router *r, const char *address, double time, uint32_t flags,
                         const char *types, va_list ap);

/**
 * Route a finished message (takes the reference, even on error). Messages
 * sent from inside a handler are delivered after that handler returns.
 */
O2H_EXPORT int o2h_send_msg(o2h_router *r, o2h_msg *msg);

/**
 * The router's own builder, reset and ready (like O2's o2_send_start): add
 * arguments, then o2h_send_finish.
 */
O2H_EXPORT o2h_builder *o2h_send_start(o2h_router *r);

/** Finish the router's builder and route the message. */
O2H_EXPORT int o2h_send_finish(o2h_router *r, double time, const char *address, bool reliable);

/* ---- Time ---------------------------------------------------------------- */

/** Seconds since the router was created, from a monotonic clock. */
O2H_EXPORT double o2h_local_time(const o2h_router *r);

/**
 * O2 global time in seconds, or -1 while this router's clock is not
 * synchronised. Messages stamped with a later time are held by the
 * scheduler and delivered at that time; without a clock they are dropped
 * (O2H_NO_CLOCK, counted in dropped_no_clock).
 */
O2H_EXPORT double o2h_time_get(const o2h_router *r);

/**
 * Make this router the ensemble's reference clock (config: "clock":
 * {"reference": true}); its global time is then its local time.
 */
O2H_EXPORT int o2h_clock_set(o2h_router *r);

/**
 * Round-trip times of the clock-sync pings to the reference, in seconds:
 * mean and minimum of the last 5. O2H_NO_CLOCK (both set to -1) until 5
 * replies have come; the reference itself reports 0 and 0 (as O2's
 * o2_roundtrip).
 */
O2H_EXPORT int o2h_clock_roundtrip(const o2h_router *r, double *mean, double *min);

/**
 * Called when a new estimate of O2 time differs from this router's clock by
 * more than a second (O2's time jump callback). Return true to jump to
 * `new_global` at once, backwards too; false keeps O2's default: a forward
 * jump is taken, a backward one stops the clock until local time catches up
 * (so O2 time never runs backwards).
 */
typedef bool (*o2h_time_jump_fn)(void *ctx, double local_time, double old_global,
                                 double new_global);

/** Set (or clear, with NULL) the time jump callback. */
O2H_EXPORT void o2h_time_jump_callback_set(o2h_router *r, o2h_time_jump_fn fn, void *ctx);

/* ---- Counters ------------------------------------------------------------ */

/** Message counters of a router. Grows only at the end. */
typedef struct o2h_stats {
    uint32_t struct_size;        /**< set by the caller: sizeof(o2h_stats) */
    uint64_t delivered;          /**< messages given to a local handler */
    uint64_t forwarded;          /**< messages given to a transport link */
    uint64_t dropped_no_service; /**< no provider for the service */
    uint64_t dropped_no_handler; /**< local service without a matching method */
    uint64_t dropped_bad_types;  /**< types did not match a method's typespec */
    uint64_t dropped_invalid;    /**< malformed bytes from a transport */
    uint64_t dropped_no_clock;   /**< timed message and no clock */
    uint64_t dropped_queue_full; /**< a bounded queue was full */
    uint64_t dropped_send_error; /**< a transport refused the message */
    uint64_t tapped;             /**< tap copies made */
    uint64_t tap_buffers;        /**< buffers those copies used (shared when possible) */
    uint64_t refused;            /**< processes, clients, connections refused by access rules */
    uint64_t dropped_bad_names;  /**< process-protocol messages naming malformed processes */
    uint64_t held;               /**< reliable messages that waited for a full link (not lost) */
    uint64_t paused_links;       /**< times a link was paused because what it sent waited */
} o2h_stats;

/** Copy the counters (as many fields as stats->struct_size allows). */
O2H_EXPORT void o2h_router_get_stats(const o2h_router *r, o2h_stats *stats);

/**
 * Whether a reliable message to `service` would go out now: O2H_OK, or
 * O2H_BLOCKED while earlier messages on its path wait for the other side to
 * read (they are never dropped; a sender that checks this before sending
 * never meets the hold's bound), O2H_NO_SERVICE when there is no such
 * service. As O2's o2_can_send.
 */
O2H_EXPORT int o2h_can_send(o2h_router *r, const char *service);

/** How many counters o2h_stats has (for listing them all). */
O2H_EXPORT int o2h_stats_count(void);

/**
 * The name of counter `i` (0 .. o2h_stats_count() - 1, e.g. "dropped_queue_full")
 * and, when `value` is given, its value in `stats` (0 beyond stats->struct_size).
 * NULL for another `i`.
 */
O2H_EXPORT const char *o2h_stats_name(int i, const o2h_stats *stats, uint64_t *value);

/**
 * Every counter of the router in Prometheus' text exposition format (0.0.4):
 * the o2h_stats counters, messages routed per service, and per plugin what
 * went through its links. Writes at most `size` bytes, terminated when size
 * > 0, and returns the length of the whole text (as snprintf: call again
 * with a larger buffer when it is >= size).
 */
O2H_EXPORT size_t o2h_router_stats_text(const o2h_router *r, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
