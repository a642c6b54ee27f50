/*
 * The o2hub daemon's log sink, set as the router's log callback (o2h_log_fn):
 * every line gets a UTC timestamp, or is one JSON object, or goes to the
 * journal with a "<N>" priority prefix, or to syslog(3). Its state is this
 * struct, owned by main: nothing global.
 */
#ifndef O2HUB_DAEMON_LOG_H
#define O2HUB_DAEMON_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum daemon_log_format { DAEMON_LOG_TEXT, DAEMON_LOG_JSON };

typedef struct daemon_log {
    int format;        /* enum daemon_log_format */
    bool journal;      /* stderr is the journal (JOURNAL_STREAM): "<N>" prefixes, no time */
    bool syslog;       /* --log-syslog: syslog(3) instead of stderr */
    char ensemble[64]; /* "" until the config has been read */
    FILE *out;         /* stderr */
} daemon_log;

/** "text" or "json" into enum daemon_log_format; -1 for anything else. */
int daemon_log_parse_format(const char *text);

/** Set up the sink: the journal is detected from JOURNAL_STREAM and stderr. */
void daemon_log_init(daemon_log *l, int format, bool use_syslog);

/** The router's o2h_log_fn: `ctx` is the daemon_log. */
void daemon_log_line(void *ctx, int level, const char *origin, const char *text);

/**
 * A line with structured fields: `json_fields` is "" or members to append
 * to the JSON object (`"a":1,"b":"x"`, no leading comma); text formats
 * print only `text`.
 */
void daemon_log_event(daemon_log *l, int level, const char *origin, const char *text,
                      const char *json_fields);

/** Write `s` as a quoted JSON string into out (always terminated, cut to fit). */
void daemon_log_json_string(char *out, size_t size, const char *s);

/** Close syslog if it was opened. */
void daemon_log_fini(daemon_log *l);

#endif
