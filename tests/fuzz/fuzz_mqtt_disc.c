/*
 * libFuzzer target: what anyone who can publish on an ensemble's /disc topic
 * hands the MQTT transport (transports/mqtt/mqtt_disc.c). The input is the
 * payload after O2's 2 leading bytes, exactly as the parser gets it. Beyond
 * memory errors (the parser must not read past the bytes it is given, and
 * libFuzzer gives it no NUL), an accepted payload must hold what the
 * transport then relies on: a 23-character name that is the payload's
 * start, NUL-terminated addresses taken from it, ports and version in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_disc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort (a finding) unless what was accepted is what the transport expects. */
static void check_accepted(const char *s, size_t n, const mqtt_disc_info *d) {
    if (n < O2H_MQTT_NAME_LEN || strlen(d->name) != O2H_MQTT_NAME_LEN) abort();
    if (memcmp(d->name, s, O2H_MQTT_NAME_LEN) != 0 || d->name[0] != '@') abort();
    if (strlen(d->pip) != 8 || memcmp(d->pip, s + 1, 8) != 0) abort();
    if (strlen(d->iip) != 8 || memcmp(d->iip, s + 10, 8) != 0) abort();
    if (d->tcp == 0 || d->tcp > 0xffff || d->udp > 0xffff) abort();
    if (d->bye && (d->cs || n != O2H_MQTT_NAME_LEN + 4)) abort();
    if (!d->bye && (d->version < 0 || d->version > 0xffffff)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A copy of exactly `size` bytes: ASan reports any read past the end. */
    char *s = malloc(size ? size : 1);
    if (!s) return 0;
    if (size) memcpy(s, data, size);
    mqtt_disc_info d;
    if (o2h_mqtt_disc_parse(s, size, &d)) check_accepted(s, size, &d);
    free(s);
    return 0;
}
