/*
 * o2hub — the router daemon: load a JSON config, start its plugins, route
 * messages until SIGINT or SIGTERM; SIGHUP reads the config again
 * (docs/operations.md).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/o2hub.h>

#include "daemon_events.h"
#include "daemon_log.h"
#include "daemon_signals.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: o2hub --config FILE [--check] [--log-level LEVEL] [--log-format FORMAT]\n"
            "             [--log-syslog] [--plugin-dir DIR]\n"
            "\n"
            "Run an O2 router configured by a JSON file.\n"
            "\n"
            "  -c, --config FILE      the router's JSON configuration (required)\n"
            "  -n, --check            validate the config and load its plugins, then exit\n"
            "  -l, --log-level LEVEL  error, warn, info or debug (overrides the config)\n"
            "      --log-format FMT   text (default: UTC time first; \"<N>\" priorities\n"
            "                         instead when stderr is the journal) or json\n"
            "      --log-syslog       log through syslog(3) instead of stderr\n"
            "  -p, --plugin-dir DIR   also search DIR for plugins (before the install dir)\n"
            "  -h, --help             show this help\n"
            "  -V, --version          show the version\n"
            "\n"
            "SIGINT or SIGTERM stop; SIGHUP reads the config file again.\n"
            "Exit status: 0 on a clean stop, 1 on a config or plugin error, 2 on bad usage.\n");
}

static int parse_level(const char *text) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(text, names[i]) == 0) return i;
    return -1;
}

typedef struct options {
    const char *config;
    const char *plugin_dir;
    int log_level;
    int log_format; /* enum daemon_log_format */
    int log_syslog;
    int check;
} options;

enum { OPT_LOG_FORMAT = 256, OPT_LOG_SYSLOG };

static int parse_args(int argc, char **argv, options *o) {
    static const struct option longs[] = {{"config", required_argument, NULL, 'c'},
                                          {"check", no_argument, NULL, 'n'},
                                          {"log-level", required_argument, NULL, 'l'},
                                          {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
                                          {"log-syslog", no_argument, NULL, OPT_LOG_SYSLOG},
                                          {"plugin-dir", required_argument, NULL, 'p'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:nl:p:hV", longs, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'n': o->check = 1; break;
        case 'p': o->plugin_dir = optarg; break;
        case 'l':
            if ((o->log_level = parse_level(optarg)) < 0) {
                fprintf(stderr, "o2hub: unknown log level \"%s\" (error, warn, info, debug)\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_LOG_FORMAT:
            if ((o->log_format = daemon_log_parse_format(optarg)) < 0) {
                fprintf(stderr, "o2hub: unknown log format \"%s\" (text, json)\n", optarg);
                return 2;
            }
            break;
        case OPT_LOG_SYSLOG: o->log_syslog = 1; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("o2hub %s\n", o2h_version_string()); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !o->config) {
        if (!o->config) fprintf(stderr, "o2hub: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    options o = {.log_level = -1};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    if (o.plugin_dir) setenv("O2HUB_PLUGIN_PATH", o.plugin_dir, 1);

    daemon_log log;
    daemon_log_init(&log, o.log_format, o.log_syslog);
    /* From now on a signal is recorded, never fatal: one sent while the
     * config is read takes effect once the router runs. */
    daemon_signals sig;
    daemon_signals_install(&sig, NULL);
    signal(SIGPIPE, SIG_IGN);
    o2h_router_options ro = {.struct_size = sizeof ro,
                             .log_level = O2H_LOG_WARN,
                             .log = daemon_log_line,
                             .log_ctx = &log};
    if (o.log_level >= 0) {
        ro.log_level = o.log_level;
        ro.log_level_fixed = true;
    }
    o2h_error err;
    o2h_router *r = o2h_router_new_from_file(o.config, &ro, &err);
    if (!r) {
        char line[1024];
        daemon_log_event(&log, O2H_LOG_ERROR, "o2hub", o2h_error_format(&err, line, sizeof line),
                         "");
        daemon_signals_remove(&sig);
        daemon_log_fini(&log);
        return 1;
    }
    snprintf(log.ensemble, sizeof log.ensemble, "%s", o2h_router_ensemble(r));
    if (o.check) {
        printf("%s: OK (ensemble \"%s\")\n", o.config, o2h_router_ensemble(r));
        daemon_signals_remove(&sig);
        o2h_router_free(r);
        daemon_log_fini(&log);
        return 0;
    }

    daemon_signals_attach(&sig, r);
    rc = o2h_router_start(r);
    if (rc != O2H_OK) {
        char line[256];
        snprintf(line, sizeof line, "cannot start: %s", o2h_strerror(rc));
        daemon_log_event(&log, O2H_LOG_ERROR, "o2hub", line, "");
        daemon_signals_remove(&sig);
        o2h_router_free(r);
        daemon_log_fini(&log);
        return 1;
    }
    while (!sig.stop) {
        rc = o2h_router_run(r);
        if (rc != O2H_OK || sig.stop) break;
        if (sig.reload) {
            sig.reload = 0;
            daemon_reload(&log, r, o.config);
        }
    }
    daemon_signals_remove(&sig);
    daemon_log_stop_line(&log, r);
    o2h_router_free(r);
    daemon_log_fini(&log);
    return rc == O2H_OK ? 0 : 1;
}
