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

#define OSC_OUTBOX 256                 /* UDP datagrams a turn gathers for one sendmmsg */
#define OSC_OUTBOX_BYTES (256u * 1024) /* ... and their bytes (at least one largest datagram) */

typedef struct osc_plugin osc_plugin;
typedef struct osc_port osc_port;
typedef struct osc_delegate osc_delegate;

/** A TCP connection whose packets go into a port's service: one accepted by a
 * TCP port, or a delegate's connection with "replies" (freed with its stream). */
typedef struct osc_conn {
    osc_port *port;
    osc_delegate *delegate; /* a delegate's connection; NULL for an accepted one */
    o2h_stream *stream;
    osc_deframer df;
    osc_pacer pacer;
    struct osc_conn *next;
} osc_conn;

/** An OSC server: what arrives goes to `service`. A delegate with "replies" has
 * one too, without a socket of its own: its input is the delegate's socket. */
struct osc_port {
    osc_plugin *pl;
    char service[OSC_SERVICE_MAX];
    char label[96]; /* for log lines: "OSC UDP port 9001", "OSC replies from ..." */
    struct sockaddr_in bind_addr;
    bool tcp;
    osc_framing framing;
    int bound_port;
    double pace; /* seconds between reads during a flood (osc_pace.h); 0 never paces */
    /* UDP */
    int fd;
    o2h_watch *watch;
    osc_pacer pacer;
    uint32_t kernel_dropped;     /* the kernel's count (SO_RXQ_OVFL) at the last read */
    uint64_t kernel_dropped_all; /* since start */
    uint64_t kernel_logged_all;  /* the total the last log line gave */
    double kernel_logged;        /* local time of that line */
    /* TCP */
    int64_t max_connections;
    o2h_listener *listener;
    osc_conn *conns;
};

/** Whose datagrams a UDP delegate's reply input takes. */
typedef enum osc_replies_from {
    OSC_REPLIES_FROM_SERVER = 0, /* the socket is connected to the server: only its address:port */
    OSC_REPLIES_FROM_ANY = 1 /* bound to the local address that reaches the server, unconnected */
} osc_replies_from;

/** An O2 service provided by an OSC server (a link provider). */
struct osc_delegate {
    osc_plugin *pl;
    char service[OSC_SERVICE_MAX];
    char address[64]; /* as configured, for logs */
    struct sockaddr_in addr;
    bool tcp;
    osc_framing framing;
    o2h_link *link;
    /* "replies": what the server sends back goes into replies.service */
    bool has_replies;
    osc_replies_from replies_from; /* UDP only */
    osc_port replies;              /* UDP: its fd is this delegate's own socket */
    /* TCP only */
    o2h_stream *stream; /* the connection, connecting or up; NULL while down */
    osc_conn *conn;     /* with "replies": the input state of `stream` */
    bool connected;
    bool stopping; /* a connection closing now is not retried */
    o2h_timer *retry;
    double backoff;
};

/** UDP datagrams to OSC servers waiting for the end of the turn (osc_outbox.c). */
typedef struct osc_outbox {
    struct mmsghdr msgs[OSC_OUTBOX];
    struct iovec iov[OSC_OUTBOX];
    struct sockaddr_in to[OSC_OUTBOX];
    int fd[OSC_OUTBOX]; /* the socket each leaves by */
    uint32_t len;
    uint8_t *bytes; /* OSC_OUTBOX_BYTES, allocated at the first datagram */
    size_t used;
    o2h_deferred flush_later;
    uint64_t dropped; /* refused by a full socket (or for good) at the end of a turn */
    double logged_at;
} osc_outbox;

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
    osc_outbox outbox;
    uint8_t *rx; /* OSC_RX_BATCH x OSC_RX_SIZE */
    struct mmsghdr rx_msgs[OSC_RX_BATCH];
    struct iovec rx_iovs[OSC_RX_BATCH];
    union { /* SO_RXQ_OVFL: the socket's count of datagrams the kernel dropped */
        struct cmsghdr align;
        uint8_t buf[CMSG_SPACE(sizeof(uint32_t))];
    } rx_ctl[OSC_RX_BATCH];
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

/* osc_outbox.c */
/** Where the next UDP datagram is encoded (*room bytes); NULL without memory. */
uint8_t *o2h_osc_outbox_space(osc_plugin *pl, size_t *room);
/** The `n` bytes encoded there leave by `fd` to `to` (NULL: the socket is connected). */
void o2h_osc_outbox_add(osc_plugin *pl, int fd, const struct sockaddr_in *to, size_t n);
/** Write what waits now (end of turn; before a socket of a delegate closes). */
void o2h_osc_outbox_flush(osc_plugin *pl);

/* osc_port.c */
int o2h_osc_port_start(osc_port *p);
void o2h_osc_port_stop(osc_port *p);
/** Check one OSC packet and deliver its messages (drops and counts a bad one). */
void o2h_osc_port_packet(osc_port *p, const uint8_t *data, size_t len);
/** Read datagrams from `fd` (owned by the caller) into `p`'s service, paced as a UDP port. */
int o2h_osc_port_watch_udp(osc_port *p, int fd);
/** Stop reading the socket o2h_osc_port_watch_udp watches (the caller closes it). */
void o2h_osc_port_unwatch_udp(osc_port *p);
/** Input state for a TCP connection into `p` (deframed, paced); NULL without memory. */
osc_conn *o2h_osc_conn_new(osc_port *p);
/** Give `c` its stream, once it exists (o2h_stream_new or o2h_stream_connect). */
void o2h_osc_conn_attach(osc_conn *c, o2h_stream *s);
/* Stream ops of such a connection (ctx: the osc_conn). */
bool o2h_osc_conn_data(void *ctx, const uint8_t *data, size_t len);
void o2h_osc_conn_readable(void *ctx);
void o2h_osc_conn_free(void *ctx);
/** The connection's stream closed: stop its pacer. */
void o2h_osc_conn_closed(osc_conn *c);

#endif
