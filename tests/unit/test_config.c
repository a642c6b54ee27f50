/* Configuration: schema, located errors, plugin cfg accessors, the locator. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static config_doc *load(const char *json, o2h_error *err) {
    return o2h__config_doc_load_string(json, "test.json", err);
}

/* Parse `json` as a router config and expect a located error. */
static o2h_error expect_error(const char *json) {
    o2h_error err = {0};
    config_doc *doc = load(json, &err);
    if (doc) {
        router_config rc;
        cr_assert_eq(o2h__config_parse_router(doc, &rc, &err), O2H_CONFIG_ERROR, "no error for %s",
                     json);
        o2h__config_doc_free(doc);
    }
    cr_assert_eq(err.code, O2H_CONFIG_ERROR);
    cr_assert_str_eq(err.file, "test.json");
    return err;
}

Test(config, full_config_parses) {
    char dir[] = "/tmp/o2hub-cfg-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/r.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"ensemble\": \"scimu\", \"log_level\": \"debug\", \"clock\": {\"reference\": true},"
          " \"plugin_path\": [\"plugins\", \"/abs\"],"
          " \"transports\": [{\"type\": \"udp\", \"port\": 0}],"
          " \"discovery\": [{\"type\": \"dnssd\", \"required\": false}],"
          " \"services\": [{\"name\": \"ctrl\", \"properties\": {\"k\": \"a:b;c\\\\d\"}}]}",
          f);
    fclose(f);
    o2h_error err;
    config_doc *doc = o2h__config_doc_load_file(path, &err);
    cr_assert_not_null(doc, "%s", err.message);
    router_config rc;
    cr_assert_eq(o2h__config_parse_router(doc, &rc, &err), O2H_OK, "%s", err.message);
    cr_assert_str_eq(rc.ensemble, "scimu");
    cr_assert_eq(rc.log_level, 3);
    cr_assert(rc.clock_reference);
    cr_assert_eq(rc.n_plugin_path, 2);
    char want[160];
    snprintf(want, sizeof want, "%s/plugins", dir);
    cr_assert_str_eq(rc.plugin_path[0], want, "relative to the config file");
    cr_assert_str_eq(rc.plugin_path[1], "/abs");
    cr_assert_eq(rc.n_plugins, 2);
    cr_assert_str_eq(rc.plugins[0].kind_key, "transports");
    cr_assert_str_eq(rc.plugins[0].type, "udp");
    cr_assert(rc.plugins[0].required, "required by default");
    cr_assert_str_eq(rc.plugins[1].kind_key, "discovery");
    cr_assert_not(rc.plugins[1].required);
    cr_assert_eq(rc.n_services, 1);
    cr_assert_str_eq(rc.services[0].properties, ";k:a\\:b\\;c\\\\d;");
    o2h__config_doc_free(doc);
    unlink(path);
    rmdir(dir);
}

Test(config, unknown_top_level_key) {
    o2h_error e = expect_error("{\"ensemble\": \"x\",\n \"enseble\": 1}");
    cr_assert_str_eq(e.key_path, "enseble");
    cr_assert_eq(e.line, 2);
    cr_assert_eq(e.column, 2);
    cr_assert(strstr(e.message, "unknown key \"enseble\""), "%s", e.message);
}

Test(config, unknown_nested_key) {
    o2h_error e = expect_error("{\"ensemble\": \"x\", \"clock\": {\"referense\": true}}");
    cr_assert_str_eq(e.key_path, "clock.referense");
    cr_assert_eq(e.column, 29);
}

Test(config, duplicate_key_is_located_by_jansson) {
    o2h_error e = expect_error("{\"ensemble\": \"x\",\n\"ensemble\": \"y\"}");
    cr_assert_eq(e.line, 2);
    cr_assert(strstr(e.message, "duplicate"), "%s", e.message);
}

Test(config, missing_ensemble) {
    o2h_error e = expect_error("{\"log_level\": \"info\"}");
    cr_assert(strstr(e.message, "missing required key \"ensemble\""), "%s", e.message);
    cr_assert_eq(e.line, 1);
    cr_assert_eq(e.column, 1);
}

Test(config, bad_values_and_types) {
    o2h_error e = expect_error("{\"ensemble\": \"has/slash\"}");
    cr_assert_str_eq(e.key_path, "ensemble");
    cr_assert_eq(e.column, 14);
    e = expect_error("{\"ensemble\": 5}");
    cr_assert(strstr(e.message, "expected a string, found an integer"), "%s", e.message);
    e = expect_error("{\"ensemble\": \"x\", \"log_level\": \"loud\"}");
    cr_assert_str_eq(e.key_path, "log_level");
    e = expect_error("{\"ensemble\": \"x\", \"clock\": {\"reference\": \"yes\"}}");
    cr_assert_str_eq(e.key_path, "clock.reference");
    cr_assert(strstr(e.message, "expected a boolean, found a string"), "%s", e.message);
    e = expect_error("{\"ensemble\": \"x\", \"plugin_path\": [\"ok\", 3]}");
    cr_assert_str_eq(e.key_path, "plugin_path[1]");
    cr_assert_eq(e.column, 41);
    e = expect_error("{\"ensemble\": \"x\", \"transports\": {}}");
    cr_assert(strstr(e.message, "expected an array"), "%s", e.message);
}

Test(config, plugin_entries_need_a_valid_type) {
    o2h_error e = expect_error("{\"ensemble\": \"x\", \"transports\": [{\"port\": 1}]}");
    cr_assert_str_eq(e.key_path, "transports[0]");
    cr_assert(strstr(e.message, "missing required key \"type\""), "%s", e.message);
    e = expect_error("{\"ensemble\": \"x\", \"plugins\": [{\"type\": \"Bad Type\"}]}");
    cr_assert_str_eq(e.key_path, "plugins[0].type");
    e = expect_error("{\"ensemble\": \"x\", \"discovery\": [{\"type\": \"a\", \"required\": 1}]}");
    cr_assert_str_eq(e.key_path, "discovery[0].required");
}

Test(config, services_are_checked) {
    o2h_error e = expect_error("{\"ensemble\": \"x\", \"services\": [{\"name\": \"9x\"}]}");
    cr_assert_str_eq(e.key_path, "services[0].name");
    cr_assert(strstr(e.message, "not a valid service name"), "%s", e.message);
    e = expect_error("{\"ensemble\": \"x\", \"services\": [{\"name\": \"a\", \"properties\": "
                     "{\"x\": 1}}]}");
    cr_assert_str_eq(e.key_path, "services[0].properties.x");
    e = expect_error("{\"ensemble\": \"x\", \"services\": [{\"name\": \"a\", \"extra\": 1}]}");
    cr_assert_str_eq(e.key_path, "services[0].extra");
}

Test(config, truncated_json_reports_jansson_position) {
    o2h_error err;
    cr_assert_null(load("{\n  \"ensemble\": \"x\",\n  \"services\": [", &err));
    cr_assert_eq(err.code, O2H_CONFIG_ERROR);
    cr_assert_eq(err.line, 3);
    cr_assert(strstr(err.message, "invalid JSON"), "%s", err.message);
}

Test(config, missing_file_is_named) {
    o2h_error err;
    cr_assert_null(o2h__config_doc_load_file("/no/such/dir/r.json", &err));
    cr_assert(strstr(err.message, "/no/such/dir/r.json"), "%s", err.message);
    cr_assert(strstr(err.message, "No such file"), "%s", err.message);
}

/* ---- the accessors plugins use ---- */

static const o2h_cfg *plugin_cfg(config_doc **doc, const char *json) {
    o2h_error err;
    *doc = load(json, &err);
    cr_assert_not_null(*doc, "%s", err.message);
    router_config rc;
    cr_assert_eq(o2h__config_parse_router(*doc, &rc, &err), O2H_OK, "%s", err.message);
    cr_assert_eq(rc.n_plugins, 1);
    return rc.plugins[0].cfg;
}

Test(config, cfg_accessors_and_defaults) {
    config_doc *doc;
    const o2h_cfg *c = plugin_cfg(&doc, "{\"ensemble\": \"x\", \"transports\": [{\"type\": \"t\","
                                        " \"port\": 80, \"rate\": 2.5, \"name\": \"n\", \"on\": "
                                        "true, \"peers\": [\"a\", {\"x\": 1}]}]}");
    int64_t port;
    double rate;
    const char *name;
    bool on;
    cr_assert_eq(o2h__config_cfg_int(c, "port", 0, 0, 65535, &port), O2H_OK);
    cr_assert_eq(port, 80);
    cr_assert_eq(o2h__config_cfg_int(c, "absent", 7, 0, 10, &port), O2H_NOT_FOUND);
    cr_assert_eq(port, 7);
    cr_assert_eq(o2h__config_cfg_double(c, "rate", 0, &rate), O2H_OK);
    cr_assert_eq(rate, 2.5);
    cr_assert_eq(o2h__config_cfg_string(c, "name", NULL, &name), O2H_OK);
    cr_assert_str_eq(name, "n");
    cr_assert_eq(o2h__config_cfg_bool(c, "on", false, &on), O2H_OK);
    cr_assert(on);
    cr_assert_eq(o2h__config_cfg_array_len(c, "peers"), 2);
    cr_assert_str_eq(o2h__config_cfg_as_string(o2h__config_cfg_array_item(c, "peers", 0)), "a");
    const o2h_cfg *item = o2h__config_cfg_array_item(c, "peers", 1);
    int64_t x;
    cr_assert_eq(o2h__config_cfg_int(item, "x", 0, 0, 9, &x), O2H_OK);
    cr_assert_eq(o2h__config_cfg_check_unread(c), O2H_OK, "every key was read");
    o2h__config_doc_free(doc);
}

Test(config, cfg_range_error_is_located_at_the_value) {
    config_doc *doc;
    const o2h_cfg *c = plugin_cfg(&doc, "{\"ensemble\": \"x\",\n\"transports\": [\n"
                                        "  {\"type\": \"t\", \"port\": 70000}]}");
    int64_t port;
    cr_assert_eq(o2h__config_cfg_int(c, "port", 0, 0, 65535, &port), O2H_CONFIG_ERROR);
    o2h_error err;
    cr_assert_eq(o2h__config_doc_take_error(doc, &err), O2H_CONFIG_ERROR);
    cr_assert_str_eq(err.key_path, "transports[0].port");
    cr_assert_eq(err.line, 3);
    cr_assert_eq(err.column, 25);
    cr_assert(strstr(err.message, "70000 is out of range [0, 65535]"), "%s", err.message);
    o2h__config_doc_free(doc);
}

Test(config, cfg_int_refuses_reals_and_first_error_wins) {
    config_doc *doc;
    const o2h_cfg *c = plugin_cfg(&doc, "{\"ensemble\": \"x\", \"transports\": [{\"type\": \"t\","
                                        " \"a\": 1.5, \"b\": \"s\"}]}");
    int64_t v;
    cr_assert_eq(o2h__config_cfg_int(c, "a", 0, 0, 9, &v), O2H_CONFIG_ERROR);
    cr_assert_eq(o2h__config_cfg_int(c, "b", 0, 0, 9, &v), O2H_CONFIG_ERROR);
    o2h_error err;
    o2h__config_doc_take_error(doc, &err);
    cr_assert_str_eq(err.key_path, "transports[0].a");
    cr_assert(strstr(err.message, "expected an integer, found a number"), "%s", err.message);
    o2h__config_doc_free(doc);
}

Test(config, unread_keys_are_unknown_keys_even_nested) {
    config_doc *doc;
    const o2h_cfg *c = plugin_cfg(&doc, "{\"ensemble\": \"x\", \"transports\": [{\"type\": \"t\","
                                        " \"peers\": [{\"host\": \"h\", \"prot\": 1}]}]}");
    const o2h_cfg *peer = o2h__config_cfg_array_item(c, "peers", 0);
    const char *host;
    o2h__config_cfg_string(peer, "host", NULL, &host);
    cr_assert_eq(o2h__config_cfg_check_unread(c), O2H_CONFIG_ERROR);
    o2h_error err;
    o2h__config_doc_take_error(doc, &err);
    cr_assert_str_eq(err.key_path, "transports[0].peers[0].prot");
    cr_assert(strstr(err.message, "unknown key \"prot\""), "%s", err.message);
    o2h__config_doc_free(doc);
}

Test(config, root_cfg_for_separate_plugin_text) {
    o2h_error err;
    config_doc *doc = load("{\n  \"answer\": \"x\"\n}", &err);
    o2h_cfg *c = o2h__config_doc_root_cfg(doc, "plugins[probe]");
    int64_t v;
    cr_assert_eq(o2h__config_cfg_int(c, "answer", 0, 0, 9, &v), O2H_CONFIG_ERROR);
    o2h__config_doc_take_error(doc, &err);
    cr_assert_str_eq(err.key_path, "plugins[probe].answer");
    cr_assert_eq(err.line, 2);
    cr_assert_eq(err.column, 13);
    o2h__config_doc_free(doc);
}

/* ---- the locator ---- */

Test(config, locate_edge_cases) {
    int line, col;
    const char *text = "{\"a\": \"x\\\"b: {\", \"b\": [[1, 2], [3, {\"c\": 4}]]}";
    cr_assert(o2h__config_locate(text, "b[1][1].c", false, &line, &col));
    cr_assert_eq(col, 42);
    cr_assert(o2h__config_locate(text, "b[1][1].c", true, &line, &col));
    cr_assert_eq(col, 37);
    cr_assert(o2h__config_locate(text, "a", false, &line, &col));
    cr_assert_eq(col, 7);
    cr_assert_not(o2h__config_locate(text, "b[5]", false, &line, &col));
    cr_assert_not(o2h__config_locate(text, "zz", false, &line, &col));
    cr_assert(o2h__config_locate("{\r\n  \"k\":\r\n    1}", "k", false, &line, &col));
    cr_assert_eq(line, 3);
    cr_assert_eq(col, 5);
    cr_assert(o2h__config_locate("{\r\n  \"k\":\r\n    1}", "k", true, &line, &col));
    cr_assert_eq(line, 2);
    cr_assert_eq(col, 3);
    cr_assert_not(o2h__config_locate("{\"a\": [1, 2", "a[5]", false, &line, &col));
    cr_assert_not(o2h__config_locate("\"unterminated", "a", false, &line, &col));
    cr_assert_not(o2h__config_locate("", "a", false, &line, &col));
    cr_assert(o2h__config_locate("  [1]", "", false, &line, &col));
    cr_assert_eq(col, 3);
}
