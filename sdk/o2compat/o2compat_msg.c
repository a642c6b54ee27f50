/* Messages and arguments between o2hub's forms and O2's, and O2 handlers. */
#include "o2compat_internal.h"

void o2c__write_o2data(uint8_t *dst, const o2h_msg *msg) {
    O2msg_data *d = (O2msg_data *)(void *)dst;
    d->length = (int32_t)msg->length;
    d->misc = (int32_t)o2h_msg_misc(msg);
    d->timestamp = o2h_msg_time(msg);
    memcpy(d->address, msg->data + O2H_MSG_ADDRESS_OFFSET, msg->length - O2H_MSG_ADDRESS_OFFSET);
}

/* A new o2h_msg (validated copy) from an O2msg_data, or NULL. */
o2h_msg *o2c__msg_from_o2data(const O2msg_data *d) {
    if (!d || d->length < (int32_t)O2H_MSG_ADDRESS_OFFSET + 4 ||
        (uint32_t)d->length > O2H_MSG_MAX_SIZE)
        return NULL;
    uint32_t len = (uint32_t)d->length;
    uint8_t *bytes = malloc(len);
    if (!bytes) return NULL;
    o2h_wr_u32(bytes, (uint32_t)d->misc);
    uint64_t bits;
    memcpy(&bits, &d->timestamp, sizeof bits);
    o2h_wr_u64(bytes + 4, bits);
    memcpy(bytes + O2H_MSG_ADDRESS_OFFSET, d->address, len - O2H_MSG_ADDRESS_OFFSET);
    int code = 0;
    o2h_pool *pool = o2c__the && o2c__the->r ? o2h_router_pool(o2c__the->r) : NULL;
    o2h_msg *m = o2h_msg_from_bytes(pool, bytes, len, &code, NULL);
    free(bytes);
    return m;
}

O2message_ptr o2c__message_from_msg(const o2h_msg *msg) {
    O2message_ptr m = malloc(offsetof(O2message, data) + offsetof(O2msg_data, address) +
                             msg->length - O2H_MSG_ADDRESS_OFFSET);
    if (!m) return NULL;
    m->next = NULL;
    o2c__write_o2data((uint8_t *)&m->data, msg);
    return m;
}

/* Space the arguments may need in an arena: an O2arg each, or a string's or blob's
 * bytes (which the message holds too), each 8-byte aligned. */
size_t o2c__arena_bound(size_t n_args, uint32_t msg_length) {
    return (n_args + 1) * (sizeof(O2arg) + 16) + msg_length + 64;
}

O2arg_ptr o2c__convert_arg(uint8_t *arena, size_t cap, size_t *used, char type, const o2h_arg *a) {
    switch (type) {
    case O2_STRING:
    case O2_SYMBOL: {
        /* Inline characters, as O2; copied so that the O2arg_ptr is 8-byte aligned. */
        size_t n = strlen(a->s) + 1;
        char *s = o2c__arena_take(arena, cap, used, n < sizeof(O2arg) ? sizeof(O2arg) : n);
        if (!s) return NULL;
        memcpy(s, a->s, n);
        return (O2arg_ptr)(void *)s;
    }
    case O2_ARRAY_START: return o2_got_start_array;
    case O2_ARRAY_END: return o2_got_end_array;
    case O2_BLOB: {
        O2blob *b = o2c__arena_take(arena, cap, used, offsetof(O2blob, data) + a->b.size + 1);
        if (!b) return NULL;
        b->size = a->b.size;
        if (a->b.size) memcpy(b->data, a->b.data, a->b.size);
        return (O2arg_ptr)b;
    }
    case O2_VECTOR: {
        O2arg *o = o2c__arena_take(arena, cap, used, sizeof *o);
        if (!o) return NULL;
        memset(o, 0, sizeof *o);
        o->v.len = a->v.len;
        o->v.typ = a->v.type;
        o->v.vi = (int32_t *)(uintptr_t)a->v.data;
        return o;
    }
    default: {
        /* Scalars sit at offset 0 of both unions, in host order: copy the 8 bytes. */
        O2arg *o = o2c__arena_take(arena, cap, used, sizeof *o);
        if (!o) return NULL;
        memset(o, 0, sizeof *o);
        memcpy(o, a, 8);
        return o;
    }
    }
}

void o2c__frame_free(frame *f) {
    free(f->wrap);
    free(f->arena);
    free(f->argv);
    memset(f, 0, sizeof *f);
}

void o2c__trampoline(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    (void)r;
    o2c_context *c = o2c__the;
    method_rec *m = user_data;
    frame nested = {0};
    /* A handler that calls o2_poll re-enters: give the inner call its own memory. */
    frame *f = c->depth == 0 ? &c->frame0 : &nested;
    size_t need = offsetof(O2msg_data, address) + msg->length;
    uint8_t *w = o2c__grow(f->wrap, &f->wrap_cap, need);
    if (!w) return;
    f->wrap = w;
    o2c__write_o2data(w, msg);
    O2arg_ptr *o2argv = NULL;
    if (m->parse && argc > 0) {
        size_t bound = o2c__arena_bound((size_t)argc, msg->length);
        uint8_t *a = o2c__grow(f->arena, &f->arena_cap, bound);
        O2arg_ptr *v = a ? o2c__grow(f->argv, &f->argv_cap, (size_t)argc * sizeof *v) : NULL;
        if (a) f->arena = a;
        if (v) f->argv = v;
        if (!a || !v) {
            o2c__frame_free(&nested);
            return;
        }
        f->arena_used = 0;
        const char *t = types;
        for (int i = 0; i < argc; i++, t++) {
            v[i] = o2c__convert_arg(f->arena, f->arena_cap, &f->arena_used, *t, argv[i]);
            if (*t == O2_VECTOR && t[1]) t++;
        }
        o2argv = v;
    }
    O2msg_data_ptr saved_data = c->cur_data;
    const o2h_msg *saved_msg = c->cur_msg;
    c->cur_data = (O2msg_data_ptr)(void *)w;
    c->cur_msg = msg;
    c->depth++;
    /* As O2: parsed handlers see the typespec, the others the message's own types. */
    m->handler(c->cur_data, m->parse ? types : o2h_msg_types(msg), o2argv, m->parse ? argc : 0,
               m->user_data);
    c->depth--;
    c->cur_data = saved_data;
    c->cur_msg = saved_msg;
    o2c__frame_free(&nested);
}

void o2c__method_rec_free(method_rec *m) {
    free(m->path);
    free(m);
}

/* Unlink and free the records whose path is `path` (exact) or under "/service". */
void o2c__forget_methods(o2c_context *c, const char *path, bool whole_service) {
    size_t len = strlen(path);
    method_rec **pp = &c->methods;
    while (*pp) {
        method_rec *m = *pp;
        bool match = strcmp(m->path, path) == 0 ||
                     (whole_service && strncmp(m->path, path, len) == 0 && m->path[len] == '/');
        if (match) {
            *pp = m->next;
            o2c__method_rec_free(m);
        } else {
            pp = &m->next;
        }
    }
}
