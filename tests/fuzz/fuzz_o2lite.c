/*
 * libFuzzer target: untrusted bytes as a message arriving at the O2lite
 * client (sdk/o2lite). Validation must never read outside the input, and a
 * handler that reads every argument by its type code must stay inside the
 * message; the host protocol handlers (!_o2/id, !_o2/cs/put, !_o2/dy) run
 * on whatever passes validation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "o2lite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(o2l_msg_ptr msg, const char *types, void *d, void *info) {
    volatile uint64_t sink = (uint64_t)msg->length;
    volatile double fsink = 0; /* floats stay floats: casting them could be undefined */
    for (const char *t = types; *t; t++) {
        switch (*t) {
        case 'i': sink += (uint64_t)o2l_get_int32(); break;
        case 'h': sink += (uint64_t)o2l_get_int64(); break;
        case 'f': fsink += o2l_get_float(); break;
        case 'd': fsink += o2l_get_double(); break;
        case 't': fsink += o2l_get_time(); break;
        case 's': sink += strlen(o2l_get_string()); break;
        case 'S': sink += strlen(o2l_get_symbol()); break;
        case 'B':
        case 'T':
        case 'F': sink += o2l_get_bool(); break;
        case 'c': sink += (uint64_t)o2l_get_char(); break;
        case 'm': sink += o2l_get_midi(); break;
        case 'b': {
            o2l_blob_ptr b = o2l_get_blob();
            if (b)
                for (int32_t i = 0; i < b->size; i++)
                    sink += (uint8_t)b->data[i];
            break;
        }
        default: return; /* vectors and arrays: no reader */
        }
    }
    fsink += o2l_get_timestamp();
    (void)sink;
    (void)fsink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        ready = 1;
        o2l_method_new("/s", NULL, false, read_all, NULL);
        o2l_method_new("/_o2", NULL, false, read_all, NULL);
    }
    /* The input buffer is exactly `size` bytes: ASan sees any overread. */
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    bool valid = o2l_msg_valid(copy, size);
    unsigned long before = o2l_dropped();
    o2l_dispatch(copy, size);
    if (!valid && o2l_dropped() != before + 1) abort(); /* an invalid message must be dropped */
    free(copy);
    return 0;
}
