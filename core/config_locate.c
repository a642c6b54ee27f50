/*
 * Recover the line and column of a key path in JSON text. jansson keeps no
 * positions for parsed values, so this small scanner walks the text along
 * the path, only when an error has to be reported. Keys are compared as
 * they are written between quotes (a key written with escapes is not
 * found); keys containing '.' or '[' cannot be named in a path.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"

typedef struct scan {
    const char *p;
    const char *line_start;
    int line;
} scan;

static void skip_ws(scan *s) {
    for (;;) {
        char c = *s->p;
        if (c == '\n') {
            s->line++;
            s->line_start = s->p + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            return;
        }
        s->p++;
    }
}

/* At a '"': move past the closing quote. False if the text ends first. */
static bool skip_string(scan *s) {
    s->p++;
    while (*s->p && *s->p != '"') {
        if (*s->p == '\\' && s->p[1]) s->p++;
        if (*s->p == '\n') return false;
        s->p++;
    }
    if (!*s->p) return false;
    s->p++;
    return true;
}

static bool skip_value(scan *s, int depth);

static bool skip_container(scan *s, char close, int depth) {
    s->p++;
    skip_ws(s);
    if (*s->p == close) {
        s->p++;
        return true;
    }
    for (;;) {
        skip_ws(s);
        if (close == '}') {
            if (*s->p != '"' || !skip_string(s)) return false;
            skip_ws(s);
            if (*s->p != ':') return false;
            s->p++;
            skip_ws(s);
        }
        if (!skip_value(s, depth + 1)) return false;
        skip_ws(s);
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p != close) return false;
        s->p++;
        return true;
    }
}

static bool skip_value(scan *s, int depth) {
    if (depth > 512) return false;
    skip_ws(s);
    switch (*s->p) {
    case '"': return skip_string(s);
    case '{': return skip_container(s, '}', depth);
    case '[': return skip_container(s, ']', depth);
    case '\0': return false;
    default:
        while (*s->p && !strchr(",}] \t\r\n", *s->p))
            s->p++;
        return true;
    }
}

/* Inside an object at '{': position s at the value (or key) of member `key`. */
static bool find_member(scan *s, const char *key, size_t key_len, const char **key_at) {
    if (*s->p != '{') return false;
    s->p++;
    for (;;) {
        skip_ws(s);
        if (*s->p != '"') return false;
        const char *k = s->p + 1;
        *key_at = s->p;
        if (!skip_string(s)) return false;
        bool match = (size_t)(s->p - 1 - k) == key_len && memcmp(k, key, key_len) == 0;
        skip_ws(s);
        if (*s->p != ':') return false;
        s->p++;
        skip_ws(s);
        if (match) return true;
        if (!skip_value(s, 0)) return false;
        skip_ws(s);
        if (*s->p != ',') return false;
        s->p++;
    }
}

static bool find_element(scan *s, long index) {
    if (*s->p != '[') return false;
    s->p++;
    for (long i = 0;; i++) {
        skip_ws(s);
        if (*s->p == ']' || !*s->p) return false;
        if (i == index) return true;
        if (!skip_value(s, 0)) return false;
        skip_ws(s);
        if (*s->p != ',') return false;
        s->p++;
    }
}

static void position(const scan *s, const char *at, int *line, int *column) {
    /* `at` is on the current line or an earlier one only for keys, which share the line. */
    *line = s->line;
    *column = (int)(at - s->line_start) + 1;
}

bool o2h__config_locate(const char *text, const char *key_path, bool at_key, int *line,
                        int *column) {
    if (!text || !key_path) return false;
    scan s = {.p = text, .line_start = text, .line = 1};
    skip_ws(&s);
    const char *path = key_path;
    const char *key_at = NULL;
    while (*path) {
        if (*path == '.') path++;
        if (*path == '[') {
            char *end;
            long index = strtol(path + 1, &end, 10);
            if (*end != ']' || index < 0 || !find_element(&s, index)) return false;
            path = end + 1;
            key_at = NULL;
            continue;
        }
        size_t len = strcspn(path, ".[");
        if (len == 0 || !find_member(&s, path, len, &key_at)) return false;
        path += len;
    }
    if (!*s.p) return false;
    if (at_key && key_at) {
        /* The key and its value may sit on different lines: rescan to the key. */
        scan k = {.p = text, .line_start = text, .line = 1};
        for (; k.p < key_at; k.p++)
            if (*k.p == '\n') {
                k.line++;
                k.line_start = k.p + 1;
            }
        position(&k, key_at, line, column);
        return true;
    }
    position(&s, s.p, line, column);
    return true;
}
