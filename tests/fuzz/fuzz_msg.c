/*
 * libFuzzer target: untrusted bytes as a message. Validation must never read
 * outside the input; a message it accepts must then be readable from end to
 * end (every argument, with and without coercion), printable and, when it
 * is a bundle, walkable element by element.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/msg.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const o2h_msg *m, uint8_t *scratch, size_t scratch_size, char coerce_to) {
    o2h_reader rd;
    if (o2h_reader_init(&rd, m, scratch, scratch_size) != O2H_OK) return;
    o2h_arg a;
    for (int guard = 0; o2h_reader_peek(&rd) && guard < 4096; guard++) {
        char want = coerce_to ? coerce_to : o2h_reader_peek(&rd);
        if (want == O2H_VECTOR) a.v.type = 0;
        if (o2h_reader_next(&rd, want, &a) != O2H_OK) break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    o2h_msg_error err;
    if (o2h_msg_validate(data, size, &err) != O2H_OK) return 0;
    /* The message buffer is exactly the input size: ASan sees any overread. */
    int code;
    o2h_msg *m = o2h_msg_from_bytes(NULL, data, size, &code, NULL);
    if (!m) abort(); /* validated bytes must load */
    static uint8_t scratch[1 << 18];
    read_all(m, scratch, sizeof scratch, 0);
    read_all(m, scratch, sizeof scratch, 'd');
    read_all(m, scratch, sizeof scratch, 's');
    read_all(m, NULL, 0, 0);
    char text[512];
    o2h_msg_format(m, text, sizeof text);
    if (o2h_msg_is_bundle(m)) {
        uint32_t pos = 0, len;
        const uint8_t *elem;
        while (o2h_bundle_next(m, &pos, &elem, &len))
            if (o2h_msg_validate(elem, len, NULL) != O2H_OK) abort(); /* checked recursively */
    }
    o2h_msg_unref(m);
    return 0;
}
