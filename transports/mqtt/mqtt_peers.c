/*
 * Processes reached through the broker, and what the broker tells about
 * them. On O2-<ensemble>/disc: what we announce, and what we hear, which
 * O2's decision table (doc/mqtt.txt) turns into a direct TCP connection made
 * by the core, a callback asking the other side to connect, or a link here
 * whose messages go through the broker. On our own topic: the messages such
 * processes send us. A peer not heard from on /disc for peer_timeout is gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_internal.h"

static mqtt_peer *find_peer(mqtt_transport *tr, const char *name) {
    for (mqtt_peer *p = tr->peers; p; p = p->next)
        if (strcmp(p->name, name) == 0) return p;
    return NULL;
}

/*
 * "@pip:iip:tcp:udp/dy/2.0.1" (or /cs/ once synchronised) to O2-<ens>/disc.
 * The first after each connect says /dy/, as an O2 process's does (it joins
 * before it syncs): O2 answers a /cs/ from a process it must still connect
 * to by TCP with a clock-synced notice for a connection not yet made, and
 * complains. Peers learn our sync on the link anyway (!_o2/cs/cs).
 */
void o2h_mqtt_announce_now(mqtt_transport *tr) {
    if (!tr->connected || !tr->named) return;
    char text[96];
    bool synced = tr->announced && tr->host->loop->time_get(tr->self) >= 0;
    tr->announced = true;
    int n = snprintf(text, sizeof text, "%s:%04x/%s/%s", tr->name, (unsigned)tr->udp_port,
                     synced ? "cs" : "dy", tr->version);
    o2h_mqtt_publish(tr, tr->topic_disc, text, (size_t)n, 0, false);
    tr->next_announce = o2h_mqtt_now(tr) + tr->keepalive;
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
    p->last_heard = o2h_mqtt_now(tr);
    p->next = tr->peers;
    tr->peers = p;
    return p;
}

/* Forget a peer and free its link (the core then loses the process). */
void o2h_mqtt_peer_free(mqtt_transport *tr, mqtt_peer *gone) {
    for (mqtt_peer **pp = &tr->peers; *pp; pp = &(*pp)->next)
        if (*pp == gone) {
            *pp = gone->next;
            break;
        }
    o2h_link *link = gone->link;
    free(gone);
    tr->host->link->link_free(link);
}

/* Processes not heard from on /disc for peer_timeout are gone (O2's timeouts). */
void o2h_mqtt_expire_peers(mqtt_transport *tr, double t) {
    mqtt_peer *p = tr->peers;
    while (p) {
        mqtt_peer *next = p->next;
        if (t - p->last_heard > tr->peer_timeout) {
            tr->host->log->write(tr->self, O2H_LOG_INFO, "process %s timed out", p->name);
            o2h_mqtt_peer_free(tr, p);
        }
        p = next;
    }
}

/* A peer we already have made a new proxy for us (it had lost us, e.g. to
 * our will after a network blip): it needs our clock state and services again. */
static mqtt_peer *reintroduce(mqtt_transport *tr, mqtt_peer *p, const char *name) {
    p->last_heard = o2h_mqtt_now(tr);
    if (tr->host->proc->process_link(tr->self, p->link, name) == O2H_ALREADY_RUNNING) {
        o2h_mqtt_peer_free(tr, p); /* the core reaches it another way now */
        return NULL;
    }
    return p;
}

/*
 * Reach `name` through the broker (O2's create_mqtt_connection). When it was
 * found on /disc, first ask it to do the same (!_o2/mqtt/dy); then the core
 * sends our clock state and service list on the new link.
 */
static mqtt_peer *via_broker(mqtt_transport *tr, const char *name, bool from_disc) {
    mqtt_peer *p = find_peer(tr, name);
    if (p && !from_disc) return reintroduce(tr, p, name);
    if (p) {
        p->last_heard = o2h_mqtt_now(tr);
        return p;
    }
    if (tr->host->link->service_status(tr->self, name) >= 0) return NULL; /* reached another way */
    p = peer_new(tr, name);
    if (!p) return NULL;
    if (from_disc) {
        o2h_builder *b = tr->builder;
        tr->host->msg->builder_start(b);
        tr->host->msg->add_string(b, tr->name);
        o2h_mqtt_publish_msg(tr, p->topic,
                             tr->host->msg->builder_finish(b, 0, "!_o2/mqtt/dy", O2H_FLAG_RELIABLE),
                             1);
    }
    int rc = tr->host->proc->process_link(tr->self, p->link, name);
    if (rc != O2H_OK) {
        tr->host->log->write(tr->self, O2H_LOG_DEBUG, "not reaching %s through the broker (%d)",
                             name, rc);
        o2h_mqtt_peer_free(tr, p);
        return NULL;
    }
    tr->host->log->write(tr->self, O2H_LOG_INFO, "process %s is reached through the broker", name);
    return p;
}

/* ---- /disc ---- */

/* The peer's !_o2/dy INFO as if a LAN discovery found it: the core connects by TCP. */
static void discovered_directly(mqtt_transport *tr, const mqtt_disc_info *d) {
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

typedef enum { DIRECT, CALLBACK, BROKER } reach;

/* O2's decision table (doc/mqtt.txt cases 1A..2C2) for a process new to us. */
static reach how_to_reach(const mqtt_transport *tr, const mqtt_disc_info *d) {
    int cmp = strcmp(tr->name, d->name);
    bool we_public = strcmp(tr->pip, tr->iip) == 0;
    if (!tr->direct) return BROKER;
    if (strcmp(d->pip, d->iip) == 0) /* 1: it is not behind NAT */
        return cmp < 0 || we_public ? DIRECT : BROKER;
    if (strcmp(d->pip, tr->pip) == 0) /* 2A: behind our NAT */
        return cmp > 0 ? CALLBACK : DIRECT;
    if (cmp < 0) /* 2B */
        return BROKER;
    return we_public ? CALLBACK : BROKER; /* 2C */
}

/* A process we have no link to announced itself. */
static void discovered(mqtt_transport *tr, const mqtt_disc_info *d) {
    switch (how_to_reach(tr, d)) {
    case DIRECT: discovered_directly(tr, d); break;
    case CALLBACK: {
        char topic[TOPIC_MAX];
        snprintf(topic, sizeof topic, "%s%s", tr->prefix, d->name);
        o2h_mqtt_publish_msg(tr, topic, tr->host->proc->dy_message(tr->self, O2H_DY_CALLBACK), 1);
        break;
    }
    case BROKER:
        if (via_broker(tr, d->name, true) && d->cs) peer_synced(tr, d->name);
        break;
    }
}

void o2h_mqtt_on_disc(mqtt_transport *tr, const uint8_t *payload, size_t len) {
    mqtt_disc_info d;
    if (len < JUNK || !o2h_mqtt_disc_parse((const char *)payload + JUNK, len - JUNK, &d)) {
        tr->host->link->count_invalid(tr->self,
                                      "MQTT /disc payload not \"@pip:iip:tcp:udp/dy/vers\"");
        return;
    }
    if (!tr->named || strcmp(d.name, tr->name) == 0) return; /* our own */
    mqtt_peer *known = find_peer(tr, d.name);
    if (d.bye) {
        if (known) {
            tr->host->log->write(tr->self, O2H_LOG_INFO, "process %s said goodbye", d.name);
            o2h_mqtt_peer_free(tr, known);
        }
        return;
    }
    if ((d.version & 0xff0000) != (O2H_O2_PROTOCOL_VERSION & 0xff0000)) return;
    if (known) {
        known->last_heard = o2h_mqtt_now(tr);
        if (d.cs) peer_synced(tr, d.name);
        return;
    }
    if (tr->host->link->service_status(tr->self, d.name) >= 0) return; /* connected another way */
    discovered(tr, &d);
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

/* The link a message arrived on, as far as the core needs to know. */
static o2h_link *arrived_on(mqtt_transport *tr, const o2h_msg *m, const char *address) {
    if (is_system(address, "_o2/sv")) {
        /* The sender names itself; the core takes service lists only from its path. */
        const char *name = first_string(tr, m);
        mqtt_peer *p = name ? find_peer(tr, name) : NULL;
        return p ? p->link : NULL;
    }
    if (address[1] != '_' || address[2] != 'o' || address[3] != '2') {
        /* MQTT does not say who sent a message, only that it came from another
         * process through the broker: so it is, for the core's rule that such
         * messages are never passed on to a third process. System messages
         * (!_o2/dy, !_o2/cs/cs) carry their sender and come with no link. */
        return tr->peers ? tr->peers->link : NULL;
    }
    return NULL;
}

/* A copy of a valid payload's message (NULL: invalid, counted, or no memory). */
static o2h_msg *inbox_message(mqtt_transport *tr, const uint8_t *payload, size_t len) {
    const o2h_host *h = tr->host;
    o2h_msg_error why;
    if (len < JUNK || len - JUNK > (size_t)tr->max_message ||
        h->msg->msg_validate(payload + JUNK, len - JUNK, &why) != O2H_OK) {
        h->link->count_invalid(tr->self, len < JUNK || len - JUNK > (size_t)tr->max_message
                                             ? "MQTT payload of a bad size"
                                             : "MQTT payload is not an O2 message");
        return NULL;
    }
    o2h_msg *m = h->msg->msg_alloc(tr->self, len - JUNK);
    if (!m) return NULL;
    memcpy(m->data, payload + JUNK, len - JUNK);
    m->length = (uint32_t)(len - JUNK);
    return m;
}

void o2h_mqtt_on_inbox(mqtt_transport *tr, const uint8_t *payload, size_t len) {
    const o2h_host *h = tr->host;
    o2h_msg *m = inbox_message(tr, payload, len);
    if (!m) return;
    tr->received++;
    const char *address = o2h_msg_address(m);
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
    h->link->deliver(tr->self, arrived_on(tr, m, address), m);
}
