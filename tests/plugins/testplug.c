/*
 * Deliberately broken or instrumented plugins for the loader tests. One
 * source, one shared object per VARIANT (see meson.build).
 */
#include <stdlib.h>

#include <o2hub/plugin.h>

#ifndef PLUGIN_NAME
#error PLUGIN_NAME must be defined
#endif

typedef struct probe {
    const o2h_host *host;
    o2h_plugin *self;
    int64_t answer;
} probe;

static int probe_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg,
                        void **instance) {
#ifdef VARIANT_CREATE_FAILS
    host->log->write(self, O2H_LOG_ERROR, "refusing to create, as this test plugin is made to");
    return O2H_FAIL;
#endif
    probe *p = calloc(1, sizeof *p);
    if (!p) return O2H_NO_MEMORY;
    p->host = host;
    p->self = self;
    if (host->cfg->get_int(cfg, "answer", 42, 0, 100, &p->answer) == O2H_CONFIG_ERROR) {
        free(p);
        return O2H_CONFIG_ERROR;
    }
    *instance = p;
    return O2H_OK;
}

static int probe_start(void *instance) {
    probe *p = instance;
    p->host->log->write(p->self, O2H_LOG_INFO, "started with answer %lld", (long long)p->answer);
    return O2H_OK;
}

static void probe_stop(void *instance) {
    (void)instance;
}
static void probe_destroy(void *instance) {
    free(instance);
}

static int probe_send(void *instance, void *link_ctx, o2h_msg *msg) {
    (void)instance;
    (void)link_ctx;
    (void)msg;
    return O2H_OK;
}

static const o2h_transport_ops probe_ops = {.send = probe_send};

static const o2h_plugin_desc probe_desc = {
#if defined(VARIANT_ABI_MAJOR_NEXT)
    .abi_major = O2H_ABI_MAJOR + 1,
#else
    .abi_major = O2H_ABI_MAJOR,
#endif
#if defined(VARIANT_ABI_MINOR_NEXT)
    .abi_minor = O2H_ABI_MINOR + 1,
#else
    .abi_minor = O2H_ABI_MINOR,
#endif
#if defined(VARIANT_SMALL_DESC)
    .struct_size = 12, /* as if built against a truncated header */
#else
    .struct_size = sizeof(o2h_plugin_desc),
#endif
#if defined(VARIANT_SMALL_OPS)
    .ops_size = 4,
#else
    .ops_size = sizeof(o2h_transport_ops),
#endif
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = PLUGIN_NAME,
    .version = "0.0.1",
    .description = "loader test plugin",
    .lifecycle = {probe_create, probe_start, probe_stop, probe_destroy},
    .ops = &probe_ops,
};

#ifdef VARIANT_NO_ENTRY
/* Exports something, but not the entry symbol. */
O2H_PLUGIN_EXPORT const o2h_plugin_desc *not_the_entry(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *not_the_entry(void) {
    return &probe_desc;
}
#else
O2H_PLUGIN_EXPORT const o2h_plugin_desc *o2hub_plugin_entry(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *o2hub_plugin_entry(void) {
    return &probe_desc;
}
#endif
