/*
 * A port for a test or benchmark router on 127.0.0.1: the kernel picks one
 * for TCP, and it is kept only if UDP can have it too (routers bind both on
 * one number). Header-only, with no test framework: the e2e tests, the Pd
 * harness and the benchmarks include it.
 */
#ifndef O2H_TEST_PORT_UTIL_H
#define O2H_TEST_PORT_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* A port free for TCP and UDP on 127.0.0.1 now (the kernel picks it). */
static inline int pu_free_port(void) {
    for (int tries = 0; tries < 20; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bind(fd, (struct sockaddr *)&a, sizeof a);
        socklen_t len = sizeof a;
        getsockname(fd, (struct sockaddr *)&a, &len);
        close(fd);
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        int ok = bind(u, (struct sockaddr *)&a, sizeof a) == 0;
        close(u);
        if (ok) return ntohs(a.sin_port);
    }
    return 0;
}

#endif
