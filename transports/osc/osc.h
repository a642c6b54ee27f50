/*
 * The OSC transport's shared state: delegates (O2 services whose messages go
 * to an OSC server) and ports (OSC servers whose messages go into an O2
 * service). Everything lives in one osc_plugin instance; there is no global
 * state, so several routers in one process each have their own.
 */
#ifndef O2H_OSC_H
#define O2H_OSC_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include <o2hub/plugin.h>

#include "listener.h"
#include "osc_codec.h"
#include "osc_frame.h"
#include "osc_pace.h"
#include "stream.h"

#define OSC_SERVICE_MAX 64
#define OSC_UDP_MAX 65507 /* the largest UDP payload over IPv4 */
#define OSC_RX_BATCH 16   /* datagrams per recvmmsg */
#define OSC_RX_SIZE 65536
#define OSC_PACE_US_DEFAULT 50           /* a port's "pace_us" */
#define OSC_MAX_CONNECTIONS_DEFAULT 1024 /* a TCP port's "max_connections" */

typedef struct osc_plugin osc_plugin;

/** An O2 service provided by an OSC server (a link provider). */
typedef struct osc_delegate {
    osc_plugin *pl;
    char service[OSC_SERVICE_MAX];
    char address[64]; /* as configured, for logs */
    struct sockaddr_in addr;
    bool tcp;
    osc_framing framing;
    o2h_link *link;
    /* TCP only */
    o2h_stream *stream; /* the connection, connecting or up; NULL while down */
    bool connected;
    bool stopping; /* a connection closing now is not retried */
    o2h_timer *retry;
    double backoff;
} osc_delegate;

typedef struct osc_port osc_port;

/** A connection accepted by a TCP port (freed with its stream). */
typedef struct osc_conn {
    osc_port *port;
    o2h_stream *stream;
    osc_deframer df;
    osc_pacer pacer;
    struct osc_conn *next;
} osc_conn;

/** An OSC server: what arrives goes to `service`. */
struct osc_port {
    osc_plugin *pl;
    char service[OSC_SERVICE_MAX];
    struct sockaddr_in bind_addr;
    bool tcp;
    osc_framing framing;
    int bound_port;
    double pace; /* seconds between reads during a flood (osc_pace.h); 0 never paces */
    /* UDP */
    int fd;
    o2h_watch *watch;
    osc_pacer pacer;
    /* TCP */
    int64_t max_connections;
    o2h_listener *listener;
    osc_conn *conns;
};

struct osc_plugin {
    const o2h_host *host;
    o2h_plugin *self;
    osc_delegate *delegates;
    int n_delegates;
    osc_port *ports;
    int n_ports;
    int64_t max_packet;  /* largest OSC packet accepted or sent over TCP */
    int64_t queue_bytes; /* bound on each TCP delegate's send queue */
    int udp_fd;          /* unbound socket that UDP delegates send from */
    uint8_t *scratch;    /* an encoded packet */
    size_t scratch_cap;
    uint8_t *frame; /* the same framed for a TCP delegate */
    size_t frame_cap;
    uint8_t *rx; /* OSC_RX_BATCH x OSC_RX_SIZE */
    struct mmsghdr rx_msgs[OSC_RX_BATCH];
    struct iovec rx_iovs[OSC_RX_BATCH];
};

/* osc_plugin.c */
/** NTP and O2 (or local) time now. */
osc_clock o2h_osc_plugin_clock(const osc_plugin *pl);
/** Make `*buf` (pl->scratch, pl->frame) hold at least `n` bytes. */
bool o2h_osc_plugin_reserve(uint8_t **buf, size_t *cap, size_t n);

/* osc_delegate.c */
int o2h_osc_delegate_start(osc_delegate *d);
void o2h_osc_delegate_stop(osc_delegate *d);
int o2h_osc_delegate_send(osc_delegate *d, const o2h_msg *msg);

/* osc_port.c */
int o2h_osc_port_start(osc_port *p);
void o2h_osc_port_stop(osc_port *p);
/** Check one OSC packet and deliver its messages (drops and counts a bad one). */
void o2h_osc_port_packet(osc_port *p, const uint8_t *data, size_t len);

#endif
