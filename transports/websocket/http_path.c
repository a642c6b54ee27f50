/* Request path to file path: pure functions (see http_path.h). */
#include "http_path.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Check and append one decoded segment [seg, seg+n) to out. */
static int add_segment(const char *seg, size_t n, char *out, size_t size, size_t *used) {
    if (n == 0 || (n == 1 && seg[0] == '.')) return 200;
    if (seg[0] == '.') return 403; /* "..", and hidden files such as .git */
    if (*used + (*used ? 1 : 0) + n + 1 > size) return 414;
    if (*used) out[(*used)++] = '/';
    memcpy(out + *used, seg, n);
    *used += n;
    out[*used] = '\0';
    return 200;
}

int http_resolve_path(const char *url, char *out, size_t size) {
    if (!url || !out || size == 0) return 400;
    out[0] = '\0';
    if (url[0] != '/') return 400;
    size_t used = 0;
    char seg[256] = "";
    size_t seg_len = 0;
    bool ends_with_slash = true;
    for (const char *p = url; *p && *p != '?' && *p != '#'; p++) {
        char c = *p;
        if (c == '%') {
            int hi = hex(p[1]), lo = hi >= 0 ? hex(p[2]) : -1;
            if (hi < 0 || lo < 0) return 400;
            c = (char)(hi << 4 | lo);
            p += 2;
            if (c == '\0') return 400;
            if (c == '/') return 403; /* an encoded separator never splits segments */
        } else if (c == '/') {
            int rc = add_segment(seg, seg_len, out, size, &used);
            if (rc != 200) return rc;
            seg_len = 0;
            ends_with_slash = true;
            continue;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f) return 400;
        if (c == '\\') return 403;
        if (seg_len + 1 >= sizeof seg) return 414;
        seg[seg_len++] = c;
        ends_with_slash = false;
    }
    int rc = add_segment(seg, seg_len, out, size, &used);
    if (rc != 200) return rc;
    if (ends_with_slash)
        return add_segment(HTTP_INDEX_FILE, strlen(HTTP_INDEX_FILE), out, size, &used);
    return 200;
}

const char *http_mime_type(const char *path) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"md", "text/markdown; charset=utf-8"},
        {"xml", "application/xml"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"wasm", "application/wasm"},
        {"wav", "audio/wav"},
        {"mp3", "audio/mpeg"},
        {"ogg", "audio/ogg"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"pdf", "application/pdf"},
    };
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}
