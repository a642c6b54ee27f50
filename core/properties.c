#include "properties.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

bool o2h__props_valid_attr(const char *attr) {
    size_t n = attr ? strlen(attr) : 0;
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)attr[i])) return false;
    return true;
}

/* The end of the escaped value starting at v: the first unescaped ';' (or NUL). */
static const char *value_end(const char *v) {
    while (*v && *v != ';')
        v += (*v == '\\' && v[1]) ? 2 : 1;
    return v;
}

/* Where "attr:" starts an entry in props, and its value; NULL if absent. */
static const char *find_entry(const char *props, const char *attr, const char **value) {
    size_t n = strlen(attr);
    const char *p = props ? props : "";
    if (*p == ';') p++;
    while (*p) {
        const char *colon = strchr(p, ':');
        if (!colon) return NULL;
        const char *end = value_end(colon + 1);
        if ((size_t)(colon - p) == n && memcmp(p, attr, n) == 0) {
            *value = colon + 1;
            return p;
        }
        p = *end ? end + 1 : end;
    }
    return NULL;
}

char *o2h__props_remove(const char *props, const char *attr) {
    const char *value, *entry = find_entry(props, attr, &value);
    const char *src = props ? props : "";
    if (!entry) return strdup(src);
    const char *end = value_end(value);
    if (*end) end++;
    size_t before = (size_t)(entry - src), after = strlen(end);
    char *out = malloc(before + after + 1);
    if (!out) return NULL;
    memcpy(out, src, before);
    memcpy(out + before, end, after + 1);
    return out;
}

char *o2h__props_set(const char *props, const char *attr, const char *value) {
    char *rest = o2h__props_remove(props, attr);
    if (!rest) return NULL;
    const char *tail = rest[0] == ';' ? rest + 1 : rest;
    size_t size = 1 + strlen(attr) + 1 + 2 * strlen(value) + 1 + strlen(tail) + 1;
    char *out = malloc(size), *w = out;
    if (out) {
        *w++ = ';';
        memcpy(w, attr, strlen(attr));
        w += strlen(attr);
        *w++ = ':';
        for (const char *c = value; *c; c++) {
            if (*c == ':' || *c == ';' || *c == '\\') *w++ = '\\';
            *w++ = *c;
        }
        *w++ = ';';
        strcpy(w, tail);
    }
    free(rest);
    return out;
}

bool o2h__props_get(const char *props, const char *attr, char *out, size_t size) {
    const char *value;
    if (!find_entry(props, attr, &value) || size == 0) return false;
    size_t n = 0;
    for (const char *c = value; *c && *c != ';'; c++) {
        if (*c == '\\' && c[1]) c++;
        if (n + 1 >= size) return false;
        out[n++] = *c;
    }
    out[n] = '\0';
    return true;
}

bool o2h__props_match(const char *props, const char *attr, const char *pattern) {
    char value[1024];
    if (!o2h__props_get(props, attr, value, sizeof value)) return false;
    size_t plen = strlen(pattern), vlen = strlen(value);
    bool anchored_start = plen > 0 && pattern[0] == ':';
    bool anchored_end = plen > 0 && pattern[plen - 1] == ';';
    const char *core = pattern + (anchored_start ? 1 : 0);
    size_t clen = plen - (anchored_start ? 1 : 0) - (anchored_end && plen > anchored_start ? 1 : 0);
    if (anchored_start && anchored_end) return vlen == clen && memcmp(value, core, clen) == 0;
    if (anchored_start) return vlen >= clen && memcmp(value, core, clen) == 0;
    if (anchored_end) return vlen >= clen && memcmp(value + vlen - clen, core, clen) == 0;
    char needle[1024];
    if (clen >= sizeof needle) return false;
    memcpy(needle, core, clen);
    needle[clen] = '\0';
    return strstr(value, needle) != NULL;
}
