/*
 * o2ctl — a command-line O2 process (embedding libo2hub): send a message,
 * offer a service and print what it receives, tap a service, list the
 * ensemble's services, print the ensemble's time.
 *
 * It joins an ensemble like any O2 process: tcp and udp transports, then
 * ZeroConf (dnssd, where avahi-daemon runs) and broadcast discovery, or with
 * --peer static discovery of the given processes, or with --hub every
 * process the given one knows (O2's hub discovery). Its plugins are linked in
 * (libo2hub_linked_plugins): it needs no plugin folder.
 */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <o2hub/linked_plugins.h>
#include <o2hub/o2hub.h>

#include "o2ctl.h"
#include "tool_defaults.h"

typedef struct app {
    options o;
    o2h_router *r;
    const char *service; /* dump/tap: the service named on the command line */
    char tapper[64];
    long printed;
    double known_at; /* --until: when the service and peers were first all known */
} app;

/* Set by SIGINT/SIGTERM; the router is woken so that its poll returns. */
static volatile sig_atomic_t interrupted;
static o2h_router *volatile signal_router;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
    if (signal_router) o2h_router_wake(signal_router);
}

static const char *status_name(int status) {
    static const char *const names[] = {"LOCAL_NOTIME",  "REMOTE_NOTIME", "BRIDGE_NOTIME",
                                        "TO_OSC_NOTIME", "LOCAL",         "REMOTE",
                                        "BRIDGE",        "TO_OSC",        "TAP"};
    return status >= 0 && status <= 8 ? names[status] : "UNKNOWN";
}

/* ---- Joining the ensemble --------------------------------------------------- */

static int add_plugin(o2h_router *r, const char *kind, const char *type, json_t *cfg) {
    char *text = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    o2h_error err;
    int rc = text ? o2h_router_add_plugin(r, kind, type, text, &err) : O2H_NO_MEMORY;
    free(text);
    if (rc != O2H_OK) {
        char line[1024];
        fprintf(stderr, "o2ctl: %s plugin: %s\n", type,
                rc == O2H_NO_MEMORY ? "out of memory" : o2h_error_format(&err, line, sizeof line));
    }
    return rc;
}

static int start_discovery(app *a) {
    const char *list = o2ctl_discovery_list(&a->o);
    int rc = O2H_OK;
    if (o2ctl_has_word(list, "dnssd")) {
        /* Optional: where avahi-daemon does not run it says so at info level only. */
        o2h_error err;
        int d = o2h_router_add_plugin(a->r, "discovery", "dnssd",
                                      "{\"when_unavailable\": \"info\"}", &err);
        if (d != O2H_OK && d != O2H_PLUGIN_NOT_FOUND) {
            char line[1024];
            fprintf(stderr, "o2ctl: dnssd plugin: %s\n", o2h_error_format(&err, line, sizeof line));
        }
    }
    if (rc == O2H_OK && o2ctl_has_word(list, "broadcast"))
        rc = add_plugin(a->r, "discovery", "broadcast",
                        json_pack("{s:f, s:f}", "interval_min", 0.1, "interval_max", 1.0));
    if (rc == O2H_OK && o2ctl_has_word(list, "static")) {
        if (!a->o.n_peers) {
            fprintf(stderr, "o2ctl: static discovery needs --peer HOST:PORT (or $O2HUB_PEERS)\n");
            return O2H_BAD_ARGS;
        }
        json_t *peers = json_array();
        for (int i = 0; i < a->o.n_peers; i++)
            json_array_append_new(peers, json_string(a->o.peers[i]));
        rc = add_plugin(
            a->r, "discovery", "static",
            json_pack("{s:o, s:f, s:f}", "peers", peers, "interval_min", 0.1, "interval_max", 1.0));
    }
    return rc;
}

static o2h_router *join(app *a) {
    static const o2h_plugin_entry_fn linked[] = O2HUB_LINKED_PLUGINS;
    o2h_router_options opts = {.struct_size = sizeof opts,
                               .ensemble = a->o.ensemble,
                               .log_level = a->o.log_level,
                               .log_level_fixed = true,
                               .linked_plugins = linked};
    o2h_error err;
    o2h_router *r = o2h_router_new(&opts, &err);
    if (!r) {
        char line[1024];
        fprintf(stderr, "o2ctl: %s\n", o2h_error_format(&err, line, sizeof line));
        return NULL;
    }
    int rc = O2H_OK;
    for (int i = 0; i < 2 && rc == O2H_OK; i++)
        rc = add_plugin(r, "transports", i ? "udp" : "tcp",
                        json_pack("{s:s, s:i}", "host", a->o.host, "port", a->o.port));
    if (rc == O2H_OK) rc = o2h_router_start(r);
    a->r = r;
    if (rc == O2H_OK) rc = start_discovery(a);
    if (rc == O2H_OK && a->o.hub && (rc = o2h_router_hub(r, a->o.hub)) != O2H_OK)
        fprintf(stderr, "o2ctl: --hub %s: %s\n", a->o.hub,
                rc == O2H_BAD_ARGS ? "expected IPv4:PORT" : o2h_strerror(rc));
    if (rc != O2H_OK) {
        a->r = NULL;
        o2h_router_free(r);
        return NULL;
    }
    signal_router = r;
    return r;
}

/* "in ensemble "demo" (discovery: dnssd, broadcast)": where a search looked, for errors. */
static const char *where_looked(const app *a, char *buf, size_t size) {
    snprintf(buf, size, "in ensemble \"%s\" (discovery: %s", a->o.ensemble,
             o2ctl_discovery_list(&a->o));
    for (int i = 0; i < a->o.n_peers; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", i ? ", " : "; peers ", a->o.peers[i]);
    }
    size_t used = strlen(buf);
    if (a->o.hub) snprintf(buf + used, size - used, "; hub %s", a->o.hub);
    used = strlen(buf);
    snprintf(buf + used, size - used, ")");
    return buf;
}

/* What to try when nothing was found. */
static void nothing_found_hint(void) {
    fprintf(stderr,
            "o2ctl: is a hub running (bash scripts/run-router.sh)? Another ensemble: -e NAME "
            "or $O2HUB_ENSEMBLE; a process discovery does not reach: --peer HOST:PORT\n");
}

/* Poll until `done(a)` or `limit` seconds or a signal. Returns done(a). */
static bool poll_until(app *a, bool (*done)(app *a), double limit) {
    double end = o2h_local_time(a->r) + limit;
    for (;;) {
        if (done && done(a)) return true;
        double left = end - o2h_local_time(a->r);
        if (left <= 0 || interrupted) return done ? done(a) : false;
        o2h_router_poll(a->r, left > 0.05 ? 50 : (int)(left * 1000) + 1);
    }
}

/* Print one message; `address` replaces the message's own (taps show the tapped service). */
static void print_message(app *a, const o2h_msg *msg, const char *address) {
    if (a->o.json) {
        json_t *o = json_pack("{s:s, s:f, s:s, s:b, s:o}", "address", address, "time",
                              o2h_msg_time(msg), "types", o2h_msg_types(msg), "reliable",
                              o2h_msg_reliable(msg), "args", o2ctl_args_json(msg));
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        if (text) puts(text);
        free(text);
        json_decref(o);
    } else {
        char line[4096];
        o2h_msg_format(msg, line, sizeof line);
        const char *rest = line + strlen(o2h_msg_address(msg));
        printf("%s%s%s\n", address, rest, o2h_msg_reliable(msg) ? "" : " (udp)");
    }
    fflush(stdout);
    a->printed++;
}

static bool enough(app *a) {
    return a->o.count > 0 && a->printed >= a->o.count;
}

static void on_dump(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    app *a = user_data;
    if (!enough(a)) print_message(a, msg, o2h_msg_address(msg));
}

static void on_tap_copy(o2h_router *r, const o2h_msg *msg, const char *types,
                        const o2h_arg *const *argv, int argc, void *user_data) {
    app *a = user_data;
    if (enough(a)) return;
    /* "/tapper/x" -> "/SERVICE/x", as the message was sent */
    const char *addr = o2h_msg_address(msg);
    char address[1024];
    snprintf(address, sizeof address, "%c%s%s", addr[0], a->service, addr + 1 + strlen(a->tapper));
    print_message(a, msg, address);
}

/* Run the loop until --count, --duration or a signal. */
static int receive_loop(app *a) {
    double limit = a->o.duration > 0 ? a->o.duration : 1e12;
    poll_until(a, enough, limit);
    return 0;
}

static bool service_known(app *a) {
    return o2h_status(a->r, a->service) >= 0;
}

static int cmd_dump(app *a, const char *service) {
    a->service = service;
    char path[128];
    snprintf(path, sizeof path, "/%s", service);
    int rc = o2h_service_new(a->r, service);
    if (rc == O2H_OK) rc = o2h_method_new(a->r, path, NULL, on_dump, a, false, false);
    if (rc != O2H_OK) {
        fprintf(stderr, "o2ctl: cannot offer %s: %s\n", service, o2h_strerror(rc));
        return 1;
    }
    const char *name = o2h_router_process_name(a->r);
    fprintf(stderr, "o2ctl: offering %s as %s in ensemble %s\n", service, name ? name : "_o2",
            a->o.ensemble);
    return receive_loop(a);
}

static int cmd_tap(app *a, const char *service) {
    a->service = service;
    snprintf(a->tapper, sizeof a->tapper, "o2ctl%d", (int)getpid());
    char path[80];
    snprintf(path, sizeof path, "/%s", a->tapper);
    int rc = o2h_service_new(a->r, a->tapper);
    if (rc == O2H_OK) rc = o2h_method_new(a->r, path, NULL, on_tap_copy, a, false, false);
    if (rc == O2H_OK) rc = o2h_tap(a->r, service, a->tapper, O2H_TAP_KEEP);
    if (rc != O2H_OK) {
        fprintf(stderr, "o2ctl: cannot tap %s: %s\n", service, o2h_strerror(rc));
        return 1;
    }
    /* The tap travels with our service list: once the provider is known, it knows the tap. */
    if (!poll_until(a, service_known, a->o.wait < 0 ? 5 : a->o.wait)) {
        fprintf(stderr, "o2ctl: tapping %s (no provider yet)\n", service);
    } else {
        fprintf(stderr, "o2ctl: tapping %s\n", service);
    }
    int result = receive_loop(a);
    o2h_untap(a->r, service, a->tapper);
    return result;
}

/* ---- send ------------------------------------------------------------------------- */

static bool service_synced(app *a) {
    return o2h_status(a->r, a->service) >= O2H_STATUS_LOCAL && o2h_time_get(a->r) >= 0;
}

static int cmd_send(app *a, const char *address_arg, const char *types, char **args, int n_args) {
    char address[1024];
    snprintf(address, sizeof address, "%s%s",
             address_arg[0] == '/' || address_arg[0] == '!' ? "" : "/", address_arg);
    char service[128];
    size_t len = strcspn(address + 1, "/");
    if (len == 0 || len >= sizeof service) {
        fprintf(stderr, "o2ctl: \"%s\" is not an O2 address\n", address_arg);
        return 2;
    }
    memcpy(service, address + 1, len);
    service[len] = '\0';
    a->service = service;
    o2h_builder *check = o2h_builder_new(NULL); /* reject bad arguments before waiting */
    bool args_ok = check && o2ctl_add_args(check, types, args, n_args);
    if (check) o2h_builder_free(check);
    if (!args_ok) return 2;
    bool timed = a->o.time != NULL;
    double wait = a->o.wait < 0 ? 5 : a->o.wait;
    if (!poll_until(a, timed ? service_synced : service_known, wait)) {
        char where[512];
        bool missing = o2h_status(a->r, service) < 0;
        fprintf(stderr, "o2ctl: service %s %s within %g s %s; nothing sent\n", service,
                missing ? "not found" : "not clock-synchronised", wait,
                where_looked(a, where, sizeof where));
        if (missing) nothing_found_hint();
        return 1;
    }
    double when = 0;
    if (timed) {
        char *end;
        bool relative = a->o.time[0] == '+';
        when = strtod(a->o.time + relative, &end);
        if (*end) {
            fprintf(stderr, "o2ctl: --time %s is not a number\n", a->o.time);
            return 2;
        }
        if (relative) when += o2h_time_get(a->r);
    }
    o2ctl_add_args(o2h_send_start(a->r), types, args, n_args);
    int rc = o2h_send_finish(a->r, when, address, !a->o.udp);
    if (rc != O2H_OK) {
        fprintf(stderr, "o2ctl: send %s: %s\n", address, o2h_strerror(rc));
        return 1;
    }
    /* Let the transports write it out before the connection closes. */
    poll_until(a, NULL, 0.05);
    if (a->o.json) {
        json_t *o = json_pack("{s:s, s:s, s:f, s:b}", "sent", address, "types", types, "time", when,
                              "reliable", !a->o.udp);
        char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (text) puts(text);
        free(text);
        json_decref(o);
    }
    return 0;
}

/* ---- list ------------------------------------------------------------------------- */

typedef struct listing {
    const options *o;
    json_t *services, *taps;
} listing;

static void collect(void *ctx, const o2h_service_info *info) {
    listing *l = ctx;
    bool internal = info->name[0] == '_' || info->name[0] == '@';
    if (internal && !l->o->all) return;
    if (info->status == O2H_STATUS_TAP) {
        json_array_append_new(l->taps, json_pack("{s:s, s:s, s:s}", "tappee", info->name, "tapper",
                                                 info->tapper, "process", info->process));
        return;
    }
    json_array_append_new(
        l->services,
        json_pack("{s:s, s:s, s:i, s:s, s:i, s:o, s:s}", "name", info->name, "status",
                  status_name(info->status), "status_code", info->status, "process", info->process,
                  "providers", info->providers, "properties",
                  o2ctl_properties_json(info->properties), "properties_raw", info->properties));
}

static int by_name(const void *x, const void *y) {
    json_t *const *a = x, *const *b = y;
    const char *na = json_string_value(json_object_get(*a, "name"));
    const char *nb = json_string_value(json_object_get(*b, "name"));
    if (!na) na = json_string_value(json_object_get(*a, "tappee"));
    if (!nb) nb = json_string_value(json_object_get(*b, "tappee"));
    return strcmp(na ? na : "", nb ? nb : "");
}

static void sort_array(json_t *arr) {
    size_t n = json_array_size(arr);
    json_t **items = malloc((n + 1) * sizeof *items);
    if (!items) return;
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(arr, i));
    qsort(items, n, sizeof *items, by_name);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i]);
    free(items);
}

typedef struct port_search {
    int port;
    bool found;
} port_search;

static void match_port(void *ctx, const o2h_service_info *info) {
    port_search *ps = ctx;
    const char *colon = strrchr(info->name, ':');
    if (info->name[0] == '@' && colon && strtol(colon + 1, NULL, 16) == ps->port) ps->found = true;
}

/* Every --peer is connected (a process "@...:PORT" is known). */
static bool peers_connected(app *a) {
    for (int i = 0; i < a->o.n_peers; i++) {
        const char *colon = strrchr(a->o.peers[i], ':');
        port_search ps = {.port = colon ? atoi(colon + 1) : 0};
        o2h_services_list(a->r, match_port, &ps);
        if (!ps.found) return false;
    }
    return true;
}

/* A peer's services may come a moment after the peer itself: the clock
 * reference's "_cs" among them. */
#define REFERENCE_GRACE_S 0.5

/* --until: the peers are connected, the service is known and, when the
 * ensemble has a reference clock, in sync. No reference yet: wait a little
 * for one before deciding there is none. */
static bool until_known(app *a) {
    int status = o2h_status(a->r, a->o.until);
    if (status < 0 || !peers_connected(a)) return false;
    double now = o2h_local_time(a->r);
    if (a->known_at == 0) a->known_at = now;
    if (o2h_status(a->r, "_cs") < 0) return now - a->known_at > REFERENCE_GRACE_S;
    return status >= O2H_STATUS_LOCAL;
}

static int cmd_list(app *a) {
    double wait = a->o.wait < 0 ? (a->o.until ? 5 : 1) : a->o.wait;
    poll_until(a, a->o.until ? until_known : NULL, wait);
    listing l = {.o = &a->o, .services = json_array(), .taps = json_array()};
    o2h_services_list(a->r, collect, &l);
    sort_array(l.services);
    sort_array(l.taps);
    const char *name = o2h_router_process_name(a->r);
    double t = o2h_time_get(a->r);
    if (a->o.json) {
        json_t *o = json_pack("{s:s, s:s, s:o, s:O, s:O}", "ensemble", a->o.ensemble, "process",
                              name ? name : "_o2", "time", t >= 0 ? json_real(t) : json_null(),
                              "services", l.services, "taps", l.taps);
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        if (text) puts(text);
        free(text);
        json_decref(o);
    } else if (json_array_size(l.services) || json_array_size(l.taps)) {
        printf("%-24s %-14s %-24s %s\n", "SERVICE", "STATUS", "PROCESS", "PROPERTIES");
        size_t i;
        json_t *s;
        json_array_foreach(l.services, i, s) {
            printf("%-24s %-14s %-24s %s\n", json_string_value(json_object_get(s, "name")),
                   json_string_value(json_object_get(s, "status")),
                   json_string_value(json_object_get(s, "process")),
                   json_string_value(json_object_get(s, "properties_raw")));
        }
        json_array_foreach(l.taps, i, s) {
            printf("%-24s %-14s %-24s tapper %s\n", json_string_value(json_object_get(s, "tappee")),
                   "TAP", json_string_value(json_object_get(s, "process")),
                   json_string_value(json_object_get(s, "tapper")));
        }
    }
    fflush(stdout);
    bool none = json_array_size(l.services) == 0 && json_array_size(l.taps) == 0;
    json_decref(l.services);
    json_decref(l.taps);
    char where[512];
    if (a->o.until && o2h_status(a->r, a->o.until) < 0) {
        fprintf(stderr, "o2ctl: service %s not found within %g s %s\n", a->o.until, wait,
                where_looked(a, where, sizeof where));
        nothing_found_hint();
        return 1;
    }
    if (none) {
        fprintf(stderr, "o2ctl: no services found within %g s %s\n", wait,
                where_looked(a, where, sizeof where));
        nothing_found_hint();
        return 1;
    }
    return 0;
}

/* ---- time -------------------------------------------------------------------------- */

static bool synced(app *a) {
    return o2h_time_get(a->r) >= 0;
}

static int cmd_time(app *a) {
    double wait = a->o.wait < 0 ? 5 : a->o.wait;
    if (!poll_until(a, synced, wait)) {
        fprintf(stderr, "o2ctl: no clock sync within %g s (is there a reference clock?)\n", wait);
        return 1;
    }
    double t = o2h_time_get(a->r);
    if (a->o.json) {
        double mean, min;
        bool rtt = o2h_clock_roundtrip(a->r, &mean, &min) == O2H_OK;
        json_t *o = json_pack("{s:f, s:f, s:o, s:o}", "time", t, "local_time", o2h_local_time(a->r),
                              "rtt_mean", rtt ? json_real(mean) : json_null(), "rtt_min",
                              rtt ? json_real(min) : json_null());
        char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (text) puts(text);
        free(text);
        json_decref(o);
    } else {
        printf("%.6f\n", t);
    }
    fflush(stdout);
    return 0;
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    app a = {0};
    options *o = &a.o;
    o->wait = -1;
    o->log_level = O2H_LOG_WARN;
    if (o2ctl_read_environment(o) != 0 || o2ctl_parse_args(argc, argv, o, false) != 0) return 2;
    if (optind >= argc) {
        o2ctl_usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    /* The words after the command, parsed again for options: argv[0] stands in front. */
    int sub_argc = argc - optind;
    char **sub = calloc((size_t)sub_argc + 1, sizeof *sub);
    if (!sub) return 1;
    sub[0] = argv[0];
    for (int i = 1; i < sub_argc; i++)
        sub[i] = argv[optind + i];
    if (o2ctl_parse_args(sub_argc, sub, o, strcmp(cmd, "send") != 0) != 0) return 2;
    if (o->plugin_path) {
        const char *env_path = getenv("O2HUB_PLUGIN_PATH");
        if (env_path && *env_path && o2hub_path_append(&o->plugin_path, env_path)) return 2;
        setenv("O2HUB_PLUGIN_PATH", o->plugin_path, 1);
    }
    /* avahi's compatibility library warns on stderr in every program using it. */
    setenv("AVAHI_COMPAT_NOWARN", "1", 0);
    char **rest = sub + optind;
    int n_rest = sub_argc - optind;
    bool known = strcmp(cmd, "send") == 0 || strcmp(cmd, "dump") == 0 || strcmp(cmd, "tap") == 0 ||
                 strcmp(cmd, "list") == 0 || strcmp(cmd, "time") == 0;
    bool one_service = strcmp(cmd, "dump") == 0 || strcmp(cmd, "tap") == 0;
    if (!known || (strcmp(cmd, "send") == 0 && n_rest < 1) || (one_service && n_rest != 1) ||
        ((strcmp(cmd, "list") == 0 || strcmp(cmd, "time") == 0) && n_rest != 0)) {
        fprintf(stderr, "o2ctl: %s\n", known ? "wrong number of arguments" : "unknown command");
        o2ctl_usage(stderr);
        free(sub);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    a.r = join(&a);
    if (!a.r) {
        free(sub);
        return 1;
    }
    int rc;
    if (strcmp(cmd, "send") == 0)
        rc =
            cmd_send(&a, rest[0], n_rest > 1 ? rest[1] : "", rest + 2, n_rest > 2 ? n_rest - 2 : 0);
    else if (strcmp(cmd, "dump") == 0)
        rc = cmd_dump(&a, rest[0]);
    else if (strcmp(cmd, "tap") == 0)
        rc = cmd_tap(&a, rest[0]);
    else if (strcmp(cmd, "list") == 0)
        rc = cmd_list(&a);
    else
        rc = cmd_time(&a);
    signal_router = NULL;
    o2h_router_free(a.r);
    free(sub);
    free(o->env_peers);
    free(o->plugin_path);
    return rc;
}
