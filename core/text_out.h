/*
 * Text written as snprintf writes it: into a buffer of `size` bytes, always
 * counting the whole length (`len`), so a caller can size its buffer from a
 * first call with size 0 (o2h_msg_format, o2h_router_stats_text).
 */
#ifndef O2H_TEXT_OUT_H
#define O2H_TEXT_OUT_H

#include <stddef.h>

#include "o2hub/types.h"

typedef struct o2h__text_out {
    char *buf;
    size_t size;
    size_t len; /* the whole text so far, written or not */
} o2h__text_out;

void o2h__text_put(o2h__text_out *o, const char *fmt, ...) O2H_PRINTF(2, 3);

#endif
