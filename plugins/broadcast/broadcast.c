/*
 * Broadcast discovery, as O2 does it when Bonjour is off (docs/discovery.md):
 * a UDP socket on the first free of O2's 16 discovery ports receives other
 * processes' !_o2/dy; this process's !_o2/dy goes to every discovery port
 * on 127.0.0.1 (broadcasts are not looped back) and, with "broadcast": true,
 * to 255.255.255.255 too. The interval grows from "interval_min" (0.33 s)
 * by 1.125x per round up to "interval_max" (4 s), and starts over when a
 * peer is lost.
 *
 * Broadcasting is off by default so that nothing leaves this machine unless
 * the config asks for it.
 *
 * More than 16 processes on one machine: a process that finds all 16 ports
 * taken still announces itself to them, from a port of its own (it is
 * "portless"), so the processes on the ports connect to it; but two portless
 * processes never hear each other. So every process on a discovery port
 * passes on (relays) what it hears to the portless processes of this
 * machine that announced themselves to it: all the announcements it knows
 * when one first appears, then each newly heard announcement once. Nothing
 * is relayed once every process is known, and both tables are bounded.
 *
 * Config: { "type": "broadcast", "broadcast": false,
 *           "interval_min": 0.33, "interval_max": 4.0 }
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <o2hub/plugin.h>

#define GROWTH 1.125
#define N_PORTS 16
#define RELAY_KNOWN 128    /* announcements remembered for relaying */
#define RELAY_PORTLESS 128 /* portless processes relayed to */
#define RELAY_MAX_DY 160   /* a !_o2/dy is about 80 bytes */
#define RELAY_EXPIRE_S 30.0

static const int discovery_ports[N_PORTS] = {64541, 60238, 57143, 55764, 56975, 62711,
                                             57571, 53472, 51779, 63714, 53304, 61696,
                                             50665, 49404, 64828, 54859};

/* An announcement (!_o2/dy datagram) heard, for relaying. */
typedef struct heard_dy {
    uint8_t data[RELAY_MAX_DY];
    uint16_t len;
    double last_heard;
} heard_dy;

/* A process on this machine that announced itself from a port that is not a discovery port. */
typedef struct portless {
    struct sockaddr_in addr;
    double last_heard;
} portless;

typedef struct broadcast_discovery {
    const o2h_host *host;
    o2h_plugin *self;
    bool broadcast;
    double interval_min, interval_max, interval;
    int fd;
    int my_port;
    o2h_watch *watch;
    o2h_timer *timer;
    heard_dy known[RELAY_KNOWN];
    int n_known;
    portless portless[RELAY_PORTLESS];
    int n_portless;
    uint8_t buf[65536];
} broadcast_discovery;

static void send_to(broadcast_discovery *bd, const o2h_msg *dy, uint32_t ip, int port) {
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(ip)};
    sendto(bd->fd, dy->data, dy->length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
}

static void send_round(broadcast_discovery *bd) {
    o2h_msg *dy = bd->host->proc->dy_message(bd->self, O2H_DY_INFO);
    if (!dy) return;
    for (int i = 0; i < N_PORTS; i++) {
        if (discovery_ports[i] != bd->my_port) send_to(bd, dy, INADDR_LOOPBACK, discovery_ports[i]);
        if (bd->broadcast) send_to(bd, dy, INADDR_BROADCAST, discovery_ports[i]);
    }
    bd->host->msg->msg_unref(dy);
}

static void schedule(broadcast_discovery *bd, double delay);

/* As O2: the longest interval grows with the processes heard (0.1 s each), so that each
 * process hears some 10 announcements a second however large the ensemble. */
static double longest_interval(const broadcast_discovery *bd) {
    double now = bd->host->loop->local_time(bd->self);
    int live = 0;
    for (int i = 0; i < bd->n_known; i++)
        if (now - bd->known[i].last_heard <= RELAY_EXPIRE_S) live++;
    double per_process = 0.1 * live;
    return per_process > bd->interval_max ? per_process : bd->interval_max;
}

static void on_tick(void *ctx) {
    broadcast_discovery *bd = ctx;
    send_round(bd);
    bd->interval *= GROWTH;
    double longest = longest_interval(bd);
    if (bd->interval > longest) bd->interval = longest;
    schedule(bd, bd->interval);
}

static void schedule(broadcast_discovery *bd, double delay) {
    bd->host->loop->timer_stop(bd->timer);
    bd->timer = bd->host->loop->timer_start(bd->self, delay, 0, on_tick, bd);
}

static bool is_discovery_port(int port) {
    for (int i = 0; i < N_PORTS; i++)
        if (discovery_ports[i] == port) return true;
    return false;
}

/* O2's UDP framing: int32 flags, float64 time, then the address. */
static bool is_dy(const uint8_t *data, size_t len) {
    return len >= 20 && len <= RELAY_MAX_DY && memcmp(data + 12, "!_o2/dy", 8) == 0;
}

/* The slot of the entry last heard longest ago, or a free one. */
static int oldest_known(const broadcast_discovery *bd) {
    if (bd->n_known < RELAY_KNOWN) return bd->n_known;
    int old = 0;
    for (int i = 1; i < RELAY_KNOWN; i++)
        if (bd->known[i].last_heard < bd->known[old].last_heard) old = i;
    return old;
}

static void relay_to(broadcast_discovery *bd, const heard_dy *k, const struct sockaddr_in *to) {
    sendto(bd->fd, k->data, k->len, MSG_DONTWAIT, (const struct sockaddr *)to, sizeof *to);
}

/* A portless process announced itself from `from`: remember it, and when it is new send it
 * every announcement known (but its own). Returns whether it was new. */
static bool note_portless(broadcast_discovery *bd, const struct sockaddr_in *from,
                          const uint8_t *data, size_t len, double now) {
    for (int i = 0; i < bd->n_portless; i++) {
        portless *p = &bd->portless[i];
        if (p->addr.sin_port == from->sin_port &&
            p->addr.sin_addr.s_addr == from->sin_addr.s_addr) {
            p->last_heard = now;
            return false;
        }
    }
    int slot = bd->n_portless < RELAY_PORTLESS ? bd->n_portless++ : -1;
    for (int i = 0; slot < 0 && i < bd->n_portless; i++)
        if (now - bd->portless[i].last_heard > RELAY_EXPIRE_S) slot = i;
    if (slot < 0) return false; /* full of live ones: it still hears from the others */
    bd->portless[slot] = (portless){.addr = *from, .last_heard = now};
    for (int i = 0; i < bd->n_known; i++) {
        const heard_dy *k = &bd->known[i];
        if (now - k->last_heard <= RELAY_EXPIRE_S &&
            !(k->len == len && !memcmp(k->data, data, len)))
            relay_to(bd, k, from);
    }
    return true;
}

/* Remember an announcement; when it is new, pass it on to every live portless process but its
 * sender. */
static void relay(broadcast_discovery *bd, const struct sockaddr_in *from, const uint8_t *data,
                  size_t len) {
    double now = bd->host->loop->local_time(bd->self);
    bool local = (ntohl(from->sin_addr.s_addr) >> 24) == 127;
    if (local && !is_discovery_port(ntohs(from->sin_port))) note_portless(bd, from, data, len, now);
    for (int i = 0; i < bd->n_known; i++) {
        heard_dy *k = &bd->known[i];
        if (k->len == len && !memcmp(k->data, data, len)) {
            k->last_heard = now;
            return;
        }
    }
    int slot = oldest_known(bd);
    if (slot == bd->n_known) bd->n_known++;
    heard_dy *k = &bd->known[slot];
    memcpy(k->data, data, len);
    k->len = (uint16_t)len;
    k->last_heard = now;
    for (int i = 0; i < bd->n_portless; i++) {
        const portless *p = &bd->portless[i];
        bool sender =
            p->addr.sin_port == from->sin_port && p->addr.sin_addr.s_addr == from->sin_addr.s_addr;
        if (!sender && now - p->last_heard <= RELAY_EXPIRE_S) relay_to(bd, k, &p->addr);
    }
}

static void on_readable(void *ctx, int fd, unsigned events) {
    broadcast_discovery *bd = ctx;
    (void)events;
    for (int i = 0; i < 32; i++) {
        struct sockaddr_in from = {0};
        socklen_t from_len = sizeof from;
        ssize_t n = recvfrom(fd, bd->buf, sizeof bd->buf, 0, (struct sockaddr *)&from, &from_len);
        if (n < 0) return;
        /* Only a process on a discovery port relays: portless ones are not heard by others. */
        if (bd->my_port && from_len == sizeof from && from.sin_family == AF_INET &&
            is_dy(bd->buf, (size_t)n))
            relay(bd, &from, bd->buf, (size_t)n);
        o2h_msg *m = bd->host->msg->msg_alloc(bd->self, (size_t)n);
        if (!m) return;
        memcpy(m->data, bd->buf, (size_t)n);
        m->length = (uint32_t)n;
        bd->host->link->deliver(bd->self, NULL, m); /* the core validates and handles !_o2/dy */
    }
}

static int bind_first_free(broadcast_discovery *bd) {
    for (int i = 0; i < N_PORTS; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)discovery_ports[i]),
                                .sin_addr.s_addr = htonl(INADDR_ANY)};
        if (bind(bd->fd, (struct sockaddr *)&a, sizeof a) == 0) {
            bd->my_port = discovery_ports[i];
            return O2H_OK;
        }
    }
    return O2H_NO_PORT;
}

static int bc_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    broadcast_discovery *bd = calloc(1, sizeof *bd);
    if (!bd) return O2H_NO_MEMORY;
    *bd = (broadcast_discovery){.host = host, .self = self, .fd = -1};
    if (host->cfg->get_bool(cfg, "broadcast", false, &bd->broadcast) == O2H_CONFIG_ERROR ||
        host->cfg->get_double(cfg, "interval_min", 0.33, &bd->interval_min) == O2H_CONFIG_ERROR ||
        host->cfg->get_double(cfg, "interval_max", 4.0, &bd->interval_max) == O2H_CONFIG_ERROR ||
        ((bd->interval_min <= 0 || bd->interval_max < bd->interval_min) &&
         host->cfg->error(cfg, NULL, "need 0 < interval_min <= interval_max"))) {
        free(bd);
        return O2H_CONFIG_ERROR;
    }
    *instance = bd;
    return O2H_OK;
}

static int bc_start(void *instance) {
    broadcast_discovery *bd = instance;
    bd->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (bd->fd < 0) return O2H_SOCKET_ERROR;
    int one = 1;
    if (bd->broadcast) setsockopt(bd->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    if (bind_first_free(bd) != O2H_OK) {
        /* Portless: announce from a port of our own; the processes on the discovery ports
         * connect to us and relay the others' announcements to it. */
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
        if (bind(bd->fd, (struct sockaddr *)&a, sizeof a) != 0) {
            close(bd->fd);
            bd->fd = -1;
            return O2H_SOCKET_ERROR;
        }
        bd->my_port = 0;
        bd->host->log->write(bd->self, O2H_LOG_INFO,
                             "all 16 O2 discovery ports are taken: announcing to them, and "
                             "hearing the others through the processes on them");
    } else {
        bd->host->log->write(bd->self, O2H_LOG_INFO, "discovery port %d%s", bd->my_port,
                             bd->broadcast ? ", broadcasting" : ", localhost only");
    }
    bd->watch = bd->host->loop->watch_fd(bd->self, bd->fd, O2H_EV_READ, on_readable, bd);
    return bd->watch ? O2H_OK : O2H_NO_MEMORY;
}

static int bc_announce(void *instance, const o2h_process_info *info) {
    broadcast_discovery *bd = instance;
    (void)info;
    bd->interval = bd->interval_min;
    send_round(bd);
    schedule(bd, bd->interval);
    return O2H_OK;
}

static int bc_withdraw(void *instance) {
    broadcast_discovery *bd = instance;
    bd->host->loop->timer_stop(bd->timer);
    bd->timer = NULL;
    return O2H_OK;
}

static void bc_stop(void *instance) {
    broadcast_discovery *bd = instance;
    bc_withdraw(bd);
    bd->host->loop->watch_remove(bd->watch);
    bd->watch = NULL;
    if (bd->fd >= 0) close(bd->fd);
    bd->fd = -1;
}

static void bc_destroy(void *instance) {
    free(instance);
}

static const o2h_discovery_ops bc_ops = {.announce = bc_announce, .withdraw = bc_withdraw};

static const o2h_plugin_desc bc_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_discovery_ops),
    .kind = O2H_PLUGIN_DISCOVERY,
    .name = "broadcast",
    .version = "1.0.0",
    .description = "O2's UDP discovery on its 16 discovery ports (localhost, optional broadcast)",
    .lifecycle = {bc_create, bc_start, bc_stop, bc_destroy},
    .ops = &bc_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &bc_desc;
}
