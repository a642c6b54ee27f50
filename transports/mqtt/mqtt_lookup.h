/*
 * A broker host name looked up off the event loop. libmosquitto resolves a
 * name inside mosquitto_connect_async() with a blocking getaddrinfo(), which
 * can stall the whole router for the resolver's timeout (seconds) when DNS is
 * slow or down; the transport resolves names here first and hands
 * libmosquitto a numeric address.
 *
 * Each lookup runs getaddrinfo() on a detached thread of its own. Its eventfd
 * turns readable when the answer is in. The owner may abandon a lookup at any
 * time, finished or not: whichever of the two sides lets go last frees it, so
 * stopping never waits for a resolver. (The plugin is linked -z nodelete, so
 * a thread still inside getaddrinfo() never returns into unmapped code.)
 */
#ifndef O2HUB_MQTT_LOOKUP_H
#define O2HUB_MQTT_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mqtt_lookup mqtt_lookup;

/* True when `host` is an IPv4 or IPv6 literal: nothing to look up. */
bool o2h_mqtt_host_is_numeric(const char *host);

/* Start looking up `host` (copied). NULL when no thread or memory could be had. */
mqtt_lookup *o2h_mqtt_lookup_start(const char *host);

/* Readable once the lookup has finished. */
int o2h_mqtt_lookup_fd(const mqtt_lookup *l);

/*
 * After the fd turned readable: true with the first address, numeric, in
 * `addr`; false with the resolver's reason in `why`. False with why "pending"
 * before the lookup has finished.
 */
bool o2h_mqtt_lookup_result(mqtt_lookup *l, char *addr, size_t addr_size, const char **why);

/* The owner lets go; NULL is fine. */
void o2h_mqtt_lookup_abandon(mqtt_lookup *l);

#endif
