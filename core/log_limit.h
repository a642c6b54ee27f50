/* Rate-limited log lines: the state one repeating line keeps. */
#ifndef O2H_LOG_LIMIT_H
#define O2H_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* A log line that may repeat at line rate is written at most once per
 * RATE_LIMIT_SECONDS; the next one says how many were left out. */
#define RATE_LIMIT_SECONDS 10.0
typedef struct rate_limit {
    double last;
    uint64_t suppressed;
    bool logged;
} rate_limit;

#endif
