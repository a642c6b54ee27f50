/*
 * o2hub — the router daemon: load a JSON config, start its plugins, route
 * messages until SIGINT or SIGTERM.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/o2hub.h>

/* The signal handler needs the router; o2h_router_stop is async-signal-safe. */
static o2h_router *volatile running_router;

static void on_signal(int sig) {
    (void)sig;
    if (running_router) o2h_router_stop(running_router);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: o2hub --config FILE [--check] [--log-level LEVEL] [--plugin-dir DIR]\n"
            "\n"
            "Run an O2 router configured by a JSON file.\n"
            "\n"
            "  -c, --config FILE      the router's JSON configuration (required)\n"
            "  -n, --check            validate the config and load its plugins, then exit\n"
            "  -l, --log-level LEVEL  error, warn, info or debug (overrides the config)\n"
            "  -p, --plugin-dir DIR   also search DIR for plugins (before the install dir)\n"
            "  -h, --help             show this help\n"
            "  -V, --version          show the version\n"
            "\n"
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
    int check;
} options;

static int parse_args(int argc, char **argv, options *o) {
    static const struct option longs[] = {{"config", required_argument, NULL, 'c'},
                                          {"check", no_argument, NULL, 'n'},
                                          {"log-level", required_argument, NULL, 'l'},
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

/* Every counter, so that what was dropped and why is never hidden. */
static void print_stop_line(const o2h_router *r) {
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    char line[1024];
    int used = snprintf(line, sizeof line, "o2hub: stopped;");
    for (int i = 0; i < o2h_stats_count() && used > 0 && (size_t)used < sizeof line; i++) {
        uint64_t v;
        const char *name = o2h_stats_name(i, &st, &v);
        used += snprintf(line + used, sizeof line - (size_t)used, "%s %s %llu", i ? "," : "", name,
                         (unsigned long long)v);
    }
    fprintf(stderr, "%s\n", line);
}

int main(int argc, char **argv) {
    options o = {.log_level = -1};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    if (o.plugin_dir) setenv("O2HUB_PLUGIN_PATH", o.plugin_dir, 1);

    o2h_router_options ro = {.struct_size = sizeof ro, .log_level = O2H_LOG_WARN};
    if (o.log_level >= 0) {
        ro.log_level = o.log_level;
        ro.log_level_fixed = true;
    }
    o2h_error err;
    o2h_router *r = o2h_router_new_from_file(o.config, &ro, &err);
    if (!r) {
        char line[1024];
        fprintf(stderr, "o2hub: %s\n", o2h_error_format(&err, line, sizeof line));
        return 1;
    }
    if (o.check) {
        printf("%s: OK (ensemble \"%s\")\n", o.config, o2h_router_ensemble(r));
        o2h_router_free(r);
        return 0;
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    running_router = r;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = o2h_router_start(r);
    if (rc != O2H_OK) {
        fprintf(stderr, "o2hub: cannot start: %s\n", o2h_strerror(rc));
        running_router = NULL;
        o2h_router_free(r);
        return 1;
    }
    rc = o2h_router_run(r);
    running_router = NULL;
    print_stop_line(r);
    o2h_router_free(r);
    return rc == O2H_OK ? 0 : 1;
}
