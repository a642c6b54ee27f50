/*
 * /_o2/si notices as O2 2.x sends them (its clock.cpp, services.cpp and
 * properties.cpp), and the clock reference's reply path. Peers are made with
 * fake transports: a link per peer, messages delivered as if they came by it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "loader.h"
#include "router.h"

#define MAX_NOTICES 64

typedef struct notice {
    char name[64];
    int status;
    char process[64];
    char props[64];
} notice;

static notice notices[MAX_NOTICES];
static int n_notices;

static void on_si(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                  int argc, void *user_data) {
    cr_assert_lt(n_notices, MAX_NOTICES);
    notice *n = &notices[n_notices++];
    snprintf(n->name, sizeof n->name, "%s", argv[0]->s);
    n->status = argv[1]->i;
    snprintf(n->process, sizeof n->process, "%s", argv[2]->s);
    snprintf(n->props, sizeof n->props, "%s", argv[3]->s);
}

/* What the fake transports were asked to send, and on which plugin. */
typedef struct sent {
    char address[64];
    const o2h_plugin *via;
    int32_t serial;
    double time;
} sent;

static sent sends[64];
static int n_sends;

static int fake_send(void *instance, void *link_ctx, o2h_msg *msg) {
    if (n_sends < 64) {
        sent *s = &sends[n_sends++];
        snprintf(s->address, sizeof s->address, "%s", o2h_msg_address(msg));
        s->via = instance;
        o2h_reader rd;
        o2h_arg a;
        if (strcmp(o2h_msg_types(msg), "it") == 0 && o2h_reader_init(&rd, msg, NULL, 0) == O2H_OK &&
            o2h_reader_next(&rd, 'i', &a) == O2H_OK) {
            s->serial = a.i;
            if (o2h_reader_next(&rd, 't', &a) == O2H_OK) s->time = a.t;
        }
    }
    return O2H_OK;
}

static int fake_connect(void *instance, const char *address, o2h_link **link) {
    *link = o2h__host_table()->link->link_new(instance, instance, address);
    return *link ? O2H_OK : O2H_NO_MEMORY;
}

static o2h_plugin tcp, udp;

static o2h_router *router_with_si(bool named) {
    n_notices = n_sends = 0;
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    o2h_router *r = o2h_router_new(&o, NULL);
    cr_assert_not_null(r);
    tcp = (o2h_plugin){.router = r, .type = "tcp"};
    udp = (o2h_plugin){.router = r, .type = "udp"};
    tcp.transport.send = udp.transport.send = fake_send;
    udp.transport.connect = fake_connect;
    tcp.instance = &tcp;
    udp.instance = &udp;
    if (named) {
        o2h__proto_net_register(r, &tcp, O2H_NET_TCP, 0x7f000001, 0x1000);
        o2h__proto_net_register(r, &udp, O2H_NET_UDP, 0x7f000001, 0x1000);
    }
    cr_assert_eq(o2h_method_new(r, "/_o2/si", "siss", on_si, NULL, false, true), O2H_OK);
    return r;
}

/* The links the peers were given go with the router (a peer goes with its TCP link). */
static void free_router(o2h_router *r) {
    while (r->net.peers && r->net.peers->tcp) {
        peer *p = r->net.peers;
        if (p->udp) o2h__host_table()->link->link_free(p->udp);
        o2h__host_table()->link->link_free(p->tcp);
    }
    r->net.tcp_plugin = r->net.udp_plugin = NULL;
    o2h_router_free(r);
}

#define PEER_2000 "@00000000:7f000001:2000"
#define PEER_3000 "@00000000:7f000001:3000"

static void peer_name_of(int port, char *out, size_t size) {
    snprintf(out, size, "@00000000:7f000001:%04x", port);
}

/* A process at 127.0.0.1:`port` connects (dy CONNECT) and offers `services`. */
static o2h_link *connect_peer(o2h_router *r, int port, const char *const *services) {
    const o2h_host *h = o2h__host_table();
    o2h_link *link = h->link->link_new(&tcp, &tcp, "peer");
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, "test");
    o2h_add_int32(b, O2H_O2_PROTOCOL_VERSION);
    o2h_add_string(b, "00000000");
    o2h_add_string(b, "7f000001");
    o2h_add_int32(b, port);
    o2h_add_int32(b, port);
    o2h_add_int32(b, O2H_DY_CONNECT);
    h->link->deliver(&tcp, link, o2h_builder_finish(b, 0, "!_o2/dy", O2H_FLAG_RELIABLE));
    o2h_builder_start(b);
    char name[32];
    peer_name_of(port, name, sizeof name);
    o2h_add_string(b, name);
    for (int i = 0; services && services[i]; i++) {
        o2h_add_string(b, services[i]);
        o2h_add_true(b);
        o2h_add_true(b);
        o2h_add_string(b, ";");
        o2h_add_int32(b, 0);
    }
    h->link->deliver(&tcp, link, o2h_builder_finish(b, 0, "!_o2/sv", O2H_FLAG_RELIABLE));
    o2h_builder_free(b);
    return link;
}

/* The peer at `port` announces its clock sync (!_o2/cs/cs) on its link. */
static void peer_synced(o2h_link *link, int port) {
    o2h_builder *b = o2h_builder_new(NULL);
    char name[32];
    peer_name_of(port, name, sizeof name);
    o2h_add_string(b, name);
    o2h__host_table()->link->deliver(&tcp, link,
                                     o2h_builder_finish(b, 0, "!_o2/cs/cs", O2H_FLAG_RELIABLE));
    o2h_builder_free(b);
}

/* Notices [from, from + n) are exactly `names` (any order: O2 walks a hash table)
 * with `status` and `process`. */
static void assert_group(int from, int n, const char *const *names, int status,
                         const char *process) {
    cr_assert_geq(n_notices, from + n, "%d notices, wanted %d", n_notices, from + n);
    bool used[MAX_NOTICES] = {false};
    for (int k = 0; k < n; k++) {
        int found = -1;
        for (int i = from; i < from + n; i++)
            if (!used[i] && strcmp(notices[i].name, names[k]) == 0) found = i;
        cr_assert_geq(found, 0, "no notice for %s among notices %d..%d", names[k], from,
                      from + n - 1);
        used[found] = true;
        cr_assert_eq(notices[found].status, status, "%s: status %d, wanted %d", names[k],
                     notices[found].status, status);
        cr_assert_str_eq(notices[found].process, process, "%s", names[k]);
    }
}

static void assert_notice(int i, const char *name, int status, const char *process,
                          const char *props) {
    cr_assert_gt(n_notices, i, "only %d notices", n_notices);
    cr_assert_str_eq(notices[i].name, name, "notice %d", i);
    cr_assert_eq(notices[i].status, status, "notice %d (%s)", i, name);
    cr_assert_str_eq(notices[i].process, process, "notice %d (%s)", i, name);
    cr_assert_str_eq(notices[i].props, props, "notice %d (%s)", i, name);
}

/* O2's infotest1: two services, then o2_clock_set. */
Test(si, becoming_the_reference_tells_cs_first_then_every_own_service_once) {
    o2h_router *r = router_with_si(false);
    o2h_service_new(r, "one");
    o2h_service_new(r, "two");
    cr_assert_eq(n_notices, 2);
    assert_notice(0, "one", O2H_STATUS_LOCAL_NOTIME, "_o2", "");
    assert_notice(1, "two", O2H_STATUS_LOCAL_NOTIME, "_o2", "");
    cr_assert_eq(o2h_clock_set(r), O2H_OK);
    /* "_cs" is told at once; the status changes were queued (as O2 queues them), so
     * they come after it. */
    cr_assert_eq(n_notices, 6);
    assert_notice(2, "_cs", O2H_STATUS_LOCAL, "_o2", "");
    assert_group(3, 3, (const char *[]){"_o2", "one", "two"}, O2H_STATUS_LOCAL, "_o2");
    o2h_router_poll(r, 0);
    cr_assert_eq(n_notices, 6, "nothing twice");
    free_router(r);
}

static void set_clock_now(o2h_router *r, const o2h_msg *msg, const char *types,
                          const o2h_arg *const *argv, int argc, void *user_data) {
    o2h_clock_set(r);
}

/* O2 blocks re-entry in a handler: every notice is queued, in the order made. */
Test(si, becoming_the_reference_in_a_handler_tells_cs_after_the_status_changes) {
    o2h_router *r = router_with_si(false);
    o2h_service_new(r, "one");
    o2h_method_new(r, "/one/go", "", set_clock_now, NULL, false, false);
    o2h_send_cmd(r, "/one/go", 0, "");
    cr_assert_eq(n_notices, 4);
    assert_group(1, 2, (const char *[]){"_o2", "one"}, O2H_STATUS_LOCAL, "_o2");
    assert_notice(3, "_cs", O2H_STATUS_LOCAL, "_o2", "");
    free_router(r);
}

/* O2's clockmirror seen from its side: sync gives the synchronised peers'
 * services (REMOTE) first, then this process's (LOCAL, "_o2" among them). */
Test(si, obtaining_sync_tells_synchronised_peers_services_then_own) {
    o2h_router *r = router_with_si(true);
    o2h_service_new(r, "client");
    const char *ref = PEER_2000, *other = PEER_3000;
    o2h_link *ref_link = connect_peer(r, 0x2000, (const char *[]){"server", "_cs", NULL});
    o2h_link *other_link = connect_peer(r, 0x3000, (const char *[]){"q", NULL});
    peer_synced(ref_link, 0x2000); /* the reference is synchronised, the other is not */
    int before = n_notices;
    assert_group(1, 3, (const char *[]){ref, "server", "_cs"}, O2H_STATUS_REMOTE_NOTIME, ref);
    assert_group(4, 2, (const char *[]){other, "q"}, O2H_STATUS_REMOTE_NOTIME, other);
    cr_assert_eq(before, 6, "a peer's sync before ours changes no status");

    o2h__clock_estimate(r, 100.0, o2h_local_time(r));
    o2h_router_poll(r, 0);
    cr_assert_eq(n_notices, before + 5, "%d notices", n_notices - before);
    assert_group(before, 3, (const char *[]){ref, "server", "_cs"}, O2H_STATUS_REMOTE, ref);
    assert_group(before + 3, 2, (const char *[]){"_o2", "client"}, O2H_STATUS_LOCAL, "_o2");

    /* The other process obtains sync later: its services become REMOTE. */
    peer_synced(other_link, 0x3000);
    cr_assert_eq(n_notices, before + 7);
    assert_group(before + 5, 2, (const char *[]){other, "q"}, O2H_STATUS_REMOTE, other);
    peer_synced(other_link, 0x3000);
    cr_assert_eq(n_notices, before + 7, "a second !_o2/cs/cs changes nothing");
    free_router(r);
}

/* O2's infotest2 (reference) with clockmirror: the mirror's services are
 * REMOTE_NOTIME until its !_o2/cs/cs; the reference's sync leaves them so. */
Test(si, the_reference_reports_a_mirror_remote_only_once_it_has_sync) {
    o2h_router *r = router_with_si(true);
    o2h_service_new(r, "one");
    o2h_clock_set(r);
    o2h_router_poll(r, 0);
    cr_assert_eq(n_notices, 4); /* one (LOCAL_NOTIME), _cs, then _o2 and one (LOCAL) */
    const char *mirror = PEER_2000;
    o2h_link *link = connect_peer(r, 0x2000, (const char *[]){"client", NULL});
    assert_group(4, 2, (const char *[]){mirror, "client"}, O2H_STATUS_REMOTE_NOTIME, mirror);
    peer_synced(link, 0x2000);
    cr_assert_eq(n_notices, 8);
    assert_group(6, 2, (const char *[]){mirror, "client"}, O2H_STATUS_REMOTE, mirror);
    /* The mirror goes away: each of its services with status -1, naming it. */
    o2h__host_table()->link->link_free(r->net.peers->udp);
    o2h__host_table()->link->link_free(link);
    cr_assert_eq(n_notices, 10);
    assert_group(8, 2, (const char *[]){mirror, "client"}, O2H_STATUS_UNKNOWN, mirror);
    free_router(r);
}

/* As O2's remove_service: the provider that left, then the one now active. */
Test(si, a_provider_leaving_tells_who_left_then_who_remains) {
    o2h_router *r = router_with_si(true);
    const char *me = o2h_router_process_name(r), *other = PEER_2000;
    connect_peer(r, 0x2000, (const char *[]){"shared", NULL});
    int before = n_notices;
    /* The peer's greater name keeps it active: O2 says nothing of the new local provider. */
    cr_assert_eq(o2h_service_new(r, "shared"), O2H_OK);
    cr_assert_eq(n_notices, before);
    cr_assert_eq(o2h_service_free(r, "shared"), O2H_OK);
    cr_assert_eq(n_notices, before + 2);
    assert_notice(before, "shared", O2H_STATUS_UNKNOWN, me, "");
    assert_notice(before + 1, "shared", O2H_STATUS_REMOTE_NOTIME, other, "");
    /* A service of this process alone: -1 naming this process. */
    o2h_service_new(r, "mine");
    assert_notice(before + 2, "mine", O2H_STATUS_LOCAL_NOTIME, "_o2", "");
    o2h_service_free(r, "mine");
    cr_assert_eq(n_notices, before + 4);
    assert_notice(before + 3, "mine", O2H_STATUS_UNKNOWN, me, "");
    free_router(r);
}

/* As O2's o2_set_service_properties: this process's name, once it has one. */
Test(si, a_property_change_names_this_process_once_it_has_a_name) {
    o2h_router *r = router_with_si(false);
    o2h_service_new(r, "one");
    o2h_service_set_property(r, "one", "k", "v");
    cr_assert_eq(n_notices, 1, "no name yet: no notice");
    free_router(r);

    r = router_with_si(true);
    o2h_service_new(r, "one");
    o2h_service_set_property(r, "one", "k", "v");
    cr_assert_eq(n_notices, 2);
    assert_notice(1, "one", O2H_STATUS_LOCAL_NOTIME, o2h_router_process_name(r), "k:v;");
    free_router(r);
}

/* Taps change no status: O2 sends no notice for them. */
Test(si, taps_bring_no_notice) {
    o2h_router *r = router_with_si(true);
    o2h_service_new(r, "one");
    cr_assert_eq(o2h_tap(r, "one", "tapper", O2H_TAP_KEEP), O2H_OK);
    cr_assert_eq(o2h_untap(r, "one", "tapper"), O2H_OK);
    cr_assert_eq(n_notices, 1);
    free_router(r);
}

/*
 * The reference answers !_cs/get as O2's cs_ping_handler: at once, inside the
 * delivery of the ping, over UDP to the reply-to process, with the serial and
 * its time (an O2 mirror measures the round trip from its own send).
 */
Test(si, the_reference_answers_a_ping_at_once_over_udp) {
    o2h_router *r = router_with_si(true);
    o2h_clock_set(r);
    const char *mirror = PEER_2000;
    connect_peer(r, 0x2000, (const char *[]){"client", NULL});
    n_sends = 0;
    char reply_to[64];
    snprintf(reply_to, sizeof reply_to, "!%s/cs/put", mirror);
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_int32(b, 7);
    o2h_add_string(b, reply_to);
    /* As the UDP transport delivers a datagram: no link. */
    o2h__host_table()->link->deliver(&udp, NULL, o2h_builder_finish(b, 0, "!_cs/get", 0));
    o2h_builder_free(b);
    cr_assert_eq(n_sends, 1, "answered before the delivery returned");
    cr_assert_str_eq(sends[0].address, reply_to);
    cr_assert_eq(sends[0].via, &udp, "over UDP, as O2's o2_send");
    cr_assert_eq(sends[0].serial, 7);
    cr_assert_float_eq(sends[0].time, o2h_time_get(r), 0.05);
    free_router(r);
}
