/*
 * OSC servers that answer, as real processes for the e2e tests: scsynth on a
 * JACK server of the test's own (`jackd -d dummy` under a private server
 * name, no realtime, so it runs as root or not), and Pure Data with an echo
 * patch. Every process is stopped by its PID; logs go to files in a
 * temporary folder that is removed afterwards.
 */
#ifndef O2H_TEST_OSC_PEERS_H
#define O2H_TEST_OSC_PEERS_H

#include <stdbool.h>
#include <sys/types.h>

#include <o2hub/o2hub.h>

#define SC_SAMPLE_RATE 48000.0

typedef struct sc_server {
    pid_t jackd, scsynth;
    int port; /* scsynth's UDP or TCP port */
    bool tcp;
    char dir[64];
    char log[128]; /* scsynth's stdout and stderr */
    char jack_log[128];
    char why[512]; /* what went wrong */
} sc_server;

/** NULL when scsynth, jackd and jack_wait are installed, else why not. */
const char *sc_server_missing(void);
/** Start jackd, wait until it serves, start scsynth (-u or -t) and wait until it is ready. */
bool sc_server_start(sc_server *s, bool tcp);
/** Stop scsynth (it may have quit already) and jackd, remove what they left. */
void sc_server_stop(sc_server *s);
/** Lines of scsynth's log containing `needle`. */
int sc_server_count(const sc_server *s, const char *needle);

typedef struct pd_process {
    pid_t pid;
    int port; /* the patch's [netreceive -u -b] */
    char dir[64];
    char log[128];
    size_t seen; /* log bytes already matched by pd_wait_line */
    char why[256];
} pd_process;

/** NULL when pd is installed, else why not. */
const char *pd_missing(void);
/**
 * Start `pd -nogui` on a patch answering each OSC message /echo with /echo
 * and the same arguments as "ifs", sent with [netsend -u -b] to the address
 * the message came from. It prints o2hub-echo-ready once loaded and
 * o2hub-echo-sent for each answer.
 */
bool pd_start_echo(pd_process *p);
/** Wait (bounded) for a log line containing `needle` after the last one matched. */
bool pd_wait_line(pd_process *p, const char *needle, double limit_s);
/** The same while polling `r`. */
bool pd_wait_line_polling(pd_process *p, o2h_router *r, const char *needle, double limit_s);
void pd_stop(pd_process *p);

#endif
