/*
 * The OSC codec (transports/osc): parsing every type tag, malformed packets
 * rejected with a reason, bundle depth and timetags, conversion to O2
 * messages (valid for the core) and back, stream framing, and a mutation
 * run over the parser.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/msg.h>

#include "osc_codec.h"
#include "osc_frame.h"

/* ---- building OSC packets by hand ---- */

typedef struct pkt {
    uint8_t b[4096];
    size_t n;
} pkt;

static void p_bytes(pkt *p, const void *d, size_t n) {
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void p_u32(pkt *p, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    p_bytes(p, b, 4);
}

static void p_u64(pkt *p, uint64_t v) {
    p_u32(p, (uint32_t)(v >> 32));
    p_u32(p, (uint32_t)v);
}

static void p_str(pkt *p, const char *s) {
    size_t n = strlen(s) + 1;
    p_bytes(p, s, n);
    while (p->n % 4)
        p->b[p->n++] = 0;
}

/* A message "/a/b" with one argument of every type OSC 1.0 and liblo know. */
static void all_types(pkt *p) {
    p_str(p, "/a/b");
    p_str(p, ",ihfdsSbcmtTFNI");
    p_u32(p, (uint32_t)-7);
    p_u64(p, 12345678901ull);
    float f = 2.5f;
    uint32_t fb;
    memcpy(&fb, &f, 4);
    p_u32(p, fb);
    double d = 0.125;
    uint64_t db;
    memcpy(&db, &d, 8);
    p_u64(p, db);
    p_str(p, "hello");
    p_str(p, "sym");
    p_u32(p, 5);
    p_bytes(p, "\x01\x02\x03\x04\x05\0\0\0", 8);
    p_u32(p, 'x');
    p_u32(p, 0x01903c64);
    p_u64(p, ((uint64_t)(OSC_NTP_UNIX_OFFSET + 1000) << 32) | 0x80000000u);
}

typedef struct seen {
    int n;
    char address[8][64];
    char types[8][32];
    uint64_t tags[8];
} seen;

static int record(void *ctx, const osc_view *m, uint64_t tag) {
    seen *s = ctx;
    if (s->n < 8) {
        snprintf(s->address[s->n], 64, "%s", m->address);
        snprintf(s->types[s->n], 32, "%s", m->types);
        s->tags[s->n] = tag;
    }
    s->n++;
    return 0;
}

Test(osc_codec, every_type_tag_parses) {
    pkt p = {0};
    all_types(&p);
    seen s = {0};
    osc_error err = {0};
    cr_assert_eq(o2h_osc_parse(p.b, p.n, record, &s, &err), 0, "%s", err.reason);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.address[0], "/a/b");
    cr_assert_str_eq(s.types[0], "ihfdsSbcmtTFNI");
    cr_assert_eq(s.tags[0], OSC_IMMEDIATELY);
}

Test(osc_codec, message_without_type_tags_has_no_arguments) {
    pkt p = {0};
    p_str(&p, "/old");
    seen s = {0};
    cr_assert_eq(o2h_osc_parse(p.b, p.n, record, &s, NULL), 0);
    cr_assert_str_eq(s.types[0], "");
}

static void expect_invalid(const pkt *p, const char *why) {
    seen s = {0};
    osc_error err = {0};
    cr_assert_eq(o2h_osc_parse(p->b, p->n, record, &s, &err), OSC_INVALID, "%s accepted", why);
    cr_assert_eq(s.n, 0, "%s: a message was handed out", why);
    cr_assert_not_null(err.reason);
    cr_assert(err.offset <= p->n);
}

Test(osc_codec, malformed_packets_are_rejected) {
    pkt p = {0};
    /* bad padding after the address */
    p_bytes(&p, "/ab\0", 4);
    p_bytes(&p, "/x\0Z", 4);
    expect_invalid(&p, "nonzero padding");
    /* unterminated address */
    p = (pkt){0};
    p_bytes(&p, "/abcdefg", 8);
    expect_invalid(&p, "unterminated address");
    /* unterminated string argument */
    p = (pkt){0};
    p_str(&p, "/a");
    p_str(&p, ",s");
    p_bytes(&p, "abcd", 4);
    expect_invalid(&p, "unterminated string");
    /* an int32 missing */
    p = (pkt){0};
    p_str(&p, "/a");
    p_str(&p, ",ii");
    p_u32(&p, 1);
    expect_invalid(&p, "argument past the end");
    /* blob longer than the packet */
    p = (pkt){0};
    p_str(&p, "/a");
    p_str(&p, ",b");
    p_u32(&p, 1000);
    p_u32(&p, 0);
    expect_invalid(&p, "blob past the end");
    /* blob of 0xffffffff bytes (no overflow in the bound check) */
    p = (pkt){0};
    p_str(&p, "/a");
    p_str(&p, ",b");
    p_u32(&p, 0xffffffffu);
    expect_invalid(&p, "huge blob");
    /* unknown type tag */
    p = (pkt){0};
    p_str(&p, "/a");
    p_str(&p, ",r");
    p_u32(&p, 0);
    expect_invalid(&p, "type r");
    /* trailing bytes */
    p = (pkt){0};
    p_str(&p, "/a");
    p_str(&p, ",i");
    p_u32(&p, 1);
    p_u32(&p, 2);
    expect_invalid(&p, "trailing bytes");
    /* not 4-aligned, empty, not a message */
    p = (pkt){0};
    p_bytes(&p, "/a\0\0\0", 5);
    expect_invalid(&p, "length 5");
    p = (pkt){0};
    expect_invalid(&p, "empty");
    p = (pkt){0};
    p_str(&p, "abc");
    expect_invalid(&p, "no slash");
    /* type tags without ',' */
    p = (pkt){0};
    p_str(&p, "/a");
    p_str(&p, "i");
    p_u32(&p, 1);
    expect_invalid(&p, "no comma");
    /* unbalanced arrays */
    p = (pkt){0};
    p_str(&p, "/a");
    p_str(&p, ",[i");
    p_u32(&p, 1);
    expect_invalid(&p, "unclosed array");
    /* bundle element running past the end */
    p = (pkt){0};
    p_str(&p, "#bundle");
    p_u64(&p, 1);
    p_u32(&p, 64);
    p_str(&p, "/a");
    p_str(&p, ",");
    expect_invalid(&p, "element past the end");
    /* bundle element size not covering its message exactly */
    p = (pkt){0};
    p_str(&p, "#bundle");
    p_u64(&p, 1);
    p_u32(&p, 2);
    p_u32(&p, 0);
    expect_invalid(&p, "element of 2 bytes");
    /* a bundle header that is not "#bundle" */
    p = (pkt){0};
    p_str(&p, "#bundlX");
    p_u64(&p, 1);
    expect_invalid(&p, "bad bundle header");
    /* a valid message followed by a broken one in a bundle: nothing handed out */
    p = (pkt){0};
    p_str(&p, "#bundle");
    p_u64(&p, 1);
    p_u32(&p, 8);
    p_str(&p, "/a");
    p_str(&p, ",");
    p_u32(&p, 8);
    p_str(&p, "/b");
    p_bytes(&p, ",i\0\0", 4);
    expect_invalid(&p, "second element broken");
}

/* `depth` bundles, one inside the other, around "/deep ,i 1". */
static void nested(pkt *p, int depth, uint64_t tag) {
    if (depth == 0) {
        p_str(p, "/deep");
        p_str(p, ",i");
        p_u32(p, 1);
        return;
    }
    p_str(p, "#bundle");
    p_u64(p, tag);
    size_t at = p->n;
    p_u32(p, 0);
    nested(p, depth - 1, tag);
    uint32_t len = (uint32_t)(p->n - at - 4);
    p->b[at] = (uint8_t)(len >> 24);
    p->b[at + 1] = (uint8_t)(len >> 16);
    p->b[at + 2] = (uint8_t)(len >> 8);
    p->b[at + 3] = (uint8_t)len;
}

Test(osc_codec, bundle_depth_is_capped) {
    pkt p = {0};
    nested(&p, OSC_MAX_DEPTH, 1);
    seen s = {0};
    cr_assert_eq(o2h_osc_parse(p.b, p.n, record, &s, NULL), 0);
    cr_assert_eq(s.n, 1);
    p = (pkt){0};
    nested(&p, OSC_MAX_DEPTH + 1, 1);
    expect_invalid(&p, "depth bomb");
    p = (pkt){0};
    nested(&p, 200, 1);
    expect_invalid(&p, "deep depth bomb");
}

Test(osc_codec, nested_bundles_are_never_earlier_than_their_parent) {
    pkt p = {0};
    p_str(&p, "#bundle");
    p_u64(&p, 5000);
    p_u32(&p, 8);
    p_str(&p, "/a");
    p_str(&p, ",");
    pkt inner = {0};
    nested(&inner, 1, 3000); /* earlier than the parent: gets 5000 */
    p_u32(&p, (uint32_t)inner.n);
    p_bytes(&p, inner.b, inner.n);
    inner = (pkt){0};
    nested(&inner, 1, 9000);
    p_u32(&p, (uint32_t)inner.n);
    p_bytes(&p, inner.b, inner.n);
    seen s = {0};
    cr_assert_eq(o2h_osc_parse(p.b, p.n, record, &s, NULL), 0);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(s.tags[0], 5000);
    cr_assert_eq(s.tags[1], 5000);
    cr_assert_eq(s.tags[2], 9000);
    cr_assert_str_eq(s.address[2], "/deep");
}

/* ---- conversion ---- */

static const osc_clock clock100 = {
    .synced = true, .o2_now = 100.0, .ntp_now = (OSC_NTP_UNIX_OFFSET + 1000) << 32};

Test(osc_codec, timetags_convert_both_ways) {
    cr_assert_eq(o2h_osc_ntp_to_o2(&clock100, OSC_IMMEDIATELY), 0);
    cr_assert_eq(o2h_osc_ntp_to_o2(&clock100, 0), 0);
    cr_assert_float_eq(o2h_osc_ntp_to_o2(&clock100, clock100.ntp_now + (1ull << 31)), 100.5, 1e-9);
    cr_assert_float_eq(o2h_osc_ntp_to_o2(&clock100, clock100.ntp_now - (1ull << 32)), 99.0, 1e-9);
    cr_assert_eq(o2h_osc_o2_to_ntp(&clock100, 0), OSC_IMMEDIATELY);
    cr_assert_eq(o2h_osc_o2_to_ntp(&clock100, 100.25), clock100.ntp_now + (1ull << 30));
    uint64_t now = o2h_osc_ntp_now();
    cr_assert_gt(now >> 32, OSC_NTP_UNIX_OFFSET + 1600000000ull, "after 2020");
}

typedef struct conv {
    uint8_t out[4096];
    size_t len;
} conv;

static int convert(void *ctx, const osc_view *m, uint64_t tag) {
    conv *c = ctx;
    c->len = o2h_osc_to_o2(m, "svc", o2h_osc_ntp_to_o2(&clock100, tag), O2H_FLAG_RELIABLE,
                           &clock100, c->out, sizeof c->out);
    return 0;
}

Test(osc_codec, osc_message_becomes_a_valid_o2_message) {
    pkt p = {0};
    all_types(&p);
    conv c = {0};
    cr_assert_eq(o2h_osc_parse(p.b, p.n, convert, &c, NULL), 0);
    o2h_msg_error why;
    cr_assert_eq(o2h_msg_validate(c.out, c.len, &why), O2H_OK, "%s at %u", why.reason, why.offset);
    o2h_msg *m = o2h_msg_from_bytes(NULL, c.out, c.len, NULL, NULL);
    cr_assert_not_null(m);
    cr_assert_str_eq(o2h_msg_address(m), "/svc/a/b");
    cr_assert_str_eq(o2h_msg_types(m), "ihfdsSbcmtTFNI");
    cr_assert_eq(o2h_msg_misc(m), O2H_FLAG_RELIABLE);
    o2h_reader rd;
    uint8_t scratch[64];
    cr_assert_eq(o2h_reader_init(&rd, m, scratch, sizeof scratch), O2H_OK);
    o2h_arg a;
    o2h_reader_next(&rd, 'i', &a);
    cr_assert_eq(a.i, -7);
    o2h_reader_next(&rd, 'h', &a);
    cr_assert_eq(a.h, 12345678901);
    o2h_reader_next(&rd, 'f', &a);
    cr_assert_eq(a.f, 2.5f);
    o2h_reader_next(&rd, 'd', &a);
    cr_assert_eq(a.d, 0.125);
    o2h_reader_next(&rd, 's', &a);
    cr_assert_str_eq(a.s, "hello");
    o2h_reader_next(&rd, 'S', &a);
    cr_assert_str_eq(a.s, "sym");
    o2h_reader_next(&rd, 'b', &a);
    cr_assert_eq(a.b.size, 5u);
    cr_assert_eq(memcmp(a.b.data, "\x01\x02\x03\x04\x05", 5), 0);
    o2h_reader_next(&rd, 'c', &a);
    cr_assert_eq(a.c, 'x');
    o2h_reader_next(&rd, 'm', &a);
    cr_assert_eq(a.m, 0x01903c64u);
    o2h_reader_next(&rd, 't', &a);
    cr_assert_float_eq(a.t, 100.5, 1e-9, "NTP timetag 1000.5 s is O2 time 100.5");
    o2h_msg_unref(m);
}

Test(osc_codec, root_address_maps_to_the_service) {
    pkt p = {0};
    p_str(&p, "/");
    p_str(&p, ",");
    conv c = {0};
    cr_assert_eq(o2h_osc_parse(p.b, p.n, convert, &c, NULL), 0);
    cr_assert_eq(o2h_msg_validate(c.out, c.len, NULL), O2H_OK);
    cr_assert_str_eq((const char *)c.out + 12, "/svc");
}

static o2h_msg *o2_all_types(double time, const char *address) {
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_builder_start(b);
    o2h_add_int32(b, 42);
    o2h_add_bool(b, true);
    o2h_add_bool(b, false);
    int32_t v[3] = {1, -2, 3};
    o2h_add_vector(b, 'i', 3, v);
    o2h_add_time(b, 101.0);
    o2h_add_string(b, "s");
    o2h_add_blob(b, "\xaa\xbb", 2);
    o2h_add_start_array(b);
    o2h_add_double(b, 1.5);
    o2h_add_end_array(b);
    o2h_add_nil(b);
    o2h_msg *m = o2h_builder_finish(b, time, address, 0);
    o2h_builder_free(b);
    cr_assert_not_null(m);
    return m;
}

Test(osc_codec, o2_message_becomes_osc_without_its_service) {
    o2h_msg *m = o2_all_types(0, "/synth/osc/freq");
    uint8_t out[1024];
    size_t n = o2h_osc_from_o2(m->data, m->length, &clock100, out, sizeof out);
    cr_assert_gt(n, 0u);
    seen s = {0};
    osc_error err = {0};
    cr_assert_eq(o2h_osc_parse(out, n, record, &s, &err), 0, "%s", err.reason);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.address[0], "/osc/freq");
    cr_assert_str_eq(s.types[0], "iTF[iii]tsb[d]N");
    /* "/osc/freq" 12, ",iTF[iii]tsb[d]N" 20, then 42, 1 -2 3, timetag, "s", blob, 1.5 */
    cr_assert_eq(n, 12u + 20u + 4u + 12u + 8u + 4u + 8u + 8u);
    const uint8_t *a = out + 32;
    cr_assert_eq(o2h_rd_u32(a), 42u);
    cr_assert_eq((int32_t)o2h_rd_u32(a + 8), -2);
    cr_assert_eq(o2h_rd_u64(a + 16), (OSC_NTP_UNIX_OFFSET + 1001) << 32, "O2 101 s = NTP 1001 s");
    cr_assert_eq(memcmp(a + 24, "s\0\0\0", 4), 0);
    cr_assert_eq(o2h_rd_u32(a + 28), 2u);
    cr_assert_eq(memcmp(a + 32, "\xaa\xbb\0\0", 4), 0);
    double d;
    uint64_t bits = o2h_rd_u64(a + 36);
    memcpy(&d, &bits, 8);
    cr_assert_eq(d, 1.5);
    o2h_msg_unref(m);
}

Test(osc_codec, o2_address_forms) {
    const char *cases[][2] = {{"/synth", "/"}, {"!synth/x/y", "/x/y"}, {"/synth/", "/"}};
    for (int i = 0; i < 3; i++) {
        o2h_msg *m = o2_all_types(0, cases[i][0]);
        uint8_t out[1024];
        size_t n = o2h_osc_from_o2(m->data, m->length, &clock100, out, sizeof out);
        cr_assert_str_eq((const char *)out, cases[i][1], "%s", cases[i][0]);
        cr_assert_eq(o2h_osc_parse(out, n, NULL, NULL, NULL), 0);
        o2h_msg_unref(m);
    }
}

Test(osc_codec, future_message_becomes_a_bundle_only_with_a_clock) {
    o2h_msg *m = o2_all_types(100.5, "/synth/x");
    uint8_t out[1024];
    size_t n = o2h_osc_from_o2(m->data, m->length, &clock100, out, sizeof out);
    seen s = {0};
    cr_assert_eq(o2h_osc_parse(out, n, record, &s, NULL), 0);
    cr_assert_str_eq((const char *)out, "#bundle");
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.tags[0], clock100.ntp_now + (1ull << 31));
    osc_clock nosync = clock100;
    nosync.synced = false;
    n = o2h_osc_from_o2(m->data, m->length, &nosync, out, sizeof out);
    cr_assert_str_eq((const char *)out, "/x", "no clock: a plain message, sent now");
    /* already due: a plain message too */
    osc_clock later = clock100;
    later.o2_now = 200;
    n = o2h_osc_from_o2(m->data, m->length, &later, out, sizeof out);
    cr_assert_str_eq((const char *)out, "/x");
    /* too small a buffer: the size is reported, nothing overflows */
    uint8_t small[8] = {0};
    size_t need = o2h_osc_from_o2(m->data, m->length, &clock100, small, sizeof small);
    cr_assert_gt(need, sizeof small);
    o2h_msg_unref(m);
}

Test(osc_codec, o2_bundle_becomes_osc_bundle_with_ordered_timetags) {
    o2h_msg *early = o2_all_types(100.25, "/synth/early"); /* before the bundle: takes its time */
    o2h_msg *late = o2_all_types(101.0, "/synth/late");    /* after: a bundle of its own */
    o2h_builder *b = o2h_builder_new(NULL);
    o2h_builder_start(b);
    o2h_add_message(b, early);
    o2h_add_message(b, late);
    o2h_msg *bundle = o2h_builder_finish(b, 100.5, "#synth", 0);
    cr_assert_not_null(bundle);
    uint8_t out[2048];
    size_t n = o2h_osc_from_o2(bundle->data, bundle->length, &clock100, out, sizeof out);
    seen s = {0};
    osc_error err = {0};
    cr_assert_eq(o2h_osc_parse(out, n, record, &s, &err), 0, "%s", err.reason);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.address[0], "/early");
    cr_assert_eq(s.tags[0], clock100.ntp_now + (1ull << 31));
    cr_assert_str_eq(s.address[1], "/late");
    cr_assert_eq(s.tags[1], clock100.ntp_now + (1ull << 32));
    o2h_msg_unref(early);
    o2h_msg_unref(late);
    o2h_msg_unref(bundle);
    o2h_builder_free(b);
}

Test(osc_codec, osc_to_o2_to_osc_keeps_every_byte) {
    pkt p = {0};
    all_types(&p);
    conv c = {0};
    cr_assert_eq(o2h_osc_parse(p.b, p.n, convert, &c, NULL), 0);
    uint8_t back[4096];
    size_t n = o2h_osc_from_o2(c.out, c.len, &clock100, back, sizeof back);
    cr_assert_eq(n, p.n);
    cr_assert_eq(memcmp(back, p.b, n), 0);
}

/* ---- framing ---- */

typedef struct frames {
    int packets, invalid;
    uint8_t last[512];
    size_t last_len;
} frames;

static void on_packet(void *ctx, const uint8_t *d, size_t n) {
    frames *f = ctx;
    f->packets++;
    memcpy(f->last, d, n);
    f->last_len = n;
}

static void on_invalid(void *ctx, const char *reason) {
    frames *f = ctx;
    (void)reason;
    f->invalid++;
}

Test(osc_codec, framing_round_trips_byte_by_byte) {
    uint8_t packet[12] = {'/', 'a', 0, 0, ',', 'i', 0, 0, 0xC0, 0xDB, 0xC0, 0x01};
    for (int framing = 0; framing < 2; framing++) {
        uint8_t wire[64];
        size_t n =
            o2h_osc_frame_encode((osc_framing)framing, packet, sizeof packet, wire, sizeof wire);
        cr_assert_eq(n, framing == OSC_FRAMING_LENGTH ? 16u : 12u + 2u + 3u);
        osc_deframer d;
        o2h_osc_deframer_init(&d, (osc_framing)framing, 1024);
        frames f = {0};
        osc_deframer_cb cb = {on_packet, on_invalid, &f};
        for (int round = 0; round < 2; round++)
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(o2h_osc_deframer_feed(&d, wire + i, 1, &cb), 0);
        cr_assert_eq(f.packets, 2);
        cr_assert_eq(f.last_len, sizeof packet);
        cr_assert_eq(memcmp(f.last, packet, sizeof packet), 0);
        o2h_osc_deframer_free(&d);
    }
}

Test(osc_codec, bad_frames_are_reported) {
    osc_deframer d;
    frames f = {0};
    osc_deframer_cb cb = {on_packet, on_invalid, &f};
    o2h_osc_deframer_init(&d, OSC_FRAMING_LENGTH, 64);
    uint8_t big[4] = {0, 0, 1, 0}; /* 256 > 64: the stream cannot go on */
    cr_assert_eq(o2h_osc_deframer_feed(&d, big, 4, &cb), -1);
    cr_assert_eq(f.invalid, 1);
    o2h_osc_deframer_free(&d);
    o2h_osc_deframer_init(&d, OSC_FRAMING_SLIP, 8);
    uint8_t wire[] = {0xC0, 'x', 0xDB, 'q', 0xC0,                      /* bad escape: dropped */
                      0xC0, 1,   2,    3,   4,    5, 6, 7, 8, 9, 0xC0, /* too long: dropped */
                      0xC0, 'o', 'k',  0xC0};
    cr_assert_eq(o2h_osc_deframer_feed(&d, wire, sizeof wire, &cb), 0);
    cr_assert_eq(f.invalid, 3);
    cr_assert_eq(f.packets, 1);
    cr_assert_eq(f.last_len, 2u);
    o2h_osc_deframer_free(&d);
}

/* ---- mutations: the parser never reads outside its input (ASan checks the reads) ---- */

static int convert_and_check(void *ctx, const osc_view *m, uint64_t tag) {
    (void)ctx;
    uint8_t out[8192];
    size_t n = o2h_osc_to_o2(m, "svc", 0, 0, &clock100, out, sizeof out);
    cr_assert_leq(n, sizeof out);
    o2h_msg_error why;
    cr_assert_eq(o2h_msg_validate(out, n, &why), O2H_OK, "%s", why.reason);
    (void)tag;
    return 0;
}

Test(osc_codec, mutated_packets_never_crash_and_valid_ones_convert) {
    pkt seeds[3] = {0};
    all_types(&seeds[0]);
    nested(&seeds[1], 3, 77);
    p_str(&seeds[2], "#bundle");
    p_u64(&seeds[2], 1);
    p_u32(&seeds[2], (uint32_t)seeds[0].n);
    p_bytes(&seeds[2], seeds[0].b, seeds[0].n);
    unsigned state = 12345;
    int valid = 0;
    for (int iter = 0; iter < 200000; iter++) {
        const pkt *seed = &seeds[iter % 3];
        size_t n = seed->n;
        uint8_t *buf = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
        memcpy(buf, seed->b, n);
        for (int k = 0; k < 1 + iter % 4; k++) {
            state = state * 1103515245u + 12345u;
            size_t at = (state >> 8) % n;
            buf[at] = (uint8_t)(state >> 20);
        }
        state = state * 1103515245u + 12345u;
        size_t len = (state >> 16) % 4 == 0 ? (state >> 4) % (n + 1) : n;
        if (o2h_osc_parse(buf, len, convert_and_check, NULL, NULL) == 0) valid++;
        free(buf);
    }
    cr_assert_gt(valid, 0, "some mutations stay valid");
}

/* Found by fuzz_osc (UBSan): a zero length prefix before any packet used the
 * unallocated buffer. It is skipped; the next packet still arrives. */
Test(osc_codec, a_zero_length_frame_is_skipped) {
    osc_deframer d;
    frames f = {0};
    osc_deframer_cb cb = {on_packet, on_invalid, &f};
    o2h_osc_deframer_init(&d, OSC_FRAMING_LENGTH, 64);
    uint8_t wire[] = {0, 0, 0, 0, 0, 0, 0, 8, '/', 'a', 0, 0, ',', 0, 0, 0};
    cr_assert_eq(o2h_osc_deframer_feed(&d, wire, sizeof wire, &cb), 0);
    cr_assert_eq(f.packets, 1);
    cr_assert_eq(f.last_len, 8);
    o2h_osc_deframer_free(&d);
}
