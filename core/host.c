/* The host table: the only way plugins reach the core. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "loader.h"
#include "msg_internal.h"
#include "router.h"

static void host_vlog(o2h_plugin *self, int level, const char *fmt, va_list ap) O2H_PRINTF(3, 0);
static void host_vlog(o2h_plugin *self, int level, const char *fmt, va_list ap) {
    o2h__router_vlog(self->router, level, self->type, fmt, ap);
}

static bool host_log_enabled(o2h_plugin *self, int level) {
    return level <= self->router->log_level;
}

static void host_log(o2h_plugin *self, int level, const char *fmt, ...) O2H_PRINTF(3, 4);
static void host_log(o2h_plugin *self, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    host_vlog(self, level, fmt, ap);
    va_end(ap);
}

static int host_cfg_error(const o2h_cfg *cfg, const char *key, const char *fmt, ...)
    O2H_PRINTF(3, 4);
static int host_cfg_error(const o2h_cfg *cfg, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = o2h__config_cfg_verror(cfg, key, fmt, ap);
    va_end(ap);
    return rc;
}

static o2h_msg *host_msg_alloc(o2h_plugin *self, size_t size) {
    return o2h_msg_alloc(self->router->pool, size);
}

static o2h_msg *host_msg_from_bytes(o2h_plugin *self, const uint8_t *data, size_t len, int *code,
                                    o2h_msg_error *err) {
    return o2h_msg_from_bytes(self->router->pool, data, len, code, err);
}

static o2h_builder *host_builder_new(o2h_plugin *self) {
    return o2h_builder_new(self->router->pool);
}

static int host_deliver(o2h_plugin *self, o2h_link *from, o2h_msg *msg) {
    o2h_router *r = self->router;
    o2h_msg_error why;
    self->counts.received++;
    if (o2h__msg_validate_in_place(msg, &why) != O2H_OK) {
        r->stats.dropped_invalid++;
        self->counts.invalid++;
        o2h__router_log(r, O2H_LOG_DEBUG, self->type, "dropped malformed message: %s at byte %u",
                        why.reason, why.offset);
        o2h_msg_unref(msg);
        return O2H_INVALID_MSG;
    }
    /* Handlers of system messages need to know which link (which peer) it came from. */
    return o2h__router_send_from(r, msg, from);
}

static void host_drained(o2h_link *link) {
    if (link && !link->freed && o2h__link_hold_busy(link)) o2h__link_hold_drained(link);
}

static void host_count_invalid(o2h_plugin *self, const char *reason) {
    self->router->stats.dropped_invalid++;
    self->counts.invalid++;
    o2h__router_log(self->router, O2H_LOG_DEBUG, self->type, "dropped malformed input: %s",
                    reason ? reason : "?");
}

static o2h_watch *host_watch_fd(o2h_plugin *self, int fd, unsigned events, o2h_fd_cb cb,
                                void *ctx) {
    return o2h__loop_watch(&self->router->lp, fd, events, cb, ctx);
}

static o2h_timer *host_timer_start(o2h_plugin *self, double delay, double period, o2h_timer_cb cb,
                                   void *ctx) {
    return o2h__loop_timer_start(&self->router->lp, delay, period, cb, ctx);
}

static double host_local_time(o2h_plugin *self) {
    return o2h_local_time(self->router);
}

static o2h_link *host_link_new(o2h_plugin *self, void *link_ctx, const char *description) {
    return o2h__link_new(self, link_ctx, description);
}

static int host_service_add_link(o2h_plugin *self, const char *name, o2h_link *link) {
    if (!link || link->plugin != self) return O2H_BAD_ARGS;
    return o2h__services_add_link(self->router, name, link);
}

static int host_service_remove_link(o2h_plugin *self, const char *name, o2h_link *link) {
    return o2h__services_remove(self->router, name, PROVIDER_LINK, link);
}

static const char *host_ensemble(o2h_plugin *self) {
    return self->router->ensemble;
}

static int host_net_register(o2h_plugin *self, int proto, uint32_t ip, int port) {
    return o2h__proto_net_register(self->router, self, proto, ip, port);
}

static bool host_allowed(o2h_plugin *self, uint32_t ip) {
    return o2h__allow_permits(&self->router->allow, ip);
}

static void host_refused(o2h_plugin *self, const char *what) {
    o2h_router *r = self->router;
    r->stats.refused++;
    self->counts.refused++;
    o2h__router_log_limited(r, &r->refused_log, O2H_LOG_WARN, self->type, "refused %s",
                            what ? what : "a connection");
}

static o2h_msg *host_dy_message(o2h_plugin *self, int flag) {
    return o2h__proto_dy_message(self->router, flag);
}

static const char *host_process_name(o2h_plugin *self) {
    return o2h_router_process_name(self->router);
}

static void host_defer(o2h_plugin *self, o2h_deferred *d, void (*fn)(void *ctx), void *ctx) {
    o2h__loop_defer(&self->router->lp, d, fn, ctx);
}

static double host_time_get(o2h_plugin *self) {
    return o2h_time_get(self->router);
}

static int host_bridge_new(o2h_plugin *self, o2h_link *link, const char *protocol, unsigned flags) {
    if (!link || link->plugin != self || !protocol || !protocol[0] || strlen(protocol) > 7)
        return O2H_BAD_ARGS;
    bridge *b = o2h__bridge_new(self->router, link, protocol, (flags & O2H_BRIDGE_HOLD_TIMED) != 0);
    return b ? b->id : (link->bridge || link->peer ? O2H_ALREADY_RUNNING : O2H_NO_MEMORY);
}

static bridge *bridge_of(o2h_plugin *self, o2h_link *link) {
    return link && link->plugin == self && link->bridge && link->bridge->link == link ? link->bridge
                                                                                      : NULL;
}

static int host_bridge_service(o2h_plugin *self, o2h_link *link, const char *name, bool added,
                               bool is_service, const char *props_or_tappee, int mode) {
    bridge *b = bridge_of(self, link);
    if (!b || !name) return O2H_BAD_ARGS;
    return o2h__bridge_service(self->router, b, name, added, is_service,
                               props_or_tappee ? props_or_tappee : "", mode);
}

static int host_bridge_synced(o2h_plugin *self, o2h_link *link) {
    bridge *b = bridge_of(self, link);
    if (!b) return O2H_BAD_ARGS;
    o2h__bridge_set_synced(self->router, b);
    return O2H_OK;
}

static int host_service_status(o2h_plugin *self, const char *name) {
    return o2h_status(self->router, name);
}

static int host_process_link(o2h_plugin *self, o2h_link *link, const char *process_name) {
    if (!link || link->plugin != self) return O2H_BAD_ARGS;
    return o2h__proto_process_link(self->router, link, process_name);
}

static const o2h_host_log log_table = {
    .size = sizeof log_table,
    .write = host_log,
    .vwrite = host_vlog,
    .enabled = host_log_enabled,
};

static const o2h_host_cfg cfg_table = {
    .size = sizeof cfg_table,
    .get_string = o2h__config_cfg_string,
    .get_int = o2h__config_cfg_int,
    .get_double = o2h__config_cfg_double,
    .get_bool = o2h__config_cfg_bool,
    .object = o2h__config_cfg_object,
    .array_len = o2h__config_cfg_array_len,
    .array_item = o2h__config_cfg_array_item,
    .as_string = o2h__config_cfg_as_string,
    .error = host_cfg_error,
    .dir = o2h__config_cfg_dir,
    .claim_port = o2h__config_cfg_claim_port,
};

#define MSG_TABLE_ENTRY_(ret, name, params) .name = o2h_##name,

static const o2h_host_msg msg_table = {.size = sizeof msg_table,
                                       .msg_alloc = host_msg_alloc,
                                       .msg_from_bytes = host_msg_from_bytes,
                                       .builder_new = host_builder_new,
                                       O2H_MSG_FUNCTIONS(MSG_TABLE_ENTRY_)};

static const o2h_host_loop loop_table = {
    .size = sizeof loop_table,
    .watch_fd = host_watch_fd,
    .watch_modify = o2h__loop_watch_modify,
    .watch_remove = o2h__loop_watch_remove,
    .timer_start = host_timer_start,
    .timer_stop = o2h__loop_timer_stop,
    .local_time = host_local_time,
    .time_get = host_time_get,
    .defer = host_defer,
};

static const o2h_host_link link_table = {
    .size = sizeof link_table,
    .link_new = host_link_new,
    .link_free = o2h__link_free,
    .deliver = host_deliver,
    .count_invalid = host_count_invalid,
    .service_add = host_service_add_link,
    .service_remove = host_service_remove_link,
    .service_status = host_service_status,
    .drained = host_drained,
};

static const o2h_host_proc proc_table = {
    .size = sizeof proc_table,
    .ensemble = host_ensemble,
    .process_name = host_process_name,
    .net_register = host_net_register,
    .dy_message = host_dy_message,
    .process_link = host_process_link,
    .allowed = host_allowed,
    .refused = host_refused,
};

static const o2h_host_bridge bridge_table = {
    .size = sizeof bridge_table,
    .bridge_new = host_bridge_new,
    .service = host_bridge_service,
    .synced = host_bridge_synced,
};

static size_t host_stats_text(o2h_plugin *self, char *buf, size_t size) {
    return o2h_router_stats_text(self->router, buf, size);
}

static const o2h_host_stats stats_table = {
    .size = sizeof stats_table,
    .text = host_stats_text,
};

static const o2h_host the_host = {
    .abi_major = O2H_ABI_MAJOR,
    .abi_minor = O2H_ABI_MINOR,
    .size = sizeof the_host,
    .log = &log_table,
    .cfg = &cfg_table,
    .msg = &msg_table,
    .loop = &loop_table,
    .link = &link_table,
    .proc = &proc_table,
    .bridge = &bridge_table,
    .stats = &stats_table,
};

const o2h_host *o2h__host_table(void) {
    return &the_host;
}
