/* The classic O2 API: reading a message's arguments (o2_extract_start, o2_get_next). */
#include "o2compat_internal.h"

int o2_extract_start(O2msg_data_ptr msg) {
    if (!msg) return 0;
    o2c_context *c = o2c__ctx();
    c->ex_active = false;
    c->vec_pending = false;
    if (c->ex_owned) o2h_msg_unref(c->ex_owned);
    c->ex_owned = NULL;
    const o2h_msg *m = c->cur_msg;
    if (msg != c->cur_data || !m) { /* not the message being handled: read a copy */
        c->ex_owned = o2c__msg_from_o2data(msg);
        m = c->ex_owned;
    }
    if (!m || o2h_msg_is_bundle(m)) return 0;
    size_t scratch = 2u * m->length + 64u;
    const char *types = o2h_msg_types(m);
    size_t bound = o2c__arena_bound(strlen(types), m->length);
    uint8_t *s = o2c__grow(c->ex_scratch, &c->ex_scratch_cap, scratch);
    if (s) c->ex_scratch = s;
    uint8_t *a = o2c__grow(c->ex_arena, &c->ex_arena_cap, bound);
    if (a) c->ex_arena = a;
    if (!s || !a || o2h_reader_init(&c->rd, m, c->ex_scratch, c->ex_scratch_cap) != O2H_OK)
        return 0;
    c->ex_arena_used = 0;
    c->ex_active = true;
    return (int)strlen(types);
}

O2arg_ptr o2_get_next(O2type type_code) {
    o2c_context *c = o2c__the;
    if (!c || !c->ex_active) return NULL;
    o2h_arg a;
    memset(&a, 0, sizeof a);
    if (c->vec_pending) { /* the element type of the vector asked for just before */
        c->vec_pending = false;
        c->rd = c->rd_saved;
        a.v.type = (char)type_code;
        if (o2h_reader_next(&c->rd, O2_VECTOR, &a) != O2H_OK) return NULL;
        c->vec_arg->v.len = a.v.len;
        c->vec_arg->v.typ = a.v.type;
        c->vec_arg->v.vi = (int32_t *)(uintptr_t)a.v.data;
        return c->vec_arg;
    }
    if (type_code == O2_VECTOR) { /* report the length now, read the elements next call */
        c->rd_saved = c->rd;
        if (o2h_reader_next(&c->rd, O2_VECTOR, &a) != O2H_OK) return NULL;
        c->rd = c->rd_saved;
        O2arg *o = o2c__arena_take(c->ex_arena, c->ex_arena_cap, &c->ex_arena_used, sizeof *o);
        if (!o) return NULL;
        memset(o, 0, sizeof *o);
        o->v.len = a.v.len;
        o->v.typ = a.v.type;
        c->vec_arg = o;
        c->vec_pending = true;
        return o;
    }
    if (o2h_reader_next(&c->rd, (char)type_code, &a) != O2H_OK) return NULL;
    return o2c__convert_arg(c->ex_arena, c->ex_arena_cap, &c->ex_arena_used, (char)type_code, &a);
}

void o2_msg_data_print(O2msg_data_ptr msg) {
    o2h_msg *m = o2c__msg_from_o2data(msg);
    if (!m) {
        printf("<invalid message>");
        return;
    }
    char line[4096];
    o2h_msg_format(m, line, sizeof line);
    printf("%s", line);
    o2h_msg_unref(m);
}

void o2_message_print(O2message_ptr msg) {
    if (msg) o2_msg_data_print(&msg->data);
}
