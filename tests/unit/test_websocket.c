/*
 * The pure parts of the WebSocket transport: frame parser and stream
 * decoder (RFC 6455 rules, close codes), UTF-8 check, frame headers, the
 * HTTP path resolver, MIME types and the O2ws field splitter.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "http_path.h"
#include "o2ws_codec.h"
#include "ws_frame.h"

/* A masked client frame into `out`; returns its length. */
static size_t client_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t n) {
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = ((const uint8_t *)payload)[i] ^ mask[i & 3];
    return h + n;
}

Test(ws_frame, parse_waits_for_the_header_and_payload) {
    uint8_t buf[64];
    size_t n = client_frame(buf, 1, WS_OP_TEXT, "hello", 5);
    ws_frame f;
    uint16_t code = 0;
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(ws_frame_parse(buf, k, 100, true, &f, &code), WS_PARSE_MORE, "at %zu", k);
    cr_assert_eq(ws_frame_parse(buf, n, 100, true, &f, &code), WS_PARSE_FRAME);
    cr_assert(f.fin && f.masked);
    cr_assert_eq(f.opcode, WS_OP_TEXT);
    cr_assert_eq(f.payload_len, 5);
    cr_assert_eq(f.header_len, 6);
}

Test(ws_frame, header_errors_and_codes) {
    struct {
        uint8_t bytes[10];
        size_t n;
        uint16_t code;
    } cases[] = {
        {{0x81, 0x05}, 2, WS_CLOSE_PROTOCOL},                             /* unmasked */
        {{0xc1, 0x85}, 2, WS_CLOSE_PROTOCOL},                             /* RSV1 */
        {{0x83, 0x80}, 2, WS_CLOSE_PROTOCOL},                             /* opcode 3 */
        {{0x8b, 0x80}, 2, WS_CLOSE_PROTOCOL},                             /* opcode 0xB */
        {{0x09, 0x80}, 2, WS_CLOSE_PROTOCOL},                             /* fragmented ping */
        {{0x89, 0xfe, 0x00, 0x7e}, 4, WS_CLOSE_PROTOCOL},                 /* ping of 126 bytes */
        {{0x81, 0xfe, 0x01, 0x01}, 4, WS_CLOSE_TOO_BIG},                  /* 257 > 256 */
        {{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, WS_CLOSE_PROTOCOL}, /* 64-bit top bit */
        {{0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0}, 10, WS_CLOSE_TOO_BIG},     /* 4 GiB */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ws_frame f;
        uint16_t code = 0;
        cr_assert_eq(ws_frame_parse(cases[i].bytes, cases[i].n, 256, true, &f, &code),
                     WS_PARSE_ERROR, "case %zu", i);
        cr_assert_eq(code, cases[i].code, "case %zu: %u", i, code);
    }
    /* unmasked is fine for a client-side parser */
    ws_frame f;
    uint16_t code = 0;
    const uint8_t server[] = {0x81, 0x01, 'x'};
    cr_assert_eq(ws_frame_parse(server, 3, 256, false, &f, &code), WS_PARSE_FRAME);
}

Test(ws_frame, headers_use_the_shortest_length) {
    uint8_t h[10];
    cr_assert_eq(ws_frame_header(h, WS_OP_TEXT, 125), 2);
    cr_assert_eq(h[0], 0x81);
    cr_assert_eq(h[1], 125);
    cr_assert_eq(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    cr_assert_eq(h[1], 126);
    cr_assert_eq(ws_frame_header(h, WS_OP_TEXT, 65535), 4);
    cr_assert_eq(ws_frame_header(h, WS_OP_BINARY, 65536), 10);
    cr_assert_eq(h[1], 127);
    cr_assert_eq(h[7], 1);
}

Test(ws_frame, utf8) {
    cr_assert(ws_utf8_valid((const uint8_t *)"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\xb5", 10));
    cr_assert_not(ws_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong '/' */
    cr_assert_not(ws_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));     /* overlong */
    cr_assert_not(ws_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    cr_assert_not(ws_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    cr_assert_not(ws_utf8_valid((const uint8_t *)"\xc3", 1));             /* cut short */
    cr_assert_not(ws_utf8_valid((const uint8_t *)"\x80", 1));
    cr_assert_not(ws_utf8_valid((const uint8_t *)"\xff", 1));
}

Test(ws_decoder, fragments_with_a_ping_between_and_utf8_split) {
    const char *text = "caf\xc3\xa9 au lait";
    uint8_t buf[256];
    size_t n = client_frame(buf, 0, WS_OP_TEXT, text, 4); /* "caf" + first byte of é */
    n += client_frame(buf + n, 1, WS_OP_PING, "p", 1);
    n += client_frame(buf + n, 1, WS_OP_CONT, text + 4, strlen(text) - 4);
    ws_decoder d;
    ws_decoder_init(&d, 1024, true);
    size_t used, off = 0;
    ws_event ev = ws_decoder_next(&d, buf, n, &used);
    off += used;
    cr_assert_eq(ev.kind, WS_EV_PING);
    cr_assert_eq(ev.len, 1);
    ev = ws_decoder_next(&d, buf + off, n - off, &used);
    off += used;
    cr_assert_eq(ev.kind, WS_EV_MESSAGE);
    cr_assert_eq(ev.opcode, WS_OP_TEXT);
    cr_assert_eq(ev.len, strlen(text));
    cr_assert(memcmp(ev.data, text, ev.len) == 0);
    cr_assert_eq(off, n);
    cr_assert_eq(ws_decoder_next(&d, buf + off, 0, &used).kind, WS_EV_NONE);
    ws_decoder_free(&d);
}

/* Found by fuzz_ws (UBSan): an empty first fragment used the unallocated
 * assembly buffer. The message is still assembled from the later ones. */
Test(ws_decoder, an_empty_first_fragment) {
    uint8_t buf[64];
    size_t n = client_frame(buf, 0, WS_OP_TEXT, "", 0);
    n += client_frame(buf + n, 1, WS_OP_CONT, "ok", 2);
    ws_decoder d;
    ws_decoder_init(&d, 1024, true);
    size_t used, off = 0;
    ws_event ev;
    do {
        ev = ws_decoder_next(&d, buf + off, n - off, &used);
        off += used;
    } while (ev.kind == WS_EV_NONE && used > 0);
    cr_assert_eq(ev.kind, WS_EV_MESSAGE);
    cr_assert_eq(ev.len, 2);
    cr_assert(memcmp(ev.data, "ok", 2) == 0);
    ws_decoder_free(&d);
}

static uint16_t decode_error(const uint8_t *frames, size_t n, uint64_t max) {
    uint8_t copy[512];
    memcpy(copy, frames, n);
    ws_decoder d;
    ws_decoder_init(&d, max, true);
    size_t off = 0, used;
    ws_event ev;
    do {
        ev = ws_decoder_next(&d, copy + off, n - off, &used);
        off += used;
    } while (ev.kind != WS_EV_NONE && ev.kind != WS_EV_ERROR);
    ws_decoder_free(&d);
    return ev.kind == WS_EV_ERROR ? ev.code : 0;
}

Test(ws_decoder, protocol_errors) {
    uint8_t b[512];
    size_t n;
    n = client_frame(b, 1, WS_OP_TEXT, "\xc0\xaf", 2);
    cr_assert_eq(decode_error(b, n, 100), WS_CLOSE_BAD_DATA);
    n = client_frame(b, 1, WS_OP_CONT, "x", 1);
    cr_assert_eq(decode_error(b, n, 100), WS_CLOSE_PROTOCOL);
    n = client_frame(b, 0, WS_OP_TEXT, "x", 1);
    n += client_frame(b + n, 1, WS_OP_TEXT, "y", 1); /* new message inside a fragmented one */
    cr_assert_eq(decode_error(b, n, 100), WS_CLOSE_PROTOCOL);
    n = client_frame(b, 0, WS_OP_TEXT, "0123456789", 10);
    n += client_frame(b + n, 1, WS_OP_CONT, "0123456789", 10);
    cr_assert_eq(decode_error(b, n, 15), WS_CLOSE_TOO_BIG); /* assembled message too big */
    n = client_frame(b, 1, WS_OP_CLOSE, "\x03", 1);         /* one-byte close body */
    cr_assert_eq(decode_error(b, n, 100), WS_CLOSE_PROTOCOL);
    n = client_frame(b, 1, WS_OP_CLOSE, "\x03\xed", 2); /* 1005 may not be sent */
    cr_assert_eq(decode_error(b, n, 100), WS_CLOSE_PROTOCOL);
    n = client_frame(b, 1, WS_OP_CLOSE, "\x03\xe8\xc0", 3); /* reason not UTF-8 */
    cr_assert_eq(decode_error(b, n, 100), WS_CLOSE_BAD_DATA);
}

Test(ws_decoder, close_codes) {
    uint8_t b[64];
    size_t n = client_frame(b, 1, WS_OP_CLOSE,
                            "\x0f\xa0"
                            "bye",
                            5);
    ws_decoder d;
    ws_decoder_init(&d, 100, true);
    size_t used;
    ws_event ev = ws_decoder_next(&d, b, n, &used);
    cr_assert_eq(ev.kind, WS_EV_CLOSE);
    cr_assert_eq(ev.code, 4000);
    cr_assert_eq(ev.len, 3);
    n = client_frame(b, 1, WS_OP_CLOSE, "", 0);
    ev = ws_decoder_next(&d, b, n, &used);
    cr_assert_eq(ev.code, WS_CLOSE_NO_STATUS);
    ws_decoder_free(&d);
}

/* Random bytes never crash the decoder, and it never reads past the buffer
 * (run under ASan in CI). */
Test(ws_decoder, random_input) {
    srand(1234);
    uint8_t *buf = malloc(300);
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand() % 300);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rand();
        if (n && round % 2) buf[0] = (uint8_t)(0x80 | (buf[0] & 0x0f)); /* plausible opcodes */
        if (n > 1 && round % 3) buf[1] |= 0x80;
        ws_decoder d;
        ws_decoder_init(&d, 200, true);
        size_t off = 0, used;
        for (int k = 0; k < 100; k++) {
            ws_event ev = ws_decoder_next(&d, buf + off, n - off, &used);
            off += used;
            cr_assert_leq(off, n);
            if (ev.kind == WS_EV_NONE || ev.kind == WS_EV_ERROR) break;
        }
        ws_decoder_free(&d);
    }
    free(buf);
}

Test(http_path, resolves_and_refuses) {
    struct {
        const char *url;
        int status;
        const char *path;
    } cases[] = {
        {"/", 200, "index.html"},
        {"/a/b.js", 200, "a/b.js"},
        {"/a/", 200, "a/index.html"},
        {"/a%20b.txt?x=1", 200, "a b.txt"},
        {"/./a//b.css#frag", 200, "a/b.css"},
        {"/%41.html", 200, "A.html"},
        {"/../x", 403, NULL},
        {"/a/../../x", 403, NULL},
        {"/%2e%2e/x", 403, NULL},
        {"/%2E%2e/x", 403, NULL},
        {"/.%2e/x", 403, NULL},
        {"/a/%2e%2e", 403, NULL},
        {"/..%2fx", 403, NULL},
        {"/a%2f..%2fx", 403, NULL},
        {"/..\\x", 403, NULL},
        {"/a%5c..%5cx", 403, NULL},
        {"/.git/config", 403, NULL},
        {"/%00", 400, NULL},
        {"/%zz", 400, NULL},
        {"/%2", 400, NULL},
        {"/a\x01", 400, NULL},
        {"x", 400, NULL},
        {"", 400, NULL},
        {"../x", 400, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        int st = http_resolve_path(cases[i].url, out, sizeof out);
        cr_assert_eq(st, cases[i].status, "%s: %d", cases[i].url, st);
        if (cases[i].path) cr_assert_str_eq(out, cases[i].path, "%s", cases[i].url);
    }
    char tiny[8];
    cr_assert_eq(http_resolve_path("/abcdefghij", tiny, sizeof tiny), 414);
    /* "%252e%252e" decodes once, to the file name "%2e%2e": not a parent */
    char out[64];
    cr_assert_eq(http_resolve_path("/%252e%252e/x", out, sizeof out), 200);
    cr_assert_str_eq(out, "%2e%2e/x");
}

Test(http_path, mime_types) {
    cr_assert_str_eq(http_mime_type("a/index.html"), "text/html; charset=utf-8");
    cr_assert_str_eq(http_mime_type("o2ws.js"), "text/javascript; charset=utf-8");
    cr_assert_str_eq(http_mime_type("x.CSS"), "text/css; charset=utf-8");
    cr_assert_str_eq(http_mime_type("x.png"), "image/png");
    cr_assert_str_eq(http_mime_type("x.wasm"), "application/wasm");
    cr_assert_str_eq(http_mime_type("Makefile"), "application/octet-stream");
    cr_assert_str_eq(http_mime_type("dir.js/file"), "application/octet-stream");
    cr_assert_str_eq(http_mime_type(".js"), "application/octet-stream");
}

Test(o2ws, split_fields) {
    char text[] = "/a/b\003is\0030\003T\0031\003x y\003";
    char *f[8];
    cr_assert_eq(o2ws_split(text, sizeof text - 1, f, 8), 6);
    cr_assert_str_eq(f[0], "/a/b");
    cr_assert_str_eq(f[1], "is");
    cr_assert_str_eq(f[5], "x y");
    char no_end[] = "/a\003i\0030\003T\0031";
    cr_assert_eq(o2ws_split(no_end, sizeof no_end - 1, f, 8), -1);
    char nul[] = "/a\003\0\003";
    cr_assert_eq(o2ws_split(nul, sizeof nul - 1, f, 8), -1);
    char many[] = "\003\003\003";
    cr_assert_eq(o2ws_split(many, 3, f, 2), -1);
    char tbuf[32];
    o2ws_format_time(tbuf, sizeof tbuf, 1.5);
    cr_assert_str_eq(tbuf, "1.5");
    o2ws_format_time(tbuf, sizeof tbuf, 0);
    cr_assert_str_eq(tbuf, "0");
    o2ws_format_time(tbuf, sizeof tbuf, 12.000250);
    cr_assert_str_eq(tbuf, "12.00025");
}
