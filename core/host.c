/* The host table: the only way plugins reach the core. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "loader.h"
#include "msg_internal.h"
#include "router.h"

static void host_log(o2h_plugin *self, int level, const char *fmt, ...) O2H_PRINTF(3, 4);
static void host_log(o2h_plugin *self, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    router_vlog(self->router, level, self->type, fmt, ap);
    va_end(ap);
}

static int host_cfg_error(const o2h_cfg *cfg, const char *key, const char *fmt, ...)
    O2H_PRINTF(3, 4);
static int host_cfg_error(const o2h_cfg *cfg, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = config_cfg_verror(cfg, key, fmt, ap);
    va_end(ap);
    return rc;
}

static o2h_msg *host_msg_alloc(o2h_plugin *self, size_t size) {
    return o2h_msg_alloc(self->router->pool, size);
}

static o2h_builder *host_builder_new(o2h_plugin *self) {
    return o2h_builder_new(self->router->pool);
}

static int host_deliver(o2h_plugin *self, o2h_link *from, o2h_msg *msg) {
    (void)from;
    o2h_router *r = self->router;
    o2h_msg_error why;
    if (msg_validate_in_place(msg, &why) != O2H_OK) {
        r->stats.dropped_invalid++;
        router_log(r, O2H_LOG_DEBUG, self->type, "dropped malformed message: %s at byte %u",
                   why.reason, why.offset);
        o2h_msg_unref(msg);
        return O2H_INVALID_MSG;
    }
    /* Handlers of system messages need to know which link (which peer) it came from. */
    o2h_link *outer = r->current_link;
    r->current_link = from;
    int rc = o2h_send_msg(r, msg);
    r->current_link = outer;
    return rc;
}

static void host_count_invalid(o2h_plugin *self, const char *reason) {
    self->router->stats.dropped_invalid++;
    router_log(self->router, O2H_LOG_DEBUG, self->type, "dropped malformed input: %s",
               reason ? reason : "?");
}

static o2h_watch *host_watch_fd(o2h_plugin *self, int fd, unsigned events, o2h_fd_cb cb,
                                void *ctx) {
    return loop_watch(&self->router->lp, fd, events, cb, ctx);
}

static o2h_timer *host_timer_start(o2h_plugin *self, double delay, double period, o2h_timer_cb cb,
                                   void *ctx) {
    return loop_timer_start(&self->router->lp, delay, period, cb, ctx);
}

static double host_local_time(o2h_plugin *self) {
    return o2h_local_time(self->router);
}

static o2h_link *host_link_new(o2h_plugin *self, void *link_ctx, const char *description) {
    o2h_link *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->plugin = self;
    l->ctx = link_ctx;
    l->description = strdup(description ? description : self->type);
    if (!l->description) {
        free(l);
        return NULL;
    }
    return l;
}

static void host_link_free(o2h_link *link) {
    if (!link) return;
    o2h_router *r = link->plugin->router;
    proto_link_closed(r, link);
    bridge_link_closed(r, link);
    services_remove_link_everywhere(r, link);
    if (r->current_link == link) r->current_link = NULL;
    free(link->description);
    free(link);
}

static int host_service_add_link(o2h_plugin *self, const char *name, o2h_link *link) {
    if (!link || link->plugin != self) return O2H_BAD_ARGS;
    return services_add_link(self->router, name, link);
}

static int host_service_remove_link(o2h_plugin *self, const char *name, o2h_link *link) {
    return services_remove(self->router, name, PROVIDER_LINK, link);
}

static const char *host_ensemble(o2h_plugin *self) {
    return self->router->ensemble;
}

static int host_net_register(o2h_plugin *self, int proto, uint32_t ip, int port) {
    return proto_net_register(self->router, self, proto, ip, port);
}

static o2h_msg *host_dy_message(o2h_plugin *self, int flag) {
    return proto_dy_message(self->router, flag);
}

static const char *host_process_name(o2h_plugin *self) {
    return o2h_router_process_name(self->router);
}

static double host_time_get(o2h_plugin *self) {
    return o2h_time_get(self->router);
}

static int host_bridge_new(o2h_plugin *self, o2h_link *link, const char *protocol, unsigned flags) {
    if (!link || link->plugin != self || !protocol || !protocol[0] || strlen(protocol) > 7)
        return O2H_BAD_ARGS;
    bridge *b = bridge_new(self->router, link, protocol, (flags & O2H_BRIDGE_HOLD_TIMED) != 0);
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
    return bridge_service(self->router, b, name, added, is_service,
                          props_or_tappee ? props_or_tappee : "", mode);
}

static int host_bridge_synced(o2h_plugin *self, o2h_link *link) {
    bridge *b = bridge_of(self, link);
    if (!b) return O2H_BAD_ARGS;
    bridge_set_synced(self->router, b);
    return O2H_OK;
}

static int host_service_status(o2h_plugin *self, const char *name) {
    return o2h_status(self->router, name);
}

static int host_process_link(o2h_plugin *self, o2h_link *link, const char *process_name) {
    if (!link || link->plugin != self) return O2H_BAD_ARGS;
    return proto_process_link(self->router, link, process_name);
}

static const o2h_host the_host = {
    .abi_major = O2H_ABI_MAJOR,
    .abi_minor = O2H_ABI_MINOR,
    .struct_size = sizeof(o2h_host),
    .log = host_log,
    .cfg_string = config_cfg_string,
    .cfg_int = config_cfg_int,
    .cfg_double = config_cfg_double,
    .cfg_bool = config_cfg_bool,
    .cfg_object = config_cfg_object,
    .cfg_array_len = config_cfg_array_len,
    .cfg_array_item = config_cfg_array_item,
    .cfg_as_string = config_cfg_as_string,
    .cfg_error = host_cfg_error,
    .msg_alloc = host_msg_alloc,
    .msg_ref = o2h_msg_ref,
    .msg_unref = o2h_msg_unref,
    .msg_validate = o2h_msg_validate,
    .builder_new = host_builder_new,
    .builder_free = o2h_builder_free,
    .builder_start = o2h_builder_start,
    .add_int32 = o2h_add_int32,
    .add_int64 = o2h_add_int64,
    .add_float = o2h_add_float,
    .add_double = o2h_add_double,
    .add_time = o2h_add_time,
    .add_string = o2h_add_string,
    .add_symbol = o2h_add_symbol,
    .add_blob = o2h_add_blob,
    .add_char = o2h_add_char,
    .add_midi = o2h_add_midi,
    .add_bool = o2h_add_bool,
    .add_tf = o2h_add_tf,
    .add_nil = o2h_add_nil,
    .add_infinitum = o2h_add_infinitum,
    .add_start_array = o2h_add_start_array,
    .add_end_array = o2h_add_end_array,
    .add_vector = o2h_add_vector,
    .add_message = o2h_add_message,
    .builder_finish = o2h_builder_finish,
    .reader_init = o2h_reader_init,
    .reader_next = o2h_reader_next,
    .msg_types = o2h_msg_types,
    .msg_format = o2h_msg_format,
    .deliver = host_deliver,
    .count_invalid = host_count_invalid,
    .watch_fd = host_watch_fd,
    .watch_modify = loop_watch_modify,
    .watch_remove = loop_watch_remove,
    .timer_start = host_timer_start,
    .timer_stop = loop_timer_stop,
    .local_time = host_local_time,
    .link_new = host_link_new,
    .link_free = host_link_free,
    .service_add_link = host_service_add_link,
    .service_remove_link = host_service_remove_link,
    .ensemble = host_ensemble,
    .net_register = host_net_register,
    .dy_message = host_dy_message,
    .process_name = host_process_name,
    .time_get = host_time_get,
    .bridge_new = host_bridge_new,
    .bridge_service = host_bridge_service,
    .bridge_synced = host_bridge_synced,
    .service_status = host_service_status,
    .cfg_dir = config_cfg_dir,
    .process_link = host_process_link,
};

const o2h_host *host_table(void) {
    return &the_host;
}
