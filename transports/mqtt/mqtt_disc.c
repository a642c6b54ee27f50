/*
 * The /disc payload parser (mqtt_disc.h): untrusted bytes from the broker
 * become an mqtt_disc_info or are refused. Every read is checked against the
 * length first; fuzzed by tests/fuzz/fuzz_mqtt_disc.c.
 */
#include <string.h>

#include "mqtt_disc.h"

/* Lowercase only: O2 writes its names so, and a name is compared as text. */
static bool is_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static unsigned hex_value(char c) {
    return (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
}

/* "@pip:iip:tcp" into name, pip, iip and tcp; the caller has checked n >= 23. */
static bool parse_name(const char *s, mqtt_disc_info *d) {
    if (s[0] != '@' || s[9] != ':' || s[18] != ':') return false;
    if (!is_hex(s + 1, 8) || !is_hex(s + 10, 8) || !is_hex(s + 19, 4)) return false;
    memcpy(d->name, s, O2H_MQTT_NAME_LEN);
    d->name[O2H_MQTT_NAME_LEN] = '\0';
    memcpy(d->pip, s + 1, 8);
    d->pip[8] = '\0';
    memcpy(d->iip, s + 10, 8);
    d->iip[8] = '\0';
    d->tcp = 0;
    for (int i = 19; i < 23; i++)
        d->tcp = d->tcp * 16 + hex_value(s[i]);
    return true;
}

/* "M.m.p", each part 1 to 3 decimal digits, at most 255. */
static bool parse_version(const char *p, const char *end, int *version) {
    int part[3] = {0, 0, 0}, k = 0, digits = 0;
    for (; p < end; p++) {
        if (*p >= '0' && *p <= '9' && digits < 3) {
            part[k] = part[k] * 10 + (*p - '0');
            digits++;
        } else if (*p == '.' && digits > 0 && k < 2) {
            k++;
            digits = 0;
        } else {
            return false;
        }
    }
    if (digits == 0 || part[0] > 255 || part[1] > 255 || part[2] > 255) return false;
    *version = (part[0] << 16) | (part[1] << 8) | part[2];
    return true;
}

/* What follows the name in an announcement: ":udp/dy|cs/M.m.p". */
static bool parse_here(const char *p, const char *end, mqtt_disc_info *d) {
    if (*p++ != ':') return false;
    int digits = 0;
    d->udp = 0;
    while (p < end && digits < 5 && is_hex(p, 1)) {
        d->udp = d->udp * 16 + hex_value(*p);
        p++;
        digits++;
    }
    if (digits == 0 || digits > 4 || end - p < 5 || p[0] != '/' || p[3] != '/') return false;
    if (memcmp(p + 1, "cs", 2) == 0)
        d->cs = true;
    else if (memcmp(p + 1, "dy", 2) != 0)
        return false;
    return parse_version(p + 4, end, &d->version);
}

bool o2h_mqtt_disc_parse(const char *s, size_t n, mqtt_disc_info *d) {
    *d = (mqtt_disc_info){0}; /* bye and cs are set only when present */
    /* The shortest is a bye (the name and "/bye"); the longest O2 sends is 43 bytes. */
    if (n < O2H_MQTT_NAME_LEN + 4 || n > 64 || !parse_name(s, d)) return false;
    const char *p = s + O2H_MQTT_NAME_LEN, *end = s + n;
    if (end - p == 4 && memcmp(p, "/bye", 4) == 0) {
        d->bye = true;
        return d->tcp > 0;
    }
    return parse_here(p, end, d) && d->tcp > 0;
}
