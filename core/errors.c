#include <stdio.h>

#include "o2hub/types.h"

const char *o2h_strerror(int code) {
#define STRERROR_CASE_(name, value, text)                                                          \
    case value: return "O2H_" #name ": " text;
    switch (code) {
        O2H_ERRORS(STRERROR_CASE_)
    default: return "unknown error code";
    }
#undef STRERROR_CASE_
}

const char *o2h_err_name(int code) {
#define NAME_CASE_(name, value, text)                                                              \
    case value: return "O2H_" #name;
    switch (code) {
        O2H_ERRORS(NAME_CASE_)
    default: return NULL;
    }
#undef NAME_CASE_
}

const char *o2h_error_format(const o2h_error *err, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    int n = 0;
    if (err->file[0]) {
        if (err->line > 0)
            n = snprintf(buf, size, "%s:%d:%d: ", err->file, err->line, err->column);
        else
            n = snprintf(buf, size, "%s: ", err->file);
    }
    if (n >= 0 && (size_t)n < size && err->key_path[0])
        n += snprintf(buf + n, size - (size_t)n, "%s: ", err->key_path);
    if (n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "%s",
                 err->message[0] ? err->message : o2h_strerror(err->code));
    return buf;
}
