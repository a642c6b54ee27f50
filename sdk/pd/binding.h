/*
 * binding.h — the part of the Pd external that knows nothing of Pd: one
 * session (a router, the receivers of a patch, their services), values as
 * numbers and symbols, log lines through a callback. A Max wrapper uses it
 * unchanged (docs/pd.md says what such a wrapper adds).
 */
#ifndef O2HUB_PD_BINDING_H
#define O2HUB_PD_BINDING_H

#include <stdbool.h>
#include <stddef.h>

#include <o2hub/o2hub.h>

/** A value as a patching language has them: a number or a symbol. */
typedef struct o2hb_value {
    char kind;     /**< 'f' number, 's' symbol */
    double f;      /**< when kind == 'f' */
    const char *s; /**< when kind == 's' (owned by the caller, or by the message) */
} o2hb_value;

/** How the session joins: the object's arguments after parsing. */
#define O2HB_MAX_PEERS 8
typedef struct o2hb_join_options {
    const char *ensemble;
    const char *config_file; /**< a router JSON config: everything else is ignored */
    const char *host;        /**< address to bind; NULL: by network level */
    int network_level;       /**< 0: localhost only (127.0.0.1), else every address */
    int port;                /**< TCP and UDP port; 0: any */
    bool clock_reference;    /**< become the ensemble's reference clock */
    const char *discovery;   /**< "broadcast", "static" or "none"; NULL: static with peers */
    const char *peers[O2HB_MAX_PEERS];
    int n_peers;
    int log_level; /**< enum o2h_log_level */
} o2hb_join_options;

typedef struct o2hb_session o2hb_session;
typedef struct o2hb_receiver o2hb_receiver;

/** A log line: `error` true for errors (a Pd error), false for notes. */
typedef void (*o2hb_log_fn)(void *ctx, bool error, const char *text);
/**
 * A message for a receiver: its address ("/svc/a" or "!svc/a"), `values` (n of them; symbols valid
 * only during the call), its O2 timestamp in seconds (0: none).
 */
typedef void (*o2hb_deliver_fn)(void *ctx, const char *address, const o2hb_value *values, int n,
                                double time);

o2hb_session *o2hb_session_new(o2hb_log_fn log, void *log_ctx);
void o2hb_session_free(o2hb_session *s);

/** Create and start the router; receivers already made get their services. */
int o2hb_join(o2hb_session *s, const o2hb_join_options *o);
/** Free the router (receivers stay, waiting for the next join). */
void o2hb_leave(o2hb_session *s);
/** The router, NULL when not joined. */
o2h_router *o2hb_router(o2hb_session *s);
/** The router's fd to poll (-1 when not joined); then o2hb_poll. */
int o2hb_fd(o2hb_session *s);
void o2hb_poll(o2hb_session *s);

/**
 * Check a type string for sending or receiving: NULL when every code is
 * one this binding handles, else `why`, filled with a sentence saying which
 * is not.
 */
const char *o2hb_types_check(const char *types, char *why, size_t size);

/**
 * A receiver for `path` ("/svc" or "/svc/a/b") with `types` (NULL: any
 * arguments, "": none).
 * Its service is offered when the session is joined. A path that conflicts
 * with an active receiver's (one a prefix of the other, or equal with other
 * types) leaves the receiver inactive, with an error logged.
 */
o2hb_receiver *o2hb_receiver_new(o2hb_session *s, o2hb_deliver_fn deliver, void *ctx);
/**
 * Set the address and types; with `activate`, try to activate (true when
 * active). A bad address or type string is logged and leaves none set.
 */
bool o2hb_receiver_set(o2hb_receiver *rc, const char *path, const char *types, bool activate);
/** The address last set (NULL: none). */
const char *o2hb_receiver_path(const o2hb_receiver *rc);
/** Try again with the last address (after a conflict went away). */
bool o2hb_receiver_retry(o2hb_receiver *rc);
void o2hb_receiver_disable(o2hb_receiver *rc);
bool o2hb_receiver_active(const o2hb_receiver *rc);
void o2hb_receiver_free(o2hb_receiver *rc);

/**
 * Send `values` to `path`, coerced to `types` (NULL: numbers as 'f', symbols
 * as 's'). `time` is an O2 time in seconds (0: now). Returns O2H_OK or an
 * error code; the reason goes to the log.
 */
int o2hb_send(o2hb_session *s, const char *path, const char *types, const o2hb_value *values, int n,
              double time, bool reliable);

/** O2 time in seconds, -1 without a clock or when not joined. */
double o2hb_time(o2hb_session *s);

#endif
