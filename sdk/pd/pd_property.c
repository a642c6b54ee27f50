/*
 * pd_property.c — [o2property] / [o2.property]: get, put and search service
 * properties. A value comes out of the left outlet (a symbol; search: a list
 * of service names); an unknown service or attribute bangs the right one.
 */
#include <string.h>

#include <m_pd.h>

#include "pd_objects.h"

typedef struct o2pd_property {
    t_object obj;
    o2pd_session *s;
    t_outlet *value;
    t_outlet *missing;
    t_symbol *service;
    t_symbol *attr;
} o2pd_property;

static t_class *property_class;

static o2h_router *router_of(o2pd_property *x, const char *what) {
    o2h_router *r = o2hb_router(x->s->hb);
    if (!r) pd_error(&x->obj, "o2property: %s: not joined", what);
    return r;
}

static void property_bang(o2pd_property *x) {
    if (!x->service || !x->attr) {
        pd_error(&x->obj, "o2property: get wants a service and an attribute");
        return;
    }
    o2h_router *r = router_of(x, "get");
    char value[MAXPDSTRING];
    if (r && o2h_service_get_property(r, x->service->s_name, x->attr->s_name, value,
                                      sizeof value) == O2H_OK)
        outlet_symbol(x->value, gensym(value));
    else
        outlet_bang(x->missing);
}

static void property_get(o2pd_property *x, t_symbol *service, t_symbol *attr) {
    x->service = service;
    x->attr = attr;
    property_bang(x);
}

static void property_put(o2pd_property *x, t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    if (argc < 2 || argv[0].a_type != A_SYMBOL || argv[1].a_type != A_SYMBOL) {
        pd_error(&x->obj, "o2property: put service attribute [value]");
        return;
    }
    x->service = argv[0].a_w.w_symbol;
    x->attr = argv[1].a_w.w_symbol;
    o2h_router *r = router_of(x, "put");
    if (!r) return;
    int rc;
    if (argc > 2) {
        char text[MAXPDSTRING];
        atom_string(&argv[2], text, sizeof text);
        rc = o2h_service_set_property(r, x->service->s_name, x->attr->s_name, text);
    } else {
        rc = o2h_service_property_free(r, x->service->s_name, x->attr->s_name);
    }
    if (rc != O2H_OK)
        pd_error(&x->obj, "o2property: put %s %s: %s (the service must be offered here)",
                 x->service->s_name, x->attr->s_name, o2h_strerror(rc));
    o2pd_session_kick(x->s);
}

static void property_search(o2pd_property *x, t_symbol *attr, t_symbol *pattern) {
    o2h_router *r = router_of(x, "search");
    if (!r) return;
    const char *names[256];
    int n = o2h_service_search(r, attr->s_name, pattern->s_name, names, 256);
    if (n > 256) n = 256;
    t_atom a[256];
    for (int i = 0; i < n; i++)
        SETSYMBOL(&a[i], gensym(names[i]));
    outlet_list(x->value, &s_list, n, a);
}

static void *property_new(t_symbol *sel, int argc, t_atom *argv) {
    (void)sel;
    o2pd_property *x = (o2pd_property *)pd_new(property_class);
    x->s = o2pd_session_acquire();
    x->value = outlet_new(&x->obj, &s_list);
    x->missing = outlet_new(&x->obj, &s_bang);
    /* made even with bad arguments, so that the patch's connections hold */
    bool symbols = argc <= 2 && (argc < 1 || argv[0].a_type == A_SYMBOL) &&
                   (argc < 2 || argv[1].a_type == A_SYMBOL);
    if (!symbols) pd_error(&x->obj, "o2property: wants [o2property SERVICE ATTRIBUTE] (symbols)");
    t_symbol *service = symbols && argc > 0 ? argv[0].a_w.w_symbol : NULL;
    t_symbol *attr = symbols && argc > 1 ? argv[1].a_w.w_symbol : NULL;
    x->service = service && service->s_name[0] ? service : NULL;
    x->attr = attr && attr->s_name[0] ? attr : NULL;
    return x;
}

static void property_free(o2pd_property *x) {
    o2pd_session_release(x->s);
}

void o2pd_property_setup(void) {
    property_class = class_new(gensym("o2property"), (t_newmethod)property_new,
                               (t_method)property_free, sizeof(o2pd_property), 0, A_GIMME, 0);
    class_addcreator((t_newmethod)property_new, gensym("o2.property"), A_GIMME, 0);
    class_addbang(property_class, (t_method)property_bang);
    class_addmethod(property_class, (t_method)property_get, gensym("get"), A_SYMBOL, A_SYMBOL, 0);
    class_addmethod(property_class, (t_method)property_put, gensym("put"), A_GIMME, 0);
    class_addmethod(property_class, (t_method)property_search, gensym("search"), A_SYMBOL, A_SYMBOL,
                    0);
}
