/*
 * Hub discovery (O2's o2_hub) between separate processes on 127.0.0.1: test
 * peers (tests/e2e/peer.c) told only of a hub by the static plugin's "hub"
 * key, o2ctl --hub, and a program on the classic O2 API calling o2_hub
 * (tests/o2compat/o2hubclient.c). No broadcast, no DNS-SD: the hub is the
 * only way the processes can learn of each other.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc_util.h"
#include "testproc.h"

/* The O2-API program loads plugins; its discovery (static, no peers) finds nobody. */
static const char *const plugin_env[] = {"O2HUB_PLUGIN_PATH=" TRANSPORT_DIR ":" DISCOVERY_DIR,
                                         "O2HUB_DISCOVERY=static", NULL};

/* Run a program to its end (bounded); its exit status, its output in c->out. */
static int run_program(child *c, char *const argv[], double limit) {
    pu_spawn(c, argv, strstr(argv[0], "o2ctl") ? NULL : plugin_env, false);
    int st = pu_wait(c, limit);
    pu_kill(c);
    return st;
}

TestSuite(hub, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 90);

static int cmp_int(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

/* Free ports, ascending and distinct: names @00000000:7f000001:PORT sort as the ports do. */
static void sorted_ports(int *out, int n) {
    bool distinct;
    do {
        for (int i = 0; i < n; i++)
            out[i] = free_port();
        qsort(out, (size_t)n, sizeof out[0], cmp_int);
        distinct = out[0] >= 4096; /* four hex digits */
        for (int i = 1; i < n; i++)
            distinct = distinct && out[i] != out[i - 1];
    } while (!distinct);
}

static void three_ports(int out[3]) {
    sorted_ports(out, 3);
}

static void write_hub_client(proc *p, const char *name, int port, int hub_port) {
    char discovery[200];
    snprintf(discovery, sizeof discovery,
             "{\"type\": \"static\", \"hub\": \"127.0.0.1:%d\", \"interval_max\": 1.0}", hub_port);
    write_config_with(p, name, port, discovery, NULL, NULL);
}

/* A hub with no discovery of its own: it knows only who connects to it. */
static void start_hub(proc *a, int port) {
    write_config_with(a, "a", port, "", NULL, NULL);
    start(a);
    must(a, "ready", 5);
}

/* `p` sees `svc` offered by the process `by` (REMOTE_NOTIME: no clock here). */
static void must_see(proc *p, const char *svc, const char *by) {
    char line[96];
    snprintf(line, sizeof line, "si %s 1 %s", svc, by);
    must(p, line, 15);
}

/*
 * B's name is below the hub's, C's above: B connects to A with dy HUB and
 * gets dy REPLY; A connects to C after C's dy CALLBACK. Both then ask with
 * !_o2/hub, and A introduces them: B (the lesser) gets C's dy INFO and
 * connects to C itself, so B's message reaches C's service directly.
 */
Test(hub, clients_of_a_hub_learn_each_other_and_talk_directly) {
    int port[3];
    three_ports(port);
    proc a = {0}, b = {0}, c = {0};
    start_hub(&a, port[1]);
    write_hub_client(&b, "b", port[0], port[1]);
    write_hub_client(&c, "c", port[2], port[1]);
    start(&b);
    start(&c);
    must(&b, "ready", 5);
    must(&c, "ready", 5);
    char name_c[32], name_b[32];
    process_name(&c, name_c, sizeof name_c);
    process_name(&b, name_b, sizeof name_b);
    tell(&c, "offer echo");
    must(&c, "offered echo", 5);
    must_see(&b, "echo", name_c);
    /* Directly: once A has heard of echo too, it neither receives nor sends anything
     * while B and C talk. */
    must_see(&a, "echo", name_c);
    long a_delivered = stat_field(&a, "delivered"), a_forwarded = stat_field(&a, "forwarded");
    tell(&b, "ping /echo/ping tcp 41");
    char pong[64];
    snprintf(pong, sizeof pong, "pong 42 %s", name_c);
    must(&b, pong, 10);
    tell(&b, "ping /echo/ping udp 7"); /* best effort: B has C's UDP port too */
    snprintf(pong, sizeof pong, "pong 8 %s", name_c);
    must(&b, pong, 10);
    cr_assert_eq(stat_field(&a, "delivered"), a_delivered);
    cr_assert_eq(stat_field(&a, "forwarded"), a_forwarded);
    /* C learned B as well (B connected to it). */
    tell(&b, "offer bravo");
    must(&b, "offered bravo", 5);
    must_see(&c, "bravo", name_b);
    stop(&b, SIGTERM);
    stop(&c, SIGTERM);
    stop(&a, SIGTERM);
}

/*
 * B is a plain peer of A (static "peers"), not a client: when C asks A for
 * hub service, B is among the processes A knows, so the two are introduced.
 */
Test(hub, a_plain_peer_of_the_hub_meets_a_client_that_asks_later) {
    int port[3];
    three_ports(port);
    proc a = {0}, b = {0}, c = {0};
    start_hub(&a, port[1]);
    write_config(&b, "b", port[0], (int[]){port[1], -1}, NULL);
    write_hub_client(&c, "c", port[2], port[1]);
    start(&b);
    start(&c);
    must(&b, "ready", 5);
    must(&c, "ready", 5);
    char name_a[32], name_c[32];
    process_name(&a, name_a, sizeof name_a);
    process_name(&c, name_c, sizeof name_c);
    tell(&a, "offer alpha");
    must_see(&b, "alpha", name_a); /* B and A are connected */
    tell(&c, "offer echo");
    must(&c, "offered echo", 5);
    must_see(&b, "echo", name_c);
    stop(&b, SIGTERM);
    stop(&c, SIGTERM);
    stop(&a, SIGTERM);
}

/* A process that joins the hub later, by plain discovery, is introduced to its clients. */
Test(hub, a_process_that_joins_the_hub_later_is_introduced_to_its_clients) {
    int port[3];
    three_ports(port);
    proc a = {0}, b = {0}, d = {0};
    start_hub(&a, port[1]);
    write_hub_client(&b, "b", port[0], port[1]);
    start(&b);
    must(&b, "ready", 5);
    char name_a[32], name_d[32];
    process_name(&a, name_a, sizeof name_a);
    tell(&a, "offer alpha");
    must_see(&b, "alpha", name_a);
    write_config(&d, "d", port[2], (int[]){port[1], -1}, NULL);
    start(&d);
    must(&d, "ready", 5);
    process_name(&d, name_d, sizeof name_d);
    tell(&d, "offer delta");
    must(&d, "offered delta", 5);
    must_see(&b, "delta", name_d);
    stop(&b, SIGTERM);
    stop(&d, SIGTERM);
    stop(&a, SIGTERM);
}

/* The hub restarts: its clients reconnect (the static plugin asks again) and meet newcomers. */
Test(hub, clients_reconnect_to_a_restarted_hub) {
    int port[3];
    three_ports(port);
    proc a = {0}, b = {0}, c = {0};
    start_hub(&a, port[1]);
    write_hub_client(&b, "b", port[0], port[1]);
    start(&b);
    must(&b, "ready", 5);
    char name_a[32], name_c[32];
    process_name(&a, name_a, sizeof name_a);
    tell(&a, "offer alpha");
    must_see(&b, "alpha", name_a);
    stop(&a, SIGKILL);
    char gone[64];
    snprintf(gone, sizeof gone, "si alpha -1 %s", name_a);
    must(&b, gone, 10);
    start(&a);
    must(&a, "ready", 5);
    tell(&a, "offer alpha");
    must_see(&b, "alpha", name_a);
    write_hub_client(&c, "c", port[2], port[1]);
    start(&c);
    must(&c, "ready", 5);
    process_name(&c, name_c, sizeof name_c);
    tell(&c, "offer echo");
    must_see(&b, "echo", name_c);
    stop(&b, SIGTERM);
    stop(&c, SIGTERM);
    stop(&a, SIGTERM);
}

/* o2ctl --hub A reaches a service of B, a client of A that o2ctl was never told of. */
Test(hub, o2ctl_hub_send_reaches_a_service_of_another_client) {
    int port[4];
    sorted_ports(port, 4);
    proc a = {0}, b = {0};
    start_hub(&a, port[2]);
    write_hub_client(&b, "b", port[1], port[2]);
    start(&b);
    must(&b, "ready", 5);
    tell(&b, "offer echo");
    must(&b, "offered echo", 5);
    char hub[32], reply[48], ctl_port[16];
    snprintf(hub, sizeof hub, "127.0.0.1:%d", port[2]);
    snprintf(reply, sizeof reply, "/r%d/pong", (int)b.pid);
    /* Twice: o2ctl's name above the hub's (A connects to it), then below (it connects). */
    for (int i = 0; i < 2; i++) {
        snprintf(ctl_port, sizeof ctl_port, "%d", i == 0 ? port[3] : port[0]);
        static child ctl;
        char *argv[] = {
            O2CTL_EXE, "-e", "e2e", "-H",   "127.0.0.1",  "-P", ctl_port, "--hub",
            hub,       "-w", "10",  "send", "/echo/ping", "si", reply,    i == 0 ? "41" : "51",
            NULL};
        int st = run_program(&ctl, argv, 30);
        cr_assert_eq(st, 0, "o2ctl: %s", ctl.out);
        must(&b, i == 0 ? "pong 42" : "pong 52", 10);
    }
    stop(&b, SIGTERM);
    stop(&a, SIGTERM);
}

/* A program on O2's API: o2_hub(O2_VERSION, "0.0.0.0", "127.0.0.1", A, A) finds B's echo. */
Test(hub, o2_hub_on_the_classic_api_reaches_a_service_through_the_hub) {
    int port[3];
    three_ports(port);
    proc a = {0}, b = {0};
    start_hub(&a, port[1]);
    write_hub_client(&b, "b", port[0], port[1]);
    start(&b);
    must(&b, "ready", 5);
    tell(&b, "offer echo");
    must(&b, "offered echo", 5);
    char hub_port[16];
    snprintf(hub_port, sizeof hub_port, "%d", port[1]);
    static child o2;
    char *argv[] = {O2HUBCLIENT_EXE, "e2e", hub_port, NULL};
    int st = run_program(&o2, argv, 40);
    cr_assert_eq(st, 0, "o2hubclient: %s", o2.out);
    cr_assert(strstr(o2.out, "o2hubclient OK"), "%s", o2.out);
    stop(&b, SIGTERM);
    stop(&a, SIGTERM);
}

/* "hub" that is not an address is a config error at its key, with file:line:col. */
Test(hub, a_bad_hub_address_is_a_located_config_error) {
    char path[128];
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"ensemble\": \"e2e\", \"plugin_path\": [\"%s\", \"%s\"],\n"
            " \"discovery\": [{\"type\": \"static\",\n"
            "                \"hub\": \"127.0.0.1\"}]}\n",
            TRANSPORT_DIR, DISCOVERY_DIR);
    fclose(f);
    static child o;
    char *argv[] = {O2HUB_EXE, "--config", path, "--check", NULL};
    int st = run_program(&o, argv, 20);
    cr_assert_neq(st, 0, "%s", o.out);
    cr_assert(strstr(o.out, "bad.json:3:"), "%s", o.out);
    cr_assert(strstr(o.out, "discovery[0].hub"), "%s", o.out);
    cr_assert(strstr(o.out, "IPv4:port"), "%s", o.out);
}
