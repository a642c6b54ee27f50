/* Config overrides (o2hub --set): paths by index and by type, values, errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static const char *base = "{\"ensemble\": \"x\",\n"
                          " \"transports\": [{\"type\": \"tcp\", \"port\": 1},\n"
                          "                  {\"type\": \"osc\", \"ports\": [{\"port\": 2}]},\n"
                          "                  {\"type\": \"udp\"}, {\"type\": \"udp\"}]}";

/* Apply `set` to `base`; the result as compact JSON (or NULL), the path and why in the args. */
static char *apply(const char *set, int *rc, char *path, char *why) {
    json_t *root = json_loads(base, 0, NULL);
    cr_assert_not_null(root);
    *rc = o2h__config_set_json(root, set, path, 256, why, 200);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

Test(config_set, by_type_index_and_new_keys) {
    char path[256], why[200];
    int rc;
    char *t = apply("transports.tcp.port=0", &rc, path, why);
    cr_assert_eq(rc, O2H_OK, "%s", why);
    cr_assert_str_eq(path, "transports[0].port");
    cr_assert(strstr(t, "{\"type\":\"tcp\",\"port\":0}"), "%s", t);
    free(t);
    t = apply("transports.osc.ports[0].host=127.0.0.1", &rc, path, why);
    cr_assert_eq(rc, O2H_OK, "%s", why);
    cr_assert_str_eq(path, "transports[1].ports[0].host");
    cr_assert(strstr(t, "\"host\":\"127.0.0.1\""), "not JSON: taken as a string: %s", t);
    free(t);
    t = apply("transports[3].batch=[1,true]", &rc, path, why);
    cr_assert_eq(rc, O2H_OK, "%s", why);
    cr_assert(strstr(t, "{\"type\":\"udp\",\"batch\":[1,true]}"), "JSON values: %s", t);
    free(t);
    t = apply("ensemble=\"42\"", &rc, path, why);
    cr_assert(strstr(t, "\"ensemble\":\"42\""), "a JSON string: %s", t);
    free(t);
}

Test(config_set, bad_paths_say_why) {
    char path[256], why[200];
    int rc;
    free(apply("transports.udp.port=1", &rc, path, why));
    cr_assert_eq(rc, O2H_BAD_ARGS);
    cr_assert(strstr(why, "two entries have type \"udp\""), "%s", why);
    free(apply("transports.mqtt.port=1", &rc, path, why));
    cr_assert(strstr(why, "no entry has type \"mqtt\""), "%s", why);
    free(apply("transports[9].port=1", &rc, path, why));
    cr_assert(strstr(why, "no entry [9]"), "%s", why);
    free(apply("clock.reference=true", &rc, path, why));
    cr_assert(strstr(why, "clock is not in the config"), "%s", why);
    free(apply("ensemble.x=1", &rc, path, why));
    cr_assert(strstr(why, "ensemble is not an object"), "%s", why);
    free(apply("noequals", &rc, path, why));
    cr_assert(strstr(why, "KEY=VALUE"), "%s", why);
}

Test(config_set, later_errors_name_the_override) {
    o2h_error err = {0};
    config_doc *doc = o2h__config_doc_load_string(base, "hub.json", &err);
    cr_assert_not_null(doc);
    cr_assert_eq(o2h__config_doc_set(doc, "log_level=loud", &err), O2H_OK);
    router_config rc;
    cr_assert_eq(o2h__config_parse_router(doc, &rc, &err), O2H_CONFIG_ERROR);
    cr_assert_str_eq(err.file, "hub.json, --set log_level=loud");
    cr_assert_str_eq(err.key_path, "log_level");
    cr_assert_eq(err.line, 0, "no line of the file: the value is not there");
    o2h__config_doc_free(doc);
    doc = o2h__config_doc_load_string(base, "h", &err);
    cr_assert_eq(o2h__config_doc_set(doc, "a.b=1", &err), O2H_CONFIG_ERROR);
    cr_assert_str_eq(err.file, "--set a.b=1");
    o2h__config_doc_free(doc);
}
