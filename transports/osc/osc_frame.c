/* Stream framing for OSC over TCP: length prefixes (OSC 1.0) and SLIP (OSC 1.1). */
#include "osc_frame.h"

#include <stdlib.h>
#include <string.h>

size_t o2h_osc_frame_encode(osc_framing framing, const uint8_t *packet, size_t len, uint8_t *out,
                            size_t cap) {
    if (framing == OSC_FRAMING_LENGTH) {
        if (len + 4 <= cap) {
            out[0] = (uint8_t)(len >> 24);
            out[1] = (uint8_t)(len >> 16);
            out[2] = (uint8_t)(len >> 8);
            out[3] = (uint8_t)len;
            memcpy(out + 4, packet, len);
        }
        return len + 4;
    }
    size_t need = 2;
    for (size_t i = 0; i < len; i++)
        need += (packet[i] == OSC_SLIP_END || packet[i] == OSC_SLIP_ESC) ? 2 : 1;
    if (need > cap) return need;
    size_t k = 0;
    out[k++] = OSC_SLIP_END;
    for (size_t i = 0; i < len; i++) {
        if (packet[i] == OSC_SLIP_END) {
            out[k++] = OSC_SLIP_ESC;
            out[k++] = OSC_SLIP_ESC_END;
        } else if (packet[i] == OSC_SLIP_ESC) {
            out[k++] = OSC_SLIP_ESC;
            out[k++] = OSC_SLIP_ESC_ESC;
        } else {
            out[k++] = packet[i];
        }
    }
    out[k++] = OSC_SLIP_END;
    return k;
}

void o2h_osc_deframer_init(osc_deframer *d, osc_framing framing, size_t max) {
    memset(d, 0, sizeof *d);
    d->framing = framing;
    d->max = max;
}

void o2h_osc_deframer_free(osc_deframer *d) {
    free(d->buf);
    d->buf = NULL;
    d->cap = d->len = 0;
}

static bool reserve(osc_deframer *d, size_t need) {
    if (need <= d->cap) return true;
    size_t cap = d->cap ? d->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > d->max) cap = d->max;
    uint8_t *b = realloc(d->buf, cap);
    if (!b) return false;
    d->buf = b;
    d->cap = cap;
    return true;
}

static int feed_length(osc_deframer *d, const uint8_t *p, size_t n, const osc_deframer_cb *cb) {
    while (n > 0) {
        if (d->hdr_got < 4) {
            d->hdr[d->hdr_got++] = *p++;
            n--;
            if (d->hdr_got < 4) continue;
            d->want = ((uint32_t)d->hdr[0] << 24) | ((uint32_t)d->hdr[1] << 16) |
                      ((uint32_t)d->hdr[2] << 8) | d->hdr[3];
            if (d->want > d->max) {
                cb->invalid(cb->ctx, "OSC length prefix over the size limit");
                return -1;
            }
            if (!reserve(d, d->want)) return -1;
            d->len = 0;
        }
        size_t k = d->want - d->len < n ? d->want - d->len : n;
        if (k > 0) { /* a zero-length packet has no buffer yet */
            memcpy(d->buf + d->len, p, k);
            d->len += k;
            p += k;
            n -= k;
        }
        if (d->len == d->want) {
            d->hdr_got = 0;
            if (d->want > 0) cb->packet(cb->ctx, d->buf, d->len);
        }
    }
    return 0;
}

static int feed_slip(osc_deframer *d, const uint8_t *p, size_t n, const osc_deframer_cb *cb) {
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (b == OSC_SLIP_END) {
            if (d->len > 0 && !d->skipping) cb->packet(cb->ctx, d->buf, d->len);
            d->len = 0;
            d->escaped = d->skipping = false;
            continue;
        }
        if (d->skipping) continue;
        if (d->escaped) {
            d->escaped = false;
            if (b == OSC_SLIP_ESC_END)
                b = OSC_SLIP_END;
            else if (b == OSC_SLIP_ESC_ESC)
                b = OSC_SLIP_ESC;
            else {
                cb->invalid(cb->ctx, "bad SLIP escape");
                d->skipping = true;
                continue;
            }
        } else if (b == OSC_SLIP_ESC) {
            d->escaped = true;
            continue;
        }
        if (d->len >= d->max) {
            cb->invalid(cb->ctx, "SLIP packet over the size limit");
            d->skipping = true;
            continue;
        }
        if (!reserve(d, d->len + 1)) return -1;
        d->buf[d->len++] = b;
    }
    return 0;
}

int o2h_osc_deframer_feed(osc_deframer *d, const uint8_t *data, size_t n,
                          const osc_deframer_cb *cb) {
    return d->framing == OSC_FRAMING_LENGTH ? feed_length(d, data, n, cb)
                                            : feed_slip(d, data, n, cb);
}
