/*
 * The MQTT transport's config (keys listed in mqtt.c and in the config
 * schema, which tests/schema/check_schema.py checks against the host->cfg
 * calls here): brokers, credentials, TLS files, timing and queue bounds.
 * Everything is checked at create time so that a bad config fails the
 * router's start, not a later connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_internal.h"

/* "host:port", "host" (port 1883) or "unix:/path". */
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

/* "broker" first, then the "failover" list, tried in turn. */
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

/* The numbers: keep-alive and timeouts, reconnect backoff, queue bounds. */
static int read_numbers(mqtt_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
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

int o2h_mqtt_read_config(mqtt_transport *tr, const o2h_cfg *cfg) {
    int rc = read_brokers(tr, cfg);
    if (rc == O2H_OK) rc = read_credentials(tr, cfg);
    if (rc == O2H_OK) rc = read_tls(tr, cfg);
    if (rc == O2H_OK) rc = read_numbers(tr, cfg);
    return rc;
}
