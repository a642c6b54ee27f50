/*
 * The classic O2 API's layer (o2compat*.c): its one context and what its files
 * share. Internal to libo2hub_o2; nothing here is exported.
 */
#ifndef O2C_INTERNAL_H
#define O2C_INTERNAL_H

#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <o2hub/o2.h>
#include <o2hub/o2hub.h>

/* A method installed through o2_method_new: the core calls o2c__trampoline() with it. */
typedef struct method_rec {
    struct method_rec *next;
    char *path;
    O2method_handler handler;
    const void *user_data;
    bool parse;
} method_rec;

/* One entry of the o2_services_list snapshot. */
typedef struct svc_entry {
    char *name;
    int type;
    char *process;
    char *properties; /* NULL for taps */
    char *tapper;     /* NULL for services */
} svc_entry;

/* Memory for one handler call: the O2msg_data copy and the O2arg values. */
typedef struct frame {
    uint8_t *wrap;
    size_t wrap_cap;
    uint8_t *arena;
    size_t arena_cap, arena_used;
    O2arg_ptr *argv;
    size_t argv_cap;
} frame;

typedef struct o2c_context {
    o2h_router *r;
    char ensemble[64];
    bool stop_flag;
    bool network_enabled;
    bool internet_enabled;
    int log_level;
    double discovery_period; /* 0: the plugins' default */
    uint64_t osc_time_offset;
    bool warned_clock_callback;

    /* building (o2_send_start ... o2_send_finish) */
    o2h_builder *builder;
    o2h_builder *vbuilder; /* o2_send_marker's, so it never clobbers the other */
    bool building;
    bool is_bundle;

    method_rec *methods;

    /* the handler call in progress */
    int depth;
    frame frame0;
    O2msg_data_ptr cur_data;
    const o2h_msg *cur_msg;

    /* o2_extract_start / o2_get_next */
    o2h_msg *ex_owned; /* a copy made from an O2msg_data that is not the current one */
    o2h_reader rd;
    o2h_reader rd_saved; /* before a vector's first o2_get_next('v') */
    bool ex_active;
    bool vec_pending;
    O2arg *vec_arg;
    uint8_t *ex_scratch;
    size_t ex_scratch_cap;
    uint8_t *ex_arena;
    size_t ex_arena_cap, ex_arena_used;

    /* o2_services_list snapshot */
    svc_entry *list;
    int n_list, cap_list;

    /* o2_schedule_msg(&o2_ltsched, ...): sorted by timestamp, linked by O2message.next */
    O2message_ptr lt_head;

    char public_ip[9], internal_ip[9];
} o2c_context;

/* The one global of the compat layer (o2compat.c says why): NULL before first use. */
extern o2c_context *o2c__the;

#define NEED_ROUTER()                                                                              \
    do {                                                                                           \
        if (!o2c__the || !o2c__the->r) return O2_NOT_INITIALIZED;                                  \
    } while (0)

/** The context, made on first use (settings made before o2_initialize live there). */
o2c_context *o2c__ctx(void);
/** "o2: ..." on stderr. */
void o2c__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** "error", "warn", "info", "debug" -> 0..3; -1 otherwise. */
int o2c__parse_level(const char *text);
/** o2hub's result code as O2's. */
O2err o2c__err_of(int rc);
/** `p` with room for `need` bytes (doubling from 256); NULL without memory. */
void *o2c__grow(void *p, size_t *cap, size_t need);
/** 8-byte aligned space from an arena sized beforehand; NULL if it is full. */
void *o2c__arena_take(uint8_t *arena, size_t cap, size_t *used, size_t size);
/** Append `s` to `buf` as a JSON string (quoted, escaped, truncated to fit). */
void o2c__append_json_string(char *buf, size_t size, const char *s);
/** `msg` as O2msg_data (host-order header, then the message bytes). */
void o2c__write_o2data(uint8_t *dst, const o2h_msg *msg);
/** An o2h_msg made from O2msg_data; NULL without memory. */
o2h_msg *o2c__msg_from_o2data(const O2msg_data *d);
/** An O2message (O2_malloc'd, as O2 hands them out) holding `msg`. */
O2message_ptr o2c__message_from_msg(const o2h_msg *msg);
/** Bytes an arena needs for the O2arg values of a message. */
size_t o2c__arena_bound(size_t n_args, uint32_t msg_length);
/** One o2h_arg as O2arg, in the arena. */
O2arg_ptr o2c__convert_arg(uint8_t *arena, size_t cap, size_t *used, char type, const o2h_arg *a);
/** Free a handler call's memory. */
void o2c__frame_free(frame *f);
/** The core's handler for every method installed by o2_method_new. */
void o2c__trampoline(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data);
/** Free one method record. */
void o2c__method_rec_free(method_rec *m);
/** Unlink and free the records for `path` (and under it, for a whole service). */
void o2c__forget_methods(o2c_context *c, const char *path, bool whole_service);
/** Free the o2_services_list snapshot. */
void o2c__free_snapshot(o2c_context *c);
/** Send (takes the reference) and say it as O2 does. */
O2err o2c__send_msg(o2h_msg *m);

#endif
