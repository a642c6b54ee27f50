/*
 * o2lite.h — a small O2lite client: a device (microcontroller, small process)
 * reaches a whole O2 ensemble through one host process (an o2hub router with
 * O2lite hosting, or a full O2 process that called o2lite_initialize()).
 *
 * The API follows O2's own C o2lite client (src/o2lite.h in rbdannenberg/o2),
 * so O2lite programs port by changing the include line:
 *
 *     o2l_initialize("ensemble");          // discovery of a host (below)
 *     o2l_set_services("imu");             // offered through the host
 *     o2l_method_new("/imu/rate", "f", true, on_rate, NULL);
 *     for (;;) {
 *         o2l_poll();
 *         o2l_send_start("/synth/note", 0, "if", false);   // false = UDP
 *         o2l_add_int32(60);
 *         o2l_add_float(0.5f);
 *         o2l_send();
 *     }
 *
 * No malloc anywhere: every buffer is static and sized by the O2L_MAX_*
 * macros below (define them on the compiler command line, the same for every
 * file). One client per program, as in O2: this library models one device, so
 * it is the one place in o2hub where module-level state is accepted.
 *
 * Not re-entrant and not thread-safe: call everything from one thread. A
 * handler may send messages, but must not call o2l_poll().
 *
 * Finding a host: linked with libo2lite_dnssd (pkg-config o2lite-dnssd, where
 * the system has dns_sd.h), a client looks for hosts by ZeroConf (DNS-SD) from
 * o2l_initialize() on, as O2's own o2lite does, with O2's UDP discovery beside
 * it; linked with libo2lite (pkg-config o2lite, nothing but sockets: the one
 * for microcontrollers) it uses UDP discovery alone. o2l_set_host() skips both.
 */
#ifndef O2LITE_H
#define O2LITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef streql
/** O2's own shorthand, which O2lite programs use. */
#define streql(a, b) (strcmp((a), (b)) == 0)
#endif

/** The O2 major/minor version spoken on the wire (hosts must be O2 2.x). */
#define O2L_VERSION 0x020000

/** Largest message sent or received, in bytes from `misc` on (3 buffers of this size). */
#ifndef O2L_MAX_MSG_LEN
#define O2L_MAX_MSG_LEN 1024
#endif
/**
 * Handlers that o2l_method_new() can hold; past it, o2l_method_new returns
 * O2L_FAIL. O2's own o2lite allocates them, so a port of an O2 program may
 * need more (O2's o2liteserv test registers 21): 40 bytes of RAM each.
 */
#ifndef O2L_MAX_METHODS
#define O2L_MAX_METHODS 32
#endif
/** Bytes for the comma-separated service list of o2l_set_services(). */
#ifndef O2L_MAX_SERVICES_LEN
#define O2L_MAX_SERVICES_LEN 128
#endif
/** Type codes of a message started with types == NULL (see o2l_send_start). */
#ifndef O2L_MAX_TYPES
#define O2L_MAX_TYPES 32
#endif

#define O2L_SUCCESS 0
#define O2L_FAIL (-1)
#define O2L_ALREADY_RUNNING (-5)

/** Connection state, see o2l_status(). */
#define O2L_DISCONNECTED 0 /**< looking for a host (discovery) or waiting to retry */
#define O2L_CONNECTING 1   /**< TCP connect under way, or waiting for !_o2/id */
#define O2L_CONNECTED 2    /**< the host gave us a bridge id */
#define O2L_SYNCED 3       /**< connected and the clock is synchronised with the host */

#define O2_UDP_FLAG 0
#define O2_TCP_FLAG 1

/** Time in seconds. O2's o2lite uses float; double costs little and never drifts. */
typedef double o2l_time;

/**
 * An incoming message as handlers see it. `length` (bytes from misc on) is in
 * host order; misc and timestamp are as on the wire (network order): read the
 * timestamp with o2l_get_timestamp(). `address` is NUL-terminated.
 */
typedef struct o2l_msg {
    int32_t length;
    int32_t misc;
    double timestamp;
    char address[];
} o2l_msg, *o2l_msg_ptr;

/** A blob: size in bytes (host order) and the bytes. */
typedef struct o2l_blob {
    int32_t size;
    char data[];
} o2l_blob, *o2l_blob_ptr;

/**
 * A message handler. `types` has no leading ','; `data` points at the first
 * argument. Read arguments in order with o2l_get_*(). The message lives until
 * the handler returns.
 */
typedef void (*o2l_handler)(o2l_msg_ptr msg, const char *types, void *data, void *info);

/**
 * Start the client: open the UDP socket and, unless o2l_set_host() is called
 * next, listen for hosts' `!_o2/dy` on the first free of O2's 16 discovery
 * ports, and (libo2lite_dnssd) browse DNS-SD for them. `ensemble` (at most 63
 * chars) is copied.
 * Returns O2L_SUCCESS, O2L_FAIL or O2L_ALREADY_RUNNING.
 */
int o2l_initialize(const char *ensemble);

/**
 * Connect to a known host instead of discovering one: `ip` is a dotted IPv4
 * address ("127.0.0.1"), `tcp_port` the host's O2 TCP port, `udp_port` its
 * UDP port (0: same as tcp_port). Reconnects after a loss, every second.
 * Call after o2l_initialize(). Returns O2L_SUCCESS or O2L_FAIL.
 */
int o2l_set_host(const char *ip, int tcp_port, int udp_port);

/** Close everything and forget all state (methods, services); o2l_initialize may follow. */
int o2l_finish(void);

/** Do everything: connect, read and dispatch messages, clock pings. Never blocks. */
void o2l_poll(void);

/**
 * Offer services through the host, e.g. "imu" or "imu,led" (names copied; at
 * most O2L_MAX_SERVICES_LEN bytes in all). Sent on every (re)connection;
 * calling it again while connected withdraws names no longer listed.
 */
int o2l_set_services(const char *services);

/**
 * Add a handler. `path` and `typespec` are not copied (pass literals). With
 * `full`, the address must equal `path` (its first character, '/' or '!', is
 * ignored); otherwise `path` may also be a prefix ending where the address
 * continues with '/'. `typespec` (no ',') must equal the message's types, or
 * be NULL to accept any. Newest handlers are tried first.
 * Returns O2L_SUCCESS, or O2L_FAIL when O2L_MAX_METHODS are in use.
 */
int o2l_method_new(const char *path, const char *typespec, bool full, o2l_handler h, void *info);

/**
 * Start a message. `types` (no ',') fixes the arguments to add, and each
 * o2l_add_* is checked against it; with types == NULL the type string is
 * made from the o2l_add_* calls. `tcp`: true = reliable (TCP), false = UDP.
 */
void o2l_send_start(const char *address, o2l_time time, const char *types, bool tcp);
/**
 * Send the message built since o2l_send_start(). Returns O2L_SUCCESS, or
 * O2L_FAIL (not connected, too long, arguments not matching the types).
 */
int o2l_send(void);

void o2l_add_int32(int32_t i);
#define o2l_add_int(i) o2l_add_int32(i)
void o2l_add_int64(int64_t i);
void o2l_add_float(float x);
void o2l_add_double(double x);
void o2l_add_time(double t);
void o2l_add_string(const char *s);
void o2l_add_symbol(const char *s);
void o2l_add_bool(bool b);
void o2l_add_char(char c);
void o2l_add_midi(uint32_t m);
void o2l_add_blob(const o2l_blob *blob);
/** Add a blob from a size and a pointer (no o2l_blob struct needed). */
void o2l_add_blob_data(int32_t size, const void *data);

/**
 * Inside a handler: the next argument. The type must be exactly the one asked
 * for (no coercion, as in O2's o2lite; o2l_get_bool also takes T and F); on a
 * mismatch or past the end the result is 0 / "" / NULL and o2l_get_error()
 * becomes true.
 */
int32_t o2l_get_int32(void);
#define o2l_get_int() o2l_get_int32()
int64_t o2l_get_int64(void);
float o2l_get_float(void);
double o2l_get_double(void);
double o2l_get_time(void);
const char *o2l_get_string(void);
const char *o2l_get_symbol(void);
bool o2l_get_bool(void);
char o2l_get_char(void);
uint32_t o2l_get_midi(void);
/** The blob inside the message (size in host order); valid until the handler returns. */
o2l_blob_ptr o2l_get_blob(void);
/** The message's timestamp (0 = immediate). */
double o2l_get_timestamp(void);
/** True after a failed o2l_get_* in this handler or a failed o2l_add_* in this message. */
bool o2l_get_error(void);

/** Seconds since o2l_initialize(). */
o2l_time o2l_local_time(void);
/** O2 global time, or -1 until the clock is synchronised with the host. */
o2l_time o2l_time_get(void);

/** The bridge id the host gave us, -1 while not connected. */
int o2l_get_bridge_id(void);
/** O2's o2lite has a variable of this name; this reads the same and cannot be assigned. */
#define o2l_bridge_id (o2l_get_bridge_id())
/** O2L_DISCONNECTED, O2L_CONNECTING, O2L_CONNECTED or O2L_SYNCED. */
int o2l_status(void);
/** Incoming messages dropped so far: malformed, too long, or no handler. */
unsigned long o2l_dropped(void);

/* ---- Discovery backends -------------------------------------------------- */

/**
 * A way to find hosts besides the built-in UDP discovery: DNS-SD
 * (o2l_dnssd.h), or a device's own mDNS stack. o2l_poll() calls `poll` every
 * time, `want_host` true while the client has no host (not connected, not
 * connecting, no o2l_set_host()); o2l_finish() calls `finish`. The backend
 * proposes what it finds with o2l_offer_host().
 */
typedef struct o2l_discovery {
    void (*poll)(bool want_host, void *ctx);
    void (*finish)(void *ctx);
    void *ctx;
} o2l_discovery;

/** Install (copied) or remove (NULL) the discovery backend; one at a time. */
int o2l_set_discovery(const o2l_discovery *backend);

/**
 * A host a backend found: IPv4 address in host byte order, TCP and UDP ports.
 * Starts a connection unless the client already has a host or a fixed one,
 * or this host recently failed to answer as an O2lite host would. O2L_SUCCESS
 * if a connection was started, else O2L_FAIL.
 */
int o2l_offer_host(uint32_t ip, int tcp_port, int udp_port);

/** The ensemble given to o2l_initialize(), "" before. */
const char *o2l_ensemble_name(void);

/* ---- lower level: for tests and for custom transports ---------------- */

/** The message built since o2l_send_start(), from misc on, finished as o2l_send would. */
const uint8_t *o2l_message_bytes(size_t *length);
/** Check that `length` bytes (from misc on) are a well-formed O2 message o2lite can read. */
bool o2l_msg_valid(const void *msg, size_t length);
/** Validate and dispatch one incoming message (from misc on), as if it had arrived. */
void o2l_dispatch(const void *msg, size_t length);

#ifdef __cplusplus
}
#endif

#endif
