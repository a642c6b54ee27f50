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
 * only the fields a plugin's sizes say it has, and a plugin tests a host
 * field added after 1.0 with O2H_HAS() before using it (see struct o2h_host).
 * An incompatible change bumps O2H_ABI_MAJOR. docs/plugin-abi.md has the
 * rules and a worked example.
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
#define O2H_ABI_MINOR 1

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
 * Return O2H_OK or an error code (after host->log->write or host->cfg->error).
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
 * (host->link->link_new). Its send queues must be bounded. Every op is
 * called on the loop thread and must not block.
 */
typedef struct o2h_transport_ops {
    /**
     * Open a link to `address` (transport-specific form: "IP:PORT" for the
     * O2 TCP and UDP transports); optional (NULL). May run inside deliver()
     * of any transport, this one's included (a discovery message names a new
     * peer). Starts a non-blocking connect and returns at once with *link
     * made by link_new; a connect that fails later ends with link_free.
     */
    int (*connect)(void *instance, const char *address, o2h_link **link);
    /**
     * Send `msg` on a link; `link_ctx` is what the transport gave link_new.
     * Borrows `msg`: take a reference (host->msg->msg_ref) to queue it. May
     * run re-entrantly inside any of this transport's callbacks, on the link
     * being read too. Returns O2H_OK (written or queued), O2H_QUEUE_FULL (the
     * bounded queue has no room; nothing was queued, the core counts the
     * drop) or O2H_SEND_FAIL (the link is broken; the transport may have
     * called link_free on it). Never calls deliver().
     */
    int (*send)(void *instance, void *link_ctx, o2h_msg *msg);
    /**
     * The core no longer uses this link (its peer or bridge ended, the
     * router is stopping). Called only from the loop's deferred phase or
     * from o2h_router_stop/free, never inside a host call; never for a link
     * after link_free. The transport writes what is queued if it can, then
     * closes and calls link_free (now or later).
     */
    void (*close)(void *instance, void *link_ctx);
    /**
     * A transport that also finds peers (MQTT: one broker connection both
     * announces this process and carries messages) gets the same announce()
     * calls as discovery plugins; see o2h_discovery_ops. NULL if it does not.
     */
    int (*announce)(void *instance, const o2h_process_info *self_info);
    /**
     * Stop (paused = true) or resume reading this link; optional (NULL). The
     * core pauses the link a reliable message came by while that message
     * waits for a full link, so the sender slows down instead of the router
     * growing (O2's back-pressure), and resumes it once it went out. May run
     * inside this link's own read callback: messages already read may still
     * be delivered. Returns O2H_OK.
     */
    int (*pause)(void *instance, void *link_ctx, bool paused);
    /* 1.1 */
    /**
     * Bytes that send() accepted on this link and that still wait to be
     * handed to the operating system; optional (NULL: the core cannot tell).
     * While it is not 0, o2h_can_send() says O2H_BLOCKED for the services
     * the link carries, as O2's o2_can_send does while a message is pending
     * on its socket. Must be cheap: it runs on every o2h_can_send().
     */
    size_t (*queued)(void *instance, void *link_ctx);
} o2h_transport_ops;

/**
 * A discovery backend. The core calls announce() when the process has its
 * name (TCP and UDP transports started) and again whenever a peer process is
 * lost, so that backends with a backoff start over; withdraw() when the
 * router stops. Backends make peers known by getting a `!_o2/dy` message
 * (host->proc->dy_message) to them; the core does the rest of the handshake.
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

/**
 * Does `table` have `member`? `table` is the host table or one of its
 * sub-tables (their first field is `size`, as the router was built). Every
 * field of ABI 1.0 is always there; a plugin checks this before it uses a
 * field added in a later minor version, e.g.
 *
 *     if (O2H_HAS(host->loop, some_11_call)) host->loop->some_11_call(...);
 */
#define O2H_HAS(table, member)                                                                     \
    ((table) != NULL &&                                                                            \
     (size_t)((const char *)&(table)->member - (const char *)(table)) + sizeof((table)->member) <= \
         (table)->size)

/** Logging: one line, prefixed with the plugin's name (`self`). */
typedef struct o2h_host_log {
    uint32_t size;
    void (*write)(o2h_plugin *self, int level, const char *fmt, ...) O2H_PRINTF(3, 4);
    void (*vwrite)(o2h_plugin *self, int level, const char *fmt, va_list ap) O2H_PRINTF(3, 0);
    /** True when a line of `level` would be written (skip costly formatting otherwise). */
    bool (*enabled)(o2h_plugin *self, int level);
} o2h_host_log;

/**
 * Configuration: read keys of the plugin's own object. The get_* calls return
 * O2H_OK, O2H_NOT_FOUND (key absent: *out = default) or O2H_CONFIG_ERROR
 * (wrong type or out of range; the error is recorded with file:line:column
 * and key path). Every key read counts as known; keys never read are
 * reported as unknown after create() returns.
 */
typedef struct o2h_host_cfg {
    uint32_t size;
    int (*get_string)(const o2h_cfg *cfg, const char *key, const char *def, const char **out);
    int (*get_int)(const o2h_cfg *cfg, const char *key, int64_t def, int64_t min, int64_t max,
                   int64_t *out);
    int (*get_double)(const o2h_cfg *cfg, const char *key, double def, double *out);
    int (*get_bool)(const o2h_cfg *cfg, const char *key, bool def, bool *out);
    /** A child object as a cfg (NULL if absent; NULL and error recorded if not an object). */
    const o2h_cfg *(*object)(const o2h_cfg *cfg, const char *key);
    /** Length of the array at `key` (0 if absent; -1 and error recorded if not an array). */
    int (*array_len)(const o2h_cfg *cfg, const char *key);
    /** Element `index` of the array at `key` as a cfg (objects, strings, numbers). */
    const o2h_cfg *(*array_item)(const o2h_cfg *cfg, const char *key, int index);
    /** The value of a cfg that is a string (array items), else NULL. */
    const char *(*as_string)(const o2h_cfg *cfg);
    /** Record a "bad value" error located at `key` (NULL: the object itself); returns
     * O2H_CONFIG_ERROR. */
    int (*error)(const o2h_cfg *cfg, const char *key, const char *fmt, ...) O2H_PRINTF(3, 4);
    /** The folder of the file `cfg` comes from ("." for config given as text): resolve
     * relative paths in the plugin's config against it. */
    const char *(*dir)(const o2h_cfg *cfg);
    /**
     * Say in create() that the plugin will listen on `port` (O2H_NET_TCP or
     * O2H_NET_UDP) at `host` (NULL or "0.0.0.0": every address), as read
     * from `key`: two plugins given the same port are refused when the config
     * is read (o2hub --check too), with the error at the second one's key.
     * Port 0 (a free port picked at start) never clashes. O2H_OK or
     * O2H_CONFIG_ERROR.
     */
    int (*claim_port)(const o2h_cfg *cfg, const char *key, int proto, const char *host, int port);
} o2h_host_cfg;

#define O2H_HOST_MSG_MEMBER_(ret, name, params) ret(*name) params;

/**
 * Messages: host->msg->NAME is o2h_NAME of msg.h, with the same contract,
 * for every function in O2H_MSG_FUNCTIONS; the three calls that take a pool
 * in msg.h take the plugin's handle here (messages come from its router's
 * pool).
 */
typedef struct o2h_host_msg {
    uint32_t size;
    o2h_msg *(*msg_alloc)(o2h_plugin *self, size_t size);
    o2h_msg *(*msg_from_bytes)(o2h_plugin *self, const uint8_t *data, size_t len, int *code,
                               o2h_msg_error *err);
    o2h_builder *(*builder_new)(o2h_plugin *self);
    O2H_MSG_FUNCTIONS(O2H_HOST_MSG_MEMBER_)
} o2h_host_msg;

/**
 * Storage for one deferred call (host->loop->defer), owned by the plugin —
 * typically a field of the object the call will free. Zero it before first
 * use; its fields are the loop's.
 */
typedef struct o2h_deferred {
    struct o2h_deferred *next_;
    void (*fn_)(void *ctx);
    void *ctx_;
    uint32_t pending_;
} o2h_deferred;

/** The event loop: fd watches, timers, time, deferred calls. */
typedef struct o2h_host_loop {
    uint32_t size;
    o2h_watch *(*watch_fd)(o2h_plugin *self, int fd, unsigned events, o2h_fd_cb cb, void *ctx);
    int (*watch_modify)(o2h_watch *w, unsigned events);
    /** Safe inside any callback, the watch's own included: it never fires again. */
    void (*watch_remove)(o2h_watch *w);
    /** Call cb after `delay` seconds, then every `period` seconds if period > 0. */
    o2h_timer *(*timer_start)(o2h_plugin *self, double delay, double period, o2h_timer_cb cb,
                              void *ctx);
    /** Safe inside any callback, the timer's own included. */
    void (*timer_stop)(o2h_timer *t);
    /** Seconds on this machine's monotonic clock since the router was made. */
    double (*local_time)(o2h_plugin *self);
    /** The O2 (ensemble) time in seconds, or a negative value while this process has
     * no clock sync (see o2h_time_get). */
    double (*time_get)(o2h_plugin *self);
    /**
     * Call fn(ctx) once, in the loop's deferred phase: after the callback now
     * running has returned and before the loop waits again, with no plugin
     * callback and no host call on the stack. Never fails; a `d` already
     * pending is left as it is. This is how a transport frees what its own
     * callbacks may still be using (see "Re-entrancy" below).
     */
    void (*defer)(o2h_plugin *self, o2h_deferred *d, void (*fn)(void *ctx), void *ctx);
} o2h_host_loop;

/** Links (a transport's connections), delivery, and the services they provide. */
typedef struct o2h_host_link {
    uint32_t size;
    /** A new link owned by this transport; the core passes `link_ctx` back to ops. */
    o2h_link *(*link_new)(o2h_plugin *self, void *link_ctx, const char *description);
    /**
     * The transport has closed the link: the services it provided are
     * withdrawn, a peer or bridge on it is lost. After this call the core
     * never names the link again: no send(), no close() for it.
     */
    void (*link_free)(o2h_link *link);
    /**
     * Hand a received message to the core (takes the reference). The core
     * validates it, counts and drops it if malformed, and routes it. `from`
     * (may be NULL) travels with the message while it is dispatched, so that
     * the process protocol knows which peer spoke.
     */
    int (*deliver)(o2h_plugin *self, o2h_link *from, o2h_msg *msg);
    /** Count a malformed packet the transport dropped before delivering. */
    void (*count_invalid)(o2h_plugin *self, const char *reason);
    /** Make `link` a provider of `service` (the tie rule picks the active one). */
    int (*service_add)(o2h_plugin *self, const char *service, o2h_link *link);
    int (*service_remove)(o2h_plugin *self, const char *service, o2h_link *link);
    /** o2h_status() of a service, for clients' status queries. */
    int (*service_status)(o2h_plugin *self, const char *service);
    /**
     * The link's send queue has room again after send() returned
     * O2H_QUEUE_FULL: the core sends the reliable messages that waited (which
     * may call send() at once, inside this call) and resumes the links it
     * paused for them. Without it the core retries every 20 ms.
     */
    void (*drained)(o2h_link *link);
} o2h_host_link;

/** The O2 process protocol: this process's name, its peers, discovery. */
typedef struct o2h_host_proc {
    uint32_t size;
    /** The router's ensemble name. */
    const char *(*ensemble)(o2h_plugin *self);
    /** This router's process name ("@pppppppp:iiiiiiii:tttt"), or NULL before it has one. */
    const char *(*process_name)(o2h_plugin *self);
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
     * Returns O2H_OK, O2H_ALREADY_RUNNING when the process is already reached
     * another way (e.g. by TCP), O2H_BAD_NAME for a malformed or our own name,
     * O2H_NOT_INITIALIZED before this process has a name.
     */
    int (*process_link)(o2h_plugin *self, o2h_link *link, const char *process_name);
    /**
     * May an O2 process be at `ip` (IPv4, host byte order)? The router's
     * "allow" networks decide (broadcast, multicast and 0.0.0.0 never). A
     * transport that accepts O2 processes' connections closes one from an
     * address refused here, and says so with refused().
     */
    bool (*allowed)(o2h_plugin *self, uint32_t ip);
    /**
     * Count (the router's "refused" counter) and log, rate-limited, a client
     * or connection refused by an access rule; `what` says who and why, e.g.
     * "TCP connection from 203.0.113.9: not in \"allow\"".
     */
    void (*refused)(o2h_plugin *self, const char *what);
} o2h_host_proc;

/** Bridges: light clients (O2lite over WebSocket, shared memory...) reached through a link. */
typedef struct o2h_host_bridge {
    uint32_t size;
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
    int (*service)(o2h_plugin *self, o2h_link *link, const char *name, bool added, bool is_service,
                   const char *props_or_tappee, int mode);
    /** The client reported clock sync: its services become BRIDGE (from BRIDGE_NOTIME). */
    int (*synced)(o2h_plugin *self, o2h_link *link);
} o2h_host_bridge;

/**
 * Counters (ABI 1.1: test with O2H_HAS(host, stats) first). Loop thread
 * only, like every host call.
 */
typedef struct o2h_host_stats {
    uint32_t size;
    /**
     * Every counter of the plugin's router in Prometheus' text exposition
     * format, as o2h_router_stats_text (o2hub.h) writes it: at most `size`
     * bytes, terminated when size > 0; returns the length of the whole text.
     */
    size_t (*text)(o2h_plugin *self, char *buf, size_t size);
} o2h_host_stats;

/**
 * The host table given to create(). Constant, shared by every plugin of every
 * router in the process; valid until the plugin is destroyed.
 *
 * ## Re-entrancy
 *
 * Everything runs on the router's loop thread. The core calls a plugin's
 * lifecycle and ops, and its watch and timer callbacks, from the loop (or
 * from the embedder's calls into the router, e.g. o2h_send, which are on the
 * same thread). Within those calls a plugin may call any host function, with
 * these consequences, which every plugin must be written for:
 *
 * - link->deliver() dispatches synchronously. Before it returns the core may
 *   call ops->send() of any transport, this one included and the very link
 *   the message came from included (a reply, a clock ping, a forward).
 *   ops->connect() of the O2 TCP transport may run too (a discovery message
 *   names a new peer), and discovery ops->announce() may run. So a transport
 *   must be ready, inside its own read callback, for send() on the link it
 *   is reading from, and must not hold a half-updated state across deliver().
 * - Any host call that sends (deliver, dy_message users, bridge calls,
 *   process_link) may call ops->send() as above; none calls ops->close() or
 *   ops->connect() of a link the caller is using.
 * - The core never calls ops->close() from inside a host call or from inside
 *   another plugin's callback: when the core decides to close a link (a peer
 *   lost, a bridge ended, the router stopping) the close runs in the loop's
 *   deferred phase, with no plugin code on the stack — or directly from
 *   o2h_router_stop()/o2h_router_free(), which an embedder never calls from a
 *   callback.
 * - After link_free(link) returns, the core never names that link again: no
 *   send(), no close(), even if a close() had been decided earlier. link_free
 *   itself calls no op of the plugin calling it (it may send on *other*
 *   links: a peer lost is announced to the others).
 * - ops->send() may fail at any time; it never calls deliver() and must not
 *   call link_free() for a link other than its own. It may call link_free()
 *   on its own link when the connection is broken (then it returns
 *   O2H_SEND_FAIL). The core copes with that.
 * - A transport frees memory that one of its callbacks may still be using
 *   (a connection closed inside its own read callback, or inside send())
 *   through loop->defer(): the function runs in the deferred phase, after
 *   every callback on the stack has returned. watch_remove() and
 *   timer_stop() may be called anywhere, the callback's own included.
 * - A plugin's own threads may call only msg->msg_ref and msg->msg_unref
 *   (atomic); everything else happens on the loop thread.
 *
 * ## Versions
 *
 * `abi_major`/`abi_minor` are the router's. Every member of this struct and
 * of each sub-table listed in ABI 1.0 is present and non-NULL in every 1.0
 * router. A member added later (ABI 1.1, 1.2, ...) goes at the end of its
 * sub-table, raises O2H_ABI_MINOR, and is tested with O2H_HAS() before use;
 * a new area becomes a new sub-table pointer at the end of this struct.
 */
struct o2h_host {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t size; /**< sizeof(o2h_host) as the router was built */
    const o2h_host_log *log;
    const o2h_host_cfg *cfg;
    const o2h_host_msg *msg;
    const o2h_host_loop *loop;
    const o2h_host_link *link;
    const o2h_host_proc *proc;
    const o2h_host_bridge *bridge;
    /* 1.1 */
    const o2h_host_stats *stats;
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
