/* Shared parts of the shm benchmarks (see shmbench.c). */
#ifndef O2H_SHMBENCH_H
#define O2H_SHMBENCH_H

#include <stdint.h>

#include <o2hub/o2hub.h>

#include "o2sm.h"
#include "o2sm_shm.h"

double sb_now(void);
int64_t sb_now_ns(void);

/**
 * A started router (reference clock) with the shm transport on a socket of
 * its own; `extra` is appended to the transport's JSON object (or NULL).
 */
o2h_router *sb_router(char *socket_path, size_t size, const char *extra);

/** o2sm_connect from a helper thread while this thread polls the router. */
o2sm_client *sb_connect(o2h_router *r, const char *socket_path, int send_wait_ms,
                        uint32_t spin_max_ns);

/** Poll until `service` has status >= 0, at most `limit_s`. */
int sb_wait_service(o2h_router *r, const char *service, double limit_s);

/**
 * A bare ring pair in a fresh shm segment (shm_open, unlinked at once):
 * `a` produces into ring 0 and consumes ring 1, `b` the other way round.
 */
typedef struct sb_rings {
    void *mem;
    size_t size;
    o2sm_ring a_tx, a_rx, b_tx, b_rx;
} sb_rings;
int sb_rings_new(sb_rings *r, uint64_t ring_bytes);
void sb_rings_free(sb_rings *r);

/** A 32-byte O2 message "/bench/x" ",h" (int64 payload) ready to be copied. */
o2h_msg *sb_message(int64_t v);

double sb_percentile(double *values, int n, double q);

static inline void sb_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#endif
