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
 * Error codes, as X(NAME, value, text): O2H_NAME is the enum constant,
 * o2h_strerror() gives "O2H_NAME: text" and o2h_err_name() "O2H_NAME". Every
 * function that can fail returns one of these (0 or a negative number).
 * Values -1 .. -21 are O2's own O2err values so that code written against O2
 * reads naturally; o2hub's own codes start at -100.
 */
// clang-format off
#define O2H_ERRORS(X)                                                          \
    X(OK, 0, "success")                                                        \
    X(FAIL, -1, "failed")                                                      \
    X(SERVICE_EXISTS, -2, "service already exists")                            \
    X(NO_SERVICE, -3, "no such service")                                       \
    X(NO_MEMORY, -4, "out of memory")                                          \
    X(ALREADY_RUNNING, -5, "already running")                                  \
    X(BAD_NAME, -6, "invalid name")                                            \
    X(BAD_TYPE, -7, "invalid or incompatible type")                            \
    X(BAD_ARGS, -8, "invalid arguments")                                       \
    X(TCP_HUP, -9, "connection closed by peer")                                \
    X(HOSTNAME_TO_NETADDR_FAIL, -10, "cannot resolve host")                    \
    X(TCP_CONNECT_FAIL, -11, "connect failed")                                 \
    X(NO_CLOCK, -12, "timed message but no clock sync")                        \
    X(NO_HANDLER, -13, "no handler for address")                               \
    X(INVALID_MSG, -14, "malformed message")                                   \
    X(SEND_FAIL, -15, "send failed")                                           \
    X(SOCKET_ERROR, -16, "socket error")                                       \
    X(NOT_INITIALIZED, -17, "not initialized")                                 \
    X(BLOCKED, -18, "send would block")                                        \
    X(NO_PORT, -19, "port not available")                                      \
    X(NO_NETWORK, -20, "no network")                                           \
    X(INTERRUPTED, -21, "interrupted")                                         \
    /* o2hub's own codes */                                                    \
    X(CONFIG_ERROR, -100, "configuration error")                               \
    X(PLUGIN_NOT_FOUND, -101, "plugin not found")                              \
    X(PLUGIN_INVALID, -102, "not a valid o2hub plugin")                        \
    X(PLUGIN_ABI, -103, "plugin ABI not compatible")                           \
    X(PLUGIN_FAILED, -104, "plugin failed")                                    \
    X(QUEUE_FULL, -105, "queue full, item dropped")                            \
    X(TOO_LARGE, -106, "exceeds size limit")                                   \
    X(NOT_FOUND, -107, "not found")                                            \
    X(WRONG_THREAD, -108, "called from the wrong thread")
// clang-format on

#define O2H_ERR_ENUM_(name, value, text) O2H_##name = value,
enum o2h_err { O2H_ERRORS(O2H_ERR_ENUM_) };
#undef O2H_ERR_ENUM_

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

/** The constant's name of an error code ("O2H_NO_SERVICE"), or NULL if unknown. */
O2H_EXPORT const char *o2h_err_name(int code);

/**
 * Format `err` as one line: "FILE:LINE:COL: KEY: MESSAGE" (parts that do not
 * apply are left out). Returns `buf`.
 */
O2H_EXPORT const char *o2h_error_format(const o2h_error *err, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
