/* Router objects: independence of instances, configuration, errors. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

typedef struct tally {
    int n;
    int64_t sum;
} tally;

static void add_handler(o2h_router *r, const o2h_msg *msg, const char *types,
                        const o2h_arg *const *argv, int argc, void *user_data) {
    tally *t = user_data;
    t->n++;
    t->sum += argv[0]->i;
}

static o2h_router *router_named(const char *ensemble) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = ensemble};
    o2h_error err;
    o2h_router *r = o2h_router_new(&o, &err);
    cr_assert_not_null(r, "%s", err.message);
    return r;
}

Test(router, two_routers_side_by_side_are_independent) {
    o2h_router *a = router_named("ens-a");
    o2h_router *b = router_named("ens-b");
    tally ta = {0}, tb = {0};
    /* The same service and method names in both: no shared tables. */
    cr_assert_eq(o2h_service_new(a, "svc"), O2H_OK);
    cr_assert_eq(o2h_service_new(b, "svc"), O2H_OK);
    o2h_method_new(a, "/svc/add", "i", add_handler, &ta, false, true);
    o2h_method_new(b, "/svc/add", "i", add_handler, &tb, false, true);
    o2h_send(a, "/svc/add", 0, "i", 1);
    o2h_send(a, "/svc/add", 0, "i", 2);
    o2h_send(b, "/svc/add", 0, "i", 100);
    cr_assert_eq(ta.n, 2);
    cr_assert_eq(ta.sum, 3);
    cr_assert_eq(tb.n, 1);
    cr_assert_eq(tb.sum, 100);
    cr_assert_eq(o2h_service_free(a, "svc"), O2H_OK);
    cr_assert_eq(o2h_status(a, "svc"), O2H_STATUS_UNKNOWN);
    cr_assert_eq(o2h_status(b, "svc"), O2H_STATUS_LOCAL_NOTIME, "freeing in a leaves b alone");
    cr_assert_str_eq(o2h_router_ensemble(a), "ens-a");
    cr_assert_str_eq(o2h_router_ensemble(b), "ens-b");
    o2h_stats sa = {.struct_size = sizeof sa}, sb = {.struct_size = sizeof sb};
    o2h_router_get_stats(a, &sa);
    o2h_router_get_stats(b, &sb);
    cr_assert_eq(sa.delivered, 2);
    cr_assert_eq(sb.delivered, 1);
    o2h_router_free(a);
    o2h_router_free(b);
}

#define PER_THREAD 200000

static void *busy_router(void *arg) {
    tally *t = arg;
    o2h_router *r = router_named("threaded");
    o2h_service_new(r, "svc");
    o2h_method_new(r, "/svc/add", "i", add_handler, t, false, true);
    for (int i = 0; i < PER_THREAD; i++)
        o2h_send(r, "/svc/add", 0, "i", 1);
    o2h_router_free(r);
    return NULL;
}

Test(router, two_routers_on_two_threads_at_once) {
    tally t1 = {0}, t2 = {0};
    pthread_t a, b;
    pthread_create(&a, NULL, busy_router, &t1);
    pthread_create(&b, NULL, busy_router, &t2);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    cr_assert_eq(t1.n, PER_THREAD);
    cr_assert_eq(t2.n, PER_THREAD);
    cr_assert_eq(t1.sum, PER_THREAD);
}

Test(router, bad_ensemble_is_refused) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "a/b"};
    o2h_error err;
    cr_assert_null(o2h_router_new(&o, &err));
    cr_assert_eq(err.code, O2H_BAD_NAME);
    cr_assert(strstr(err.message, "a/b"));
    o.ensemble = NULL;
    cr_assert_null(o2h_router_new(&o, &err));
}

Test(router, services_from_config_exist) {
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(
        "{\"ensemble\": \"cfg\", \"services\": [{\"name\": \"ctrl\", \"properties\": "
        "{\"xloc\": \"0.3\"}}, {\"name\": \"other\"}]}",
        "inline", NULL, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_str_eq(o2h_router_ensemble(r), "cfg");
    cr_assert_eq(o2h_status(r, "ctrl"), O2H_STATUS_LOCAL_NOTIME);
    cr_assert_eq(o2h_status(r, "other"), O2H_STATUS_LOCAL_NOTIME);
    cr_assert_eq(o2h_status(r, "missing"), O2H_STATUS_UNKNOWN);
    cr_assert_eq(o2h_service_new(r, "ctrl"), O2H_SERVICE_EXISTS);
    o2h_router_free(r);
}

Test(router, config_error_on_line_7_is_located) {
    char dir[] = "/tmp/o2hub-router-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/bad.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\n"                               /* 1 */
          "  \"ensemble\": \"demo\",\n"       /* 2 */
          "  \"log_level\": \"info\",\n"      /* 3 */
          "  \"clock\": {\n"                  /* 4 */
          "    \"reference\": false\n"        /* 5 */
          "  },\n"                            /* 6 */
          "  \"services\": [{\"name\": 5}]\n" /* 7: name must be a string */
          "}\n",
          f);
    fclose(f);
    o2h_error err;
    cr_assert_null(o2h_router_new_from_file(path, NULL, &err));
    cr_assert_eq(err.code, O2H_CONFIG_ERROR);
    cr_assert_eq(err.line, 7);
    cr_assert_eq(err.column, 25);
    cr_assert_str_eq(err.key_path, "services[0].name");
    char line[1024], want[300];
    o2h_error_format(&err, line, sizeof line);
    snprintf(want, sizeof want, "%s:7:25: services[0].name: ", path);
    cr_assert(strncmp(line, want, strlen(want)) == 0, "got: %s", line);
    unlink(path);
    rmdir(dir);
}

Test(router, missing_config_file_names_it) {
    o2h_error err;
    cr_assert_null(o2h_router_new_from_file("/nonexistent/o2hub.json", NULL, &err));
    cr_assert_eq(err.code, O2H_CONFIG_ERROR);
    char line[1024];
    cr_assert(strstr(o2h_error_format(&err, line, sizeof line), "/nonexistent/o2hub.json"),
              "got: %s", line);
}

Test(router, stats_copy_respects_the_callers_size) {
    o2h_router *r = router_named("stats");
    o2h_send(r, "/none/x", 0, "");
    uint64_t guard[16];
    memset(guard, 0xab, sizeof guard);
    o2h_stats *small = (o2h_stats *)guard;
    small->struct_size = (uint32_t)(offsetof(o2h_stats, dropped_no_service) + sizeof(uint64_t));
    o2h_router_get_stats(r, small);
    cr_assert_eq(small->dropped_no_service, 1);
    /* The next field was not written: an older caller's struct stays intact. */
    cr_assert_eq(small->dropped_no_handler, 0xababababababababull);
    o2h_router_free(r);
}

Test(router, version_and_error_strings) {
    cr_assert_str_eq(o2h_version_string(), "0.1.0");
    cr_assert(strstr(o2h_strerror(O2H_NO_SERVICE), "no such service"));
    cr_assert(strstr(o2h_strerror(O2H_PLUGIN_ABI), "ABI"));
    cr_assert_str_eq(o2h_strerror(12345), "unknown error code");
}
