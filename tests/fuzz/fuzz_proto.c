/*
 * libFuzzer target: the O2 process protocol and the O2lite host protocol as
 * a peer or a client could drive them. A router with stand-in tcp and udp
 * plugins (no sockets: sends fail and are counted) gets a sequence of
 * messages from the input, each framed as a 2-byte length and the bytes, on
 * one of two links: link 0 is a peer process that has already said hello,
 * link 1 a fresh connection (it may say !_o2/o2lite/con and become an O2lite
 * client). Both links are then closed, which removes what they offered.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(void *ctx, int level, const char *origin, const char *text) {
}

static o2h_msg *dy_connect(void) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, "fuzz");
    o2h_add_int32(b, O2H_O2_PROTOCOL_VERSION);
    o2h_add_string(b, "00000000");
    o2h_add_string(b, "7f000001");
    o2h_add_int32(b, 0x2000);
    o2h_add_int32(b, 0x2000);
    o2h_add_int32(b, O2H_DY_CONNECT);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/dy", O2H_FLAG_RELIABLE);
    o2h_builder_free(b);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "fuzz", .log = quiet};
    o2h_router *r = o2h_router_new(&o, NULL);
    if (!r) return 0;
    const o2h_host *h = o2h__host_table();
    o2h_plugin tcp = {.router = r, .type = "tcp"}, udp = {.router = r, .type = "udp"};
    o2h__proto_net_register(r, &tcp, O2H_NET_TCP, 0x7f000001, 0x1000);
    o2h__proto_net_register(r, &udp, O2H_NET_UDP, 0x7f000001, 0x1000);
    if (data[0] & 1) o2h_clock_set(r); /* half the runs have a clock */
    o2h_link *links[2] = {h->link->link_new(&tcp, NULL, "peer"),
                          h->link->link_new(&tcp, NULL, "fresh")};
    h->link->deliver(&tcp, links[0], dy_connect());
    size_t at = 1;
    while (at + 3 <= size) {
        int which = data[at] & 1;
        size_t len = (size_t)data[at + 1] << 8 | data[at + 2];
        at += 3;
        if (len > size - at) len = size - at;
        o2h_msg *m = h->msg->msg_alloc(&tcp, len);
        if (!m) break;
        memcpy(m->data, data + at, len);
        m->length = (uint32_t)len;
        h->link->deliver(&tcp, links[which], m);
        at += len;
    }
    o2h_router_poll(r, 0); /* due timers and queued notifications */
    h->link->link_free(links[0]);
    h->link->link_free(links[1]);
    o2h_router_free(r);
    return 0;
}
