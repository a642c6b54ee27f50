/*
 * libFuzzer target: untrusted text as a router config. Either it parses, or
 * the error names a line, a column or a key; never a crash or a leak. Plugins
 * are not loaded (the input could name any file).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    o2h_error err;
    config_doc *doc = o2h__config_doc_load_string(text, "fuzz.json", &err);
    free(text);
    if (!doc) {
        if (err.code == O2H_OK || !err.message[0]) abort(); /* a failure must say why */
        return 0;
    }
    router_config rc;
    if (o2h__config_parse_router(doc, &rc, &err) != O2H_OK && !err.message[0]) abort();
    o2h__config_doc_free(doc);
    return 0;
}
