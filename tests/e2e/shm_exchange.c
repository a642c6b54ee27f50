#include "shm_exchange.h"

#include <stdio.h>
#include <string.h>

#define ACK_EVERY 1024

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";

static int32_t mix(uint32_t seq) {
    return (int32_t)(seq * 2654435761u);
}

static size_t text_len(uint32_t seq) {
    return seq % (sizeof alphabet);
}

static uint64_t fold(uint64_t sum, uint32_t seq, int32_t m, size_t len) {
    uint64_t v = ((uint64_t)seq << 32) ^ (uint32_t)m ^ ((uint64_t)len << 20);
    return (sum ^ v) * 1099511628211ull;
}

static void on_m(o2sm_client *c, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                 int argc, void *user_data) {
    exchange *x = user_data;
    uint32_t seq = (uint32_t)argv[0]->i;
    size_t len = strlen(argv[2]->s);
    if (seq != x->received || argv[1]->i != mix(seq) || len != text_len(seq) ||
        memcmp(argv[2]->s, alphabet, len) != 0)
        x->errors++;
    x->recv_sum = fold(x->recv_sum, seq, argv[1]->i, len);
    x->received++;
}

static void on_ack(o2sm_client *c, const o2h_msg *msg, const char *types,
                   const o2h_arg *const *argv, int argc, void *user_data) {
    exchange *x = user_data;
    if ((uint32_t)argv[0]->i > x->acked) x->acked = (uint32_t)argv[0]->i;
}

static void on_go(o2sm_client *c, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                  int argc, void *user_data) {
    exchange *x = user_data;
    x->go = 1;
}

int exchange_init(exchange *x, o2sm_client *c, const char *me, const char *peer, uint32_t n,
                  uint32_t window) {
    memset(x, 0, sizeof *x);
    x->c = c;
    snprintf(x->me, sizeof x->me, "%s", me);
    snprintf(x->peer, sizeof x->peer, "%s", peer);
    x->n = n;
    x->window = window;
    x->send_sum = x->recv_sum = 14695981039346656037ull;
    char path[64];
    int rc = o2sm_service_new(c, me, NULL);
    snprintf(path, sizeof path, "/%s/m", me);
    if (rc == O2H_OK) rc = o2sm_method_new(c, path, "iis", on_m, x, false, true);
    snprintf(path, sizeof path, "/%s/ack", me);
    if (rc == O2H_OK) rc = o2sm_method_new(c, path, "i", on_ack, x, false, true);
    snprintf(path, sizeof path, "/%s/go", me);
    if (rc == O2H_OK) rc = o2sm_method_new(c, path, "", on_go, x, false, false);
    return rc;
}

int exchange_run(exchange *x, double limit_s) {
    char m_addr[64], ack_addr[64];
    snprintf(m_addr, sizeof m_addr, "/%s/m", x->peer);
    snprintf(ack_addr, sizeof ack_addr, "/%s/ack", x->peer);
    char text[sizeof alphabet];
    double deadline = o2sm_local_time() + limit_s;
    while (x->sent < x->n || x->acked < x->n || x->received < x->n || x->ack_sent < x->n) {
        if (o2sm_local_time() > deadline) return -1;
        int progress = 0;
        while (x->sent < x->n && x->sent - x->acked < x->window) {
            uint32_t seq = x->sent;
            size_t len = text_len(seq);
            memcpy(text, alphabet, len);
            text[len] = '\0';
            int rc = o2sm_send_cmd(x->c, m_addr, 0, "iis", (int32_t)seq, mix(seq), text);
            if (rc == O2H_QUEUE_FULL) break;
            if (rc != O2H_OK) {
                x->send_errors++;
                return -1;
            }
            x->send_sum = fold(x->send_sum, seq, mix(seq), len);
            x->sent++;
            progress++;
        }
        int n = o2sm_poll(x->c);
        if (n < 0) return -1;
        progress += n;
        /* Acknowledge every ACK_EVERY messages and the last one. */
        if (x->received - x->ack_sent >= ACK_EVERY || (x->received == x->n && x->ack_sent < x->n)) {
            if (o2sm_send_cmd(x->c, ack_addr, 0, "i", (int32_t)x->received) == O2H_OK)
                x->ack_sent = x->received;
        }
        if (!progress && o2sm_wait(x->c, 1) < 0) return -1;
    }
    return 0;
}
