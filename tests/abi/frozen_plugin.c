/*
 * A transport plugin built against the frozen ABI 1.0 headers only. It
 * provides the service named in its config on one link of its own; what is
 * sent to SERVICE/ask (",si": reply address, number) is answered — from the
 * loop's deferred phase, as send() may not deliver — with ",si" (the text
 * "frozen 1.0", number + 1) to the reply address. It touches a member of
 * every host sub-table, so a router that moves or drops one fails the test.
 */
#include <stdlib.h>
#include <string.h>

#include <o2hub/plugin.h>

#if O2H_ABI_MAJOR != 1 || O2H_ABI_MINOR != 0
#error this plugin must be built against the frozen 1.0 headers
#endif

#define MAX_PENDING 64

typedef struct frozen {
    const o2h_host *host;
    o2h_plugin *self;
    const char *service;
    o2h_link *link;
    o2h_timer *tick;
    o2h_deferred answer_later;
    o2h_msg *pending[MAX_PENDING];
    int n_pending;
    int ticks;
} frozen;

static int frozen_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg,
                         void **instance) {
    if (host->abi_major != 1 || !O2H_HAS(host, bridge) || !O2H_HAS(host->loop, defer)) {
        host->log->write(self, O2H_LOG_ERROR, "host table lacks what ABI 1.0 promises");
        return O2H_PLUGIN_ABI;
    }
    frozen *f = calloc(1, sizeof *f);
    if (!f) return O2H_NO_MEMORY;
    f->host = host;
    f->self = self;
    if (host->cfg->get_string(cfg, "service", "frozen", &f->service) == O2H_CONFIG_ERROR) {
        free(f);
        return O2H_CONFIG_ERROR;
    }
    *instance = f;
    return O2H_OK;
}

static void on_tick(void *ctx) {
    frozen *f = ctx;
    f->ticks++;
}

static int frozen_start(void *instance) {
    frozen *f = instance;
    const o2h_host *h = f->host;
    f->link = h->link->link_new(f->self, f, "frozen 1.0 link");
    if (!f->link) return O2H_NO_MEMORY;
    f->tick = h->loop->timer_start(f->self, 0.01, 0.01, on_tick, f);
    h->log->write(f->self, O2H_LOG_INFO, "ensemble %s, status of %s before: %d",
                  h->proc->ensemble(f->self), f->service,
                  h->link->service_status(f->self, f->service));
    return h->link->service_add(f->self, f->service, f->link);
}

/* Read ",si" from an ask; build and deliver the answer. */
static void answer(frozen *f, o2h_msg *ask) {
    const o2h_host *h = f->host;
    o2h_reader rd;
    o2h_arg to, n;
    if (h->msg->reader_init(&rd, ask, NULL, 0) != O2H_OK || h->msg->reader_next(&rd, 's', &to) ||
        h->msg->reader_next(&rd, 'i', &n)) {
        h->link->count_invalid(f->self, "an ask without ,si");
        return;
    }
    o2h_builder *b = h->msg->builder_new(f->self);
    if (!b) return;
    h->msg->builder_start(b);
    h->msg->add_string(b, "frozen 1.0");
    h->msg->add_int32(b, n.i + 1);
    o2h_msg *reply = h->msg->builder_finish(b, 0, to.s, O2H_FLAG_RELIABLE);
    h->msg->builder_free(b);
    if (reply) h->link->deliver(f->self, f->link, reply);
}

static void answer_pending(void *ctx) {
    frozen *f = ctx;
    for (int i = 0; i < f->n_pending; i++) {
        answer(f, f->pending[i]);
        f->host->msg->msg_unref(f->pending[i]);
    }
    f->n_pending = 0;
}

static int frozen_send(void *instance, void *link_ctx, o2h_msg *msg) {
    frozen *f = instance;
    (void)link_ctx;
    const char *addr = o2h_msg_address(msg);
    const char *rest = strchr(addr + 1, '/');
    if (!rest || strcmp(rest, "/ask") != 0) return O2H_OK;
    if (f->n_pending == MAX_PENDING) return O2H_QUEUE_FULL;
    f->pending[f->n_pending++] = f->host->msg->msg_ref(msg);
    f->host->loop->defer(f->self, &f->answer_later, answer_pending, f);
    return O2H_OK;
}

static void frozen_close(void *instance, void *link_ctx) {
    (void)link_ctx;
    frozen *f = instance;
    if (f->link) f->host->link->link_free(f->link);
    f->link = NULL;
}

static void frozen_stop(void *instance) {
    frozen *f = instance;
    if (f->tick) f->host->loop->timer_stop(f->tick);
    f->tick = NULL;
    frozen_close(f, NULL);
}

static void frozen_destroy(void *instance) {
    frozen *f = instance;
    for (int i = 0; i < f->n_pending; i++)
        f->host->msg->msg_unref(f->pending[i]);
    free(f);
}

static const o2h_transport_ops frozen_ops = {
    .send = frozen_send,
    .close = frozen_close,
};

static const o2h_plugin_desc frozen_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "frozen",
    .version = "1.0.0",
    .description = "a plugin built against the frozen ABI 1.0 headers",
    .lifecycle = {frozen_create, frozen_start, frozen_stop, frozen_destroy},
    .ops = &frozen_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &frozen_desc;
}
