/* o2l_platform_posix.c — the o2lite platform layer on POSIX sockets and clock_gettime. */
#include "o2l_platform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on the socket instead */
#endif

#define SEND_WAIT_MS 1000 /* longest wait for TCP buffer space before giving up */

double o2l_plat_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static o2l_sock open_nonblocking(int type) {
    int s = socket(AF_INET, type, 0);
    if (s < 0) return O2L_NO_SOCK;
    if (fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(s, F_SETFD, FD_CLOEXEC) < 0) {
        close(s);
        return O2L_NO_SOCK;
    }
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    return s;
}

static struct sockaddr_in sockaddr_of(uint32_t ip, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(ip);
    a.sin_port = htons((uint16_t)port);
    return a;
}

o2l_sock o2l_plat_udp_open(int port, int *bound) {
    o2l_sock s = open_nonblocking(SOCK_DGRAM);
    if (s == O2L_NO_SOCK) return s;
    struct sockaddr_in a = sockaddr_of(INADDR_ANY, port);
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        close(s);
        return O2L_NO_SOCK;
    }
    *bound = ntohs(a.sin_port);
    return s;
}

int o2l_plat_udp_send(o2l_sock s, uint32_t ip, int port, const void *data, size_t len) {
    struct sockaddr_in a = sockaddr_of(ip, port);
    return sendto(s, data, len, MSG_NOSIGNAL, (struct sockaddr *)&a, sizeof a) == (ssize_t)len ? 0
                                                                                               : -1;
}

long o2l_plat_udp_recv(o2l_sock s, void *buf, size_t cap) {
#ifdef MSG_TRUNC
    ssize_t n = recv(s, buf, cap, MSG_TRUNC); /* Linux: the full length even if truncated */
#else
    ssize_t n = recv(s, buf, cap, 0);
#endif
    return n < 0 ? -1 : (long)n;
}

o2l_sock o2l_plat_tcp_connect(uint32_t ip, int port) {
    o2l_sock s = open_nonblocking(SOCK_STREAM);
    if (s == O2L_NO_SOCK) return s;
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = sockaddr_of(ip, port);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(s);
        return O2L_NO_SOCK;
    }
    return s;
}

int o2l_plat_tcp_ready(o2l_sock s) {
    struct pollfd p = {.fd = s, .events = POLLOUT};
    if (poll(&p, 1, 0) < 0) return errno == EINTR ? 0 : -1;
    if (!(p.revents & (POLLOUT | POLLERR | POLLHUP))) return 0;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) return -1;
    return (p.revents & POLLOUT) ? 1 : -1;
}

int o2l_plat_tcp_send(o2l_sock s, const void *data, size_t len) {
    const char *p = data;
    int waited = 0;
    while (len > 0) {
        ssize_t n = send(s, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            struct pollfd w = {.fd = s, .events = POLLOUT};
            if (waited >= SEND_WAIT_MS) return -1;
            poll(&w, 1, 10);
            waited += 10;
        } else {
            return -1;
        }
    }
    return 0;
}

long o2l_plat_tcp_recv(o2l_sock s, void *buf, size_t cap) {
    ssize_t n = recv(s, buf, cap, 0);
    if (n > 0) return (long)n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    return -1; /* 0 = the host closed the connection */
}

uint32_t o2l_plat_local_ip(o2l_sock s) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(s, (struct sockaddr *)&a, &len) < 0) return 0x7f000001;
    return ntohl(a.sin_addr.s_addr);
}

void o2l_plat_close(o2l_sock s) {
    if (s != O2L_NO_SOCK) close(s);
}
