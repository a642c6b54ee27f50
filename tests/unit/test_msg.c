/* Messages: every type code, byte-exact encodings, coercion, validation, pool. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/msg.h>

static o2h_builder *builder(void) {
    o2h_builder *b = o2h_builder_new(NULL);
    cr_assert_not_null(b);
    o2h_builder_start(b);
    return b;
}

/* Compare a message with hex text (spaces ignored). */
static void assert_bytes(const o2h_msg *m, const char *hex) {
    uint8_t want[512];
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        cr_assert_eq(sscanf(p, "%2x", &v), 1);
        want[n++] = (uint8_t)v;
        p += 2;
    }
    cr_assert_eq(m->length, n, "length %u, want %zu", m->length, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(m->data[i], want[i], "byte %zu: %02x, want %02x", i, m->data[i], want[i]);
}

Test(msg, o2_reference_example_ifs_reliable_at_2) {
    /* O2 2.0.1's bytes for o2_send_cmd("/s/a", 2.0, "ifs", 1, 1.5f, "hi"). */
    o2h_builder *b = builder();
    o2h_add_int32(b, 1);
    o2h_add_float(b, 1.5f);
    o2h_add_string(b, "hi");
    o2h_msg *m = o2h_builder_finish(b, 2.0, "/s/a", O2H_FLAG_RELIABLE);
    assert_bytes(m, "00000001 4000000000000000 2f732f61 00000000 2c696673 00000000"
                    "00000001 3fc00000 68690000");
    cr_assert_eq(m->length, 40u, "the TCP length prefix would be 0x28");
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, o2_reference_example_dhtS_udp) {
    o2h_builder *b = builder();
    o2h_add_double(b, 1.5);
    o2h_add_int64(b, -2);
    o2h_add_time(b, 3.25);
    o2h_add_symbol(b, "sym");
    o2h_msg *m = o2h_builder_finish(b, 0, "!s/b", 0);
    assert_bytes(m, "00000000 0000000000000000 21732f62 00000000 2c646874 53000000"
                    "3ff8000000000000 fffffffffffffffe 400a000000000000 73796d00");
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, o2_reference_example_bundle) {
    o2h_builder *b = builder();
    o2h_add_int32(b, 42);
    o2h_msg *x = o2h_builder_finish(b, 1.0, "/s/x", O2H_FLAG_RELIABLE);
    o2h_msg *y = o2h_builder_finish(b, 0, "/s/y", O2H_FLAG_RELIABLE);
    cr_assert_eq(o2h_add_message(b, x), O2H_OK);
    cr_assert_eq(o2h_add_message(b, y), O2H_OK);
    o2h_msg *bundle = o2h_builder_finish(b, 1.0, "#s", O2H_FLAG_RELIABLE);
    assert_bytes(bundle, "00000001 3ff0000000000000 23730000"
                         "0000001c 00000001 3ff0000000000000 2f732f78 00000000 2c690000 0000002a"
                         "00000018 00000001 0000000000000000 2f732f79 00000000 2c000000");
    cr_assert_eq(o2h_msg_validate(bundle->data, bundle->length, NULL), O2H_OK);
    uint32_t pos = 0, len, count = 0;
    const uint8_t *elem;
    while (o2h_bundle_next(bundle, &pos, &elem, &len))
        count++;
    cr_assert_eq(count, 2);
    o2h_msg_unref(x);
    o2h_msg_unref(y);
    o2h_msg_unref(bundle);
    o2h_builder_free(b);
}

Test(msg, header_accessors) {
    o2h_builder *b = builder();
    o2h_msg *m = o2h_builder_finish(b, 12.5, "/svc/node", O2H_FLAG_RELIABLE);
    cr_assert_str_eq(o2h_msg_address(m), "/svc/node");
    cr_assert_float_eq(o2h_msg_time(m), 12.5, 1e-12);
    cr_assert(o2h_msg_reliable(m));
    cr_assert_str_eq(o2h_msg_types(m), "");
    cr_assert_not(o2h_msg_is_bundle(m));
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, every_scalar_type_round_trips) {
    o2h_builder *b = builder();
    const uint8_t blob[5] = {1, 2, 3, 4, 5};
    o2h_add_int32(b, -7);
    o2h_add_int64(b, INT64_MIN + 3);
    o2h_add_float(b, -0.25f);
    o2h_add_double(b, 1e300);
    o2h_add_time(b, 123.456);
    o2h_add_string(b, "abcd"); /* 4 characters: needs a full word of NULs */
    o2h_add_symbol(b, "");
    o2h_add_blob(b, blob, sizeof blob);
    o2h_add_char(b, 'Z');
    o2h_add_midi(b, 0x01903c40);
    o2h_add_bool(b, true);
    o2h_add_true(b);
    o2h_add_false(b);
    o2h_add_nil(b);
    o2h_add_infinitum(b);
    o2h_msg *m = o2h_builder_finish(b, 0, "/t/all", 0);
    cr_assert_not_null(m);
    cr_assert_eq(o2h_msg_validate(m->data, m->length, NULL), O2H_OK);
    cr_assert_str_eq(o2h_msg_types(m), "ihfdtsSbcmBTFNI");
    o2h_reader rd;
    uint8_t scratch[64];
    o2h_reader_init(&rd, m, scratch, sizeof scratch);
    o2h_arg a;
    cr_assert_eq(o2h_reader_next(&rd, 'i', &a), O2H_OK);
    cr_assert_eq(a.i, -7);
    o2h_reader_next(&rd, 'h', &a);
    cr_assert_eq(a.h, INT64_MIN + 3);
    o2h_reader_next(&rd, 'f', &a);
    cr_assert_eq(a.f, -0.25f);
    o2h_reader_next(&rd, 'd', &a);
    cr_assert_eq(a.d, 1e300);
    o2h_reader_next(&rd, 't', &a);
    cr_assert_eq(a.t, 123.456);
    o2h_reader_next(&rd, 's', &a);
    cr_assert_str_eq(a.s, "abcd");
    o2h_reader_next(&rd, 'S', &a);
    cr_assert_str_eq(a.s, "");
    o2h_reader_next(&rd, 'b', &a);
    cr_assert_eq(a.b.size, 5);
    cr_assert_eq(memcmp(a.b.data, blob, 5), 0);
    o2h_reader_next(&rd, 'c', &a);
    cr_assert_eq(a.c, 'Z');
    o2h_reader_next(&rd, 'm', &a);
    cr_assert_eq(a.m, 0x01903c40u);
    o2h_reader_next(&rd, 'B', &a);
    cr_assert_eq(a.B, 1);
    cr_assert_eq(o2h_reader_next(&rd, 'T', &a), O2H_OK);
    cr_assert_eq(a.B, 1);
    cr_assert_eq(o2h_reader_next(&rd, 'F', &a), O2H_OK);
    cr_assert_eq(a.B, 0);
    cr_assert_eq(o2h_reader_next(&rd, 'N', &a), O2H_OK);
    cr_assert_eq(o2h_reader_next(&rd, 'I', &a), O2H_OK);
    cr_assert_eq(o2h_reader_peek(&rd), 0);
    cr_assert_eq(o2h_reader_next(&rd, 'i', &a), O2H_NOT_FOUND);
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, vectors_of_each_element_type) {
    o2h_builder *b = builder();
    int32_t vi[3] = {7, -8, 9};
    int64_t vh[2] = {1LL << 40, -1};
    float vf[2] = {0.5f, -1.5f};
    double vd[1] = {2.25};
    o2h_add_vector(b, 'i', 3, vi);
    o2h_add_vector(b, 'h', 2, vh);
    o2h_add_vector(b, 'f', 2, vf);
    o2h_add_vector(b, 'd', 1, vd);
    o2h_add_vector(b, 'i', 0, NULL);
    o2h_msg *m = o2h_builder_finish(b, 0, "/v/x", 0);
    cr_assert_not_null(m);
    cr_assert_str_eq(o2h_msg_types(m), "vivhvfvdvi");
    cr_assert_eq(o2h_msg_validate(m->data, m->length, NULL), O2H_OK);
    /* The wire counts bytes: 3 int32 elements are 12 bytes, big-endian. */
    const uint8_t *args = m->data + 12 + 8 + 12;
    cr_assert_eq(o2h_rd_u32(args), 12u);
    cr_assert_eq(o2h_rd_u32(args + 4), 7u);
    o2h_reader rd;
    uint8_t scratch[256];
    o2h_reader_init(&rd, m, scratch, sizeof scratch);
    o2h_arg a = {.v.type = 0};
    cr_assert_eq(o2h_reader_next(&rd, 'v', &a), O2H_OK);
    cr_assert_eq(a.v.len, 3);
    cr_assert_eq(((const int32_t *)a.v.data)[1], -8);
    a.v.type = 0;
    o2h_reader_next(&rd, 'v', &a);
    cr_assert_eq(((const int64_t *)a.v.data)[0], 1LL << 40);
    a.v.type = 'd'; /* coerce float elements to double */
    o2h_reader_next(&rd, 'v', &a);
    cr_assert_eq(a.v.type, 'd');
    cr_assert_eq(((const double *)a.v.data)[1], -1.5);
    a.v.type = 0;
    o2h_reader_next(&rd, 'v', &a);
    cr_assert_eq(((const double *)a.v.data)[0], 2.25);
    a.v.type = 0;
    o2h_reader_next(&rd, 'v', &a);
    cr_assert_eq(a.v.len, 0);
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, vector_of_unknown_type_is_a_sticky_error) {
    o2h_builder *b = builder();
    int32_t v[1] = {1};
    cr_assert_eq(o2h_add_vector(b, 's', 1, v), O2H_BAD_TYPE);
    cr_assert_eq(o2h_add_int32(b, 1), O2H_BAD_TYPE, "errors are sticky");
    cr_assert_null(o2h_builder_finish(b, 0, "/v/x", 0));
    cr_assert_eq(o2h_builder_error(b), O2H_BAD_TYPE);
    o2h_builder_start(b);
    cr_assert_eq(o2h_builder_error(b), O2H_OK, "start() clears the error");
    o2h_builder_free(b);
}

Test(msg, arrays_and_vector_array_coercion) {
    o2h_builder *b = builder();
    o2h_add_start_array(b);
    o2h_add_int32(b, 1);
    o2h_add_float(b, 2.5f);
    o2h_add_end_array(b);
    o2h_add_start_array(b);
    o2h_add_end_array(b);
    int32_t v[2] = {4, 5};
    o2h_add_vector(b, 'i', 2, v);
    o2h_msg *m = o2h_builder_finish(b, 0, "/a/x", 0);
    cr_assert_str_eq(o2h_msg_types(m), "[if][]vi");
    cr_assert_eq(o2h_msg_validate(m->data, m->length, NULL), O2H_OK);
    o2h_reader rd;
    uint8_t scratch[128];
    o2h_reader_init(&rd, m, scratch, sizeof scratch);
    o2h_arg a = {.v.type = 'f'};
    /* An array read as a vector of floats. */
    cr_assert_eq(o2h_reader_next(&rd, 'v', &a), O2H_OK);
    cr_assert_eq(a.v.len, 2);
    cr_assert_eq(((const float *)a.v.data)[1], 2.5f);
    /* The empty array element by element. */
    cr_assert_eq(o2h_reader_next(&rd, '[', &a), O2H_OK);
    cr_assert_eq(o2h_reader_next(&rd, ']', &a), O2H_OK);
    /* A vector read as an array. */
    cr_assert_eq(o2h_reader_next(&rd, '[', &a), O2H_OK);
    cr_assert_eq(o2h_reader_peek(&rd), 'i');
    cr_assert_eq(o2h_reader_next(&rd, 'd', &a), O2H_OK);
    cr_assert_eq(a.d, 4.0);
    cr_assert_eq(o2h_reader_next(&rd, 'i', &a), O2H_OK);
    cr_assert_eq(a.i, 5);
    cr_assert_eq(o2h_reader_peek(&rd), ']');
    cr_assert_eq(o2h_reader_next(&rd, ']', &a), O2H_OK);
    cr_assert_eq(o2h_reader_peek(&rd), 0);
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, unbalanced_arrays_are_refused) {
    o2h_builder *b = builder();
    cr_assert_eq(o2h_add_end_array(b), O2H_BAD_ARGS);
    o2h_builder_start(b);
    o2h_add_start_array(b);
    cr_assert_null(o2h_builder_finish(b, 0, "/a/x", 0));
    cr_assert_eq(o2h_builder_error(b), O2H_BAD_ARGS);
    o2h_builder_free(b);
}

Test(msg, coercion_table) {
    const char *num = "ihfdt", *boolish = "TFB";
    for (const char *h = num; *h; h++)
        for (const char *w = num; *w; w++)
            cr_assert(o2h_type_coercible(*h, *w));
    for (const char *h = boolish; *h; h++) {
        cr_assert(o2h_type_coercible(*h, 'i'));
        cr_assert(o2h_type_coercible('d', *h));
    }
    cr_assert(o2h_type_coercible('s', 'S'));
    cr_assert(o2h_type_coercible('S', 's'));
    const char *only_self = "bmcNI";
    for (const char *h = only_self; *h; h++) {
        cr_assert(o2h_type_coercible(*h, *h));
        for (const char *w = "ihfdtsSTFB"; *w; w++)
            cr_assert_not(o2h_type_coercible(*h, *w), "%c -> %c", *h, *w);
    }
    cr_assert_not(o2h_type_coercible('s', 'i'));
    cr_assert_not(o2h_type_coercible('i', 's'));
}

Test(msg, coerced_values) {
    o2h_builder *b = builder();
    o2h_add_float(b, 3.75f);
    o2h_add_int32(b, 0);
    o2h_add_true(b);
    o2h_add_double(b, -2.5);
    o2h_add_blob(b, "xy", 2);
    o2h_msg *m = o2h_builder_finish(b, 0, "/c/x", 0);
    o2h_reader rd;
    o2h_reader_init(&rd, m, NULL, 0);
    o2h_arg a;
    o2h_reader_next(&rd, 'i', &a);
    cr_assert_eq(a.i, 3, "float to int truncates");
    o2h_reader_next(&rd, 'F', &a);
    cr_assert_eq(a.B, 0, "zero is false");
    o2h_reader_next(&rd, 'd', &a);
    cr_assert_eq(a.d, 1.0, "true is 1");
    o2h_reader_next(&rd, 'h', &a);
    cr_assert_eq(a.h, -2);
    cr_assert_eq(o2h_reader_next(&rd, 'i', &a), O2H_BAD_TYPE);
    cr_assert_eq(o2h_reader_peek(&rd), 'b', "a refused read does not advance");
    cr_assert_eq(o2h_reader_next(&rd, 'b', &a), O2H_OK);
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, vector_needs_scratch_space) {
    o2h_builder *b = builder();
    int32_t v[16] = {0};
    o2h_add_vector(b, 'i', 16, v);
    o2h_msg *m = o2h_builder_finish(b, 0, "/v/x", 0);
    o2h_reader rd;
    uint8_t scratch[16];
    o2h_reader_init(&rd, m, scratch, sizeof scratch);
    o2h_arg a = {.v.type = 0};
    cr_assert_eq(o2h_reader_next(&rd, 'v', &a), O2H_NO_MEMORY);
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, bad_addresses_are_refused_by_the_builder) {
    o2h_builder *b = builder();
    cr_assert_null(o2h_builder_finish(b, 0, "noslash", 0));
    cr_assert_eq(o2h_builder_error(b), O2H_BAD_NAME);
    o2h_builder_start(b);
    cr_assert_null(o2h_builder_finish(b, 0, "/", 0));
    o2h_builder_start(b);
    cr_assert_null(o2h_builder_finish(b, 0, NULL, 0));
    o2h_builder_free(b);
}

/* ---- validation of untrusted bytes ---- */

static o2h_msg *sample(void) {
    o2h_builder *b = builder();
    o2h_add_int32(b, 5);
    o2h_add_string(b, "hello");
    o2h_add_blob(b, "abc", 3);
    int32_t v[2] = {1, 2};
    o2h_add_vector(b, 'i', 2, v);
    o2h_msg *m = o2h_builder_finish(b, 0, "/svc/a", 0);
    o2h_builder_free(b);
    return m;
}

static int check(const uint8_t *data, size_t len) {
    return o2h_msg_validate(data, len, NULL);
}

Test(msg, every_truncation_is_rejected) {
    o2h_msg *m = sample();
    cr_assert_eq(check(m->data, m->length), O2H_OK);
    for (uint32_t len = 0; len < m->length; len++) {
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(copy, m->data, len);
        cr_assert_eq(check(copy, len), O2H_INVALID_MSG, "length %u accepted", len);
        free(copy);
    }
    o2h_msg_unref(m);
}

Test(msg, each_malformation_has_a_reason) {
    o2h_msg *m = sample();
    uint8_t buf[256];
    o2h_msg_error err;
    struct {
        uint32_t offset;
        uint8_t value;
        const char *reason;
    } cases[] = {
        {12, 'x', "address does not start"}, /* first address byte */
        {19, 'z', "nonzero padding"},        /* "/svc/a\0" + pad byte */
        {20, 'X', "type string does not start"},
        {22, 'q', "unknown type code"}, /* ",isbvi" -> ",iqbvi" */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(buf, m->data, m->length);
        buf[cases[i].offset] = cases[i].value;
        cr_assert_eq(o2h_msg_validate(buf, m->length, &err), O2H_INVALID_MSG, "case %zu", i);
        cr_assert(strstr(err.reason, cases[i].reason), "case %zu: %s", i, err.reason);
    }
    o2h_msg_unref(m);
}

Test(msg, lying_sizes_are_rejected) {
    o2h_builder *b = builder();
    o2h_add_blob(b, "abcd", 4);
    o2h_msg *m = o2h_builder_finish(b, 0, "/b/x", 0);
    uint8_t buf[64];
    memcpy(buf, m->data, m->length);
    o2h_wr_u32(buf + m->length - 8, 0x7fffffff); /* blob size */
    cr_assert_eq(check(buf, m->length), O2H_INVALID_MSG);
    o2h_wr_u32(buf + m->length - 8, 0xffffffff);
    cr_assert_eq(check(buf, m->length), O2H_INVALID_MSG);
    o2h_msg_unref(m);

    int32_t v[2] = {1, 2};
    o2h_builder_start(b);
    o2h_add_vector(b, 'i', 2, v);
    m = o2h_builder_finish(b, 0, "/v/x", 0);
    memcpy(buf, m->data, m->length);
    o2h_wr_u32(buf + m->length - 12, 6); /* not a multiple of 4 */
    cr_assert_eq(check(buf, m->length), O2H_INVALID_MSG);
    o2h_wr_u32(buf + m->length - 12, 16); /* past the end */
    cr_assert_eq(check(buf, m->length), O2H_INVALID_MSG);
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, trailing_bytes_and_odd_lengths_are_rejected) {
    o2h_msg *m = sample();
    uint8_t buf[256] = {0};
    memcpy(buf, m->data, m->length);
    cr_assert_eq(check(buf, m->length + 4), O2H_INVALID_MSG, "4 trailing zero bytes");
    cr_assert_eq(check(buf, m->length - 1), O2H_INVALID_MSG);
    o2h_msg_unref(m);
}

static o2h_msg *nest_bundles(int depth) {
    o2h_builder *b = builder();
    o2h_msg *inner = o2h_builder_finish(b, 0, "/n/leaf", 0);
    for (int i = 0; i < depth; i++) {
        o2h_add_message(b, inner);
        o2h_msg *outer = o2h_builder_finish(b, 0, "#n", 0);
        o2h_msg_unref(inner);
        inner = outer;
    }
    o2h_builder_free(b);
    return inner;
}

Test(msg, bundle_depth_bomb_is_rejected) {
    o2h_msg *ok = nest_bundles(O2H_MAX_BUNDLE_DEPTH);
    cr_assert_eq(check(ok->data, ok->length), O2H_OK);
    o2h_msg *deep = nest_bundles(O2H_MAX_BUNDLE_DEPTH + 1);
    o2h_msg_error err;
    cr_assert_eq(o2h_msg_validate(deep->data, deep->length, &err), O2H_INVALID_MSG);
    cr_assert(strstr(err.reason, "nested too deeply"), "%s", err.reason);
    o2h_msg_unref(ok);
    o2h_msg_unref(deep);
}

Test(msg, bundle_element_running_past_the_end_is_rejected) {
    o2h_msg *b = nest_bundles(1);
    uint8_t buf[128];
    memcpy(buf, b->data, b->length);
    o2h_wr_u32(buf + 16, 1000);
    cr_assert_eq(check(buf, b->length), O2H_INVALID_MSG);
    o2h_msg_unref(b);
}

Test(msg, random_bytes_and_mutations_never_crash, .timeout = 60) {
    srand(12345);
    o2h_msg *m = sample();
    int accepted_mutations = 0;
    for (int i = 0; i < 100000; i++) {
        size_t len = (size_t)(rand() % 96);
        uint8_t *buf = malloc(len + 1);
        if (i % 2 == 0) {
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)rand();
            if (len > 12) buf[12] = "/!#"[rand() % 3];
        } else {
            len = m->length;
            buf = realloc(buf, len);
            memcpy(buf, m->data, len);
            buf[rand() % len] ^= (uint8_t)(1u << (rand() % 8));
        }
        if (check(buf, len) == O2H_OK && i % 2) accepted_mutations++;
        free(buf);
    }
    /* Some single-bit flips (in argument values) are still valid messages. */
    cr_assert_gt(accepted_mutations, 0);
    o2h_msg_unref(m);
}

/* ---- pool ---- */

Test(msg, steady_state_building_allocates_nothing) {
    o2h_pool *pool = o2h_pool_new();
    o2h_builder *b = o2h_builder_new(pool);
    for (int i = 0; i < 100; i++) {
        o2h_builder_start(b);
        o2h_add_int32(b, i);
        o2h_add_string(b, "warm");
        o2h_msg_unref(o2h_builder_finish(b, 0, "/p/x", 0));
    }
    o2h_pool_stats before, after;
    o2h_pool_get_stats(pool, &before);
    for (int i = 0; i < 10000; i++) {
        o2h_builder_start(b);
        o2h_add_int32(b, i);
        o2h_add_string(b, "steady");
        o2h_msg_unref(o2h_builder_finish(b, 0, "/p/x", 0));
    }
    o2h_pool_get_stats(pool, &after);
    cr_assert_eq(after.heap_allocs, before.heap_allocs);
    cr_assert_eq(after.reuses - before.reuses, 10000);
    cr_assert_eq(after.in_use, 0);
    o2h_builder_free(b);
    o2h_pool_free(pool);
}

Test(msg, refcount_and_sharing) {
    o2h_pool *pool = o2h_pool_new();
    o2h_msg *m = o2h_msg_alloc(pool, 100);
    cr_assert_geq(m->capacity, 100);
    cr_assert_eq(o2h_msg_refcount(m), 1);
    o2h_msg_ref(m);
    o2h_msg_ref(m);
    cr_assert_eq(o2h_msg_refcount(m), 3);
    o2h_msg_unref(m);
    o2h_msg_unref(m);
    o2h_pool_stats st;
    o2h_pool_get_stats(pool, &st);
    cr_assert_eq(st.in_use, 1);
    m->data[-4] = 0xaa; /* the length slot before the data is ours to write */
    o2h_msg_unref(m);
    o2h_pool_get_stats(pool, &st);
    cr_assert_eq(st.in_use, 0);
    cr_assert_eq(st.cached, 1);
    o2h_pool_free(pool);
}

Test(msg, pool_freed_before_its_last_message) {
    o2h_pool *pool = o2h_pool_new();
    o2h_msg *m = o2h_msg_alloc(pool, 64);
    o2h_pool_free(pool);
    m->data[0] = 1;   /* still valid */
    o2h_msg_unref(m); /* frees the block and then the pool (ASan checks) */
}

Test(msg, sizes_and_limits) {
    o2h_msg *big = o2h_msg_alloc(NULL, 200000);
    cr_assert_not_null(big, "larger than the biggest class: heap");
    cr_assert_geq(big->capacity, 200000);
    o2h_msg_unref(big);
    cr_assert_null(o2h_msg_alloc(NULL, O2H_MSG_MAX_SIZE + 1));
    int code;
    uint8_t junk[20] = {0};
    cr_assert_null(o2h_msg_from_bytes(NULL, junk, sizeof junk, &code, NULL));
    cr_assert_eq(code, O2H_INVALID_MSG);
    o2h_msg *m = sample();
    o2h_msg *copy = o2h_msg_from_bytes(NULL, m->data, m->length, &code, NULL);
    cr_assert_eq(code, O2H_OK);
    cr_assert_eq(memcmp(copy->data, m->data, m->length), 0);
    o2h_msg_unref(copy);
    o2h_msg_unref(m);
}

Test(msg, format_is_readable) {
    o2h_builder *b = builder();
    o2h_add_int32(b, 3);
    o2h_add_float(b, 2.5f);
    o2h_add_string(b, "hi");
    o2h_msg *m = o2h_builder_finish(b, 1.5, "/svc/a", 0);
    char text[128];
    int n = o2h_msg_format(m, text, sizeof text);
    cr_assert_str_eq(text, "/svc/a @1.500 ,ifs 3 2.5 \"hi\"");
    cr_assert_eq(n, (int)strlen(text));
    char tiny[8];
    cr_assert_eq(o2h_msg_format(m, tiny, sizeof tiny), n, "returns the size it needs");
    cr_assert_eq(strlen(tiny), 7);
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

/* Found by fuzz_msg (UBSan): coercing a float out of range to an integer
 * was an undefined cast. It saturates now; NaN reads as 0. */
Test(msg, out_of_range_floats_saturate_when_coerced) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_add_double(b, 1e300);
    o2h_add_double(b, -1e300);
    o2h_add_double(b, 0.0 / 0.0);
    o2h_add_double(b, 1e300);
    o2h_msg *m = o2h_builder_finish(b, 0, "/s/x", 0);
    o2h_reader rd;
    o2h_arg a;
    cr_assert_eq(o2h_reader_init(&rd, m, NULL, 0), O2H_OK);
    cr_assert_eq(o2h_reader_next(&rd, 'i', &a), O2H_OK);
    cr_assert_eq(a.i, INT32_MAX);
    cr_assert_eq(o2h_reader_next(&rd, 'h', &a), O2H_OK);
    cr_assert_eq(a.h, INT64_MIN);
    cr_assert_eq(o2h_reader_next(&rd, 'i', &a), O2H_OK);
    cr_assert_eq(a.i, 0);
    cr_assert_eq(o2h_reader_next(&rd, 'f', &a), O2H_OK);
    cr_assert(isinf(a.f) && a.f > 0);
    o2h_msg_unref(m);
    o2h_builder_free(b);
}

Test(msg, encode_writes_what_finish_would) {
    o2h_builder *b = builder();
    o2h_add_int32(b, 7);
    o2h_add_string(b, "hello");
    o2h_msg *want = o2h_builder_finish(b, 1.5, "/svc/a", O2H_FLAG_RELIABLE);
    cr_assert_not_null(want);
    uint8_t out[128];
    memset(out, 0xee, sizeof out);
    o2h_add_int32(b, 7);
    o2h_add_string(b, "hello");
    /* Too little room: the size, nothing written, the arguments kept. */
    cr_assert_eq(o2h_builder_encode(b, 1.5, "/svc/a", O2H_FLAG_RELIABLE, out, 8), want->length);
    cr_assert_eq(out[0], 0xee);
    cr_assert_eq(o2h_builder_encode(b, 1.5, "/svc/a", O2H_FLAG_RELIABLE, out, sizeof out),
                 want->length);
    cr_assert_eq(memcmp(out, want->data, want->length), 0);
    cr_assert_eq(out[want->length], 0xee, "nothing past the message");
    /* Written: the builder started again. */
    /* header 12, "/svc/b" padded to 8, "," padded to 4 */
    cr_assert_eq(o2h_builder_encode(b, 0, "/svc/b", 0, out, sizeof out), 24);
    /* A bad address: 0, and the error says why. */
    cr_assert_eq(o2h_builder_encode(b, 0, "svc", 0, out, sizeof out), 0);
    cr_assert_eq(o2h_builder_error(b), O2H_BAD_NAME);
    o2h_msg_unref(want);
    o2h_builder_free(b);
}

Test(msg, a_zero_inside_a_string_word_is_caught) {
    /* "/a" then ",s" then "ab\0x" "yz\0\0": the string ends in its first word
     * and a nonzero byte follows the NUL, so the padding is wrong, even
     * though the next word ends in zeros. */
    uint8_t m[] = {0, 0, 0,   0,   0, 0, 0,   0,   0, 0,   0,   0,   '/', 'a',
                   0, 0, ',', 's', 0, 0, 'a', 'b', 0, 'x', 'y', 'z', 0,   0};
    o2h_msg_error err;
    cr_assert_eq(o2h_msg_validate(m, sizeof m, &err), O2H_INVALID_MSG);
    cr_assert(strstr(err.reason, "nonzero padding"), "%s", err.reason);
    m[23] = 0; /* "ab\0\0", then "yz\0\0" is a trailing word */
    cr_assert_eq(o2h_msg_validate(m, sizeof m, &err), O2H_INVALID_MSG);
    cr_assert(strstr(err.reason, "trailing"), "%s", err.reason);
    m[24] = m[25] = 0; /* zeros after the string: still trailing bytes */
    cr_assert_eq(o2h_msg_validate(m, sizeof m - 4, &err), O2H_OK);
}

/* Builders and validation remember where the types and arguments start; a
 * message whose bytes were only copied in does not. All three must read alike. */
static void assert_reads_ihs(const o2h_msg *m, const char *how) {
    cr_assert_str_eq(o2h_msg_types(m), "ihs", "%s", how);
    uint8_t scratch[64];
    o2h_reader rd;
    cr_assert_eq(o2h_reader_init(&rd, m, scratch, sizeof scratch), O2H_OK);
    o2h_arg a;
    cr_assert_eq(o2h_reader_next(&rd, 'i', &a), O2H_OK);
    cr_assert_eq(a.i, -5, "%s", how);
    cr_assert_eq(o2h_reader_next(&rd, 'h', &a), O2H_OK);
    cr_assert_eq(a.h, INT64_C(1) << 40, "%s", how);
    cr_assert_eq(o2h_reader_next(&rd, 's', &a), O2H_OK);
    cr_assert_str_eq(a.s, "tail", "%s", how);
    cr_assert_eq(o2h_reader_peek(&rd), 0, "%s", how);
}

Test(msg, types_read_alike_however_the_message_was_made) {
    o2h_builder *b = builder();
    const char *addresses[] = {"/a", "/ab", "/abc", "/abcd", "/svc/longer/path"};
    for (size_t k = 0; k < sizeof addresses / sizeof *addresses; k++) {
        o2h_add_int32(b, -5);
        o2h_add_int64(b, INT64_C(1) << 40);
        o2h_add_string(b, "tail");
        o2h_msg *built = o2h_builder_finish(b, 0, addresses[k], 0);
        cr_assert_not_null(built);
        assert_reads_ihs(built, "built");
        int code;
        o2h_msg *parsed = o2h_msg_from_bytes(NULL, built->data, built->length, &code, NULL);
        cr_assert_not_null(parsed);
        assert_reads_ihs(parsed, "from bytes");
        o2h_msg *copied = o2h_msg_alloc(NULL, built->length);
        memcpy(copied->data, built->data, built->length);
        copied->length = built->length;
        assert_reads_ihs(copied, "copied in");
        o2h_msg_unref(built);
        o2h_msg_unref(parsed);
        o2h_msg_unref(copied);
    }
    o2h_builder_free(b);
}

static int add_va(o2h_builder *b, const char *types, ...) {
    va_list ap;
    va_start(ap, types);
    int rc = o2h_builder_add_va(b, types, &ap);
    va_end(ap);
    return rc;
}

Test(msg, builder_add_va_takes_arguments_as_o2h_send_does) {
    o2h_builder *b = builder();
    o2h_blob blob = {3, (const uint8_t *)"xyz"};
    cr_assert_eq(add_va(b, "ihfdtsScmBTFNI[]b", 7, (int64_t)1 << 40, 1.5, 2.25, 3.5, "str", "sym",
                        'q', (uint32_t)0x01903c40, 1, &blob),
                 O2H_OK);
    o2h_msg *m = o2h_builder_finish(b, 0, "/v/a", 0);
    cr_assert_not_null(m);
    cr_assert_str_eq(o2h_msg_types(m), "ihfdtsScmBTFNI[]b");
    o2h_reader rd;
    o2h_arg a;
    cr_assert_eq(o2h_reader_init(&rd, m, NULL, 0), O2H_OK);
    cr_assert_eq(o2h_reader_next(&rd, 'i', &a), O2H_OK);
    cr_assert_eq(a.i, 7);
    cr_assert_eq(o2h_reader_next(&rd, 'h', &a), O2H_OK);
    cr_assert_eq(a.h, (int64_t)1 << 40);
    cr_assert_eq(o2h_reader_next(&rd, 'f', &a), O2H_OK);
    cr_assert_float_eq(a.f, 1.5f, 0);
    o2h_msg_unref(m);
    o2h_builder_start(b);
    cr_assert_eq(add_va(b, "v", 1, 'i', NULL), O2H_BAD_TYPE, "vectors need o2h_add_vector");
    o2h_builder_free(b);
}
