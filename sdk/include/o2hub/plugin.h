/*
 * o2hub/plugin.h — the plugin ABI: what a transport, discovery or extension
 * plugin exports, and the host table through which it calls the core.
 *
 * A plugin is a shared object exporting exactly one symbol:
 *
 *     O2H_PLUGIN_EXPORT const o2h_plugin_desc *o2hub_plugin_entry(void);
 *
 * (or the same sources linked into a program under another name: see
 * O2H_PLUGIN_ENTRY below).
 *
 * The loader calls it, then checks — before anything else — that
 * desc->abi_major equals the router's O2H_ABI_MAJOR, that desc->abi_minor is
 * not newer than the router's, and that desc->struct_size and
 * desc->ops_size are at least the sizes of ABI 1.0. Only then does it call
 * create().
 *
 * Evolution is append-only: new fields go at the end of a struct and the
 * minor version goes up; a field is never removed or reused. A router reads
 * only the fields a plugin's sizes say it has, and a plugin must check
 * host->struct_size (or host->abi_minor) before using a field added after
 * 1.0. An incompatible change bumps O2H_ABI_MAJOR.
 *
 * Plugins call the core only through the o2h_host table given to create();
 * they never link against libo2hub. Every host function takes the plugin's
 * own handle (o2h_plugin *), which names the router and the plugin in logs.
 * All calls happen on the router's loop thread.
 */
#ifndef O2HUB_PLUGIN_H
#define O2HUB_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>

#include "msg.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define O2H_ABI_MAJOR 1
#define O2H_ABI_MINOR 0

/** The one symbol a plugin exports. */
#define O2H_PLUGIN_ENTRY_NAME "o2hub_plugin_entry"

/**
 * The entry function's name in a plugin's source: define it as
 *
 *     O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) { ... }
 *
 * A shared object keeps the default name. To link plugins into a program
 * instead (o2h_router_options.linked_plugins), compile each with a name of
 * its own, e.g. -DO2H_PLUGIN_ENTRY=o2hub_tcp_entry, so that they can sit
 * side by side.
 */
#ifndef O2H_PLUGIN_ENTRY
#define O2H_PLUGIN_ENTRY o2hub_plugin_entry
#endif

#if defined(__GNUC__)
#define O2H_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define O2H_PLUGIN_EXPORT
#endif

typedef enum o2h_plugin_kind {
    O2H_PLUGIN_TRANSPORT = 1, /**< carries messages: has o2h_transport_ops */
    O2H_PLUGIN_DISCOVERY = 2, /**< finds peers: has o2h_discovery_ops */
    O2H_PLUGIN_EXTENSION = 3, /**< anything else: lifecycle only, ops may be NULL */
} o2h_plugin_kind;

typedef struct o2h_host o2h_host;

/* ---- Callbacks a plugin registers with the loop -------------------------- */

/** Event bits for fd watches (same values as EPOLLIN/EPOLLOUT/...). */
#define O2H_EV_READ 0x001u
#define O2H_EV_WRITE 0x004u
#define O2H_EV_ERROR 0x008u
#define O2H_EV_HUP 0x010u

typedef void (*o2h_fd_cb)(void *ctx, int fd, unsigned events);
typedef void (*o2h_timer_cb)(void *ctx);

/* ---- What a plugin provides ---------------------------------------------- */

/**
 * Lifecycle, common to every kind. create() parses `cfg` (its own object
 * from the config file) through the host's cfg_* functions and allocates;
 * it must not open sockets or start threads — start() does, so that
 * `o2hub --check` can create plugins without side effects. Unread config
 * keys are reported as unknown by the core after create() returns.
 * Return O2H_OK or an error code (after host->log or host->cfg_error).
 */
typedef struct o2h_plugin_lifecycle {
    int (*create)(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance);
    int (*start)(void *instance);
    void (*stop)(void *instance);
    void (*destroy)(void *instance);
} o2h_plugin_lifecycle;

/** Process information announced by a discovery backend. */
typedef struct o2h_process_info {
    const char *ensemble;
    const char *name; /**< "@pppppppp:iiiiiiii:pppp" */
    int32_t version;  /**< O2 protocol version, e.g. 0x020001 */
    int tcp_port;
    int udp_port;
    uint32_t internal_ip; /**< IPv4, host byte order */
} o2h_process_info;

/**
 * A transport moves messages over some medium. Links are its connections
 * (host->link_new). send() borrows `msg`: take a reference with
 * host->msg_ref to keep it (e.g. in a send queue). A transport's send queue
 * must be bounded: when full, return O2H_QUEUE_FULL (best effort messages may
 * be dropped silently, the core counts them).
 */
typedef struct o2h_transport_ops {
    /** Open a link to `address` (transport-specific form); optional. */
    int (*connect)(void *instance, const char *address, o2h_link **link);
    /** Send on a link; `link_ctx` is what the transport gave link_new. */
    int (*send)(void *instance, void *link_ctx, o2h_msg *msg);
    /** The core no longer uses this link (service withdrawn, router stopping). */
    void (*close)(void *instance, void *link_ctx);
    /* ABI 1.0, appended (optional; a plugin's ops_size tells whether it is there) */
    /**
     * A transport that also finds peers (MQTT: one broker connection both
     * announces this process and carries messages) gets the same announce()
     * calls as discovery plugins; see o2h_discovery_ops. NULL if it does not.
     */
    int (*announce)(void *instance, const o2h_process_info *self_info);
} o2h_transport_ops;

/**
 * A discovery backend. The core calls announce() when the process has its
 * name (TCP and UDP transports started) and again whenever a peer process is
 * lost, so that backends with a backoff start over; withdraw() when the
 * router stops. Backends make peers known by getting a `!_o2/dy` message
 * (host->dy_message) to them; the core does the rest of the handshake.
 */
typedef struct o2h_discovery_ops {
    int (*announce)(void *instance, const o2h_process_info *self_info);
    int (*withdraw)(void *instance);
} o2h_discovery_ops;

/** What o2hub_plugin_entry returns. Static, never freed. */
struct o2h_plugin_desc {
    uint32_t abi_major;   /**< O2H_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;   /**< O2H_ABI_MINOR the plugin was built with */
    uint32_t struct_size; /**< sizeof(o2h_plugin_desc) as the plugin saw it */
    uint32_t ops_size;    /**< sizeof the kind's ops struct (0 if none) */
    o2h_plugin_kind kind;
    const char *name;        /**< the "type" used in configs, e.g. "udp" */
    const char *version;     /**< the plugin's own version string */
    const char *description; /**< one line for `o2hub --help` and logs */
    o2h_plugin_lifecycle lifecycle;
    const void *ops; /**< o2h_transport_ops / o2h_discovery_ops / NULL */
};

/** Fill the version fields of a descriptor. */
#define O2H_PLUGIN_DESC_HEADER(ops_type)                                                           \
    .abi_major = O2H_ABI_MAJOR, .abi_minor = O2H_ABI_MINOR,                                        \
    .struct_size = sizeof(o2h_plugin_desc), .ops_size = sizeof(ops_type)

/* ---- What the core provides: the host table ------------------------------ */

struct o2h_host {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size; /**< sizeof(o2h_host) as the router was built */

    /* logging: one line, prefixed with the plugin's name */
    void (*log)(o2h_plugin *self, int level, const char *fmt, ...) O2H_PRINTF(3, 4);

    /* configuration: read keys of this plugin's object. Each returns O2H_OK,
     * O2H_NOT_FOUND (key absent: *out = default) or O2H_CONFIG_ERROR (wrong
     * type or out of range; the error is recorded with file:line:column). */
    int (*cfg_string)(const o2h_cfg *cfg, const char *key, const char *def, const char **out);
    int (*cfg_int)(const o2h_cfg *cfg, const char *key, int64_t def, int64_t min, int64_t max,
                   int64_t *out);
    int (*cfg_double)(const o2h_cfg *cfg, const char *key, double def, double *out);
    int (*cfg_bool)(const o2h_cfg *cfg, const char *key, bool def, bool *out);
    /** A child object or array element as a cfg (NULL if absent or wrong type, error recorded). */
    const o2h_cfg *(*cfg_object)(const o2h_cfg *cfg, const char *key);
    /** Length of the array at `key` (0 if absent; -1 and error recorded if not an array). */
    int (*cfg_array_len)(const o2h_cfg *cfg, const char *key);
    /** Element `index` of the array at `key` as a cfg (objects, strings, numbers). */
    const o2h_cfg *(*cfg_array_item)(const o2h_cfg *cfg, const char *key, int index);
    /** The value of a cfg that is a string (array items), else NULL. */
    const char *(*cfg_as_string)(const o2h_cfg *cfg);
    /** Record a "bad value" error located at `key` (NULL: the object itself). */
    int (*cfg_error)(const o2h_cfg *cfg, const char *key, const char *fmt, ...) O2H_PRINTF(3, 4);

    /* messages (see msg.h for each function's contract) */
    o2h_msg *(*msg_alloc)(o2h_plugin *self, size_t size);
    o2h_msg *(*msg_ref)(o2h_msg *msg);
    void (*msg_unref)(o2h_msg *msg);
    int (*msg_validate)(const uint8_t *data, size_t len, o2h_msg_error *err);
    o2h_builder *(*builder_new)(o2h_plugin *self);
    void (*builder_free)(o2h_builder *b);
    void (*builder_start)(o2h_builder *b);
    int (*add_int32)(o2h_builder *b, int32_t v);
    int (*add_int64)(o2h_builder *b, int64_t v);
    int (*add_float)(o2h_builder *b, float v);
    int (*add_double)(o2h_builder *b, double v);
    int (*add_time)(o2h_builder *b, double v);
    int (*add_string)(o2h_builder *b, const char *s);
    int (*add_symbol)(o2h_builder *b, const char *s);
    int (*add_blob)(o2h_builder *b, const void *data, uint32_t size);
    int (*add_char)(o2h_builder *b, char c);
    int (*add_midi)(o2h_builder *b, uint32_t midi);
    int (*add_bool)(o2h_builder *b, bool v);
    int (*add_tf)(o2h_builder *b, bool v);
    int (*add_nil)(o2h_builder *b);
    int (*add_infinitum)(o2h_builder *b);
    int (*add_start_array)(o2h_builder *b);
    int (*add_end_array)(o2h_builder *b);
    int (*add_vector)(o2h_builder *b, char elem_type, int32_t n, const void *data);
    int (*add_message)(o2h_builder *b, const o2h_msg *msg);
    o2h_msg *(*builder_finish)(o2h_builder *b, double time, const char *address, uint32_t flags);
    int (*reader_init)(o2h_reader *rd, const o2h_msg *msg, void *scratch, size_t scratch_size);
    int (*reader_next)(o2h_reader *rd, char want, o2h_arg *out);
    const char *(*msg_types)(const o2h_msg *msg);
    int (*msg_format)(const o2h_msg *msg, char *buf, size_t size);

    /**
     * Hand a received message to the core (takes the reference). The core
     * validates it unless the transport already did, counts and drops it if
     * malformed, and routes it. `from` may be NULL.
     */
    int (*deliver)(o2h_plugin *self, o2h_link *from, o2h_msg *msg);
    /** Count a malformed packet the transport dropped before delivering. */
    void (*count_invalid)(o2h_plugin *self, const char *reason);

    /* event loop */
    o2h_watch *(*watch_fd)(o2h_plugin *self, int fd, unsigned events, o2h_fd_cb cb, void *ctx);
    int (*watch_modify)(o2h_watch *w, unsigned events);
    void (*watch_remove)(o2h_watch *w);
    /** Call cb after `delay` seconds, then every `period` seconds if period > 0. */
    o2h_timer *(*timer_start)(o2h_plugin *self, double delay, double period, o2h_timer_cb cb,
                              void *ctx);
    void (*timer_stop)(o2h_timer *t);
    double (*local_time)(o2h_plugin *self);

    /* links and services */
    /** A new link owned by this transport; the core passes `link_ctx` back to ops. */
    o2h_link *(*link_new)(o2h_plugin *self, void *link_ctx, const char *description);
    /** The transport has closed the link: services it provided are withdrawn. */
    void (*link_free)(o2h_link *link);
    /** Make `link` a provider of `service` (the tie rule picks the active one). */
    int (*service_add_link)(o2h_plugin *self, const char *service, o2h_link *link);
    int (*service_remove_link)(o2h_plugin *self, const char *service, o2h_link *link);

    /** The router's ensemble name. */
    const char *(*ensemble)(o2h_plugin *self);

    /* O2 process networking */
    /**
     * A transport that carries the O2 process protocol declares where it is
     * bound: `proto` is O2H_NET_TCP (the reliable transport, whose connect()
     * the core uses to reach peer processes) or O2H_NET_UDP (best effort, whose
     * connect() makes a destination). Once both are known the router has its
     * process name and announces itself through the discovery plugins.
     */
    int (*net_register)(o2h_plugin *self, int proto, uint32_t internal_ip, int port);
    /** A new `!_o2/dy` message describing this process with `flag` (O2H_DY_*), or
     * NULL before the process has a name. The caller owns the reference. */
    o2h_msg *(*dy_message)(o2h_plugin *self, int flag);
    /** This router's process name ("@pppppppp:iiiiiiii:tttt"), or NULL before it has one. */
    const char *(*process_name)(o2h_plugin *self);

    /* clock (ABI 1.0, appended) */
    /** The O2 (ensemble) time in seconds, or a negative value while this
     * process has no clock sync (see o2h_time_get). */
    double (*time_get)(o2h_plugin *self);

    /* bridges (ABI 1.0, appended): light clients reached through a link */
    /**
     * Make `link` carry one bridge client of `protocol` ("O2ws", "O2sm", at
     * most 7 characters). Returns the client's id (> 0, unique in this
     * router) or an error code. With O2H_BRIDGE_HOLD_TIMED the core keeps
     * timed messages for the client until their time (for clients that
     * cannot schedule). The bridge ends with link_free.
     */
    int (*bridge_new)(o2h_plugin *self, o2h_link *link, const char *protocol, unsigned flags);
    /**
     * A service item from the client, as O2's .../sv "siisi" carries it:
     * `name` added or removed; or, when !is_service, a tap of
     * `props_or_tappee` by `name` with send `mode`. Properties are
     * ";key:value;..." or "". Returns O2H_OK or an error code.
     */
    int (*bridge_service)(o2h_plugin *self, o2h_link *link, const char *name, bool added,
                          bool is_service, const char *props_or_tappee, int mode);
    /** The client reported clock sync: its services become BRIDGE (from BRIDGE_NOTIME). */
    int (*bridge_synced)(o2h_plugin *self, o2h_link *link);
    /** o2h_status() of a service, for clients' status queries. */
    int (*service_status)(o2h_plugin *self, const char *service);

    /* configuration (ABI 1.0, appended) */
    /** The folder of the config file `cfg` comes from ("." for config given as
     * text): plugins resolve relative paths in their config against it. */
    const char *(*cfg_dir)(const o2h_cfg *cfg);

    /* processes reached through a transport's link (ABI 1.0, appended) */
    /**
     * Make `link` the path to the O2 process `process_name`
     * ("@pppppppp:iiiiiiii:tttt"), for both reliable and best-effort
     * messages, as O2 does for a process it reaches only through an MQTT
     * broker. The core creates the peer, sends on the link this process's
     * !_o2/cs/cs (when synchronised) and !_o2/sv, and takes the peer's !_o2/sv
     * from messages delivered with `from` = this link. The peer is lost (its
     * services withdrawn everywhere) when the link is freed (link_free).
     * Called again with the same link, the core sends !_o2/cs/cs and !_o2/sv
     * again (the process lost us and asks for our state: O2's !_o2/mqtt/dy).
     * Returns O2H_OK,
     * O2H_ALREADY_RUNNING when the process is already reached another way
     * (e.g. by TCP), O2H_BAD_NAME for a malformed or our own name,
     * O2H_NOT_INITIALIZED before this process has a name.
     */
    int (*process_link)(o2h_plugin *self, o2h_link *link, const char *process_name);
};

/* bridge_new flags */
#define O2H_BRIDGE_HOLD_TIMED 1u

#define O2H_NET_TCP 1
#define O2H_NET_UDP 2

/* The `flag` of O2's discovery message !_o2/dy. */
#define O2H_DY_INFO 50
#define O2H_DY_HUB 51
#define O2H_DY_REPLY 52
#define O2H_DY_CALLBACK 53
#define O2H_DY_CONNECT 54

#ifdef __cplusplus
}
#endif
#endif
