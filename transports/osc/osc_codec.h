/*
 * OSC packets: parsing, conversion to O2 messages and back, NTP timetags.
 *
 * Everything here is a pure function over bytes (no sockets, no host table,
 * no global state), so the parser can be driven directly by a fuzzer:
 * o2h_osc_parse never reads outside [data, data + len) and rejects what OSC 1.0
 * does not allow (bad padding, unterminated strings, arguments or bundle
 * elements running past the end, unknown type tags, bundles nested deeper
 * than OSC_MAX_DEPTH).
 */
#ifndef O2H_OSC_CODEC_H
#define O2H_OSC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Deepest bundle nesting accepted (a bundle inside a bundle is depth 2). */
#define OSC_MAX_DEPTH 8
/** The NTP timetag that means "immediately". */
#define OSC_IMMEDIATELY 1ull
/** Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch). */
#define OSC_NTP_UNIX_OFFSET 2208988800ull

/** Returned by o2h_osc_parse for malformed input. */
#define OSC_INVALID (-1)

/** One OSC message inside a packet, pointing into the parsed bytes. */
typedef struct osc_view {
    const char *address; /**< NUL-terminated, starts with '/' */
    const char *types;   /**< type tags without ',', NUL-terminated ("" when absent) */
    const uint8_t *args; /**< the argument bytes */
    size_t args_len;     /**< up to the end of the message */
    size_t size;         /**< the whole message's length in the packet */
} osc_view;

typedef struct osc_error {
    size_t offset;      /**< where in the packet the problem is */
    const char *reason; /**< a static string */
} osc_error;

/** Called for each message of a valid packet with its effective timetag. */
typedef int (*osc_visit_fn)(void *ctx, const osc_view *msg, uint64_t timetag);

/**
 * Check a whole OSC packet (a message or a bundle, bundles nested up to
 * OSC_MAX_DEPTH) and, only if all of it is valid, call `visit` (may be
 * NULL) for every message in order. A message outside any bundle has the
 * timetag OSC_IMMEDIATELY; inside bundles it has the latest timetag of its
 * enclosing bundles (a nested bundle is never earlier than its parent).
 * Returns 0, OSC_INVALID (with `err` filled when not NULL; nothing visited),
 * or the first non-zero value `visit` returned (the walk stops there).
 */
int o2h_osc_parse(const uint8_t *data, size_t len, osc_visit_fn visit, void *ctx, osc_error *err);

/**
 * The mapping between NTP timetags and O2 time at one instant: `ntp_now`
 * (wall clock as an NTP timetag) is the same instant as `o2_now` seconds.
 * `synced` tells whether O2 time is known; when it is not, timestamps mean
 * "immediately" and `o2_now` is the router's local time (used only to
 * convert 't' arguments).
 */
typedef struct osc_clock {
    bool synced;
    double o2_now;
    uint64_t ntp_now;
} osc_clock;

/** The wall clock now as an NTP timetag. */
uint64_t o2h_osc_ntp_now(void);

/** A timetag in O2 time (or local time): OSC_IMMEDIATELY and 0 give 0, results <= 0 give 0. */
double o2h_osc_ntp_to_o2(const osc_clock *c, uint64_t tag);

/** O2 time (or local time) as a timetag: values <= 0 give OSC_IMMEDIATELY. */
uint64_t o2h_osc_o2_to_ntp(const osc_clock *c, double t);

/**
 * Build the O2 message for OSC message `m` (from o2h_osc_parse) delivered to
 * `service`: address "/service" + the OSC address ("/" alone gives
 * "/service"), misc `misc`, timestamp `timestamp`, type tags and arguments
 * copied with 't' timetags converted to O2 time (o2h_osc_ntp_to_o2). Writes at
 * most `cap` bytes to `out` and returns the message's length: if that is
 * more than `cap`, nothing usable was written (call again with more room).
 */
size_t o2h_osc_to_o2(const osc_view *m, const char *service, double timestamp, uint32_t misc,
                     const osc_clock *c, uint8_t *out, size_t cap);

/**
 * Encode an O2 message (wire bytes from misc, `len` bytes, already checked
 * by o2h_msg_validate) as an OSC packet, as O2 does for a delegated
 * service: the address loses its service ("/S/a/b" and "!S/a/b" give
 * "/a/b", "/S" gives "/"); 't' arguments become NTP timetags, 'B' becomes
 * 'T' or 'F', a vector becomes an array of its elements; an O2 bundle
 * becomes an OSC bundle (elements never earlier than their parent, as liblo
 * wants). When `c->synced`, a message stamped later than `c->o2_now` is
 * wrapped in a bundle with its timetag; otherwise it is a plain message.
 * Returns the packet's length (bytes written only if it is <= `cap`), or 0
 * if the message cannot be encoded.
 */
size_t o2h_osc_from_o2(const uint8_t *o2, size_t len, const osc_clock *c, uint8_t *out, size_t cap);

#endif
