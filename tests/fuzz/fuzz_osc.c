/*
 * libFuzzer target: untrusted OSC from the network. The first byte picks the
 * path: a UDP packet (parse), or a TCP stream with length or SLIP framing
 * fed in uneven chunks. Every message the parser accepts is converted to O2,
 * which must then pass the core's validator, and back to OSC.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/msg.h>

#include "osc_codec.h"
#include "osc_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t o2buf[1 << 17], oscbuf[1 << 17];

static int visit(void *ctx, const osc_view *m, uint64_t timetag) {
    (void)ctx;
    osc_clock clock = {.synced = true, .o2_now = 100.0, .ntp_now = (3900000000ull << 32)};
    double when = timetag == OSC_IMMEDIATELY ? 0 : o2h_osc_ntp_to_o2(&clock, timetag);
    size_t n = o2h_osc_to_o2(m, "svc", when < 0 ? 0 : when, 1, &clock, o2buf, sizeof o2buf);
    if (n == 0 || n > sizeof o2buf) return 0; /* refused (too big or unconvertible) */
    o2h_msg_error err;
    if (o2h_msg_validate(o2buf, n, &err) != O2H_OK) abort(); /* conversion made bad O2 */
    o2h_osc_from_o2(o2buf, n, &clock, oscbuf, sizeof oscbuf);
    return 0;
}

static void packet(void *ctx, const uint8_t *p, size_t len) {
    osc_error err;
    o2h_osc_parse(p, len, visit, ctx, &err);
}

static void invalid(void *ctx, const char *reason) {
    (void)ctx;
    (void)reason;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        packet(NULL, data, size);
        return 0;
    }
    osc_deframer d;
    o2h_osc_deframer_init(&d, mode == 1 ? OSC_FRAMING_LENGTH : OSC_FRAMING_SLIP, 1 << 16);
    osc_deframer_cb cb = {.packet = packet, .invalid = invalid};
    size_t at = 0, step = 1;
    while (at < size) {
        size_t n = size - at < step ? size - at : step;
        if (o2h_osc_deframer_feed(&d, data + at, n, &cb) != 0) break;
        at += n;
        step = step * 3 % 61 + 1; /* uneven chunks */
    }
    o2h_osc_deframer_free(&d);
    return 0;
}
