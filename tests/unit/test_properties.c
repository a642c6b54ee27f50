/* Service properties: O2's string format, escaping, search rules, the API. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/o2hub.h>

#include "properties.h"

Test(properties, set_puts_the_newest_first_and_escapes) {
    char *p = o2h__props_set(NULL, "x", "1");
    cr_assert_str_eq(p, ";x:1;");
    char *q = o2h__props_set(p, "name", "a:b;c\\d");
    cr_assert_str_eq(q, ";name:a\\:b\\;c\\\\d;x:1;");
    char *r = o2h__props_set(q, "x", "2");
    cr_assert_str_eq(r, ";x:2;name:a\\:b\\;c\\\\d;", "setting again replaces");
    char v[64];
    cr_assert(o2h__props_get(r, "name", v, sizeof v));
    cr_assert_str_eq(v, "a:b;c\\d", "values come back unescaped");
    cr_assert_not(o2h__props_get(r, "nam", v, sizeof v), "no prefix matches of names");
    char *s = o2h__props_remove(r, "x");
    cr_assert_str_eq(s, ";name:a\\:b\\;c\\\\d;");
    free(p);
    free(q);
    free(r);
    free(s);
}

Test(properties, o2s_search_rules) {
    const char *p = ";city:Pittsburgh;zip:15213;";
    cr_assert(o2h__props_match(p, "city", "burgh"));
    cr_assert(o2h__props_match(p, "city", ":Pitt"));
    cr_assert_not(o2h__props_match(p, "city", ":burgh"));
    cr_assert(o2h__props_match(p, "city", "burgh;"));
    cr_assert_not(o2h__props_match(p, "city", "Pitt;"));
    cr_assert(o2h__props_match(p, "city", ":Pittsburgh;"));
    cr_assert_not(o2h__props_match(p, "city", ":Pitts;"));
    cr_assert_not(o2h__props_match(p, "state", "P"));
    cr_assert(o2h__props_valid_attr("abc123"));
    cr_assert_not(o2h__props_valid_attr("a-b"));
    cr_assert_not(o2h__props_valid_attr(""));
}

Test(properties, api_on_local_services) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "props"};
    o2h_router *r = o2h_router_new(&o, NULL);
    o2h_service_new(r, "synth");
    o2h_service_new(r, "drum");
    cr_assert_eq(o2h_service_set_property(r, "synth", "kind", "poly;phonic"), O2H_OK);
    cr_assert_eq(o2h_service_set_property(r, "drum", "kind", "percussion"), O2H_OK);
    cr_assert_eq(o2h_service_set_property(r, "nosuch", "kind", "x"), O2H_NO_SERVICE);
    cr_assert_eq(o2h_service_set_property(r, "synth", "bad attr", "x"), O2H_BAD_ARGS);
    char v[32];
    cr_assert_eq(o2h_service_get_property(r, "synth", "kind", v, sizeof v), O2H_OK);
    cr_assert_str_eq(v, "poly;phonic");
    const char *names[4];
    cr_assert_eq(o2h_service_search(r, "kind", ":poly", names, 4), 1);
    cr_assert_str_eq(names[0], "synth");
    cr_assert_eq(o2h_service_search(r, "kind", "c", names, 4), 2);
    cr_assert_eq(o2h_service_property_free(r, "synth", "kind"), O2H_OK);
    cr_assert_eq(o2h_service_property_free(r, "synth", "kind"), O2H_NOT_FOUND);
    cr_assert_eq(o2h_service_get_property(r, "synth", "kind", v, sizeof v), O2H_NOT_FOUND);
    o2h_router_free(r);
}
