/*
 * An extension plugin built against the frozen ABI 1.1 headers only: when
 * started it reads its router's counters through host->stats (new in 1.1)
 * and logs a warning saying whether the text has o2hub_delivered. A router
 * that moves or drops that member fails the `abi` test.
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
} frozen11;

static int f11_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    (void)cfg;
    frozen11 *f = calloc(1, sizeof *f);
    if (!f) return O2H_NO_MEMORY;
    f->host = host;
    f->self = self;
    *instance = f;
    return O2H_OK;
}

static int f11_start(void *instance) {
    frozen11 *f = instance;
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

static void f11_stop(void *instance) {
    (void)instance;
}

static void f11_destroy(void *instance) {
    free(instance);
}

static const o2h_plugin_desc f11_desc = {
    .abi_major = O2H_ABI_MAJOR,
    .abi_minor = O2H_ABI_MINOR,
    .struct_size = sizeof(o2h_plugin_desc),
    .ops_size = 0,
    .kind = O2H_PLUGIN_EXTENSION,
    .name = "frozen11",
    .version = "1.1.0",
    .description = "built against the frozen ABI 1.1 headers",
    .lifecycle = {f11_create, f11_start, f11_stop, f11_destroy},
    .ops = NULL,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *o2hub_plugin_entry(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *o2hub_plugin_entry(void) {
    return &f11_desc;
}
