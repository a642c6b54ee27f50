/*
 * o2l_platform.h — what the o2lite client needs from the system: a clock and
 * IPv4 UDP/TCP sockets, all non-blocking. o2l_platform_posix.c implements it
 * for Linux/macOS/BSD; to port o2lite to a microcontroller (lwIP, ESP-IDF,
 * a vendor stack), write these few functions and compile o2lite.c with them.
 *
 * IPv4 addresses and ports are in host byte order.
 */
#ifndef O2L_PLATFORM_H
#define O2L_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

typedef int o2l_sock;
#define O2L_NO_SOCK (-1)

/** A monotonic clock in seconds (any origin). */
double o2l_plat_time(void);

/**
 * Open a non-blocking UDP socket bound to `port` on all interfaces (0: any
 * port); store the bound port in *bound. O2L_NO_SOCK if the port is taken.
 */
o2l_sock o2l_plat_udp_open(int port, int *bound);
/** Send one datagram. 0 on success, -1 on failure. */
int o2l_plat_udp_send(o2l_sock s, uint32_t ip, int port, const void *data, size_t len);
/**
 * Receive one datagram into buf (at most cap bytes). Returns its full length
 * (larger than cap if it was truncated), or -1 if none is waiting.
 */
long o2l_plat_udp_recv(o2l_sock s, void *buf, size_t cap);

/** Start a non-blocking TCP connect (no Nagle delay). O2L_NO_SOCK on immediate failure. */
o2l_sock o2l_plat_tcp_connect(uint32_t ip, int port);
/** 1: connected, 0: still connecting, -1: failed. */
int o2l_plat_tcp_ready(o2l_sock s);
/** Send all bytes (may wait briefly for buffer space). 0 on success, -1 on failure. */
int o2l_plat_tcp_send(o2l_sock s, const void *data, size_t len);
/** Bytes read (> 0), 0 if nothing is waiting, -1 if closed or failed. */
long o2l_plat_tcp_recv(o2l_sock s, void *buf, size_t cap);
/** This end's IPv4 address of a connected TCP socket (what the host can reach). */
uint32_t o2l_plat_local_ip(o2l_sock s);

void o2l_plat_close(o2l_sock s);

#endif
