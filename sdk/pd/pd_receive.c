/*
 * pd_receive.c — [o2receive] / [o2.receive]: the address's service is
 * offered by this Pd instance; every message to the address comes out of
 * the left outlet as a list (numbers, symbols, a blob's bytes), its O2
 * timestamp in ms (0: none) out of the right one first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <m_pd.h>

#include "pd_objects.h"

/* A timed message that the router delivered before its time in Pd's logical
 * time: it waits for it (see o2pd_session_time). */
typedef struct held {
    struct held *next;
    double due; /* Pd logical time (clock_getlogicaltime units) */
    double time;
    int n;
    t_atom atoms[];
} held;

#define MAX_HELD 4096 /* per receiver; beyond, the earliest comes out early */

typedef struct o2pd_receive {
    t_object obj;
    o2pd_session *s;
    o2hb_receiver *rc;
    t_outlet *values;
    t_outlet *time;
    t_atom *atoms;
    int atoms_cap;
    held *head, *tail;
    int n_held;
    t_clock *due;
    bool warned_full;
} o2pd_receive;

static t_class *receive_class;

static void output(o2pd_receive *x, double time, int n, t_atom *atoms) {
    outlet_float(x->time, (t_float)(time * 1000.0));
    outlet_list(x->values, &s_list, n, atoms);
}

/* The first held message, out of the queue (its outlets may free the object: not after). */
static held *unhold(o2pd_receive *x) {
    held *h = x->head;
    x->head = h->next;
    if (!x->head) x->tail = NULL;
    x->n_held--;
    return h;
}

static void release(held *h) {
    freebytes(h, sizeof *h + sizeof(t_atom) * (size_t)h->n);
}

/* The clock: the first held message is due. The next one's clock is set
 * first, since the outlets may free x. */
static void receive_due(o2pd_receive *x) {
    if (!x->head) return;
    held *h = unhold(x);
    if (x->head) clock_set(x->due, x->head->due);
    output(x, h->time, h->n, h->atoms);
    release(h);
}

/* Queue a message until `wait_ms` of logical time from now, in order behind the others.
 * Outputs (if anything) last, since the outlets may free x. */
static void hold(o2pd_receive *x, double wait_ms, double time, int n, const t_atom *atoms) {
    held *early = NULL;
    if (x->n_held >= MAX_HELD) {
        if (!x->warned_full)
            pd_error(&x->obj,
                     "o2receive: over %d timed messages waiting: the earliest comes out early",
                     MAX_HELD);
        x->warned_full = true;
        early = unhold(x);
    }
    held *h = getbytes(sizeof *h + sizeof(t_atom) * (size_t)n);
    if (h) {
        h->next = NULL;
        h->due = clock_getsystimeafter(wait_ms > 0 ? wait_ms : 0);
        if (x->tail && h->due < x->tail->due) h->due = x->tail->due; /* timestamp order */
        h->time = time;
        h->n = n;
        memcpy(h->atoms, atoms, sizeof(t_atom) * (size_t)n);
        if (x->tail)
            x->tail->next = h;
        else
            x->head = h;
        x->tail = h;
        x->n_held++;
    }
    if (x->head) clock_set(x->due, x->head->due);
    if (early) {
        output(x, early->time, early->n, early->atoms);
        release(early);
    } else if (!h) {
        output(x, time, n, (t_atom *)atoms); /* no memory: out now, never dropped */
    }
}

static void receive_deliver(void *ctx, const char *address, const o2hb_value *v, int n,
                            double time) {
    (void)address;
    o2pd_receive *x = ctx;
    if (n > x->atoms_cap) {
        t_atom *a = resizebytes(x->atoms, sizeof(t_atom) * (size_t)x->atoms_cap,
                                sizeof(t_atom) * (size_t)n);
        if (!a) return;
        x->atoms = a;
        x->atoms_cap = n;
    }
    for (int i = 0; i < n; i++) {
        if (v[i].kind == 's')
            SETSYMBOL(&x->atoms[i], gensym(v[i].s));
        else
            SETFLOAT(&x->atoms[i], (t_float)v[i].f);
    }
    double wait_ms = time > 0 ? o2pd_session_wait_ms(x->s, time) : 0;
    if (time > 0 && (wait_ms > 0 || x->head))
        hold(x, wait_ms, time, n, x->atoms);
    else
        output(x, time, n, x->atoms);
}

/* O2's two type strings that Pd cannot write: "any" (NULL) and "none" (no arguments). */
static const char *receive_types_named(const char *t) {
    if (strcmp(t, "any") == 0) return NULL;
    if (strcmp(t, "none") == 0) return "";
    return t;
}

/*
 * "nodes... [-t types] [-w]" into path (may be "") and *types; false if
 * bad. The flags may come before, between or after the nodes, as in O2's
 * external.
 */
static bool receive_parse(o2pd_receive *x, int argc, t_atom *argv, char *path, size_t size,
                          const char **types, bool *wait) {
    *types = NULL;
    path[0] = 0;
    t_atom *node = argc ? getbytes(sizeof(t_atom) * (size_t)argc) : NULL;
    if (argc && !node) return false;
    int nodes = 0;
    bool ok = true;
    for (int i = 0; i < argc && ok; i++) {
        const char *f = argv[i].a_type == A_SYMBOL ? argv[i].a_w.w_symbol->s_name : "";
        if (f[0] != '-') {
            node[nodes++] = argv[i];
        } else if (strcmp(f, "-t") == 0 && i + 1 < argc && argv[i + 1].a_type == A_SYMBOL) {
            *types = receive_types_named(argv[++i].a_w.w_symbol->s_name);
        } else if (strcmp(f, "-t") == 0) {
            pd_error(&x->obj, "o2receive: -t wants a type string (e.g. -t ifs)");
            ok = false;
        } else if (strcmp(f, "-w") == 0 && wait) {
            *wait = true;
        } else {
            pd_error(&x->obj, "o2receive: unknown option %s (want -t types%s)", f,
                     wait ? " or -w" : "");
            ok = false;
        }
    }
    if (ok && nodes && o2pd_path_from_atoms(nodes, node, path, size) < 0) {
        pd_error(&x->obj, "o2receive: bad or too long address");
        ok = false;
    }
    if (node) freebytes(node, sizeof(t_atom) * (size_t)argc);
    return ok;
}

static void receive_address(o2pd_receive *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    char path[MAXPDSTRING];
    const char *types;
    if (receive_parse(x, argc, argv, path, sizeof path, &types, NULL))
        o2hb_receiver_set(x->rc, path[0] ? path : NULL, types, true);
}

static void receive_types(o2pd_receive *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    const char *path = o2hb_receiver_path(x->rc);
    char copy[MAXPDSTRING];
    snprintf(copy, sizeof copy, "%s", path ? path : "");
    const char *types = argc > 0 && argv[0].a_type == A_SYMBOL
                            ? receive_types_named(argv[0].a_w.w_symbol->s_name)
                            : NULL;
    o2hb_receiver_set(x->rc, copy[0] ? copy : NULL, types, true);
}

static void receive_bang(o2pd_receive *x) {
    o2hb_receiver_retry(x->rc);
}

static void receive_disable(o2pd_receive *x) {
    o2hb_receiver_disable(x->rc);
}

static void *receive_new(t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    o2pd_receive *x = (o2pd_receive *)pd_new(receive_class);
    x->s = o2pd_session_acquire();
    x->rc = o2hb_receiver_new(x->s->hb, receive_deliver, x);
    x->values = outlet_new(&x->obj, &s_list);
    x->time = outlet_new(&x->obj, &s_float);
    x->due = clock_new(x, (t_method)receive_due);
    char path[MAXPDSTRING];
    const char *types;
    bool wait = false;
    if (!x->rc)
        pd_error(&x->obj, "o2receive: out of memory");
    else if (receive_parse(x, argc, argv, path, sizeof path, &types, &wait))
        o2hb_receiver_set(x->rc, path[0] ? path : NULL, types, !wait); /* -w: start on bang */
    return x;
}

static void receive_free(o2pd_receive *x) {
    clock_free(x->due);
    while (x->head)
        release(unhold(x));
    if (x->rc) o2hb_receiver_free(x->rc);
    if (x->atoms) freebytes(x->atoms, sizeof(t_atom) * (size_t)x->atoms_cap);
    o2pd_session_release(x->s);
}

void o2pd_receive_setup(void) {
    receive_class = class_new(gensym("o2receive"), (t_newmethod)receive_new, (t_method)receive_free,
                              sizeof(o2pd_receive), 0, A_GIMME, 0);
    class_addcreator((t_newmethod)receive_new, gensym("o2.receive"), A_GIMME, 0);
    class_addbang(receive_class, (t_method)receive_bang);
    class_addmethod(receive_class, (t_method)receive_address, gensym("address"), A_GIMME, 0);
    class_addmethod(receive_class, (t_method)receive_disable, gensym("disable"), 0);
    class_addmethod(receive_class, (t_method)receive_types, gensym("types"), A_GIMME, 0);
}
