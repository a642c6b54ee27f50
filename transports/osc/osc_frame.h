/*
 * OSC over a byte stream (TCP): OSC 1.0 frames each packet with a 4-byte
 * big-endian length; OSC 1.1 uses SLIP (RFC 1055, with an END byte before
 * and after each packet). Pure functions, no sockets.
 */
#ifndef O2H_OSC_FRAME_H
#define O2H_OSC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum osc_framing {
    OSC_FRAMING_LENGTH = 0, /**< OSC 1.0: int32 length + packet */
    OSC_FRAMING_SLIP = 1,   /**< OSC 1.1: SLIP, END (0xC0) on both sides */
} osc_framing;

#define OSC_SLIP_END 0xC0
#define OSC_SLIP_ESC 0xDB
#define OSC_SLIP_ESC_END 0xDC
#define OSC_SLIP_ESC_ESC 0xDD

/**
 * Frame `len` bytes of `packet` into `out` (at most `cap` bytes written).
 * Returns the framed size; if it is more than `cap` nothing usable was written.
 */
size_t o2h_osc_frame_encode(osc_framing framing, const uint8_t *packet, size_t len, uint8_t *out,
                            size_t cap);

/** What a deframer reports: whole packets, and bytes it had to throw away. */
typedef struct osc_deframer_cb {
    void (*packet)(void *ctx, const uint8_t *data, size_t len);
    void (*invalid)(void *ctx, const char *reason);
    void *ctx;
} osc_deframer_cb;

/** Reassembles packets from a stream; owns a buffer of at most `max` bytes. */
typedef struct osc_deframer {
    osc_framing framing;
    size_t max;
    uint8_t *buf;
    size_t len, cap;
    uint8_t hdr[4];
    uint32_t hdr_got;
    uint32_t want; /* length framing: the packet's length, once hdr is complete */
    bool escaped;  /* SLIP: the last byte was ESC */
    bool skipping; /* SLIP: discarding until the next END (after an error) */
} osc_deframer;

void o2h_osc_deframer_init(osc_deframer *d, osc_framing framing, size_t max);
void o2h_osc_deframer_free(osc_deframer *d);

/**
 * Feed stream bytes. Complete packets go to cb->packet (valid during the
 * call). Returns 0, or -1 when the stream cannot be resynchronised (a length
 * prefix over `max`, or no memory): the caller closes the connection.
 * SLIP errors (bad escape, oversized packet) only drop the packet at hand.
 */
int o2h_osc_deframer_feed(osc_deframer *d, const uint8_t *data, size_t n,
                          const osc_deframer_cb *cb);

#endif
