/*
 * pd_ensemble.c — [o2ensemble] / [o2.ensemble]: join and leave the
 * ensemble, with O2's external's arguments (name, network level, o2lite,
 * http, http root, -d, -c) and o2hub's own (-port, -host, -peer,
 * -discovery, -config, -log). The object that joined is the active one;
 * only it (or any, when none is) obeys leave.
 */
#include <stdio.h>
#include <string.h>

#include <m_pd.h>

#include "pd_objects.h"

typedef struct o2pd_ensemble {
    t_object obj;
    o2pd_session *s;
    t_outlet *out;
    bool clock_reference; /* set by -c or the clock message; O2's default is on */
    t_clock *announce;    /* "joined" from the creation arguments: once the patch is loaded */
} o2pd_ensemble;

static t_class *ensemble_class;

static bool flag_value(t_object *x, const char *flag, int argc, const t_atom *argv, int i,
                       t_atomtype want) {
    if (i + 1 >= argc || argv[i + 1].a_type != want) {
        pd_error(x, "o2ensemble: %s wants a %s", flag, want == A_FLOAT ? "number" : "symbol");
        return false;
    }
    return true;
}

static int log_level_named(const char *name) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

/* Parse join arguments into *o. false (with the reason in the console) on any error. */
static bool parse_join(o2pd_ensemble *x, int argc, const t_atom *argv, o2hb_join_options *o) {
    t_object *obj = &x->obj;
    memset(o, 0, sizeof *o);
    o->network_level = 2;
    o->log_level = O2H_LOG_WARN;
    o->clock_reference = x->clock_reference;
    int positional = 0;
    for (int i = 0; i < argc; i++) {
        const t_atom *a = &argv[i];
        const char *word = a->a_type == A_SYMBOL ? a->a_w.w_symbol->s_name : NULL;
        if (word && word[0] == '-' && word[1]) {
            if (strcmp(word, "-d") == 0) {
                /* O2's debug flags: any of them means "tell me more" here */
                if (!flag_value(obj, word, argc, argv, i, A_SYMBOL)) return false;
                o->log_level = O2H_LOG_DEBUG;
                i++;
            } else if (strcmp(word, "-c") == 0) {
                if (!flag_value(obj, word, argc, argv, i, A_FLOAT)) return false;
                o->clock_reference = argv[++i].a_w.w_float != 0;
            } else if (strcmp(word, "-port") == 0) {
                if (!flag_value(obj, word, argc, argv, i, A_FLOAT)) return false;
                o->port = (int)argv[++i].a_w.w_float;
                if (o->port < 0 || o->port > 65535) {
                    pd_error(obj, "o2ensemble: -port %d is not a port", o->port);
                    return false;
                }
            } else if (strcmp(word, "-host") == 0) {
                if (!flag_value(obj, word, argc, argv, i, A_SYMBOL)) return false;
                o->host = argv[++i].a_w.w_symbol->s_name;
            } else if (strcmp(word, "-peer") == 0) {
                if (!flag_value(obj, word, argc, argv, i, A_SYMBOL)) return false;
                if (o->n_peers == O2HB_MAX_PEERS) {
                    pd_error(obj, "o2ensemble: at most %d -peer", O2HB_MAX_PEERS);
                    return false;
                }
                o->peers[o->n_peers++] = argv[++i].a_w.w_symbol->s_name;
            } else if (strcmp(word, "-discovery") == 0) {
                if (!flag_value(obj, word, argc, argv, i, A_SYMBOL)) return false;
                o->discovery = argv[++i].a_w.w_symbol->s_name;
                if (strcmp(o->discovery, "broadcast") && strcmp(o->discovery, "static") &&
                    strcmp(o->discovery, "none")) {
                    pd_error(obj, "o2ensemble: -discovery %s: want broadcast, static or none",
                             o->discovery);
                    return false;
                }
            } else if (strcmp(word, "-config") == 0) {
                if (!flag_value(obj, word, argc, argv, i, A_SYMBOL)) return false;
                o->config_file = argv[++i].a_w.w_symbol->s_name;
            } else if (strcmp(word, "-log") == 0) {
                if (!flag_value(obj, word, argc, argv, i, A_SYMBOL)) return false;
                o->log_level = log_level_named(argv[++i].a_w.w_symbol->s_name);
                if (o->log_level < 0) {
                    pd_error(obj, "o2ensemble: -log %s: want error, warn, info or debug",
                             argv[i].a_w.w_symbol->s_name);
                    return false;
                }
            } else {
                pd_error(obj,
                         "o2ensemble: unknown option %s (known: -d -c -port -host -peer "
                         "-discovery -config -log)",
                         word);
                return false;
            }
            continue;
        }
        switch (positional++) {
        case 0:
            if (!word) {
                pd_error(obj, "o2ensemble: the ensemble name must be a symbol");
                return false;
            }
            o->ensemble = word;
            break;
        case 1:
            /* O2's level 3 or a broker's address: MQTT besides the local network.
               The local network still works, so join it and say what is missing. */
            if (word) {
                post("o2ensemble: MQTT broker %s: not in the Pd external (use -config with "
                     "an mqtt discovery entry), using network level 2",
                     word);
                o->network_level = 2;
                break;
            }
            o->network_level = (int)a->a_w.w_float;
            if (o->network_level == 3) {
                post("o2ensemble: network level 3 (MQTT): not in the Pd external (use -config "
                     "with an mqtt discovery entry), using 2");
                o->network_level = 2;
            }
            break;
        case 2: break; /* o2lite: the tcp and udp transports always accept O2lite */
        case 3:
            if (word || a->a_w.w_float != 0)
                post("o2ensemble: http is not in the Pd external; use -config with a "
                     "websocket transport");
            break;
        case 4: break; /* http root */
        default: pd_error(obj, "o2ensemble: too many arguments"); return false;
        }
    }
    if (!o->ensemble && !o->config_file) {
        pd_error(obj, "o2ensemble: join needs an ensemble name");
        return false;
    }
    return true;
}

static void ensemble_output_process(o2pd_ensemble *x) {
    o2h_router *r = o2hb_router(x->s->hb);
    t_atom a[2];
    SETSYMBOL(&a[0], gensym(o2h_router_ensemble(r)));
    const char *name = o2h_router_process_name(r);
    SETSYMBOL(&a[1], gensym(name ? name : "_o2"));
    outlet_anything(x->out, gensym("joined"), 2, a);
}

static void ensemble_announce(o2pd_ensemble *x) {
    if (x->s->active == x && o2hb_router(x->s->hb)) ensemble_output_process(x);
}

static void ensemble_join(o2pd_ensemble *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    o2hb_join_options o;
    if (!parse_join(x, argc, argv, &o)) return;
    if (x->s->active && x->s->active != x) {
        pd_error(&x->obj, "o2ensemble: another o2ensemble has joined; send it leave first");
        return;
    }
    int rc = o2hb_join(x->s->hb, &o);
    o2pd_session_watch(x->s);
    if (rc != O2H_OK) {
        pd_error(&x->obj, "o2ensemble: join failed: %s", o2h_strerror(rc));
        x->s->active = NULL;
        t_atom a;
        SETFLOAT(&a, rc);
        outlet_anything(x->out, gensym("error"), 1, &a);
        return;
    }
    x->s->active = x;
    ensemble_output_process(x);
}

static void ensemble_leave(o2pd_ensemble *x) {
    if (x->s->active && x->s->active != x) return; /* O2's rule: only the active one */
    o2hb_leave(x->s->hb);
    o2pd_session_watch(x->s);
    x->s->active = NULL;
    outlet_anything(x->out, gensym("left"), 0, NULL);
}

static o2h_router *joined(o2pd_ensemble *x, const char *what) {
    o2h_router *r = o2hb_router(x->s->hb);
    if (!r) pd_error(&x->obj, "o2ensemble: %s: not joined", what);
    return r;
}

static void ensemble_version(o2pd_ensemble *x) {
    t_atom a;
    SETSYMBOL(&a, gensym(o2h_version_string()));
    outlet_anything(x->out, gensym("version"), 1, &a);
}

static void ensemble_addresses(o2pd_ensemble *x) {
    o2h_router *r = joined(x, "addresses");
    const char *name = r ? o2h_router_process_name(r) : NULL;
    unsigned pip, iip, port;
    if (!name || sscanf(name, "@%8x:%8x:%4x", &pip, &iip, &port) != 3) return;
    char pub[20], in[20];
    snprintf(pub, sizeof pub, "%u.%u.%u.%u", pip >> 24, (pip >> 16) & 255, (pip >> 8) & 255,
             pip & 255);
    snprintf(in, sizeof in, "%u.%u.%u.%u", iip >> 24, (iip >> 16) & 255, (iip >> 8) & 255,
             iip & 255);
    t_atom a[3];
    SETSYMBOL(&a[0], gensym(pub));
    SETSYMBOL(&a[1], gensym(in));
    SETFLOAT(&a[2], (t_float)port);
    outlet_anything(x->out, gensym("address"), 3, a);
}

static void ensemble_status(o2pd_ensemble *x, t_symbol *service) {
    o2h_router *r = o2hb_router(x->s->hb);
    t_atom a[2];
    SETSYMBOL(&a[0], service);
    SETFLOAT(&a[1], r ? (t_float)o2h_status(r, service->s_name) : -1);
    outlet_anything(x->out, gensym("status"), 2, a);
}

static void ensemble_time(o2pd_ensemble *x) {
    double t = o2pd_session_time(x->s);
    t_atom a;
    SETFLOAT(&a, t < 0 ? -1 : (t_float)(t * 1000.0));
    outlet_anything(x->out, gensym("time"), 1, &a);
}

static void ensemble_clock(o2pd_ensemble *x, t_floatarg reference) {
    x->clock_reference = reference > 0;
    o2h_router *r = o2hb_router(x->s->hb);
    if (r && x->clock_reference) o2h_clock_set(r);
}

static void ensemble_tap(o2pd_ensemble *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    int mode = O2H_TAP_KEEP;
    if (argc < 2 || argv[0].a_type != A_SYMBOL || argv[1].a_type != A_SYMBOL) {
        pd_error(&x->obj, "o2ensemble: tap tappee tapper [-r|-b|-k]");
        return;
    }
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i].a_type == A_SYMBOL ? argv[i].a_w.w_symbol->s_name : "";
        if (strcmp(f, "-r") == 0)
            mode = O2H_TAP_RELIABLE;
        else if (strcmp(f, "-b") == 0 || strcmp(f, "-u") == 0)
            mode = O2H_TAP_BEST_EFFORT;
        else if (strcmp(f, "-k") == 0)
            mode = O2H_TAP_KEEP;
        else {
            pd_error(&x->obj, "o2ensemble: tap: unknown flag (want -r, -b or -k)");
            return;
        }
    }
    o2h_router *r = joined(x, "tap");
    if (!r) return;
    int rc = o2h_tap(r, argv[0].a_w.w_symbol->s_name, argv[1].a_w.w_symbol->s_name, mode);
    if (rc != O2H_OK) pd_error(&x->obj, "o2ensemble: tap: %s", o2h_strerror(rc));
}

static void ensemble_untap(o2pd_ensemble *x, t_symbol *tappee, t_symbol *tapper) {
    o2h_router *r = joined(x, "untap");
    if (!r) return;
    int rc = o2h_untap(r, tappee->s_name, tapper->s_name);
    if (rc != O2H_OK) pd_error(&x->obj, "o2ensemble: untap: %s", o2h_strerror(rc));
}

static void ensemble_unsupported(o2pd_ensemble *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)argc;
    (void)argv;
    pd_error(&x->obj,
             "o2ensemble: %s is not in o2hub's Pd external (use o2hub's config: an osc "
             "transport; the clock jumps by itself)",
             sel->s_name);
}

static void *ensemble_new(t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    o2pd_ensemble *x = (o2pd_ensemble *)pd_new(ensemble_class);
    x->s = o2pd_session_acquire();
    x->out = outlet_new(&x->obj, &s_list);
    x->clock_reference = true;
    /* O2's rule: without arguments the object waits for a join message. With
     * a name (or -config) it joins; with options alone nothing would join. */
    bool named = false;
    for (int i = 0; i < argc && !named; i++) {
        const char *w = argv[i].a_type == A_SYMBOL ? argv[i].a_w.w_symbol->s_name : NULL;
        if (!w || w[0] != '-' || !w[1] || strcmp(w, "-config") == 0)
            named = true; /* a number in the name's place: join says what is wrong */
        else
            i++; /* every option takes one value */
    }
    x->announce = clock_new(x, (t_method)ensemble_announce);
    if (named) {
        ensemble_join(x, gensym("join"), argc, argv);
        clock_delay(x->announce, 0); /* nothing is connected to the outlet yet */
    } else if (argc) {
        pd_error(&x->obj, "o2ensemble: options but no ensemble name: not joined (send it "
                          "join NAME ...)");
    }
    return x;
}

static void ensemble_free(o2pd_ensemble *x) {
    clock_free(x->announce);
    if (x->s->active == x) {
        o2hb_leave(x->s->hb);
        o2pd_session_watch(x->s);
        x->s->active = NULL;
    }
    o2pd_session_release(x->s);
}

void o2pd_ensemble_setup(void) {
    ensemble_class = class_new(gensym("o2ensemble"), (t_newmethod)ensemble_new,
                               (t_method)ensemble_free, sizeof(o2pd_ensemble), 0, A_GIMME, 0);
    class_addcreator((t_newmethod)ensemble_new, gensym("o2.ensemble"), A_GIMME, 0);
    class_addmethod(ensemble_class, (t_method)ensemble_join, gensym("join"), A_GIMME, 0);
    class_addmethod(ensemble_class, (t_method)ensemble_leave, gensym("leave"), 0);
    class_addmethod(ensemble_class, (t_method)ensemble_version, gensym("version"), 0);
    class_addmethod(ensemble_class, (t_method)ensemble_addresses, gensym("addresses"), 0);
    class_addmethod(ensemble_class, (t_method)ensemble_status, gensym("status"), A_SYMBOL, 0);
    class_addmethod(ensemble_class, (t_method)ensemble_time, gensym("time"), 0);
    class_addmethod(ensemble_class, (t_method)ensemble_clock, gensym("clock"), A_FLOAT, 0);
    class_addmethod(ensemble_class, (t_method)ensemble_tap, gensym("tap"), A_GIMME, 0);
    class_addmethod(ensemble_class, (t_method)ensemble_untap, gensym("untap"), A_SYMBOL, A_SYMBOL,
                    0);
    class_addmethod(ensemble_class, (t_method)ensemble_unsupported, gensym("clockjump"), A_GIMME,
                    0);
    class_addmethod(ensemble_class, (t_method)ensemble_unsupported, gensym("oscport"), A_GIMME, 0);
    class_addmethod(ensemble_class, (t_method)ensemble_unsupported, gensym("oscdelegate"), A_GIMME,
                    0);
}
