/*
 * binding.c — a session: the router of one patching-language instance and
 * its receivers. Receivers outlive the router (leave, join again): their
 * services and methods are installed again on every join.
 */
#include "binding.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/linked_plugins.h>

struct o2hb_receiver {
    o2hb_session *s;
    o2hb_receiver *next;
    o2hb_deliver_fn deliver;
    void *ctx;
    char *path;  /* last address set, NULL: none */
    char *types; /* NULL: any */
    bool active;
    bool dead; /* freed during a delivery: unlinked once the delivery ends */
};

struct o2hb_session {
    o2h_router *r;
    o2hb_log_fn log;
    void *log_ctx;
    o2hb_receiver *receivers;
    o2hb_value *values; /* conversion buffer for deliveries */
    int values_cap;
    o2h_router *polled; /* the router inside o2h_router_poll, NULL: none */
    o2h_router *doomed; /* left during its own poll: freed when the poll returns */
    int delivering;     /* depth of deliver(): receivers freed meanwhile wait */
};

static const o2h_plugin_entry_fn linked_plugins[] = O2HUB_LINKED_PLUGINS;

static void logf_(o2hb_session *s, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(o2hb_session *s, bool error, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s->log(s->log_ctx, error, text);
}

static void router_log(void *ctx, int level, const char *origin, const char *text) {
    o2hb_session *s = ctx;
    logf_(s, level == O2H_LOG_ERROR, "o2hub: %s%s%s", origin ? origin : "", origin ? ": " : "",
          text);
}

o2hb_session *o2hb_session_new(o2hb_log_fn log, void *log_ctx) {
    o2hb_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->log = log;
    s->log_ctx = log_ctx;
    return s;
}

void o2hb_session_free(o2hb_session *s) {
    if (!s) return;
    o2hb_leave(s);
    while (s->receivers)
        o2hb_receiver_free(s->receivers);
    free(s->values);
    free(s);
}

o2h_router *o2hb_router(o2hb_session *s) {
    return s->r;
}

int o2hb_fd(o2hb_session *s) {
    return s->r ? o2h_router_fd(s->r) : -1;
}

void o2hb_poll(o2hb_session *s) {
    if (!s->r || s->polled) return;
    s->polled = s->r;
    o2h_router_poll(s->r, 0);
    s->polled = NULL;
    if (s->doomed) {
        o2h_router_free(s->doomed);
        s->doomed = NULL;
    }
}

double o2hb_time(o2hb_session *s) {
    return s->r ? o2h_time_get(s->r) : -1;
}

/* ---- Type strings -------------------------------------------------------- */

const char *o2hb_types_check(const char *types, char *why, size_t size) {
    static const char known[] = "ihfdtsScBTFNIb";
    if (!types) return NULL;
    for (const char *t = types; *t; t++) {
        if (!strchr(known, *t)) {
            snprintf(why, size, "type code '%c' is not one of %s", *t, known);
            return why;
        }
    }
    return NULL;
}

/* ---- Receivers ------------------------------------------------------------ */

/* Length of the service part of "/svc/a/b" (without the leading '/'). */
static size_t service_len(const char *path) {
    const char *slash = strchr(path + 1, '/');
    return slash ? (size_t)(slash - path - 1) : strlen(path + 1);
}

static bool same_service(const char *a, const char *b) {
    size_t n = service_len(a);
    return n == service_len(b) && memcmp(a + 1, b + 1, n) == 0;
}

/* One path is a proper node-prefix of the other ("/a" and "/a/b"). */
static bool node_prefix(const char *shorter, const char *longer) {
    size_t n = strlen(shorter);
    return strlen(longer) > n && strncmp(shorter, longer, n) == 0 && longer[n] == '/';
}

/* A receiver's types in a message: "" (no arguments) is O2's "none". */
static const char *types_shown(const char *types) {
    return !types ? "" : types[0] ? types : "none";
}

static bool same_types(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const o2hb_receiver *other_active(const o2hb_receiver *rc,
                                         bool (*match)(const char *, const char *)) {
    for (const o2hb_receiver *o = rc->s->receivers; o; o = o->next)
        if (o != rc && o->active && match(o->path, rc->path)) return o;
    return NULL;
}

static bool same_path(const char *a, const char *b) {
    return strcmp(a, b) == 0;
}

static void deliver(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data);

/* Offer the service and install the method; again is harmless (same handler). */
static void install(o2hb_receiver *rc) {
    o2hb_session *s = rc->s;
    if (!s->r) return;
    char name[64];
    size_t n = service_len(rc->path);
    snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), rc->path + 1);
    int rc_ = o2h_service_new(s->r, name);
    if (rc_ != O2H_OK && rc_ != O2H_SERVICE_EXISTS)
        logf_(s, true, "o2receive %s: cannot offer service %s: %s", rc->path, name,
              o2h_strerror(rc_));
    rc_ = o2h_method_new(s->r, rc->path, rc->types, deliver, s, true, true);
    if (rc_ != O2H_OK)
        logf_(s, true, "o2receive %s: cannot receive: %s", rc->path, o2h_strerror(rc_));
}

static void uninstall(o2hb_receiver *rc) {
    o2hb_session *s = rc->s;
    if (!s->r) return;
    if (!other_active(rc, same_path)) o2h_method_free(s->r, rc->path);
    if (!other_active(rc, same_service)) {
        char name[64];
        size_t n = service_len(rc->path);
        snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), rc->path + 1);
        o2h_service_free(s->r, name);
    }
}

o2hb_receiver *o2hb_receiver_new(o2hb_session *s, o2hb_deliver_fn fn, void *ctx) {
    o2hb_receiver *rc = calloc(1, sizeof *rc);
    if (!rc) return NULL;
    rc->s = s;
    rc->deliver = fn;
    rc->ctx = ctx;
    rc->next = s->receivers;
    s->receivers = rc;
    return rc;
}

void o2hb_receiver_disable(o2hb_receiver *rc) {
    if (!rc->active) return;
    uninstall(rc);
    rc->active = false;
}

bool o2hb_receiver_retry(o2hb_receiver *rc) {
    if (rc->active || !rc->path) return rc->active;
    for (const o2hb_receiver *o = rc->s->receivers; o; o = o->next) {
        if (o == rc || !o->active) continue;
        bool conflict = node_prefix(o->path, rc->path) || node_prefix(rc->path, o->path) ||
                        (strcmp(o->path, rc->path) == 0 && !same_types(o->types, rc->types));
        if (conflict) {
            logf_(rc->s, true, "o2receive %s%s%s: conflicts with an active o2receive %s%s%s",
                  rc->path, rc->types ? " -t " : "", types_shown(rc->types), o->path,
                  o->types ? " -t " : "", types_shown(o->types));
            return false;
        }
    }
    rc->active = true;
    install(rc);
    return true;
}

const char *o2hb_receiver_path(const o2hb_receiver *rc) {
    return rc->path;
}

bool o2hb_receiver_set(o2hb_receiver *rc, const char *path, const char *types, bool activate) {
    o2hb_receiver_disable(rc);
    free(rc->path);
    free(rc->types);
    rc->path = path ? strdup(path) : NULL;
    rc->types = types ? strdup(types) : NULL;
    char why[96];
    const char *bad = o2hb_types_check(rc->types, why, sizeof why);
    if (bad) {
        logf_(rc->s, true, "o2receive %s: bad types \"%s\": %s", path ? path : "", rc->types, bad);
        free(rc->types);
        rc->types = NULL;
        free(rc->path);
        rc->path = NULL;
        return false;
    }
    if (rc->path && (rc->path[0] != '/' || !rc->path[1] || rc->path[1] == '/')) {
        logf_(rc->s, true, "o2receive: bad address \"%s\" (want /service or /service/node...)",
              rc->path);
        free(rc->path);
        rc->path = NULL;
    }
    return activate ? o2hb_receiver_retry(rc) : false;
}

bool o2hb_receiver_active(const o2hb_receiver *rc) {
    return rc->active;
}

static void receiver_unlink(o2hb_receiver *rc) {
    for (o2hb_receiver **p = &rc->s->receivers; *p; p = &(*p)->next) {
        if (*p == rc) {
            *p = rc->next;
            break;
        }
    }
    free(rc->path);
    free(rc->types);
    free(rc);
}

void o2hb_receiver_free(o2hb_receiver *rc) {
    o2hb_receiver_disable(rc);
    rc->deliver = NULL;
    rc->ctx = NULL;
    if (rc->s->delivering)
        rc->dead = true; /* deliver() is walking the list */
    else
        receiver_unlink(rc);
}

static o2hb_value *values_room(o2hb_session *s, int n) {
    if (n <= s->values_cap) return s->values;
    o2hb_value *v = realloc(s->values, (size_t)n * sizeof *v);
    if (!v) return NULL;
    s->values = v;
    s->values_cap = n;
    return v;
}

/* The message's arguments as numbers and symbols (blobs: one number per byte). */
static int convert(o2hb_session *s, const char *types, const o2h_arg *const *argv, int argc,
                   o2hb_value **out) {
    int n = 0;
    for (int i = 0; i < argc && types[i]; i++)
        n += types[i] == 'b' ? (int)argv[i]->b.size : 1;
    o2hb_value *v = values_room(s, n > 0 ? n : 1);
    if (!v) return -1;
    int k = 0;
    for (int i = 0; i < argc && types[i]; i++) {
        const o2h_arg *a = argv[i];
        o2hb_value *x = &v[k];
        x->kind = 'f';
        x->s = NULL;
        switch (types[i]) {
        case 'i':
        case 'c':
        case 'B': x->f = a->i; break;
        case 'h': x->f = (double)a->h; break;
        case 'f': x->f = a->f; break;
        case 'd': x->f = a->d; break;
        case 't': x->f = a->t; break;
        case 'm': x->f = a->m; break;
        case 'T': x->f = 1; break;
        case 'F':
        case 'N': x->f = 0; break;
        case 'I': x->f = 1e38; break;
        case 's':
        case 'S':
            x->kind = 's';
            x->s = a->s;
            break;
        case 'b':
            for (uint32_t j = 0; j < a->b.size; j++) {
                v[k + (int)j].kind = 'f';
                v[k + (int)j].s = NULL;
                v[k + (int)j].f = a->b.data[j];
            }
            k += (int)a->b.size;
            continue;
        default: x->f = 0; break; /* vectors and arrays: a placeholder */
        }
        k++;
    }
    *out = v;
    return k;
}

static void deliver(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    o2hb_session *s = user_data;
    if (r != s->r) return; /* the patch left during this poll */
    const char *addr = o2h_msg_address(msg);
    o2hb_value *values = NULL;
    int n = convert(s, types ? types : "", argv, argc, &values);
    if (n < 0) return;
    double time = o2h_msg_time(msg);
    /* An outlet may free receivers, leave, or join again: freed receivers
     * stay in the list (dead) until the walk ends. */
    s->delivering++;
    for (o2hb_receiver *rc = s->receivers; rc; rc = rc->next) {
        if (!rc->active || rc->dead || r != s->r) continue;
        /* "/svc" gets everything for svc; "/svc/a" only its own address. */
        bool whole = strchr(rc->path + 1, '/') == NULL;
        if (whole ? same_service(rc->path, addr) : strcmp(rc->path + 1, addr + 1) == 0)
            rc->deliver(rc->ctx, addr, values, n, time);
    }
    if (--s->delivering == 0) {
        for (o2hb_receiver *rc = s->receivers, *next; rc; rc = next) {
            next = rc->next;
            if (rc->dead) receiver_unlink(rc);
        }
    }
}

/* ---- Joining ---------------------------------------------------------------- */

static int add_plugin(o2hb_session *s, const char *kind, const char *type, const char *json) {
    o2h_error err;
    int rc = o2h_router_add_plugin(s->r, kind, type, json, &err);
    if (rc != O2H_OK) {
        char line[1024];
        logf_(s, true, "o2ensemble: %s: %s", type, o2h_error_format(&err, line, sizeof line));
    }
    return rc;
}

static int start_plugins(o2hb_session *s, const o2hb_join_options *o) {
    char json[1024];
    const char *host = o->host ? o->host : o->network_level == 0 ? "127.0.0.1" : "0.0.0.0";
    snprintf(json, sizeof json, "{\"host\": \"%s\", \"port\": %d}", host, o->port);
    int rc = add_plugin(s, "transports", "tcp", json);
    if (rc == O2H_OK) rc = add_plugin(s, "transports", "udp", json);
    if (rc == O2H_OK) rc = o2h_router_start(s->r);
    const char *disc = o->discovery ? o->discovery : o->n_peers ? "static" : "broadcast";
    if (rc != O2H_OK || strcmp(disc, "none") == 0) return rc;
    if (strcmp(disc, "static") == 0) {
        size_t len = (size_t)snprintf(json, sizeof json, "{\"peers\": [");
        for (int i = 0; i < o->n_peers && len < sizeof json; i++)
            len += (size_t)snprintf(json + len, sizeof json - len, "%s\"%s\"", i ? ", " : "",
                                    o->peers[i]);
        if (len < sizeof json)
            snprintf(json + len, sizeof json - len,
                     "], \"interval_min\": 0.1, \"interval_max\": 1.0}");
        return add_plugin(s, "discovery", "static", json);
    }
    if (strcmp(disc, "broadcast") == 0)
        return add_plugin(s, "discovery", "broadcast",
                          "{\"interval_min\": 0.1, \"interval_max\": 1.0}");
    logf_(s, true, "o2ensemble: unknown discovery \"%s\" (broadcast, static or none)", disc);
    return O2H_BAD_ARGS;
}

int o2hb_join(o2hb_session *s, const o2hb_join_options *o) {
    o2hb_leave(s);
    o2h_router_options opts = {.struct_size = sizeof opts,
                               .ensemble = o->ensemble,
                               .log_level = o->log_level,
                               .log = router_log,
                               .log_ctx = s,
                               .linked_plugins = linked_plugins};
    o2h_error err;
    char line[1024];
    if (o->config_file) {
        s->r = o2h_router_new_from_file(o->config_file, &opts, &err);
        if (!s->r) {
            logf_(s, true, "o2ensemble: %s", o2h_error_format(&err, line, sizeof line));
            return err.code ? err.code : O2H_FAIL;
        }
        int rc = o2h_router_start(s->r);
        if (rc != O2H_OK) {
            logf_(s, true, "o2ensemble: %s: cannot start: %s", o->config_file, o2h_strerror(rc));
            o2hb_leave(s);
            return rc;
        }
    } else {
        s->r = o2h_router_new(&opts, &err);
        if (!s->r) {
            logf_(s, true, "o2ensemble: %s", o2h_error_format(&err, line, sizeof line));
            return err.code ? err.code : O2H_FAIL;
        }
        int rc = start_plugins(s, o);
        if (rc != O2H_OK) {
            o2hb_leave(s);
            return rc;
        }
    }
    if (o->clock_reference) o2h_clock_set(s->r);
    for (o2hb_receiver *rc = s->receivers; rc; rc = rc->next)
        if (rc->active) install(rc);
    return O2H_OK;
}

void o2hb_leave(o2hb_session *s) {
    if (!s->r) return;
    /* a patch may leave from a message's outlet, inside the router's poll */
    if (s->r == s->polled)
        s->doomed = s->r;
    else
        o2h_router_free(s->r);
    s->r = NULL;
}

/* ---- Sending ---------------------------------------------------------------- */

static bool number_of(const o2hb_value *v, double *out) {
    if (v->kind == 'f') {
        *out = v->f;
        return true;
    }
    char *end;
    *out = strtod(v->s, &end);
    return *v->s && !*end;
}

static int add_value(o2h_builder *b, char t, const o2hb_value *v, char *why, size_t size) {
    double f = 0;
    switch (t) {
    case 's':
    case 'S': {
        char num[32];
        const char *text = v->s;
        if (v->kind == 'f') {
            snprintf(num, sizeof num, "%g", v->f);
            text = num;
        }
        return t == 's' ? o2h_add_string(b, text) : o2h_add_symbol(b, text);
    }
    case 'c':
        if (v->kind == 's') return o2h_add_char(b, v->s[0]);
        return o2h_add_char(b, (char)(int)v->f);
    default: break;
    }
    if (!number_of(v, &f)) {
        snprintf(why, size, "type '%c' wants a number, not \"%s\"", t, v->s);
        return O2H_BAD_TYPE;
    }
    switch (t) {
    case 'i': return o2h_add_int32(b, (int32_t)f);
    case 'h': return o2h_add_int64(b, (int64_t)f);
    case 'f': return o2h_add_float(b, (float)f);
    case 'd': return o2h_add_double(b, f);
    case 't': return o2h_add_time(b, f);
    case 'B': return o2h_add_bool(b, f != 0);
    default: snprintf(why, size, "type code '%c' cannot be sent", t); return O2H_BAD_TYPE;
    }
}

int o2hb_send(o2hb_session *s, const char *path, const char *types, const o2hb_value *values, int n,
              double time, bool reliable) {
    if (!s->r) {
        logf_(s, true, "o2send %s: not joined to an ensemble (no active o2ensemble)", path);
        return O2H_NOT_INITIALIZED;
    }
    /* Checked first: from inside a handler the router queues the message and
     * would drop it later, silently. */
    char service[64];
    size_t slen = service_len(path);
    snprintf(service, sizeof service, "%.*s", (int)(slen < 63 ? slen : 63), path + 1);
    if (o2h_status(s->r, service) == O2H_STATUS_UNKNOWN) {
        logf_(s, true, "o2send %s: no service \"%s\" (yet): message dropped", path, service);
        return O2H_NO_SERVICE;
    }
    o2h_builder *b = o2h_send_start(s->r);
    char why[160] = "";
    int rc = O2H_OK, k = 0;
    if (!types) {
        for (k = 0; k < n && rc == O2H_OK; k++)
            rc = values[k].kind == 'f' ? o2h_add_float(b, (float)values[k].f)
                                       : o2h_add_string(b, values[k].s);
    } else {
        for (const char *t = types; *t && rc == O2H_OK; t++) {
            switch (*t) {
            case 'T': rc = o2h_add_true(b); continue;
            case 'F': rc = o2h_add_false(b); continue;
            case 'N': rc = o2h_add_nil(b); continue;
            case 'I': rc = o2h_add_infinitum(b); continue;
            case 'b': {
                /* a blob takes every value left, one byte each */
                int first = k;
                uint8_t *bytes = malloc((size_t)(n - k) + 1);
                if (!bytes) return O2H_NO_MEMORY;
                for (int j = 0; k < n && rc == O2H_OK; k++, j++) {
                    double f = 0;
                    if (!number_of(&values[k], &f)) {
                        snprintf(why, sizeof why, "a blob takes numbers (bytes)");
                        rc = O2H_BAD_TYPE;
                    }
                    bytes[j] = (uint8_t)(int)f;
                }
                if (rc == O2H_OK) rc = o2h_add_blob(b, bytes, (uint32_t)(k - first));
                free(bytes);
                continue;
            }
            default: break;
            }
            if (k >= n) {
                snprintf(why, sizeof why, "types \"%s\" want more than %d values", types, n);
                rc = O2H_BAD_ARGS;
                break;
            }
            rc = add_value(b, *t, &values[k++], why, sizeof why);
        }
        if (rc == O2H_OK && k < n) {
            snprintf(why, sizeof why, "%d values for types \"%s\"", n, types);
            rc = O2H_BAD_ARGS;
        }
    }
    if (rc != O2H_OK) {
        o2h_builder_start(b);
        logf_(s, true, "o2send %s: %s", path, why[0] ? why : o2h_strerror(rc));
        return rc;
    }
    rc = o2h_send_finish(s->r, time, path, reliable);
    if (rc == O2H_NO_SERVICE)
        logf_(s, true, "o2send %s: no service \"%s\" (yet): message dropped", path, service);
    else if (rc != O2H_OK)
        logf_(s, true, "o2send %s: %s", path, o2h_strerror(rc));
    return rc;
}
