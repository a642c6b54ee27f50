/*
 * The outbound path to the broker: every publish (O2's 2 leading bytes, then
 * the message), and the ring that bounds what waits for the broker. QoS 1
 * publishes stay in the ring until their PUBACK; the send queue's bounds
 * ("send_queue" entries, "send_queue_bytes") apply to them, so a slow or
 * absent broker turns into O2H_QUEUE_FULL for the core instead of memory.
 */
#include <stdlib.h>
#include <string.h>

#include "mqtt_internal.h"

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
void o2h_mqtt_ring_ack(mqtt_transport *tr, int mid) {
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

/* JUNK zero bytes + `len` bytes of `data` in tr->scratch, grown as needed. */
static bool fill_scratch(mqtt_transport *tr, const void *data, size_t len) {
    if (len + JUNK > tr->scratch_cap) {
        size_t cap = len + JUNK + 256;
        uint8_t *s = realloc(tr->scratch, cap);
        if (!s) return false;
        tr->scratch = s;
        tr->scratch_cap = cap;
    }
    tr->scratch[0] = tr->scratch[1] = 0;
    memcpy(tr->scratch + JUNK, data, len);
    return true;
}

/* Publish JUNK bytes + `len` bytes of `data` to `topic`. */
int o2h_mqtt_publish(mqtt_transport *tr, const char *topic, const void *data, size_t len, int qos,
                     bool bounded) {
    if (!tr->mosq) return O2H_SEND_FAIL;
    if (qos == 0 && !tr->connected) return O2H_SEND_FAIL;
    /* Best effort is never queued behind a socket backlog (inside libmosquitto's
     * callbacks everything waits for the write that follows them). */
    if (qos == 0 && bounded && !tr->in_lib && mosquitto_want_write(tr->mosq)) return O2H_QUEUE_FULL;
    if (qos > 0 && bounded && ring_full(tr, len + JUNK)) return O2H_QUEUE_FULL;
    if (!fill_scratch(tr, data, len)) return O2H_NO_MEMORY;
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
    o2h_mqtt_update_watch(tr);
    return O2H_OK;
}

/* Publish a message the transport built (NULL: the builder failed) and drop it. */
void o2h_mqtt_publish_msg(mqtt_transport *tr, const char *topic, o2h_msg *msg, int qos) {
    if (!msg) return;
    o2h_mqtt_publish(tr, topic, msg->data, msg->length, qos, false);
    tr->host->msg->msg_unref(msg);
}
