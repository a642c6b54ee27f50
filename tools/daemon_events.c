/* The daemon's own lines: the stop line, and what a reload did (daemon_events.h). */
#include "daemon_events.h"

#include <stdint.h>
#include <stdio.h>

/* Every counter, so that what was dropped and why is never hidden. */
void daemon_log_stop_line(daemon_log *log, const o2h_router *r) {
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    char line[1024], fields[1024];
    int used = snprintf(line, sizeof line, "stopped;");
    int fused = snprintf(fields, sizeof fields, "\"event\":\"stopped\",\"counters\":{");
    for (int i = 0; i < o2h_stats_count() && used > 0 && (size_t)used < sizeof line; i++) {
        uint64_t v;
        const char *name = o2h_stats_name(i, &st, &v);
        used += snprintf(line + used, sizeof line - (size_t)used, "%s %s %llu", i ? "," : "", name,
                         (unsigned long long)v);
        if (fused > 0 && (size_t)fused < sizeof fields)
            fused += snprintf(fields + fused, sizeof fields - (size_t)fused, "%s\"%s\":%llu",
                              i ? "," : "", name, (unsigned long long)v);
    }
    if (fused > 0 && (size_t)fused + 2 < sizeof fields) {
        fields[fused++] = '}';
        fields[fused] = '\0';
    } else {
        fields[0] = '\0';
    }
    daemon_log_event(log, O2H_LOG_WARN, "o2hub", line, fields);
}

typedef struct reload_ctx {
    daemon_log *log;
    int changed;
} reload_ctx;

static void log_reload_note(void *ctx, const char *key, bool applied, const char *what) {
    reload_ctx *rc = ctx;
    char text[1024], fields[1200], k[300], w[800];
    snprintf(text, sizeof text, "reload: %s: %s%s", key, what, applied ? "" : " (not applied)");
    daemon_log_json_string(k, sizeof k, key);
    daemon_log_json_string(w, sizeof w, what);
    snprintf(fields, sizeof fields, "\"event\":\"reload\",\"key\":%s,\"applied\":%s,\"what\":%s", k,
             applied ? "true" : "false", w);
    daemon_log_event(rc->log, O2H_LOG_WARN, "o2hub", text, fields);
    rc->changed++;
}

/* SIGHUP: the new file is checked whole; a bad one changes nothing. */
void daemon_reload(daemon_log *log, o2h_router *r, const char *path) {
    reload_ctx ctx = {.log = log};
    o2h_error err;
    char line[1200], msg[1100], fields[1300];
    int rc = o2h_router_reload_file(r, path, log_reload_note, &ctx, &err);
    if (rc != O2H_OK) {
        o2h_error_format(&err, msg, sizeof msg);
        snprintf(line, sizeof line, "reload of %s refused, the running config stays: %s", path,
                 msg);
        char m[1200];
        daemon_log_json_string(m, sizeof m, msg);
        snprintf(fields, sizeof fields, "\"event\":\"reload_refused\",\"error\":%s", m);
        daemon_log_event(log, O2H_LOG_ERROR, "o2hub", line, fields);
        return;
    }
    snprintf(line, sizeof line, "reloaded %s: %d change%s", path, ctx.changed,
             ctx.changed == 1 ? "" : "s");
    daemon_log_event(log, O2H_LOG_WARN, "o2hub", line, "\"event\":\"reloaded\"");
}
