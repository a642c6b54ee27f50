#include <stdio.h>

#include "o2hub/types.h"

const char *o2h_strerror(int code) {
    switch (code) {
    case O2H_OK: return "O2H_OK: success";
    case O2H_FAIL: return "O2H_FAIL: failed";
    case O2H_SERVICE_EXISTS: return "O2H_SERVICE_EXISTS: service already exists";
    case O2H_NO_SERVICE: return "O2H_NO_SERVICE: no such service";
    case O2H_NO_MEMORY: return "O2H_NO_MEMORY: out of memory";
    case O2H_ALREADY_RUNNING: return "O2H_ALREADY_RUNNING: already running";
    case O2H_BAD_NAME: return "O2H_BAD_NAME: invalid name";
    case O2H_BAD_TYPE: return "O2H_BAD_TYPE: invalid or incompatible type";
    case O2H_BAD_ARGS: return "O2H_BAD_ARGS: invalid arguments";
    case O2H_TCP_HUP: return "O2H_TCP_HUP: connection closed by peer";
    case O2H_HOSTNAME_TO_NETADDR_FAIL: return "O2H_HOSTNAME_TO_NETADDR_FAIL: cannot resolve host";
    case O2H_TCP_CONNECT_FAIL: return "O2H_TCP_CONNECT_FAIL: connect failed";
    case O2H_NO_CLOCK: return "O2H_NO_CLOCK: timed message but no clock sync";
    case O2H_NO_HANDLER: return "O2H_NO_HANDLER: no handler for address";
    case O2H_INVALID_MSG: return "O2H_INVALID_MSG: malformed message";
    case O2H_SEND_FAIL: return "O2H_SEND_FAIL: send failed";
    case O2H_SOCKET_ERROR: return "O2H_SOCKET_ERROR: socket error";
    case O2H_NOT_INITIALIZED: return "O2H_NOT_INITIALIZED: not initialized";
    case O2H_BLOCKED: return "O2H_BLOCKED: send would block";
    case O2H_NO_PORT: return "O2H_NO_PORT: port not available";
    case O2H_NO_NETWORK: return "O2H_NO_NETWORK: no network";
    case O2H_INTERRUPTED: return "O2H_INTERRUPTED: interrupted";
    case O2H_CONFIG_ERROR: return "O2H_CONFIG_ERROR: configuration error";
    case O2H_PLUGIN_NOT_FOUND: return "O2H_PLUGIN_NOT_FOUND: plugin not found";
    case O2H_PLUGIN_INVALID: return "O2H_PLUGIN_INVALID: not a valid o2hub plugin";
    case O2H_PLUGIN_ABI: return "O2H_PLUGIN_ABI: plugin ABI not compatible";
    case O2H_PLUGIN_FAILED: return "O2H_PLUGIN_FAILED: plugin failed";
    case O2H_QUEUE_FULL: return "O2H_QUEUE_FULL: queue full, item dropped";
    case O2H_TOO_LARGE: return "O2H_TOO_LARGE: exceeds size limit";
    case O2H_NOT_FOUND: return "O2H_NOT_FOUND: not found";
    case O2H_WRONG_THREAD: return "O2H_WRONG_THREAD: called from the wrong thread";
    default: return "unknown error code";
    }
}

const char *o2h_error_format(const o2h_error *err, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    int n = 0;
    if (err->file[0]) {
        if (err->line > 0)
            n = snprintf(buf, size, "%s:%d:%d: ", err->file, err->line, err->column);
        else
            n = snprintf(buf, size, "%s: ", err->file);
    }
    if (n >= 0 && (size_t)n < size && err->key_path[0])
        n += snprintf(buf + n, size - (size_t)n, "%s: ", err->key_path);
    if (n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "%s",
                 err->message[0] ? err->message : o2h_strerror(err->code));
    return buf;
}
