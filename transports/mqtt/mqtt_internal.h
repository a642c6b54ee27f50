/*
 * What the MQTT transport's files share (the transport itself is described
 * in mqtt.c): its state, the constants of O2's MQTT scheme, and the few
 * functions one file calls in another. Everything else in each file is
 * static.
 *
 *   mqtt.c         descriptor, lifecycle, transport ops
 *   mqtt_config.c  the plugin's config keys
 *   mqtt_conn.c    the broker connection: libmosquitto in the loop, its
 *                  callbacks, (re)connecting, the periodic tick
 *   mqtt_queue.c   publishing, and the bounded ring of QoS 1 publishes
 *   mqtt_peers.c   processes reached through the broker: /disc and our topic
 *   mqtt_disc.c    the /disc payload parser (pure, fuzzed)
 *   mqtt_lookup.c  broker name lookups off the loop
 */
#ifndef O2HUB_MQTT_INTERNAL_H
#define O2HUB_MQTT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>
#include <o2hub/plugin.h>

#include "mqtt_disc.h"
#include "mqtt_lookup.h"

#define JUNK 2                     /* bytes before every payload, as O2 sends them */
#define PREFIX_MAX 72              /* "O2-" + ensemble (< 64) + "/" */
#define TOPIC_MAX 128              /* prefix + name (23) */
#define NAME_LEN O2H_MQTT_NAME_LEN /* "@pppppppp:iiiiiiii:tttt" (mqtt_disc.h) */
#define TICK 0.5                   /* seconds between loop_misc/announce/timeout checks */
#define READS_PER_EVENT 256        /* MQTT packets read per readable event, at most */

typedef struct broker {
    char host[256]; /* host name, IP, or a unix socket path */
    int port;       /* 0: unix socket */
} broker;

/* A process reached through the broker. */
typedef struct mqtt_peer {
    char name[NAME_LEN + 1];
    char topic[TOPIC_MAX];
    o2h_link *link;
    double last_heard; /* local time of its last /disc */
    struct mqtt_peer *next;
} mqtt_peer;

/* One QoS 1 publish not yet acknowledged (its bytes count against the bound). */
typedef struct pending {
    int mid;
    uint32_t bytes;
} pending;

typedef struct mqtt_transport {
    const o2h_host *host;
    o2h_plugin *self;

    /* config */
    broker *brokers;
    int n_brokers;
    int keepalive;
    double peer_timeout, reconnect_min, reconnect_max, connect_timeout;
    bool direct;
    int queue_max;
    int inflight;
    char *username, *password; /* NULL: anonymous */
    bool tls;
    char *ca_file, *cert_file, *key_file; /* ca_file NULL: the system's CAs */
    int64_t queue_bytes_max;

    /* this process */
    bool stopping; /* stop() has begun: no announcements, no reconnection */
    bool named;
    char name[NAME_LEN + 1];
    char pip[9], iip[9];
    int udp_port;
    char version[16];
    char topic_disc[TOPIC_MAX];
    char topic_self[TOPIC_MAX];
    char prefix[PREFIX_MAX]; /* "O2-<ensemble>/" */

    /* the broker connection */
    struct mosquitto *mosq;
    bool lib_init;
    o2h_watch *watch;
    unsigned watch_events;
    bool connecting;     /* looking up the broker, or a socket is open, no CONNACK yet */
    mqtt_lookup *lookup; /* the broker's name, resolved off the loop */
    o2h_watch *lookup_watch;
    bool connected;        /* CONNACK received */
    bool announced;        /* on /disc since this connect */
    bool refusal_reported; /* a refused CONNACK was logged: quiet until connected again */
    bool error_reported;   /* libmosquitto's error (TLS) logged: quiet until connected again */
    int in_lib;            /* inside mosquitto_loop_*: its callbacks may run */
    double connect_started;
    int current;     /* index in brokers */
    bool retry_same; /* a lost connection retries its broker once first */
    double backoff;  /* the next reconnect delay */
    o2h_timer *tick, *retry;
    double next_announce;

    mqtt_peer *peers;

    /* QoS 1 publishes in flight: a ring, bounded by queue_max and queue_bytes_max */
    pending *ring;
    int ring_head, ring_len;
    int64_t ring_bytes;

    uint8_t *scratch; /* JUNK bytes + a message, for publishing */
    size_t scratch_cap;
    o2h_builder *builder;
    int64_t max_message;

    /* counts, logged on stop */
    uint64_t published, received, reconnects;
} mqtt_transport;

/* The router's local time, which last_heard and the timers use. */
static inline double o2h_mqtt_now(mqtt_transport *tr) {
    return tr->host->loop->local_time(tr->self);
}

/* mqtt_config.c: read the plugin's config into `tr` (O2H_OK or an error). */
int o2h_mqtt_read_config(mqtt_transport *tr, const o2h_cfg *cfg);

/* mqtt_conn.c */
void o2h_mqtt_set_callbacks(mqtt_transport *tr); /* libmosquitto's, on tr->mosq */
void o2h_mqtt_connect_broker(mqtt_transport *tr);
void o2h_mqtt_end_lookup(mqtt_transport *tr);
void o2h_mqtt_update_watch(mqtt_transport *tr); /* writability, as libmosquitto wants */
void o2h_mqtt_on_tick(void *ctx);               /* every TICK seconds, ctx the transport */

/* mqtt_queue.c: publish JUNK bytes + `len` bytes of `data` to `topic`; `bounded`
 * refuses (O2H_QUEUE_FULL) what the send queue's bounds have no room for. */
int o2h_mqtt_publish(mqtt_transport *tr, const char *topic, const void *data, size_t len, int qos,
                     bool bounded);
void o2h_mqtt_publish_msg(mqtt_transport *tr, const char *topic, o2h_msg *msg, int qos);
void o2h_mqtt_ring_ack(mqtt_transport *tr, int mid); /* PUBACK for `mid` */

/* mqtt_peers.c */
void o2h_mqtt_announce_now(mqtt_transport *tr);
void o2h_mqtt_on_disc(mqtt_transport *tr, const uint8_t *payload, size_t len);
void o2h_mqtt_on_inbox(mqtt_transport *tr, const uint8_t *payload, size_t len);
void o2h_mqtt_peer_free(mqtt_transport *tr, mqtt_peer *gone);
void o2h_mqtt_expire_peers(mqtt_transport *tr, double t);

#endif
