/*
 * libFuzzer target: what a browser or an attacker sends the websocket
 * transport. The first byte picks the path:
 *   0: a WebSocket byte stream through the frame decoder, fed in uneven
 *      chunks; every text message is split into O2ws fields, converted to
 *      an O2 message (which must then validate) and back to O2ws text;
 *   1: an HTTP request path through the resolver: an accepted path must
 *      stay below the root (no "..", no absolute path, no backslash).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/msg.h>

#include "http_path.h"
#include "loader.h"
#include "o2ws_codec.h"
#include "ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void o2ws_round_trip(const uint8_t *text, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy) return;
    if (len) memcpy(copy, text, len); /* an empty message has no data pointer */
    copy[len] = '\0';
    char *fields[64];
    int n = o2ws_split(copy, len, fields, 64);
    if (n >= 4) {
        const o2h_host *h = o2h__host_table();
        o2h_builder *b = o2h_builder_new(NULL);
        const char *why = NULL;
        o2h_msg *m = o2ws_to_msg(h, b, fields, n, &why);
        if (m) {
            if (o2h_msg_validate(m->data, m->length, NULL) != O2H_OK) abort();
            o2ws_buf out = {0};
            o2ws_from_msg(h, m, &out);
            o2ws_buf_free(&out);
            o2h_msg_unref(m);
        }
        o2h_builder_free(b);
    }
    free(copy);
}

static void frames(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1); /* the decoder unmasks in place */
    if (!buf) return;
    memcpy(buf, data, size);
    ws_decoder d;
    ws_decoder_init(&d, 1 << 16, true);
    size_t at = 0, step = 1;
    while (at < size) {
        size_t avail = size - at < step ? size - at : step;
        size_t used = 0;
        ws_event ev = ws_decoder_next(&d, buf + at, avail, &used);
        if (ev.kind == WS_EV_ERROR || ev.kind == WS_EV_CLOSE) break;
        if (ev.kind == WS_EV_MESSAGE && ev.opcode == WS_OP_TEXT) o2ws_round_trip(ev.data, ev.len);
        if (used == 0) {
            if (avail == size - at) break; /* needs bytes that will never come */
            step = step * 2 + 1;           /* offer more at once */
            continue;
        }
        at += used;
    }
    ws_decoder_free(&d);
    free(buf);
}

static void path(const uint8_t *data, size_t size) {
    char url[512], out[256];
    size_t n = size < sizeof url - 1 ? size : sizeof url - 1;
    memcpy(url, data, n);
    url[n] = '\0';
    if (http_resolve_path(url, out, sizeof out) != 200) return;
    if (out[0] == '/' || strchr(out, '\\')) abort();
    for (const char *seg = out; seg; seg = strchr(seg, '/'), seg = seg ? seg + 1 : NULL)
        if (seg[0] == '.') abort(); /* "..", and every dot segment, refused */
    http_mime_type(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1)
        path(data + 1, size - 1);
    else
        frames(data + 1, size - 1);
    return 0;
}
