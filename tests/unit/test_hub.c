/*
 * Hub discovery (O2's o2_hub) in one router, against a fake TCP transport
 * that records what is sent on each link: the message flows of O2's "Hubs"
 * notes (src/o2.cpp), byte for byte where O2 fixes the bytes, and what a
 * hub does with requests that do not come from a peer.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "hub.h"
#include "loader.h"
#include "router.h"

#define MAX_SENT 64
#define MAX_LINKS 16

typedef struct fake_net {
    o2h_router *r;
    o2h_plugin tcp, udp;
    o2h_link *links[MAX_LINKS]; /* link ctx = index + 1 */
    char addresses[MAX_LINKS][32];
    int n_links;
    struct {
        int link; /* index + 1 of links[] */
        o2h_msg *msg;
    } sent[MAX_SENT];
    int n_sent;
    int udp_connects;
    char udp_address[32];
    o2h_link *udp_links[MAX_LINKS];
} fake_net;

static fake_net net;

static int fake_connect(void *instance, const char *address, o2h_link **link) {
    fake_net *n = instance;
    cr_assert(n->n_links < MAX_LINKS);
    int i = n->n_links++;
    snprintf(n->addresses[i], sizeof n->addresses[i], "%s", address);
    n->links[i] = o2h__host_table()->link->link_new(&n->tcp, (void *)(intptr_t)(i + 1), address);
    *link = n->links[i];
    return O2H_OK;
}

static int fake_udp_connect(void *instance, const char *address, o2h_link **link) {
    fake_net *n = instance;
    cr_assert(n->udp_connects < MAX_LINKS);
    snprintf(n->udp_address, sizeof n->udp_address, "%s", address);
    *link = n->udp_links[n->udp_connects++] =
        o2h__host_table()->link->link_new(&n->udp, NULL, address);
    return O2H_OK;
}

static int fake_send(void *instance, void *link_ctx, o2h_msg *msg) {
    fake_net *n = instance;
    cr_assert(n->n_sent < MAX_SENT);
    o2h_msg_ref(msg);
    n->sent[n->n_sent].link = (int)(intptr_t)link_ctx;
    n->sent[n->n_sent++].msg = msg;
    return O2H_OK;
}

static int fake_udp_send(void *instance, void *link_ctx, o2h_msg *msg) {
    return O2H_OK;
}

/* A router named @00000000:7f000001:PORT on the fake transports. */
static void start_net(int port) {
    memset(&net, 0, sizeof net);
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    net.r = o2h_router_new(&o, NULL);
    net.tcp = (o2h_plugin){.router = net.r, .type = "tcp", .instance = &net};
    net.udp = (o2h_plugin){.router = net.r, .type = "udp", .instance = &net};
    net.tcp.transport.connect = fake_connect;
    net.tcp.transport.send = fake_send;
    net.udp.transport.connect = fake_udp_connect;
    net.udp.transport.send = fake_udp_send;
    o2h__proto_net_register(net.r, &net.tcp, O2H_NET_TCP, 0x7f000001, port);
    o2h__proto_net_register(net.r, &net.udp, O2H_NET_UDP, 0x7f000001, port);
}

/* The transports free their links, as real ones do when they close. */
static void stop_net(void) {
    for (int i = 0; i < net.n_sent; i++)
        o2h_msg_unref(net.sent[i].msg);
    for (int i = 0; i < net.n_links; i++)
        o2h__host_table()->link->link_free(net.links[i]);
    for (int i = 0; i < net.udp_connects; i++)
        o2h__host_table()->link->link_free(net.udp_links[i]);
    o2h_router_free(net.r);
}

/* A link the fake transport accepted (a process connected to us). */
static o2h_link *accepted(void) {
    int i = net.n_links++;
    net.links[i] = o2h__host_table()->link->link_new(&net.tcp, (void *)(intptr_t)(i + 1), "in");
    return net.links[i];
}

static int link_index(const o2h_link *l) {
    for (int i = 0; i < net.n_links; i++)
        if (net.links[i] == l) return i + 1;
    cr_assert_fail("unknown link");
    return 0;
}

/* The k-th message sent on `l` (0 first), or NULL. */
static o2h_msg *sent_on(const o2h_link *l, int k) {
    int li = link_index(l);
    for (int i = 0; i < net.n_sent; i++)
        if (net.sent[i].link == li && k-- == 0) return net.sent[i].msg;
    return NULL;
}

static int count_on(const o2h_link *l, const char *address) {
    int li = link_index(l), n = 0;
    for (int i = 0; i < net.n_sent; i++)
        n += net.sent[i].link == li && strcmp(o2h_msg_address(net.sent[i].msg), address) == 0;
    return n;
}

static o2h_msg *dy(int port, int udp, int flag) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, "test");
    o2h_add_int32(b, O2H_O2_PROTOCOL_VERSION);
    o2h_add_string(b, "00000000");
    o2h_add_string(b, "7f000001");
    o2h_add_int32(b, port);
    o2h_add_int32(b, udp);
    o2h_add_int32(b, flag);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/dy", O2H_FLAG_RELIABLE);
    o2h_builder_free(b);
    return m;
}

static void deliver(o2h_link *from, o2h_msg *m) {
    o2h__host_table()->link->deliver(&net.tcp, from, m);
}

static o2h_msg *hub_request(void) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/hub", O2H_FLAG_RELIABLE);
    o2h_builder_free(b);
    return m;
}

static void assert_hex(const o2h_msg *m, const char *hex) {
    char got[1024] = "", want[1024];
    for (uint32_t i = 0; i < m->length; i++)
        sprintf(got + 2 * i, "%02x", m->data[i]);
    size_t n = 0;
    for (const char *p = hex; *p; p++)
        if (*p != ' ') want[n++] = *p;
    want[n] = '\0';
    cr_assert_str_eq(got, want);
}

/* The flag (last int32) and TCP port (third from last) of a dy message. */
static int dy_flag(const o2h_msg *m) {
    return (int)o2h_rd_u32(m->data + m->length - 4);
}
static int dy_port(const o2h_msg *m) {
    return (int)o2h_rd_u32(m->data + m->length - 12);
}

static const char *name_of(int port) {
    static char name[32];
    snprintf(name, sizeof name, "@00000000:7f000001:%04x", port);
    return name;
}

Test(hub, the_request_o2_sends_is_an_empty_message) {
    /* !_o2/hub with no arguments, as O2's o2_send_start(); o2_message_finish(0.0, ...). */
    o2h_msg *m = hub_request();
    assert_hex(m, "00000001 0000000000000000 215f6f322f687562 00000000 2c000000");
    o2h_msg_unref(m);
}

/* The hub, the greater name: dy HUB on the client's connection is answered dy REPLY first. */
Test(hub, a_hub_answers_dy_hub_with_dy_reply_then_its_services) {
    start_net(0x2000);
    o2h_link *in = accepted();
    deliver(in, dy(0x1000, 0x1001, O2H_DY_HUB));
    cr_assert_eq(o2h_status(net.r, name_of(0x1000)), O2H_STATUS_REMOTE_NOTIME);
    o2h_msg *first = sent_on(in, 0), *want = o2h__proto_dy_message(net.r, O2H_DY_REPLY);
    cr_assert_not_null(first);
    cr_assert_eq(first->length, want->length);
    cr_assert_eq(memcmp(first->data, want->data, want->length), 0, "our dy, flag REPLY (52)");
    cr_assert_eq(dy_flag(first), 52);
    o2h_msg_unref(want);
    cr_assert_str_eq(o2h_msg_address(sent_on(in, 1)), "!_o2/sv");
    stop_net();
}

/*
 * On !_o2/hub, each pair of the requester and another O2 process is
 * introduced: the lesser gets the greater's dy INFO (so it connects). A
 * process that joins later is introduced to the requester too, not to the
 * processes that never asked.
 */
Test(hub, a_hub_introduces_each_pair_to_the_lesser_name) {
    start_net(0x2000);
    o2h_link *p1 = accepted(), *p3 = accepted();
    deliver(p1, dy(0x1000, 0x1000, O2H_DY_CONNECT));
    deliver(p3, dy(0x3000, 0x3005, O2H_DY_CONNECT));
    cr_assert_eq(count_on(p1, "!_o2/dy") + count_on(p3, "!_o2/dy"), 0);
    deliver(p1, hub_request());
    cr_assert_eq(count_on(p1, "!_o2/dy"), 1, "P1 < P3: P1 gets P3's dy");
    cr_assert_eq(count_on(p3, "!_o2/dy"), 0);
    o2h_msg *info = sent_on(p1, 1); /* after our !_o2/sv */
    assert_hex(info, "00000001 0000000000000000 215f6f322f647900 2c7369737369696900000000"
                     "7465737400000000 00020001 303030303030303000000000"
                     "376630303030303100000000 00003000 00003005 00000032");
    /* A lesser process joins: P1 (a hub client) is the greater, so the newcomer gets its dy. */
    o2h_link *p0 = accepted();
    deliver(p0, dy(0x0800, 0x0800, O2H_DY_CONNECT));
    cr_assert_eq(count_on(p0, "!_o2/dy"), 1);
    cr_assert_eq(dy_port(sent_on(p0, 1)), 0x1000);
    cr_assert_eq(count_on(p3, "!_o2/dy"), 0, "P3 never asked");
    /* Requests that come from no peer do nothing. */
    int before = net.n_sent;
    deliver(NULL, hub_request());
    deliver(accepted(), hub_request());
    cr_assert_eq(net.n_sent, before);
    stop_net();
}

/* The client, the lesser name: dy HUB, then on dy REPLY !_o2/hub, and its UDP port is used. */
Test(hub, a_client_sends_dy_hub_and_asks_after_the_reply) {
    start_net(0x1000);
    cr_assert_eq(o2h_router_hub(net.r, "127.0.0.1:8192"), O2H_OK); /* 0x2000 */
    cr_assert_eq(net.n_links, 1);
    cr_assert_str_eq(net.addresses[0], "127.0.0.1:8192");
    o2h_link *hub = net.links[0];
    cr_assert_eq(dy_flag(sent_on(hub, 0)), O2H_DY_HUB);
    cr_assert_eq(count_on(hub, "!_o2/hub"), 0, "not before the reply");
    cr_assert_str_eq(net.udp_address, "127.0.0.1:8192");
    deliver(hub, dy(0x2000, 0x2001, O2H_DY_REPLY));
    cr_assert_eq(count_on(hub, "!_o2/hub"), 1);
    cr_assert_str_eq(net.udp_address, "127.0.0.1:8193", "the hub's own UDP port");
    /* Its dy INFO about another process: we connect to it (it is the greater). */
    deliver(hub, dy(0x3000, 0x3000, O2H_DY_INFO));
    cr_assert_eq(net.n_links, 2);
    cr_assert_eq(dy_flag(sent_on(net.links[1], 0)), O2H_DY_CONNECT);
    /* Asking again for the same hub, by name this time: nothing more is sent. */
    int before = net.n_sent;
    cr_assert_eq(o2h_router_hub(net.r, "@00000000:7f000001:2000"), O2H_OK);
    cr_assert_eq(net.n_sent, before);
    stop_net();
}

/* The client, the greater name: dy CALLBACK; the hub connects with dy CONNECT; !_o2/hub at once. */
Test(hub, a_client_calls_a_lesser_hub_back_and_asks_first) {
    start_net(0x3000);
    cr_assert_eq(o2h_router_hub(net.r, "127.0.0.1:8192"), O2H_OK);
    o2h_link *temp = net.links[0];
    cr_assert_eq(dy_flag(sent_on(temp, 0)), O2H_DY_CALLBACK);
    cr_assert(temp->close_pending, "the callback connection is closed");
    o2h_link *in = accepted();
    deliver(in, dy(0x2000, 0x2000, O2H_DY_CONNECT));
    cr_assert_str_eq(o2h_msg_address(sent_on(in, 0)), "!_o2/hub");
    cr_assert_str_eq(o2h_msg_address(sent_on(in, 1)), "!_o2/sv");
    /* A process that is not our hub connecting is just a peer. */
    o2h_link *other = accepted();
    deliver(other, dy(0x2800, 0x2800, O2H_DY_CONNECT));
    cr_assert_eq(count_on(other, "!_o2/hub"), 0);
    stop_net();
}

/* dy REPLY from anyone but the hub we asked is ignored; from a hub by another name, refused. */
Test(hub, replies_that_do_not_come_from_our_hub) {
    start_net(0x1000);
    o2h_link *plain = accepted();
    deliver(plain, dy(0x0800, 0x0800, O2H_DY_CONNECT));
    deliver(plain, dy(0x0800, 0x0800, O2H_DY_REPLY));
    cr_assert_eq(count_on(plain, "!_o2/hub"), 0, "not our hub");
    deliver(NULL, dy(0x0900, 0x0900, O2H_DY_REPLY)); /* by UDP: no link, nothing */
    cr_assert_eq(net.n_links, 1);
    cr_assert_eq(o2h_router_hub(net.r, "127.0.0.1:8192"), O2H_OK);
    o2h_link *hub = net.links[1];
    deliver(hub, dy(0x2001, 0x2001, O2H_DY_REPLY)); /* answers as another process */
    cr_assert_eq(count_on(hub, "!_o2/hub"), 0);
    cr_assert(hub->close_pending);
    stop_net();
}

Test(hub, hub_addresses) {
    start_net(0x1000);
    const char *bad[] = {"127.0.0.1",
                         "127.0.0.1:0",
                         "127.0.0.1:70000",
                         "127.0.0.1:80x",
                         "localhost:80",
                         ":80",
                         "@00000000:7f00001:2000",
                         "@0000000g:7f000001:2000",
                         "@00000000:7f000001:20000",
                         NULL};
    for (int i = 0; bad[i]; i++)
        cr_assert_eq(o2h_router_hub(net.r, bad[i]), O2H_BAD_ARGS, "%s", bad[i]);
    cr_assert_eq(o2h_router_hub(NULL, "127.0.0.1:80"), O2H_BAD_ARGS);
    cr_assert_eq(o2h_router_hub(net.r, NULL), O2H_BAD_ARGS);
    cr_assert_eq(net.n_links, 0);
    /* Outside "allow": refused and counted, no connection. */
    cr_assert_eq(o2h_router_hub(net.r, "0.0.0.0:80"), O2H_FAIL);
    cr_assert_eq(o2h_router_allow(net.r, "10.0.0.0/8"), O2H_OK);
    cr_assert_eq(o2h_router_hub(net.r, "127.0.0.1:80"), O2H_FAIL);
    cr_assert_eq(net.n_links, 0);
    cr_assert_eq(o2h_router_hub(net.r, "@01020304:0a000001:2000"), O2H_OK);
    cr_assert_eq(net.n_links, 1);
    cr_assert_str_eq(net.addresses[0], "10.0.0.1:8192");
    stop_net();
}

/* Asked before the router has a name, the hub is reached once it has one. */
Test(hub, a_hub_named_before_the_router_has_a_name_is_reached_after) {
    memset(&net, 0, sizeof net);
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    net.r = o2h_router_new(&o, NULL);
    cr_assert_eq(o2h_router_hub(net.r, "127.0.0.1:8192"), O2H_OK);
    net.tcp = (o2h_plugin){.router = net.r, .type = "tcp", .instance = &net};
    net.udp = (o2h_plugin){.router = net.r, .type = "udp", .instance = &net};
    net.tcp.transport.connect = fake_connect;
    net.tcp.transport.send = fake_send;
    net.udp.transport.connect = fake_udp_connect;
    net.udp.transport.send = fake_udp_send;
    o2h__proto_net_register(net.r, &net.tcp, O2H_NET_TCP, 0x7f000001, 0x1000);
    cr_assert_eq(net.n_links, 0);
    o2h__proto_net_register(net.r, &net.udp, O2H_NET_UDP, 0x7f000001, 0x1000);
    cr_assert_eq(net.n_links, 1);
    cr_assert_eq(dy_flag(sent_on(net.links[0], 0)), O2H_DY_HUB);
    stop_net();
}

/* A dy HUB that comes by no link (the static plugin's "hub") makes the router use that hub. */
Test(hub, a_local_dy_hub_uses_the_process_it_names) {
    start_net(0x1000);
    deliver(NULL, dy(0x2000, 0x2000, O2H_DY_HUB));
    cr_assert_eq(net.n_links, 1);
    cr_assert_eq(dy_flag(sent_on(net.links[0], 0)), O2H_DY_HUB);
    deliver(NULL, dy(0x2000, 0x2000, O2H_DY_HUB)); /* the repeats: nothing more */
    cr_assert_eq(net.n_links, 1);
    stop_net();
}

static int announced, withdrawn;
static int count_announce(void *instance, const o2h_process_info *info) {
    announced++;
    return O2H_OK;
}
static int count_withdraw(void *instance) {
    withdrawn++;
    return O2H_OK;
}

Test(hub, discovery_stop_withdraws_discovery_plugins_for_good) {
    start_net(0x1000);
    static const o2h_plugin_desc desc = {.kind = O2H_PLUGIN_DISCOVERY, .name = "counting"};
    o2h_plugin disc = {.router = net.r, .type = "counting", .desc = &desc, .started = true};
    disc.discovery.announce = count_announce;
    disc.discovery.withdraw = count_withdraw;
    net.r->plugins = &disc;
    announced = withdrawn = 0;
    o2h__proto_announce(net.r);
    cr_assert_eq(announced, 1);
    cr_assert_eq(o2h_router_discovery_stop(net.r), O2H_OK);
    cr_assert_eq(withdrawn, 1);
    o2h__proto_announce(net.r); /* as when a peer is lost */
    cr_assert_eq(announced, 1);
    net.r->plugins = NULL;
    stop_net();
}
