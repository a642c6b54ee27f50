/*
 * The classic O2 C API (o2hub/o2.h) on top of libo2hub's public API.
 *
 * O2's API has one implicit, global context. This file therefore keeps ONE
 * static pointer, `the`, to an o2c_context that owns the o2h_router and all of
 * this layer's state. It is the single exception to o2hub's no-global-state
 * rule, and it lives here only: libo2hub itself stays free of globals, so an
 * O2-style program can still create more routers with the o2h_* API.
 *
 * The context is allocated on first use (so that settings made before
 * o2_initialize, such as o2_network_enable or o2_stop_flag, have a home) and
 * freed by o2_finish.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <o2hub/o2.h>
#include <o2hub/o2hub.h>

/* A method installed through o2_method_new: the core calls trampoline() with it. */
typedef struct method_rec {
    struct method_rec *next;
    char *path;
    O2method_handler handler;
    const void *user_data;
    bool parse;
} method_rec;

/* One entry of the o2_services_list snapshot. */
typedef struct svc_entry {
    char *name;
    int type;
    char *process;
    char *properties; /* NULL for taps */
    char *tapper;     /* NULL for services */
} svc_entry;

/* Memory for one handler call: the O2msg_data copy and the O2arg values. */
typedef struct frame {
    uint8_t *wrap;
    size_t wrap_cap;
    uint8_t *arena;
    size_t arena_cap, arena_used;
    O2arg_ptr *argv;
    size_t argv_cap;
} frame;

typedef struct o2c_context {
    o2h_router *r;
    char ensemble[64];
    bool stop_flag;
    bool network_enabled;
    bool internet_enabled;
    int log_level;
    double discovery_period; /* 0: the plugins' default */
    uint64_t osc_time_offset;
    bool warned_clock_callback;

    /* building (o2_send_start ... o2_send_finish) */
    o2h_builder *builder;
    o2h_builder *vbuilder; /* o2_send_marker's, so it never clobbers the other */
    bool building;
    bool is_bundle;

    method_rec *methods;

    /* the handler call in progress */
    int depth;
    frame frame0;
    O2msg_data_ptr cur_data;
    const o2h_msg *cur_msg;

    /* o2_extract_start / o2_get_next */
    o2h_msg *ex_owned; /* a copy made from an O2msg_data that is not the current one */
    o2h_reader rd;
    o2h_reader rd_saved; /* before a vector's first o2_get_next('v') */
    bool ex_active;
    bool vec_pending;
    O2arg *vec_arg;
    uint8_t *ex_scratch;
    size_t ex_scratch_cap;
    uint8_t *ex_arena;
    size_t ex_arena_cap, ex_arena_used;

    /* o2_services_list snapshot */
    svc_entry *list;
    int n_list, cap_list;

    /* o2_schedule_msg(&o2_ltsched, ...): sorted by timestamp, linked by O2message.next */
    O2message_ptr lt_head;

    char public_ip[9], internal_ip[9];
} o2c_context;

/* THE one static pointer of the compat layer (see the top of this file). */
static o2c_context *the;

static o2c_context *ctx(void) {
    if (!the) {
        the = calloc(1, sizeof *the);
        if (!the) {
            fprintf(stderr, "o2: out of memory\n");
            abort();
        }
        the->network_enabled = true;
        the->internet_enabled = true;
        the->log_level = O2H_LOG_WARN;
    }
    return the;
}

static void o2c_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void o2c_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("o2: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int parse_level(const char *text) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; text && i < 4; i++)
        if (strcmp(text, names[i]) == 0) return i;
    return -1;
}

/* ---- Small helpers ---------------------------------------------------------- */

/* o2hub's codes -1..-21 are O2's; its own (-100 and below) become the nearest O2 code. */
static O2err o2err_of(int rc) {
    if (rc <= 0 && rc >= O2_INTERRUPT_REQUESTED) return (O2err)rc;
    if (rc == O2H_QUEUE_FULL || rc == O2H_BLOCKED) return O2_BLOCKED;
    if (rc == O2H_TOO_LARGE) return O2_BAD_ARGS;
    return O2_FAIL;
}

void o2_sleep(int n) {
    if (n <= 0) return;
    struct timespec ts = {.tv_sec = n / 1000, .tv_nsec = (long)(n % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

const char *o2_next_o2string(const char *str) {
    while (str[3])
        str += 4;
    return str + 4;
}

bool *o2_stop_flag_ptr(void) {
    return &ctx()->stop_flag;
}

const char *o2_ensemble_name_get(void) {
    return the && the->r ? the->ensemble : NULL;
}

O2arg_ptr o2_array_token(int end) {
    static const O2arg tokens[2]; /* read-only: only their addresses matter */
    return (O2arg_ptr)(uintptr_t)&tokens[end ? 1 : 0];
}

O2sched_ptr o2_sched_get(int which) {
    static const O2sched scheds[2] = {{0}, {1}}; /* read-only tags */
    return (O2sched_ptr)(uintptr_t)&scheds[which ? 1 : 0];
}

static void *grow(void *p, size_t *cap, size_t need) {
    if (need <= *cap) return p;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(p, n);
    if (!q) return NULL;
    *cap = n;
    return q;
}

/* 8-byte aligned space from an arena sized beforehand (never reallocated while in use). */
static void *arena_take(uint8_t *arena, size_t cap, size_t *used, size_t size) {
    size_t at = (*used + 7u) & ~(size_t)7u;
    if (at + size > cap) return NULL;
    *used = at + size;
    return arena + at;
}

static void append_json_string(char *buf, size_t size, const char *s) {
    size_t n = strlen(buf);
    if (n + 1 < size) buf[n++] = '"';
    for (; s && *s && n + 8 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(buf + n, size - n, "\\u%04x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    if (n + 1 < size) buf[n++] = '"';
    buf[n < size ? n : size - 1] = '\0';
}

/* ---- Messages: O2msg_data (host header) <-> o2h_msg (wire) ------------------ */

static void write_o2data(uint8_t *dst, const o2h_msg *msg) {
    O2msg_data *d = (O2msg_data *)(void *)dst;
    d->length = (int32_t)msg->length;
    d->misc = (int32_t)o2h_msg_misc(msg);
    d->timestamp = o2h_msg_time(msg);
    memcpy(d->address, msg->data + O2H_MSG_ADDRESS_OFFSET, msg->length - O2H_MSG_ADDRESS_OFFSET);
}

/* A new o2h_msg (validated copy) from an O2msg_data, or NULL. */
static o2h_msg *msg_from_o2data(const O2msg_data *d) {
    if (!d || d->length < (int32_t)O2H_MSG_ADDRESS_OFFSET + 4 ||
        (uint32_t)d->length > O2H_MSG_MAX_SIZE)
        return NULL;
    uint32_t len = (uint32_t)d->length;
    uint8_t *bytes = malloc(len);
    if (!bytes) return NULL;
    o2h_wr_u32(bytes, (uint32_t)d->misc);
    uint64_t bits;
    memcpy(&bits, &d->timestamp, sizeof bits);
    o2h_wr_u64(bytes + 4, bits);
    memcpy(bytes + O2H_MSG_ADDRESS_OFFSET, d->address, len - O2H_MSG_ADDRESS_OFFSET);
    int code = 0;
    o2h_pool *pool = the && the->r ? o2h_router_pool(the->r) : NULL;
    o2h_msg *m = o2h_msg_from_bytes(pool, bytes, len, &code, NULL);
    free(bytes);
    return m;
}

static O2message_ptr o2message_from_msg(const o2h_msg *msg) {
    O2message_ptr m = malloc(offsetof(O2message, data) + offsetof(O2msg_data, address) +
                             msg->length - O2H_MSG_ADDRESS_OFFSET);
    if (!m) return NULL;
    m->next = NULL;
    write_o2data((uint8_t *)&m->data, msg);
    return m;
}

/* ---- Arguments: o2h_arg -> O2arg --------------------------------------------- */

/* Space the arguments may need in an arena: an O2arg each, or a string's or blob's
 * bytes (which the message holds too), each 8-byte aligned. */
static size_t arena_bound(size_t n_args, uint32_t msg_length) {
    return (n_args + 1) * (sizeof(O2arg) + 16) + msg_length + 64;
}

static O2arg_ptr convert_arg(uint8_t *arena, size_t cap, size_t *used, char type,
                             const o2h_arg *a) {
    switch (type) {
    case O2_STRING:
    case O2_SYMBOL: {
        /* Inline characters, as O2; copied so that the O2arg_ptr is 8-byte aligned. */
        size_t n = strlen(a->s) + 1;
        char *s = arena_take(arena, cap, used, n < sizeof(O2arg) ? sizeof(O2arg) : n);
        if (!s) return NULL;
        memcpy(s, a->s, n);
        return (O2arg_ptr)(void *)s;
    }
    case O2_ARRAY_START: return o2_got_start_array;
    case O2_ARRAY_END: return o2_got_end_array;
    case O2_BLOB: {
        O2blob *b = arena_take(arena, cap, used, offsetof(O2blob, data) + a->b.size + 1);
        if (!b) return NULL;
        b->size = a->b.size;
        if (a->b.size) memcpy(b->data, a->b.data, a->b.size);
        return (O2arg_ptr)b;
    }
    case O2_VECTOR: {
        O2arg *o = arena_take(arena, cap, used, sizeof *o);
        if (!o) return NULL;
        memset(o, 0, sizeof *o);
        o->v.len = a->v.len;
        o->v.typ = a->v.type;
        o->v.vi = (int32_t *)(uintptr_t)a->v.data;
        return o;
    }
    default: {
        /* Scalars sit at offset 0 of both unions, in host order: copy the 8 bytes. */
        O2arg *o = arena_take(arena, cap, used, sizeof *o);
        if (!o) return NULL;
        memset(o, 0, sizeof *o);
        memcpy(o, a, 8);
        return o;
    }
    }
}

/* ---- Handlers ------------------------------------------------------------------ */

static void frame_free(frame *f) {
    free(f->wrap);
    free(f->arena);
    free(f->argv);
    memset(f, 0, sizeof *f);
}

static void trampoline(o2h_router *r, const o2h_msg *msg, const char *types,
                       const o2h_arg *const *argv, int argc, void *user_data) {
    (void)r;
    o2c_context *c = the;
    method_rec *m = user_data;
    frame nested = {0};
    /* A handler that calls o2_poll re-enters: give the inner call its own memory. */
    frame *f = c->depth == 0 ? &c->frame0 : &nested;
    size_t need = offsetof(O2msg_data, address) + msg->length;
    uint8_t *w = grow(f->wrap, &f->wrap_cap, need);
    if (!w) return;
    f->wrap = w;
    write_o2data(w, msg);
    O2arg_ptr *o2argv = NULL;
    if (m->parse && argc > 0) {
        size_t bound = arena_bound((size_t)argc, msg->length);
        uint8_t *a = grow(f->arena, &f->arena_cap, bound);
        O2arg_ptr *v = a ? grow(f->argv, &f->argv_cap, (size_t)argc * sizeof *v) : NULL;
        if (a) f->arena = a;
        if (v) f->argv = v;
        if (!a || !v) {
            frame_free(&nested);
            return;
        }
        f->arena_used = 0;
        const char *t = types;
        for (int i = 0; i < argc; i++, t++) {
            v[i] = convert_arg(f->arena, f->arena_cap, &f->arena_used, *t, argv[i]);
            if (*t == O2_VECTOR && t[1]) t++;
        }
        o2argv = v;
    }
    O2msg_data_ptr saved_data = c->cur_data;
    const o2h_msg *saved_msg = c->cur_msg;
    c->cur_data = (O2msg_data_ptr)(void *)w;
    c->cur_msg = msg;
    c->depth++;
    /* As O2: parsed handlers see the typespec, the others the message's own types. */
    m->handler(c->cur_data, m->parse ? types : o2h_msg_types(msg), o2argv, m->parse ? argc : 0,
               m->user_data);
    c->depth--;
    c->cur_data = saved_data;
    c->cur_msg = saved_msg;
    frame_free(&nested);
}

static void method_rec_free(method_rec *m) {
    free(m->path);
    free(m);
}

/* Unlink and free the records whose path is `path` (exact) or under "/service". */
static void forget_methods(o2c_context *c, const char *path, bool whole_service) {
    size_t len = strlen(path);
    method_rec **pp = &c->methods;
    while (*pp) {
        method_rec *m = *pp;
        bool match = strcmp(m->path, path) == 0 ||
                     (whole_service && strncmp(m->path, path, len) == 0 && m->path[len] == '/');
        if (match) {
            *pp = m->next;
            method_rec_free(m);
        } else {
            pp = &m->next;
        }
    }
}

/* ---- Lifecycle ------------------------------------------------------------------ */

/* $O2HUB_ALLOW: "net,net" where O2 processes may be (o2h_router_allow). */
static void apply_env_allow(o2h_router *r) {
    const char *env = getenv("O2HUB_ALLOW");
    for (const char *p = env; p && *p;) {
        char net[64];
        size_t n = strcspn(p, ",");
        snprintf(net, sizeof net, "%.*s", (int)(n < sizeof net ? n : sizeof net - 1), p);
        if (net[0] && o2h_router_allow(r, net) != O2H_OK)
            o2c_log("O2HUB_ALLOW: \"%s\" is not a network (e.g. 192.168.1.0/24)", net);
        p += n + (p[n] == ',');
    }
}

static int add_plugin(o2h_router *r, const char *kind, const char *type, const char *json) {
    o2h_error err;
    int rc = o2h_router_add_plugin(r, kind, type, json, &err);
    if (rc != O2H_OK) {
        char line[1024];
        if (rc == O2H_PLUGIN_NOT_FOUND)
            o2c_log("the \"%s\" plugin was not found (searched $O2HUB_PLUGIN_PATH and the "
                    "install dir)",
                    type);
        else
            o2c_log("%s plugin: %s", type, o2h_error_format(&err, line, sizeof line));
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
            o2c_log("dnssd discovery unavailable: %s", o2h_error_format(&err, line, sizeof line));
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
            append_json_string(json, sizeof json, p);
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

static void free_snapshot(o2c_context *c) {
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
    o2c_context *c = ctx();
    if (c->r) return O2_ALREADY_RUNNING;
    if (!ensemble_name) return O2_BAD_NAME;
    int level = parse_level(getenv("O2HUB_LOG_LEVEL"));
    if (level >= 0) c->log_level = level;
    o2h_router_options opts = {
        .struct_size = sizeof opts, .ensemble = ensemble_name, .log_level = c->log_level};
    o2h_error err;
    c->r = o2h_router_new(&opts, &err);
    if (!c->r) {
        char line[1024];
        o2c_log("%s", o2h_error_format(&err, line, sizeof line));
        return err.code == O2H_BAD_NAME ? O2_BAD_NAME : O2_FAIL;
    }
    apply_env_allow(c->r);
    const char *host = getenv("O2HUB_HOST");
    if (!host || !*host) host = c->network_enabled ? "0.0.0.0" : "127.0.0.1";
    const char *port_text = getenv("O2HUB_PORT");
    int port = port_text ? atoi(port_text) : 0;
    char json[256] = "{\"host\": ";
    append_json_string(json, sizeof json, host);
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
    if (!the) return O2_SUCCESS;
    o2c_context *c = the;
    release_router(c);
    while (c->methods) {
        method_rec *m = c->methods;
        c->methods = m->next;
        method_rec_free(m);
    }
    o2_sched_flush();
    free_snapshot(c);
    frame_free(&c->frame0);
    free(c->ex_scratch);
    free(c->ex_arena);
    free(c);
    the = NULL;
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
    if (!the || !the->r) return O2_NOT_INITIALIZED;
    int rc = o2h_router_poll(the->r, 0);
    run_local_sched(the);
    return rc < 0 ? O2_FAIL : O2_SUCCESS;
}

int o2_run(int rate) {
    if (!the || !the->r) return O2_NOT_INITIALIZED;
    if (rate <= 0) rate = 1000;
    int period = 1000 / rate;
    if (period < 1) period = 1;
    the->stop_flag = false;
    while (the && the->r && !the->stop_flag) {
        int next = run_local_sched(the);
        /* Waits for the router's fd (sockets, timers), so messages are handled at once. */
        o2h_router_poll(the->r, next >= 0 && next < period ? next : period);
        if (the && the->r) run_local_sched(the);
    }
    return O2_SUCCESS;
}

O2err o2_reset_interrupt_request(void) {
    return O2_SUCCESS;
}

O2err o2_network_enable(bool enable) {
    o2c_context *c = ctx();
    if (c->r) return O2_ALREADY_RUNNING;
    c->network_enabled = enable;
    return O2_SUCCESS;
}

O2err o2_internet_enable(bool enable) {
    o2c_context *c = ctx();
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
    return the && the->r ? O2_ALREADY_RUNNING : O2_SUCCESS;
}

O2time o2_set_discovery_period(O2time period) {
    o2c_context *c = ctx();
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
    if (!the || !the->r) return O2_NOT_INITIALIZED;
    if (!public_ip || !internal_ip) return o2err_of(o2h_router_discovery_stop(the->r));
    char pip[9], iip[9], name[O2_MAX_PROCNAME_LEN];
    if (!ip_to_hex(public_ip, pip) || !ip_to_hex(internal_ip, iip))
        return O2_HOSTNAME_TO_NETADDR_FAIL;
    o2h_router_discovery_stop(the->r);
    if ((version & 0xff0000) != (O2_VERSION & 0xff0000)) return O2_FAIL;
    if (tcp_port <= 0 || tcp_port > 65535) return O2_BAD_ARGS;
    snprintf(name, sizeof name, "@%s:%s:%04x", pip, iip, (unsigned)tcp_port);
    return o2err_of(o2h_router_hub(the->r, name));
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
    if (!the || !the->r) return O2_NOT_INITIALIZED;
    int p;
    if (o2_parse_name(o2h_router_process_name(the->r), the->public_ip, the->internal_ip, &p) !=
        O2_SUCCESS)
        return O2_FAIL;
    if (public_ip) *public_ip = the->public_ip;
    if (internal_ip) *internal_ip = the->internal_ip;
    if (port) *port = p;
    return O2_SUCCESS;
}

const char *o2_get_proc_name(void) {
    return the && the->r ? o2h_router_process_name(the->r) : NULL;
}

int o2_version(char *version) {
    if (version)
        sprintf(version, "%d.%d.%d", (O2_VERSION >> 16) & 0xff, (O2_VERSION >> 8) & 0xff,
                O2_VERSION & 0xff);
    return O2_VERSION;
}

void o2_debug_flags(const char *flags) {
    o2c_context *c = ctx();
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

/* ---- Services ------------------------------------------------------------------ */

#define NEED_ROUTER()                                                                              \
    do {                                                                                           \
        if (!the || !the->r) return O2_NOT_INITIALIZED;                                            \
    } while (0)

O2err o2_service_new(const char *service_name) {
    NEED_ROUTER();
    return o2err_of(o2h_service_new(the->r, service_name));
}

O2err o2_service_free(const char *service_name) {
    NEED_ROUTER();
    int rc = o2h_service_free(the->r, service_name);
    if (rc == O2H_OK && service_name) {
        char path[128];
        snprintf(path, sizeof path, "/%s", service_name);
        forget_methods(the, path, true);
    }
    return rc == O2H_OK ? O2_SUCCESS : rc == O2H_NOT_FOUND ? O2_NO_SERVICE : o2err_of(rc);
}

O2err o2_method_new(const char *path, const char *typespec, O2method_handler h,
                    const void *user_data, bool coerce, bool parse) {
    NEED_ROUTER();
    if (!path || !h) return O2_BAD_ARGS;
    method_rec *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return O2_NO_MEMORY;
    }
    m->handler = h;
    m->user_data = user_data;
    m->parse = parse;
    int rc = o2h_method_new(the->r, path, typespec, trampoline, m, coerce, parse);
    if (rc != O2H_OK) {
        method_rec_free(m);
        return o2err_of(rc);
    }
    forget_methods(the, path, false); /* the one it replaced, if any */
    m->next = the->methods;
    the->methods = m;
    return O2_SUCCESS;
}

O2err o2_method_free(const char *path) {
    NEED_ROUTER();
    int rc = o2h_method_free(the->r, path);
    if (rc != O2H_OK) return rc == O2H_NOT_FOUND ? O2_FAIL : o2err_of(rc);
    forget_methods(the, path, false);
    return O2_SUCCESS;
}

O2err o2_tap(const char *tappee, const char *tapper, O2tap_send_mode send_mode) {
    NEED_ROUTER();
    return o2err_of(o2h_tap(the->r, tappee, tapper, (int)send_mode));
}

O2err o2_untap(const char *tappee, const char *tapper) {
    NEED_ROUTER();
    int rc = o2h_untap(the->r, tappee, tapper);
    return rc == O2H_NOT_FOUND ? O2_FAIL : o2err_of(rc);
}

O2err o2_service_set_property(const char *service, const char *attr, const char *value) {
    NEED_ROUTER();
    int rc = o2h_service_set_property(the->r, service, attr, value);
    return rc == O2H_OK ? O2_SUCCESS : O2_FAIL;
}

O2err o2_service_property_free(const char *service, const char *attr) {
    NEED_ROUTER();
    int rc = o2h_service_property_free(the->r, service, attr);
    return rc == O2H_OK ? O2_SUCCESS : O2_FAIL;
}

int o2_status(const char *service) {
    if (!the || !the->r) return O2_FAIL;
    return o2h_status(the->r, service);
}

/* As O2: O2_FAIL for a service nobody offers, O2_BLOCKED while earlier messages wait. */
O2err o2_can_send(const char *service) {
    NEED_ROUTER();
    if (!service || !*service || strchr(service, '/') || strchr(service, '!')) return O2_BAD_NAME;
    if (o2h_status(the->r, service) < 0) return O2_FAIL;
    return o2h_can_send(the->r, service) == O2H_BLOCKED ? O2_BLOCKED : O2_SUCCESS;
}

/* The service an address names ("/svc/a" or "!svc/a"), into `out`. */
static const char *service_of(const char *address, char *out, size_t size) {
    const char *s = address + (address[0] == '/' || address[0] == '!');
    size_t n = strcspn(s, "/");
    if (n >= size) n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/*
 * O2's o2_send_cmd never drops: while the path's earlier messages wait for
 * the other side (o2_can_send says O2_BLOCKED), it waits, polling the network
 * without running handlers, until they can go or the service is gone. Waiting
 * before sending keeps the router's hold from ever refusing the message.
 * Best-effort messages are sent (or dropped) at once.
 */
static int wait_until_sendable(const char *address) {
    char svc[64];
    service_of(address, svc, sizeof svc);
    for (;;) {
        int rc = o2h_can_send(the->r, svc);
        if (rc != O2H_BLOCKED) return O2H_OK; /* or no such service: the send says so */
        if (o2h_status(the->r, svc) < 0) return O2H_NO_SERVICE; /* the link went away */
        o2h_router_poll_io(the->r, 5);
    }
}

static O2err send_msg(o2h_msg *m) {
    if (!o2h_msg_reliable(m)) return o2err_of(o2h_send_msg(the->r, m));
    int rc;
    do {
        rc = wait_until_sendable(o2h_msg_address(m));
        if (rc == O2H_OK) rc = o2h_send_msg(the->r, o2h_msg_ref(m));
    } while (rc == O2H_BLOCKED);
    o2h_msg_unref(m);
    return o2err_of(rc);
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static void collect_service(void *vctx, const o2h_service_info *info) {
    o2c_context *c = vctx;
    if (c->n_list == c->cap_list) {
        int cap = c->cap_list ? 2 * c->cap_list : 16;
        svc_entry *l = realloc(c->list, (size_t)cap * sizeof *l);
        if (!l) return;
        c->list = l;
        c->cap_list = cap;
    }
    svc_entry *e = &c->list[c->n_list++];
    /* O2 reports the kind of provider here, whatever the clock state. */
    e->type = info->status >= O2_LOCAL_NOTIME && info->status <= O2_TO_OSC_NOTIME
                  ? info->status + O2_LOCAL
                  : info->status;
    e->name = strdup(info->name);
    /* O2 2.0.1 names this process "_o2" in the list (not its @name). */
    const char *me = o2h_router_process_name(c->r);
    e->process = strdup(me && strcmp(info->process, me) == 0 ? "_o2" : info->process);
    e->properties = dup_or_null(info->properties);
    e->tapper = dup_or_null(info->tapper);
}

O2err o2_services_list(void) {
    NEED_ROUTER();
    free_snapshot(the);
    o2h_services_list(the->r, collect_service, the);
    return O2_SUCCESS;
}

O2err o2_services_list_free(void) {
    if (the) free_snapshot(the);
    return O2_SUCCESS;
}

static const svc_entry *entry(int i) {
    return the && i >= 0 && i < the->n_list ? &the->list[i] : NULL;
}

const char *o2_service_name(int i) {
    const svc_entry *e = entry(i);
    return e ? e->name : NULL;
}

int o2_service_type(int i) {
    const svc_entry *e = entry(i);
    return e ? e->type : O2_FAIL;
}

const char *o2_service_process(int i) {
    const svc_entry *e = entry(i);
    return e ? e->process : NULL;
}

const char *o2_service_tapper(int i) {
    const svc_entry *e = entry(i);
    return e ? e->tapper : NULL;
}

const char *o2_service_properties(int i) {
    const svc_entry *e = entry(i);
    return e ? e->properties : NULL;
}

/* The escaped value of `attr` in "a:v;b:w;" as [*start, *end), or false. */
static bool find_raw_value(const char *props, const char *attr, const char **start,
                           const char **end) {
    size_t n = strlen(attr);
    const char *p = props;
    while (p && *p) {
        const char *colon = strchr(p, ':');
        if (!colon) return false;
        const char *v = colon + 1, *e = v;
        while (*e && *e != ';') {
            if (*e == '\\' && e[1]) e++;
            e++;
        }
        if ((size_t)(colon - p) == n && strncmp(p, attr, n) == 0) {
            *start = v;
            *end = e;
            return true;
        }
        p = *e ? e + 1 : e;
    }
    return false;
}

const char *o2_service_getprop(int i, const char *attr) {
    const svc_entry *e = entry(i);
    const char *s, *end;
    if (!e || !e->properties || !attr || strlen(attr) > 64 ||
        !find_raw_value(e->properties, attr, &s, &end))
        return NULL;
    char *out = malloc((size_t)(end - s) + 1), *o = out;
    if (!out) return NULL;
    for (; s < end; s++) {
        if (*s == '\\' && s + 1 < end) s++;
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

int o2_service_search(int i, const char *attr, const char *value) {
    if (!attr || !value) return -1;
    for (int j = i < 0 ? 0 : i; the && j < the->n_list; j++) {
        const svc_entry *e = &the->list[j];
        const char *s, *end;
        if (!e->properties || !find_raw_value(e->properties, attr, &s, &end)) continue;
        /* ":" + value + ";" makes ":pre", "suf;" and ":exact;" plain substring tests. */
        size_t n = (size_t)(end - s);
        char *framed = malloc(n + 3);
        if (!framed) return -1;
        framed[0] = ':';
        memcpy(framed + 1, s, n);
        framed[n + 1] = ';';
        framed[n + 2] = '\0';
        bool hit = strstr(framed, value) != NULL;
        free(framed);
        if (hit) return j;
    }
    return -1;
}

/* ---- Time ---------------------------------------------------------------------- */

O2err o2_clock_set(o2_time_callback gettime, void *rock) {
    (void)rock;
    NEED_ROUTER();
    if (gettime && !the->warned_clock_callback) {
        o2c_log("o2_clock_set: custom clock callbacks are not supported; "
                "using the router's monotonic clock");
        the->warned_clock_callback = true;
    }
    return o2h_clock_set(the->r) == O2H_OK ? O2_SUCCESS : O2_FAIL;
}

O2err o2_time_jump_callback_set(o2_time_jump_callback callback) {
    (void)callback; /* o2hub slews and jumps its clock itself and calls nobody */
    return O2_SUCCESS;
}

O2err o2_clock_jump(double local_time, double global_time, bool adjust) {
    (void)local_time;
    (void)global_time;
    (void)adjust;
    return O2_FAIL;
}

int o2_roundtrip(double *mean, double *min) {
    if (!the || !the->r) {
        if (mean) *mean = -1;
        if (min) *min = -1;
        return O2_NOT_INITIALIZED;
    }
    return o2h_clock_roundtrip(the->r, mean, min) == O2H_OK ? O2_SUCCESS : O2_FAIL;
}

O2time o2_native_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

O2time o2_time_get(void) {
    return the && the->r ? o2h_time_get(the->r) : -1;
}

O2time o2_local_time(void) {
    return the && the->r ? o2h_local_time(the->r) : o2_native_time();
}

O2err o2_schedule_msg(O2sched_ptr scheduler, O2message_ptr msg) {
    if (!msg) return O2_BAD_ARGS;
    if (!the || !the->r) {
        free(msg);
        return O2_NOT_INITIALIZED;
    }
    if (!scheduler || scheduler->which == 0) return o2_message_send(msg); /* the core schedules */
    O2message_ptr *pp = &the->lt_head; /* local time: kept here, sent by o2_poll */
    while (*pp && (*pp)->data.timestamp <= msg->data.timestamp)
        pp = &(*pp)->next;
    msg->next = *pp;
    *pp = msg;
    return O2_SUCCESS;
}

O2err o2_sched_flush(void) {
    while (the && the->lt_head) {
        O2message_ptr m = the->lt_head;
        the->lt_head = m->next;
        free(m);
    }
    return O2_SUCCESS;
}

/* ---- Sending ------------------------------------------------------------------- */

/* O2's own forms: a blob is an O2blob *, and a string may be the end marker
 * (too few arguments); everything else as o2h_send takes it. */
static O2err add_vararg(o2h_builder *b, char type, va_list *ap) {
    switch (type) {
    case O2_STRING: {
        const char *s = va_arg(*ap, const char *);
        if (s == (const char *)O2_MARKER_A) return O2_BAD_ARGS;
        return o2err_of(o2h_add_string(b, s));
    }
    case O2_BLOB: {
        const O2blob *blob = va_arg(*ap, const O2blob *);
        return blob ? o2err_of(o2h_add_blob(b, blob->data, blob->size)) : O2_BAD_ARGS;
    }
    case O2_INT32: return o2err_of(o2h_add_int32(b, va_arg(*ap, int))); /* O2 reads int */
    default: {
        const char one[2] = {type, 0};
        return o2err_of(o2h_builder_add_va(b, one, ap));
    }
    }
}

/* Markers are compared on their low 32 bits, as O2 does. */
static bool is_marker(void *p, void *marker) {
    return ((uintptr_t)p & 0xffffffffu) == ((uintptr_t)marker & 0xffffffffu);
}

O2err o2_send_marker(const char *path, double time, bool tcp_flag, const char *typestring, ...) {
    NEED_ROUTER();
    o2h_builder *b = the->vbuilder;
    o2h_builder_start(b);
    va_list ap;
    va_start(ap, typestring);
    O2err rc = O2_SUCCESS;
    for (const char *t = typestring ? typestring : ""; *t && rc == O2_SUCCESS; t++)
        rc = add_vararg(b, *t, &ap);
    if (rc == O2_SUCCESS) {
        void *a = va_arg(ap, void *);
        void *z = va_arg(ap, void *);
        if (!is_marker(a, O2_MARKER_A) || !is_marker(z, O2_MARKER_B)) rc = O2_BAD_ARGS;
    }
    va_end(ap);
    if (rc != O2_SUCCESS) {
        if (rc == O2_BAD_ARGS)
            o2c_log("o2_send or o2_send_cmd: the arguments do not match types \"%s\" (address %s)",
                    typestring ? typestring : "", path ? path : "");
        return rc;
    }
    o2h_msg *m = o2h_builder_finish(b, time, path, tcp_flag ? O2H_FLAG_RELIABLE : 0);
    if (!m) return o2h_builder_error(b) != O2H_OK ? o2err_of(o2h_builder_error(b)) : O2_BAD_NAME;
    return send_msg(m);
}

O2err o2_message_send(O2message_ptr msg) {
    if (!msg) return O2_BAD_ARGS;
    if (!the || !the->r) {
        free(msg);
        return O2_NOT_INITIALIZED;
    }
    o2h_msg *m = msg_from_o2data(&msg->data);
    free(msg);
    if (!m) return O2_INVALID_MSG;
    return send_msg(m);
}

O2blob_ptr o2_blob_new(uint32_t size) {
    O2blob_ptr b = malloc(offsetof(O2blob, data) + (size < 4 ? 4 : size));
    if (b) b->size = size;
    return b;
}

#define BUILDER()                                                                                  \
    do {                                                                                           \
        if (!the || !the->r) return O2_NOT_INITIALIZED;                                            \
        if (!the->building) return O2_FAIL;                                                        \
    } while (0)

O2err o2_send_start(void) {
    NEED_ROUTER();
    o2h_builder_start(the->builder);
    the->building = true;
    the->is_bundle = false;
    return O2_SUCCESS;
}

O2err o2_add_float(float f) {
    BUILDER();
    return o2err_of(o2h_add_float(the->builder, f));
}

O2err o2_add_string_or_symbol(O2type tcode, const char *s) {
    BUILDER();
    return o2err_of(
        (tcode == O2_SYMBOL ? o2h_add_symbol(the->builder, s) : o2h_add_string(the->builder, s)));
}

O2err o2_add_blob(O2blob_ptr b) {
    BUILDER();
    return b ? o2err_of(o2h_add_blob(the->builder, b->data, b->size)) : O2_BAD_ARGS;
}

O2err o2_add_blob_data(uint32_t size, void *data) {
    BUILDER();
    return o2err_of(o2h_add_blob(the->builder, data, size));
}

O2err o2_add_int64(int64_t i) {
    BUILDER();
    return o2err_of(o2h_add_int64(the->builder, i));
}

O2err o2_add_double_or_time(O2type tchar, double d) {
    BUILDER();
    return o2err_of(
        (tchar == O2_TIME ? o2h_add_time(the->builder, d) : o2h_add_double(the->builder, d)));
}

O2err o2_add_int32_or_char(O2type tcode, int32_t i) {
    BUILDER();
    switch (tcode) {
    case O2_INT32: return o2err_of(o2h_add_int32(the->builder, i));
    case O2_CHAR: return o2err_of(o2h_add_char(the->builder, (char)i));
    case O2_BOOL: return o2err_of(o2h_add_bool(the->builder, i != 0));
    default: return O2_BAD_TYPE;
    }
}

O2err o2_add_midi(uint32_t m) {
    BUILDER();
    return o2err_of(o2h_add_midi(the->builder, m));
}

O2err o2_add_only_typecode(O2type typecode) {
    BUILDER();
    switch (typecode) {
    case O2_TRUE: return o2err_of(o2h_add_true(the->builder));
    case O2_FALSE: return o2err_of(o2h_add_false(the->builder));
    case O2_NIL: return o2err_of(o2h_add_nil(the->builder));
    case O2_INFINITUM: return o2err_of(o2h_add_infinitum(the->builder));
    case O2_ARRAY_START: return o2err_of(o2h_add_start_array(the->builder));
    case O2_ARRAY_END: return o2err_of(o2h_add_end_array(the->builder));
    default: return O2_BAD_TYPE;
    }
}

O2err o2_add_vector(O2type element_type, int length, void *data) {
    BUILDER();
    if (length < 0) return O2_BAD_ARGS;
    char t = element_type == O2_TIME ? O2_DOUBLE : (char)element_type;
    return o2err_of(o2h_add_vector(the->builder, t, length, data));
}

O2err o2_add_message(O2message_ptr msg) {
    BUILDER();
    o2h_msg *m = msg ? msg_from_o2data(&msg->data) : NULL;
    if (!m) return O2_BAD_ARGS;
    int rc = o2h_add_message(the->builder, m);
    o2h_msg_unref(m);
    if (rc == O2H_OK) the->is_bundle = true;
    return o2err_of(rc);
}

/* Finish the builder as an o2h_msg; bundles get a '#' address. */
static o2h_msg *finish_msg(O2time time, const char *service, const char *address, bool tcp) {
    if (!the || !the->r || !the->building || !address) return NULL;
    the->building = false;
    char full[1024];
    if (service)
        snprintf(full, sizeof full, "%c%s%s", the->is_bundle ? '#' : '/', service, address);
    else if (the->is_bundle && (address[0] == '/' || address[0] == '!'))
        snprintf(full, sizeof full, "#%s", address + 1);
    else
        snprintf(full, sizeof full, "%s", address);
    return o2h_builder_finish(the->builder, time, full, tcp ? O2H_FLAG_RELIABLE : 0);
}

O2message_ptr o2_service_message_finish(O2time time, const char *service, const char *address,
                                        bool tcp_flag) {
    o2h_msg *m = finish_msg(time, service, address, tcp_flag);
    if (!m) return NULL;
    O2message_ptr out = o2message_from_msg(m);
    o2h_msg_unref(m);
    return out;
}

O2message_ptr o2_message_finish(O2time time, const char *address, bool tcp_flag) {
    return o2_service_message_finish(time, NULL, address, tcp_flag);
}

O2err o2_send_finish(O2time time, const char *address, bool tcp_flag) {
    NEED_ROUTER();
    o2h_msg *m = finish_msg(time, NULL, address, tcp_flag);
    if (!m) {
        int err = o2h_builder_error(the->builder);
        return err != O2H_OK ? o2err_of(err) : O2_FAIL;
    }
    return send_msg(m);
}

/* ---- Parsing ------------------------------------------------------------------- */

int o2_extract_start(O2msg_data_ptr msg) {
    if (!msg) return 0;
    o2c_context *c = ctx();
    c->ex_active = false;
    c->vec_pending = false;
    if (c->ex_owned) o2h_msg_unref(c->ex_owned);
    c->ex_owned = NULL;
    const o2h_msg *m = c->cur_msg;
    if (msg != c->cur_data || !m) { /* not the message being handled: read a copy */
        c->ex_owned = msg_from_o2data(msg);
        m = c->ex_owned;
    }
    if (!m || o2h_msg_is_bundle(m)) return 0;
    size_t scratch = 2u * m->length + 64u;
    const char *types = o2h_msg_types(m);
    size_t bound = arena_bound(strlen(types), m->length);
    uint8_t *s = grow(c->ex_scratch, &c->ex_scratch_cap, scratch);
    if (s) c->ex_scratch = s;
    uint8_t *a = grow(c->ex_arena, &c->ex_arena_cap, bound);
    if (a) c->ex_arena = a;
    if (!s || !a || o2h_reader_init(&c->rd, m, c->ex_scratch, c->ex_scratch_cap) != O2H_OK)
        return 0;
    c->ex_arena_used = 0;
    c->ex_active = true;
    return (int)strlen(types);
}

O2arg_ptr o2_get_next(O2type type_code) {
    o2c_context *c = the;
    if (!c || !c->ex_active) return NULL;
    o2h_arg a;
    memset(&a, 0, sizeof a);
    if (c->vec_pending) { /* the element type of the vector asked for just before */
        c->vec_pending = false;
        c->rd = c->rd_saved;
        a.v.type = (char)type_code;
        if (o2h_reader_next(&c->rd, O2_VECTOR, &a) != O2H_OK) return NULL;
        c->vec_arg->v.len = a.v.len;
        c->vec_arg->v.typ = a.v.type;
        c->vec_arg->v.vi = (int32_t *)(uintptr_t)a.v.data;
        return c->vec_arg;
    }
    if (type_code == O2_VECTOR) { /* report the length now, read the elements next call */
        c->rd_saved = c->rd;
        if (o2h_reader_next(&c->rd, O2_VECTOR, &a) != O2H_OK) return NULL;
        c->rd = c->rd_saved;
        O2arg *o = arena_take(c->ex_arena, c->ex_arena_cap, &c->ex_arena_used, sizeof *o);
        if (!o) return NULL;
        memset(o, 0, sizeof *o);
        o->v.len = a.v.len;
        o->v.typ = a.v.type;
        c->vec_arg = o;
        c->vec_pending = true;
        return o;
    }
    if (o2h_reader_next(&c->rd, (char)type_code, &a) != O2H_OK) return NULL;
    return convert_arg(c->ex_arena, c->ex_arena_cap, &c->ex_arena_used, (char)type_code, &a);
}

void o2_msg_data_print(O2msg_data_ptr msg) {
    o2h_msg *m = msg_from_o2data(msg);
    if (!m) {
        printf("<invalid message>");
        return;
    }
    char line[4096];
    o2h_msg_format(m, line, sizeof line);
    printf("%s", line);
    o2h_msg_unref(m);
}

void o2_message_print(O2message_ptr msg) {
    if (msg) o2_msg_data_print(&msg->data);
}

/* ---- Plugins: OSC, WebSocket/HTTP, MQTT ---------------------------------------------
 *
 * These load a plugin with o2h_router_add_plugin and a JSON object, with the
 * keys of docs/configuration.md (the "type" key is given to the core
 * separately, not in the JSON):
 *   osc (transports):       {"delegates": [{"service": S, "address": "HOST:PORT",
 *                                           "protocol": "udp"|"tcp"}]}
 *                           {"ports": [{"port": P, "protocol": "udp"|"tcp", "service": S}]}
 *   websocket (transports): {"port": P, "root": DIR}
 *   mqtt (transports):      {"broker": "HOST:PORT"}
 *   dnssd (discovery):      {}
 */

static O2err load_feature(const char *what, const char *kind, const char *type, const char *json) {
    NEED_ROUTER();
    o2h_error err;
    int rc = o2h_router_add_plugin(the->r, kind, type, json, &err);
    if (rc == O2H_OK) return O2_SUCCESS;
    if (rc == O2H_PLUGIN_NOT_FOUND) {
        o2c_log("%s needs the \"%s\" plugin (o2hub_%s.so), which was not found in "
                "$O2HUB_PLUGIN_PATH or the install dir",
                what, type, type);
    } else {
        char line[1024];
        o2c_log("%s: %s", what, o2h_error_format(&err, line, sizeof line));
    }
    return rc == O2H_SERVICE_EXISTS ? O2_SERVICE_EXISTS : O2_FAIL;
}

O2err o2lite_initialize(void) {
    NEED_ROUTER();
    return O2_SUCCESS; /* the core always hosts O2lite clients on its TCP/UDP ports */
}

O2err o2_osc_port_new(const char *service_name, int port_num, bool tcp_flag) {
    if (!service_name || port_num <= 0 || port_num > 65535) return O2_BAD_ARGS;
    char json[512] = "{\"ports\": [{\"port\": ";
    snprintf(json + strlen(json), sizeof json - strlen(json),
             "%d, \"protocol\": \"%s\", \"service\": ", port_num, tcp_flag ? "tcp" : "udp");
    append_json_string(json, sizeof json, service_name);
    strncat(json, "}]}", sizeof json - strlen(json) - 1);
    return load_feature("o2_osc_port_new", "transports", "osc", json);
}

O2err o2_osc_port_free(int port_num) {
    o2c_log("o2_osc_port_free(%d): not supported (o2hub cannot unload one plugin instance)",
            port_num);
    return O2_FAIL;
}

O2err o2_osc_delegate(const char *service_name, const char *ip, int port_num, bool tcp_flag) {
    if (!service_name || port_num <= 0 || port_num > 65535) return O2_BAD_ARGS;
    char address[300];
    snprintf(address, sizeof address, "%s:%d",
             !ip || !*ip || strcmp(ip, "localhost") == 0 ? "127.0.0.1" : ip, port_num);
    char json[768] = "{\"delegates\": [{\"service\": ";
    append_json_string(json, sizeof json, service_name);
    strncat(json, ", \"address\": ", sizeof json - strlen(json) - 1);
    append_json_string(json, sizeof json, address);
    snprintf(json + strlen(json), sizeof json - strlen(json), ", \"protocol\": \"%s\"}]}",
             tcp_flag ? "tcp" : "udp");
    return load_feature("o2_osc_delegate", "transports", "osc", json);
}

uint64_t o2_osc_time_offset(uint64_t offset) {
    o2c_context *c = ctx();
    uint64_t old = c->osc_time_offset;
    if (offset) c->osc_time_offset = offset;
    return old;
}

O2err o2_http_initialize(int port, const char *root) {
    if (port <= 0 || port > 65535) return O2_BAD_ARGS;
    char json[1200];
    snprintf(json, sizeof json, "{\"port\": %d, \"root\": ", port);
    append_json_string(json, sizeof json, root ? root : "www");
    strncat(json, "}", sizeof json - strlen(json) - 1);
    return load_feature("o2_http_initialize", "transports", "websocket", json);
}

O2err o2_mqtt_enable(const char *broker, int port_num) {
    /* The mqtt transport takes one "broker": "host:port" (1883 when no port). */
    char address[300];
    if (port_num > 0)
        snprintf(address, sizeof address, "%s:%d", broker && *broker ? broker : "127.0.0.1",
                 port_num);
    else
        snprintf(address, sizeof address, "%s", broker && *broker ? broker : "");
    char json[512] = "{";
    if (address[0]) {
        strncat(json, "\"broker\": ", sizeof json - strlen(json) - 1);
        append_json_string(json, sizeof json, address);
    }
    strncat(json, "}", sizeof json - strlen(json) - 1);
    return load_feature("o2_mqtt_enable", "transports", "mqtt", json);
}

O2err o2_mqtt_can_send(void) {
    NEED_ROUTER();
    return O2_SUCCESS;
}
