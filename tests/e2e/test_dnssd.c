/*
 * DNS-SD discovery (plugins/dnssd) against a real avahi-daemon: a private
 * dbus and avahi, loopback only, in namespaces of their own (avahi_env.h),
 * started and stopped by each test.
 *
 * - Separate peer processes (tests/e2e/peer.c) with tcp + udp + dnssd and no
 *   peer addresses find each other and exchange messages both ways; a process
 *   of another ensemble sees none of them. Registrations made by the test
 *   itself check the other side of the protocol: the TXT record o2hub
 *   registers, and the !_o2/dy it sends to what it finds (and does not send
 *   to another major version or another ensemble).
 * - Routers in this process start while avahi is down, keep running, log one
 *   warning, and find each other once avahi comes up; the same when avahi
 *   goes away later and comes back.
 *
 * If this machine cannot run avahi-daemon (not installed, no namespaces), the
 * tests say why and are skipped.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dns_sd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "avahi_env.h"
#include "testproc.h"

static avahi_env env;

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/o2hub-dnssd-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    avahi_env_init(&env, tmpdir);
}

static void teardown(void) {
    avahi_env_stop(&env);
    if (!tmpdir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    (void)!system(cmd);
    tmpdir[0] = '\0';
}

TestSuite(dnssd, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the test's own DNS-SD refs and UDP sockets, pumped while waiting ---- */

#define MAX_REFS 16
#define MAX_SOCKS 4

static DNSServiceRef refs[MAX_REFS];
static int n_refs;

typedef struct sink { /* a UDP socket standing for a fake O2 process */
    int fd;
    int port;
    char got[8192]; /* one line per datagram: "ENSEMBLE NAME FLAG" or "other" */
} sink;
static sink sinks[MAX_SOCKS];
static int n_sinks;

static void add_ref(DNSServiceRef ref) {
    cr_assert_lt(n_refs, MAX_REFS);
    refs[n_refs++] = ref;
}

static void drop_ref(DNSServiceRef ref) {
    for (int i = 0; i < n_refs; i++)
        if (refs[i] == ref) {
            DNSServiceRefDeallocate(ref);
            refs[i] = refs[--n_refs];
            return;
        }
}

/* Read a padded OSC string at *off. */
static const char *osc_string(const uint8_t *p, size_t len, size_t *off) {
    const char *s = (const char *)p + *off;
    size_t n = strnlen(s, len - *off);
    if (*off + n >= len) return NULL;
    *off += (n + 4) & ~(size_t)3;
    return s;
}

static int32_t osc_int(const uint8_t *p, size_t len, size_t *off) {
    if (*off + 4 > len) return -1;
    int32_t v = (int32_t)((uint32_t)p[*off] << 24 | (uint32_t)p[*off + 1] << 16 |
                          (uint32_t)p[*off + 2] << 8 | p[*off + 3]);
    *off += 4;
    return v;
}

/* "ENSEMBLE @pip:iip:tcp FLAG" for a !_o2/dy datagram (UDP: no length prefix). */
static void describe_datagram(const uint8_t *p, size_t len, char *out, size_t size) {
    size_t off = 12;
    snprintf(out, size, "other");
    const char *address = len > 12 ? osc_string(p, len, &off) : NULL;
    const char *types = address ? osc_string(p, len, &off) : NULL;
    if (!types || strcmp(address, "!_o2/dy") != 0 || strcmp(types, ",sissiii") != 0) return;
    const char *ensemble = osc_string(p, len, &off);
    int32_t version = osc_int(p, len, &off);
    const char *pip = ensemble ? osc_string(p, len, &off) : NULL;
    const char *iip = pip ? osc_string(p, len, &off) : NULL;
    int32_t tcp = osc_int(p, len, &off);
    osc_int(p, len, &off); /* udp */
    int32_t flag = osc_int(p, len, &off);
    if (!iip) return;
    snprintf(out, size, "%s @%s:%s:%04x %d v%06x", ensemble, pip, iip, (unsigned)tcp, flag,
             (unsigned)version);
}

/* Wait up to timeout_ms for DNS-SD events, datagrams or `fd`; handle what came. */
static bool pump(int fd, int timeout_ms) {
    struct pollfd pfd[1 + MAX_REFS + MAX_SOCKS];
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
    for (int i = 0; i < n_refs; i++)
        pfd[n++] = (struct pollfd){.fd = DNSServiceRefSockFD(refs[i]), .events = POLLIN};
    for (int i = 0; i < n_sinks; i++)
        pfd[n++] = (struct pollfd){.fd = sinks[i].fd, .events = POLLIN};
    if (poll(pfd, (nfds_t)n, timeout_ms) <= 0) return false;
    int k = 1;
    DNSServiceRef ready[MAX_REFS];
    int n_ready = 0;
    for (int i = 0; i < n_refs; i++, k++)
        if (pfd[k].revents) ready[n_ready++] = refs[i];
    for (int i = 0; i < n_sinks; i++, k++) {
        if (!pfd[k].revents) continue;
        uint8_t buf[2048];
        ssize_t len = recv(sinks[i].fd, buf, sizeof buf, MSG_DONTWAIT);
        if (len <= 0) continue;
        char line[256];
        describe_datagram(buf, (size_t)len, line, sizeof line);
        size_t used = strlen(sinks[i].got);
        snprintf(sinks[i].got + used, sizeof sinks[i].got - used, "%s\n", line);
    }
    for (int i = 0; i < n_ready; i++)
        DNSServiceProcessResult(ready[i]); /* callbacks may add or drop refs */
    return fd >= 0 && pfd[0].revents;
}

static void pump_for(double seconds) {
    double end = now_s() + seconds;
    while (now_s() < end)
        pump(-1, (int)((end - now_s()) * 1000) + 1);
}

static sink *new_sink(void) {
    cr_assert_lt(n_sinks, MAX_SOCKS);
    sink *s = &sinks[n_sinks++];
    s->fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &alen);
    s->port = ntohs(a.sin_port);
    s->got[0] = '\0';
    return s;
}

static void DNSSD_API on_fake_registered(DNSServiceRef ref, DNSServiceFlags flags,
                                         DNSServiceErrorType err, const char *name,
                                         const char *type, const char *domain, void *ctx) {
    cr_assert_eq(err, 0, "registering a fake process failed: %d", err);
}

/* A _o2proc._tcp registration as an O2 process would make it. */
static void fake_process(const char *instance, const char *txt_name, const char *vers, int port) {
    uint8_t txt[128];
    size_t n = 0;
    char item[80];
    snprintf(item, sizeof item, "name=%s", txt_name);
    txt[n] = (uint8_t)strlen(item);
    memcpy(txt + n + 1, item, strlen(item));
    n += 1 + strlen(item);
    snprintf(item, sizeof item, "vers=%s", vers);
    txt[n] = (uint8_t)strlen(item);
    memcpy(txt + n + 1, item, strlen(item));
    n += 1 + strlen(item);
    DNSServiceRef ref;
    int err = DNSServiceRegister(&ref, 0, 0, instance, "_o2proc._tcp", NULL, NULL,
                                 htons((uint16_t)port), (uint16_t)n, txt, on_fake_registered, NULL);
    cr_assert_eq(err, 0, "DNSServiceRegister: %d", err);
    add_ref(ref);
}

/* ---- browsing what o2hub registered ---- */

typedef struct seen {
    char instance[64];
    char txt_name[64];
    char vers[16];
    int port;
    bool resolved;
} seen;

static seen seen_list[16];
static int n_seen;

static void DNSSD_API on_test_resolved(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
                                       DNSServiceErrorType err, const char *fullname,
                                       const char *host, uint16_t port, uint16_t txt_len,
                                       const unsigned char *txt, void *ctx) {
    seen *s = ctx;
    if (err || s->resolved) return;
    uint8_t len = 0;
    const void *v = TXTRecordGetValuePtr(txt_len, txt, "name", &len);
    if (v) snprintf(s->txt_name, sizeof s->txt_name, "%.*s", (int)len, (const char *)v);
    v = TXTRecordGetValuePtr(txt_len, txt, "vers", &len);
    if (v) snprintf(s->vers, sizeof s->vers, "%.*s", (int)len, (const char *)v);
    s->port = ntohs(port);
    s->resolved = true;
}

static void DNSSD_API on_test_browse(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
                                     DNSServiceErrorType err, const char *name, const char *type,
                                     const char *domain, void *ctx) {
    if (err || !(flags & kDNSServiceFlagsAdd) || n_seen >= 16) return;
    for (int i = 0; i < n_seen; i++)
        if (strcmp(seen_list[i].instance, name) == 0) return;
    seen *s = &seen_list[n_seen++];
    snprintf(s->instance, sizeof s->instance, "%s", name);
    DNSServiceRef r;
    if (DNSServiceResolve(&r, 0, ifindex, name, type, domain, on_test_resolved, s) == 0) add_ref(r);
}

static const seen *find_seen(const char *txt_prefix) {
    for (int i = 0; i < n_seen; i++)
        if (seen_list[i].resolved && strncmp(seen_list[i].txt_name, txt_prefix, 23) == 0)
            return &seen_list[i];
    return NULL;
}

/* ---- peer processes ---- */

static void dnssd_config(proc *p, const char *file, const char *ensemble, const char *dnssd_extra) {
    p->port = free_port();
    snprintf(p->config, sizeof p->config, "%s/%s.json", tmpdir, file);
    FILE *f = fopen(p->config, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"ensemble\": \"%s\", \"plugin_path\": [\"%s\", \"%s\"],\n"
            " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
            "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],\n"
            " \"discovery\": [{\"type\": \"dnssd\", \"retry_max\": 2.0%s}]}\n",
            ensemble, TRANSPORT_DIR, DISCOVERY_DIR, p->port, p->port, dnssd_extra);
    fclose(f);
}

/* Read what the process wrote, pumping DNS-SD meanwhile, for up to `ms`. */
static bool read_some(proc *p, int ms) {
    if (!pump(p->out_fd, ms)) return true;
    ssize_t n = read(p->out_fd, p->out + p->used, sizeof p->out - 1 - p->used);
    if (n <= 0) return false;
    p->used += (size_t)n;
    p->out[p->used] = '\0';
    return true;
}

static void drain(proc *p) {
    while (read_some(p, 0) && pump(p->out_fd, 0)) {
    }
    read_some(p, 0);
}

#define SKIP_WITHOUT_AVAHI()                                                                       \
    do {                                                                                           \
        if (!avahi_env_start(&env, 10)) {                                                          \
            fprintf(stderr, "dnssd test skipped: %s\n", env.why);                                  \
            teardown(); /* criterion does not run .fini after a skip */                            \
            cr_skip_test("this machine cannot run avahi-daemon: %s", env.why);                     \
        }                                                                                          \
    } while (0)

Test(dnssd, processes_find_each_other_other_ensembles_and_versions_ignored) {
    SKIP_WITHOUT_AVAHI();
    /* Fake O2 processes, registered by this test. */
    sink *same = new_sink(), *v3 = new_sink(), *other = new_sink(), *bad = new_sink();
    char txt[64];
    snprintf(txt, sizeof txt, "@00000000:7f000001:%04x:%04x", same->port, same->port);
    fake_process("dnssd #90", txt, "2.0.1", same->port);
    snprintf(txt, sizeof txt, "@00000000:7f000001:%04x:%04x", v3->port, v3->port);
    fake_process("dnssd #91", txt, "3.0.0", v3->port);
    snprintf(txt, sizeof txt, "@00000000:7f000001:%04x:%04x", other->port, other->port);
    fake_process("dnssd-other #90", txt, "2.0.1", other->port);
    snprintf(txt, sizeof txt, "@00000000:7f000001:%04x:%03x", bad->port, bad->port & 0xfff);
    fake_process("dnssd #92", txt, "2.0.1", bad->port);

    proc a = {.wait = pump}, b = {.wait = pump}, c = {.wait = pump};
    dnssd_config(&a, "a", "dnssd", "");
    dnssd_config(&b, "b", "dnssd", ", \"interface\": \"lo\"");
    dnssd_config(&c, "c", "dnssd-other", "");
    start(&a);
    start(&b);
    start(&c);
    must(&a, "ready", 5);
    must(&b, "ready", 5);
    must(&c, "ready", 5);
    process_name(&a, a.name, sizeof a.name);
    process_name(&b, b.name, sizeof b.name);
    process_name(&c, c.name, sizeof c.name);
    tell(&a, "offer echo");
    tell(&b, "offer echo2");
    tell(&c, "offer lonely");

    /* A and B find each other and talk both ways, over TCP and UDP. */
    must(&b, "si echo 1 @", 20);
    must(&a, "si echo2 1 @", 20);
    tell(&b, "ping /echo/ping tcp 42");
    must(&b, "pong 43 @", 5);
    tell(&b, "ping /echo/ping udp 7");
    must(&b, "pong 8 @", 5);
    tell(&a, "ping /echo2/ping tcp 100");
    must(&a, "pong 101 @", 5);
    tell(&a, "ping /echo2/ping udp 200");
    must(&a, "pong 201 @", 5);

    /* What A registered is what O2 registers: instance = ensemble (or a renaming),
     * port = TCP port, TXT name = process name + ":" + UDP port, vers = 2.0.1. */
    DNSServiceRef browse;
    cr_assert_eq(DNSServiceBrowse(&browse, 0, 0, "_o2proc._tcp", "local.", on_test_browse, NULL),
                 0);
    add_ref(browse);
    double end = now_s() + 10;
    while ((!find_seen(a.name) || !find_seen(b.name)) && now_s() < end)
        pump(-1, 100);
    const seen *sa = find_seen(a.name), *sb = find_seen(b.name);
    cr_assert_not_null(sa, "the test never resolved A's registration");
    cr_assert_not_null(sb, "the test never resolved B's registration");
    char want[64];
    snprintf(want, sizeof want, "%s:%04x", a.name, a.port);
    cr_assert_str_eq(sa->txt_name, want);
    cr_assert_eq(strlen(sa->txt_name), 28);
    cr_assert_str_eq(sa->vers, "2.0.1");
    cr_assert_eq(sa->port, a.port);
    cr_assert(strcmp(sa->instance, "dnssd") == 0 || strncmp(sa->instance, "dnssd #", 7) == 0,
              "instance name %s", sa->instance);
    cr_assert(strcmp(sa->instance, sb->instance) != 0);
    for (int i = 0; i < n_seen; i++) /* C registered under its own ensemble */
        if (seen_list[i].resolved && strncmp(seen_list[i].txt_name, c.name, 23) == 0)
            cr_assert(strncmp(seen_list[i].instance, "dnssd-other", 11) == 0, "%s",
                      seen_list[i].instance);

    /* The fake process of the ensemble gets A's and B's !_o2/dy (INFO = 50), the
     * other ensemble's gets C's. */
    char dy_a[96], dy_b[96], dy_c[96];
    snprintf(dy_a, sizeof dy_a, "dnssd %s 50 v020001", a.name);
    snprintf(dy_b, sizeof dy_b, "dnssd %s 50 v020001", b.name);
    snprintf(dy_c, sizeof dy_c, "dnssd-other %s 50 v020001", c.name);
    end = now_s() + 10;
    while ((!strstr(same->got, dy_a) || !strstr(same->got, dy_b) || !strstr(other->got, dy_c)) &&
           now_s() < end)
        pump(-1, 100);
    cr_assert(strstr(same->got, dy_a), "no dy from A; got:\n%s", same->got);
    cr_assert(strstr(same->got, dy_b), "no dy from B; got:\n%s", same->got);
    cr_assert(strstr(other->got, dy_c), "no dy from C; got:\n%s", other->got);

    /* Let every resend happen (0, 0.5, 1.5 s after a resolve), then check what never came. */
    pump_for(2.5);
    drain(&a);
    drain(&b);
    drain(&c);
    cr_assert_null(strstr(same->got, c.name), "C contacted another ensemble:\n%s", same->got);
    cr_assert_null(strstr(other->got, a.name), "A contacted another ensemble:\n%s", other->got);
    cr_assert_null(strstr(other->got, b.name), "B contacted another ensemble:\n%s", other->got);
    cr_assert_str_eq(v3->got, "", "a process of O2 3.x was contacted:\n%s", v3->got);
    cr_assert_str_eq(bad->got, "", "a process with a bad TXT name was contacted:\n%s", bad->got);
    cr_assert_null(strstr(c.out, "si @"), "C saw a process of another ensemble:\n%s", c.out);
    cr_assert_null(strstr(c.out, "si echo"), "C saw another ensemble's service:\n%s", c.out);
    cr_assert_null(strstr(a.out, "si lonely"), "A saw C's service:\n%s", a.out);
    cr_assert_null(strstr(b.out, "si lonely"), "B saw C's service:\n%s", b.out);
    /* The bad TXT name was dropped and counted. */
    cr_assert_geq(stat_field(&a, "invalid"), 1);

    /* B goes away and comes back on the same ports: A finds it again. */
    stop(&b, SIGTERM);
    must(&a, "si echo2 -1", 10);
    start(&b);
    must(&b, "ready", 5);
    tell(&b, "offer echo2");
    must(&a, "si echo2 1 @", 20);
    tell(&a, "ping /echo2/ping tcp 300");
    must(&a, "pong 301 @", 5);

    for (proc *p = &a; p; p = p == &a ? &b : p == &b ? &c : NULL) {
        tell(p, "quit");
        stop(p, SIGTERM);
    }
    while (n_refs)
        drop_ref(refs[0]);
}

/* ---- routers in this process while avahi comes and goes ---- */

typedef struct node {
    o2h_router *r;
    char log[32768];
    int hits;
} node;

static void on_log(void *ctx, int level, const char *origin, const char *text) {
    node *n = ctx;
    size_t used = strlen(n->log);
    snprintf(n->log + used, sizeof n->log - used, "%d %s: %s\n", level, origin, text);
}

static int count(const char *haystack, const char *needle) {
    int k = 0;
    for (const char *p = strstr(haystack, needle); p; p = strstr(p + 1, needle))
        k++;
    return k;
}

static void on_hit(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    node *n = user_data;
    n->hits++;
}

static void node_start(node *n, const char *service) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"dnssd-down\", \"plugin_path\": [\"%s\", \"%s\"],\n"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\"},\n"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\"}],\n"
             " \"discovery\": [{\"type\": \"dnssd\", \"retry_min\": 0.2, \"retry_max\": 1.0}]}\n",
             TRANSPORT_DIR, DISCOVERY_DIR);
    o2h_router_options opts = {.struct_size = sizeof opts,
                               .log_level = O2H_LOG_DEBUG,
                               .log_level_fixed = true,
                               .log = on_log,
                               .log_ctx = n};
    o2h_error err;
    n->r = o2h_router_new_from_json(json, service, &opts, &err);
    cr_assert_not_null(n->r);
    char path[64];
    snprintf(path, sizeof path, "/%s/hit", service);
    cr_assert_eq(o2h_service_new(n->r, service), O2H_OK);
    cr_assert_eq(o2h_method_new(n->r, path, "i", on_hit, n, false, true), O2H_OK);
    cr_assert_eq(o2h_router_start(n->r), O2H_OK);
}

/* Poll every router until done(arg) or the time is up. */
static bool spin(node **nodes, double seconds, bool (*done)(void *), void *arg) {
    double end = now_s() + seconds;
    for (;;) {
        if (done && done(arg)) return true;
        if (now_s() >= end) return false;
        for (int i = 0; nodes[i]; i++)
            o2h_router_poll(nodes[i]->r, 0);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

typedef struct sees {
    node *who;
    const char *service;
} sees;

static bool all_see(void *arg) {
    for (sees *s = arg; s->who; s++)
        if (o2h_status(s->who->r, s->service) < 0) return false;
    return true;
}

typedef struct logged {
    node **nodes;
    const char *text;
    int times;
} logged;

static bool all_logged(void *arg) {
    logged *l = arg;
    for (int i = 0; l->nodes[i]; i++)
        if (count(l->nodes[i]->log, l->text) < l->times) return false;
    return true;
}

#define WARNING "is avahi-daemon (and dbus) running?"

Test(dnssd, routers_survive_avahi_down_at_start_and_later) {
    node a = {0}, b = {0}, c = {0};
    node *ab[] = {&a, &b, NULL}, *abc[] = {&a, &b, &c, NULL};
    /* Nothing listens on the bus socket yet: no dbus, no avahi. */
    node_start(&a, "svca");
    node_start(&b, "svcb");
    spin(ab, 3.0, NULL, NULL);
    for (node **n = ab; *n; n++) {
        cr_assert_eq(count((*n)->log, WARNING), 1, "want one warning:\n%s", (*n)->log);
        cr_assert_geq(count((*n)->log, "retry in"), 3, "no quiet retries:\n%s", (*n)->log);
        cr_assert_not_null(o2h_router_process_name((*n)->r));
    }
    /* The routers work meanwhile. */
    cr_assert_eq(o2h_send(a.r, "/svca/hit", 0, "i", 1), O2H_OK);
    spin(ab, 0.1, NULL, NULL);
    cr_assert_eq(a.hits, 1);
    cr_assert_lt(o2h_status(a.r, "svcb"), 0);

    SKIP_WITHOUT_AVAHI();
    sees found[] = {{&a, "svcb"}, {&b, "svca"}, {NULL, NULL}};
    cr_assert(spin(ab, 15, all_see, found), "no discovery once avahi is up.\nA:\n%s\nB:\n%s", a.log,
              b.log);
    cr_assert_eq(o2h_send_cmd(b.r, "/svca/hit", 0, "i", 2), O2H_OK);
    cr_assert_eq(o2h_send(a.r, "/svcb/hit", 0, "i", 3), O2H_OK);
    spin(ab, 0.5, NULL, NULL);
    cr_assert_eq(a.hits, 2);
    cr_assert_eq(b.hits, 1);

    /* avahi goes away: one more warning each, quiet retries, links stay. */
    avahi_env_stop_avahi(&env);
    logged lost = {ab, WARNING, 2};
    cr_assert(spin(ab, 10, all_logged, &lost), "loss not noticed.\nA:\n%s", a.log);
    spin(ab, 2.5, NULL, NULL);
    cr_assert_eq(count(a.log, WARNING), 2, "%s", a.log);
    cr_assert_eq(count(b.log, WARNING), 2, "%s", b.log);
    cr_assert_geq(o2h_status(a.r, "svcb"), 0);

    /* avahi is back: they register again, and a newcomer finds them. */
    cr_assert(avahi_env_start(&env, 10), "%s", env.why);
    logged back = {ab, "DNS-SD is up", 2};
    cr_assert(spin(ab, 10, all_logged, &back), "no re-registration.\nA:\n%s", a.log);
    node_start(&c, "svcc");
    sees found_c[] = {{&c, "svca"}, {&c, "svcb"}, {&a, "svcc"}, {&b, "svcc"}, {NULL, NULL}};
    cr_assert(spin(abc, 15, all_see, found_c), "the newcomer is not found.\nC:\n%s", c.log);
    cr_assert_eq(o2h_send_cmd(c.r, "/svca/hit", 0, "i", 4), O2H_OK);
    spin(abc, 0.5, NULL, NULL);
    cr_assert_eq(a.hits, 3);

    o2h_router_free(c.r);
    o2h_router_free(b.r);
    o2h_router_free(a.r);
}

/* avahi's compat library makes a bus connection for each DNSServiceRef, and
 * dbus-daemon lets one user hold 256 (64 processes of one user on one machine
 * reach that). With room on the bus for avahi-daemon, each router's
 * registration and browse, and one resolve at a time, the routers' resolves
 * are refused now and then: each is tried again later (not taken for avahi
 * being down: no warning, nothing withdrawn), and all of them meet. */
Test(dnssd, routers_meet_on_a_crowded_bus_without_withdrawing) {
    enum { N = 4 };
    avahi_env_limit_connections(&env, 1 + 2 * N + 1);
    SKIP_WITHOUT_AVAHI();
    static node nodes[N];
    node *all[N + 1] = {NULL};
    sees found[N * (N - 1) + 1];
    char services[N][8];
    int k = 0;
    for (int i = 0; i < N; i++) {
        snprintf(services[i], sizeof services[i], "svc%d", i);
        nodes[i] = (node){0};
        all[i] = &nodes[i];
    }
    for (int i = 0; i < N; i++) {
        node_start(&nodes[i], services[i]);
        for (int j = 0; j < N; j++)
            if (j != i) found[k++] = (sees){&nodes[i], services[j]};
    }
    found[k] = (sees){NULL, NULL};
    cr_assert(spin(all, 40, all_see, found), "not all met.\n0:\n%s\n1:\n%s", nodes[0].log,
              nodes[1].log);
    int refused = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(count(nodes[i].log, WARNING), 0, "%s", nodes[i].log);
        refused += count(nodes[i].log, "cannot resolve");
    }
    cr_assert_geq(refused, 1, "the bus refused no resolve: the test did not crowd it");
    for (int i = 0; i < N; i++)
        o2h_router_free(nodes[i].r);
}

/* ---- the websocket transport publishes its HTTP server as _http._tcp (_https._tcp with TLS) ----
 */

static void capture_log(void *ctx, int level, const char *origin, const char *text) {
    char *log = ctx;
    size_t used = strlen(log);
    snprintf(log + used, 8192 - used, "%s: %s\n", origin, text);
}

/* Start a websocket transport with `tls_keys` (JSON, may be ""), browse
 * `type`, and check the instance is published on the port it serves. */
static void check_published(const char *type, const char *scheme, const char *tls_keys) {
    static char log[8192];
    char instance[64], json[1536];
    snprintf(instance, sizeof instance, "o2hub-%s-%d", scheme, (int)getpid());
    snprintf(json, sizeof json,
             "{\"ensemble\": \"webdnssd\", \"plugin_path\": [\"%s\"],"
             " \"transports\": [{\"type\": \"websocket\", \"host\": \"127.0.0.1\", \"port\": 0,"
             "                   \"dnssd\": true, \"dnssd_name\": \"%s\"%s}]}",
             WS_DIR, instance, tls_keys);
    o2h_router_options o = {.struct_size = sizeof o,
                            .log_level = O2H_LOG_INFO,
                            .log = capture_log,
                            .log_ctx = log,
                            .log_level_fixed = true};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, "web.json", &o, &err);
    cr_assert_not_null(r, "%s", err.message);
    cr_assert_eq(o2h_router_start(r), O2H_OK, "%s", log);
    char url[32];
    snprintf(url, sizeof url, "%s://127.0.0.1:", scheme);
    const char *at = strstr(log, url);
    cr_assert_not_null(at, "%s", log);
    int port = atoi(at + strlen(url));
    DNSServiceRef browse;
    cr_assert_eq(DNSServiceBrowse(&browse, 0, 0, type, "local.", on_test_browse, NULL), 0);
    add_ref(browse);
    const seen *found = NULL;
    /* Until our browse resolves it and the router has seen avahi confirm it. */
    for (double end = now_s() + 15; (!found || !strstr(log, "published")) && now_s() < end;) {
        o2h_router_poll(r, 5);
        pump(-1, 5);
        for (int i = 0; i < n_seen; i++)
            if (seen_list[i].resolved && strcmp(seen_list[i].instance, instance) == 0)
                found = &seen_list[i];
    }
    cr_assert_not_null(found, "%s not found by browsing %s; log:\n%s", instance, type, log);
    cr_assert_eq(found->port, port, "published port %d, serving on %d", found->port, port);
    cr_assert_not_null(strstr(log, "published"), "%s", log);
    o2h_router_free(r);
}

Test(dnssd, the_http_server_is_published_as_http_tcp) {
    SKIP_WITHOUT_AVAHI();
    check_published("_http._tcp", "http", "");
}

Test(dnssd, the_https_server_is_published_as_https_tcp) {
    SKIP_WITHOUT_AVAHI();
    char cmd[512], keys[300];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s/key.pem -out %s/cert.pem -days 2 -subj /CN=127.0.0.1 2>/dev/null",
             tmpdir, tmpdir);
    if (system(cmd) != 0) {
        teardown();
        cr_skip_test("openssl could not make a certificate");
    }
    snprintf(keys, sizeof keys, ", \"tls_cert\": \"%s/cert.pem\", \"tls_key\": \"%s/key.pem\"",
             tmpdir, tmpdir);
    check_published("_https._tcp", "https", keys);
}
