/* Helpers for the OSC e2e tests: an embedded router, child processes (liblo's tools). */
#ifndef O2H_TEST_OSC_HELPERS_H
#define O2H_TEST_OSC_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <o2hub/o2hub.h>

double now_mono(void);
double now_wall(void);

/** A port that is free now for `type` (SOCK_DGRAM or SOCK_STREAM) on 127.0.0.1. */
int free_port(int type);

/** A started router: reference clock, the osc plugin with `osc_json` (its object body). */
o2h_router *osc_router(const char *osc_json);
/** The same, with every log line (debug and up) given to `log`. */
o2h_router *osc_router_logged(const char *osc_json, o2h_log_fn log, void *log_ctx);

/** Poll `r` until *counter >= want or `limit_s` passes. */
bool poll_until(o2h_router *r, const int *counter, int want, double limit_s);

/** Poll `r` until the router's invalid-message counter reaches `want`. */
bool poll_invalid(o2h_router *r, uint64_t want, double limit_s);

uint64_t invalid_count(o2h_router *r);

/** A child process with its stdout and stderr on a pipe. */
typedef struct child {
    pid_t pid;
    int out;
    char buf[32768];
    size_t used, seen;
} child;

void child_spawn(child *c, char *const argv[]);

/**
 * Poll `r` and read the child until a line containing `needle` appears after
 * the last match; copy it (without newline) into `line`. False on timeout.
 */
bool child_line(child *c, o2h_router *r, const char *needle, double limit_s, char *line,
                size_t size);

/** Poll `r` until the child exits; its exit status, or -1 after `limit_s`. */
int child_wait(child *c, o2h_router *r, double limit_s);

void child_kill(child *c);

#endif
