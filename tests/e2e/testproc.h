/*
 * Helpers for process-level tests: `peer` processes (tests/e2e/peer.c)
 * driven by line commands, temporary folders, free ports, raw sockets.
 * Every wait is bounded.
 */
#ifndef O2H_TESTPROC_H
#define O2H_TESTPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "netns_util.h"

typedef struct proc {
    pid_t pid;
    FILE *in;   /* its stdin */
    int out_fd; /* its stdout and stderr */
    char out[65536];
    size_t used;
    size_t seen; /* output before this offset has been matched already */
    int port;
    char config[160];
    const char *exe; /* NULL: the peer program */
    bool netns;      /* run in a network namespace of its own (lo up, nothing else) */
    char name[32];   /* its process name, once process_name() asked */
    /* NULL: expect() waits with poll(). Else it calls this to wait up to
     * timeout_ms for out_fd, doing other work meanwhile; true if readable. */
    bool (*wait)(int fd, int timeout_ms);
    const char *resolv; /* bind-mounted on /etc/resolv.conf in a mount namespace of its own */
} proc;

/** The test's temporary folder (made by make_tmpdir, removed by remove_tmpdir). */
extern char tmpdir[64];

double now_s(void);
/** A port that is free for TCP and UDP now (the kernel picks it). */
int free_port(void);
/** Start `peer p->config` (or p->exe when set) with pipes to its stdin and stdout. */
void start(proc *p);
/** Send one command line. */
void tell(proc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Wait (bounded) for a line containing `needle` after what was already matched. */
const char *expect(proc *p, const char *needle, double limit_s);
/** expect() or fail the test, showing the output. */
void must(proc *p, const char *needle, double limit_s);
void stop(proc *p, int sig);
void process_name(proc *p, char *name, size_t size);
void make_tmpdir(void);
void remove_tmpdir(void);
/** A connected TCP socket to 127.0.0.1:port. */
int tcp_to(int port);
void udp_to(int port, const void *data, size_t len);
/** One length-prefixed frame whose prefix claims `claimed` bytes. */
void send_frame(int fd, const void *data, uint32_t len, uint32_t claimed);
/** A numeric field of the peer's "stats" line. */
long stat_field(proc *p, const char *field);

/** A config with tcp+udp on `port`, the discovery entry `discovery` (JSON), `extra`
 * keys for the tcp object and `top` keys for the root object. */
void write_config_with(proc *p, const char *name, int port, const char *discovery,
                       const char *extra, const char *top);
/** Static discovery of `peers` (ended by -1). */
void write_config(proc *p, const char *name, int port, const int *peers, const char *extra);

#endif
