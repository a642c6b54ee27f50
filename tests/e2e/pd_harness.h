/*
 * What the Pd e2e tests (test_pd*.c) share: child processes (headless pd,
 * o2ctl, the test peer) with their stdout+stderr collected, bounded waits
 * for a line, patches written from C, and TAP-style checks. Every process
 * started is stopped by its PID at exit.
 */
#ifndef O2H_TEST_PD_HARNESS_H
#define O2H_TEST_PD_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "netns_util.h"

typedef struct proc {
    pid_t pid;
    int fd;   /* stdout and stderr together */
    FILE *in; /* its stdin, when started with one */
    char out[1 << 17];
    size_t used;
    size_t seen; /* expect_next() searches after this offset */
} proc;

extern int failures;
extern char tmpdir[64];

double now_s(void);
/** A TAP line; a failed check counts in `failures`. */
void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Start argv; with `want_stdin` p->in is its stdin; with `netns`, in a network namespace of
 * its own (lo up, nothing else). */
void spawn_with(proc *p, char *const argv[], bool want_stdin, bool netns);
void spawn(proc *p, char *const argv[]);
/** SIGTERM (SIGKILL after 3 s), reaped. */
void stop(proc *p);
/** SIGKILL at once, reaped: a crash, with no goodbye. */
void kill_hard(proc *p);
/** Read what is there within `ms`; false at the end of the output. */
bool drain(proc *p, int ms);
/** Wait at most `limit` s for `needle` anywhere in p's output. */
const char *expect(proc *p, const char *needle, double limit);
/** Wait at most `limit` s for `needle` after what expect_next matched before. */
const char *expect_next(proc *p, const char *needle, double limit);
/** Run to completion (at most `limit` s): the exit status, -1 on timeout. */
int run(proc *p, char *const argv[], double limit);
/** One command line to p's stdin. */
void tell(proc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** A port free for TCP and UDP on 127.0.0.1 now. */
int free_port(void);
void make_tmpdir(void);
void remove_tmpdir(void);
/** Write `text` to tmpdir/name; the path in `path`. */
void write_file(char *path, size_t size, const char *name, const char *text);

/* ---- Patches ----------------------------------------------------------------- */

typedef struct patch {
    char text[16384];
    size_t len;
    int n;
} patch;

/** An object ("obj") or message box ("msg"); its index for wire(). */
int obj(patch *p, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void wire(patch *p, int from, int outlet, int to, int inlet);
/** [o2receive PATH ARGS] printing its list as NAME and its time as NAME_T. */
int receive_print(patch *p, const char *path_args, const char *name);
/** [o2.status SERVICE] printing as NAME. */
int status_print(patch *p, const char *service, const char *name);
/**
 * The patch half of a two-way exchange with the test peer (tests/e2e/peer.c):
 * [o2receive /SVC/ping] answers the peer's "ping" (reply address, n) with
 * (n + 1, "pd") and prints PING; whenever [o2.status PEERSVC] becomes
 * available, the patch sends (/SVC/pong, 100) to /PEERSVC/ping, whose reply
 * it prints as PONG. STATUS prints the peer service's status.
 */
void answer_peer(patch *p, const char *svc, const char *peer_svc);
void write_patch(char *path, size_t size, const char *name, const patch *p);
/** o2ctl -e ENSEMBLE -H 127.0.0.1 ARGS...: run it (limit > 0 s: its exit status, -1 on
 * timeout) or start it (limit <= 0). */
int o2ctl_in(const char *ensemble, proc *p, double limit, const char *const *args);
/** pd -nogui -noaudio -stderr on the patch, with the external's folder in its path. */
void start_pd(proc *p, const char *patch_path);

#endif
