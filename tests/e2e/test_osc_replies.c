/*
 * OSC servers that answer: a delegate with "replies" delivers what its
 * server sends back into an O2 service. The peers are real and started by
 * the tests: SuperCollider's scsynth on a JACK server of the test's own
 * (`jackd -d dummy`, a private server name), and Pure Data running a patch
 * the test writes. Each test skips, saying why, when its program is not
 * installed (Debian supercollider-server, jackd2, puredata-core).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "osc_helpers.h"
#include "osc_peers.h"

#define MAX_ARGS 12

static void stop_all(void);
TestSuite(osc_replies, .fini = stop_all);

/* The last message that reached a reply handler, and how many did. */
typedef struct reply {
    int count;
    char address[64];
    char types[MAX_ARGS + 1];
    o2h_arg args[MAX_ARGS];
    char strings[MAX_ARGS][64];
} reply;

static void on_reply(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    reply *rp = user_data;
    (void)r;
    rp->count++;
    snprintf(rp->address, sizeof rp->address, "%s", o2h_msg_address(msg));
    snprintf(rp->types, sizeof rp->types, "%s", types);
    for (int i = 0; i < argc && i < MAX_ARGS; i++) {
        rp->args[i] = *argv[i];
        if (types[i] == 's' || types[i] == 'S') {
            snprintf(rp->strings[i], sizeof rp->strings[i], "%s", argv[i]->s);
            rp->args[i].s = rp->strings[i];
        }
    }
}

static void on_count(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    (void)r, (void)msg, (void)types, (void)argv, (void)argc;
    (*(int *)user_data)++;
}

/* Lines of the router's log that tell when a reply input paces. */
typedef struct log_seen {
    int floods;
    long long kernel_dropped; /* the last "... in all" of a kernel-drop line */
} log_seen;

static void on_log(void *ctx, int level, const char *origin, const char *text) {
    log_seen *ls = ctx;
    (void)level, (void)origin;
    if (strstr(text, "OSC replies from") && strstr(text, ": a flood: reading every")) ls->floods++;
    const char *k = strstr(text, "the kernel dropped datagrams (socket buffer full): ");
    if (strstr(text, "OSC replies from") && k) ls->kernel_dropped = atoll(strchr(k, ':') + 2);
}

static o2h_router *reply_router(const char *delegate_json, log_seen *ls) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "\"delegates\": [%s]", delegate_json);
    o2h_router *r = ls ? osc_router_logged(cfg, on_log, ls) : osc_router(cfg);
    cr_assert_not_null(r, "router with %s", delegate_json);
    return r;
}

/* Send /sc/status until a /status.reply comes back: scsynth is up (bounded). */
static bool sc_ready(o2h_router *r, reply *status, double limit_s) {
    double end = now_mono() + limit_s;
    int before = status->count;
    while (now_mono() < end) {
        o2h_send(r, "/sc/status", 0, "");
        double next = now_mono() + 0.1;
        while (status->count == before && now_mono() < next)
            o2h_router_poll(r, 5);
        if (status->count > before) return true;
    }
    return false;
}

static uint64_t plugin_received(o2h_router *r) {
    static char text[65536];
    o2h_router_stats_text(r, text, sizeof text);
    const char *at = strstr(text, "o2hub_plugin_received{plugin=\"osc\"");
    if (!at) return 0;
    at = strchr(at, '}');
    return at ? strtoull(at + 1, NULL, 10) : 0;
}

typedef struct sc_rig {
    sc_server sc;
    o2h_router *r;
    reply status, version, done, fail;
} sc_rig;

/* `extra`: more keys for the delegate ("" for none). */
static void sc_rig_start(sc_rig *g, bool tcp, log_seen *ls, const char *extra) {
    const char *why = sc_server_missing();
    if (why) cr_skip_test("%s", why);
    memset(g, 0, sizeof *g);
    cr_assert(sc_server_start(&g->sc, tcp), "scsynth: %s", g->sc.why);
    char d[256];
    snprintf(d, sizeof d,
             "{\"service\": \"sc\", \"address\": \"127.0.0.1:%d\", \"protocol\": \"%s\","
             " \"replies\": \"scr\"%s}",
             g->sc.port, tcp ? "tcp" : "udp", extra);
    g->r = reply_router(d, ls);
    cr_assert_eq(o2h_service_new(g->r, "scr"), O2H_OK);
    cr_assert_eq(o2h_method_new(g->r, "/scr/status.reply", NULL, on_reply, &g->status, false, true),
                 O2H_OK);
    cr_assert_eq(
        o2h_method_new(g->r, "/scr/version.reply", NULL, on_reply, &g->version, false, true),
        O2H_OK);
    cr_assert_eq(o2h_method_new(g->r, "/scr/done", NULL, on_reply, &g->done, false, true), O2H_OK);
    cr_assert_eq(o2h_method_new(g->r, "/scr/fail", NULL, on_reply, &g->fail, false, true), O2H_OK);
    cr_assert(sc_ready(g->r, &g->status, 10), "no /status.reply from scsynth on port %d (log %s)",
              g->sc.port, g->sc.log);
}

/* One rig of each kind per test, stopped by the suite's fini even when an
 * assertion ends the test early (jackd then frees its shared memory). */
static sc_rig the_sc;

static void sc_rig_stop(sc_rig *g) {
    sc_server_stop(&g->sc);
    if (g->r) o2h_router_free(g->r);
    g->r = NULL;
}

/* /status.reply: 1, ugens, synths, groups, synthdefs, avg and peak CPU, sample rates. */
static void check_status(const reply *st) {
    cr_assert_str_eq(st->address, "/scr/status.reply");
    cr_assert_str_eq(st->types, "iiiiiffdd");
    cr_assert_eq(st->args[0].i, 1);
    cr_assert_geq(st->args[1].i, 0, "ugens %d", st->args[1].i);
    cr_assert_geq(st->args[2].i, 0, "synths %d", st->args[2].i);
    cr_assert_geq(st->args[3].i, 1, "groups %d (the root group is one)", st->args[3].i);
    cr_assert_geq(st->args[4].i, 0, "synthdefs %d", st->args[4].i);
    cr_assert(st->args[5].f >= 0 && st->args[5].f <= 100, "average CPU %g", st->args[5].f);
    cr_assert(st->args[6].f >= 0 && st->args[6].f <= 100, "peak CPU %g", st->args[6].f);
    cr_assert_float_eq(st->args[7].d, SC_SAMPLE_RATE, 1e-6, "nominal rate %g", st->args[7].d);
    cr_assert(st->args[8].d > SC_SAMPLE_RATE * 0.5 && st->args[8].d < SC_SAMPLE_RATE * 2,
              "actual rate %g", st->args[8].d);
}

Test(osc_replies, scsynth_status_reply_reaches_an_o2_handler, .timeout = 60) {
    sc_rig_start(&the_sc, false, NULL, "");
    sc_rig *g = &the_sc;
    check_status(&g->status);
    cr_assert_eq(o2h_send(g->r, "/sc/version", 0, ""), O2H_OK);
    cr_assert(poll_until(g->r, &g->version.count, 1, 5), "no /version.reply");
    cr_assert_str_eq(g->version.types, "siisss");
    cr_assert_str_eq(g->version.args[0].s, "scsynth");
    cr_assert_geq(g->version.args[1].i, 3, "major version %d", g->version.args[1].i);
    sc_rig_stop(g);
}

Test(osc_replies, scsynth_over_tcp_answers_on_the_connection, .timeout = 60) {
    sc_rig_start(&the_sc, true, NULL, "");
    sc_rig *g = &the_sc;
    check_status(&g->status);
    sc_rig_stop(g);
}

Test(osc_replies, scsynth_notify_then_fail_and_node_events, .timeout = 60) {
    sc_rig_start(&the_sc, false, NULL, "");
    sc_rig *g = &the_sc;
    cr_assert_eq(o2h_send(g->r, "/sc/notify", 0, "i", 1), O2H_OK);
    cr_assert(poll_until(g->r, &g->done.count, 1, 5), "no /done for /notify");
    cr_assert_str_eq(g->done.types[0] == 's' ? g->done.args[0].s : "", "/notify");
    cr_assert_eq(o2h_send(g->r, "/sc/n_free", 0, "i", 999999), O2H_OK);
    cr_assert(poll_until(g->r, &g->fail.count, 1, 5), "no /fail for /n_free 999999");
    cr_assert_str_eq(g->fail.address, "/scr/fail");
    cr_assert_eq(strncmp(g->fail.types, "ss", 2), 0, "types %s", g->fail.types);
    cr_assert_str_eq(g->fail.args[0].s, "/n_free");
    cr_assert(strstr(g->fail.args[1].s, "999999"), "%s", g->fail.args[1].s);
    /* Node events now come to the delegate: a new group (no synthdef needed). */
    reply go = {0}, end = {0};
    cr_assert_eq(o2h_method_new(g->r, "/scr/n_go", NULL, on_reply, &go, false, true), O2H_OK);
    cr_assert_eq(o2h_method_new(g->r, "/scr/n_end", NULL, on_reply, &end, false, true), O2H_OK);
    cr_assert_eq(o2h_send(g->r, "/sc/g_new", 0, "iii", 1000, 0, 0), O2H_OK);
    cr_assert(poll_until(g->r, &go.count, 1, 5), "no /n_go for /g_new 1000");
    cr_assert_eq(strncmp(go.types, "iiiii", 5), 0, "types %s", go.types);
    cr_assert_eq(go.args[0].i, 1000);
    cr_assert_eq(go.args[1].i, 0, "parent %d", go.args[1].i);
    cr_assert_eq(o2h_send(g->r, "/sc/n_free", 0, "i", 1000), O2H_OK);
    cr_assert(poll_until(g->r, &end.count, 1, 5), "no /n_end for /n_free 1000");
    cr_assert_eq(end.args[0].i, 1000);
    sc_rig_stop(g);
}

#define STORM 10000
#define WINDOW 200

/* scsynth answers 10 000 failing commands with 10 000 /fail: the reply input
 * paces (bounded reads), the router stays responsive, and every reply it read
 * is counted (plugin_received) and handled. */
Test(osc_replies, a_reply_storm_is_paced_and_counted, .timeout = 120) {
    static log_seen ls;
    /* scsynth answers once per audio period (256 frames, 5.3 ms): with a pace longer
     * than that, its bursts count as one flood. */
    sc_rig_start(&the_sc, false, &ls, ", \"pace_us\": 20000");
    sc_rig *g = &the_sc;
    int fails = 0;
    cr_assert_eq(o2h_method_new(g->r, "/scr/fail", NULL, on_count, &fails, false, true), O2H_OK);
    cr_assert_eq(o2h_send(g->r, "/sc/notify", 0, "i", 1), O2H_OK);
    cr_assert(poll_until(g->r, &g->done.count, 1, 5), "no /done for /notify");
    uint64_t received0 = plugin_received(g->r);
    /* As fast as scsynth answers: at most WINDOW commands unanswered, so that
     * scsynth's own UDP buffer (it drops what it cannot hold) keeps them all. */
    int sent = 0, lost = 0, seen = 0;
    double end_send = now_mono() + 60, progress = now_mono();
    while (sent < STORM && now_mono() < end_send) {
        while (sent < STORM && sent - fails - lost < WINDOW)
            cr_assert_eq(o2h_send(g->r, "/sc/n_free", 0, "i", 1000000 + sent++), O2H_OK);
        o2h_router_poll(g->r, 1);
        if (fails != seen) {
            seen = fails;
            progress = now_mono();
        } else if (now_mono() - progress > 0.2) { /* some went missing: do not wait for them */
            lost = sent - fails;
            progress = now_mono();
        }
    }
    cr_assert_eq(sent, STORM, "sent only %d commands", sent);
    /* Wait until the replies stop coming (each wait bounded). */
    int last = -1;
    double end = now_mono() + 30;
    while (fails != last && now_mono() < end) {
        last = fails;
        double quiet = now_mono() + 0.5;
        while (now_mono() < quiet && fails < STORM)
            o2h_router_poll(g->r, 5);
        if (fails >= STORM) break;
    }
    uint64_t received = plugin_received(g->r) - received0;
    int printed = sc_server_count(&g->sc, "FAILURE IN SERVER");
    fprintf(stderr,
            "storm: %d commands, scsynth failed %d, O2 handled %d /fail, osc received %llu\n",
            STORM, printed, fails, (unsigned long long)received);
    cr_assert_gt(fails, STORM / 10, "only %d /fail of %d reached O2", fails, STORM);
    cr_assert_leq(fails, printed, "more /fail handled (%d) than scsynth sent (%d)", fails, printed);
    cr_assert_eq(received, (uint64_t)fails, "osc plugin_received %llu, handled %d",
                 (unsigned long long)received, fails);
    cr_assert_geq(ls.floods, 1, "the reply input never paced");
    /* Responsive afterwards: a status round trip. */
    int before = g->status.count;
    cr_assert_eq(o2h_send(g->r, "/sc/status", 0, ""), O2H_OK);
    cr_assert(poll_until(g->r, &g->status.count, before + 1, 2),
              "no /status.reply after the storm");
    sc_rig_stop(g);
}

#define OVERFLOW 3000
#define CHUNK 150

/* Replies that the router does not read pile up in the delegate's socket;
 * what does not fit there the kernel drops, and the router counts and logs
 * it: every /fail scsynth sent was either handled or counted as dropped. */
Test(osc_replies, replies_beyond_the_socket_buffer_are_counted, .timeout = 120) {
    static log_seen ls;
    sc_rig_start(&the_sc, false, &ls, "");
    sc_rig *g = &the_sc;
    int fails = 0;
    cr_assert_eq(o2h_method_new(g->r, "/scr/fail", NULL, on_count, &fails, false, true), O2H_OK);
    cr_assert_eq(o2h_send(g->r, "/sc/notify", 0, "i", 1), O2H_OK);
    cr_assert(poll_until(g->r, &g->done.count, 1, 5), "no /done for /notify");
    /* No polling now: scsynth answers each chunk (its log says so) into the unread socket. */
    for (int sent = 0; sent < OVERFLOW;) {
        for (int k = 0; k < CHUNK; k++, sent++)
            cr_assert_eq(o2h_send(g->r, "/sc/n_free", 0, "i", 1000000 + sent), O2H_OK);
        double end = now_mono() + 5;
        while (sc_server_count(&g->sc, "FAILURE IN SERVER") < sent && now_mono() < end)
            usleep(2000);
    }
    int printed = sc_server_count(&g->sc, "FAILURE IN SERVER");
    cr_assert_eq(printed, OVERFLOW, "scsynth failed %d of %d commands", printed, OVERFLOW);
    double quiet = now_mono() + 1.2; /* read all, and let the log's once-a-second pass */
    while (now_mono() < quiet)
        o2h_router_poll(g->r, 5);
    int before = g->status.count; /* its reply brings the kernel's final count */
    cr_assert_eq(o2h_send(g->r, "/sc/status", 0, ""), O2H_OK);
    cr_assert(poll_until(g->r, &g->status.count, before + 1, 2), "no /status.reply");
    fprintf(stderr, "overflow: scsynth sent %d /fail, O2 handled %d, the kernel dropped %lld\n",
            printed, fails, ls.kernel_dropped);
    cr_assert_gt(ls.kernel_dropped, 0, "nothing was dropped: the test did not overflow the socket");
    cr_assert_eq(fails + ls.kernel_dropped, printed, "handled %d + dropped %lld != sent %d", fails,
                 ls.kernel_dropped, printed);
    sc_rig_stop(g);
}

/* examples/sc-status: a program on O2's API joins a hub (this router, on TCP
 * and UDP as examples/supercollider.json), sends /sc/status and prints the
 * /status.reply that the hub's delegate got back from scsynth. */
Test(osc_replies, the_o2_api_example_prints_scsynth_status, .timeout = 60) {
    const char *why = sc_server_missing();
    if (why) cr_skip_test("%s", why);
    sc_rig *g = &the_sc;
    memset(g, 0, sizeof *g);
    cr_assert(sc_server_start(&g->sc, false), "scsynth: %s", g->sc.why);
    int port = free_port(SOCK_STREAM);
    char json[2048];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"demo\", \"clock\": {\"reference\": true},"
             " \"plugin_path\": [\"%s\", \"%s\"], \"transports\": ["
             "{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},"
             "{\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d},"
             "{\"type\": \"osc\", \"delegates\": [{\"service\": \"sc\","
             " \"address\": \"127.0.0.1:%d\", \"replies\": \"scr\"}]}],"
             " \"discovery\": [{\"type\": \"static\", \"peers\": []}]}",
             TRANSPORT_DIR, DISCOVERY_DIR, port, port, g->sc.port);
    o2h_router_options o = {.struct_size = sizeof o, .log_level = O2H_LOG_WARN};
    o2h_error err;
    g->r = o2h_router_new_from_json(json, "supercollider.json", &o, &err);
    cr_assert_not_null(g->r, "%s (%s)", err.message, err.key_path);
    cr_assert_eq(o2h_router_start(g->r), O2H_OK);
    char peers[64];
    snprintf(peers, sizeof peers, "127.0.0.1:%d", port);
    setenv("O2HUB_PLUGIN_PATH", TRANSPORT_DIR ":" DISCOVERY_DIR, 1);
    setenv("O2HUB_DISCOVERY", "static", 1);
    setenv("O2HUB_PEERS", peers, 1);
    child c;
    char *argv[] = {SC_STATUS_EXE, NULL};
    child_spawn(&c, argv);
    char line[512];
    bool printed = child_line(&c, g->r, "scsynth:", 15, line, sizeof line);
    int rc = child_wait(&c, g->r, 10);
    if (rc < 0) child_kill(&c);
    cr_assert(printed, "sc_status printed no status: %s", c.buf);
    cr_assert_eq(rc, 0, "sc_status exited %d: %s", rc, c.buf);
    cr_assert(strstr(line, " 1 groups") && strstr(line, " 48000 Hz"), "%s", line);
    sc_rig_stop(g);
}

/* A TCP delegate reads its connection in its framing: an OSC server of the
 * test's own accepts the delegate's connection and answers on it with two
 * packets in one write, SLIP or length-prefixed, the second a bundle. */
typedef struct ints {
    int count;
    int32_t v[4];
} ints;

static void on_int(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    ints *got = user_data;
    (void)r, (void)msg, (void)types, (void)argc;
    if (got->count < 4) got->v[got->count] = argv[0]->i;
    got->count++;
}

static void tcp_framing_replies(const char *framing) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(lfd, 1), 0);
    socklen_t alen = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    char d[256];
    snprintf(d, sizeof d,
             "{\"service\": \"srv\", \"address\": \"127.0.0.1:%d\", \"protocol\": \"tcp\","
             " \"framing\": \"%s\", \"replies\": \"back\"}",
             ntohs(a.sin_port), framing);
    o2h_router *r = reply_router(d, NULL);
    ints got = {0};
    cr_assert_eq(o2h_service_new(r, "back"), O2H_OK);
    cr_assert_eq(o2h_method_new(r, "/back/pong", "i", on_int, &got, false, true), O2H_OK);
    int cfd = -1;
    double end = now_mono() + 5;
    while (cfd < 0 && now_mono() < end) {
        o2h_router_poll(r, 5);
        cfd = accept(lfd, NULL, NULL);
    }
    cr_assert_geq(cfd, 0, "the delegate never connected");
    /* /pong ,i 1 (0xC0 and 0xDB in the int exercise SLIP's escapes), and a bundle with /pong ,i 2
     */
    static const uint8_t pong1[] = {'/', 'p', 'o', 'n', 'g',  0,    0, 0,
                                    ',', 'i', 0,   0,   0xC0, 0xDB, 0, 1};
    static const uint8_t bundle[] = {'#', 'b', 'u', 'n', 'd', 'l', 'e', 0,  0,   0,   0,   0,
                                     0,   0,   0,   1,   0,   0,   0,   16, '/', 'p', 'o', 'n',
                                     'g', 0,   0,   0,   ',', 'i', 0,   0,  0,   0,   0,   2};
    uint8_t out[256];
    size_t n = 0;
    const uint8_t *packets[] = {pong1, bundle};
    size_t sizes[] = {sizeof pong1, sizeof bundle};
    for (int k = 0; k < 2; k++) {
        if (framing[0] == 's') {
            out[n++] = 0xC0;
            for (size_t i = 0; i < sizes[k]; i++) {
                uint8_t b = packets[k][i];
                if (b == 0xC0 || b == 0xDB) {
                    out[n++] = 0xDB;
                    out[n++] = b == 0xC0 ? 0xDC : 0xDD;
                } else {
                    out[n++] = b;
                }
            }
            out[n++] = 0xC0;
        } else {
            uint32_t len = htonl((uint32_t)sizes[k]);
            memcpy(out + n, &len, 4);
            memcpy(out + n + 4, packets[k], sizes[k]);
            n += 4 + sizes[k];
        }
    }
    cr_assert_eq(write(cfd, out, n), (ssize_t)n);
    cr_assert(poll_until(r, &got.count, 2, 5), "%s: %d of 2 replies", framing, got.count);
    cr_assert_eq(got.v[0], (int32_t)0xC0DB0001, "%s: first %x", framing, (unsigned)got.v[0]);
    cr_assert_eq(got.v[1], 2, "%s: the bundle's message second", framing);
    close(cfd);
    close(lfd);
    o2h_router_free(r);
}

Test(osc_replies, a_tcp_delegate_reads_replies_in_slip_and_length_framing, .timeout = 30) {
    tcp_framing_replies("slip");
    tcp_framing_replies("length");
}

/* ---- Pure Data ---- */

typedef struct pd_rig {
    pd_process pd;
    o2h_router *r;
    reply echo;
} pd_rig;

static void pd_rig_start(pd_rig *g, const char *replies_from) {
    const char *why = pd_missing();
    if (why) cr_skip_test("%s", why);
    memset(g, 0, sizeof *g);
    cr_assert(pd_start_echo(&g->pd), "pd: %s", g->pd.why);
    char d[256];
    snprintf(d, sizeof d,
             "{\"service\": \"pd\", \"address\": \"127.0.0.1:%d\", \"replies\": \"frompd\","
             " \"replies_from\": \"%s\"}",
             g->pd.port, replies_from);
    g->r = reply_router(d, NULL);
    cr_assert_eq(o2h_service_new(g->r, "frompd"), O2H_OK);
    cr_assert_eq(o2h_method_new(g->r, "/frompd/echo", NULL, on_reply, &g->echo, false, true),
                 O2H_OK);
}

static pd_rig the_pd;

static void pd_rig_stop(pd_rig *g) {
    pd_stop(&g->pd);
    if (g->r) o2h_router_free(g->r);
    g->r = NULL;
}

/* Send /pd/echo until Pd has loaded the patch and answers (bounded). */
static bool pd_echo(pd_rig *g, double limit_s) {
    double end = now_mono() + limit_s;
    while (now_mono() < end) {
        o2h_send(g->r, "/pd/echo", 0, "ifs", 7, 2.5f, "hello");
        double next = now_mono() + 0.2;
        while (g->echo.count == 0 && now_mono() < next)
            o2h_router_poll(g->r, 5);
        if (g->echo.count > 0) return true;
    }
    return false;
}

Test(osc_replies, pd_answers_with_int_float_and_string, .timeout = 60) {
    pd_rig *g = &the_pd;
    pd_rig_start(g, "any");
    cr_assert(pd_echo(g, 15), "no /echo back from pd (log %s)", g->pd.log);
    cr_assert_str_eq(g->echo.types, "ifs");
    cr_assert_eq(g->echo.args[0].i, 7);
    cr_assert_float_eq(g->echo.args[1].f, 2.5f, 1e-6);
    cr_assert_str_eq(g->echo.args[2].s, "hello");
    /* Other values, now that the patch runs: one message, one answer. */
    g->echo.count = 0;
    cr_assert_eq(o2h_send(g->r, "/pd/echo", 0, "ifs", -42, 0.125f, "world"), O2H_OK);
    cr_assert(poll_until(g->r, &g->echo.count, 1, 5), "no second /echo");
    cr_assert_eq(g->echo.args[0].i, -42);
    cr_assert_float_eq(g->echo.args[1].f, 0.125f, 1e-6);
    cr_assert_str_eq(g->echo.args[2].s, "world");
    pd_rig_stop(g);
}

/* Pd's [netsend] answers from a port of its own, not its [netreceive]'s: with
 * the default "replies_from": "server" the delegate's connected socket does
 * not take it. Pd's log shows the answer was sent. */
Test(osc_replies, replies_from_server_ignores_another_port, .timeout = 60) {
    pd_rig *g = &the_pd;
    pd_rig_start(g, "server");
    cr_assert(pd_wait_line(&g->pd, "o2hub-echo-ready", 15), "pd did not load the patch (log %s)",
              g->pd.log);
    cr_assert_eq(o2h_send(g->r, "/pd/echo", 0, "ifs", 1, 1.0f, "x"), O2H_OK);
    cr_assert(pd_wait_line_polling(&g->pd, g->r, "o2hub-echo-sent", 5),
              "pd never answered (log %s)", g->pd.log);
    double end = now_mono() + 0.5; /* the answer was on its way: it would be here by now */
    while (now_mono() < end)
        o2h_router_poll(g->r, 5);
    cr_assert_eq(g->echo.count, 0, "a datagram from another port reached the service");
    pd_rig_stop(g);
}

static void stop_all(void) {
    sc_rig_stop(&the_sc);
    pd_rig_stop(&the_pd);
}
