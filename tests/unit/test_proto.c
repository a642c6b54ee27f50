/* The O2 process protocol's messages, byte for byte as O2 2.x encodes them. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "loader.h"
#include "router.h"

static void assert_hex(const o2h_msg *m, const char *hex) {
    char got[1024] = "";
    for (uint32_t i = 0; i < m->length; i++)
        sprintf(got + 2 * i, "%02x", m->data[i]);
    char want[1024];
    size_t n = 0;
    for (const char *p = hex; *p; p++)
        if (*p != ' ') want[n++] = *p;
    want[n] = '\0';
    cr_assert_str_eq(got, want);
}

static o2h_router *named_router(const char *ensemble, int tcp, int udp) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = ensemble};
    o2h_router *r = o2h_router_new(&o, NULL);
    /* What the tcp and udp plugins report when bound to 127.0.0.1. */
    cr_assert_eq(o2h__proto_net_register(r, (o2h_plugin *)1, O2H_NET_TCP, 0x7f000001, tcp), O2H_OK);
    cr_assert_eq(o2h__proto_net_register(r, (o2h_plugin *)2, O2H_NET_UDP, 0x7f000001, udp), O2H_OK);
    return r;
}

Test(proto, process_name_is_public_internal_and_tcp_port_in_hex) {
    o2h_router *r = named_router("test", 0xa32b, 0xdb33);
    cr_assert_str_eq(o2h_router_process_name(r), "@00000000:7f000001:a32b");
    r->net.tcp_plugin = r->net.udp_plugin = NULL; /* fake plugins: nothing to close */
    o2h_router_free(r);
}

Test(proto, dy_matches_o2s_own_encoding) {
    /* The 80-byte discovery message O2 2.0.1 produced. */
    o2h_router *r = named_router("test", 0xa32b, 0xdb33);
    o2h_msg *dy = o2h__proto_dy_message(r, O2H_DY_CONNECT);
    assert_hex(dy, "00000001 0000000000000000 215f6f322f647900 2c7369737369696900000000"
                   "7465737400000000 00020001 303030303030303000000000"
                   "376630303030303100000000 0000a32b 0000db33 00000036");
    cr_assert_eq(dy->length, 80);
    o2h_msg_unref(dy);
    r->net.tcp_plugin = r->net.udp_plugin = NULL;
    o2h_router_free(r);
}

Test(proto, no_dy_before_the_process_has_a_name) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    o2h_router *r = o2h_router_new(&o, NULL);
    cr_assert_null(o2h__proto_dy_message(r, O2H_DY_INFO));
    cr_assert_null(o2h_router_process_name(r));
    o2h_router_free(r);
}

Test(proto, user_message_as_o2_encodes_it) {
    /* What o2_send_cmd("/s/a", 2.0, "ifs", 1, 1.5f, "hi") puts on the wire after the length. */
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    o2h_router *r = o2h_router_new(&o, NULL);
    o2h_builder *b = o2h_send_start(r);
    o2h_add_int32(b, 1);
    o2h_add_float(b, 1.5f);
    o2h_add_string(b, "hi");
    o2h_msg *m = o2h_builder_finish(b, 2.0, "/s/a", O2H_FLAG_RELIABLE);
    assert_hex(m, "00000001 4000000000000000 2f732f6100000000 2c69667300000000"
                  "00000001 3fc00000 68690000");
    o2h_msg_unref(m);
    o2h_router_free(r);
}

Test(proto, sv_item_forms) {
    /* !_o2/sv "s" + (name, added, is-service, properties, mode): a service added with a
     * property, as O2's send_one_sv_msg writes it (T/F type codes, leading ';'). */
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, "@00000000:7f000001:a32b");
    o2h_add_string(b, "synth");
    o2h_add_true(b);
    o2h_add_true(b);
    o2h_add_string(b, ";x:1;");
    o2h_add_int32(b, 0);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/sv", O2H_FLAG_RELIABLE);
    assert_hex(m, "00000001 0000000000000000 215f6f322f737600 2c73735454736900"
                  "4030303030303030303a3766303030303031 3a61333262 00"
                  "73796e7468000000 3b783a313b000000 00000000");
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

static o2h_msg *dy_connect_from(int port) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, "test");
    o2h_add_int32(b, O2H_O2_PROTOCOL_VERSION);
    o2h_add_string(b, "00000000");
    o2h_add_string(b, "7f000001");
    o2h_add_int32(b, port);
    o2h_add_int32(b, port);
    o2h_add_int32(b, O2H_DY_CONNECT);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/dy", O2H_FLAG_RELIABLE);
    o2h_builder_free(b);
    return m;
}

/* A router named @00000000:7f000001:1000, and a link (plugins without sockets) on which
 * process @00000000:7f000001:2000 has introduced itself. */
typedef struct peer_on_link {
    o2h_router *r;
    const o2h_host *h;
    o2h_plugin tcp, udp;
    o2h_link *link;
} peer_on_link;

static void peer_on_link_start(peer_on_link *p) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    p->r = o2h_router_new(&o, NULL);
    p->h = o2h__host_table();
    p->tcp = (o2h_plugin){.router = p->r, .type = "tcp"};
    p->udp = (o2h_plugin){.router = p->r, .type = "udp"};
    o2h__proto_net_register(p->r, &p->tcp, O2H_NET_TCP, 0x7f000001, 0x1000);
    o2h__proto_net_register(p->r, &p->udp, O2H_NET_UDP, 0x7f000001, 0x1000);
    p->link = p->h->link->link_new(&p->tcp, NULL, "peer");
    p->h->link->deliver(&p->tcp, p->link, dy_connect_from(0x2000));
}

/* Found by fuzz_proto: a second dy CONNECT with another name on a link that
 * already speaks for a process left the first process pointing at the link
 * after it was freed. A link names its process once. */
Test(proto, a_link_names_its_process_once) {
    peer_on_link p;
    peer_on_link_start(&p);
    o2h_router *r = p.r;
    const o2h_host *h = p.h;
    o2h_link *link = p.link;
    cr_assert_eq(o2h_status(r, "@00000000:7f000001:2000"), O2H_STATUS_REMOTE_NOTIME);
    h->link->deliver(&p.tcp, link, dy_connect_from(0x3000));
    cr_assert_eq(o2h_status(r, "@00000000:7f000001:3000"), O2H_STATUS_UNKNOWN, "not renamed");
    h->link->link_free(link);
    cr_assert_eq(o2h_status(r, "@00000000:7f000001:2000"), O2H_STATUS_UNKNOWN, "gone with it");
    o2h_router_free(r);
}

static int connects;
static int count_connect(void *instance, const char *address, o2h_link **link) {
    connects++;
    return O2H_TCP_CONNECT_FAIL;
}

/* A discovery (INFO) dy as a UDP broadcast would bring it. */
static o2h_msg *dy_info(const char *public_ip, const char *internal_ip, int port) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_builder_start(b);
    o2h_add_string(b, "test");
    o2h_add_int32(b, O2H_O2_PROTOCOL_VERSION);
    o2h_add_string(b, public_ip);
    o2h_add_string(b, internal_ip);
    o2h_add_int32(b, port);
    o2h_add_int32(b, port);
    o2h_add_int32(b, O2H_DY_INFO);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/dy", 0);
    o2h_builder_free(b);
    return m;
}

static uint64_t stat_of(o2h_router *r, const char *name) {
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    for (int i = 0; i < o2h_stats_count(); i++) {
        uint64_t v;
        if (strcmp(o2h_stats_name(i, &st, &v), name) == 0) return v;
    }
    cr_assert_fail("no counter %s", name);
    return 0;
}

/* A router named @00000000:7f000001:1000 whose TCP transport counts connects. */
typedef struct counting_router {
    o2h_router *r;
    o2h_plugin tcp, udp;
} counting_router;

static void named_with_counted_connects(counting_router *nr) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    nr->r = o2h_router_new(&o, NULL);
    nr->tcp = (o2h_plugin){.router = nr->r, .type = "tcp"};
    nr->udp = (o2h_plugin){.router = nr->r, .type = "udp"};
    nr->tcp.transport.connect = count_connect;
    o2h__proto_net_register(nr->r, &nr->tcp, O2H_NET_TCP, 0x7f000001, 0x1000);
    o2h__proto_net_register(nr->r, &nr->udp, O2H_NET_UDP, 0x7f000001, 0x1000);
    connects = 0;
}

Test(proto, dy_naming_no_process_or_outside_allow_opens_nothing_and_is_counted) {
    counting_router nr;
    named_with_counted_connects(&nr);
    o2h_router *r = nr.r;
    const o2h_host *h = o2h__host_table();
    o2h_plugin *udp = &nr.udp;
    h->link->deliver(udp, NULL, dy_info("00000000", "ffffffff", 0x2000)); /* broadcast */
    h->link->deliver(udp, NULL, dy_info("00000000", "e0000001", 0x2000)); /* multicast */
    h->link->deliver(udp, NULL, dy_info("00000000", "00000000", 0x2000));
    cr_assert_eq(connects, 0);
    cr_assert_eq(stat_of(r, "refused"), 3);
    h->link->deliver(udp, NULL, dy_info("00000000", "zzzzzzzz", 0x2000));
    h->link->deliver(udp, NULL, dy_info("000000001", "7f000001", 0x2000)); /* too long */
    h->link->deliver(udp, NULL, dy_info("00000000", "7F000001", 0x2000));  /* O2 writes lower */
    cr_assert_eq(connects, 0);
    cr_assert_eq(stat_of(r, "dropped_bad_names"), 3);
    h->link->deliver(udp, NULL, dy_info("00000000", "c0a80005", 0x2000)); /* private: default */
    cr_assert_eq(connects, 1);
    cr_assert_eq(o2h_router_allow(r, "127.0.0.0/8"), O2H_OK);
    cr_assert_eq(o2h_router_allow(r, "10.1.2.0/33"), O2H_BAD_ARGS);
    h->link->deliver(udp, NULL, dy_info("00000000", "c0a80006", 0x2000)); /* now outside */
    cr_assert_eq(connects, 1);
    cr_assert_eq(stat_of(r, "refused"), 4);
    h->link->deliver(udp, NULL, dy_info("00000000", "7f000001", 0x2000));
    cr_assert_eq(connects, 2);
    o2h_router_free(r);
}

Test(proto, a_bad_allow_entry_is_a_located_config_error) {
    o2h_error err;
    cr_assert_null(o2h_router_new_from_json(
        "{\"ensemble\": \"t\",\n \"allow\": [\"127.0.0.0/8\",\n  \"10.0.0.0/33\"]}", "allow.json",
        NULL, &err));
    cr_assert_eq(err.code, O2H_CONFIG_ERROR);
    cr_assert_eq(err.line, 3, "line %d: %s", err.line, err.message);
    cr_assert(strstr(err.key_path, "allow[1]"), "%s", err.key_path);
    cr_assert(strstr(err.message, "10.0.0.0/33"), "%s", err.message);
}

/* This machine's first IPv4 address off loopback, in hex as O2 writes it, or "". */
static void own_address(char out[9]) {
    out[0] = '\0';
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
        uint32_t a = ntohl(((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
        if ((a >> 24) == 127) continue;
        snprintf(out, 9, "%08x", a);
        break;
    }
    freeifaddrs(ifs);
}

Test(proto, the_networks_of_this_machine_are_allowed_by_default) {
    char own[9];
    own_address(own);
    if (!own[0]) cr_skip_test("no IPv4 interface besides loopback");
    counting_router nr;
    named_with_counted_connects(&nr);
    o2h_router *r = nr.r;
    const o2h_host *h = o2h__host_table();
    o2h_plugin *udp = &nr.udp;
    h->link->deliver(udp, NULL, dy_info("00000000", own, 0x2000));
    cr_assert_eq(connects, 1, "a process at %s, on this machine's network, is reached", own);
    o2h_router_free(r);
}

/* !_o2/sv from `from`: items [first, first + n) named PREFIX<i>, services or taps of "tapped". */
static o2h_msg *sv_items(const char *from, const char *prefix, int first, int n, bool taps) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, from);
    for (int i = first; i < first + n; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        o2h_add_string(b, name);
        o2h_add_true(b);
        if (taps)
            o2h_add_false(b);
        else
            o2h_add_true(b);
        o2h_add_string(b, taps ? "tapped" : "");
        o2h_add_int32(b, 0);
    }
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/sv", O2H_FLAG_RELIABLE);
    o2h_builder_free(b);
    return m;
}

static void count_taps(void *ctx, const o2h_service_info *info) {
    if (info->status == O2H_STATUS_TAP) ++*(int *)ctx;
}

/* One process cannot make this one hold more than 65536 services or 4096 taps for it. */
Test(proto, a_process_has_bounded_services_and_taps_here) {
    peer_on_link p;
    peer_on_link_start(&p);
    o2h_router *r = p.r;
    const o2h_host *h = p.h;
    o2h_link *link = p.link;
    const char *name = "@00000000:7f000001:2000";
    cr_assert_eq(o2h_status(r, name), O2H_STATUS_REMOTE_NOTIME);
    enum { BOUND = 65536, TAP_BOUND = 4096, OVER = 10, CHUNK = 4096 };
    for (int i = 0; i < BOUND + OVER; i += CHUNK)
        h->link->deliver(
            &p.tcp, link,
            sv_items(name, "s", i, i + CHUNK > BOUND + OVER ? BOUND + OVER - i : CHUNK, false));
    cr_assert_eq(o2h_status(r, "s65535"), O2H_STATUS_REMOTE_NOTIME, "the bound is served");
    cr_assert_eq(o2h_status(r, "s65536"), O2H_STATUS_UNKNOWN, "one over it is refused");
    cr_assert_eq(stat_of(r, "refused"), OVER);
    /* Offered again it is no new one; removed, it makes room. */
    h->link->deliver(&p.tcp, link, sv_items(name, "s", 0, 1, false));
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, name);
    o2h_add_string(b, "s1");
    o2h_add_false(b);
    o2h_add_true(b);
    o2h_add_string(b, "");
    o2h_add_int32(b, 0);
    h->link->deliver(&p.tcp, link, o2h_builder_finish(b, 0, "!_o2/sv", O2H_FLAG_RELIABLE));
    o2h_builder_free(b);
    h->link->deliver(&p.tcp, link, sv_items(name, "s", 70000, 1, false));
    cr_assert_eq(o2h_status(r, "s70000"), O2H_STATUS_REMOTE_NOTIME, "room after a removal");
    cr_assert_eq(stat_of(r, "refused"), OVER);
    h->link->deliver(&p.tcp, link, sv_items(name, "t", 0, TAP_BOUND + OVER, true));
    int taps = 0;
    o2h_services_list(r, count_taps, &taps);
    cr_assert_eq(taps, TAP_BOUND, "taps held: %d", taps);
    cr_assert_eq(stat_of(r, "refused"), 2 * OVER);
    h->link->link_free(link);
    cr_assert_eq(o2h_status(r, "s2"), O2H_STATUS_UNKNOWN, "all gone with the process");
    taps = 0;
    o2h_services_list(r, count_taps, &taps);
    cr_assert_eq(taps, 0);
    o2h_router_free(r);
}
