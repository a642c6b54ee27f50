/*
 * The MQTT transport: O2's MQTT scheme (O2-REFERENCE §3.5, O2's doc/mqtt.txt)
 * on libmosquitto. One broker connection does two jobs, which is why this is
 * one plugin (a transport that also announces, see o2h_transport_ops.announce)
 * rather than a discovery plugin and a transport that would need a channel
 * between them:
 *
 *  - discovery: every process subscribes to O2-<ensemble>/disc and publishes
 *    "@pip:iip:tcp:udp/dy/2.0.1" there (".../cs/..." once its clock is
 *    synchronised) when it connects and every `keepalive` seconds; a process
 *    not heard from for `peer_timeout` seconds is dropped, "@pip:iip:tcp/bye"
 *    drops it at once (published on stop, and as the connection's will);
 *  - forwarding: each process subscribes to O2-<ensemble>/<its @name>. A
 *    process that can be reached only through the broker gets a link here
 *    (host->proc->process_link makes it the peer's path): its messages are
 *    published to its topic, reliable ones at QoS 1, best effort at QoS 0.
 *
 * Which peers go through the broker follows O2's decision table (public IP,
 * internal IP, lesser/greater name); "direct": false sends every peer found
 * here through the broker (O2's debug flag F), for processes that cannot
 * reach each other's TCP/UDP ports. Like O2, every payload starts with 2
 * bytes that carry nothing (O2-REFERENCE C8).
 *
 * libmosquitto runs inside the router's loop: its socket is watched with
 * host->loop->watch_fd, read and written with mosquitto_loop_read/write, and a
 * timer calls mosquitto_loop_misc (broker keep-alive), re-announces and
 * expires peers. No thread. After a lost connection it reconnects with a
 * backoff, trying the configured brokers in turn.
 *
 * Config: { "type": "mqtt", "broker": "127.0.0.1:1883", "failover": [],
 *           "keepalive": 15, "peer_timeout": 20, "direct": true,
 *           "reconnect_min": 0.1, "reconnect_max": 2.0, "connect_timeout": 5,
 *           "send_queue": 4096, "send_queue_bytes": 4194304, "inflight": 256 }
 * A broker is "host:port", "host" (port 1883) or "unix:/path/to/socket".
 */
#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <mosquitto.h>
#include <o2hub/plugin.h>

#include "mqtt_lookup.h"

#define JUNK 2              /* bytes before every payload, as O2 sends them */
#define PREFIX_MAX 72       /* "O2-" + ensemble (< 64) + "/" */
#define TOPIC_MAX 128       /* prefix + name (23) */
#define NAME_LEN 23         /* "@pppppppp:iiiiiiii:tttt" */
#define TICK 0.5            /* seconds between loop_misc/announce/timeout checks */
#define READS_PER_EVENT 256 /* MQTT packets read per readable event, at most */

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

static void update_watch(mqtt_transport *tr);
static void schedule_retry(mqtt_transport *tr);

/* ---- small helpers ---- */

static bool is_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static mqtt_peer *find_peer(mqtt_transport *tr, const char *name) {
    for (mqtt_peer *p = tr->peers; p; p = p->next)
        if (strcmp(p->name, name) == 0) return p;
    return NULL;
}

/* "host:port" or "unix:/path", for logs. */
static const char *broker_text(const broker *b, char *buf, size_t size) {
    if (b->port)
        snprintf(buf, size, "%s:%d", b->host, b->port);
    else
        snprintf(buf, size, "unix:%s", b->host);
    return buf;
}

static double now(mqtt_transport *tr) {
    return tr->host->loop->local_time(tr->self);
}

/* ---- the ring of unacknowledged QoS 1 publishes ---- */

static bool ring_full(const mqtt_transport *tr, size_t bytes) {
    return tr->ring_len >= tr->queue_max || tr->ring_bytes + (int64_t)bytes > tr->queue_bytes_max;
}

static void ring_push(mqtt_transport *tr, int mid, uint32_t bytes) {
    if (tr->ring_len >= tr->queue_max) return; /* control messages past the bound: untracked */
    int at = (tr->ring_head + tr->ring_len) % tr->queue_max;
    tr->ring[at] = (pending){mid, bytes};
    tr->ring_len++;
    tr->ring_bytes += bytes;
}

/* PUBACK for `mid`: usually the oldest entry; others become holes skipped later. */
static void ring_ack(mqtt_transport *tr, int mid) {
    for (int i = 0; i < tr->ring_len; i++) {
        pending *e = &tr->ring[(tr->ring_head + i) % tr->queue_max];
        if (e->mid != mid) continue;
        tr->ring_bytes -= e->bytes;
        e->mid = -1;
        e->bytes = 0;
        break;
    }
    while (tr->ring_len > 0 && tr->ring[tr->ring_head].mid == -1) {
        tr->ring_head = (tr->ring_head + 1) % tr->queue_max;
        tr->ring_len--;
    }
}

/* ---- publishing ---- */

/* Publish JUNK bytes + `len` bytes of `data` to `topic`. */
static int publish(mqtt_transport *tr, const char *topic, const void *data, size_t len, int qos,
                   bool bounded) {
    if (!tr->mosq) return O2H_SEND_FAIL;
    if (qos == 0 && !tr->connected) return O2H_SEND_FAIL;
    /* Best effort is never queued behind a socket backlog (inside libmosquitto's
     * callbacks everything waits for the write that follows them). */
    if (qos == 0 && bounded && !tr->in_lib && mosquitto_want_write(tr->mosq)) return O2H_QUEUE_FULL;
    if (qos > 0 && bounded && ring_full(tr, len + JUNK)) return O2H_QUEUE_FULL;
    if (len + JUNK > tr->scratch_cap) {
        size_t cap = len + JUNK + 256;
        uint8_t *s = realloc(tr->scratch, cap);
        if (!s) return O2H_NO_MEMORY;
        tr->scratch = s;
        tr->scratch_cap = cap;
    }
    tr->scratch[0] = tr->scratch[1] = 0;
    memcpy(tr->scratch + JUNK, data, len);
    int mid = 0;
    int rc = mosquitto_publish(tr->mosq, &mid, topic, (int)(len + JUNK), tr->scratch, qos, false);
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
        tr->host->log->write(tr->self, O2H_LOG_DEBUG, "publish to %s failed: %s", topic,
                             mosquitto_strerror(rc));
        return O2H_SEND_FAIL;
    }
    /* QoS 1 while disconnected is kept by libmosquitto and sent after reconnecting. */
    if (rc == MOSQ_ERR_NO_CONN && qos == 0) return O2H_SEND_FAIL;
    if (qos > 0) ring_push(tr, mid, (uint32_t)(len + JUNK));
    tr->published++;
    update_watch(tr);
    return O2H_OK;
}

static void publish_msg(mqtt_transport *tr, const char *topic, o2h_msg *msg, int qos) {
    if (!msg) return;
    publish(tr, topic, msg->data, msg->length, qos, false);
    tr->host->msg->msg_unref(msg);
}

/* "@pip:iip:tcp:udp/dy/2.0.1" (or /cs/ once synchronised) to O2-<ens>/disc. */
static void announce_now(mqtt_transport *tr) {
    if (!tr->connected || !tr->named) return;
    char text[96];
    bool synced = tr->host->loop->time_get(tr->self) >= 0;
    int n = snprintf(text, sizeof text, "%s:%04x/%s/%s", tr->name, (unsigned)tr->udp_port,
                     synced ? "cs" : "dy", tr->version);
    publish(tr, tr->topic_disc, text, (size_t)n, 0, false);
    tr->next_announce = now(tr) + tr->keepalive;
}

/* ---- links to processes through the broker ---- */

static mqtt_peer *peer_new(mqtt_transport *tr, const char *name) {
    mqtt_peer *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->topic, sizeof p->topic, "%s%s", tr->prefix, name);
    char desc[64];
    snprintf(desc, sizeof desc, "mqtt %s", name);
    p->link = tr->host->link->link_new(tr->self, p, desc);
    if (!p->link) {
        free(p);
        return NULL;
    }
    p->last_heard = now(tr);
    p->next = tr->peers;
    tr->peers = p;
    return p;
}

/* Forget a peer and free its link (the core then loses the process). */
static void peer_free(mqtt_transport *tr, mqtt_peer *gone) {
    for (mqtt_peer **pp = &tr->peers; *pp; pp = &(*pp)->next)
        if (*pp == gone) {
            *pp = gone->next;
            break;
        }
    o2h_link *link = gone->link;
    free(gone);
    tr->host->link->link_free(link);
}

/*
 * Reach `name` through the broker (O2's create_mqtt_connection). When it was
 * found on /disc, first ask it to do the same (!_o2/mqtt/dy); then the core
 * sends our clock state and service list on the new link.
 */
static mqtt_peer *via_broker(mqtt_transport *tr, const char *name, bool from_disc) {
    mqtt_peer *p = find_peer(tr, name);
    if (p && !from_disc) {
        /* It made a new proxy for us (it had lost us, e.g. to our will after a
         * network blip): it needs our clock state and services again. */
        p->last_heard = now(tr);
        if (tr->host->proc->process_link(tr->self, p->link, name) == O2H_ALREADY_RUNNING) {
            peer_free(tr, p); /* the core reaches it another way now */
            return NULL;
        }
        return p;
    }
    if (p) {
        p->last_heard = now(tr);
        return p;
    }
    if (tr->host->link->service_status(tr->self, name) >= 0) return NULL; /* reached another way */
    p = peer_new(tr, name);
    if (!p) return NULL;
    if (from_disc) {
        o2h_builder *b = tr->builder;
        tr->host->msg->builder_start(b);
        tr->host->msg->add_string(b, tr->name);
        publish_msg(tr, p->topic,
                    tr->host->msg->builder_finish(b, 0, "!_o2/mqtt/dy", O2H_FLAG_RELIABLE), 1);
    }
    int rc = tr->host->proc->process_link(tr->self, p->link, name);
    if (rc != O2H_OK) {
        tr->host->log->write(tr->self, O2H_LOG_DEBUG, "not reaching %s through the broker (%d)",
                             name, rc);
        peer_free(tr, p);
        return NULL;
    }
    tr->host->log->write(tr->self, O2H_LOG_INFO, "process %s is reached through the broker", name);
    return p;
}

/* ---- /disc ---- */

typedef struct disc_info {
    char name[NAME_LEN + 1];
    char pip[9], iip[9];
    unsigned tcp, udp;
    int version;
    bool bye, cs;
} disc_info;

/* Parse "@pip:iip:tcp:udp/dy|cs/M.m.p" or "@pip:iip:tcp/bye" (no NUL, lowercase hex). */
static bool parse_disc(const char *s, size_t n, disc_info *d) {
    if (n < NAME_LEN + 4 || n > 64 || s[0] != '@' || s[9] != ':' || s[18] != ':') return false;
    if (!is_hex(s + 1, 8) || !is_hex(s + 10, 8) || !is_hex(s + 19, 4)) return false;
    memcpy(d->name, s, NAME_LEN);
    d->name[NAME_LEN] = '\0';
    memcpy(d->pip, s + 1, 8);
    d->pip[8] = '\0';
    memcpy(d->iip, s + 10, 8);
    d->iip[8] = '\0';
    d->tcp = 0;
    for (int i = 19; i < 23; i++)
        d->tcp = d->tcp * 16 + (unsigned)(s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
    const char *p = s + NAME_LEN, *end = s + n;
    if (end - p == 4 && memcmp(p, "/bye", 4) == 0) {
        d->bye = true;
        return d->tcp > 0;
    }
    if (*p++ != ':') return false;
    int digits = 0;
    d->udp = 0;
    while (p < end && digits < 5 && is_hex(p, 1)) {
        d->udp = d->udp * 16 + (unsigned)(*p <= '9' ? *p - '0' : *p - 'a' + 10);
        p++;
        digits++;
    }
    if (digits == 0 || digits > 4 || end - p < 5 || p[0] != '/' || p[3] != '/') return false;
    if (memcmp(p + 1, "cs", 2) == 0)
        d->cs = true;
    else if (memcmp(p + 1, "dy", 2) != 0)
        return false;
    p += 4;
    int part[3] = {0, 0, 0}, k = 0;
    digits = 0;
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
    d->version = (part[0] << 16) | (part[1] << 8) | part[2];
    return d->tcp > 0;
}

/* The peer's !_o2/dy INFO as if a LAN discovery found it: the core connects by TCP. */
static void discovered_directly(mqtt_transport *tr, const disc_info *d) {
    const o2h_host *h = tr->host;
    o2h_builder *b = tr->builder;
    h->msg->builder_start(b);
    h->msg->add_string(b, h->proc->ensemble(tr->self));
    h->msg->add_int32(b, d->version);
    h->msg->add_string(b, d->pip);
    h->msg->add_string(b, d->iip);
    h->msg->add_int32(b, (int32_t)d->tcp);
    h->msg->add_int32(b, (int32_t)d->udp);
    h->msg->add_int32(b, O2H_DY_INFO);
    o2h_msg *m = h->msg->builder_finish(b, 0, "!_o2/dy", O2H_FLAG_RELIABLE);
    if (m) h->link->deliver(tr->self, NULL, m);
}

/* Tell the core that `name` has clock sync (a /cs on /disc, as O2 does). */
static void peer_synced(mqtt_transport *tr, const char *name) {
    o2h_builder *b = tr->builder;
    tr->host->msg->builder_start(b);
    tr->host->msg->add_string(b, name);
    o2h_msg *m = tr->host->msg->builder_finish(b, 0, "!_o2/cs/cs", O2H_FLAG_RELIABLE);
    if (m) tr->host->link->deliver(tr->self, NULL, m);
}

static void on_disc(mqtt_transport *tr, const uint8_t *payload, size_t len) {
    disc_info d = {0};
    if (len < JUNK || !parse_disc((const char *)payload + JUNK, len - JUNK, &d)) {
        tr->host->link->count_invalid(tr->self,
                                      "MQTT /disc payload not \"@pip:iip:tcp:udp/dy/vers\"");
        return;
    }
    if (!tr->named || strcmp(d.name, tr->name) == 0) return; /* our own */
    mqtt_peer *known = find_peer(tr, d.name);
    if (d.bye) {
        if (known) {
            tr->host->log->write(tr->self, O2H_LOG_INFO, "process %s said goodbye", d.name);
            peer_free(tr, known);
        }
        return;
    }
    if ((d.version & 0xff0000) != (O2H_O2_PROTOCOL_VERSION & 0xff0000)) return;
    if (known) {
        known->last_heard = now(tr);
        if (d.cs) peer_synced(tr, d.name);
        return;
    }
    if (tr->host->link->service_status(tr->self, d.name) >= 0) return; /* connected another way */
    /* O2's decision table (doc/mqtt.txt cases 1A..2C2). */
    int cmp = strcmp(tr->name, d.name);
    bool we_public = strcmp(tr->pip, tr->iip) == 0;
    enum { DIRECT, CALLBACK, BROKER } how;
    if (!tr->direct)
        how = BROKER;
    else if (strcmp(d.pip, d.iip) == 0) /* 1: it is not behind NAT */
        how = cmp < 0 || we_public ? DIRECT : BROKER;
    else if (strcmp(d.pip, tr->pip) == 0) /* 2A: behind our NAT */
        how = cmp > 0 ? CALLBACK : DIRECT;
    else if (cmp < 0) /* 2B */
        how = BROKER;
    else /* 2C */
        how = we_public ? CALLBACK : BROKER;
    switch (how) {
    case DIRECT: discovered_directly(tr, &d); break;
    case CALLBACK: {
        char topic[TOPIC_MAX];
        snprintf(topic, sizeof topic, "%s%s", tr->prefix, d.name);
        publish_msg(tr, topic, tr->host->proc->dy_message(tr->self, O2H_DY_CALLBACK), 1);
        break;
    }
    case BROKER:
        if (via_broker(tr, d.name, true) && d.cs) peer_synced(tr, d.name);
        break;
    }
}

/* ---- messages on our own topic ---- */

/* The first string argument of a message, or NULL. */
static const char *first_string(mqtt_transport *tr, const o2h_msg *m) {
    o2h_reader rd;
    o2h_arg a;
    if (tr->host->msg->reader_init(&rd, m, NULL, 0) != O2H_OK) return NULL;
    if (tr->host->msg->reader_next(&rd, 's', &a) != O2H_OK) return NULL;
    return a.s;
}

static bool is_system(const char *address, const char *what) {
    return (address[0] == '!' || address[0] == '/') && strcmp(address + 1, what) == 0;
}

static void on_inbox(mqtt_transport *tr, const uint8_t *payload, size_t len) {
    const o2h_host *h = tr->host;
    o2h_msg_error why;
    if (len < JUNK || len - JUNK > (size_t)tr->max_message ||
        h->msg->msg_validate(payload + JUNK, len - JUNK, &why) != O2H_OK) {
        h->link->count_invalid(tr->self, len < JUNK || len - JUNK > (size_t)tr->max_message
                                             ? "MQTT payload of a bad size"
                                             : "MQTT payload is not an O2 message");
        return;
    }
    o2h_msg *m = h->msg->msg_alloc(tr->self, len - JUNK);
    if (!m) return;
    memcpy(m->data, payload + JUNK, len - JUNK);
    m->length = (uint32_t)(len - JUNK);
    tr->received++;
    const char *address = o2h_msg_address(m);
    o2h_link *from = NULL;
    if (is_system(address, "_o2/mqtt/dy")) {
        /* A process found us on /disc and reaches us through the broker: do the same. */
        const char *name = first_string(tr, m);
        if (name && strlen(name) == NAME_LEN && name[0] == '@')
            via_broker(tr, name, false);
        else
            h->link->count_invalid(tr->self, "!_o2/mqtt/dy without a process name");
        h->msg->msg_unref(m);
        return;
    }
    if (is_system(address, "_o2/sv")) {
        /* The sender names itself; the core takes service lists only from its path. */
        const char *name = first_string(tr, m);
        mqtt_peer *p = name ? find_peer(tr, name) : NULL;
        from = p ? p->link : NULL;
    } else if (address[1] != '_' || address[2] != 'o' || address[3] != '2') {
        /* MQTT does not say who sent a message, only that it came from another
         * process through the broker: so it is, for the core's rule that such
         * messages are never passed on to a third process. System messages
         * (!_o2/dy, !_o2/cs/cs) carry their sender and come with no link. */
        from = tr->peers ? tr->peers->link : NULL;
    }
    h->link->deliver(tr->self, from, m);
}

/* ---- libmosquitto callbacks (called inside mosquitto_loop_*) ---- */

static void on_connect(struct mosquitto *mosq, void *ctx, int rc) {
    mqtt_transport *tr = ctx;
    char where[300];
    broker_text(&tr->brokers[tr->current], where, sizeof where);
    if (rc != 0) {
        /* Wrong credentials do not get better by retrying: say it once. */
        tr->host->log->write(
            tr->self, tr->refusal_reported ? O2H_LOG_DEBUG : O2H_LOG_WARN,
            "broker %s refused the connection: %s%s", where, mosquitto_connack_string(rc),
            tr->refusal_reported ? "" : " (check username and password; retrying)");
        tr->refusal_reported = true;
        return; /* libmosquitto closes the socket: on_disconnect follows */
    }
    tr->connecting = false;
    tr->connected = true;
    tr->refusal_reported = tr->error_reported = false;
    tr->backoff = tr->reconnect_min;
    tr->retry_same = true;
    tr->host->log->write(tr->self, O2H_LOG_INFO, "connected to broker %s", where);
    mosquitto_subscribe(mosq, NULL, tr->topic_disc, 1);
    mosquitto_subscribe(mosq, NULL, tr->topic_self, 1);
    /* Peers kept through an outage get a full timeout to announce themselves again. */
    double t = now(tr);
    for (mqtt_peer *p = tr->peers; p; p = p->next)
        p->last_heard = t;
    announce_now(tr);
}

/* libmosquitto's own errors (a failed TLS handshake, a certificate it does
 * not trust) would otherwise show only as silent retries: the first of a
 * streak is a warning, the rest debug lines. */
static void on_mosquitto_log(struct mosquitto *mosq, void *ctx, int level, const char *text) {
    mqtt_transport *tr = ctx;
    if (level != MOSQ_LOG_ERR) return;
    char where[300];
    broker_text(&tr->brokers[tr->current], where, sizeof where);
    tr->host->log->write(tr->self, tr->error_reported ? O2H_LOG_DEBUG : O2H_LOG_WARN,
                         "broker %s: %s%s", where, text, tr->error_reported ? "" : " (retrying)");
    tr->error_reported = true;
}

static void on_disconnect(struct mosquitto *mosq, void *ctx, int rc) {
    mqtt_transport *tr = ctx;
    /* libmosquitto has closed the socket: drop the watch before its number is reused. */
    tr->host->loop->watch_remove(tr->watch);
    tr->watch = NULL;
    bool was_connected = tr->connected;
    tr->connected = tr->connecting = false;
    if (!tr->mosq || !tr->named) return; /* stopping */
    if (was_connected) {
        tr->reconnects++;
        tr->host->log->write(tr->self, O2H_LOG_WARN,
                             "lost the broker connection (%s); reconnecting",
                             mosquitto_strerror(rc));
    } else {
        tr->retry_same = false;
    }
    schedule_retry(tr);
}

static void on_message(struct mosquitto *mosq, void *ctx, const struct mosquitto_message *msg) {
    mqtt_transport *tr = ctx;
    const uint8_t *payload = msg->payload;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (strcmp(msg->topic, tr->topic_self) == 0)
        on_inbox(tr, payload, len);
    else if (strcmp(msg->topic, tr->topic_disc) == 0)
        on_disc(tr, payload, len);
}

static void on_publish(struct mosquitto *mosq, void *ctx, int mid) {
    ring_ack(ctx, mid);
}

/* ---- the socket in the router's loop ---- */

/* Write what callbacks queued in libmosquitto, then watch for writability if some is left. */
static void flush(mqtt_transport *tr) {
    if (tr->watch && mosquitto_want_write(tr->mosq)) {
        tr->in_lib++;
        mosquitto_loop_write(tr->mosq, 64);
        tr->in_lib--;
    }
    update_watch(tr);
}

static void on_socket(void *ctx, int fd, unsigned events) {
    mqtt_transport *tr = ctx;
    if (events & (O2H_EV_READ | O2H_EV_ERROR | O2H_EV_HUP)) {
        /* One MQTT packet per loop_read; go on while the socket has bytes. */
        for (int i = 0; i < READS_PER_EVENT && tr->watch; i++) {
            tr->in_lib++;
            int rc = mosquitto_loop_read(tr->mosq, 1);
            tr->in_lib--;
            if (rc != MOSQ_ERR_SUCCESS) break;
            int avail = 0;
            if (ioctl(fd, FIONREAD, &avail) != 0 || avail <= 0) break;
        }
    }
    /* Replies published from inside callbacks wait in libmosquitto: write them now. */
    flush(tr);
}

static void update_watch(mqtt_transport *tr) {
    if (!tr->watch) return;
    unsigned want = O2H_EV_READ | (mosquitto_want_write(tr->mosq) ? O2H_EV_WRITE : 0);
    if (want != tr->watch_events && tr->host->loop->watch_modify(tr->watch, want) == O2H_OK)
        tr->watch_events = want;
}

static void end_lookup(mqtt_transport *tr) {
    tr->host->loop->watch_remove(tr->lookup_watch);
    tr->lookup_watch = NULL;
    mqtt_lookup_abandon(tr->lookup);
    tr->lookup = NULL;
}

static void connect_failed(mqtt_transport *tr, const char *why) {
    char where[300];
    tr->connecting = false;
    tr->host->log->write(tr->self, O2H_LOG_DEBUG, "cannot connect to broker %s: %s",
                         broker_text(&tr->brokers[tr->current], where, sizeof where), why);
    tr->retry_same = false;
    schedule_retry(tr);
}

/* Open the socket to `address` (numeric, or a unix socket path; CONNACK comes later). */
static void open_connection(mqtt_transport *tr, const char *address) {
    broker *b = &tr->brokers[tr->current];
    int rc = mosquitto_connect_async(tr->mosq, address, b->port, tr->keepalive);
    int fd = rc == MOSQ_ERR_SUCCESS ? mosquitto_socket(tr->mosq) : -1;
    if (fd < 0) {
        connect_failed(tr, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return;
    }
    tr->watch_events = O2H_EV_READ | (mosquitto_want_write(tr->mosq) ? O2H_EV_WRITE : 0);
    tr->watch = tr->host->loop->watch_fd(tr->self, fd, tr->watch_events, on_socket, tr);
}

static void on_lookup_done(void *ctx, int fd, unsigned events) {
    (void)fd, (void)events;
    mqtt_transport *tr = ctx;
    char addr[64];
    const char *why = NULL;
    bool found = mqtt_lookup_result(tr->lookup, addr, sizeof addr, &why);
    if (!found && strcmp(why, "pending") == 0) return; /* not yet (a spurious wake-up) */
    end_lookup(tr);
    /* With TLS libmosquitto needs the name itself: it checks the certificate
     * against it and sends it as SNI. It looks it up again; the lookup just
     * made has checked it resolves (and warmed any cache on the way). */
    if (found)
        open_connection(tr, tr->tls ? tr->brokers[tr->current].host : addr);
    else
        connect_failed(tr, why);
}

/* Connect to the current broker without blocking: a host name is looked up
 * on a thread first (mqtt_lookup.h), an address or a unix socket at once. */
static void connect_broker(mqtt_transport *tr) {
    tr->host->loop->watch_remove(tr->watch); /* connect_async closes the old socket */
    tr->watch = NULL;
    tr->connected = false;
    end_lookup(tr);
    broker *b = &tr->brokers[tr->current];
    tr->connecting = true;
    tr->connect_started = now(tr);
    if (b->port == 0 || mqtt_host_is_numeric(b->host)) {
        open_connection(tr, b->host);
        return;
    }
    tr->lookup = mqtt_lookup_start(b->host);
    if (tr->lookup)
        tr->lookup_watch = tr->host->loop->watch_fd(tr->self, mqtt_lookup_fd(tr->lookup),
                                                    O2H_EV_READ, on_lookup_done, tr);
    if (!tr->lookup_watch) {
        end_lookup(tr);
        connect_failed(tr, "cannot start a name lookup");
    }
}

static void on_retry(void *ctx) {
    mqtt_transport *tr = ctx;
    tr->host->loop->timer_stop(tr->retry);
    tr->retry = NULL;
    if (!tr->connected) connect_broker(tr); /* a slow CONNACK may have come meanwhile */
}

/* Reconnect after the backoff: the same broker once after a lost connection,
 * then the next in the list after every failure. */
static void schedule_retry(mqtt_transport *tr) {
    if (tr->retry) return;
    if (!tr->retry_same) tr->current = (tr->current + 1) % tr->n_brokers;
    tr->retry_same = false;
    double delay = tr->backoff;
    tr->backoff *= 2;
    if (tr->backoff > tr->reconnect_max) tr->backoff = tr->reconnect_max;
    tr->retry = tr->host->loop->timer_start(tr->self, delay, 0, on_retry, tr);
}

static void on_tick(void *ctx) {
    mqtt_transport *tr = ctx;
    double t = now(tr);
    if (tr->connecting && t - tr->connect_started > tr->connect_timeout) {
        char where[300];
        tr->host->log->write(tr->self, O2H_LOG_WARN, "broker %s: no answer in %.0f s",
                             broker_text(&tr->brokers[tr->current], where, sizeof where),
                             tr->connect_timeout);
        end_lookup(tr);
        tr->connecting = false;
        tr->retry_same = false;
        schedule_retry(tr);
    }
    if (tr->watch) {
        tr->in_lib++;
        mosquitto_loop_misc(tr->mosq); /* keep-alive pings; may call on_disconnect */
        tr->in_lib--;
        flush(tr);
    }
    if (tr->connected && t >= tr->next_announce) announce_now(tr);
    /* Processes not heard from on /disc for peer_timeout are gone (O2's timeouts). */
    mqtt_peer *p = tr->peers;
    while (p) {
        mqtt_peer *next = p->next;
        if (t - p->last_heard > tr->peer_timeout) {
            tr->host->log->write(tr->self, O2H_LOG_INFO, "process %s timed out", p->name);
            peer_free(tr, p);
        }
        p = next;
    }
}

/* ---- transport ops ---- */

static int mqtt_send(void *instance, void *link_ctx, o2h_msg *msg) {
    mqtt_transport *tr = instance;
    mqtt_peer *p = link_ctx;
    return publish(tr, p->topic, msg->data, msg->length, o2h_msg_reliable(msg) ? 1 : 0, true);
}

static void mqtt_close(void *instance, void *link_ctx) {
    peer_free(instance, link_ctx);
}

static int mqtt_announce(void *instance, const o2h_process_info *info) {
    mqtt_transport *tr = instance;
    if (tr->stopping || !tr->mosq) return O2H_OK;
    if (!tr->named) {
        if (!info->name || strlen(info->name) != NAME_LEN) return O2H_BAD_NAME;
        snprintf(tr->name, sizeof tr->name, "%s", info->name);
        memcpy(tr->pip, info->name + 1, 8);
        memcpy(tr->iip, info->name + 10, 8);
        tr->udp_port = info->udp_port;
        snprintf(tr->version, sizeof tr->version, "%d.%d.%d", (info->version >> 16) & 0xff,
                 (info->version >> 8) & 0xff, info->version & 0xff);
        snprintf(tr->topic_self, sizeof tr->topic_self, "%s%s", tr->prefix, tr->name);
        tr->named = true;
        /* The broker says goodbye for us if we vanish without a word. */
        char bye[JUNK + 32] = {0};
        int n = snprintf(bye + JUNK, sizeof bye - JUNK, "%s/bye", tr->name);
        mosquitto_will_set(tr->mosq, tr->topic_disc, JUNK + n, bye, 0, false);
        connect_broker(tr);
        return O2H_OK;
    }
    announce_now(tr); /* a peer was lost: say we are here, so it is found again */
    return O2H_OK;
}

/* ---- config and lifecycle ---- */

static int parse_broker(const char *text, broker *b) {
    if (strncmp(text, "unix:", 5) == 0) {
        if (!text[5] || strlen(text + 5) >= sizeof b->host) return -1;
        snprintf(b->host, sizeof b->host, "%s", text + 5);
        b->port = 0;
        return 0;
    }
    const char *colon = strrchr(text, ':');
    size_t hlen = colon ? (size_t)(colon - text) : strlen(text);
    if (hlen == 0 || hlen >= sizeof b->host) return -1;
    memcpy(b->host, text, hlen);
    b->host[hlen] = '\0';
    b->port = 1883;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535) return -1;
        b->port = (int)port;
    }
    return 0;
}

static int read_brokers(mqtt_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    const char *first;
    if (h->cfg->get_string(cfg, "broker", "127.0.0.1:1883", &first) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    int n = h->cfg->array_len(cfg, "failover");
    if (n < 0) return O2H_CONFIG_ERROR;
    tr->brokers = calloc((size_t)n + 1, sizeof *tr->brokers);
    if (!tr->brokers) return O2H_NO_MEMORY;
    if (parse_broker(first, &tr->brokers[0]) != 0)
        return h->cfg->error(cfg, "broker", "expected \"host:port\" or \"unix:/path\"");
    for (int i = 0; i < n; i++) {
        const o2h_cfg *item = h->cfg->array_item(cfg, "failover", i);
        const char *text = h->cfg->as_string(item);
        if (!text || parse_broker(text, &tr->brokers[i + 1]) != 0)
            return h->cfg->error(item, NULL, "expected \"host:port\" or \"unix:/path\"");
    }
    tr->n_brokers = n + 1;
    return O2H_OK;
}

/* A path from the config, relative to the config file's folder. */
static char *config_path(mqtt_transport *tr, const o2h_cfg *cfg, const char *path) {
    if (path[0] == '/') return strdup(path);
    const char *dir = tr->host->cfg->dir(cfg);
    size_t n = strlen(dir) + strlen(path) + 2;
    char *full = malloc(n);
    if (full) snprintf(full, n, "%s/%s", dir, path);
    return full;
}

/* "tls" (with "ca_file", else the system's CAs in /etc/ssl/certs), and a
 * client certificate ("cert_file" and "key_file") if the broker wants one. */
static int read_tls(mqtt_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    const char *keys[3] = {"ca_file", "cert_file", "key_file"}, *paths[3] = {NULL, NULL, NULL};
    char **out[3] = {&tr->ca_file, &tr->cert_file, &tr->key_file};
    if (h->cfg->get_bool(cfg, "tls", false, &tr->tls) == O2H_CONFIG_ERROR) return O2H_CONFIG_ERROR;
    for (int i = 0; i < 3; i++)
        if (h->cfg->get_string(cfg, keys[i], NULL, &paths[i]) == O2H_CONFIG_ERROR)
            return O2H_CONFIG_ERROR;
    for (int i = 0; i < 3; i++)
        if (paths[i] && !tr->tls) return h->cfg->error(cfg, keys[i], "needs \"tls\": true");
    if (!paths[1] != !paths[2])
        return h->cfg->error(cfg, paths[1] ? "cert_file" : "key_file",
                             "a client certificate needs both \"cert_file\" and \"key_file\"");
    for (int i = 0; i < 3; i++) {
        if (!paths[i]) continue;
        if (!(*out[i] = config_path(tr, cfg, paths[i]))) return O2H_NO_MEMORY;
        FILE *f = fopen(*out[i], "r");
        if (!f) return h->cfg->error(cfg, keys[i], "cannot read %s: %s", *out[i], strerror(errno));
        fclose(f);
    }
    return O2H_OK;
}

/* "username" with "password" or "password_env" (the name of an environment
 * variable that holds it, to keep secrets out of config files). */
static int read_credentials(mqtt_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    const char *user = NULL, *pass = NULL, *env = NULL;
    if (h->cfg->get_string(cfg, "username", NULL, &user) == O2H_CONFIG_ERROR ||
        h->cfg->get_string(cfg, "password", NULL, &pass) == O2H_CONFIG_ERROR ||
        h->cfg->get_string(cfg, "password_env", NULL, &env) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    if (pass && env)
        return h->cfg->error(cfg, "password_env",
                             "give \"password\" or \"password_env\", not both");
    if ((pass || env) && !user)
        return h->cfg->error(cfg, pass ? "password" : "password_env",
                             "a password needs a \"username\"");
    if (env) {
        pass = getenv(env);
        if (!pass)
            return h->cfg->error(cfg, "password_env", "environment variable %s is not set", env);
    }
    if (user && !(tr->username = strdup(user))) return O2H_NO_MEMORY;
    if (pass && !(tr->password = strdup(pass))) return O2H_NO_MEMORY;
    return O2H_OK;
}

static int read_config(mqtt_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    int rc = read_brokers(tr, cfg);
    if (rc == O2H_OK) rc = read_credentials(tr, cfg);
    if (rc == O2H_OK) rc = read_tls(tr, cfg);
    if (rc != O2H_OK) return rc;
    int64_t keepalive, queue, max_message, inflight;
    if (h->cfg->get_int(cfg, "keepalive", 15, 5, 3600, &keepalive) == O2H_CONFIG_ERROR ||
        h->cfg->get_double(cfg, "peer_timeout", (double)keepalive + 5, &tr->peer_timeout) ==
            O2H_CONFIG_ERROR ||
        h->cfg->get_bool(cfg, "direct", true, &tr->direct) == O2H_CONFIG_ERROR ||
        h->cfg->get_double(cfg, "reconnect_min", 0.1, &tr->reconnect_min) == O2H_CONFIG_ERROR ||
        h->cfg->get_double(cfg, "reconnect_max", 2.0, &tr->reconnect_max) == O2H_CONFIG_ERROR ||
        h->cfg->get_double(cfg, "connect_timeout", 5.0, &tr->connect_timeout) == O2H_CONFIG_ERROR ||
        h->cfg->get_int(cfg, "send_queue", 4096, 16, 1 << 20, &queue) == O2H_CONFIG_ERROR ||
        h->cfg->get_int(cfg, "inflight", 256, 1, 65535, &inflight) == O2H_CONFIG_ERROR ||
        h->cfg->get_int(cfg, "send_queue_bytes", 4 << 20, 4096, INT64_C(1) << 32,
                        &tr->queue_bytes_max) == O2H_CONFIG_ERROR ||
        h->cfg->get_int(cfg, "max_message", O2H_MSG_MAX_SIZE, 64, O2H_MSG_MAX_SIZE, &max_message) ==
            O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    tr->keepalive = (int)keepalive;
    tr->queue_max = (int)queue;
    tr->inflight = (int)inflight;
    tr->max_message = max_message;
    if (tr->peer_timeout <= keepalive)
        return h->cfg->error(cfg, "peer_timeout", "must be longer than keepalive (%d s)",
                             (int)keepalive);
    if (tr->reconnect_min <= 0 || tr->reconnect_max < tr->reconnect_min)
        return h->cfg->error(cfg, NULL, "need 0 < reconnect_min <= reconnect_max");
    if (tr->connect_timeout <= 0) return h->cfg->error(cfg, "connect_timeout", "must be positive");
    return O2H_OK;
}

static void mqtt_destroy(void *instance);

static int mqtt_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg,
                       void **instance) {
    mqtt_transport *tr = calloc(1, sizeof *tr);
    if (!tr) return O2H_NO_MEMORY;
    tr->host = host;
    tr->self = self;
    int rc = read_config(tr, cfg);
    if (rc != O2H_OK) {
        mqtt_destroy(tr);
        return rc;
    }
    *instance = tr;
    return O2H_OK;
}

static int mqtt_start(void *instance) {
    mqtt_transport *tr = instance;
    const o2h_host *h = tr->host;
    const char *ens = h->proc->ensemble(tr->self);
    if (!ens || !ens[0] || strpbrk(ens, "+#/") || strlen(ens) > 63) {
        h->log->write(tr->self, O2H_LOG_ERROR, "ensemble \"%s\" cannot be an MQTT topic level",
                      ens ? ens : "");
        return O2H_BAD_NAME;
    }
    snprintf(tr->prefix, sizeof tr->prefix, "O2-%s/", ens);
    snprintf(tr->topic_disc, sizeof tr->topic_disc, "%sdisc", tr->prefix);
    tr->ring = calloc((size_t)tr->queue_max, sizeof *tr->ring);
    tr->builder = h->msg->builder_new(tr->self);
    if (!tr->ring || !tr->builder) return O2H_NO_MEMORY;
    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) return O2H_FAIL;
    tr->lib_init = true;
    tr->mosq = mosquitto_new(NULL, true, tr); /* clean session, id from the broker */
    if (!tr->mosq) return O2H_NO_MEMORY;
    mosquitto_int_option(tr->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (tr->username &&
        mosquitto_username_pw_set(tr->mosq, tr->username, tr->password) != MOSQ_ERR_SUCCESS)
        return O2H_NO_MEMORY;
    if (tr->tls) {
        int rc = mosquitto_tls_set(tr->mosq, tr->ca_file, tr->ca_file ? NULL : "/etc/ssl/certs",
                                   tr->cert_file, tr->key_file, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            h->log->write(tr->self, O2H_LOG_ERROR, "cannot set up TLS: %s", mosquitto_strerror(rc));
            return O2H_FAIL;
        }
    }
    mosquitto_log_callback_set(tr->mosq, on_mosquitto_log);
    /* QoS 1 publishes on the wire before their PUBACK (libmosquitto's default is 20,
     * which caps a far broker at 20 messages per round trip). */
    mosquitto_int_option(tr->mosq, MOSQ_OPT_SEND_MAXIMUM, tr->inflight);
    mosquitto_connect_callback_set(tr->mosq, on_connect);
    mosquitto_disconnect_callback_set(tr->mosq, on_disconnect);
    mosquitto_message_callback_set(tr->mosq, on_message);
    mosquitto_publish_callback_set(tr->mosq, on_publish);
    tr->backoff = tr->reconnect_min;
    tr->tick = h->loop->timer_start(tr->self, TICK, TICK, on_tick, tr);
    /* The broker is contacted once the process has a name (announce). */
    return tr->tick ? O2H_OK : O2H_NO_MEMORY;
}

static void mqtt_stop(void *instance) {
    mqtt_transport *tr = instance;
    const o2h_host *h = tr->host;
    tr->stopping = true;
    bool say_bye = tr->connected && tr->named;
    tr->named = tr->connected = false; /* nothing more to announce; no reconnect */
    if (say_bye) {
        char bye[32];
        int n = snprintf(bye, sizeof bye, "%s/bye", tr->name);
        tr->connected = true; /* just for this publish */
        publish(tr, tr->topic_disc, bye, (size_t)n, 0, false);
        tr->connected = false;
        mosquitto_disconnect(tr->mosq); /* written at once: no socket backlog on a clean stop */
    }
    while (tr->peers)
        peer_free(tr, tr->peers);
    h->loop->timer_stop(tr->tick);
    h->loop->timer_stop(tr->retry);
    tr->tick = tr->retry = NULL;
    h->loop->watch_remove(tr->watch);
    tr->watch = NULL;
    end_lookup(tr);
    if (tr->mosq) {
        h->log->write(tr->self, O2H_LOG_INFO,
                      "published %llu, received %llu, reconnected %llu times",
                      (unsigned long long)tr->published, (unsigned long long)tr->received,
                      (unsigned long long)tr->reconnects);
        mosquitto_destroy(tr->mosq); /* closes the socket */
        tr->mosq = NULL;
    }
    tr->connected = tr->connecting = false;
}

static void mqtt_destroy(void *instance) {
    mqtt_transport *tr = instance;
    if (tr->mosq) mqtt_stop(tr);
    if (tr->lib_init) mosquitto_lib_cleanup();
    if (tr->builder) tr->host->msg->builder_free(tr->builder);
    free(tr->brokers);
    free(tr->ring);
    free(tr->scratch);
    free(tr->username);
    free(tr->ca_file);
    free(tr->cert_file);
    free(tr->key_file);
    if (tr->password) { /* a secret should not linger in freed memory */
        for (volatile char *p = tr->password; *p; p++)
            *p = 0;
        free(tr->password);
    }
    free(tr);
}

static const o2h_transport_ops mqtt_ops = {
    .connect = NULL, /* links are made from discovery, never asked for by address */
    .send = mqtt_send,
    .close = mqtt_close,
    .announce = mqtt_announce,
};

static const o2h_plugin_desc mqtt_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "mqtt",
    .version = "1.0.0",
    .description = "O2's MQTT discovery and forwarding through a broker (libmosquitto)",
    .lifecycle = {mqtt_create, mqtt_start, mqtt_stop, mqtt_destroy},
    .ops = &mqtt_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &mqtt_desc;
}
