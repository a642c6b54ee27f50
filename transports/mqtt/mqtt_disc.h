/*
 * The parser of O2's MQTT discovery payloads, the text every process
 * publishes on O2-<ensemble>/disc (O2's doc/mqtt.txt):
 *
 *   "@pip:iip:tcp:udp/dy/M.m.p"  here, clock not synchronised
 *   "@pip:iip:tcp:udp/cs/M.m.p"  here, clock synchronised
 *   "@pip:iip:tcp/bye"           gone (also the connection's will)
 *
 * pip and iip are 8 lowercase hex digits (public and internal IPv4), tcp 4,
 * udp 1 to 4. The bytes come from the broker, from anyone who can publish
 * there: this is a pure function of them (no libmosquitto, no host table)
 * so that it can be fuzzed alone (tests/fuzz/fuzz_mqtt_disc.c).
 */
#ifndef O2HUB_MQTT_DISC_H
#define O2HUB_MQTT_DISC_H

#include <stdbool.h>
#include <stddef.h>

/* Length of a process name, "@pppppppp:iiiiiiii:tttt". */
#define O2H_MQTT_NAME_LEN 23

typedef struct mqtt_disc_info {
    char name[O2H_MQTT_NAME_LEN + 1]; /* "@pip:iip:tcp" */
    char pip[9], iip[9];
    unsigned tcp, udp;
    int version; /* (M << 16) | (m << 8) | p; 0 in a bye */
    bool bye, cs;
} mqtt_disc_info;

/*
 * Parse the `n` bytes at `s` (the payload after O2's 2 leading bytes; no NUL
 * needed, none read past `n`) into `d`. False when they are not one of the
 * forms above, or name TCP port 0; `d` is then partly filled.
 */
bool o2h_mqtt_disc_parse(const char *s, size_t n, mqtt_disc_info *d);

#endif
