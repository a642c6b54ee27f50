/*
 * o2ctl — a command-line O2 process (embedding libo2hub): send a message,
 * offer a service and print what it receives, tap a service, list the
 * ensemble's services, print the ensemble's time.
 *
 * It joins an ensemble like any O2 process: tcp and udp transports, then
 * broadcast discovery (O2's UDP discovery ports on this host) or, with
 * --peer, static discovery of the given processes, or, with --hub, every
 * process the given one knows (O2's hub discovery).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

typedef struct options {
    const char *ensemble;
    const char *peers[16];
    int n_peers;
    const char *hub; /* --hub: find processes through this one as O2's o2_hub does */
    const char *host;
    int port;
    bool udp;
    const char *time; /* as given: "T" or "+D" */
    double wait;      /* < 0: the command's default */
    const char *until;
    long count;
    double duration;
    bool json;
    bool all;
    int log_level;
} options;

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

static void usage(FILE *out) {
    fprintf(out,
            "usage: o2ctl [OPTIONS] COMMAND [ARGS...]\n"
            "\n"
            "Commands:\n"
            "  send ADDRESS [TYPES [ARGS...]]  send one message (reliable unless --udp)\n"
            "  dump SERVICE                    offer SERVICE and print every message to it\n"
            "  tap SERVICE                     tap SERVICE and print the copies\n"
            "  list                            services: status, process, properties; taps\n"
            "  time                            the ensemble's (synchronised) time\n"
            "\n"
            "Options:\n"
            "  -e, --ensemble NAME   ensemble to join (default $O2HUB_ENSEMBLE, else \"o2hub\")\n"
            "  -p, --peer HOST:PORT  find processes through this one (static discovery;\n"
            "                        repeatable); without it or --hub: broadcast discovery\n"
            "      --hub HOST:PORT   find every process this one knows (O2's hub discovery)\n"
            "  -H, --host ADDR       address to bind (default 0.0.0.0)\n"
            "  -P, --port N          our TCP and UDP port (default: any)\n"
            "  -u, --udp             send: best effort instead of reliable\n"
            "  -t, --time T          send: timestamp T (O2 time), or +D for D seconds from now\n"
            "  -w, --wait S          list: discovery window (default 1 s); other commands: the\n"
            "                        longest wait for the service or clock (default 5 s)\n"
            "  -U, --until SERVICE   list: stop waiting as soon as SERVICE is known\n"
            "  -n, --count N         dump, tap: exit after N messages\n"
            "  -d, --duration S      dump, tap: exit after S seconds\n"
            "  -j, --json            JSON output (one object per line for dump and tap)\n"
            "  -a, --all             list: also the internal services (_o2, _cs, @process)\n"
            "  -l, --log-level L     error, warn, info or debug (default warn)\n"
            "      --plugin-dir DIR  also search DIR for plugins\n"
            "  -h, --help, -V, --version\n"
            "\n"
            "Types for send: i h f d t s S c m B T F N I [ ] and b (hex bytes); T F N I [ ]\n"
            "take no argument. Exit status: 0 ok, 1 failure, 2 bad usage.\n");
}

static int parse_level(const char *text) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(text, names[i]) == 0) return i;
    return -1;
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

static o2h_router *join(app *a) {
    o2h_router_options opts = {.struct_size = sizeof opts,
                               .ensemble = a->o.ensemble,
                               .log_level = a->o.log_level,
                               .log_level_fixed = true};
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
    if (rc == O2H_OK) {
        if (a->o.n_peers) {
            json_t *peers = json_array();
            for (int i = 0; i < a->o.n_peers; i++)
                json_array_append_new(peers, json_string(a->o.peers[i]));
            rc = add_plugin(r, "discovery", "static",
                            json_pack("{s:o, s:f, s:f}", "peers", peers, "interval_min", 0.1,
                                      "interval_max", 1.0));
        } else if (!a->o.hub) {
            rc = add_plugin(r, "discovery", "broadcast",
                            json_pack("{s:f, s:f}", "interval_min", 0.1, "interval_max", 1.0));
        }
    }
    if (rc == O2H_OK && a->o.hub && (rc = o2h_router_hub(r, a->o.hub)) != O2H_OK)
        fprintf(stderr, "o2ctl: --hub %s: %s\n", a->o.hub,
                rc == O2H_BAD_ARGS ? "expected IPv4:PORT" : o2h_strerror(rc));
    if (rc != O2H_OK) {
        o2h_router_free(r);
        return NULL;
    }
    signal_router = r;
    return r;
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

/* ---- Message output (dump, tap) ----------------------------------------------- */

static json_t *vector_json(const o2h_vector *v) {
    json_t *arr = json_array();
    for (int32_t k = 0; k < v->len; k++) {
        switch (v->type) {
        case 'i': json_array_append_new(arr, json_integer(((const int32_t *)v->data)[k])); break;
        case 'h': json_array_append_new(arr, json_integer(((const int64_t *)v->data)[k])); break;
        case 'f': json_array_append_new(arr, json_real(((const float *)v->data)[k])); break;
        default: json_array_append_new(arr, json_real(((const double *)v->data)[k])); break;
        }
    }
    return arr;
}

static json_t *arg_json(char t, const o2h_arg *a) {
    char hex[3];
    switch (t) {
    case 'i': return json_integer(a->i);
    case 'h': return json_integer(a->h);
    case 'f': return json_real(a->f);
    case 'd': return json_real(a->d);
    case 't': return json_real(a->t);
    case 's':
    case 'S': return json_string(a->s);
    case 'c': {
        char s[2] = {(char)a->c, 0};
        return json_string(s);
    }
    case 'm': return json_integer(a->m);
    case 'B': return json_boolean(a->B);
    case 'T': return json_true();
    case 'F': return json_false();
    case 'N': return json_null();
    case 'I': return json_string("inf");
    case 'b': {
        json_t *s = json_string("");
        char *text = malloc(2 * (size_t)a->b.size + 1);
        if (!text) return s;
        for (uint32_t k = 0; k < a->b.size; k++) {
            snprintf(hex, sizeof hex, "%02x", a->b.data[k]);
            memcpy(text + 2 * k, hex, 2);
        }
        text[2 * a->b.size] = '\0';
        json_string_set(s, text);
        free(text);
        return s;
    }
    default: return json_null();
    }
}

/* The arguments as JSON values; '[' ... ']' become nested arrays, vectors arrays. */
static json_t *args_json(const o2h_msg *msg) {
    json_t *stack[O2H_MAX_BUNDLE_DEPTH * 4 + 1];
    int depth = 0;
    stack[0] = json_array();
    size_t scratch_size = 2u * msg->length + 64u;
    uint8_t *scratch = malloc(scratch_size);
    o2h_reader rd;
    if (!scratch || o2h_reader_init(&rd, msg, scratch, scratch_size) != O2H_OK) {
        free(scratch);
        return stack[0];
    }
    for (char t; (t = o2h_reader_peek(&rd)) != 0;) {
        o2h_arg a;
        memset(&a, 0, sizeof a);
        if (o2h_reader_next(&rd, t, &a) != O2H_OK) break;
        if (t == '[' && depth + 1 < (int)(sizeof stack / sizeof stack[0])) {
            stack[++depth] = json_array();
        } else if (t == ']' && depth > 0) {
            json_array_append_new(stack[depth - 1], stack[depth]);
            depth--;
        } else {
            json_array_append_new(stack[depth], t == 'v' ? vector_json(&a.v) : arg_json(t, &a));
        }
    }
    while (depth > 0) {
        json_array_append_new(stack[depth - 1], stack[depth]);
        depth--;
    }
    free(scratch);
    return stack[0];
}

/* Print one message; `address` replaces the message's own (taps show the tapped service). */
static void print_message(app *a, const o2h_msg *msg, const char *address) {
    if (a->o.json) {
        json_t *o = json_pack("{s:s, s:f, s:s, s:b, s:o}", "address", address, "time",
                              o2h_msg_time(msg), "types", o2h_msg_types(msg), "reliable",
                              o2h_msg_reliable(msg), "args", args_json(msg));
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

static int hexval(int c) {
    return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

static bool parse_number(const char *text, bool integer, int64_t *i, double *d) {
    char *end;
    errno = 0;
    if (integer) {
        *i = strtoll(text, &end, 0);
    } else {
        *d = strtod(text, &end);
    }
    return *text && !*end && errno == 0;
}

/* Add args[] to the builder as `types` says; false (with a message) on a mistake. */
static bool add_args(o2h_builder *b, const char *types, char **args, int n_args) {
    int k = 0;
    for (const char *t = types; *t; t++) {
        if (strchr("TFNI[]", *t)) {
            if (*t == 'T') o2h_add_true(b);
            if (*t == 'F') o2h_add_false(b);
            if (*t == 'N') o2h_add_nil(b);
            if (*t == 'I') o2h_add_infinitum(b);
            if (*t == '[') o2h_add_start_array(b);
            if (*t == ']') o2h_add_end_array(b);
            continue;
        }
        if (!strchr("ihfdtsScmBb", *t)) {
            fprintf(stderr, "o2ctl: type '%c' is not supported by send\n", *t);
            return false;
        }
        if (k >= n_args) {
            fprintf(stderr, "o2ctl: types \"%s\" need more arguments\n", types);
            return false;
        }
        const char *text = args[k++];
        int64_t i = 0;
        double d = 0;
        bool ok = true;
        switch (*t) {
        case 'i':
            ok = parse_number(text, true, &i, &d) && i >= INT32_MIN && i <= INT32_MAX;
            if (ok) o2h_add_int32(b, (int32_t)i);
            break;
        case 'h':
            ok = parse_number(text, true, &i, &d);
            if (ok) o2h_add_int64(b, i);
            break;
        case 'm':
            ok = parse_number(text, true, &i, &d) && i >= 0 && i <= UINT32_MAX;
            if (ok) o2h_add_midi(b, (uint32_t)i);
            break;
        case 'f':
            ok = parse_number(text, false, &i, &d);
            if (ok) o2h_add_float(b, (float)d);
            break;
        case 'd':
            ok = parse_number(text, false, &i, &d);
            if (ok) o2h_add_double(b, d);
            break;
        case 't':
            ok = parse_number(text, false, &i, &d);
            if (ok) o2h_add_time(b, d);
            break;
        case 's': o2h_add_string(b, text); break;
        case 'S': o2h_add_symbol(b, text); break;
        case 'c':
            ok = strlen(text) == 1;
            if (ok) o2h_add_char(b, text[0]);
            break;
        case 'B':
            ok = strcmp(text, "true") == 0 || strcmp(text, "false") == 0 ||
                 strcmp(text, "1") == 0 || strcmp(text, "0") == 0;
            if (ok) o2h_add_bool(b, text[0] == 't' || text[0] == '1');
            break;
        case 'b': {
            const char *h = strncmp(text, "0x", 2) == 0 ? text + 2 : text;
            size_t len = strlen(h);
            ok = len % 2 == 0;
            uint8_t *bytes = malloc(len / 2 + 1);
            for (size_t j = 0; ok && bytes && j < len / 2; j++) {
                int hi = hexval((unsigned char)h[2 * j]), lo = hexval((unsigned char)h[2 * j + 1]);
                ok = hi >= 0 && lo >= 0;
                bytes[j] = (uint8_t)(hi * 16 + lo);
            }
            if (ok && bytes) o2h_add_blob(b, bytes, (uint32_t)(len / 2));
            free(bytes);
            break;
        }
        default: break;
        }
        if (!ok) {
            fprintf(stderr, "o2ctl: \"%s\" is not a valid '%c' argument\n", text, *t);
            return false;
        }
    }
    if (k < n_args) {
        fprintf(stderr, "o2ctl: %d argument(s) more than types \"%s\" take\n", n_args - k, types);
        return false;
    }
    return true;
}

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
    bool args_ok = check && add_args(check, types, args, n_args);
    if (check) o2h_builder_free(check);
    if (!args_ok) return 2;
    bool timed = a->o.time != NULL;
    double wait = a->o.wait < 0 ? 5 : a->o.wait;
    if (!poll_until(a, timed ? service_synced : service_known, wait)) {
        fprintf(stderr, "o2ctl: service %s %s within %g s\n", service,
                o2h_status(a->r, service) < 0 ? "not found" : "not clock-synchronised", wait);
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
    add_args(o2h_send_start(a->r), types, args, n_args);
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

/* "a:v;b:w;" (O2's escaping) -> {"a": "v", "b": "w"} */
static json_t *properties_json(const char *props) {
    json_t *obj = json_object();
    const char *p = props ? props : "";
    while (*p) {
        const char *colon = strchr(p, ':');
        if (!colon) break;
        char *key = strndup(p, (size_t)(colon - p));
        char *value = malloc(strlen(colon) + 1), *v = value;
        const char *s = colon + 1;
        for (; *s && *s != ';'; s++) {
            if (*s == '\\' && s[1]) s++;
            *v++ = *s;
        }
        *v = '\0';
        if (key && value) json_object_set_new(obj, key, json_string(value));
        free(key);
        free(value);
        p = *s ? s + 1 : s;
    }
    return obj;
}

static void collect(void *ctx, const o2h_service_info *info) {
    listing *l = ctx;
    bool internal = info->name[0] == '_' || info->name[0] == '@';
    if (internal && !l->o->all) return;
    if (info->status == O2H_STATUS_TAP) {
        json_array_append_new(l->taps, json_pack("{s:s, s:s, s:s}", "tappee", info->name, "tapper",
                                                 info->tapper, "process", info->process));
        return;
    }
    json_array_append_new(l->services, json_pack("{s:s, s:s, s:i, s:s, s:i, s:o, s:s}", "name",
                                                 info->name, "status", status_name(info->status),
                                                 "status_code", info->status, "process",
                                                 info->process, "providers", info->providers,
                                                 "properties", properties_json(info->properties),
                                                 "properties_raw", info->properties));
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
    } else {
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
    json_decref(l.services);
    json_decref(l.taps);
    if (a->o.until && o2h_status(a->r, a->o.until) < 0) {
        fprintf(stderr, "o2ctl: service %s not found within %g s\n", a->o.until, wait);
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

/* Options: before the command, and after it (for send only up to the address). */
static int parse_args(int argc, char **argv, options *o, bool permute) {
    enum { OPT_PLUGIN_DIR = 1000, OPT_HUB };
    static const struct option longs[] = {{"ensemble", required_argument, NULL, 'e'},
                                          {"peer", required_argument, NULL, 'p'},
                                          {"host", required_argument, NULL, 'H'},
                                          {"port", required_argument, NULL, 'P'},
                                          {"udp", no_argument, NULL, 'u'},
                                          {"time", required_argument, NULL, 't'},
                                          {"wait", required_argument, NULL, 'w'},
                                          {"until", required_argument, NULL, 'U'},
                                          {"count", required_argument, NULL, 'n'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"all", no_argument, NULL, 'a'},
                                          {"log-level", required_argument, NULL, 'l'},
                                          {"plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR},
                                          {"hub", required_argument, NULL, OPT_HUB},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    int c;
    /* "+": options end at the first other word, so send's arguments may start with '-'. */
    const char *optstring = permute ? "e:p:H:P:ut:w:U:n:d:jal:hV" : "+e:p:H:P:ut:w:U:n:d:jal:hV";
    optind = 0; /* glibc: start over (this runs twice) */
    while ((c = getopt_long(argc, argv, optstring, longs, NULL)) != -1) {
        switch (c) {
        case 'e': o->ensemble = optarg; break;
        case 'p':
            if (o->n_peers == (int)(sizeof o->peers / sizeof o->peers[0])) return 2;
            o->peers[o->n_peers++] = optarg;
            break;
        case 'H': o->host = optarg; break;
        case 'P': o->port = atoi(optarg); break;
        case 'u': o->udp = true; break;
        case 't': o->time = optarg; break;
        case 'w': o->wait = atof(optarg); break;
        case 'U': o->until = optarg; break;
        case 'n': o->count = atol(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 'j': o->json = true; break;
        case 'a': o->all = true; break;
        case 'l':
            o->log_level = parse_level(optarg);
            if (o->log_level < 0) {
                fprintf(stderr, "o2ctl: unknown log level \"%s\"\n", optarg);
                return 2;
            }
            break;
        case OPT_PLUGIN_DIR: setenv("O2HUB_PLUGIN_PATH", optarg, 1); break;
        case OPT_HUB: o->hub = optarg; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("o2ctl %s\n", o2h_version_string()); exit(0);
        default: usage(stderr); return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    app a = {0};
    options *o = &a.o;
    o->ensemble = getenv("O2HUB_ENSEMBLE");
    if (!o->ensemble || !*o->ensemble) o->ensemble = "o2hub";
    o->host = "0.0.0.0";
    o->wait = -1;
    o->log_level = O2H_LOG_WARN;
    if (parse_args(argc, argv, o, false) != 0) return 2;
    if (optind >= argc) {
        usage(stderr);
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
    if (parse_args(sub_argc, sub, o, strcmp(cmd, "send") != 0) != 0) return 2;
    char **rest = sub + optind;
    int n_rest = sub_argc - optind;
    bool known = strcmp(cmd, "send") == 0 || strcmp(cmd, "dump") == 0 || strcmp(cmd, "tap") == 0 ||
                 strcmp(cmd, "list") == 0 || strcmp(cmd, "time") == 0;
    bool one_service = strcmp(cmd, "dump") == 0 || strcmp(cmd, "tap") == 0;
    if (!known || (strcmp(cmd, "send") == 0 && n_rest < 1) || (one_service && n_rest != 1) ||
        ((strcmp(cmd, "list") == 0 || strcmp(cmd, "time") == 0) && n_rest != 0)) {
        fprintf(stderr, "o2ctl: %s\n", known ? "wrong number of arguments" : "unknown command");
        usage(stderr);
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
    return rc;
}
