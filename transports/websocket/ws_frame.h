/*
 * RFC 6455 framing as pure functions: bytes in, results out, no I/O and no
 * allocation outside the decoder's own message buffer, so a fuzzer can call
 * them directly.
 *
 * ws_frame_parse() reads one frame header and says whether the whole frame
 * is in the buffer. ws_decoder_next() runs a stream of client frames through
 * the protocol rules (masking, control frames, fragmentation, UTF-8 of text,
 * close codes, the size limit) and returns one event at a time.
 */
#ifndef O2H_WS_FRAME_H
#define O2H_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 §7.4.1). */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never sent: "the close frame had no code" */
    WS_CLOSE_BAD_DATA = 1007,  /* e.g. invalid UTF-8 in a text message */
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

/* The longest close reason: a control frame's 125 bytes less the 2-byte code. */
#define WS_CLOSE_REASON_MAX 123

typedef struct ws_frame {
    bool fin;
    uint8_t rsv; /* RSV1..3 as bits 2..0 */
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len; /* 2 to 14 */
} ws_frame;

typedef enum ws_parse_result {
    WS_PARSE_MORE = 0,  /* not enough bytes yet */
    WS_PARSE_FRAME = 1, /* header and the whole payload are in the buffer */
    WS_PARSE_ERROR = 2, /* *close_code says why (1002 or 1009) */
} ws_parse_result;

/**
 * Parse the frame at `buf`. Header errors are reported as soon as the header
 * is complete, before its payload arrives: reserved bits or opcodes (1002),
 * an unmasked frame when `require_mask` (1002), a fragmented or long control
 * frame (1002), a 64-bit length with the top bit set (1002), a payload over
 * `max_payload` (1009).
 */
ws_parse_result ws_frame_parse(const uint8_t *buf, size_t len, uint64_t max_payload,
                               bool require_mask, ws_frame *out, uint16_t *close_code);

/** XOR `n` bytes with the mask, starting at mask position `offset` (mod 4). */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset);

/** Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). */
bool ws_utf8_valid(const uint8_t *p, size_t n);

/**
 * Write the header of an unmasked server frame with FIN set; returns its
 * length (2, 4 or 10). `out` needs 10 bytes.
 */
size_t ws_frame_header(uint8_t *out, uint8_t opcode, uint64_t payload_len);

/** Whether a code received in a close frame is allowed there (§7.4). */
bool ws_close_code_valid(uint16_t code);

/* ---- the stream decoder ------------------------------------------------- */

typedef enum ws_event_kind {
    WS_EV_NONE = 0, /* need more bytes */
    WS_EV_MESSAGE,  /* a whole text or binary message */
    WS_EV_PING,
    WS_EV_PONG,
    WS_EV_CLOSE, /* the peer closes: code (1005 when absent) and reason */
    WS_EV_ERROR, /* protocol error: close with `code` */
} ws_event_kind;

typedef struct ws_event {
    ws_event_kind kind;
    uint8_t opcode;      /* WS_EV_MESSAGE: WS_OP_TEXT or WS_OP_BINARY */
    const uint8_t *data; /* payload (points into the input or the decoder) */
    size_t len;
    uint16_t code; /* WS_EV_CLOSE, WS_EV_ERROR */
} ws_event;

typedef struct ws_decoder {
    uint64_t max_message; /* largest frame payload and assembled message */
    bool require_mask;    /* true on a server: clients must mask */
    /* a fragmented message being assembled */
    bool fragmented;
    uint8_t frag_opcode;
    uint8_t *frag;
    size_t frag_len, frag_cap;
    bool failed; /* after an error every call returns the same error */
    uint16_t fail_code;
} ws_decoder;

void ws_decoder_init(ws_decoder *d, uint64_t max_message, bool require_mask);
void ws_decoder_free(ws_decoder *d);

/**
 * Decode the next event from `buf` (`len` bytes, writable: payloads are
 * unmasked in place). *consumed is set to the bytes used; call again with
 * the rest until WS_EV_NONE. Event data stays valid until the next call or
 * until the buffer changes.
 */
ws_event ws_decoder_next(ws_decoder *d, uint8_t *buf, size_t len, size_t *consumed);

#endif
