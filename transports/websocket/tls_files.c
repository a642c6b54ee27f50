/* Reading PEM files for the HTTPS server (tls_files.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_files.h"

char *ws_tls_read_pem(const char *path, char *why, size_t why_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = malloc(WS_TLS_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, WS_TLS_FILE_MAX + 1, f) : 0;
    int failed = ferror(f);
    fclose(f);
    if (!text) {
        snprintf(why, why_size, "out of memory reading %s", path);
        return NULL;
    }
    if (failed || n > WS_TLS_FILE_MAX) {
        snprintf(why, why_size, "%s: %s", path,
                 failed ? "read error" : "larger than 1 MB: not a PEM certificate or key");
        ws_tls_free(text);
        return NULL;
    }
    text[n] = '\0';
    if (!strstr(text, "-----BEGIN ")) {
        snprintf(why, why_size, "%s is not PEM (no \"-----BEGIN\" line)", path);
        ws_tls_free(text);
        return NULL;
    }
    return text;
}

void ws_tls_free(char *pem) {
    if (!pem) return;
    /* A private key should not linger in freed memory. */
    volatile char *p = pem;
    while (*p)
        *p++ = 0;
    free(pem);
}
