/*
 * Mapping a request path to a file below the document root, as pure
 * functions (no file system access) so a fuzzer can call them directly.
 * The file system side (opening each component with O_NOFOLLOW below the
 * root's descriptor) is in ws_http.c.
 */
#ifndef O2H_HTTP_PATH_H
#define O2H_HTTP_PATH_H

#include <stddef.h>

#define HTTP_INDEX_FILE "index.html"

/**
 * Decode and normalise the path of a request URL ("/a/b%20c.html"; a query
 * or fragment is cut off) into a path relative to the root ("a/b c.html"),
 * written to `out`. A path ending in '/' (or empty) names its folder's
 * index.html. Returns an HTTP status: 200, or
 *   400 no leading '/', a bad %-escape, a NUL byte, a control character;
 *   403 a ".." segment, a backslash, a segment starting with '.';
 *   414 longer than `size`.
 * Empty and "." segments are dropped.
 */
int http_resolve_path(const char *url, char *out, size_t size);

/** The MIME type for a file name, by its extension ("application/octet-stream" if unknown). */
const char *http_mime_type(const char *path);

#endif
