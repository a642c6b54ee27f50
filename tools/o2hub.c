/*
 * o2hub — the router daemon: load a JSON config, start its plugins, route
 * messages until SIGINT or SIGTERM; SIGHUP reads the config again
 * (docs/operations.md).
 */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <o2hub/o2hub.h>
#include <o2hub/plugin.h>

#include "hub_banner.h"
#include "tool_defaults.h"

#define MAX_SETS 64

#include "daemon_events.h"
#include "daemon_log.h"
#include "daemon_signals.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: o2hub --config FILE [OPTIONS]\n"
            "       o2hub --list-plugins [--plugin-dir DIR]...\n"
            "\n"
            "Run an O2 router configured by a JSON file (examples/hub.json: the default hub).\n"
            "\n"
            "  -c, --config FILE      the router's JSON configuration (required)\n"
            "      --check            validate the config and load its plugins, then exit\n"
            "  -e, --ensemble NAME    the ensemble to join (default: $O2HUB_ENSEMBLE, else the\n"
            "                         config's \"ensemble\")\n"
            "  -s, --set KEY=VALUE    override one config value before it is read (repeatable):\n"
            "                         KEY as errors name it, an entry of transports, discovery or\n"
            "                         plugins also by its type (transports.websocket.port=0);\n"
            "                         VALUE is JSON, else a string\n"
            "  -l, --log-level LEVEL  error, warn, info or debug (overrides the config)\n"
            "      --log-format FMT   text (default: UTC time first; \"<N>\" priorities\n"
            "                         instead when stderr is the journal) or json\n"
            "      --log-syslog       log through syslog(3) instead of stderr\n"
            "  -L, --plugin-dir DIR   search DIR for plugins, before $O2HUB_PLUGIN_PATH and the\n"
            "                         install dir (repeatable: searched in the order given)\n"
            "      --list-plugins     list the plugins found (name, kind, ABI and plugin version,\n"
            "                         description, file), then exit\n"
            "  -h, --help             show this help\n"
            "  -V, --version          show the version\n"
            "\n"
            "Plugins are looked for in the config's \"plugin_path\", the --plugin-dir folders,\n"
            "$O2HUB_PLUGIN_PATH (colon-separated), the build's own folders when this o2hub\n"
            "is the one in the build tree, and %s.\n"
            "SIGINT or SIGTERM stop; SIGHUP reads the config file again.\n"
            "Exit status: 0 on a clean stop, 1 on a config or plugin error, 2 on bad usage.\n",
            O2HUB_PLUGIN_DIR);
}

static int parse_level(const char *text) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(text, names[i]) == 0) return i;
    return -1;
}

typedef struct options {
    const char *config;
    char *plugin_path; /* the --plugin-dir folders, then $O2HUB_PLUGIN_PATH, ':'-joined */
    int log_level;
    int log_format; /* enum daemon_log_format */
    int log_syslog;
    int check;
    int list_plugins;
    char *sets[MAX_SETS + 2]; /* "KEY=VALUE", NULL-terminated; ensemble ones made here */
    int n_sets;
} options;

static int add_set(options *o, char *assignment) {
    if (!assignment || o->n_sets == MAX_SETS + 1) {
        fprintf(stderr, "o2hub: too many --set options\n");
        free(assignment);
        return 2;
    }
    o->sets[o->n_sets++] = assignment;
    return 0;
}

/* "ensemble=\"NAME\"": the name as a JSON string, whatever it looks like. */
static char *ensemble_set(const char *name) {
    json_t *s = json_string(name);
    char *value = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    json_decref(s);
    char *out = value ? malloc(strlen(value) + 10) : NULL;
    if (out) sprintf(out, "ensemble=%s", value);
    free(value);
    return out;
}

static int parse_args(int argc, char **argv, options *o) {
    enum { OPT_CHECK = 1000, OPT_LIST_PLUGINS, OPT_LOG_FORMAT, OPT_LOG_SYSLOG };
    static const struct option longs[] = {{"config", required_argument, NULL, 'c'},
                                          {"check", no_argument, NULL, OPT_CHECK},
                                          {"ensemble", required_argument, NULL, 'e'},
                                          {"set", required_argument, NULL, 's'},
                                          {"log-level", required_argument, NULL, 'l'},
                                          {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
                                          {"log-syslog", no_argument, NULL, OPT_LOG_SYSLOG},
                                          {"plugin-dir", required_argument, NULL, 'L'},
                                          {"list-plugins", no_argument, NULL, OPT_LIST_PLUGINS},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    /* $O2HUB_ENSEMBLE first, so that -e and --set given later win. */
    const char *env_ensemble = getenv("O2HUB_ENSEMBLE");
    if (env_ensemble && *env_ensemble && add_set(o, ensemble_set(env_ensemble))) return 2;
    int c;
    while ((c = getopt_long(argc, argv, "c:e:s:l:L:hV", longs, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case OPT_CHECK: o->check = 1; break;
        case OPT_LIST_PLUGINS: o->list_plugins = 1; break;
        case 'e':
            if (add_set(o, ensemble_set(optarg))) return 2;
            break;
        case 's':
            if (add_set(o, strdup(optarg))) return 2;
            break;
        case 'L':
            if (o2hub_path_append(&o->plugin_path, optarg)) return 2;
            break;
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
        case 'V':
            printf("o2hub %s (plugin ABI %d.%d)\n", o2h_version_string(), O2H_ABI_MAJOR,
                   O2H_ABI_MINOR);
            exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || (!o->config && !o->list_plugins)) {
        if (optind < argc)
            fprintf(stderr, "o2hub: unexpected argument \"%s\"\n", argv[optind]);
        else
            fprintf(stderr, "o2hub: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    const char *env_path = getenv("O2HUB_PLUGIN_PATH");
    if (o->plugin_path && env_path && *env_path && o2hub_path_append(&o->plugin_path, env_path))
        return 2;
    return 0;
}

static void print_plugin(void *ctx, const o2h_plugin_info *p) {
    int *count = ctx;
    char abi[16];
    snprintf(abi, sizeof abi, "%u.%u", p->abi_major, p->abi_minor);
    printf("%-10s %-10s %-4s %-8s %s\n", p->name, p->kind, abi, p->version, p->description);
    printf("%-10s %s%s\n", "", p->file, p->shadowed ? " (not used: one found earlier is)" : "");
    if (p->error) printf("%-10s cannot be used: %s\n", "", p->error);
    (*count)++;
}

static int list_plugins(void) {
    o2h_router_options ro = {.struct_size = sizeof ro, .ensemble = "list"};
    o2h_error err;
    o2h_router *r = o2h_router_new(&ro, &err);
    if (!r) {
        char line[1024];
        fprintf(stderr, "o2hub: %s\n", o2h_error_format(&err, line, sizeof line));
        return 1;
    }
    printf("%-10s %-10s %-4s %-8s %s\n", "NAME", "KIND", "ABI", "VERSION", "DESCRIPTION / FILE");
    int count = 0;
    o2h_router_plugins_list(r, print_plugin, &count);
    o2h_router_free(r);
    if (count == 0) {
        fprintf(stderr,
                "o2hub: no plugins found (searched $O2HUB_PLUGIN_PATH, --plugin-dir and %s)\n",
                O2HUB_PLUGIN_DIR);
        return 1;
    }
    return 0;
}

/*
 * The build tree's plugin folders, searched after $O2HUB_PLUGIN_PATH when this
 * is the o2hub the build made (not an installed copy), so that example configs
 * need no plugin path in the source tree either.
 */
static void add_build_tree_plugins(options *o) {
    char self[PATH_MAX], built[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || !realpath(O2HUB_BUILD_ROOT "/tools/o2hub", built)) return;
    self[n] = '\0';
    if (strcmp(self, built) != 0) return;
    if (!o->plugin_path) {
        const char *env_path = getenv("O2HUB_PLUGIN_PATH");
        if (env_path && *env_path && o2hub_path_append(&o->plugin_path, env_path)) return;
    }
    o2hub_path_append(&o->plugin_path,
                      O2HUB_BUILD_ROOT "/transports:" O2HUB_BUILD_ROOT "/plugins:" O2HUB_BUILD_ROOT
                                       "/examples/plugin-skeleton");
}

int main(int argc, char **argv) {
    options o = {.log_level = -1};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    add_build_tree_plugins(&o);
    if (o.plugin_path) setenv("O2HUB_PLUGIN_PATH", o.plugin_path, 1);
    free(o.plugin_path);
    /* avahi's compatibility library warns on stderr in every program using it. */
    setenv("AVAHI_COMPAT_NOWARN", "1", 0);
    if (o.list_plugins) return list_plugins();

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
                             .log_ctx = &log,
                             .config_set = (const char *const *)o.sets};
    if (o.log_level >= 0) {
        ro.log_level = o.log_level;
        ro.log_level_fixed = true;
    }
    o2h_error err;
    o2h_router *r = o2h_router_new_from_file(o.config, &ro, &err);
    for (int i = 0; i < o.n_sets; i++)
        free(o.sets[i]);
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
    /* What to connect to, for a person; not into a JSON log, the journal or syslog. */
    if (o.log_format == DAEMON_LOG_TEXT && !log.journal && !log.syslog)
        o2hub_print_banner(r, stdout);
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
