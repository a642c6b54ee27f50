/*
 * http_load PORT [PATH [CONNECTIONS [SECONDS]]]: an HTTP/1.1 load generator
 * for the websocket transport's static files. CONNECTIONS keep-alive
 * connections to 127.0.0.1:PORT (default 4) each send `GET PATH` (default
 * /index.html), read the whole answer (Content-Length), and send the next,
 * for SECONDS (default 3; the first 10 % are a warm-up, not counted). One
 * thread, epoll, no allocation per request. Prints requests/s and the
 * latency of a request (p50, p99), and a machine-readable line:
 *   HTTP_LOAD reqs=N seconds=S reqs_s=R p50_us=A p99_us=B errors=E
 * Exit status 1 when nothing was answered or any answer was not 200.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256
#define BUF 65536
#define MAX_SAMPLES (4 << 20)

typedef struct conn {
    int fd;
    char buf[BUF];
    size_t len;
    double sent_at;
} conn;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int open_conn(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Length of a complete answer at the start of buf (0: not complete yet, -1: malformed);
 * *status gets its status code. */
static long answer_length(const char *buf, size_t len, int *status) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - buf) + 4;
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1) return -1;
    long body = -1;
    for (const char *p = buf; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        p = nl + 1;
        if (strncasecmp(p, "Content-Length:", 15) == 0) body = strtol(p + 15, NULL, 10);
    }
    if (body < 0) return -1;
    return head + (size_t)body <= len ? (long)(head + (size_t)body) : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [PATH [CONNECTIONS [SECONDS]]]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    const char *path = argc > 2 ? argv[2] : "/index.html";
    int n = argc > 3 ? atoi(argv[3]) : 4;
    double seconds = argc > 4 ? atof(argv[4]) : 3.0;
    if (n < 1 || n > MAX_CONNS || seconds <= 0) return 2;
    char req[512];
    int req_len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    conn *cs = calloc((size_t)n, sizeof *cs);
    uint32_t *samples = malloc(MAX_SAMPLES * sizeof *samples);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || !samples || ep < 0) return 1;
    double start = now(), warm = start + seconds * 0.1, stop = start + seconds;
    for (int i = 0; i < n; i++) {
        cs[i].fd = open_conn(port);
        if (cs[i].fd < 0) {
            perror("connect");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        cs[i].sent_at = now();
        if (write(cs[i].fd, req, (size_t)req_len) != req_len) return 1;
    }
    long done = 0, errors = 0, reconnects = 0, nsamples = 0;
    struct epoll_event evs[64];
    for (double t = now(); t < stop; t = now()) {
        int k = epoll_wait(ep, evs, 64, 100);
        for (int e = 0; e < k; e++) {
            conn *c = &cs[evs[e].data.u32];
            ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            int status = 0;
            long whole = r > 0 ? answer_length(c->buf, c->len + (size_t)r, &status) : -1;
            if (r > 0) c->len += (size_t)r;
            if (whole == 0 && c->len < sizeof c->buf) continue;
            double t1 = now();
            if (whole > 0 && status == 200) {
                if (t1 >= warm) {
                    done++;
                    if (nsamples < MAX_SAMPLES)
                        samples[nsamples++] = (uint32_t)((t1 - c->sent_at) * 1e6);
                }
                memmove(c->buf, c->buf + whole, c->len - (size_t)whole);
                c->len -= (size_t)whole;
            } else { /* closed, malformed, too big or not 200: start over on a new socket */
                if (r != 0 || c->len) errors++;
                reconnects++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->len = 0;
                if ((c->fd = open_conn(port)) < 0) return 1;
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[e].data.u32};
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            }
            c->sent_at = t1;
            if (write(c->fd, req, (size_t)req_len) != req_len) errors++;
        }
    }
    double counted = stop - warm;
    qsort(samples, (size_t)nsamples, sizeof *samples, cmp_u32);
    uint32_t p50 = nsamples ? samples[nsamples / 2] : 0;
    uint32_t p99 = nsamples ? samples[(size_t)((double)nsamples * 0.99)] : 0;
    printf("http_load: %ld GET %s in %.2f s over %d connections: %.0f requests/s, p50 %u us, "
           "p99 %u us, %ld errors, %ld reconnects\n",
           done, path, counted, n, (double)done / counted, p50, p99, errors, reconnects);
    printf("HTTP_LOAD reqs=%ld seconds=%.3f reqs_s=%.0f p50_us=%u p99_us=%u errors=%ld\n", done,
           counted, (double)done / counted, p50, p99, errors);
    for (int i = 0; i < n; i++)
        close(cs[i].fd);
    free(cs);
    free(samples);
    return done > 0 && errors == 0 ? 0 : 1;
}
