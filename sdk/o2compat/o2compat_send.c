/* The classic O2 API: building and sending messages. */
#include "o2compat_internal.h"

/* O2's own forms: a blob is an O2blob *, and a string may be the end marker
 * (too few arguments); everything else as o2h_send takes it. */
static O2err add_vararg(o2h_builder *b, char type, va_list *ap) {
    switch (type) {
    case O2_STRING: {
        const char *s = va_arg(*ap, const char *);
        if (s == (const char *)O2_MARKER_A) return O2_BAD_ARGS;
        return o2c__err_of(o2h_add_string(b, s));
    }
    case O2_BLOB: {
        const O2blob *blob = va_arg(*ap, const O2blob *);
        return blob ? o2c__err_of(o2h_add_blob(b, blob->data, blob->size)) : O2_BAD_ARGS;
    }
    case O2_INT32: return o2c__err_of(o2h_add_int32(b, va_arg(*ap, int))); /* O2 reads int */
    default: {
        const char one[2] = {type, 0};
        return o2c__err_of(o2h_builder_add_va(b, one, ap));
    }
    }
}

/* Markers are compared on their low 32 bits, as O2 does. */
static bool is_marker(void *p, void *marker) {
    return ((uintptr_t)p & 0xffffffffu) == ((uintptr_t)marker & 0xffffffffu);
}

O2err o2_send_marker(const char *path, double time, bool tcp_flag, const char *typestring, ...) {
    NEED_ROUTER();
    o2h_builder *b = o2c__the->vbuilder;
    o2h_builder_start(b);
    va_list ap;
    va_start(ap, typestring);
    O2err rc = O2_SUCCESS;
    for (const char *t = typestring ? typestring : ""; *t && rc == O2_SUCCESS; t++)
        rc = add_vararg(b, *t, &ap);
    if (rc == O2_SUCCESS) {
        void *a = va_arg(ap, void *);
        void *z = va_arg(ap, void *);
        if (!is_marker(a, O2_MARKER_A) || !is_marker(z, O2_MARKER_B)) rc = O2_BAD_ARGS;
    }
    va_end(ap);
    if (rc != O2_SUCCESS) {
        if (rc == O2_BAD_ARGS)
            o2c__log("o2_send or o2_send_cmd: the arguments do not match types \"%s\" (address %s)",
                     typestring ? typestring : "", path ? path : "");
        return rc;
    }
    o2h_msg *m = o2h_builder_finish(b, time, path, tcp_flag ? O2H_FLAG_RELIABLE : 0);
    if (!m) return o2h_builder_error(b) != O2H_OK ? o2c__err_of(o2h_builder_error(b)) : O2_BAD_NAME;
    return o2c__send_msg(m);
}

O2err o2_message_send(O2message_ptr msg) {
    if (!msg) return O2_BAD_ARGS;
    if (!o2c__the || !o2c__the->r) {
        free(msg);
        return O2_NOT_INITIALIZED;
    }
    o2h_msg *m = o2c__msg_from_o2data(&msg->data);
    free(msg);
    if (!m) return O2_INVALID_MSG;
    return o2c__send_msg(m);
}

O2blob_ptr o2_blob_new(uint32_t size) {
    O2blob_ptr b = malloc(offsetof(O2blob, data) + (size < 4 ? 4 : size));
    if (b) b->size = size;
    return b;
}

#define BUILDER()                                                                                  \
    do {                                                                                           \
        if (!o2c__the || !o2c__the->r) return O2_NOT_INITIALIZED;                                  \
        if (!o2c__the->building) return O2_FAIL;                                                   \
    } while (0)

O2err o2_send_start(void) {
    NEED_ROUTER();
    o2h_builder_start(o2c__the->builder);
    o2c__the->building = true;
    o2c__the->is_bundle = false;
    return O2_SUCCESS;
}

O2err o2_add_float(float f) {
    BUILDER();
    return o2c__err_of(o2h_add_float(o2c__the->builder, f));
}

O2err o2_add_string_or_symbol(O2type tcode, const char *s) {
    BUILDER();
    return o2c__err_of((tcode == O2_SYMBOL ? o2h_add_symbol(o2c__the->builder, s)
                                           : o2h_add_string(o2c__the->builder, s)));
}

O2err o2_add_blob(O2blob_ptr b) {
    BUILDER();
    return b ? o2c__err_of(o2h_add_blob(o2c__the->builder, b->data, b->size)) : O2_BAD_ARGS;
}

O2err o2_add_blob_data(uint32_t size, void *data) {
    BUILDER();
    return o2c__err_of(o2h_add_blob(o2c__the->builder, data, size));
}

O2err o2_add_int64(int64_t i) {
    BUILDER();
    return o2c__err_of(o2h_add_int64(o2c__the->builder, i));
}

O2err o2_add_double_or_time(O2type tchar, double d) {
    BUILDER();
    return o2c__err_of((tchar == O2_TIME ? o2h_add_time(o2c__the->builder, d)
                                         : o2h_add_double(o2c__the->builder, d)));
}

O2err o2_add_int32_or_char(O2type tcode, int32_t i) {
    BUILDER();
    switch (tcode) {
    case O2_INT32: return o2c__err_of(o2h_add_int32(o2c__the->builder, i));
    case O2_CHAR: return o2c__err_of(o2h_add_char(o2c__the->builder, (char)i));
    case O2_BOOL: return o2c__err_of(o2h_add_bool(o2c__the->builder, i != 0));
    default: return O2_BAD_TYPE;
    }
}

O2err o2_add_midi(uint32_t m) {
    BUILDER();
    return o2c__err_of(o2h_add_midi(o2c__the->builder, m));
}

O2err o2_add_only_typecode(O2type typecode) {
    BUILDER();
    switch (typecode) {
    case O2_TRUE: return o2c__err_of(o2h_add_true(o2c__the->builder));
    case O2_FALSE: return o2c__err_of(o2h_add_false(o2c__the->builder));
    case O2_NIL: return o2c__err_of(o2h_add_nil(o2c__the->builder));
    case O2_INFINITUM: return o2c__err_of(o2h_add_infinitum(o2c__the->builder));
    case O2_ARRAY_START: return o2c__err_of(o2h_add_start_array(o2c__the->builder));
    case O2_ARRAY_END: return o2c__err_of(o2h_add_end_array(o2c__the->builder));
    default: return O2_BAD_TYPE;
    }
}

O2err o2_add_vector(O2type element_type, int length, void *data) {
    BUILDER();
    if (length < 0) return O2_BAD_ARGS;
    char t = element_type == O2_TIME ? O2_DOUBLE : (char)element_type;
    return o2c__err_of(o2h_add_vector(o2c__the->builder, t, length, data));
}

O2err o2_add_message(O2message_ptr msg) {
    BUILDER();
    o2h_msg *m = msg ? o2c__msg_from_o2data(&msg->data) : NULL;
    if (!m) return O2_BAD_ARGS;
    int rc = o2h_add_message(o2c__the->builder, m);
    o2h_msg_unref(m);
    if (rc == O2H_OK) o2c__the->is_bundle = true;
    return o2c__err_of(rc);
}

/* Finish the builder as an o2h_msg; bundles get a '#' address. */
static o2h_msg *finish_msg(O2time time, const char *service, const char *address, bool tcp) {
    if (!o2c__the || !o2c__the->r || !o2c__the->building || !address) return NULL;
    o2c__the->building = false;
    char full[1024];
    if (service)
        snprintf(full, sizeof full, "%c%s%s", o2c__the->is_bundle ? '#' : '/', service, address);
    else if (o2c__the->is_bundle && (address[0] == '/' || address[0] == '!'))
        snprintf(full, sizeof full, "#%s", address + 1);
    else
        snprintf(full, sizeof full, "%s", address);
    return o2h_builder_finish(o2c__the->builder, time, full, tcp ? O2H_FLAG_RELIABLE : 0);
}

O2message_ptr o2_service_message_finish(O2time time, const char *service, const char *address,
                                        bool tcp_flag) {
    o2h_msg *m = finish_msg(time, service, address, tcp_flag);
    if (!m) return NULL;
    O2message_ptr out = o2c__message_from_msg(m);
    o2h_msg_unref(m);
    return out;
}

O2message_ptr o2_message_finish(O2time time, const char *address, bool tcp_flag) {
    return o2_service_message_finish(time, NULL, address, tcp_flag);
}

O2err o2_send_finish(O2time time, const char *address, bool tcp_flag) {
    NEED_ROUTER();
    o2h_msg *m = finish_msg(time, NULL, address, tcp_flag);
    if (!m) {
        int err = o2h_builder_error(o2c__the->builder);
        return err != O2H_OK ? o2c__err_of(err) : O2_FAIL;
    }
    return o2c__send_msg(m);
}
