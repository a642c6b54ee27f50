/*
 * The broker connection inside the router's loop. libmosquitto's socket is
 * watched with host->loop->watch_fd and read and written with
 * mosquitto_loop_read/write; a timer (on_tick) runs mosquitto_loop_misc
 * (keep-alive), re-announces and expires peers. No thread of libmosquitto's:
 * its callbacks run inside those calls (tr->in_lib counts them). After a lost
 * connection it reconnects with a backoff, trying the configured brokers in
 * turn; a broker's host name is first looked up off the loop (mqtt_lookup.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "mqtt_internal.h"

static void schedule_retry(mqtt_transport *tr);

/* "host:port" or "unix:/path", for logs. */
static const char *broker_text(const broker *b, char *buf, size_t size) {
    if (b->port)
        snprintf(buf, size, "%s:%d", b->host, b->port);
    else
        snprintf(buf, size, "unix:%s", b->host);
    return buf;
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
    tr->announced = false;
    tr->refusal_reported = tr->error_reported = false;
    tr->backoff = tr->reconnect_min;
    tr->retry_same = true;
    tr->host->log->write(tr->self, O2H_LOG_INFO, "connected to broker %s", where);
    mosquitto_subscribe(mosq, NULL, tr->topic_disc, 1);
    mosquitto_subscribe(mosq, NULL, tr->topic_self, 1);
    /* Peers kept through an outage get a full timeout to announce themselves again. */
    double t = o2h_mqtt_now(tr);
    for (mqtt_peer *p = tr->peers; p; p = p->next)
        p->last_heard = t;
    o2h_mqtt_announce_now(tr);
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
        o2h_mqtt_on_inbox(tr, payload, len);
    else if (strcmp(msg->topic, tr->topic_disc) == 0)
        o2h_mqtt_on_disc(tr, payload, len);
}

static void on_publish(struct mosquitto *mosq, void *ctx, int mid) {
    o2h_mqtt_ring_ack(ctx, mid);
}

void o2h_mqtt_set_callbacks(mqtt_transport *tr) {
    mosquitto_log_callback_set(tr->mosq, on_mosquitto_log);
    mosquitto_connect_callback_set(tr->mosq, on_connect);
    mosquitto_disconnect_callback_set(tr->mosq, on_disconnect);
    mosquitto_message_callback_set(tr->mosq, on_message);
    mosquitto_publish_callback_set(tr->mosq, on_publish);
}

/* ---- the socket in the router's loop ---- */

/* Write what callbacks queued in libmosquitto, then watch for writability if some is left. */
static void flush(mqtt_transport *tr) {
    if (tr->watch && mosquitto_want_write(tr->mosq)) {
        tr->in_lib++;
        mosquitto_loop_write(tr->mosq, 64);
        tr->in_lib--;
    }
    o2h_mqtt_update_watch(tr);
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

void o2h_mqtt_update_watch(mqtt_transport *tr) {
    if (!tr->watch) return;
    unsigned want = O2H_EV_READ | (mosquitto_want_write(tr->mosq) ? O2H_EV_WRITE : 0);
    if (want != tr->watch_events && tr->host->loop->watch_modify(tr->watch, want) == O2H_OK)
        tr->watch_events = want;
}

/* ---- connecting ---- */

void o2h_mqtt_end_lookup(mqtt_transport *tr) {
    tr->host->loop->watch_remove(tr->lookup_watch);
    tr->lookup_watch = NULL;
    o2h_mqtt_lookup_abandon(tr->lookup);
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
    bool found = o2h_mqtt_lookup_result(tr->lookup, addr, sizeof addr, &why);
    if (!found && strcmp(why, "pending") == 0) return; /* not yet (a spurious wake-up) */
    o2h_mqtt_end_lookup(tr);
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
void o2h_mqtt_connect_broker(mqtt_transport *tr) {
    tr->host->loop->watch_remove(tr->watch); /* connect_async closes the old socket */
    tr->watch = NULL;
    tr->connected = false;
    o2h_mqtt_end_lookup(tr);
    broker *b = &tr->brokers[tr->current];
    tr->connecting = true;
    tr->connect_started = o2h_mqtt_now(tr);
    if (b->port == 0 || o2h_mqtt_host_is_numeric(b->host)) {
        open_connection(tr, b->host);
        return;
    }
    tr->lookup = o2h_mqtt_lookup_start(b->host);
    if (tr->lookup)
        tr->lookup_watch = tr->host->loop->watch_fd(tr->self, o2h_mqtt_lookup_fd(tr->lookup),
                                                    O2H_EV_READ, on_lookup_done, tr);
    if (!tr->lookup_watch) {
        o2h_mqtt_end_lookup(tr);
        connect_failed(tr, "cannot start a name lookup");
    }
}

static void on_retry(void *ctx) {
    mqtt_transport *tr = ctx;
    tr->host->loop->timer_stop(tr->retry);
    tr->retry = NULL;
    if (!tr->connected) o2h_mqtt_connect_broker(tr); /* a slow CONNACK may have come meanwhile */
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

/* ---- the tick ---- */

/* A broker that has not answered (lookup or CONNACK) in connect_timeout: try the next. */
static void check_connect_timeout(mqtt_transport *tr, double t) {
    if (!tr->connecting || t - tr->connect_started <= tr->connect_timeout) return;
    char where[300];
    tr->host->log->write(tr->self, O2H_LOG_WARN, "broker %s: no answer in %.0f s",
                         broker_text(&tr->brokers[tr->current], where, sizeof where),
                         tr->connect_timeout);
    o2h_mqtt_end_lookup(tr);
    tr->connecting = false;
    tr->retry_same = false;
    schedule_retry(tr);
}

void o2h_mqtt_on_tick(void *ctx) {
    mqtt_transport *tr = ctx;
    double t = o2h_mqtt_now(tr);
    check_connect_timeout(tr, t);
    if (tr->watch) {
        tr->in_lib++;
        mosquitto_loop_misc(tr->mosq); /* keep-alive pings; may call on_disconnect */
        tr->in_lib--;
        flush(tr);
    }
    if (tr->connected && t >= tr->next_announce) o2h_mqtt_announce_now(tr);
    o2h_mqtt_expire_peers(tr, t);
}
