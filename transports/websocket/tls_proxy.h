/*
 * HTTPS and wss:// in front of libmicrohttpd: this listens, does the TLS
 * handshake with GnuTLS on the router's loop, and hands every connection to
 * MHD as the plain end of a socket pair (MHD_add_connection), pumping bytes
 * between the TLS stream and the pair in both directions.
 *
 * Why not MHD's own TLS: libmicrohttpd before 1.0 (Debian 12 ships 0.9.75)
 * gives an upgraded TLS connection only its 8-byte emergency buffer, because
 * the 101 response took the whole connection pool: every WebSocket frame
 * then crossed in 4-byte TLS records. Terminating TLS here also leaves MHD
 * and the WebSocket code exactly as they are for plain HTTP.
 */
#ifndef O2HUB_WS_TLS_PROXY_H
#define O2HUB_WS_TLS_PROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <o2hub/plugin.h>

typedef struct tls_proxy tls_proxy;

/* A finished handshake: `fd` is the plain end of the pair (the callee owns it). */
typedef void (*tls_proxy_hand_fn)(void *ctx, int fd, const struct sockaddr *client,
                                  socklen_t client_len);

typedef struct tls_proxy_config {
    const o2h_host *host;
    o2h_plugin *self;
    struct sockaddr_in bind_addr;
    const char *cert_pem, *key_pem;
    int max_connections;      /* beyond it new connections are closed at once */
    double handshake_timeout; /* seconds */
    tls_proxy_hand_fn hand;
    void *hand_ctx;
} tls_proxy_config;

/* Listen and serve TLS. NULL with the reason in `why` (bad key pair, port taken). */
tls_proxy *tls_proxy_start(const tls_proxy_config *cfg, char *why, size_t why_size);

/* The port it listens on (useful when bind_addr asked for port 0). */
int tls_proxy_port(const tls_proxy *p);

/* Stop listening, close every connection, free everything; NULL is fine. */
void tls_proxy_stop(tls_proxy *p);

#endif
