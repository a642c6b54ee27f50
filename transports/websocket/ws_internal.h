/*
 * The WebSocket transport's shared state and the functions its files call
 * in one another (websocket.c describes the transport as a whole):
 *  - websocket.c: lifecycle, config, libmicrohttpd on the loop, the descriptor;
 *  - ws_http.c:   libmicrohttpd's callbacks: static files and the upgrade;
 *  - ws_handoff.c: "mhd_thread": MHD's thread -> loop (rings, eventfd, logs);
 *  - ws_limits.c: per-address limit and header deadline of HTTP connections;
 *  - ws_conn.c:   upgraded sockets on a stream (stream.h): framing, closing;
 *  - ws_o2ws.c:   the O2ws protocol on a connection, to and from the core;
 *  - ws_stats.c:  GET /stats, the router's counters as Prometheus text;
 *  - ws_layouts.c: GET/PUT /layouts/NAME.json, the surface designer's files.
 * Everything else in those files is static; names that leave a file start
 * with o2h_ws_ (the plugin may be linked into a program beside others).
 */
#ifndef O2H_WS_INTERNAL_H
#define O2H_WS_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include <o2hub/plugin.h>

#include "handoff.h"
#include "http_dnssd.h"
#include "o2ws_codec.h"
#include "stream.h"
#include "tls_proxy.h"
#include "ws_frame.h"

#define WS_PATH "/o2ws"
#define MAX_MOUNTS 8
#define WS_READ_CHUNK 16384 /* one read of an upgraded socket */
/* A text frame's payload is formatted after this much room (a server frame's
 * largest header), so that header and payload leave in one send(): a gather
 * write of the two pieces costs the kernel measurably more per message. */
#define WS_HEADROOM 10

typedef struct ws_transport ws_transport;
typedef struct ws_http_conn ws_http_conn; /* ws_limits.c */

typedef struct ws_conn {
    ws_transport *tr;
    o2h_stream *stream; /* the socket, its output queue and its closing (stream.h) */
    struct MHD_UpgradeResponseHandle *urh;
    o2h_link *link;
    int bridge_id; /* > 0 once joined with /_o2/ws/dy */
    ws_decoder dec;
    uint8_t *in; /* what was read and not yet decoded (a frame's start) */
    size_t in_len, in_cap;
    bool closing; /* our close frame is queued: read and discard until EOF */
    bool dead;    /* the stream closed; the memory goes in the loop's deferred phase */
    o2h_timer *linger;
    o2h_timer *kick; /* bytes that came with the upgrade request wait for it */
    /* Pings answered while output waits: only the latest, once it drains. */
    uint8_t pong[125];
    uint8_t pong_len;
    bool pong_pending;
    o2h_timer *over; /* output over its bound: not read; closed with 1008 if it stays */
    bool paused;     /* the core holds what it sent for a full link: not read meanwhile */
    char peer[64];
    struct ws_conn *next;
} ws_conn;

typedef struct ws_mount {
    char url[64]; /* normalised prefix without slashes, e.g. "sdk" */
    char *dir;
    int fd;
} ws_mount;

/*
 * Threads. With "mhd_thread": false (the default) everything below runs on
 * the router's loop thread, MHD's callbacks included. With "mhd_thread":
 * true MHD's callbacks (ws_http.c: on_request, serve_file, upgrade,
 * on_upgraded, on_completed, mhd_log) run on MHD's own thread, and the
 * fields are owned:
 *  - set before MHD starts, then only read (both threads): host, self,
 *    bind_addr, root, root_fd, mounts, n_mounts, max_frame, max_clients,
 *    queue_limit, max_per_address, header_timeout, mhd_thread, handoff_cap,
 *    handoff_efd, loop_thread;
 *  - loop thread only: conns, n_conns, builder, text, rx, mhd, mhd_watch,
 *    mhd_timer, in_mhd, mhd_again, port, handoff_watch, refused_seen,
 *    dropped_seen, notable_seen, dnssd*, published, limits_timer, and
 *    every ws_conn;
 *  - MHD's thread only: each request's upgrade_req (in MHD's req_cls);
 *  - under limits_lock: waiting_head, waiting_tail and every ws_http_conn;
 *  - shared, atomics only: the rings `upgrades` (ws_handoff items, MHD's
 *    thread pushes, the loop pops) and `logs` (same, log lines), pending,
 *    clients, stopping, refused_full, logs_dropped, logs_dropped_notable.
 * MHD's thread never calls the host table: its log lines go through `logs`.
 * MHD_upgrade_action() is called on the loop; libmicrohttpd allows that from
 * any thread (it takes its own lock and wakes its thread).
 */
struct ws_transport {
    const o2h_host *host;
    o2h_plugin *self;
    struct sockaddr_in bind_addr;
    char *root; /* NULL: no files, only the WebSocket */
    int root_fd;
    ws_mount mounts[MAX_MOUNTS];
    int n_mounts;
    int64_t max_frame, max_clients, queue_limit;
    int64_t max_per_address, header_timeout; /* ws_limits.c */
    pthread_mutex_t limits_lock;
    bool limits_lock_ready;
    ws_http_conn *waiting_head, *waiting_tail; /* no whole request yet, by deadline */
    o2h_timer *limits_timer;
    char **origins; /* "allowed_origins" besides the server's own */
    int n_origins;
    char *token; /* NULL: no token asked */
    struct MHD_Daemon *mhd;
    o2h_watch *mhd_watch;
    o2h_timer *mhd_timer;
    bool in_mhd, mhd_again;
    int port;
    ws_conn *conns;
    int n_conns;
    o2h_builder *builder;
    o2ws_buf text;             /* scratch for formatting one message */
    uint8_t rx[WS_READ_CHUNK]; /* where every upgraded socket reads (stream.h) */
    bool dnssd;                /* publish as _http._tcp */
    char *dnssd_name;
    char *tls_cert, *tls_key; /* PEM text: HTTPS and wss:// when set */
    tls_proxy *tls;           /* listens instead of MHD when tls_cert is set */
    http_dnssd *published;
    /* "mhd_thread": true */
    bool mhd_thread;
    int64_t handoff_cap; /* "mhd_queue": upgrades handed over and not yet taken */
    int handoff_efd;     /* eventfd: MHD's thread -> loop */
    o2h_watch *handoff_watch;
    pthread_t loop_thread;
    handoff_ring upgrades, logs;
    atomic_int pending;               /* upgrades accepted (101 promised) and not yet taken */
    atomic_int clients;               /* n_conns, for MHD's thread's max_clients check */
    atomic_bool stopping;             /* no more upgrades */
    atomic_uint refused_full;         /* upgrades refused with 503: hand-off queue full */
    atomic_uint logs_dropped;         /* log lines lost: log ring full */
    atomic_uint logs_dropped_notable; /* of which warnings and errors */
    unsigned refused_seen, dropped_seen, notable_seen;
    /* GET /stats (ws_stats.c); with "mhd_thread", MHD's thread serves the
     * snapshot the loop refreshes every second, under stats_lock. */
    bool stats;
    pthread_mutex_t stats_lock;
    bool stats_lock_ready;
    char *stats_snapshot;
    int stats_port; /* tr->port as of the snapshot */
    o2h_timer *stats_timer;
    atomic_uint stats_scrapes;
    /* /layouts/ (ws_layouts.c): set before MHD starts, then only read, but
     * for layouts_seq (temporary file names). */
    char *layouts_dir; /* NULL: no "layouts", the endpoint is off */
    int layouts_fd;
    int64_t layouts_max;
    bool layouts_read_only;
    atomic_uint layouts_seq;
};

/* What MHD's req_cls points at besides the marker `tr`: a struct whose
 * first member is one of these. */
enum { WS_REQ_UPGRADE = 1, WS_REQ_LAYOUT = 2 };

/* ---- websocket.c: libmicrohttpd on the loop ---- */

/** Run MHD from the loop soon (not inside the caller's stack); a no-op with
 * "mhd_thread". */
void o2h_ws_mhd_run_soon(ws_transport *tr);
/** Hand an upgraded socket back to MHD to close, and let MHD run (any thread). */
void o2h_ws_upgrade_close(ws_transport *tr, struct MHD_UpgradeResponseHandle *urh);

/* ---- ws_http.c ---- */

/** Start libmicrohttpd with our callbacks and `flags` (the mode's). */
struct MHD_Daemon *o2h_ws_http_start_daemon(ws_transport *tr, unsigned flags);

/** "ip:port" of an HTTP connection's client (any thread). */
void o2h_ws_client_address(struct MHD_Connection *connection, char *out, size_t size);

/* ---- ws_limits.c ---- */

/** "max_per_address", "header_timeout" (create()). */
int o2h_ws_read_limits(ws_transport *tr, const o2h_cfg *cfg);
/** MHD_OPTION_NOTIFY_CONNECTION: a connection's deadline, and on the loop a run after a close. */
void o2h_ws_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code);
/** The whole request is in (it becomes a WebSocket if `upgrading`): no deadline now. */
void o2h_ws_request_in(ws_transport *tr, struct MHD_Connection *conn, bool upgrading);
/** A request is over: a connection kept alive waits for the next one, with a new deadline. */
void o2h_ws_request_done(ws_transport *tr, struct MHD_Connection *conn);
/** Before MHD starts: the lock and the loop's timer. */
int o2h_ws_limits_start(ws_transport *tr);
/** After MHD has stopped (every connection's context is gone by then). */
void o2h_ws_limits_stop(ws_transport *tr);

/* ---- ws_handoff.c ---- */

/** host->log->write from whichever thread runs MHD's callbacks. */
void o2h_ws_log(ws_transport *tr, int level, const char *fmt, ...) O2H_PRINTF(3, 4);
/** Wake the loop: something is in a ring (or a counter moved). */
void o2h_ws_handoff_signal(ws_transport *tr);
/** Give back an upgrade's slot in the hand-off queue. */
void o2h_ws_release_reservation(ws_transport *tr);
/** On MHD's thread: queue an upgraded socket for the loop in the slot
 * reserved for it (or close it and give the slot back). */
void o2h_ws_handoff_upgrade(ws_transport *tr, MHD_socket sock,
                            struct MHD_UpgradeResponseHandle *urh, const char *peer,
                            const char *extra, size_t extra_len);
/** Before MHD's thread starts: the eventfd, its watch and the rings. */
int o2h_ws_handoff_start(ws_transport *tr);
/** At stop, before MHD stops: no more upgrades, none left in flight. */
void o2h_ws_handoff_quiesce(ws_transport *tr);
/** After MHD's thread has ended: the last log lines, then the rings go. */
void o2h_ws_handoff_stop(ws_transport *tr);

/* ---- ws_stats.c ---- */

#define WS_STATS_PATH "/stats"
/** Before MHD starts: with "mhd_thread", the snapshot's lock. */
int o2h_ws_stats_start(ws_transport *tr);
/** Once the port is known: with "mhd_thread", the first snapshot and its timer. */
int o2h_ws_stats_listening(ws_transport *tr);
/** After MHD has stopped. */
void o2h_ws_stats_stop(ws_transport *tr);
/** Mark a response as `type`, never cached or sniffed. */
void o2h_ws_uncached(struct MHD_Response *r, const char *type);
/** Queue a response that owns `body` (malloc'd, freed in every case): no-store, nosniff. */
enum MHD_Result o2h_ws_respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               char *body, size_t len);
/** Answer GET /stats (any thread: the snapshot with "mhd_thread"). */
enum MHD_Result o2h_ws_serve_stats(ws_transport *tr, struct MHD_Connection *conn);

/* ---- ws_conn.c ---- */

/** An upgraded socket becomes a connection watched by the loop (loop thread). */
void o2h_ws_adopt(ws_transport *tr, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh,
                  const char *peer, const char *extra_in, size_t extra_in_size);
/* ws_access.c */
/** "allowed_origins", "token"/"token_env" (create()). */
int o2h_ws_read_access(ws_transport *tr, const o2h_cfg *cfg);
void o2h_ws_free_access(ws_transport *tr);
/** NULL when this upgrade may join, else the response text (status in *status); counted. */
const char *o2h_ws_access_refusal(ws_transport *tr, struct MHD_Connection *conn, int *status);
/**
 * The same rules for an HTTP endpoint (GET /stats, /layouts/): a web page of
 * another origin is refused (403), and with "token" the request carries
 * ?token= or "Authorization: Bearer" (else 401). NULL when it may go on;
 * `what` says who was refused and why, `method` and `path` name the request.
 */
const char *o2h_ws_http_refusal(const ws_transport *tr, struct MHD_Connection *conn,
                                const char *method, const char *path, int *status, char *what,
                                size_t what_size);

/* ---- ws_layouts.c ---- */

/** "layouts", "layouts_max_bytes", "layouts_read_only" (create()). */
int o2h_ws_read_layouts(ws_transport *tr, const o2h_cfg *cfg);
void o2h_ws_free_layouts(ws_transport *tr);
/** Before MHD starts: the folder's descriptor; after it stopped: closed. */
int o2h_ws_layouts_start(ws_transport *tr);
void o2h_ws_layouts_stop(ws_transport *tr);
/** Whether `url` is the endpoint's (never when it is off). */
bool o2h_ws_is_layouts_url(const ws_transport *tr, const char *url);
/** Whether MHD's req_cls is a layout request's, and freeing it. */
bool o2h_ws_is_layout_req(const void *req_cls);
void o2h_ws_layout_req_free(void *req_cls);
/** on_request's first call for the endpoint (sets *req_cls). */
enum MHD_Result o2h_ws_layouts_begin(ws_transport *tr, struct MHD_Connection *conn, const char *url,
                                     const char *method, void **req_cls);
/** on_request's later calls: body pieces, then the answer. */
enum MHD_Result o2h_ws_layouts_request(ws_transport *tr, struct MHD_Connection *conn,
                                       const char *url, const char *method, const char *upload_data,
                                       size_t *upload_data_size, void *req_cls);

/** Empty `b` for a text frame: its first WS_HEADROOM bytes are kept for the header. */
int o2h_ws_text_start(o2ws_buf *b);
/** Queue `b` (begun with o2h_ws_text_start) as one text frame, held to "send_queue_bytes". */
int o2h_ws_queue_text(ws_conn *c, o2ws_buf *b);
/** Queue one control frame (`n` at most 125); not held to "send_queue_bytes". */
int o2h_ws_queue_control(ws_conn *c, uint8_t opcode, const void *payload, size_t n);
/** Start the closing handshake with `code`. */
void o2h_ws_conn_fail(ws_conn *c, uint16_t code, const char *reason);
/** Gone for good (memory freed in the loop's deferred phase). */
void o2h_ws_conn_destroy(ws_conn *c);
/** At stop: a last "going away" where the socket takes it at once, then destroy. */
void o2h_ws_close_all(ws_transport *tr);
/** ops->close. */
void o2h_ws_close(void *instance, void *link_ctx);
int o2h_ws_pause(void *instance, void *link_ctx, bool paused);
size_t o2h_ws_queued(void *instance, void *link_ctx);

/* ---- ws_o2ws.c ---- */

/** One O2ws text message from the client (data is modified). */
void o2h_ws_on_text(ws_conn *c, uint8_t *data, size_t len);
/** ops->send: an O2 message to the client as O2ws text. */
int o2h_ws_send(void *instance, void *link_ctx, o2h_msg *msg);

#endif
