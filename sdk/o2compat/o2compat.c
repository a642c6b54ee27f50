/*
 * The classic O2 C API (o2hub/o2.h) on top of libo2hub's public API: the
 * context and the lifecycle (o2_initialize ... o2_finish, o2_poll, o2_run).
 * The other o2compat_*.c files hold the rest, o2compat_internal.h what they
 * share.
 *
 * O2's API has one implicit, global context. This layer therefore keeps ONE
 * pointer, `o2c__the` (hidden in the library), to an o2c_context that owns
 * the o2h_router and all of this layer's state. It is the single exception
 * to o2hub's no-global-state rule, and it lives in this layer only: libo2hub
 * itself stays free of globals, so an O2-style program can still create more
 * routers with the o2h_* API.
 *
 * The context is allocated on first use (so that settings made before
 * o2_initialize, such as o2_network_enable or o2_stop_flag, have a home) and
 * freed by o2_finish.
 */
#include "o2compat_internal.h"

/* THE one global of the compat layer (see the top of this file). */
o2c_context *o2c__the;

o2c_context *o2c__ctx(void) {
    if (!o2c__the) {
        o2c__the = calloc(1, sizeof *o2c__the);
        if (!o2c__the) {
            fprintf(stderr, "o2: out of memory\n");
            abort();
        }
        o2c__the->network_enabled = true;
        o2c__the->internet_enabled = true;
        o2c__the->log_level = O2H_LOG_WARN;
    }
    return o2c__the;
}

void o2c__log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("o2: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int o2c__parse_level(const char *text) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; text && i < 4; i++)
        if (strcmp(text, names[i]) == 0) return i;
    return -1;
}

/* $O2HUB_ALLOW: "net,net" where O2 processes may be (o2h_router_allow). */
static void apply_env_allow(o2h_router *r) {
    const char *env = getenv("O2HUB_ALLOW");
    for (const char *p = env; p && *p;) {
        char net[64];
        size_t n = strcspn(p, ",");
        snprintf(net, sizeof net, "%.*s", (int)(n < sizeof net ? n : sizeof net - 1), p);
        if (net[0] && o2h_router_allow(r, net) != O2H_OK)
            o2c__log("O2HUB_ALLOW: \"%s\" is not a network (e.g. 192.168.1.0/24)", net);
        p += n + (p[n] == ',');
    }
}

static int add_plugin(o2h_router *r, const char *kind, const char *type, const char *json) {
    o2h_error err;
    int rc = o2h_router_add_plugin(r, kind, type, json, &err);
    if (rc != O2H_OK) {
        char line[1024];
        if (rc == O2H_PLUGIN_NOT_FOUND)
            o2c__log("the \"%s\" plugin was not found (searched $O2HUB_PLUGIN_PATH and the "
                     "install dir)",
                     type);
        else
            o2c__log("%s plugin: %s", type, o2h_error_format(&err, line, sizeof line));
    }
    return rc;
}

static bool has_word(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0) return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* Discovery plugins, added once the transports have named the process. */
static int add_discovery(o2c_context *c) {
    const char *list = getenv("O2HUB_DISCOVERY");
    const char *peers = getenv("O2HUB_PEERS");
    if (!list || !*list) list = "dnssd,broadcast";
    char interval[64] = "";
    if (c->discovery_period > 0)
        snprintf(interval, sizeof interval, "\"interval_max\": %g", c->discovery_period);
    if (has_word(list, "dnssd")) {
        /* Optional: used when installed; a missing or failing one is not fatal. */
        o2h_error err;
        int rc = o2h_router_add_plugin(c->r, "discovery", "dnssd", "{}", &err);
        if (rc != O2H_OK && rc != O2H_PLUGIN_NOT_FOUND) {
            char line[1024];
            o2c__log("dnssd discovery unavailable: %s", o2h_error_format(&err, line, sizeof line));
        }
    }
    if (has_word(list, "broadcast")) {
        char json[128];
        snprintf(json, sizeof json, "{%s}", interval);
        if (add_plugin(c->r, "discovery", "broadcast", json) != O2H_OK) return O2_FAIL;
    }
    if (has_word(list, "static") || (peers && *peers)) {
        char json[4096] = "{\"peers\": [";
        char *copy = strdup(peers ? peers : ""), *save = NULL;
        bool first = true;
        for (char *p = copy ? strtok_r(copy, ",", &save) : NULL; p;
             p = strtok_r(NULL, ",", &save)) {
            if (!first) strncat(json, ", ", sizeof json - strlen(json) - 1);
            o2c__append_json_string(json, sizeof json, p);
            first = false;
        }
        free(copy);
        strncat(json, "]", sizeof json - strlen(json) - 1);
        if (interval[0]) {
            strncat(json, ", ", sizeof json - strlen(json) - 1);
            strncat(json, interval, sizeof json - strlen(json) - 1);
        }
        strncat(json, "}", sizeof json - strlen(json) - 1);
        if (add_plugin(c->r, "discovery", "static", json) != O2H_OK) return O2_FAIL;
    }
    return O2_SUCCESS;
}

void o2c__free_snapshot(o2c_context *c) {
    for (int i = 0; i < c->n_list; i++) {
        free(c->list[i].name);
        free(c->list[i].process);
        free(c->list[i].properties);
        free(c->list[i].tapper);
    }
    free(c->list);
    c->list = NULL;
    c->n_list = c->cap_list = 0;
}

static void release_router(o2c_context *c) {
    if (c->builder) o2h_builder_free(c->builder);
    if (c->vbuilder) o2h_builder_free(c->vbuilder);
    if (c->ex_owned) o2h_msg_unref(c->ex_owned);
    c->builder = c->vbuilder = NULL;
    c->ex_owned = NULL;
    c->ex_active = false;
    if (c->r) o2h_router_free(c->r);
    c->r = NULL;
}

O2err o2_initialize(const char *ensemble_name) {
    o2c_context *c = o2c__ctx();
    if (c->r) return O2_ALREADY_RUNNING;
    if (!ensemble_name) return O2_BAD_NAME;
    int level = o2c__parse_level(getenv("O2HUB_LOG_LEVEL"));
    if (level >= 0) c->log_level = level;
    o2h_router_options opts = {
        .struct_size = sizeof opts, .ensemble = ensemble_name, .log_level = c->log_level};
    o2h_error err;
    c->r = o2h_router_new(&opts, &err);
    if (!c->r) {
        char line[1024];
        o2c__log("%s", o2h_error_format(&err, line, sizeof line));
        return err.code == O2H_BAD_NAME ? O2_BAD_NAME : O2_FAIL;
    }
    apply_env_allow(c->r);
    const char *host = getenv("O2HUB_HOST");
    if (!host || !*host) host = c->network_enabled ? "0.0.0.0" : "127.0.0.1";
    const char *port_text = getenv("O2HUB_PORT");
    int port = port_text ? atoi(port_text) : 0;
    char json[256] = "{\"host\": ";
    o2c__append_json_string(json, sizeof json, host);
    snprintf(json + strlen(json), sizeof json - strlen(json), ", \"port\": %d}", port);
    c->builder = o2h_builder_new(o2h_router_pool(c->r));
    c->vbuilder = o2h_builder_new(o2h_router_pool(c->r));
    if (!c->builder || !c->vbuilder || add_plugin(c->r, "transports", "tcp", json) != O2H_OK ||
        add_plugin(c->r, "transports", "udp", json) != O2H_OK || o2h_router_start(c->r) != O2H_OK ||
        add_discovery(c) != O2_SUCCESS) {
        release_router(c);
        return O2_FAIL;
    }
    snprintf(c->ensemble, sizeof c->ensemble, "%s", ensemble_name);
    c->stop_flag = false;
    return O2_SUCCESS;
}

O2err o2_finish(void) {
    if (!o2c__the) return O2_SUCCESS;
    o2c_context *c = o2c__the;
    release_router(c);
    while (c->methods) {
        method_rec *m = c->methods;
        c->methods = m->next;
        o2c__method_rec_free(m);
    }
    o2_sched_flush();
    o2c__free_snapshot(c);
    o2c__frame_free(&c->frame0);
    free(c->ex_scratch);
    free(c->ex_arena);
    free(c);
    o2c__the = NULL;
    return O2_SUCCESS;
}

/* Send the local-time messages whose time has come; returns ms until the next (or -1). */
static int run_local_sched(o2c_context *c) {
    double now = o2h_local_time(c->r);
    while (c->lt_head && c->lt_head->data.timestamp <= now) {
        O2message_ptr m = c->lt_head;
        c->lt_head = m->next;
        m->data.timestamp = 0;
        o2_message_send(m);
    }
    if (!c->lt_head) return -1;
    double wait = (c->lt_head->data.timestamp - now) * 1000.0;
    return wait < 1 ? 1 : (int)wait;
}

O2err o2_poll(void) {
    if (!o2c__the || !o2c__the->r) return O2_NOT_INITIALIZED;
    int rc = o2h_router_poll(o2c__the->r, 0);
    run_local_sched(o2c__the);
    return rc < 0 ? O2_FAIL : O2_SUCCESS;
}

int o2_run(int rate) {
    if (!o2c__the || !o2c__the->r) return O2_NOT_INITIALIZED;
    if (rate <= 0) rate = 1000;
    int period = 1000 / rate;
    if (period < 1) period = 1;
    o2c__the->stop_flag = false;
    while (o2c__the && o2c__the->r && !o2c__the->stop_flag) {
        int next = run_local_sched(o2c__the);
        /* Waits for the router's fd (sockets, timers), so messages are handled at once. */
        o2h_router_poll(o2c__the->r, next >= 0 && next < period ? next : period);
        if (o2c__the && o2c__the->r) run_local_sched(o2c__the);
    }
    return O2_SUCCESS;
}

O2err o2_reset_interrupt_request(void) {
    return O2_SUCCESS;
}

O2err o2_network_enable(bool enable) {
    o2c_context *c = o2c__ctx();
    if (c->r) return O2_ALREADY_RUNNING;
    c->network_enabled = enable;
    return O2_SUCCESS;
}

O2err o2_internet_enable(bool enable) {
    o2c_context *c = o2c__ctx();
    if (c->r) return O2_ALREADY_RUNNING;
    c->internet_enabled = enable;
    return O2_SUCCESS;
}

int o2_memory(void *((*malloc_fn)(size_t size)), void((*free_fn)(void *)), char *first_chunk,
              int64_t size, bool mallocp) {
    (void)malloc_fn;
    (void)free_fn;
    (void)first_chunk;
    (void)size;
    (void)mallocp;
    return o2c__the && o2c__the->r ? O2_ALREADY_RUNNING : O2_SUCCESS;
}

O2time o2_set_discovery_period(O2time period) {
    o2c_context *c = o2c__ctx();
    double old = c->discovery_period > 0 ? c->discovery_period : 4.0;
    if (period > 0) c->discovery_period = period; /* used by plugins added after this */
    return old;
}

/* An IPv4 address (dotted, or a name looked up as O2 does; "" is localhost) in hex. */
static bool ip_to_hex(const char *text, char hex[9]) {
    struct in_addr a;
    if (inet_pton(AF_INET, text, &a) != 1) {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        if (getaddrinfo(*text ? text : "localhost", NULL, &hints, &ai) != 0 || !ai) return false;
        a = ((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
        freeaddrinfo(ai);
    }
    snprintf(hex, 9, "%08x", (unsigned)ntohl(a.s_addr));
    return true;
}

/*
 * As O2's o2_hub: NULL addresses only stop discovery; an address that does
 * not resolve fails before anything changes; otherwise discovery stops, then
 * an incompatible version fails, then the hub is used. The hub's UDP port
 * comes with its own !_o2/dy.
 */
O2err o2_hub(int version, const char *public_ip, const char *internal_ip, int tcp_port,
             int udp_port) {
    (void)udp_port;
    if (!o2c__the || !o2c__the->r) return O2_NOT_INITIALIZED;
    if (!public_ip || !internal_ip) return o2c__err_of(o2h_router_discovery_stop(o2c__the->r));
    char pip[9], iip[9], name[O2_MAX_PROCNAME_LEN];
    if (!ip_to_hex(public_ip, pip) || !ip_to_hex(internal_ip, iip))
        return O2_HOSTNAME_TO_NETADDR_FAIL;
    o2h_router_discovery_stop(o2c__the->r);
    if ((version & 0xff0000) != (O2_VERSION & 0xff0000)) return O2_FAIL;
    if (tcp_port <= 0 || tcp_port > 65535) return O2_BAD_ARGS;
    snprintf(name, sizeof name, "@%s:%s:%04x", pip, iip, (unsigned)tcp_port);
    return o2c__err_of(o2h_router_hub(o2c__the->r, name));
}

/* "@pppppppp:iiiiiiii:tttt" -> parts. */
int o2_parse_name(const char *name, char *public_ip, char *internal_ip, int *port) {
    if (!name || name[0] != '@' || strlen(name) < 20 || name[9] != ':' || name[18] != ':')
        return O2_FAIL;
    char *end;
    long p = strtol(name + 19, &end, 16);
    if (*end || p <= 0 || p > 65535) return O2_FAIL;
    if (public_ip) {
        memcpy(public_ip, name + 1, 8);
        public_ip[8] = '\0';
    }
    if (internal_ip) {
        memcpy(internal_ip, name + 10, 8);
        internal_ip[8] = '\0';
    }
    if (port) *port = (int)p;
    return O2_SUCCESS;
}

O2err o2_get_addresses(const char **public_ip, const char **internal_ip, int *port) {
    if (public_ip) *public_ip = NULL;
    if (internal_ip) *internal_ip = NULL;
    if (port) *port = 0;
    if (!o2c__the || !o2c__the->r) return O2_NOT_INITIALIZED;
    int p;
    if (o2_parse_name(o2h_router_process_name(o2c__the->r), o2c__the->public_ip,
                      o2c__the->internal_ip, &p) != O2_SUCCESS)
        return O2_FAIL;
    if (public_ip) *public_ip = o2c__the->public_ip;
    if (internal_ip) *internal_ip = o2c__the->internal_ip;
    if (port) *port = p;
    return O2_SUCCESS;
}

const char *o2_get_proc_name(void) {
    return o2c__the && o2c__the->r ? o2h_router_process_name(o2c__the->r) : NULL;
}

int o2_version(char *version) {
    if (version)
        sprintf(version, "%d.%d.%d", (O2_VERSION >> 16) & 0xff, (O2_VERSION >> 8) & 0xff,
                O2_VERSION & 0xff);
    return O2_VERSION;
}

void o2_debug_flags(const char *flags) {
    o2c_context *c = o2c__ctx();
    if (!flags || !*flags || strcmp(flags, "-") == 0)
        c->log_level = O2H_LOG_WARN;
    else if (strpbrk(flags, "aA"))
        c->log_level = O2H_LOG_DEBUG;
    else
        c->log_level = O2H_LOG_INFO;
    if (c->r) o2h_router_set_log_level(c->r, c->log_level);
}

bool o2_use_logfile(bool enable) {
    (void)enable;
    return false;
}

const char *o2_logfile_path(const char *path) {
    (void)path;
    return NULL;
}

const char *o2_error_to_string(O2err i) {
    static const char *const text[] = {
        "O2_SUCCESS: success",
        "O2_FAIL: failure",
        "O2_SERVICE_EXISTS: the service already exists here",
        "O2_NO_SERVICE: no such service",
        "O2_NO_MEMORY: out of memory",
        "O2_ALREADY_RUNNING: already initialized",
        "O2_BAD_NAME: invalid name",
        "O2_BAD_TYPE: invalid type",
        "O2_BAD_ARGS: arguments do not match the types",
        "O2_TCP_HUP: TCP connection closed",
        "O2_HOSTNAME_TO_NETADDR_FAIL: cannot resolve host name",
        "O2_TCP_CONNECT_FAIL: TCP connect failed",
        "O2_NO_CLOCK: no clock sync yet",
        "O2_NO_HANDLER: no handler for the address",
        "O2_INVALID_MSG: malformed message",
        "O2_SEND_FAIL: send failed",
        "O2_SOCKET_ERROR: socket error",
        "O2_NOT_INITIALIZED: o2_initialize has not been called",
        "O2_BLOCKED: send would block",
        "O2_NO_PORT: no free port",
        "O2_NO_NETWORK: no network",
        "O2_INTERRUPT_REQUESTED: interrupted",
    };
    int k = -(int)i;
    return k >= 0 && k < (int)(sizeof text / sizeof text[0]) ? text[k] : "unknown O2 error";
}

const char *o2_status_to_string(int status) {
    static const char *const text[] = {"O2_LOCAL_NOTIME",  "O2_REMOTE_NOTIME", "O2_BRIDGE_NOTIME",
                                       "O2_TO_OSC_NOTIME", "O2_LOCAL",         "O2_REMOTE",
                                       "O2_BRIDGE",        "O2_TO_OSC",        "O2_TAP"};
    if (status == O2_UNKNOWN) return "O2_UNKNOWN";
    return status >= 0 && status <= 8 ? text[status] : "unknown status";
}

void o2_message_warnings(void (*warning)(const char *warn, O2msg_data_ptr msg)) {
    (void)warning; /* o2hub counts drops in o2h_stats instead */
}

void o2_drop_message(const char *warn, bool free_the_msg) {
    (void)warn;
    (void)free_the_msg;
}
