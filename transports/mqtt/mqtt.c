/*
 * The MQTT transport: O2's MQTT scheme (O2's doc/mqtt.txt; docs/mqtt.md)
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
 * bytes that carry nothing (a packet id O2 writes at QoS 0 and skips on
 * receipt).
 *
 * libmosquitto runs inside the router's loop: its socket is watched with
 * host->loop->watch_fd, read and written with mosquitto_loop_read/write, and a
 * timer calls mosquitto_loop_misc (broker keep-alive), re-announces and
 * expires peers. No thread. After a lost connection it reconnects with a
 * backoff, trying the configured brokers in turn.
 *
 * This file holds the plugin's descriptor, lifecycle and transport ops; the
 * rest is in the files mqtt_internal.h lists, one concern each.
 *
 * Config: { "type": "mqtt", "broker": "127.0.0.1:1883", "failover": [],
 *           "keepalive": 15, "peer_timeout": 20, "direct": true,
 *           "reconnect_min": 0.1, "reconnect_max": 2.0, "connect_timeout": 5,
 *           "send_queue": 4096, "send_queue_bytes": 4194304, "inflight": 256 }
 * A broker is "host:port", "host" (port 1883) or "unix:/path/to/socket".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_internal.h"

/* ---- transport ops ---- */

static int mqtt_send(void *instance, void *link_ctx, o2h_msg *msg) {
    mqtt_transport *tr = instance;
    mqtt_peer *p = link_ctx;
    return o2h_mqtt_publish(tr, p->topic, msg->data, msg->length, o2h_msg_reliable(msg) ? 1 : 0,
                            true);
}

static void mqtt_close(void *instance, void *link_ctx) {
    o2h_mqtt_peer_free(instance, link_ctx);
}

/* The process's name is known at last: our topics, our will, and the broker. */
static int take_name(mqtt_transport *tr, const o2h_process_info *info) {
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
    o2h_mqtt_connect_broker(tr);
    return O2H_OK;
}

static int mqtt_announce(void *instance, const o2h_process_info *info) {
    mqtt_transport *tr = instance;
    if (tr->stopping || !tr->mosq) return O2H_OK;
    if (!tr->named) return take_name(tr, info);
    o2h_mqtt_announce_now(tr); /* a peer was lost: say we are here, so it is found again */
    return O2H_OK;
}

/* ---- lifecycle ---- */

static void mqtt_destroy(void *instance);

static int mqtt_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg,
                       void **instance) {
    mqtt_transport *tr = calloc(1, sizeof *tr);
    if (!tr) return O2H_NO_MEMORY;
    tr->host = host;
    tr->self = self;
    int rc = o2h_mqtt_read_config(tr, cfg);
    if (rc != O2H_OK) {
        mqtt_destroy(tr);
        return rc;
    }
    *instance = tr;
    return O2H_OK;
}

/* The libmosquitto client, set up but not connected. */
static int new_client(mqtt_transport *tr) {
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
            tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot set up TLS: %s",
                                 mosquitto_strerror(rc));
            return O2H_FAIL;
        }
    }
    /* QoS 1 publishes on the wire before their PUBACK (libmosquitto's default is 20,
     * which caps a far broker at 20 messages per round trip). */
    mosquitto_int_option(tr->mosq, MOSQ_OPT_SEND_MAXIMUM, tr->inflight);
    o2h_mqtt_set_callbacks(tr);
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
    int rc = new_client(tr);
    if (rc != O2H_OK) return rc;
    tr->backoff = tr->reconnect_min;
    tr->tick = h->loop->timer_start(tr->self, TICK, TICK, o2h_mqtt_on_tick, tr);
    /* The broker is contacted once the process has a name (announce). */
    return tr->tick ? O2H_OK : O2H_NO_MEMORY;
}

/* "@name/bye" on /disc, then DISCONNECT (no will: we said it ourselves). */
static void say_goodbye(mqtt_transport *tr) {
    char bye[32];
    int n = snprintf(bye, sizeof bye, "%s/bye", tr->name);
    tr->connected = true; /* just for this publish */
    o2h_mqtt_publish(tr, tr->topic_disc, bye, (size_t)n, 0, false);
    tr->connected = false;
    mosquitto_disconnect(tr->mosq); /* written at once: no socket backlog on a clean stop */
}

static void mqtt_stop(void *instance) {
    mqtt_transport *tr = instance;
    const o2h_host *h = tr->host;
    tr->stopping = true;
    bool say_bye = tr->connected && tr->named;
    tr->named = tr->connected = false; /* nothing more to announce; no reconnect */
    if (say_bye) say_goodbye(tr);
    while (tr->peers)
        o2h_mqtt_peer_free(tr, tr->peers);
    h->loop->timer_stop(tr->tick);
    h->loop->timer_stop(tr->retry);
    tr->tick = tr->retry = NULL;
    h->loop->watch_remove(tr->watch);
    tr->watch = NULL;
    o2h_mqtt_end_lookup(tr);
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
