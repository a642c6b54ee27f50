/*
 * A transport's link as the whole path to a process (host->proc->process_link, what
 * the mqtt transport uses for processes reached through a broker), and
 * transports that announce (o2h_transport_ops.announce).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "router.h"

#define PEER "@00000000:7f000001:1234"

/* A transport that keeps the addresses of what it is asked to send. */
typedef struct fake {
    char sent[16][64];
    int n_sent;
    char announced[32];
} fake;

static int fake_send(void *instance, void *link_ctx, o2h_msg *msg) {
    fake *f = instance;
    if (f->n_sent < 16) snprintf(f->sent[f->n_sent++], 64, "%s", o2h_msg_address(msg));
    return O2H_OK;
}

static int fake_announce(void *instance, const o2h_process_info *info) {
    fake *f = instance;
    snprintf(f->announced, sizeof f->announced, "%s", info->name);
    return O2H_OK;
}

static const o2h_plugin_desc fake_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "fake",
};

static o2h_router *named_router(void) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    o2h_router *r = o2h_router_new(&o, NULL);
    cr_assert_eq(o2h__proto_net_register(r, (o2h_plugin *)1, O2H_NET_TCP, 0x7f000001, 0xa32b),
                 O2H_OK);
    cr_assert_eq(o2h__proto_net_register(r, (o2h_plugin *)2, O2H_NET_UDP, 0x7f000001, 0xa32b),
                 O2H_OK);
    return r;
}

static void free_router(o2h_router *r) {
    r->net.tcp_plugin = r->net.udp_plugin = NULL; /* fake plugins: nothing to close */
    o2h_router_free(r);
}

static void init_plugin(o2h_plugin *p, o2h_router *r, fake *f) {
    memset(p, 0, sizeof *p);
    p->router = r;
    p->desc = &fake_desc;
    p->instance = f;
    p->started = true;
    p->transport.send = fake_send;
    p->transport.announce = fake_announce;
    snprintf(p->type, sizeof p->type, "fake");
}

static bool was_sent(const fake *f, const char *address) {
    for (int i = 0; i < f->n_sent; i++)
        if (strcmp(f->sent[i], address) == 0) return true;
    return false;
}

/* !_o2/sv from PEER offering `svc`. */
static o2h_msg *sv_from_peer(const char *svc) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_string(b, PEER);
    o2h_add_string(b, svc);
    o2h_add_true(b);
    o2h_add_true(b);
    o2h_add_string(b, ";");
    o2h_add_int32(b, 0);
    o2h_msg *m = o2h_builder_finish(b, 0, "!_o2/sv", O2H_FLAG_RELIABLE);
    o2h_builder_free(b);
    return m;
}

Test(process_link, a_link_becomes_the_whole_path_to_a_process_until_it_is_freed) {
    o2h_router *r = named_router();
    const o2h_host *h = o2h__host_table();
    fake f = {0};
    o2h_plugin plug;
    init_plugin(&plug, r, &f);
    o2h_link *link = h->link->link_new(&plug, NULL, "fake " PEER);

    cr_assert_eq(h->proc->process_link(&plug, link, PEER), O2H_OK);
    cr_assert(was_sent(&f, "!_o2/sv"), "our service list goes to the process on its link");
    cr_assert_eq(o2h_status(r, PEER), O2H_STATUS_REMOTE_NOTIME);
    f.n_sent = 0;
    cr_assert_eq(h->proc->process_link(&plug, link, PEER), O2H_OK);
    cr_assert(was_sent(&f, "!_o2/sv"), "again: the process asks for our services anew");
    cr_assert_eq(o2h_status(r, PEER), O2H_STATUS_REMOTE_NOTIME);

    /* Its service list comes in on the link; then both kinds of message go out on it. */
    cr_assert_eq(h->link->deliver(&plug, link, sv_from_peer("synth")), O2H_OK);
    cr_assert_eq(o2h_status(r, "synth"), O2H_STATUS_REMOTE_NOTIME);
    f.n_sent = 0;
    cr_assert_eq(o2h_send(r, "/synth/note", 0, "i", 60), O2H_OK);
    cr_assert_eq(o2h_send_cmd(r, "/synth/note", 0, "i", 61), O2H_OK);
    cr_assert_eq(f.n_sent, 2);
    cr_assert_str_eq(f.sent[0], "/synth/note");
    cr_assert_str_eq(f.sent[1], "/synth/note");

    /* Another link to the same process is refused. */
    o2h_link *other = h->link->link_new(&plug, NULL, "another");
    cr_assert_eq(h->proc->process_link(&plug, other, PEER), O2H_ALREADY_RUNNING);
    h->link->link_free(other);

    /* The link goes: the process and its services go with it. */
    h->link->link_free(link);
    cr_assert_eq(o2h_status(r, "synth"), O2H_STATUS_UNKNOWN);
    cr_assert_eq(o2h_status(r, PEER), O2H_STATUS_UNKNOWN);
    free_router(r);
}

Test(process_link, bad_names_our_own_name_and_no_name_yet_are_refused) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "test"};
    o2h_router *unnamed = o2h_router_new(&o, NULL);
    const o2h_host *h = o2h__host_table();
    fake f = {0};
    o2h_plugin plug;
    init_plugin(&plug, unnamed, &f);
    o2h_link *link = h->link->link_new(&plug, NULL, "fake");
    cr_assert_eq(h->proc->process_link(&plug, link, PEER), O2H_NOT_INITIALIZED);
    h->link->link_free(link);
    o2h_router_free(unnamed);

    o2h_router *r = named_router();
    init_plugin(&plug, r, &f);
    link = h->link->link_new(&plug, NULL, "fake");
    cr_assert_eq(h->proc->process_link(&plug, link, "@00000000:7f000001:a32b"), O2H_BAD_NAME,
                 "ours");
    cr_assert_eq(h->proc->process_link(&plug, link, "@00000000:7f000001:12345"), O2H_BAD_NAME);
    cr_assert_eq(h->proc->process_link(&plug, link, "@0000000g:7f000001:1234"), O2H_BAD_NAME);
    cr_assert_eq(h->proc->process_link(&plug, link, "00000000:7f000001:12345"), O2H_BAD_NAME);
    cr_assert_eq(h->proc->process_link(&plug, link, NULL), O2H_BAD_NAME);
    cr_assert_eq(o2h_status(r, PEER), O2H_STATUS_UNKNOWN);
    h->link->link_free(link);
    free_router(r);
}

Test(process_link, a_transport_with_announce_is_told_the_process_name) {
    o2h_router *r = named_router();
    fake f = {0};
    o2h_plugin plug;
    init_plugin(&plug, r, &f);
    plug.next = r->plugins;
    r->plugins = &plug;
    o2h__proto_announce(r);
    cr_assert_str_eq(f.announced, "@00000000:7f000001:a32b");
    r->plugins = plug.next; /* not loaded: the router must not close it */
    free_router(r);
}
