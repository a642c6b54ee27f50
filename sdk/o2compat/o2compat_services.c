/* The classic O2 API: services, methods, taps, properties, status. */
#include "o2compat_internal.h"

O2err o2_service_new(const char *service_name) {
    NEED_ROUTER();
    return o2c__err_of(o2h_service_new(o2c__the->r, service_name));
}

O2err o2_service_free(const char *service_name) {
    NEED_ROUTER();
    int rc = o2h_service_free(o2c__the->r, service_name);
    if (rc == O2H_OK && service_name) {
        char path[128];
        snprintf(path, sizeof path, "/%s", service_name);
        o2c__forget_methods(o2c__the, path, true);
    }
    return rc == O2H_OK ? O2_SUCCESS : rc == O2H_NOT_FOUND ? O2_NO_SERVICE : o2c__err_of(rc);
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
    int rc = o2h_method_new(o2c__the->r, path, typespec, o2c__trampoline, m, coerce, parse);
    if (rc != O2H_OK) {
        o2c__method_rec_free(m);
        return o2c__err_of(rc);
    }
    o2c__forget_methods(o2c__the, path, false); /* the one it replaced, if any */
    m->next = o2c__the->methods;
    o2c__the->methods = m;
    return O2_SUCCESS;
}

O2err o2_method_free(const char *path) {
    NEED_ROUTER();
    int rc = o2h_method_free(o2c__the->r, path);
    if (rc != O2H_OK) return rc == O2H_NOT_FOUND ? O2_FAIL : o2c__err_of(rc);
    o2c__forget_methods(o2c__the, path, false);
    return O2_SUCCESS;
}

O2err o2_tap(const char *tappee, const char *tapper, O2tap_send_mode send_mode) {
    NEED_ROUTER();
    return o2c__err_of(o2h_tap(o2c__the->r, tappee, tapper, (int)send_mode));
}

O2err o2_untap(const char *tappee, const char *tapper) {
    NEED_ROUTER();
    int rc = o2h_untap(o2c__the->r, tappee, tapper);
    return rc == O2H_NOT_FOUND ? O2_FAIL : o2c__err_of(rc);
}

O2err o2_service_set_property(const char *service, const char *attr, const char *value) {
    NEED_ROUTER();
    int rc = o2h_service_set_property(o2c__the->r, service, attr, value);
    return rc == O2H_OK ? O2_SUCCESS : O2_FAIL;
}

O2err o2_service_property_free(const char *service, const char *attr) {
    NEED_ROUTER();
    int rc = o2h_service_property_free(o2c__the->r, service, attr);
    return rc == O2H_OK ? O2_SUCCESS : O2_FAIL;
}

int o2_status(const char *service) {
    if (!o2c__the || !o2c__the->r) return O2_FAIL;
    return o2h_status(o2c__the->r, service);
}

/* As O2: O2_FAIL for a service nobody offers, O2_BLOCKED while earlier messages wait. */
O2err o2_can_send(const char *service) {
    NEED_ROUTER();
    if (!service || !*service || strchr(service, '/') || strchr(service, '!')) return O2_BAD_NAME;
    if (o2h_status(o2c__the->r, service) < 0) return O2_FAIL;
    return o2h_can_send(o2c__the->r, service) == O2H_BLOCKED ? O2_BLOCKED : O2_SUCCESS;
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
        int rc = o2h_can_send(o2c__the->r, svc);
        if (rc != O2H_BLOCKED) return O2H_OK; /* or no such service: the send says so */
        if (o2h_status(o2c__the->r, svc) < 0) return O2H_NO_SERVICE; /* the link went away */
        o2h_router_poll_io(o2c__the->r, 5);
    }
}

O2err o2c__send_msg(o2h_msg *m) {
    if (!o2h_msg_reliable(m)) return o2c__err_of(o2h_send_msg(o2c__the->r, m));
    int rc;
    do {
        rc = wait_until_sendable(o2h_msg_address(m));
        if (rc == O2H_OK) rc = o2h_send_msg(o2c__the->r, o2h_msg_ref(m));
    } while (rc == O2H_BLOCKED);
    o2h_msg_unref(m);
    return o2c__err_of(rc);
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
    o2c__free_snapshot(o2c__the);
    o2h_services_list(o2c__the->r, collect_service, o2c__the);
    return O2_SUCCESS;
}

O2err o2_services_list_free(void) {
    if (o2c__the) o2c__free_snapshot(o2c__the);
    return O2_SUCCESS;
}

static const svc_entry *entry(int i) {
    return o2c__the && i >= 0 && i < o2c__the->n_list ? &o2c__the->list[i] : NULL;
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
    for (int j = i < 0 ? 0 : i; o2c__the && j < o2c__the->n_list; j++) {
        const svc_entry *e = &o2c__the->list[j];
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
