/*
 * o2h_router_reload_file in one process: services offered, withdrawn and
 * given new properties live; the log level unless fixed; a changed plugin
 * entry named as needing a restart; a bad file refused with its location
 * and nothing changed. And o2h_router_stats_text sized like snprintf.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "router.h"

static char path[64];

static void make_file(void) {
    snprintf(path, sizeof path, "/tmp/o2hub-reload-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
}

static void remove_file(void) {
    unlink(path);
}

TestSuite(reload, .init = make_file, .fini = remove_file);

static void write_text(const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

typedef struct noted {
    char lines[16][600];
    int n;
} noted;

static void note(void *ctx, const char *key, bool applied, const char *what) {
    noted *n = ctx;
    if (n->n < 16)
        snprintf(n->lines[n->n++], sizeof n->lines[0], "%s|%d|%s", key, applied ? 1 : 0, what);
}

static bool has(const noted *n, const char *needle) {
    for (int i = 0; i < n->n; i++)
        if (strstr(n->lines[i], needle)) return true;
    return false;
}

static o2h_router *router_from(const char *text, bool fixed) {
    write_text(text);
    o2h_router_options o = {
        .struct_size = sizeof o, .log_level = O2H_LOG_ERROR, .log_level_fixed = fixed};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_file(path, &o, &err);
    cr_assert_not_null(r, "%s", err.message);
    return r;
}

Test(reload, services_change_live) {
    o2h_router *r = router_from("{\"ensemble\": \"rl\", \"services\": [{\"name\": \"a\"}, "
                                "{\"name\": \"b\", \"properties\": {\"k\": \"1\"}}]}",
                                false);
    cr_assert_eq(o2h_status(r, "a"), O2H_STATUS_LOCAL_NOTIME);
    write_text("{\"ensemble\": \"rl\", \"services\": [{\"name\": \"b\", \"properties\": "
               "{\"k\": \"2\"}}, {\"name\": \"c\"}]}");
    noted n = {0};
    o2h_error err;
    cr_assert_eq(o2h_router_reload_file(r, path, note, &n, &err), O2H_OK, "%s", err.message);
    cr_assert(has(&n, "services|1|\"a\" withdrawn"), "%s", n.lines[0]);
    cr_assert(has(&n, "services[0]|1|\"b\" offered with new properties"));
    cr_assert(has(&n, "services[1]|1|\"c\" offered"));
    cr_assert_eq(o2h_status(r, "a"), O2H_STATUS_UNKNOWN);
    cr_assert_eq(o2h_status(r, "c"), O2H_STATUS_LOCAL_NOTIME);
    char v[16];
    cr_assert_eq(o2h_service_get_property(r, "b", "k", v, sizeof v), O2H_OK);
    cr_assert_str_eq(v, "2");
    /* The same file again: nothing to say. */
    noted again = {0};
    cr_assert_eq(o2h_router_reload_file(r, path, note, &again, &err), O2H_OK);
    cr_assert_eq(again.n, 0, "%s", again.lines[0]);
    o2h_router_free(r);
}

Test(reload, log_level_live_unless_fixed_and_plugins_need_a_restart) {
    char text[512];
    snprintf(text, sizeof text,
             "{\"ensemble\": \"rl\", \"log_level\": \"warn\", \"plugin_path\": [\"%s\"],\n"
             " \"transports\": [{\"type\": \"udp\", \"port\": 0}]}",
             TRANSPORT_PLUGIN_DIR);
    o2h_router *r = router_from(text, false);
    o2h_router *fixed = router_from(text, true);
    snprintf(text, sizeof text,
             "{\"ensemble\": \"rl2\", \"log_level\": \"debug\", \"plugin_path\": [\"%s\"],\n"
             " \"transports\": [{\"type\": \"udp\", \"port\": 0, \"host\": \"127.0.0.1\"}]}",
             TRANSPORT_PLUGIN_DIR);
    write_text(text);
    noted n = {0}, nf = {0};
    o2h_error err;
    cr_assert_eq(o2h_router_reload_file(r, path, note, &n, &err), O2H_OK, "%s", err.message);
    cr_assert_eq(r->log_level, O2H_LOG_DEBUG);
    cr_assert(has(&n, "log_level|1|debug (was warn)"));
    cr_assert(has(&n, "ensemble|0|"));
    cr_assert(has(&n, "transports[0]|0|transports \"udp\" changed: needs a restart"));
    cr_assert_eq(o2h_router_reload_file(fixed, path, note, &nf, &err), O2H_OK);
    cr_assert_eq(fixed->log_level, O2H_LOG_ERROR);
    cr_assert(has(&nf, "log_level|0|"));
    o2h_router_free(r);
    o2h_router_free(fixed);
}

Test(reload, a_bad_file_changes_nothing_and_says_where) {
    o2h_router *r = router_from("{\"ensemble\": \"rl\", \"log_level\": \"warn\", "
                                "\"services\": [{\"name\": \"a\"}]}",
                                false);
    write_text(
        "{\"ensemble\": \"rl\", \"log_level\": \"debug\",\n \"services\": [{\"nom\": \"a\"}]}");
    noted n = {0};
    o2h_error err;
    cr_assert_eq(o2h_router_reload_file(r, path, note, &n, &err), O2H_CONFIG_ERROR);
    cr_assert_eq(n.n, 0);
    cr_assert_eq(err.line, 2, "%d: %s", err.line, err.message);
    cr_assert_str_eq(err.file, path);
    cr_assert_eq(r->log_level, O2H_LOG_WARN);
    cr_assert_eq(o2h_status(r, "a"), O2H_STATUS_LOCAL_NOTIME);
    /* A plugin that cannot be made is as bad as a syntax error. */
    write_text("{\"ensemble\": \"rl\", \"transports\": [{\"type\": \"nosuchplugin\"}]}");
    cr_assert_neq(o2h_router_reload_file(r, path, note, &n, &err), O2H_OK);
    cr_assert(strstr(err.key_path, "transports[0]"), "%s", err.key_path);
    o2h_router_free(r);
}

Test(reload, stats_text_is_sized_like_snprintf) {
    o2h_router *r = router_from("{\"ensemble\": \"rl\", \"services\": [{\"name\": \"a\"}]}", false);
    size_t need = o2h_router_stats_text(r, NULL, 0);
    char small[16];
    cr_assert_eq(o2h_router_stats_text(r, small, sizeof small), need);
    cr_assert_eq(strlen(small), sizeof small - 1);
    char *buf = malloc(need + 1);
    cr_assert_eq(o2h_router_stats_text(r, buf, need + 1), need);
    cr_assert_eq(strlen(buf), need);
    cr_assert(strstr(buf, "\no2hub_service_routed{service=\"a\"} 0\n"), "%s", buf);
    cr_assert(strstr(buf, "# TYPE o2hub_paused_links counter\n"));
    free(buf);
    o2h_router_free(r);
}

/* o2hub --set overrides hold for the file read again too. */
Test(reload, overrides_given_at_start_apply_to_the_new_file) {
    write_text("{\"ensemble\": \"file\", \"services\": [{\"name\": \"a\"}]}");
    const char *sets[] = {"ensemble=\"set\"", NULL};
    o2h_router_options o = {
        .struct_size = sizeof o, .log_level = O2H_LOG_ERROR, .config_set = sets};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_file(path, &o, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_str_eq(o2h_router_ensemble(r), "set");
    noted n = {0};
    cr_assert_eq(o2h_router_reload_file(r, path, note, &n, &err), O2H_OK, "%s", err.message);
    cr_assert_eq(n.n, 0, "the override still holds: %s", n.lines[0]);
    o2h_router_free(r);
}
