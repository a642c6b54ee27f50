/*
 * The certificate and key for HTTPS and wss:// ("tls_cert", "tls_key"):
 * libmicrohttpd takes them as PEM text in memory, so they are read whole when
 * the transport is created, and a missing or unreadable file is a config
 * error then, not a failure at start.
 */
#ifndef O2HUB_WS_TLS_FILES_H
#define O2HUB_WS_TLS_FILES_H

#include <stddef.h>

#define WS_TLS_FILE_MAX (1 << 20) /* a PEM chain is a few KB */

/*
 * The whole file at `path` as a NUL-terminated string, which must look like
 * PEM ("-----BEGIN "). NULL with the reason in `why` otherwise.
 */
char *ws_tls_read_pem(const char *path, char *why, size_t why_size);

/* Overwrite and free a key (or certificate) read by ws_tls_read_pem. */
void ws_tls_free(char *pem);

#endif
