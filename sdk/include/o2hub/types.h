/*
 * o2hub/types.h — error codes, status codes and forward declarations shared by
 * every public o2hub header. Included by o2hub.h, msg.h and plugin.h; never
 * needs to be included on its own.
 */
#ifndef O2HUB_TYPES_H
#define O2HUB_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define O2H_EXPORT __attribute__((visibility("default")))
#define O2H_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define O2H_EXPORT
#define O2H_PRINTF(fmt, args)
#endif

/** Library version, as O2 numbers it: 0xMMmmpp. */
#define O2H_VERSION_MAJOR 0
#define O2H_VERSION_MINOR 1
#define O2H_VERSION_PATCH 0

/** The O2 protocol version this router speaks on the wire (O2 2.0.1). */
#define O2H_O2_PROTOCOL_VERSION 0x020001

/**
 * Error codes. Every function that can fail returns one of these (0 or a
 * negative number). Values -1 .. -21 are O2's own O2err values so that code
 * written against O2 reads naturally; o2hub's own codes start at -100.
 */
enum o2h_err {
    O2H_OK = 0,
    O2H_FAIL = -1,
    O2H_SERVICE_EXISTS = -2,
    O2H_NO_SERVICE = -3,
    O2H_NO_MEMORY = -4,
    O2H_ALREADY_RUNNING = -5,
    O2H_BAD_NAME = -6,
    O2H_BAD_TYPE = -7,
    O2H_BAD_ARGS = -8,
    O2H_TCP_HUP = -9,
    O2H_HOSTNAME_TO_NETADDR_FAIL = -10,
    O2H_TCP_CONNECT_FAIL = -11,
    O2H_NO_CLOCK = -12,
    O2H_NO_HANDLER = -13,
    O2H_INVALID_MSG = -14,
    O2H_SEND_FAIL = -15,
    O2H_SOCKET_ERROR = -16,
    O2H_NOT_INITIALIZED = -17,
    O2H_BLOCKED = -18,
    O2H_NO_PORT = -19,
    O2H_NO_NETWORK = -20,
    O2H_INTERRUPTED = -21,
    /* o2hub's own codes */
    O2H_CONFIG_ERROR = -100,     /**< configuration file or value is wrong */
    O2H_PLUGIN_NOT_FOUND = -101, /**< no shared object by that name in the search path */
    O2H_PLUGIN_INVALID = -102,   /**< dlopen failed or the entry symbol is missing */
    O2H_PLUGIN_ABI = -103,       /**< ABI version or struct size not acceptable */
    O2H_PLUGIN_FAILED = -104,    /**< the plugin's create() or start() failed */
    O2H_QUEUE_FULL = -105,       /**< a bounded queue is full; the item was not queued */
    O2H_TOO_LARGE = -106,        /**< a message or value exceeds a limit */
    O2H_NOT_FOUND = -107,        /**< no such method, plugin, key ... */
    O2H_WRONG_THREAD = -108,     /**< called from a thread that does not own the router */
};

/**
 * Service status, O2's O2status values (see o2h_status()). Values >= 0 mean
 * a message can be delivered now; values >= O2H_STATUS_LOCAL mean timed
 * delivery is possible (clocks are synchronised).
 */
enum o2h_status {
    O2H_STATUS_UNKNOWN = -1,
    O2H_STATUS_LOCAL_NOTIME = 0,
    O2H_STATUS_REMOTE_NOTIME = 1,
    O2H_STATUS_BRIDGE_NOTIME = 2,
    O2H_STATUS_TO_OSC_NOTIME = 3,
    O2H_STATUS_LOCAL = 4,
    O2H_STATUS_REMOTE = 5,
    O2H_STATUS_BRIDGE = 6,
    O2H_STATUS_TO_OSC = 7,
    O2H_STATUS_TAP = 8,
};

/** Log levels, most severe first. */
enum o2h_log_level {
    O2H_LOG_ERROR = 0,
    O2H_LOG_WARN = 1,
    O2H_LOG_INFO = 2,
    O2H_LOG_DEBUG = 3,
};

/** Flags in the low byte of a message's misc field. */
#define O2H_FLAG_RELIABLE 0x1u /**< O2_TCP_FLAG: deliver over a reliable path */
#define O2H_FLAG_TAP 0x2u      /**< O2_TAP_FLAG: this message is a tap copy */

typedef struct o2h_router o2h_router;
typedef struct o2h_pool o2h_pool;
typedef struct o2h_builder o2h_builder;
typedef struct o2h_msg o2h_msg;
typedef struct o2h_link o2h_link;
typedef struct o2h_plugin o2h_plugin;
typedef struct o2h_cfg o2h_cfg;
typedef struct o2h_watch o2h_watch;
typedef struct o2h_timer o2h_timer;
typedef struct o2h_plugin_desc o2h_plugin_desc;
/** A plugin's entry function (see plugin.h). */
typedef const o2h_plugin_desc *(*o2h_plugin_entry_fn)(void);

/**
 * A detailed error: filled by functions that read configuration or load
 * plugins, so that callers can print one precise line. `file`, `line`,
 * `column` and `key_path` are empty/zero when they do not apply.
 */
typedef struct o2h_error {
    int code;           /**< one of enum o2h_err */
    int line;           /**< 1-based line in `file`, 0 if unknown */
    int column;         /**< 1-based column in `file`, 0 if unknown */
    char file[256];     /**< the configuration file or plugin path */
    char key_path[128]; /**< e.g. "transports[1].port" */
    char message[512];  /**< human-readable, complete sentence */
} o2h_error;

/** A short English name for an error code ("O2H_NO_SERVICE: no such service"). */
O2H_EXPORT const char *o2h_strerror(int code);

/**
 * Format `err` as one line: "FILE:LINE:COL: KEY: MESSAGE" (parts that do not
 * apply are left out). Returns `buf`.
 */
O2H_EXPORT const char *o2h_error_format(const o2h_error *err, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
