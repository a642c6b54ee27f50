/*
 * The classic O2 API layer (o2hub/o2.h, libo2hub_o2) end to end: two programs
 * written in O2's style (tests/o2compat/o2server.c and o2client.c) run as
 * separate processes on 127.0.0.1 and exchange messages over UDP and TCP,
 * synchronise clocks, set and read a property, tap a service and send every
 * argument type. Each program asserts its own side and prints "... OK" lines.
 */
#include "proc_util.h"

static void run_pair(const char *discovery, bool tcp) {
    char ensemble[64];
    snprintf(ensemble, sizeof ensemble, "o2compat-%d-%s", (int)getpid(), tcp ? "t" : "u");
    int sport = pu_free_port(), cport = pu_free_port();
    cr_assert(sport > 0 && cport > 0 && sport != cport);
    char s_port[32], c_port[32], s_peers[64], c_peers[64], disc[64];
    snprintf(s_port, sizeof s_port, "O2HUB_PORT=%d", sport);
    snprintf(c_port, sizeof c_port, "O2HUB_PORT=%d", cport);
    snprintf(s_peers, sizeof s_peers, "O2HUB_PEERS=127.0.0.1:%d", cport);
    snprintf(c_peers, sizeof c_peers, "O2HUB_PEERS=127.0.0.1:%d", sport);
    snprintf(disc, sizeof disc, "O2HUB_DISCOVERY=%s", discovery);
    bool use_static = strcmp(discovery, "static") == 0;
    const char *senv[] = {"O2HUB_PLUGIN_PATH=" PLUGIN_PATH, disc, s_port,
                          use_static ? s_peers : NULL, NULL};
    const char *cenv[] = {"O2HUB_PLUGIN_PATH=" PLUGIN_PATH, disc, c_port,
                          use_static ? c_peers : NULL, NULL};
    char *sargv[] = {O2SERVER_EXE, ensemble, "20", tcp ? "t" : "u", NULL};
    char *cargv[] = {O2CLIENT_EXE, ensemble, tcp ? "300t" : "300", "20", NULL};
    child s, c;
    pu_spawn(&s, sargv, senv, false);
    pu_spawn(&c, cargv, cenv, false);
    int cs = pu_wait(&c, 90);
    int ss = pu_wait(&s, 30);
    if (cs != 0 || ss != 0) {
        fprintf(stderr, "---- client (%d):\n%s\n---- server (%d):\n%s\n", cs, c.out, ss, s.out);
    }
    cr_assert_eq(cs, 0, "client exit status %d", cs);
    cr_assert_eq(ss, 0, "server exit status %d", ss);
    const char *lines[] = {"CLOCK OK", "PROPERTY OK",      "TYPES OK",   "TIMED OK",
                           "TAP OK",   "BENCHMARK OK 300", "CLIENT DONE"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_assert_not_null(strstr(c.out, lines[i]), "client did not print %s:\n%s", lines[i],
                           c.out);
    cr_assert_not_null(strstr(s.out, "SERVER DONE"));
    const char *bench = strstr(c.out, "BENCHMARK OK");
    const char *eol = strchr(bench, '\n');
    fprintf(stderr, "%.*s\n", (int)(eol - bench), bench);
    pu_kill(&c);
    pu_kill(&s);
}

Test(o2compat, pair_udp_static_discovery, .timeout = 120) {
    run_pair("static", false);
}

Test(o2compat, pair_tcp_static_discovery, .timeout = 120) {
    run_pair("static", true);
}

/* The default way O2 programs find each other: UDP discovery on O2's ports (localhost). */
Test(o2compat, pair_udp_broadcast_discovery, .timeout = 120) {
    run_pair("broadcast", false);
}

Test(o2compat, local_program, .timeout = 60) {
    char *argv[] = {O2LOCAL_EXE, NULL};
    const char *env[] = {"O2HUB_PLUGIN_PATH=" PLUGIN_PATH, "O2HUB_DISCOVERY=none", NULL};
    child c;
    pu_spawn(&c, argv, env, false);
    int st = pu_wait(&c, 50);
    cr_assert_eq(st, 0, "o2local exit %d:\n%s", st, c.out);
    cr_assert_not_null(strstr(c.out, "LOCAL DONE"), "%s", c.out);
    pu_kill(&c);
}

/* The /_o2/si notices around o2_clock_set, through o2_poll, as O2 sends them. */
Test(o2compat, status_notices_on_clock_sync, .timeout = 60) {
    char *argv[] = {O2INFO_EXE, NULL};
    const char *env[] = {"O2HUB_PLUGIN_PATH=" PLUGIN_PATH, "O2HUB_DISCOVERY=none", NULL};
    child c;
    pu_spawn(&c, argv, env, false);
    int st = pu_wait(&c, 50);
    cr_assert_eq(st, 0, "o2info exit %d:\n%s", st, c.out);
    cr_assert_not_null(strstr(c.out, "INFO DONE"), "%s", c.out);
    pu_kill(&c);
}
