/* Plugin loading: search path, ABI checks, config hand-off, the skeleton transport. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <o2hub/o2hub.h>
#include <o2hub/plugin.h>

typedef struct log_capture {
    char text[8192];
    size_t used;
} log_capture;

static void capture(void *ctx, int level, const char *origin, const char *text) {
    log_capture *c = ctx;
    int n = snprintf(c->text + c->used, sizeof c->text - c->used, "%s: %s\n", origin, text);
    if (n > 0 && c->used + (size_t)n < sizeof c->text) c->used += (size_t)n;
}

/* A router from a config with one transport entry `entry` (JSON object text). */
static o2h_router *router_with(const char *entry, log_capture *logs, o2h_error *err) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"ld\", \"plugin_path\": [\"%s\"], \"transports\": [%s]}",
             TEST_PLUGIN_DIR, entry);
    o2h_router_options o = {.struct_size = sizeof o,
                            .log_level = O2H_LOG_INFO,
                            .log = logs ? capture : NULL,
                            .log_ctx = logs,
                            .log_level_fixed = true};
    return o2h_router_new_from_json(json, "test.json", &o, err);
}

Test(loader, good_plugin_loads_creates_and_starts) {
    log_capture logs = {0};
    o2h_error err;
    o2h_router *r = router_with("{\"type\": \"probe\", \"answer\": 7}", &logs, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert(strstr(logs.text, "probe: started with answer 7"), "log: %s", logs.text);
    o2h_router_free(r);
}

Test(loader, missing_plugin_names_type_and_search_path) {
    o2h_error err;
    cr_assert_null(router_with("{\"type\": \"nosuch\"}", NULL, &err));
    cr_assert_eq(err.code, O2H_PLUGIN_NOT_FOUND);
    cr_assert(strstr(err.message, "\"nosuch\""), "%s", err.message);
    cr_assert(strstr(err.message, TEST_PLUGIN_DIR), "%s", err.message);
}

Test(loader, missing_entry_symbol_is_refused) {
    o2h_error err;
    cr_assert_null(router_with("{\"type\": \"noentry\"}", NULL, &err));
    cr_assert_eq(err.code, O2H_PLUGIN_INVALID);
    cr_assert(strstr(err.message, "o2hub_plugin_entry"), "%s", err.message);
    cr_assert(strstr(err.message, "o2hub_noentry.so"), "%s", err.message);
}

Test(loader, abi_major_too_new_names_both_versions) {
    o2h_error err;
    cr_assert_null(router_with("{\"type\": \"abinext\"}", NULL, &err));
    cr_assert_eq(err.code, O2H_PLUGIN_ABI);
    char found[32], expected[32];
    snprintf(found, sizeof found, "ABI %d.%d", O2H_ABI_MAJOR + 1, O2H_ABI_MINOR);
    snprintf(expected, sizeof expected, "ABI %d.%d", O2H_ABI_MAJOR, O2H_ABI_MINOR);
    cr_assert(strstr(err.message, found), "%s", err.message);
    cr_assert(strstr(err.message, expected), "%s", err.message);
    cr_assert(strstr(err.message, "o2hub_abinext.so"), "%s", err.message);
}

Test(loader, abi_minor_too_new_is_refused) {
    o2h_error err;
    cr_assert_null(router_with("{\"type\": \"abiminornext\"}", NULL, &err));
    cr_assert_eq(err.code, O2H_PLUGIN_ABI);
    cr_assert(strstr(err.message, "newer"), "%s", err.message);
}

Test(loader, descriptor_too_small_is_refused) {
    o2h_error err;
    cr_assert_null(router_with("{\"type\": \"smalldesc\"}", NULL, &err));
    cr_assert_eq(err.code, O2H_PLUGIN_ABI);
    cr_assert(strstr(err.message, "12 bytes"), "%s", err.message);
}

Test(loader, ops_table_too_small_is_refused) {
    o2h_error err;
    cr_assert_null(router_with("{\"type\": \"smallops\"}", NULL, &err));
    cr_assert_eq(err.code, O2H_PLUGIN_ABI);
    cr_assert(strstr(err.message, "operations table is 4 bytes"), "%s", err.message);
}

Test(loader, failing_create_is_reported) {
    o2h_error err;
    cr_assert_null(router_with("{\"type\": \"createfails\"}", NULL, &err));
    cr_assert_eq(err.code, O2H_PLUGIN_FAILED);
    cr_assert(strstr(err.message, "create() failed"), "%s", err.message);
}

Test(loader, optional_plugin_with_newer_abi_is_skipped_and_router_goes_on) {
    log_capture logs = {0};
    o2h_error err;
    o2h_router *r = router_with("{\"type\": \"abinext\", \"required\": false}, "
                                "{\"type\": \"probe\"}",
                                &logs, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert(strstr(logs.text, "optional plugin \"abinext\" not loaded"), "%s", logs.text);
    cr_assert(strstr(logs.text, "this router supports ABI"), "%s", logs.text);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert(strstr(logs.text, "probe: started"), "the next plugin still runs: %s", logs.text);
    o2h_service_new(r, "still");
    cr_assert_eq(o2h_status(r, "still"), O2H_STATUS_LOCAL_NOTIME);
    o2h_router_free(r);
}

Test(loader, unknown_plugin_key_is_a_located_config_error) {
    o2h_error err;
    cr_assert_null(router_with("{\"type\": \"probe\", \"answr\": 7}", NULL, &err));
    cr_assert_eq(err.code, O2H_CONFIG_ERROR);
    cr_assert_str_eq(err.key_path, "transports[0].answr");
    cr_assert_eq(err.line, 1);
    cr_assert_gt(err.column, 1);
    cr_assert(strstr(err.message, "unknown key"), "%s", err.message);
}

Test(loader, out_of_range_plugin_value_is_located) {
    o2h_error err;
    cr_assert_null(router_with("{\"type\": \"probe\", \"answer\": 1000}", NULL, &err));
    cr_assert_eq(err.code, O2H_CONFIG_ERROR);
    cr_assert_str_eq(err.key_path, "transports[0].answer");
}

Test(loader, explicit_file_path_is_used) {
    char entry[512];
    snprintf(entry, sizeof entry, "{\"type\": \"probe\", \"file\": \"%s/o2hub_probe.so\"}",
             TEST_PLUGIN_DIR);
    o2h_error err;
    o2h_router *r = router_with(entry, NULL, &err);
    cr_assert_not_null(r, "%s", err.message);
    o2h_router_free(r);
    cr_assert_null(
        router_with("{\"type\": \"probe\", \"file\": \"/nonexistent/x.so\"}", NULL, &err));
    cr_assert_eq(err.code, O2H_PLUGIN_NOT_FOUND);
    cr_assert(strstr(err.message, "/nonexistent/x.so"), "%s", err.message);
}

Test(loader, add_plugin_at_run_time) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "rt"};
    o2h_router *r = o2h_router_new(&o, NULL);
    o2h_router_add_plugin_dir(r, TEST_PLUGIN_DIR);
    o2h_error err;
    cr_assert_eq(o2h_router_add_plugin(r, "plugins", "probe", "{\"answer\": 3}", &err), O2H_OK,
                 "%s", err.message);
    cr_assert_eq(o2h_router_add_plugin(r, "plugins", "probe", "{\"answer\": \"x\"}", &err),
                 O2H_CONFIG_ERROR);
    cr_assert_str_eq(err.key_path, "plugins[probe].answer");
    cr_assert_eq(o2h_router_add_plugin(r, "plugins", "Bad-Name", NULL, &err), O2H_CONFIG_ERROR);
    o2h_router_free(r);
}

/* ---- the skeleton transport, in process ---- */

static int udp_socket(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static void got(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                int argc, void *user_data) {
    *(int32_t *)user_data = argv[0]->i;
}

Test(loader, skeleton_forwards_and_receives) {
    uint16_t sink_port;
    int sink = udp_socket(&sink_port);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"sk\", \"plugin_path\": [\"%s\"], \"transports\": [{\"type\": "
             "\"skeleton\", \"port\": 0, \"forward\": [{\"service\": \"out\", \"to\": "
             "\"127.0.0.1:%u\"}]}]}",
             SKELETON_PLUGIN_DIR, sink_port);
    log_capture logs = {0};
    o2h_router_options o = {.struct_size = sizeof o,
                            .log_level = O2H_LOG_INFO,
                            .log = capture,
                            .log_ctx = &logs,
                            .log_level_fixed = true};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "sk.json", &o, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert_eq(o2h_status(r, "out"), O2H_STATUS_TO_OSC_NOTIME,
                 "a link that is no bridge delegates");

    /* Out: a message to "out" leaves as a datagram, byte for byte. */
    cr_assert_eq(o2h_send(r, "/out/x", 0, "is", 42, "hi"), O2H_OK);
    struct pollfd pfd = {.fd = sink, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 2000), 1, "no datagram arrived");
    uint8_t buf[256];
    ssize_t n = recv(sink, buf, sizeof buf, 0);
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_builder_start(b);
    o2h_add_int32(b, 42);
    o2h_add_string(b, "hi");
    o2h_msg *want = o2h_builder_finish(b, 0, "/out/x", 0);
    cr_assert_eq((size_t)n, want->length);
    cr_assert_eq(memcmp(buf, want->data, want->length), 0);
    o2h_msg_unref(want);

    /* In: a datagram to the skeleton's port reaches a local method. */
    const char *at = strstr(logs.text, "listening on 127.0.0.1:");
    cr_assert_not_null(at, "%s", logs.text);
    unsigned port = 0;
    sscanf(at, "listening on 127.0.0.1:%u", &port);
    int32_t value = 0;
    o2h_service_new(r, "in");
    o2h_method_new(r, "/in/v", "i", got, &value, false, true);
    o2h_builder_start(b);
    o2h_add_int32(b, 99);
    o2h_msg *m = o2h_builder_finish(b, 0, "/in/v", 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(sendto(sink, "garbage!", 8, 0, (struct sockaddr *)&to, sizeof to), 8);
    cr_assert_eq(sendto(sink, m->data, m->length, 0, (struct sockaddr *)&to, sizeof to),
                 (ssize_t)m->length);
    o2h_msg_unref(m);
    for (int i = 0; i < 200 && value == 0; i++)
        o2h_router_poll(r, 10);
    cr_assert_eq(value, 99);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    cr_assert_eq(st.dropped_invalid, 1, "the garbage datagram is counted");
    o2h_builder_free(b);
    o2h_router_free(r);
    close(sink);
}

/* ---- plugins linked into the program (o2h_router_options.linked_plugins) ---- */

typedef struct linked_state {
    int created, started;
    char answer[16];
} linked_state;

static linked_state linked_seen;

static int linked_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg,
                         void **instance) {
    linked_seen.created++;
    const char *answer = "none";
    int rc = host->cfg->get_string(cfg, "answer", "none", &answer);
    if (rc != O2H_OK && rc != O2H_NOT_FOUND) return rc;
    snprintf(linked_seen.answer, sizeof linked_seen.answer, "%s", answer);
    *instance = &linked_seen;
    return O2H_OK;
}
static int linked_start(void *instance) {
    ((linked_state *)instance)->started++;
    return O2H_OK;
}
static void linked_destroy(void *instance) {
    (void)instance;
}

static const o2h_plugin_desc linked_desc = {
    .abi_major = O2H_ABI_MAJOR,
    .abi_minor = O2H_ABI_MINOR,
    .struct_size = sizeof(o2h_plugin_desc),
    .kind = O2H_PLUGIN_EXTENSION,
    .name = "inside",
    .version = "1",
    .description = "a plugin linked into the test",
    .lifecycle = {.create = linked_create, .start = linked_start, .destroy = linked_destroy},
};
static const o2h_plugin_desc *inside_entry(void) {
    return &linked_desc;
}

static const o2h_plugin_desc newer_desc = {
    .abi_major = O2H_ABI_MAJOR,
    .abi_minor = O2H_ABI_MINOR + 1,
    .struct_size = sizeof(o2h_plugin_desc),
    .kind = O2H_PLUGIN_EXTENSION,
    .name = "newer",
    .lifecycle = {.create = linked_create, .destroy = linked_destroy},
};
static const o2h_plugin_desc *newer_entry(void) {
    return &newer_desc;
}

static const o2h_plugin_desc other_major_desc = {
    .abi_major = O2H_ABI_MAJOR + 1,
    .struct_size = 8, /* whatever another ABI looks like: must not be read */
};
static const o2h_plugin_desc *other_major_entry(void) {
    return &other_major_desc;
}

static o2h_router *router_linked(const char *json, o2h_error *err) {
    static const o2h_plugin_entry_fn linked[] = {other_major_entry, newer_entry, inside_entry,
                                                 NULL};
    o2h_router_options o = {.struct_size = sizeof o, .linked_plugins = linked};
    return o2h_router_new_from_json(json, "linked.json", &o, err);
}

Test(loader, a_linked_plugin_is_used_without_any_plugin_path) {
    memset(&linked_seen, 0, sizeof linked_seen);
    o2h_error err;
    o2h_router *r = router_linked(
        "{\"ensemble\": \"ld\", \"plugins\": [{\"type\": \"inside\", \"answer\": \"yes\"}]}", &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(linked_seen.created, 1);
    cr_assert_str_eq(linked_seen.answer, "yes");
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    cr_assert_eq(linked_seen.started, 1);
    /* And at run time, by name, as a loaded one would be. */
    cr_assert_eq(o2h_router_add_plugin(r, "plugins", "inside", "{\"answer\": \"again\"}", &err),
                 O2H_OK, "%s", err.message);
    cr_assert_eq(linked_seen.created, 2);
    cr_assert_str_eq(linked_seen.answer, "again");
    o2h_router_free(r);
}

Test(loader, a_linked_plugin_is_checked_like_a_loaded_one) {
    o2h_error err;
    cr_assert_null(
        router_linked("{\"ensemble\": \"ld\", \"plugins\": [{\"type\": \"newer\"}]}", &err));
    cr_assert_eq(err.code, O2H_PLUGIN_ABI);
    cr_assert(strstr(err.message, "linked-in plugin \"newer\""), "%s", err.message);
    cr_assert(strstr(err.message, "newer than"), "%s", err.message);
}

Test(loader, a_type_not_linked_in_is_looked_for_as_a_shared_object) {
    o2h_error err;
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"ld\", \"plugin_path\": [\"%s\"], \"transports\": "
             "[{\"type\": \"probe\", \"answer\": 7}], \"plugins\": [{\"type\": \"nosuch\"}]}",
             TEST_PLUGIN_DIR);
    cr_assert_null(router_linked(json, &err));
    cr_assert_eq(err.code, O2H_PLUGIN_NOT_FOUND, "%s", err.message);
    cr_assert(strstr(err.message, "o2hub_nosuch.so"), "%s", err.message);
    /* The linked ones and the loaded ones side by side. */
    snprintf(json, sizeof json,
             "{\"ensemble\": \"ld\", \"plugin_path\": [\"%s\"], \"transports\": "
             "[{\"type\": \"probe\", \"answer\": 7}], \"plugins\": [{\"type\": \"inside\"}]}",
             TEST_PLUGIN_DIR);
    o2h_router *r = router_linked(json, &err);
    cr_assert_not_null(r, "%s", err.message);
    o2h_router_free(r);
}

/* A config that must be refused: the error is located (line, key path) and says why. */
static void assert_refused_at(const char *json, int line, const char *key, const char *why) {
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "bad.json", NULL, &err);
    cr_assert_null(r, "accepted: %s", json);
    cr_assert_str_eq(err.file, "bad.json");
    cr_assert_eq(err.line, line, "line %d for %s: %s", err.line, key, err.message);
    cr_assert_str_eq(err.key_path, key, "%s", err.message);
    cr_assert(strstr(err.message, why), "%s", err.message);
}

Test(loader, every_plugin_and_service_error_is_located) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"ld\", \"plugin_path\": [\"%s\"],\n"
             " \"transports\": [\n  {\"type\": \"nosuch\"}]}",
             TEST_PLUGIN_DIR);
    assert_refused_at(json, 3, "transports[0].type", "plugin \"nosuch\" not found");
    assert_refused_at("{\"ensemble\": \"ld\",\n \"transports\": [\n"
                      "  {\"type\": \"probe\", \"file\": \"/tmp\"}]}",
                      3, "transports[0].file", "is a directory");
    assert_refused_at("{\"ensemble\": \"ld\",\n \"transports\": [\n"
                      "  {\"type\": \"probe\", \"file\": \"" EXAMPLES_DIR "/router.json\"}]}",
                      3, "transports[0].file", "not a plugin");
    assert_refused_at("{\"ensemble\": \"ld\",\n \"services\": [{\"name\": \"a\"},\n"
                      "  {\"name\": \"a\"}]}",
                      3, "services[1].name", "already listed");
}

Test(loader, two_plugins_given_one_port_are_refused_when_the_config_is_read) {
    assert_refused_at("{\"ensemble\": \"ld\", \"plugin_path\": [\"" TRANSPORT_PLUGIN_DIR "\"],\n"
                      " \"transports\": [{\"type\": \"udp\", \"port\": 47123},\n"
                      "  {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": 47123}]}",
                      3, "transports[1].port", "UDP port 47123 is already taken by transports[0]");
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(
        "{\"ensemble\": \"ld\", \"plugin_path\": [\"" TRANSPORT_PLUGIN_DIR "\"],\n"
        " \"transports\": [{\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": 47123},\n"
        "  {\"type\": \"udp\", \"host\": \"127.0.0.2\", \"port\": 47123},\n"
        "  {\"type\": \"udp\", \"port\": 0}, {\"type\": \"udp\", \"port\": 0}]}",
        "ok.json", NULL, &err);
    cr_assert_not_null(r, "other addresses and port 0 do not clash: %s", err.message);
    o2h_router_free(r);
}

static int udp_free_port(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static int heard;
static void on_heard(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    heard++;
}

/* A router whose udp transport listens on `port`, allowing `allow` (JSON array). */
static o2h_router *udp_router(int port, const char *allow) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"ld\", \"plugin_path\": [\"" TRANSPORT_PLUGIN_DIR "\"],"
             " \"allow\": %s, \"transports\": [{\"type\": \"udp\", \"host\": \"127.0.0.1\","
             " \"port\": %d}]}",
             allow, port);
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "udp.json", NULL, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_service_new(r, "svc"), O2H_OK);
    cr_assert_eq(o2h_method_new(r, "/svc/x", "i", on_heard, NULL, false, true), O2H_OK);
    cr_assert_eq(o2h_router_start(r), O2H_OK);
    return r;
}

static void datagram_to(int port) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_int32(b, 1);
    o2h_msg *m = o2h_builder_finish(b, 0, "/svc/x", 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    sendto(fd, m->data, m->length, 0, (struct sockaddr *)&a, sizeof a);
    close(fd);
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(loader, a_datagram_from_outside_allow_is_refused_and_counted) {
    int port = udp_free_port();
    o2h_router *r = udp_router(port, "[\"10.9.9.0/24\"]");
    heard = 0;
    datagram_to(port);
    o2h_stats st = {.struct_size = sizeof st};
    for (int i = 0; i < 100 && st.refused == 0; i++) {
        o2h_router_poll(r, 10);
        o2h_router_get_stats(r, &st);
    }
    cr_assert_eq(st.refused, 1, "counted");
    cr_assert_eq(heard, 0, "not delivered");
    o2h_router_free(r);
    r = udp_router(port, "[\"127.0.0.0/8\"]");
    datagram_to(port);
    for (int i = 0; i < 100 && heard == 0; i++)
        o2h_router_poll(r, 10);
    cr_assert_eq(heard, 1, "delivered from an allowed address");
    o2h_router_free(r);
}

Test(loader, a_websocket_root_that_is_missing_or_a_file_is_a_located_error) {
    assert_refused_at(
        "{\"ensemble\": \"ld\", \"plugin_path\": [\"" WS_PLUGIN_DIR "\"],\n"
        " \"transports\": [\n  {\"type\": \"websocket\", \"root\": \"/nonexistent-www\"}]}",
        3, "transports[0].root", "No such file or directory");
    assert_refused_at(
        "{\"ensemble\": \"ld\", \"plugin_path\": [\"" WS_PLUGIN_DIR "\"],\n"
        " \"transports\": [\n  {\"type\": \"websocket\", \"root\": \"/etc/passwd\"}]}",
        3, "transports[0].root", "is not a folder");
}
