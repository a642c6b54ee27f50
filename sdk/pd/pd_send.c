/*
 * pd_send.c — [o2send] / [o2.send]: a list in is one O2 message out,
 * coerced to the object's types. Reliable (TCP) unless -b, -u or udp;
 * "time MS" or "delay MS" stamp the next message only.
 */
#include <stdio.h>
#include <string.h>

#include <m_pd.h>

#include "pd_objects.h"

typedef struct o2pd_send {
    t_object obj;
    o2pd_session *s;
    t_outlet *out;
    t_symbol *path;  /* NULL: no address yet */
    t_symbol *types; /* NULL: as the atoms are */
    bool reliable;
    double next_time; /* O2 time (s) of the next message, 0: now */
} o2pd_send;

static t_class *send_class;

/* The address from `nodes` node atoms (none: keep the old one), types and mode. */
static bool send_apply(o2pd_send *x, int nodes, const t_atom *node, t_symbol *types,
                       bool reliable) {
    char why[96];
    const char *bad = types ? o2hb_types_check(types->s_name, why, sizeof why) : NULL;
    if (bad) {
        pd_error(&x->obj, "o2send: bad types \"%s\": %s", types->s_name, bad);
        return false;
    }
    if (nodes) {
        char path[MAXPDSTRING];
        if (o2pd_path_from_atoms(nodes, node, path, sizeof path) < 0 || !path[1] ||
            path[1] == '/') {
            pd_error(&x->obj, "o2send: bad address");
            return false;
        }
        x->path = gensym(path);
    }
    x->types = types;
    x->reliable = reliable;
    return true;
}

static bool is_send_flag(const t_atom *a) {
    if (a->a_type != A_SYMBOL) return false;
    const char *w = a->a_w.w_symbol->s_name;
    return w[0] == '-' || strcmp(w, "udp") == 0;
}

/*
 * Nodes and flags (-t types, -r, -b / -u / udp), the flags before, between
 * or after the nodes, as O2's external takes them ([o2send -t f synth pitch]).
 */
static bool send_parse(o2pd_send *x, int argc, t_atom *argv) {
    t_atom *node = argc ? getbytes(sizeof(t_atom) * (size_t)argc) : NULL;
    if (argc && !node) return false;
    int nodes = 0;
    t_symbol *types = x->types;
    bool reliable = x->reliable;
    for (int i = 0; i < argc; i++) {
        if (!is_send_flag(&argv[i])) {
            node[nodes++] = argv[i];
            continue;
        }
        const char *f = argv[i].a_w.w_symbol->s_name;
        if (strcmp(f, "-t") == 0 && i + 1 < argc && argv[i + 1].a_type == A_SYMBOL) {
            types = argv[++i].a_w.w_symbol;
        } else if (strcmp(f, "-t") == 0) {
            pd_error(&x->obj, "o2send: -t wants a type string (e.g. -t ifs)");
            freebytes(node, sizeof(t_atom) * (size_t)argc);
            return false;
        } else if (strcmp(f, "-r") == 0) {
            reliable = true;
        } else if (strcmp(f, "-b") == 0 || strcmp(f, "-u") == 0 || strcmp(f, "udp") == 0) {
            reliable = false;
        } else {
            pd_error(&x->obj, "o2send: unknown option %s (want -t types, -r, -b or udp)", f);
            freebytes(node, sizeof(t_atom) * (size_t)argc);
            return false;
        }
    }
    bool ok = send_apply(x, nodes, node, types, reliable);
    if (node) freebytes(node, sizeof(t_atom) * (size_t)argc);
    return ok;
}

static void send_address(o2pd_send *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    if (argc == 0) {
        pd_error(&x->obj, "o2send: address wants a service and nodes");
        return;
    }
    send_parse(x, argc, argv);
}

static void send_types(o2pd_send *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    t_symbol *t = argc > 0 && argv[0].a_type == A_SYMBOL ? argv[0].a_w.w_symbol : NULL;
    char why[96];
    const char *bad = t ? o2hb_types_check(t->s_name, why, sizeof why) : NULL;
    if (bad) {
        pd_error(&x->obj, "o2send: bad types \"%s\": %s", t->s_name, bad);
        return;
    }
    x->types = t && t->s_name[0] ? t : NULL;
}

static bool clock_now(o2pd_send *x, double *now) {
    *now = o2pd_session_time(x->s); /* "delay" counts from the logical time */
    if (*now < 0) {
        pd_error(&x->obj, "o2send: no O2 clock yet: a timed message needs one");
        return false;
    }
    return true;
}

/* "time MS" (O2's), or "time SECONDS MS" (as [o2.time]'s right outlet gives it): one Pd
 * float holds O2 time in ms exactly only for the first 4.6 hours. */
static void send_time(o2pd_send *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    if (argc < 1 || argc > 2 || argv[0].a_type != A_FLOAT ||
        (argc == 2 && argv[1].a_type != A_FLOAT)) {
        pd_error(&x->obj, "o2send: time MS, or time SECONDS MS");
        return;
    }
    x->next_time = argc == 1 ? argv[0].a_w.w_float / 1000.0
                             : argv[0].a_w.w_float + argv[1].a_w.w_float / 1000.0;
}

static void send_delay(o2pd_send *x, t_floatarg ms) {
    double now;
    if (clock_now(x, &now)) x->next_time = now + ms / 1000.0;
}

static void send_list(o2pd_send *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    double time = x->next_time;
    x->next_time = 0;
    if (!x->path) {
        pd_error(&x->obj, "o2send: no address (send it an address message)");
        return;
    }
    o2hb_value *v = argc ? getbytes(sizeof *v * (size_t)argc) : NULL;
    if (argc && !v) return;
    o2pd_values_from_atoms(argc, argv, v);
    o2hb_send(x->s->hb, x->path->s_name, x->types ? x->types->s_name : NULL, v, argc, time,
              x->reliable);
    if (v) freebytes(v, sizeof *v * (size_t)argc);
    o2pd_session_kick(x->s);
}

static void send_anything(o2pd_send *x, t_symbol *sel, int argc, t_atom *argv) {
    t_atom *all = getbytes(sizeof(t_atom) * (size_t)(argc + 1));
    if (!all) return;
    SETSYMBOL(&all[0], sel);
    memcpy(all + 1, argv, sizeof(t_atom) * (size_t)argc);
    send_list(x, &s_list, argc + 1, all);
    freebytes(all, sizeof(t_atom) * (size_t)(argc + 1));
}

static void send_status(o2pd_send *x) {
    if (!x->path) return;
    char service[64];
    const char *p = x->path->s_name + 1;
    size_t n = strcspn(p, "/");
    snprintf(service, sizeof service, "%.*s", (int)(n < 63 ? n : 63), p);
    o2h_router *r = o2hb_router(x->s->hb);
    t_atom a[2];
    SETSYMBOL(&a[0], gensym(service));
    SETFLOAT(&a[1], r ? (t_float)o2h_status(r, service) : -1);
    outlet_anything(x->out, gensym("status"), 2, a);
}

static void *send_new(t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    o2pd_send *x = (o2pd_send *)pd_new(send_class);
    x->s = o2pd_session_acquire();
    x->out = outlet_new(&x->obj, &s_list);
    x->reliable = true;
    send_parse(x, argc, argv);
    return x;
}

static void send_free(o2pd_send *x) {
    o2pd_session_release(x->s);
}

void o2pd_send_setup(void) {
    send_class = class_new(gensym("o2send"), (t_newmethod)send_new, (t_method)send_free,
                           sizeof(o2pd_send), 0, A_GIMME, 0);
    class_addcreator((t_newmethod)send_new, gensym("o2.send"), A_GIMME, 0);
    class_addlist(send_class, (t_method)send_list);
    class_addanything(send_class, (t_method)send_anything);
    class_addmethod(send_class, (t_method)send_address, gensym("address"), A_GIMME, 0);
    class_addmethod(send_class, (t_method)send_types, gensym("types"), A_GIMME, 0);
    class_addmethod(send_class, (t_method)send_time, gensym("time"), A_GIMME, 0);
    class_addmethod(send_class, (t_method)send_delay, gensym("delay"), A_FLOAT, 0);
    class_addmethod(send_class, (t_method)send_status, gensym("status"), 0);
}
