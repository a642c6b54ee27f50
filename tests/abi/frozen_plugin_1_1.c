/*
 * A transport plugin built against the frozen ABI 1.1 headers only, using
 * both things 1.1 added. It provides the service named in its config on one
 * link of its own and "writes" what it is sent at the next poll (a timer: as
 * a socket that is full until then; the deferred phase, which ends even an
 * embedder's send, would be too soon); until then its op queued() reports
 * the bytes waiting, so o2h_can_send()
 * must say O2H_BLOCKED for the service meanwhile. When started it reads its
 * router's counters through host->stats and logs a warning saying whether
 * the text has o2hub_delivered. A router that moves or drops either fails
 * the `abi` test.
 */
#include <stdlib.h>
#include <string.h>

#include <o2hub/plugin.h>

#if O2H_ABI_MAJOR != 1 || O2H_ABI_MINOR != 1
#error this plugin must be built against the frozen 1.1 headers
#endif

typedef struct frozen11 {
    const o2h_host *host;
    o2h_plugin *self;
    const char *service;
    o2h_link *link;
    o2h_timer *write_later;
    size_t waiting; /* bytes "sent" and not yet "written" */
} frozen11;

static int f11_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    frozen11 *f = calloc(1, sizeof *f);
    if (!f) return O2H_NO_MEMORY;
    f->host = host;
    f->self = self;
    if (host->cfg->get_string(cfg, "service", "frozen11", &f->service) == O2H_CONFIG_ERROR) {
        free(f);
        return O2H_CONFIG_ERROR;
    }
    *instance = f;
    return O2H_OK;
}

static int log_counters(frozen11 *f) {
    if (!O2H_HAS(f->host, stats)) {
        f->host->log->write(f->self, O2H_LOG_WARN, "frozen 1.1: no host->stats");
        return O2H_OK;
    }
    size_t need = f->host->stats->text(f->self, NULL, 0);
    char *buf = malloc(need + 1);
    if (!buf) return O2H_NO_MEMORY;
    size_t got = f->host->stats->text(f->self, buf, need + 1);
    f->host->log->write(f->self, O2H_LOG_WARN, "frozen 1.1: %zu bytes of counters%s", got,
                        got == need && strstr(buf, "\no2hub_delivered ") ? ", o2hub_delivered"
                                                                         : "");
    free(buf);
    return O2H_OK;
}

static int f11_start(void *instance) {
    frozen11 *f = instance;
    if (log_counters(f) != O2H_OK) return O2H_NO_MEMORY;
    f->link = f->host->link->link_new(f->self, f, "frozen 1.1 link");
    if (!f->link) return O2H_NO_MEMORY;
    return f->host->link->service_add(f->self, f->service, f->link);
}

static void written(void *ctx) {
    frozen11 *f = ctx;
    f->waiting = 0;
    f->host->loop->timer_stop(f->write_later);
    f->write_later = NULL;
}

static int f11_send(void *instance, void *link_ctx, o2h_msg *msg) {
    frozen11 *f = instance;
    (void)link_ctx;
    f->waiting += msg->length;
    if (!f->write_later) f->write_later = f->host->loop->timer_start(f->self, 0, 0, written, f);
    return O2H_OK;
}

static size_t f11_queued(void *instance, void *link_ctx) {
    frozen11 *f = instance;
    (void)link_ctx;
    return f->waiting;
}

static void f11_close(void *instance, void *link_ctx) {
    (void)link_ctx;
    frozen11 *f = instance;
    if (f->link) f->host->link->link_free(f->link);
    f->link = NULL;
}

static void f11_stop(void *instance) {
    frozen11 *f = instance;
    f->host->loop->timer_stop(f->write_later);
    f->write_later = NULL;
    f11_close(instance, NULL);
}

static void f11_destroy(void *instance) {
    free(instance);
}

static const o2h_transport_ops f11_ops = {
    .send = f11_send,
    .close = f11_close,
    .queued = f11_queued,
};

static const o2h_plugin_desc f11_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "frozen11",
    .version = "1.1.0",
    .description = "a plugin built against the frozen ABI 1.1 headers",
    .lifecycle = {f11_create, f11_start, f11_stop, f11_destroy},
    .ops = &f11_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &f11_desc;
}
