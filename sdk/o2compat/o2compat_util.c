/* Small pieces of the classic O2 API, and helpers its files share. */
#include "o2compat_internal.h"

/* o2hub's codes -1..-21 are O2's; its own (-100 and below) become the nearest O2 code. */
O2err o2c__err_of(int rc) {
    if (rc <= 0 && rc >= O2_INTERRUPT_REQUESTED) return (O2err)rc;
    if (rc == O2H_QUEUE_FULL || rc == O2H_BLOCKED) return O2_BLOCKED;
    if (rc == O2H_TOO_LARGE) return O2_BAD_ARGS;
    return O2_FAIL;
}

void o2_sleep(int n) {
    if (n <= 0) return;
    struct timespec ts = {.tv_sec = n / 1000, .tv_nsec = (long)(n % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

const char *o2_next_o2string(const char *str) {
    while (str[3])
        str += 4;
    return str + 4;
}

bool *o2_stop_flag_ptr(void) {
    return &o2c__ctx()->stop_flag;
}

const char *o2_ensemble_name_get(void) {
    return o2c__the && o2c__the->r ? o2c__the->ensemble : NULL;
}

O2arg_ptr o2_array_token(int end) {
    static const O2arg tokens[2]; /* read-only: only their addresses matter */
    return (O2arg_ptr)(uintptr_t)&tokens[end ? 1 : 0];
}

O2sched_ptr o2_sched_get(int which) {
    static const O2sched scheds[2] = {{0}, {1}}; /* read-only tags */
    return (O2sched_ptr)(uintptr_t)&scheds[which ? 1 : 0];
}

void *o2c__grow(void *p, size_t *cap, size_t need) {
    if (need <= *cap) return p;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(p, n);
    if (!q) return NULL;
    *cap = n;
    return q;
}

/* 8-byte aligned space from an arena sized beforehand (never reallocated while in use). */
void *o2c__arena_take(uint8_t *arena, size_t cap, size_t *used, size_t size) {
    size_t at = (*used + 7u) & ~(size_t)7u;
    if (at + size > cap) return NULL;
    *used = at + size;
    return arena + at;
}

void o2c__append_json_string(char *buf, size_t size, const char *s) {
    size_t n = strlen(buf);
    if (n + 1 < size) buf[n++] = '"';
    for (; s && *s && n + 8 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(buf + n, size - n, "\\u%04x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    if (n + 1 < size) buf[n++] = '"';
    buf[n < size ? n : size - 1] = '\0';
}
