#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "router.h"

const char *o2h_log_level_name(int level) {
    switch (level) {
    case O2H_LOG_ERROR: return "error";
    case O2H_LOG_WARN: return "warn";
    case O2H_LOG_INFO: return "info";
    default: return "debug";
    }
}

void o2h__router_vlog(const o2h_router *r, int level, const char *origin, const char *fmt,
                      va_list ap) {
    if (level > r->log_level) return;
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    if (r->log) {
        r->log(r->log_ctx, level, origin, text);
        return;
    }
    /* One fprintf per line so lines from several routers do not interleave mid-line. */
    fprintf(stderr, "o2hub[%s] %s %s: %s\n", r->ensemble, o2h_log_level_name(level), origin, text);
}

void o2h__router_log(const o2h_router *r, int level, const char *origin, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    o2h__router_vlog(r, level, origin, fmt, ap);
    va_end(ap);
}

int o2h__error_set(o2h_error *err, int code, const char *fmt, ...) {
    if (!err) return code;
    memset(err, 0, sizeof *err);
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

void o2h__router_log_limited(o2h_router *r, rate_limit *rl, int level, const char *origin,
                             const char *fmt, ...) {
    double now = o2h_local_time(r);
    if (rl->logged && now - rl->last < RATE_LIMIT_SECONDS) {
        rl->suppressed++;
        return;
    }
    char text[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (rl->suppressed)
        o2h__router_log(r, level, origin, "%s (and %llu more like it since the last such line)",
                        text, (unsigned long long)rl->suppressed);
    else
        o2h__router_log(r, level, origin, "%s", text);
    rl->logged = true;
    rl->last = now;
    rl->suppressed = 0;
}
