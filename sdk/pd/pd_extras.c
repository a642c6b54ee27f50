/*
 * pd_extras.c — objects O2's external does not have:
 *   [o2.status SERVICE]  the service's status: on bang, and whenever it changes
 *   [o2.tap SERVICE]     copies of every message to SERVICE, wherever it is
 *   [o2.time]            O2 time in ms on bang (-1: no clock yet); on the right,
 *                        whole seconds and ms, exact for 194 days
 */
#include <stdio.h>
#include <string.h>

#include <m_pd.h>

#include "pd_objects.h"

/* ---- [o2.status] --------------------------------------------------------- */

#define STATUS_CHECK_MS 50

typedef struct o2pd_status {
    t_object obj;
    o2pd_session *s;
    t_outlet *out;
    t_symbol *service;
    t_clock *check;
    int last;
} o2pd_status;

static t_class *status_class;

static int status_now(o2pd_status *x) {
    o2h_router *r = o2hb_router(x->s->hb);
    return r && x->service ? o2h_status(r, x->service->s_name) : O2H_STATUS_UNKNOWN;
}

static void status_bang(o2pd_status *x) {
    x->last = status_now(x);
    outlet_float(x->out, (t_float)x->last);
}

static void status_tick(o2pd_status *x) {
    if (status_now(x) != x->last) status_bang(x);
    clock_delay(x->check, STATUS_CHECK_MS);
}

static void status_set(o2pd_status *x, t_symbol *service) {
    x->service = service;
    status_bang(x);
}

static void *status_new(t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    o2pd_status *x = (o2pd_status *)pd_new(status_class);
    x->s = o2pd_session_acquire();
    x->out = outlet_new(&x->obj, &s_float);
    /* made even with bad arguments, so that the patch's connections hold */
    if (argc > 1 || (argc == 1 && argv[0].a_type != A_SYMBOL))
        pd_error(&x->obj, "o2.status: wants one service name ([o2.status SERVICE])");
    t_symbol *service = argc == 1 && argv[0].a_type == A_SYMBOL ? argv[0].a_w.w_symbol : NULL;
    x->service = service && service->s_name[0] ? service : NULL;
    x->last = O2H_STATUS_UNKNOWN;
    x->check = clock_new(x, (t_method)status_tick);
    clock_delay(x->check, STATUS_CHECK_MS);
    return x;
}

static void status_free(o2pd_status *x) {
    clock_free(x->check);
    o2pd_session_release(x->s);
}

/* ---- [o2.tap] ------------------------------------------------------------ */

struct o2pd_tap {
    t_object obj;
    o2pd_session *s;
    o2hb_receiver *rc;
    t_outlet *values;
    t_outlet *time;
    t_symbol *tappee;
    char tapper[32];
    int mode;
    t_atom *atoms;
    int atoms_cap;
};

static t_class *tap_class;

static void tap_deliver(void *ctx, const char *address, const o2hb_value *v, int n, double time) {
    o2pd_tap *x = ctx;
    if (n + 1 > x->atoms_cap) {
        t_atom *a = resizebytes(x->atoms, sizeof(t_atom) * (size_t)x->atoms_cap,
                                sizeof(t_atom) * (size_t)(n + 1));
        if (!a) return;
        x->atoms = a;
        x->atoms_cap = n + 1;
    }
    /* the copy's address names the tapper: show the tapped service's */
    const char *rest = strchr(address + 1, '/');
    char original[MAXPDSTRING];
    snprintf(original, sizeof original, "/%s%s", x->tappee->s_name, rest ? rest : "");
    SETSYMBOL(&x->atoms[0], gensym(original));
    for (int i = 0; i < n; i++) {
        if (v[i].kind == 's')
            SETSYMBOL(&x->atoms[i + 1], gensym(v[i].s));
        else
            SETFLOAT(&x->atoms[i + 1], (t_float)v[i].f);
    }
    outlet_float(x->time, (t_float)(time * 1000.0));
    outlet_list(x->values, &s_list, n + 1, x->atoms);
}

static void tap_start(o2pd_tap *x) {
    o2h_router *r = o2hb_router(x->s->hb);
    if (!r || !x->tappee) return;
    int rc = o2h_tap(r, x->tappee->s_name, x->tapper, x->mode);
    if (rc != O2H_OK) pd_error(&x->obj, "o2.tap %s: %s", x->tappee->s_name, o2h_strerror(rc));
}

void o2pd_taps_rejoin(o2pd_session *s) {
    for (int i = 0; i < O2PD_MAX_TAPS; i++)
        if (s->taps[i]) tap_start(s->taps[i]);
}

static void *tap_new(t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    o2pd_tap *x = (o2pd_tap *)pd_new(tap_class);
    x->s = o2pd_session_acquire();
    x->values = outlet_new(&x->obj, &s_list);
    x->time = outlet_new(&x->obj, &s_float);
    x->mode = O2H_TAP_KEEP;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i].a_type == A_SYMBOL ? argv[i].a_w.w_symbol->s_name : "";
        if (strcmp(w, "-r") == 0)
            x->mode = O2H_TAP_RELIABLE;
        else if (strcmp(w, "-b") == 0 || strcmp(w, "-u") == 0)
            x->mode = O2H_TAP_BEST_EFFORT;
        else if (strcmp(w, "-k") == 0)
            x->mode = O2H_TAP_KEEP;
        else if (i == 0 && w[0] && w[0] != '-')
            x->tappee = argv[i].a_w.w_symbol;
        else
            pd_error(&x->obj, "o2.tap: unknown argument (want SERVICE [-r|-b|-k])");
    }
    if (!x->tappee) pd_error(&x->obj, "o2.tap: which service? [o2.tap SERVICE]");
    int slot = -1;
    for (int i = 0; i < O2PD_MAX_TAPS && slot < 0; i++)
        if (!x->s->taps[i]) slot = i;
    if (slot < 0) {
        pd_error(&x->obj, "o2.tap: at most %d taps", O2PD_MAX_TAPS);
        return x;
    }
    x->s->taps[slot] = x;
    snprintf(x->tapper, sizeof x->tapper, "pdtap%d%lx", slot, (unsigned long)(size_t)x & 0xffffff);
    char path[40];
    snprintf(path, sizeof path, "/%s", x->tapper);
    x->rc = o2hb_receiver_new(x->s->hb, tap_deliver, x);
    if (x->rc && x->tappee) o2hb_receiver_set(x->rc, path, NULL, true);
    tap_start(x);
    return x;
}

static void tap_free(o2pd_tap *x) {
    o2h_router *r = o2hb_router(x->s->hb);
    if (r && x->tappee && x->tapper[0]) o2h_untap(r, x->tappee->s_name, x->tapper);
    for (int i = 0; i < O2PD_MAX_TAPS; i++)
        if (x->s->taps[i] == x) x->s->taps[i] = NULL;
    if (x->rc) o2hb_receiver_free(x->rc);
    if (x->atoms) freebytes(x->atoms, sizeof(t_atom) * (size_t)x->atoms_cap);
    o2pd_session_release(x->s);
}

/* ---- [o2.time] ----------------------------------------------------------- */

typedef struct o2pd_time {
    t_object obj;
    o2pd_session *s;
    t_outlet *out;
    t_outlet *split; /* seconds and ms: exact when ms alone no longer fit a Pd float */
} o2pd_time;

static t_class *time_class;

static void time_bang(o2pd_time *x) {
    double t = o2pd_session_time(x->s);
    if (t >= 0) {
        double seconds = (double)(long long)t; /* t >= 0 */
        t_atom a[2];
        SETFLOAT(&a[0], (t_float)seconds);
        SETFLOAT(&a[1], (t_float)((t - seconds) * 1000.0));
        outlet_list(x->split, &s_list, 2, a);
    }
    outlet_float(x->out, t < 0 ? -1 : (t_float)(t * 1000.0));
}

static void *time_new(t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    (void)argv;
    o2pd_time *x = (o2pd_time *)pd_new(time_class);
    if (argc) pd_error(&x->obj, "o2.time: takes no arguments");
    x->s = o2pd_session_acquire();
    x->out = outlet_new(&x->obj, &s_float);
    x->split = outlet_new(&x->obj, &s_list);
    return x;
}

static void time_free(o2pd_time *x) {
    o2pd_session_release(x->s);
}

void o2pd_extras_setup(void) {
    status_class = class_new(gensym("o2.status"), (t_newmethod)status_new, (t_method)status_free,
                             sizeof(o2pd_status), 0, A_GIMME, 0);
    class_addbang(status_class, (t_method)status_bang);
    class_addsymbol(status_class, (t_method)status_set);
    tap_class = class_new(gensym("o2.tap"), (t_newmethod)tap_new, (t_method)tap_free,
                          sizeof(o2pd_tap), 0, A_GIMME, 0);
    time_class = class_new(gensym("o2.time"), (t_newmethod)time_new, (t_method)time_free,
                           sizeof(o2pd_time), 0, A_GIMME, 0);
    class_addbang(time_class, (t_method)time_bang);
}
