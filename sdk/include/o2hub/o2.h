/*
 * o2hub/o2.h — the classic O2 C API (O2 2.0.1's function names, types and
 * constants) on top of libo2hub, so that programs written for O2 compile and
 * run unchanged. Link with libo2hub_o2 (pkg-config o2hub-o2, which also puts
 * this folder on the include path so that `#include "o2.h"` works).
 *
 * What differs from O2 itself:
 *
 * - One implicit context. O2's API is global, so this layer keeps exactly one
 *   static pointer to its state (and the o2h_router inside it). It is the one
 *   exception to o2hub's no-global-state rule; everything else is libo2hub,
 *   where any number of routers can live in one process. As in O2, call these
 *   functions from one thread only.
 * - o2_initialize() creates a router with the tcp and udp transports and
 *   discovery plugins (the "dnssd" plugin when it is installed, and the
 *   "broadcast" plugin, O2's localhost/LAN UDP discovery), found in
 *   $O2HUB_PLUGIN_PATH, then the install dir. Environment variables adjust it:
 *     O2HUB_DISCOVERY   comma list of "dnssd", "broadcast", "static", "none"
 *                       (default "dnssd,broadcast"; a missing dnssd is skipped)
 *     O2HUB_PEERS       "host:port,..." peers for static discovery (implies "static")
 *     O2HUB_PORT        the TCP and UDP port of this process (default: any)
 *     O2HUB_HOST        the address to bind (default 0.0.0.0; 127.0.0.1 after
 *                       o2_network_enable(false))
 *     O2HUB_ALLOW       "net,net" (CIDR) where O2 processes may be; default:
 *                       loopback, private and link-local networks, and this
 *                       machine's own
 *     O2HUB_LOG_LEVEL   error, warn, info or debug
 * - Messages. O2msg_data's header (length, misc, timestamp) is in host byte
 *   order as in O2, but the bytes after it (address, type string, arguments)
 *   are kept in network byte order, as o2hub keeps messages. Read arguments
 *   through argv or o2_extract_start/o2_get_next, not by pointer arithmetic
 *   on the message (o2_msg_data_params points at big-endian data).
 * - O2's global variables are macros here: o2_stop_flag (an lvalue),
 *   o2_clock_is_synchronized, o2_ensemble_name, o2_got_start_array,
 *   o2_got_end_array, o2_gtsched, o2_ltsched.
 * - o2_clock_set(): custom clock callbacks are not supported (a warning is
 *   logged and the router's monotonic clock is used). o2_clock_jump
 *   returns O2_FAIL; o2_time_jump_callback_set is accepted but has no
 *   effect; o2_memory is ignored (O2_MALLOC/O2_FREE are malloc/free).
 * - OSC, HTTP/WebSocket and MQTT are plugins: o2_osc_port_new,
 *   o2_osc_delegate, o2_http_initialize and o2_mqtt_enable load them and
 *   return O2_FAIL (with a log line) when the plugin is not installed.
 */
#ifndef O2HUB_O2_H
#define O2HUB_O2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The O2 version this layer presents (and speaks on the wire). */
#define O2_VERSION 0x020001
/* Features O2 programs test for: o2_hub is there (so O2_NO_HUB is not defined); no shared
 * memory. */
#ifndef O2_NO_SHAREDMEM
#define O2_NO_SHAREDMEM 1
#endif

/* ---- Helpers that O2's o2base.h gives applications ------------------------ */

#define streql(a, b) (strcmp((a), (b)) == 0)
#define O2_MAX_PROCNAME_LEN 32
#define O2_MAX_NAME_LEN 63
#define O2_MALLOC(x) malloc(x)
#define O2_MALLOCNT(n, typ) ((typ *)malloc((n) * sizeof(typ)))
#define O2_MALLOCT(typ) O2_MALLOCNT(1, typ)
#define O2_CALLOC(n, s) calloc((n), (s))
#define O2_CALLOCNT(n, typ) ((typ *)calloc((n), sizeof(typ)))
#define O2_CALLOCT(typ) O2_CALLOCNT(1, typ)
#define O2_FREE(x) free((void *)(x))

/** Sleep for `n` milliseconds. */
O2H_EXPORT void o2_sleep(int n);

/* ---- Return codes and status --------------------------------------------- */

typedef enum {
    O2_SUCCESS = 0,
    O2_FAIL = -1,
    O2_SERVICE_EXISTS = -2,
    O2_NO_SERVICE = -3,
    O2_NO_MEMORY = -4,
    O2_ALREADY_RUNNING = -5,
    O2_BAD_NAME = -6,
    O2_BAD_TYPE = -7,
    O2_BAD_ARGS = -8,
    O2_TCP_HUP = -9,
    O2_HOSTNAME_TO_NETADDR_FAIL = -10,
    O2_TCP_CONNECT_FAIL = -11,
    O2_NO_CLOCK = -12,
    O2_NO_HANDLER = -13,
    O2_INVALID_MSG = -14,
    O2_SEND_FAIL = -15,
    O2_SOCKET_ERROR = -16,
    O2_NOT_INITIALIZED = -17,
    O2_BLOCKED = -18,
    O2_NO_PORT = -19,
    O2_NO_NETWORK = -20,
    O2_INTERRUPT_REQUESTED = -21
} O2err;

typedef enum {
    O2_UNKNOWN = -1,
    O2_LOCAL_NOTIME = 0,
    O2_REMOTE_NOTIME = 1,
    O2_BRIDGE_NOTIME = 2,
    O2_TO_OSC_NOTIME = 3,
    O2_LOCAL = 4,
    O2_REMOTE = 5,
    O2_BRIDGE = 6,
    O2_TO_OSC = 7,
    O2_TAP = 8
} O2status;

/* misc flags */
#define O2_UDP_FLAG 0
#define O2_TCP_FLAG 1
#define O2_TAP_FLAG 2

/* ---- Messages ------------------------------------------------------------- */

typedef double O2time;

/**
 * A message as handlers see it: `length` counts the bytes after itself;
 * misc and timestamp are in host byte order; `address` is followed by the
 * type string and the arguments in network byte order (see the top).
 */
typedef struct O2msg_data {
    int32_t length;
    int32_t misc;
    O2time timestamp;
    char address[];
} O2msg_data, *O2msg_data_ptr;

/** A message owned by the application (from o2_message_finish). */
typedef struct O2message {
    union {
        struct O2message *next;
        int64_t pad_if_needed;
    };
    O2msg_data data;
} O2message, *O2message_ptr;

/** The next 4-byte aligned string after `str` inside a message. */
O2H_EXPORT const char *o2_next_o2string(const char *str);
#define o2_msg_data_types(data) (o2_next_o2string((data)->address) + 1)
#define o2_msg_types(msg) o2_msg_data_types(&(msg)->data)
#define o2_msg_data_params(types) o2_next_o2string((const char *)((intptr_t)(types) & ~3))

typedef struct O2blob {
    uint32_t size;
    char data[4]; /* really `size` bytes */
} O2blob, *O2blob_ptr;

typedef enum {
    O2_INT32 = 'i',
    O2_FLOAT = 'f',
    O2_STRING = 's',
    O2_BLOB = 'b',
    O2_ARRAY_START = '[',
    O2_ARRAY_END = ']',
    O2_INT64 = 'h',
    O2_TIME = 't',
    O2_DOUBLE = 'd',
    O2_SYMBOL = 'S',
    O2_CHAR = 'c',
    O2_MIDI = 'm',
    O2_TRUE = 'T',
    O2_FALSE = 'F',
    O2_NIL = 'N',
    O2_INFINITUM = 'I',
    O2_BOOL = 'B',
    O2_VECTOR = 'v'
} O2type,
    *O2type_ptr;

/**
 * One argument, in host byte order. Strings and blobs are stored inline (the
 * O2arg_ptr points at the characters, or at the blob's size). A vector's
 * `len` counts elements.
 */
typedef union {
    int32_t i32;
    int32_t i;
    int64_t i64;
    int64_t h;
    float f;
    float f32;
    double d;
    double f64;
    char s[4];
    char S[4];
    int c;
    uint32_t m;
    O2time t;
    O2blob b;
    int32_t B;
    struct {
        int32_t len;
        int32_t typ;
        union {
            int32_t *vi;
            int64_t *vh;
            double *vd;
            float *vf;
        };
    } v;
} O2arg, *O2arg_ptr;

/* ---- O2's global variables, as macros over this layer's one context ------- */

O2H_EXPORT bool *o2_stop_flag_ptr(void);
O2H_EXPORT const char *o2_ensemble_name_get(void);
O2H_EXPORT O2arg_ptr o2_array_token(int end);
/** o2_run() returns when this becomes true. */
#define o2_stop_flag (*o2_stop_flag_ptr())
/** The ensemble name, NULL before o2_initialize(). */
#define o2_ensemble_name (o2_ensemble_name_get())
#define o2_got_start_array (o2_array_token(0))
#define o2_got_end_array (o2_array_token(1))
#define o2_clock_is_synchronized (o2_time_get() >= 0)

/* ---- Lifecycle ------------------------------------------------------------ */

#define O2_HANDLER_ARGS                                                                            \
    const O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc, const void *user_data
typedef void (*O2method_handler)(O2_HANDLER_ARGS);

/** Join `ensemble_name`: create the router, load its plugins and start them. */
O2H_EXPORT O2err o2_initialize(const char *ensemble_name);
/** Stop and free everything (o2_initialize may be called again afterwards). */
O2H_EXPORT O2err o2_finish(void);
/** Do all pending work without waiting. */
O2H_EXPORT O2err o2_poll(void);
/** Poll about `rate` times per second (waking at once for messages) until o2_stop_flag. */
O2H_EXPORT int o2_run(int rate);
O2H_EXPORT O2err o2_reset_interrupt_request(void);

/** Before o2_initialize: false binds 127.0.0.1 only. */
O2H_EXPORT O2err o2_network_enable(bool enable);
/** Before o2_initialize: recorded only (o2hub has no STUN; MQTT is a plugin). */
O2H_EXPORT O2err o2_internet_enable(bool enable);
/** Accepted and ignored: the layer uses malloc. */
O2H_EXPORT int o2_memory(void *((*malloc_fn)(size_t size)), void((*free_fn)(void *)),
                         char *first_chunk, int64_t size, bool mallocp);
/** Slowest discovery announcement period (broadcast/static plugins' interval_max). */
O2H_EXPORT O2time o2_set_discovery_period(O2time period);

/**
 * Use the O2 process named by `public_ip` (dotted or a host name, "0.0.0.0" for
 * none), `internal_ip` and `tcp_port` as a hub, as O2 does: this process learns
 * every process the hub knows. Discovery (the plugins of O2HUB_DISCOVERY) stops
 * announcing this process first; with NULL addresses that is all it does.
 * `version` is the hub's O2 version: another major version is O2_FAIL. The
 * hub's UDP port is learned from its answer (`udp_port` is not used).
 * O2_NOT_INITIALIZED before o2_initialize, O2_HOSTNAME_TO_NETADDR_FAIL for an
 * address that does not resolve.
 */
O2H_EXPORT O2err o2_hub(int version, const char *public_ip, const char *internal_ip, int tcp_port,
                        int udp_port);

/** Hex public IP, hex internal IP and TCP port of this process (O2_FAIL before it has a name). */
O2H_EXPORT O2err o2_get_addresses(const char **public_ip, const char **internal_ip, int *port);
/** "@pppppppp:iiiiiiii:pppp", or NULL before the process has a name. */
O2H_EXPORT const char *o2_get_proc_name(void);
/** Split a process name into hex public IP, hex internal IP (9 bytes each) and port. */
O2H_EXPORT int o2_parse_name(const char *name, char *public_ip, char *internal_ip, int *port);
/** O2_VERSION, and "2.0.1" into `version` when not NULL. */
O2H_EXPORT int o2_version(char *version);

/** Any flag turns on info logging; "a" or "A" debug logging. */
O2H_EXPORT void o2_debug_flags(const char *flags);
O2H_EXPORT bool o2_use_logfile(bool enable);
O2H_EXPORT const char *o2_logfile_path(const char *path);
O2H_EXPORT const char *o2_error_to_string(O2err i);
O2H_EXPORT const char *o2_status_to_string(int status);
/** Accepted; o2hub counts dropped messages in its stats instead of calling back. */
O2H_EXPORT void o2_message_warnings(void (*warning)(const char *warn, O2msg_data_ptr msg));
O2H_EXPORT void o2_drop_message(const char *warn, bool free_the_msg);

/* ---- Services, methods, taps, properties ---------------------------------- */

O2H_EXPORT O2err o2_service_new(const char *service_name);
O2H_EXPORT O2err o2_service_free(const char *service_name);
O2H_EXPORT O2err o2_method_new(const char *path, const char *typespec, O2method_handler h,
                               const void *user_data, bool coerce, bool parse);
O2H_EXPORT O2err o2_method_free(const char *path);

typedef enum { TAP_KEEP, TAP_RELIABLE, TAP_BEST_EFFORT } O2tap_send_mode;
O2H_EXPORT O2err o2_tap(const char *tappee, const char *tapper, O2tap_send_mode send_mode);
O2H_EXPORT O2err o2_untap(const char *tappee, const char *tapper);

O2H_EXPORT O2err o2_service_set_property(const char *service, const char *attr, const char *value);
O2H_EXPORT O2err o2_service_property_free(const char *service, const char *attr);

/** Take a snapshot of services and taps for the o2_service_* accessors below. */
O2H_EXPORT O2err o2_services_list(void);
O2H_EXPORT O2err o2_services_list_free(void);
O2H_EXPORT const char *o2_service_name(int i);
O2H_EXPORT int o2_service_type(int i);
O2H_EXPORT const char *o2_service_process(int i);
O2H_EXPORT const char *o2_service_tapper(int i);
O2H_EXPORT const char *o2_service_properties(int i);
/** Unescaped value of `attr` of entry i, to be freed with O2_FREE; NULL if none. */
O2H_EXPORT const char *o2_service_getprop(int i, const char *attr);
/** First entry at or after i whose `attr` matches `value` (":pre", "suf;", ":exact;"), or -1. */
O2H_EXPORT int o2_service_search(int i, const char *attr, const char *value);

O2H_EXPORT int o2_status(const char *service);
O2H_EXPORT O2err o2_can_send(const char *service);

/* ---- Time ----------------------------------------------------------------- */

typedef O2time (*o2_time_callback)(void *rock);
typedef bool (*o2_time_jump_callback)(double local_time, double old_global_time,
                                      double new_global_time);

/** Become the ensemble's reference clock (gettime must be NULL; see the top). */
O2H_EXPORT O2err o2_clock_set(o2_time_callback gettime, void *rock);
O2H_EXPORT O2err o2_time_jump_callback_set(o2_time_jump_callback callback);
O2H_EXPORT O2err o2_clock_jump(double local_time, double global_time, bool adjust);
/** Mean and minimum clock-sync round trip; O2_FAIL (both -1) until known. */
O2H_EXPORT int o2_roundtrip(double *mean, double *min);
/** Global (ensemble) time, or -1 before clock sync. */
O2H_EXPORT O2time o2_time_get(void);
/** Seconds since o2_initialize. */
O2H_EXPORT O2time o2_local_time(void);
/** A monotonic clock in seconds. */
O2H_EXPORT O2time o2_native_time(void);

typedef struct O2sched {
    int which; /* 0: global time, 1: local time */
} O2sched, *O2sched_ptr;
O2H_EXPORT O2sched_ptr o2_sched_get(int which);
#define o2_gtsched (*o2_sched_get(0))
#define o2_ltsched (*o2_sched_get(1))
#define o2_active_sched (o2_sched_get(0))
/** Deliver `msg` at its timestamp on `scheduler`'s clock (takes the message). */
O2H_EXPORT O2err o2_schedule_msg(O2sched_ptr scheduler, O2message_ptr msg);
/** Drop every message waiting on the local-time scheduler. */
O2H_EXPORT O2err o2_sched_flush(void);

/* ---- Sending -------------------------------------------------------------- */

#define O2_MARKER_A ((void *)(uintptr_t)0xdeadbeefdeadbeefULL)
#define O2_MARKER_B ((void *)(uintptr_t)0xf00baa23f00baa23ULL)

/** Use o2_send / o2_send_cmd; the markers catch argument lists that do not fit the types. */
O2H_EXPORT O2err o2_send_marker(const char *path, double time, bool tcp_flag,
                                const char *typestring, ...);
#define o2_send(path, time, ...)                                                                   \
    o2_send_marker(path, time, false, __VA_ARGS__, O2_MARKER_A, O2_MARKER_B)
#define o2_send_cmd(path, time, ...)                                                               \
    o2_send_marker(path, time, true, __VA_ARGS__, O2_MARKER_A, O2_MARKER_B)

/** Send a message from o2_message_finish (takes ownership). */
O2H_EXPORT O2err o2_message_send(O2message_ptr msg);

O2H_EXPORT O2blob_ptr o2_blob_new(uint32_t size);
O2H_EXPORT O2err o2_send_start(void);
O2H_EXPORT O2err o2_add_float(float f);
O2H_EXPORT O2err o2_add_string_or_symbol(O2type tcode, const char *s);
#define o2_add_symbol(s) o2_add_string_or_symbol(O2_SYMBOL, s)
#define o2_add_string(s) o2_add_string_or_symbol(O2_STRING, s)
O2H_EXPORT O2err o2_add_blob(O2blob_ptr b);
O2H_EXPORT O2err o2_add_blob_data(uint32_t size, void *data);
O2H_EXPORT O2err o2_add_int64(int64_t i);
O2H_EXPORT O2err o2_add_double_or_time(O2type tchar, double d);
#define o2_add_double(d) o2_add_double_or_time(O2_DOUBLE, d)
#define o2_add_time(t) o2_add_double_or_time(O2_TIME, t)
O2H_EXPORT O2err o2_add_int32_or_char(O2type tcode, int32_t i);
#define o2_add_int32(i) o2_add_int32_or_char(O2_INT32, i)
#define o2_add_char(c) o2_add_int32_or_char(O2_CHAR, c)
O2H_EXPORT O2err o2_add_midi(uint32_t m);
O2H_EXPORT O2err o2_add_only_typecode(O2type typecode);
#define o2_add_true() o2_add_only_typecode(O2_TRUE)
#define o2_add_false() o2_add_only_typecode(O2_FALSE)
#define o2_add_tf(x) o2_add_only_typecode((x) != 0 ? O2_TRUE : O2_FALSE)
#define o2_add_bool(x) o2_add_int32_or_char(O2_BOOL, (x) != 0)
#define o2_add_nil() o2_add_only_typecode(O2_NIL)
#define o2_add_infinitum() o2_add_only_typecode(O2_INFINITUM)
#define o2_add_start_array() o2_add_only_typecode(O2_ARRAY_START)
#define o2_add_end_array() o2_add_only_typecode(O2_ARRAY_END)
/** `length` elements of `element_type` ('i' 'h' 'f' 'd') from `data`. */
O2H_EXPORT O2err o2_add_vector(O2type element_type, int length, void *data);
/** Add a message to a bundle being built (copied; the caller keeps `msg`). */
O2H_EXPORT O2err o2_add_message(O2message_ptr msg);
/** Finish the message being built; free it with O2_FREE or give it to o2_message_send. */
O2H_EXPORT O2message_ptr o2_message_finish(O2time time, const char *address, bool tcp_flag);
O2H_EXPORT O2message_ptr o2_service_message_finish(O2time time, const char *service,
                                                   const char *address, bool tcp_flag);
O2H_EXPORT O2err o2_send_finish(O2time time, const char *address, bool tcp_flag);

/* ---- Parsing -------------------------------------------------------------- */

/** Begin reading the arguments of `msg`; returns how many there are. */
O2H_EXPORT int o2_extract_start(O2msg_data_ptr msg);
/**
 * The next argument coerced to `type_code`, or NULL. Valid until the next
 * o2_extract_start. Vectors: pass 'v' (len is set) then the element type.
 * Arrays: '[' returns o2_got_start_array, ']' o2_got_end_array.
 */
O2H_EXPORT O2arg_ptr o2_get_next(O2type type_code);

O2H_EXPORT void o2_message_print(O2message_ptr msg);
O2H_EXPORT void o2_msg_data_print(O2msg_data_ptr msg);

/* ---- Bridges, OSC, HTTP, MQTT (plugins) ------------------------------------ */

/** The O2lite host protocol is always on in o2hub: returns O2_SUCCESS. */
O2H_EXPORT O2err o2lite_initialize(void);
/** OSC server on `port_num` forwarding to service_name (the "osc" plugin). */
O2H_EXPORT O2err o2_osc_port_new(const char *service_name, int port_num, bool tcp_flag);
/** Not supported (plugins cannot be unloaded one at a time): O2_FAIL. */
O2H_EXPORT O2err o2_osc_port_free(int port_num);
/** Local service_name whose messages go to an OSC server (the "osc" plugin). */
O2H_EXPORT O2err o2_osc_delegate(const char *service_name, const char *ip, int port_num,
                                 bool tcp_flag);
/** Recorded and returned; the osc plugin computes its own NTP offset. */
O2H_EXPORT uint64_t o2_osc_time_offset(uint64_t offset);
#define O2_NO_HOSTNAME "\001"
/** HTTP server and WebSocket bridge on `port` serving `root` (the "websocket" plugin). */
O2H_EXPORT O2err o2_http_initialize(int port, const char *root);
/** MQTT discovery and forwarding through `broker` (the "mqtt" plugin). */
O2H_EXPORT O2err o2_mqtt_enable(const char *broker, int port_num);
O2H_EXPORT O2err o2_mqtt_can_send(void);

#ifdef __cplusplus
}
#endif
#endif
