#include "text_out.h"

#include <stdarg.h>
#include <stdio.h>

void o2h__text_put(o2h__text_out *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *at = o->len < o->size ? o->buf + o->len : NULL;
    int n = vsnprintf(at, at ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0) o->len += (size_t)n;
}
