/*
 * o2ctl against running routers on 127.0.0.1: the o2hub daemon (reference
 * clock, a service with properties, from a config file) and a test peer
 * (tests/e2e/peer.c) that offers "echo". o2ctl joins by static discovery
 * (--peer). Checks: send reaches a handler with exact values (reliable, best
 * effort, timed), dump prints every message (text and JSON, exact values), tap
 * prints copies, list shows services with status and properties (text and
 * JSON), time prints the synchronised ensemble time, and usage errors. o2ctl
 * runs with no plugin path (its plugins are linked in) and takes a peer by
 * name ("localhost:PORT"); finding nothing is an error with a message.
 */
#include <jansson.h>

#include "proc_util.h"

static char tmpdir[64];
static char ensemble[64];
static child daemon_, peer;
static int daemon_port, peer_port;

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void start_routers(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/o2ctl-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(ensemble, sizeof ensemble, "o2ctl-%d", (int)getpid());
    daemon_port = pu_free_port();
    peer_port = pu_free_port();
    cr_assert(daemon_port > 0 && peer_port > 0 && daemon_port != peer_port);
    char cfg[2048], path[128];
    snprintf(cfg, sizeof cfg,
             "{\"ensemble\": \"%s\", \"clock\": {\"reference\": true},\n"
             " \"plugin_path\": [\"%s\", \"%s\"],\n"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],\n"
             " \"services\": [{\"name\": \"ctrl\", \"properties\": {\"xloc\": \"0.3\", "
             "\"name\": \"a;b\"}}]}\n",
             ensemble, TRANSPORT_DIR, DISCOVERY_DIR, daemon_port, daemon_port);
    snprintf(path, sizeof path, "%s/daemon.json", tmpdir);
    write_file(path, cfg);
    char *dargv[] = {O2HUB_EXE, "--config", path, NULL};
    pu_spawn(&daemon_, dargv, NULL, false);

    snprintf(cfg, sizeof cfg,
             "{\"ensemble\": \"%s\", \"plugin_path\": [\"%s\", \"%s\"],\n"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],\n"
             " \"discovery\": [{\"type\": \"static\", \"peers\": [\"127.0.0.1:%d\"], "
             "\"interval_max\": 1.0}]}\n",
             ensemble, TRANSPORT_DIR, DISCOVERY_DIR, peer_port, peer_port, daemon_port);
    snprintf(path, sizeof path, "%s/peer.json", tmpdir);
    write_file(path, cfg);
    char *pargv[] = {PEER_EXE, path, NULL};
    pu_spawn(&peer, pargv, NULL, true);
    cr_assert_not_null(pu_expect(&peer, "ready", 10), "peer: %s", peer.out);
    pu_tell(&peer, "offer echo");
    cr_assert_not_null(pu_expect(&peer, "offered echo", 5));
    pu_tell(&peer, "setprop echo role the;echo");
    cr_assert_not_null(pu_expect(&peer, "setprop", 5));
}

static void stop_routers(void) {
    pu_tell(&peer, "quit");
    pu_wait(&peer, 5);
    pu_kill(&peer);
    pu_kill(&daemon_);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

/* Run o2ctl with `args` (NULL-terminated) in our ensemble; waits for the exit. */
static int o2ctl(child *c, const char *const *args, double limit) {
    char *argv[40] = {O2CTL_EXE, "-e", ensemble, "-H", "127.0.0.1"};
    int n = 5;
    for (int i = 0; args[i] && n < 39; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    /* No plugin path: o2ctl's plugins are linked in. */
    pu_spawn(c, argv, NULL, false);
    if (limit <= 0) return 0; /* runs on; the caller waits */
    int st = pu_wait(c, limit);
    return st;
}

static const char *port_arg(int port, char *buf) {
    snprintf(buf, 32, "127.0.0.1:%d", port);
    return buf;
}

Test(o2ctl, send_reaches_a_handler_with_exact_values, .timeout = 90) {
    start_routers();
    char pp[32], dp[32], reply[64];
    snprintf(reply, sizeof reply, "/r%d/pong", (int)peer.pid);
    child c;
    /* reliable: peer's /echo/ping "si" replies (n + 1) to our reply address, i.e. to itself */
    const char *a1[] = {"-p", port_arg(peer_port, pp), "send", "/echo/ping", "si", reply, "41",
                        NULL};
    cr_assert_eq(o2ctl(&c, a1, 30), 0, "%s", c.out);
    pu_kill(&c);
    cr_assert_not_null(pu_expect(&peer, "pong 42 @", 10), "peer: %s", peer.out);
    /* best effort, address without the leading '/', a negative number */
    const char *a2[] = {
        "-p", port_arg(peer_port, pp), "send", "--udp", "echo/ping", "si", reply, "-8", NULL};
    cr_assert_eq(o2ctl(&c, a2, 30), 0, "%s", c.out);
    pu_kill(&c);
    cr_assert_not_null(pu_expect(&peer, "pong -7 @", 10), "peer: %s", peer.out);
    /* timed: needs clock sync, so o2ctl also meets the daemon (the reference) */
    const char *a3[] = {"-p",         port_arg(peer_port, pp),
                        "-p",         port_arg(daemon_port, dp),
                        "send",       "--time",
                        "+0.2",       "--json",
                        "/echo/ping", "si",
                        reply,        "99",
                        NULL};
    cr_assert_eq(o2ctl(&c, a3, 30), 0, "%s", c.out);
    json_error_t jerr;
    json_t *sent = json_loads(c.out, JSON_DISABLE_EOF_CHECK, &jerr);
    cr_assert_not_null(sent, "%s", c.out);
    cr_assert(json_real_value(json_object_get(sent, "time")) > 0.2);
    json_decref(sent);
    pu_kill(&c);
    cr_assert_not_null(pu_expect(&peer, "pong 100 @", 10), "peer: %s", peer.out);
    stop_routers();
}

Test(o2ctl, dump_prints_every_message, .timeout = 90) {
    start_routers();
    char dp[32], bp[32];
    int box_port = pu_free_port();
    char box_port_text[16];
    snprintf(box_port_text, sizeof box_port_text, "%d", box_port);
    child dump, text, s;
    const char *d1[] = {"-p",     port_arg(daemon_port, dp),
                        "-P",     box_port_text,
                        "dump",   "box",
                        "--json", "--count",
                        "3",      NULL};
    o2ctl(&dump, d1, 0);
    cr_assert_not_null(pu_expect(&dump, "offering box", 10), "%s", dump.out);
    const char *a1[] = {"-p",         port_arg(box_port, bp),
                        "send",       "/box/a",
                        "ifsdhTBcmb", "3",
                        "2.5",        "hi \"there\"",
                        "0.1",        "-5000000000",
                        "true",       "x",
                        "0x00903c7f", "0a0b0c",
                        NULL};
    cr_assert_eq(o2ctl(&s, a1, 30), 0, "%s", s.out);
    pu_kill(&s);
    const char *a2[] = {"-p", port_arg(box_port, bp), "send", "-u", "/box/b", "[id]", "1", "2.25",
                        NULL};
    cr_assert_eq(o2ctl(&s, a2, 30), 0, "%s", s.out);
    pu_kill(&s);
    const char *a3[] = {"-p", port_arg(box_port, bp), "send", "/box/c", NULL};
    cr_assert_eq(o2ctl(&s, a3, 30), 0, "%s", s.out);
    pu_kill(&s);
    cr_assert_eq(pu_wait(&dump, 20), 0, "%s", dump.out);

    /* one JSON object per line, exact values */
    json_t *m[3];
    const char *line = dump.out;
    for (int i = 0; i < 3; i++) {
        while (*line && *line != '{')
            line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line);
        json_error_t jerr;
        m[i] = json_loads(line, JSON_DISABLE_EOF_CHECK, &jerr);
        cr_assert_not_null(m[i], "line %d of %s", i, dump.out);
        line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line);
    }
    cr_assert_str_eq(json_string_value(json_object_get(m[0], "address")), "/box/a");
    cr_assert_str_eq(json_string_value(json_object_get(m[0], "types")), "ifsdhTBcmb");
    cr_assert(json_is_true(json_object_get(m[0], "reliable")));
    json_t *args = json_object_get(m[0], "args");
    cr_assert_eq(json_array_size(args), 10);
    cr_assert_eq(json_integer_value(json_array_get(args, 0)), 3);
    cr_assert_eq(json_real_value(json_array_get(args, 1)), 2.5);
    cr_assert_str_eq(json_string_value(json_array_get(args, 2)), "hi \"there\"");
    cr_assert_eq(json_real_value(json_array_get(args, 3)), 0.1);
    cr_assert_eq(json_integer_value(json_array_get(args, 4)), -5000000000LL);
    cr_assert(json_is_true(json_array_get(args, 5)));
    cr_assert(json_is_true(json_array_get(args, 6)));
    cr_assert_str_eq(json_string_value(json_array_get(args, 7)), "x");
    cr_assert_eq(json_integer_value(json_array_get(args, 8)), 0x00903c7f);
    cr_assert_str_eq(json_string_value(json_array_get(args, 9)), "0a0b0c");
    cr_assert_str_eq(json_string_value(json_object_get(m[1], "address")), "/box/b");
    cr_assert(json_is_false(json_object_get(m[1], "reliable")));
    json_t *arr = json_array_get(json_object_get(m[1], "args"), 0);
    cr_assert_eq(json_array_size(arr), 2);
    cr_assert_eq(json_integer_value(json_array_get(arr, 0)), 1);
    cr_assert_eq(json_real_value(json_array_get(arr, 1)), 2.25);
    cr_assert_str_eq(json_string_value(json_object_get(m[2], "types")), "");
    for (int i = 0; i < 3; i++)
        json_decref(m[i]);
    pu_kill(&dump);

    /* text output */
    const char *d2[] = {
        "-p", port_arg(daemon_port, dp), "-P", box_port_text, "dump", "box2", "-n", "1", NULL};
    o2ctl(&text, d2, 0);
    cr_assert_not_null(pu_expect(&text, "offering box2", 10), "%s", text.out);
    const char *a4[] = {"-p", port_arg(box_port, bp), "send", "/box2/x/y", "is", "5", "five", NULL};
    cr_assert_eq(o2ctl(&s, a4, 30), 0, "%s", s.out);
    pu_kill(&s);
    cr_assert_eq(pu_wait(&text, 20), 0, "%s", text.out);
    cr_assert_not_null(strstr(text.out, "/box2/x/y ,is 5 \"five\"\n"), "%s", text.out);
    pu_kill(&text);
    stop_routers();
}

Test(o2ctl, tap_prints_copies, .timeout = 90) {
    start_routers();
    char pp[32];
    child t;
    const char *a[] = {"-p", port_arg(peer_port, pp), "tap", "echo", "--json", "-n", "1", NULL};
    o2ctl(&t, a, 0);
    cr_assert_not_null(pu_expect(&t, "tapping echo", 15), "%s", t.out);
    /* The tap reaches the peer with our service list; ping until a copy shows up. */
    double end = pu_now() + 15;
    int n = 0;
    while (!strstr(t.out, "\"address\"") && pu_now() < end) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "ping /echo/ping tcp %d", 1000 + n++);
        pu_tell(&peer, cmd);
        pu_read(&t, 200);
    }
    cr_assert_eq(pu_wait(&t, 10), 0, "%s", t.out);
    const char *obj = strchr(t.out, '{');
    cr_assert_not_null(obj, "%s", t.out);
    json_error_t jerr;
    json_t *m = json_loads(obj, JSON_DISABLE_EOF_CHECK, &jerr);
    cr_assert_not_null(m, "%s", t.out);
    cr_assert_str_eq(json_string_value(json_object_get(m, "address")), "/echo/ping");
    cr_assert_str_eq(json_string_value(json_object_get(m, "types")), "si");
    json_int_t v = json_integer_value(json_array_get(json_object_get(m, "args"), 1));
    cr_assert(v >= 1000 && v < 1000 + n, "copy of ping %lld", (long long)v);
    json_decref(m);
    pu_kill(&t);
    stop_routers();
}

static json_t *find_service(json_t *list, const char *name) {
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(list, "services"), i, s) {
        if (strcmp(json_string_value(json_object_get(s, "name")), name) == 0) return s;
    }
    return NULL;
}

Test(o2ctl, list_shows_services_status_and_properties, .timeout = 90) {
    start_routers();
    char dp[32], pp[32];
    child c;
    char by_name[32];
    snprintf(by_name, sizeof by_name, "localhost:%d", daemon_port);
    const char *a1[] = {"--peer", by_name, "list", "--until", "ctrl", NULL};
    cr_assert_eq(o2ctl(&c, a1, 30), 0, "%s", c.out);
    cr_assert_not_null(strstr(c.out, "SERVICE"), "%s", c.out);
    const char *row = strstr(c.out, "\nctrl ");
    cr_assert_not_null(row, "%s", c.out);
    char name[32], status[32], process[64], props[128];
    cr_assert_eq(sscanf(row + 1, "%31s %31s %63s %127s", name, status, process, props), 4);
    cr_assert_str_eq(status, "REMOTE");
    cr_assert_eq(process[0], '@');
    cr_assert_eq((int)strtol(strrchr(process, ':') + 1, NULL, 16), daemon_port);
    cr_assert_str_eq(props, "xloc:0.3;name:a\\;b;");
    cr_assert_null(strstr(c.out, "_o2"), "internal services only with --all: %s", c.out);
    pu_kill(&c);

    /* both routers, JSON */
    const char *a2[] = {"-p",      port_arg(daemon_port, dp),
                        "-p",      port_arg(peer_port, pp),
                        "--json",  "list",
                        "--until", "echo",
                        NULL};
    cr_assert_eq(o2ctl(&c, a2, 30), 0, "%s", c.out);
    json_error_t jerr;
    json_t *list = json_loads(c.out, JSON_DISABLE_EOF_CHECK, &jerr);
    cr_assert_not_null(list, "%s: %s", jerr.text, c.out);
    cr_assert_str_eq(json_string_value(json_object_get(list, "ensemble")), ensemble);
    cr_assert(json_real_value(json_object_get(list, "time")) > 0);
    json_t *ctrl = find_service(list, "ctrl"), *echo = find_service(list, "echo");
    cr_assert(ctrl && echo, "%s", c.out);
    cr_assert_str_eq(json_string_value(json_object_get(ctrl, "status")), "REMOTE");
    cr_assert_eq(json_integer_value(json_object_get(ctrl, "status_code")), 5);
    json_t *cp = json_object_get(ctrl, "properties");
    cr_assert_str_eq(json_string_value(json_object_get(cp, "xloc")), "0.3");
    cr_assert_str_eq(json_string_value(json_object_get(cp, "name")), "a;b");
    cr_assert_str_eq(json_string_value(json_object_get(echo, "status")), "REMOTE");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(echo, "properties"), "role")),
        "the;echo");
    cr_assert_neq(strcmp(json_string_value(json_object_get(ctrl, "process")),
                         json_string_value(json_object_get(echo, "process"))),
                  0);
    cr_assert_null(find_service(list, "_o2"));
    json_decref(list);
    pu_kill(&c);

    /* a service that does not exist: listed anyway, exit 1 */
    const char *a3[] = {"-p", port_arg(daemon_port, dp), "list", "-U", "nosuch", "-w", "0.5", NULL};
    cr_assert_eq(o2ctl(&c, a3, 30), 1, "%s", c.out);
    cr_assert_not_null(strstr(c.out, "nosuch not found"), "%s", c.out);
    pu_kill(&c);
    stop_routers();
}

Test(o2ctl, time_prints_the_synchronised_time, .timeout = 90) {
    start_routers();
    char dp[32];
    child c;
    /* the peer is synchronised to the daemon too; its time brackets o2ctl's */
    const char *tl;
    double before = -1;
    for (double end = pu_now() + 10; before < 0 && pu_now() < end;) {
        pu_tell(&peer, "time");
        cr_assert_not_null(tl = pu_expect(&peer, "time ", 5));
        before = atof(tl + 5);
        if (before < 0) pu_read(&peer, 100);
    }
    cr_assert(before > 0, "peer never synchronised: %s", peer.out);
    const char *a1[] = {"-p", port_arg(daemon_port, dp), "time", NULL};
    cr_assert_eq(o2ctl(&c, a1, 30), 0, "%s", c.out);
    double t = atof(c.out);
    pu_tell(&peer, "time");
    cr_assert_not_null(tl = pu_expect(&peer, "time ", 5));
    double after = atof(tl + 5);
    fprintf(stderr, "peer %.6f <= o2ctl %.6f <= peer %.6f\n", before, t, after);
    cr_assert(t >= before - 0.005 && t <= after + 0.005, "%f %f %f", before, t, after);
    pu_kill(&c);
    const char *a2[] = {"-p", port_arg(daemon_port, dp), "time", "--json", NULL};
    cr_assert_eq(o2ctl(&c, a2, 30), 0, "%s", c.out);
    json_error_t jerr;
    json_t *o = json_loads(c.out, JSON_DISABLE_EOF_CHECK, &jerr);
    cr_assert_not_null(o, "%s", c.out);
    double gt = json_real_value(json_object_get(o, "time"));
    double lt = json_real_value(json_object_get(o, "local_time"));
    cr_assert(gt > after && gt > lt, "global %f local %f", gt, lt);
    cr_assert(json_real_value(json_object_get(o, "rtt_min")) >= 0);
    json_decref(o);
    pu_kill(&c);
    stop_routers();
}

Test(o2ctl, usage_errors, .timeout = 60) {
    child c;
    snprintf(ensemble, sizeof ensemble, "o2ctl-%d", (int)getpid());
    const char *a1[] = {"frobnicate", NULL};
    cr_assert_eq(o2ctl(&c, a1, 10), 2, "%s", c.out);
    pu_kill(&c);
    const char *a2[] = {"send", "/x/y", "ii", "1", NULL};
    cr_assert_eq(o2ctl(&c, a2, 10), 2, "%s", c.out);
    cr_assert_not_null(strstr(c.out, "need more arguments"), "%s", c.out);
    pu_kill(&c);
    const char *a3[] = {"send", "/x/y", "i", "12abc", NULL};
    cr_assert_eq(o2ctl(&c, a3, 10), 2, "%s", c.out);
    pu_kill(&c);
    const char *a4[] = {"-p", "127.0.0.1:9", "-w", "0.3", "send", "/nosuch/y", "i", "1", NULL};
    cr_assert_eq(o2ctl(&c, a4, 10), 1, "%s", c.out);
    cr_assert_not_null(strstr(c.out, "not found"), "%s", c.out);
    pu_kill(&c);
    const char *a5[] = {"-p", "127.0.0.1:9", "-w", "0.3", "time", NULL};
    cr_assert_eq(o2ctl(&c, a5, 10), 1, "%s", c.out);
    pu_kill(&c);
    /* nothing there: not a silent empty list */
    const char *a6[] = {"-p", "127.0.0.1:9", "-w", "0.3", "list", NULL};
    cr_assert_eq(o2ctl(&c, a6, 10), 1, "%s", c.out);
    cr_assert_not_null(strstr(c.out, "no services found"), "%s", c.out);
    cr_assert_not_null(strstr(c.out, ensemble), "the message names the ensemble: %s", c.out);
    pu_kill(&c);
    const char *a7[] = {"-D", "carrier-pigeon", "list", NULL};
    cr_assert_eq(o2ctl(&c, a7, 10), 2, "%s", c.out);
    pu_kill(&c);
    const char *a8[] = {"--version", NULL};
    cr_assert_eq(o2ctl(&c, a8, 10), 0, "%s", c.out);
#ifdef HAVE_DNSSD
    cr_assert_not_null(strstr(c.out, "dnssd"), "dnssd is linked in: %s", c.out);
#endif
    pu_kill(&c);
}
