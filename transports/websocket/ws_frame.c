/* RFC 6455 framing: pure functions (see ws_frame.h). */
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

ws_parse_result ws_frame_parse(const uint8_t *buf, size_t len, uint64_t max_payload,
                               bool require_mask, ws_frame *out, uint16_t *close_code) {
    if (len < 2) return WS_PARSE_MORE;
    ws_frame f = {0};
    f.fin = (buf[0] & 0x80) != 0;
    f.rsv = (uint8_t)((buf[0] >> 4) & 0x7);
    f.opcode = buf[0] & 0x0f;
    f.masked = (buf[1] & 0x80) != 0;
    uint64_t plen = buf[1] & 0x7f;
    size_t hlen = 2;
    if (plen == 126) {
        hlen = 4;
    } else if (plen == 127) {
        hlen = 10;
    }
    if (f.masked) hlen += 4;
    /* Errors visible in the first two bytes come first, whatever follows. */
    bool control = (f.opcode & 0x8) != 0;
    bool known = f.opcode <= WS_OP_BINARY || (f.opcode >= WS_OP_CLOSE && f.opcode <= WS_OP_PONG);
    if (f.rsv || !known || (require_mask && !f.masked) || (control && (!f.fin || plen > 125))) {
        *close_code = WS_CLOSE_PROTOCOL;
        return WS_PARSE_ERROR;
    }
    /* The length comes before the mask key: check it as soon as it is in. */
    if (len < hlen - (f.masked ? 4 : 0)) return WS_PARSE_MORE;
    if (plen == 126) {
        plen = (uint64_t)buf[2] << 8 | buf[3];
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        if (plen >> 63) {
            *close_code = WS_CLOSE_PROTOCOL;
            return WS_PARSE_ERROR;
        }
    }
    if (plen > max_payload) {
        *close_code = WS_CLOSE_TOO_BIG;
        return WS_PARSE_ERROR;
    }
    if (len < hlen) return WS_PARSE_MORE;
    if (f.masked) memcpy(f.mask, buf + hlen - 4, 4);
    f.payload_len = plen;
    f.header_len = hlen;
    *out = f;
    return len - hlen >= plen ? WS_PARSE_FRAME : WS_PARSE_MORE;
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset) {
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(i + offset) & 3];
}

bool ws_utf8_valid(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= need) return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += need + 1;
    }
    return true;
}

size_t ws_frame_header(uint8_t *out, uint8_t opcode, uint64_t payload_len) {
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

bool ws_close_code_valid(uint16_t code) {
    if (code >= 3000 && code <= 4999) return true;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011);
}

/* ---- decoder ---- */

void ws_decoder_init(ws_decoder *d, uint64_t max_message, bool require_mask) {
    memset(d, 0, sizeof *d);
    d->max_message = max_message;
    d->require_mask = require_mask;
}

void ws_decoder_free(ws_decoder *d) {
    free(d->frag);
    d->frag = NULL;
    d->frag_len = d->frag_cap = 0;
    d->fragmented = false;
}

static ws_event fail(ws_decoder *d, uint16_t code) {
    d->failed = true;
    d->fail_code = code;
    return (ws_event){.kind = WS_EV_ERROR, .code = code};
}

static bool frag_append(ws_decoder *d, const uint8_t *p, size_t n) {
    if (n == 0) return true; /* an empty fragment: the buffer may not exist yet */
    if (d->frag_len + n > d->frag_cap) {
        size_t cap = d->frag_cap ? d->frag_cap : 256;
        while (cap < d->frag_len + n)
            cap *= 2;
        uint8_t *q = realloc(d->frag, cap);
        if (!q) return false;
        d->frag = q;
        d->frag_cap = cap;
    }
    memcpy(d->frag + d->frag_len, p, n);
    d->frag_len += n;
    return true;
}

static ws_event message(ws_decoder *d, uint8_t opcode, const uint8_t *p, size_t n) {
    if (opcode == WS_OP_TEXT && !ws_utf8_valid(p, n)) return fail(d, WS_CLOSE_BAD_DATA);
    return (ws_event){.kind = WS_EV_MESSAGE, .opcode = opcode, .data = p, .len = n};
}

static ws_event control(ws_decoder *d, const ws_frame *f, const uint8_t *p, size_t n) {
    if (f->opcode == WS_OP_PING) return (ws_event){.kind = WS_EV_PING, .data = p, .len = n};
    if (f->opcode == WS_OP_PONG) return (ws_event){.kind = WS_EV_PONG, .data = p, .len = n};
    /* close: no body, or a valid code and a UTF-8 reason */
    if (n == 0) return (ws_event){.kind = WS_EV_CLOSE, .code = WS_CLOSE_NO_STATUS};
    if (n == 1) return fail(d, WS_CLOSE_PROTOCOL);
    uint16_t code = (uint16_t)(p[0] << 8 | p[1]);
    if (!ws_close_code_valid(code)) return fail(d, WS_CLOSE_PROTOCOL);
    if (!ws_utf8_valid(p + 2, n - 2)) return fail(d, WS_CLOSE_BAD_DATA);
    return (ws_event){.kind = WS_EV_CLOSE, .code = code, .data = p + 2, .len = n - 2};
}

ws_event ws_decoder_next(ws_decoder *d, uint8_t *buf, size_t len, size_t *consumed) {
    *consumed = 0;
    if (d->failed) return (ws_event){.kind = WS_EV_ERROR, .code = d->fail_code};
    for (;;) {
        ws_frame f;
        uint16_t code = 0;
        ws_parse_result pr = ws_frame_parse(buf + *consumed, len - *consumed, d->max_message,
                                            d->require_mask, &f, &code);
        if (pr == WS_PARSE_MORE) return (ws_event){.kind = WS_EV_NONE};
        if (pr == WS_PARSE_ERROR) return fail(d, code);
        uint8_t *p = buf + *consumed + f.header_len;
        size_t n = (size_t)f.payload_len;
        *consumed += f.header_len + n;
        if (f.masked) ws_unmask(p, n, f.mask, 0);
        if (f.opcode & 0x8) return control(d, &f, p, n);
        if (f.opcode == WS_OP_CONT) {
            if (!d->fragmented) return fail(d, WS_CLOSE_PROTOCOL);
            if (d->frag_len + n > d->max_message) return fail(d, WS_CLOSE_TOO_BIG);
            if (!frag_append(d, p, n)) return fail(d, WS_CLOSE_INTERNAL);
            if (!f.fin) continue;
            d->fragmented = false;
            size_t total = d->frag_len;
            d->frag_len = 0; /* the data stays in d->frag until the next call */
            return message(d, d->frag_opcode, d->frag, total);
        }
        /* a new text or binary message */
        if (d->fragmented) return fail(d, WS_CLOSE_PROTOCOL);
        if (f.fin) return message(d, f.opcode, p, n);
        d->fragmented = true;
        d->frag_opcode = f.opcode;
        d->frag_len = 0;
        if (!frag_append(d, p, n)) return fail(d, WS_CLOSE_INTERNAL);
    }
}
