/* The router object: everything one O2 process owns. No globals anywhere. */
#ifndef O2H_ROUTER_H
#define O2H_ROUTER_H

#include <stdatomic.h>

#include "bridge.h"
#include "clock.h"
#include "config.h"
#include "link.h"
#include "log_limit.h"
#include "loader.h"
#include "loop.h"
#include "o2hub/o2hub.h"
#include "post_queue.h"
#include "reload.h"
#include "proto.h"
#include "scheduler.h"
#include "services.h"

/* Messages queued while a handler runs: a bound so a handler that sends in a
 * loop to itself cannot grow memory without limit. */
#define PENDING_LIMIT 65536u

struct o2h_router {
    char ensemble[64];
    char process_name[32]; /* "@pip:iip:port" once a network transport names it */
    int log_level;
    o2h_log_fn log;
    void *log_ctx;
    uint64_t t0_ns;

    o2h_pool *pool;
    o2h_builder *builder;  /* o2h_send_start's builder */
    o2h_builder *vbuilder; /* o2h_send's, so it never clobbers a message being built */
    o2h_builder *pbuilder; /* the process protocol's own messages */
    net_state net;
    loop lp;
    post_queue posts;
    atomic_bool stop_requested;

    service_table services;
    o2h_stats stats;
    sched sched;
    clock_state clock;
    bridge_set bridges;

    /* dispatch state */
    int dispatch_depth;
    o2h_msg *pending_head, *pending_tail;
    uint32_t pending_count;
    uint8_t *scratch; /* decoded vectors during a handler call */
    size_t scratch_size;
    o2h_arg *args; /* argv storage during a handler call */
    const o2h_arg **argv;
    uint32_t args_cap;

    /* plugins, in load order */
    o2h_plugin *plugins;
    char **plugin_dirs;
    int n_plugin_dirs;
    o2h_link *holding;       /* links holding reliable messages (link_hold.h) */
    allow_list allow;        /* where O2 processes may be (router-owned copy) */
    rate_limit refused_log;  /* one warning per burst of refused processes */
    rate_limit bad_name_log; /* ... and of malformed process names */
    char *env_plugin_path;   /* $O2HUB_PLUGIN_PATH when made: NUL-separated, "" at the end */
    o2h_plugin_entry_fn *linked_plugins; /* NULL-terminated copy of the option */
    config_doc *doc;                     /* kept alive: plugins' cfgs point into it */
    config_doc **extra_docs;             /* one per o2h_router_add_plugin */
    int n_extra_docs;
    router_config config;       /* what r->doc says; its plugins run from it */
    config_service_set offered; /* the services the config offers now (reload.h) */
    int base_log_level;         /* the options' level, for a config without "log_level" */
    bool log_level_fixed;       /* the options' level wins over the config's */
    bool started;
    bool closing; /* o2h_router_free is running: no notifications */
};

/** Log one line through the router's sink. `origin` is "core" or a plugin name. */
void o2h__router_log(const o2h_router *r, int level, const char *origin, const char *fmt, ...)
    O2H_PRINTF(4, 5);
void o2h__router_vlog(const o2h_router *r, int level, const char *origin, const char *fmt,
                      va_list ap) O2H_PRINTF(4, 0);

/** o2h__router_log, at most once per RATE_LIMIT_SECONDS for `rl`. */
void o2h__router_log_limited(o2h_router *r, rate_limit *rl, int level, const char *origin,
                             const char *fmt, ...) O2H_PRINTF(5, 6);

/** Route one message (takes the reference): local methods, a link, or a counted drop. */
int o2h__router_route(o2h_router *r, o2h_msg *msg);

/** Route what waits in the pending queue (messages sent or received while no handler could run). */
void o2h__router_route_pending(o2h_router *r);

/**
 * Queue a message made here behind what waits in the pending queue: it is
 * routed when the running handler returns, after the next message sent from
 * outside a handler, or at the start of the next poll, whichever comes first.
 */
int o2h__router_send_later(o2h_router *r, o2h_msg *msg);

/** Route a message that came by `from` (NULL: made here), and what handlers send meanwhile. */
int o2h__router_send_from(o2h_router *r, o2h_msg *msg, o2h_link *from);

/** o2h_send for the core's own messages (best effort, now): routed, and written at the
 * end of the current turn, never flushing one of its own. */
int o2h__router_send_internal(o2h_router *r, const char *address, const char *types, ...);

/**
 * An embedder's call outside the loop is a turn of its own (see send.c):
 * begin, route, end; the end writes what the turn queued (the loop's
 * deferred phase) unless a poll, a handler or the deferred phase is running.
 */
void o2h__router_turn_begin(o2h_router *r);
void o2h__router_turn_end(o2h_router *r);

/** Deliver a message to the local provider of `svc` (borrows the message). */
int o2h__dispatch_local(o2h_router *r, service *svc, const o2h_msg *msg, const char *rest);

/** Release dispatch scratch memory. */
void o2h__dispatch_fini(o2h_router *r);

/** Deliver the posted messages from other threads. */
void o2h__router_drain_posts(o2h_router *r);

/** Fill *err with code and a formatted message (no location). */
int o2h__error_set(o2h_error *err, int code, const char *fmt, ...) O2H_PRINTF(3, 4);

#endif
