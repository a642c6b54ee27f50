/*
 * The message exchange of the shm e2e test, run by the thread client (in the
 * test) and by the process client (shm_client.c): each side sends `n`
 * messages "/PEER/m" "iis" (sequence number, a mix of it, a string whose
 * length varies with it, so records wrap around the ring at every offset)
 * and checks what it receives: order, content and a checksum. Flow control
 * by acknowledgements ("/PEER/ack" "i" every 1024 messages) keeps at most
 * `window` messages in flight, so the host never finds a client's ring full.
 */
#ifndef SHM_EXCHANGE_H
#define SHM_EXCHANGE_H

#include <stdint.h>

#include "o2sm.h"

typedef struct exchange {
    o2sm_client *c;
    char me[32], peer[32];
    uint32_t n, window;
    /* progress */
    uint32_t sent, received, acked, ack_sent;
    uint32_t errors;      /* wrong sequence number, mix or string */
    uint32_t send_errors; /* sends refused for another reason than a full ring */
    uint64_t send_sum, recv_sum;
    int go; /* "/ME/go" received */
} exchange;

/** Install the handlers of `me` on the client (service and methods). */
int exchange_init(exchange *x, o2sm_client *c, const char *me, const char *peer, uint32_t n,
                  uint32_t window);

/** Run until everything is sent, received and acknowledged, or `limit_s` passes. 0 when done. */
int exchange_run(exchange *x, double limit_s);

#endif
