/*
 * The O2ws text form of a message (docs/websocket.md#o2ws), both directions:
 *
 *     address ETX types ETX time ETX T|F ETX {value ETX}*
 *
 * ETX is the byte 0x03; every field ends with one; `types` has no comma;
 * T means reliable (O2's TCP flag). o2ws_split() is pure; the conversions
 * use the host table's builder and reader.
 */
#ifndef O2H_O2WS_CODEC_H
#define O2H_O2WS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <o2hub/plugin.h>

#define O2WS_ETX '\003'
#define O2WS_MAX_FIELDS 4096

/**
 * Split `text` in place into ETX-terminated fields (each ETX becomes a NUL).
 * Returns the number of fields, or -1 if the text does not end with ETX,
 * contains a NUL byte, or has more than `max` fields.
 */
int o2ws_split(char *text, size_t len, char **fields, int max);

/** A growable byte buffer. */
typedef struct o2ws_buf {
    uint8_t *data;
    size_t len, cap;
} o2ws_buf;

int o2ws_buf_reserve(o2ws_buf *b, size_t more);
int o2ws_buf_append(o2ws_buf *b, const void *p, size_t n);
void o2ws_buf_free(o2ws_buf *b);

/** Format a timestamp as O2 does (".3f" and more digits, trailing zeros and '.' cut). */
void o2ws_format_time(char *out, size_t size, double t);

/**
 * Build the O2 message for split fields (n >= 4: address, types, time,
 * T|F, then one value per type). Values: i h (integers; a fraction is cut),
 * f d t (numbers), B T F (true/false/1/0), N I (ignored), s S and any other
 * type code as a string, as O2 does. Returns NULL (with *why set) if the
 * fields do not fit the types or a number does not parse.
 */
o2h_msg *o2ws_to_msg(const o2h_host *host, o2h_builder *b, char *const *fields, int n,
                     const char **why);

/**
 * Append the text form of `msg` to `out`. Strings are sent as UTF-8 text:
 * an ETX or a byte of an invalid UTF-8 sequence becomes '?'. Blobs, vectors
 * and arrays are sent as "?" fields (as O2 does for types it cannot print).
 * Returns O2H_OK, O2H_BAD_TYPE (a bundle) or O2H_NO_MEMORY.
 */
int o2ws_from_msg(const o2h_host *host, const o2h_msg *msg, o2ws_buf *out);

#endif
