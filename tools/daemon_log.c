/*
 * Log lines of the o2hub daemon (daemon_log.h). Text lines are
 *
 *     2026-12-02T04:20:15.123Z o2hub[ensemble] warn core: text
 *
 * with the time in UTC, milliseconds, ISO 8601. When stderr is the journal
 * (systemd sets JOURNAL_STREAM to the device and inode of the stream it gave
 * the service) the journal keeps its own time, so lines are "<4>core: text"
 * with the syslog priority in front, as sd-daemon(3) describes; no
 * libsystemd needed. JSON lines are one object each:
 *
 *     {"time":"...","level":"warn","source":"core","ensemble":"e","message":"..."}
 *
 * One fputs per line, so that lines never interleave mid-line.
 */
#include "daemon_log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

int daemon_log_parse_format(const char *text) {
    if (strcmp(text, "text") == 0) return DAEMON_LOG_TEXT;
    if (strcmp(text, "json") == 0) return DAEMON_LOG_JSON;
    return -1;
}

/* Does JOURNAL_STREAM ("DEV:INODE") name the stream stderr is? */
static bool stderr_is_journal(void) {
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
    if (fstat(STDERR_FILENO, &st) != 0) return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void daemon_log_init(daemon_log *l, int format, bool use_syslog) {
    memset(l, 0, sizeof *l);
    l->format = format;
    l->out = stderr;
    l->syslog = use_syslog;
    l->journal = !use_syslog && format == DAEMON_LOG_TEXT && stderr_is_journal();
    if (use_syslog) openlog("o2hub", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void daemon_log_fini(daemon_log *l) {
    if (l->syslog) closelog();
    l->syslog = false;
}

static int syslog_priority(int level) {
    switch (level) {
    case O2H_LOG_ERROR: return LOG_ERR;
    case O2H_LOG_WARN: return LOG_WARNING;
    case O2H_LOG_INFO: return LOG_INFO;
    default: return LOG_DEBUG;
    }
}

static void utc_now(char *out, size_t size) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char secs[24];
    strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%.20s.%03dZ", secs, (int)(ts.tv_nsec / 1000000L) % 1000);
}

void daemon_log_json_string(char *out, size_t size, const char *s) {
    size_t w = 0;
    if (size < 3) {
        if (size) out[0] = '\0';
        return;
    }
    out[w++] = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c && w + 8 < size; c++) {
        if (*c == '"' || *c == '\\') {
            out[w++] = '\\';
            out[w++] = (char)*c;
        } else if (*c == '\n') {
            out[w++] = '\\';
            out[w++] = 'n';
        } else if (*c < 0x20 || *c == 0x7f) {
            w += (size_t)snprintf(out + w, size - w, "\\u%04x", *c);
        } else {
            out[w++] = (char)*c;
        }
    }
    out[w++] = '"';
    out[w] = '\0';
}

void daemon_log_event(daemon_log *l, int level, const char *origin, const char *text,
                      const char *json_fields) {
    if (l->syslog) {
        syslog(syslog_priority(level), "%s: %s", origin, text);
        return;
    }
    char line[8192];
    if (l->format == DAEMON_LOG_JSON) {
        char when[40], msg[4096], src[160], ens[160];
        utc_now(when, sizeof when);
        daemon_log_json_string(msg, sizeof msg, text);
        daemon_log_json_string(src, sizeof src, origin);
        daemon_log_json_string(ens, sizeof ens, l->ensemble);
        bool more = json_fields && json_fields[0];
        snprintf(line, sizeof line,
                 "{\"time\":\"%s\",\"level\":\"%s\",\"source\":%s,\"ensemble\":%s,\"pid\":%ld,"
                 "\"message\":%s%s%s}\n",
                 when, o2h_log_level_name(level), src, ens, (long)getpid(), msg, more ? "," : "",
                 more ? json_fields : "");
    } else if (l->journal) {
        snprintf(line, sizeof line, "<%d>%s: %s\n", syslog_priority(level), origin, text);
    } else {
        char when[40];
        utc_now(when, sizeof when);
        if (l->ensemble[0])
            snprintf(line, sizeof line, "%s o2hub[%s] %s %s: %s\n", when, l->ensemble,
                     o2h_log_level_name(level), origin, text);
        else
            snprintf(line, sizeof line, "%s o2hub %s %s: %s\n", when, o2h_log_level_name(level),
                     origin, text);
    }
    fputs(line, l->out);
    fflush(l->out);
}

void daemon_log_line(void *ctx, int level, const char *origin, const char *text) {
    daemon_log_event(ctx, level, origin, text, "");
}
