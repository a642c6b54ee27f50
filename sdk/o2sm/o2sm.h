/*
 * o2sm.h — the client of o2hub's shared-memory bridge (the `shm` transport).
 *
 * A thread of the router's own process, or another process on the same
 * machine, connects to a host by the transport's `name` (or its socket
 * path), offers services, installs handlers and sends messages in O2 wire
 * format through a pair of lock-free rings in shared memory. The API follows
 * O2's o2sm (sharedmemclient.h), with the client passed explicitly so that
 * one thread may hold several clients and nothing is global:
 *
 *     o2sm_client *c = o2sm_connect("o2hub-demo", NULL, &err);
 *     o2sm_service_new(c, "synth", NULL);
 *     o2sm_method_new(c, "/synth/note", "if", on_note, state, true, true);
 *     o2sm_send(c, "/ctrl/ready", 0, "i", 1);     // o2sm_send_cmd: reliable
 *     while (running) { o2sm_wait(c, 10); o2sm_poll(c); }
 *     o2sm_finish(c);
 *
 * Messages are built with libo2hub's builder (o2sm_send_start returns it,
 * o2sm_send_finish sends) and read with its reader (handlers get decoded
 * arguments, or use o2h_reader on `msg`).
 *
 * Timed messages are forwarded by the host at once and scheduled here:
 * o2sm_poll delivers a message stamped in the future when o2sm_time_get()
 * reaches its time (a heap ordered by time, then arrival). Without clock
 * sync such messages are dropped and counted, as O2's o2sm does.
 *
 * A client belongs to one thread (the one that calls o2sm_poll). Never call
 * o2sm_connect on the router's own loop thread: the host answers from that
 * loop (the call would wait for connect_timeout_ms and fail).
 */
#ifndef O2SM_H
#define O2SM_H

#include <stdbool.h>
#include <stdint.h>

#include <o2hub/msg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct o2sm_client o2sm_client;

/**
 * A handler. With parse = true, `argv`/`argc` hold the arguments decoded
 * (coerced to the typespec when the method asked for it); else argv is NULL.
 * `types` is the message's type string (without ','). Valid during the call.
 */
typedef void (*o2sm_handler)(o2sm_client *c, const o2h_msg *msg, const char *types,
                             const o2h_arg *const *argv, int argc, void *user_data);

/** Options for o2sm_connect; zero-initialise, set struct_size, then what you need. */
typedef struct o2sm_options {
    uint32_t struct_size;   /**< sizeof(o2sm_options) */
    const char *label;      /**< how the host's logs name this client */
    int connect_timeout_ms; /**< wait for the host's answer; 0 = 5000 */
    int send_wait_ms;       /**< a full ring: wait up to this long for room; 0 = fail at once */
    uint32_t max_timed;     /**< timed messages held for later; 0 = 4096 */
    uint32_t spin_max_ns;   /**< o2sm_wait spins up to this long before sleeping; 0 = 20000 */
} o2sm_options;

/** Counters of one client (o2sm_get_stats). */
typedef struct o2sm_stats {
    uint64_t sent;               /**< messages put in the ring to the host */
    uint64_t send_full;          /**< sends refused with O2H_QUEUE_FULL (ring full) */
    uint64_t received;           /**< messages taken from the ring from the host */
    uint64_t delivered;          /**< handler calls */
    uint64_t dropped_no_handler; /**< no method for the address */
    uint64_t dropped_bad_types;  /**< types did not match (or coerce to) the typespec */
    uint64_t dropped_invalid;    /**< malformed bytes from the ring */
    uint64_t dropped_no_clock;   /**< timed message before clock sync */
    uint64_t dropped_timed_full; /**< more than max_timed messages waiting */
    uint64_t wakeups_sent;       /**< eventfd writes that woke the host */
    uint64_t sleeps;             /**< times o2sm_wait or a send slept on the eventfd */
} o2sm_stats;

/**
 * Connect to the host whose shm transport has this `name` (its socket is
 * /tmp/o2sm-NAME.sock) or, when `name` contains a '/', to the socket at that
 * path. `opts` may be NULL. On failure returns NULL and sets *err
 * (O2H_TCP_CONNECT_FAIL: no host; O2H_QUEUE_FULL: max_clients reached;
 * O2H_BLOCKED: no answer in time; ...).
 */
o2sm_client *o2sm_connect(const char *name, const o2sm_options *opts, int *err);

/** The bridge id the host gave this client (> 0). */
int o2sm_get_id(const o2sm_client *c);

/** The shared-memory segment's name (for diagnostics; it is unlinked when the client leaves). */
const char *o2sm_segment_name(const o2sm_client *c);

/**
 * Offer `service` through the host (other processes see the host offer it).
 * `properties` is NULL or ";attr:value;...". Install handlers with
 * o2sm_method_new.
 */
int o2sm_service_new(o2sm_client *c, const char *service, const char *properties);
int o2sm_service_free(o2sm_client *c, const char *service);

/** Tap `tappee` with this client's service `tapper` (mode: O2H_TAP_KEEP, ...). */
int o2sm_tap(o2sm_client *c, const char *tappee, const char *tapper, int mode);
int o2sm_untap(o2sm_client *c, const char *tappee, const char *tapper);

/**
 * A handler for `path`: "/service" (every message to the service without a
 * more specific method) or "/service/node/...". Exact paths only (no
 * patterns). `typespec` NULL accepts anything; otherwise a message whose
 * types differ is coerced (if `coerce`) or dropped and counted.
 */
int o2sm_method_new(o2sm_client *c, const char *path, const char *typespec, o2sm_handler h,
                    void *user_data, bool coerce, bool parse);

/** The client's builder, reset (like o2_send_start): add arguments with o2h_add_*. */
o2h_builder *o2sm_send_start(o2sm_client *c);

/** Finish the builder's message and send it. O2H_QUEUE_FULL: the ring stayed full. */
int o2sm_send_finish(o2sm_client *c, double time, const char *address, bool reliable);

/** Build and send (best effort / reliable); types as o2h_send: i h f d t s S b c m B T F N I. */
int o2sm_send(o2sm_client *c, const char *address, double time, const char *types, ...);
int o2sm_send_cmd(o2sm_client *c, const char *address, double time, const char *types, ...);

/** Send a finished message (borrowed: still the caller's after the call). */
int o2sm_message_send(o2sm_client *c, const o2h_msg *msg);

/**
 * Deliver what has arrived and the timed messages that are due. Never
 * waits. Returns the number of messages handled, or O2H_TCP_HUP once the
 * host is gone (the client can only be finished then).
 */
int o2sm_poll(o2sm_client *c);

/**
 * Wait until a message arrives, a timed message falls due, or `timeout_ms`
 * passes (0: just look; -1 is refused: waits are bounded). Spins briefly
 * (adaptively, up to spin_max_ns) before sleeping on the eventfd. Returns 1
 * when there is work for o2sm_poll, 0 on timeout, O2H_TCP_HUP if the host left.
 */
int o2sm_wait(o2sm_client *c, int timeout_ms);

/**
 * Ask the host for the status of `service` (enum o2h_status; O2H_STATUS_UNKNOWN
 * when nobody offers it) and wait up to `timeout_ms` for the answer. Messages
 * that arrive meanwhile are delivered as by o2sm_poll. O2H_BLOCKED on timeout.
 */
int o2sm_status(o2sm_client *c, const char *service, int timeout_ms);

/** A descriptor readable when the host wrote to this client (for a poll loop of your own). */
int o2sm_fd(const o2sm_client *c);

/** O2 time (the host's, read from the segment), or -1 before the host has a clock. */
double o2sm_time_get(o2sm_client *c);

/** Seconds on this machine's monotonic clock. */
double o2sm_local_time(void);

/** False once the host is gone. */
bool o2sm_connected(o2sm_client *c);

void o2sm_get_stats(const o2sm_client *c, o2sm_stats *out);

/** Tell the host, close, unmap and free. The host withdraws the services at once. */
int o2sm_finish(o2sm_client *c);

#ifdef __cplusplus
}
#endif
#endif
