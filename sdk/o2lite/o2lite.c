/*
 * o2lite.c — the O2lite client: message builder and reader, dispatch, the
 * O2lite handshake, clock sync and UDP discovery (docs/o2lite.md).
 * Written from the protocol description; no code of O2 is used.
 *
 * Wire sequence (client side):
 *   discovery  UDP in   !_o2/dy "sissiii" ens vers pip iip tcp udp flag
 *                       (on the first free of O2's 16 discovery ports)
 *   connect    TCP out  !_o2/o2lite/con "si" my-ip-hex my-udp-port
 *              TCP in   !_o2/id "i" bridge-id
 *              TCP out  !_o2/o2lite/sv "siisi" name 1 1 "" 0   (per service;
 *                       name 0 1 "" 0 withdraws one)
 *   clock      UDP out  !_o2/o2lite/cs/get "iis" id serial "!_o2/cs/put"
 *              UDP in   !_o2/cs/put "it" serial host-time
 *              TCP out  !_o2/o2lite/cs/cs ""   (after 5 replies, once per connection)
 * TCP frames carry a 4-byte big-endian length before each message; UDP
 * datagrams hold one message. Only bit 0 of an incoming misc is looked at.
 *
 * All state lives in one static struct: this library models one device, like
 * O2's o2lite (see o2lite.h). Numbers are read and written byte by byte in
 * network order, so the code is independent of the CPU's endianness and
 * alignment.
 */
#include "o2lite.h"
#include "o2l_platform.h"
#ifdef O2L_ZEROCONF_DEFAULT
#include "o2l_dnssd.h"
#endif

#include <string.h>

#define MIN_MSG 20              /* misc + timestamp + 4 address + 4 types */
#define TCP_FRAME_LIMIT 0x10000 /* longer frames mean a broken stream: disconnect, as O2 does */
#define RETRY_SECONDS 1.0       /* o2l_set_host: reconnect interval */
#define CONNECT_SECONDS 3.0     /* TCP connect plus !_o2/id must complete within this */
#define AVOID_SECONDS 10.0      /* a discovered host that failed is ignored this long */
#define PING_HISTORY 5
#define NAME_MAX_LEN 63
#define O2_DY_INFO 50

static const uint16_t discovery_ports[16] = {64541, 60238, 57143, 55764, 56975, 62711,
                                             57571, 53472, 51779, 63714, 53304, 61696,
                                             50665, 49404, 64828, 54859};

/* A message buffer: 4 bytes of TCP length (host order when handed to a
 * handler), then the message from misc on. 8-byte aligned for o2l_msg. */
typedef union msgbuf {
    uint8_t b[O2L_MAX_MSG_LEN + 4];
    double align; /* for the o2l_msg view handlers get */
} msgbuf;

typedef struct method {
    const char *path, *typespec;
    bool full;
    o2l_handler handler;
    void *info;
} method;

static struct o2lite {
    bool initialized, dispatching;
    char ensemble[NAME_MAX_LEN + 1];
    double start;
    o2l_sock udp, disc, tcp;
    int udp_port;
    bool tcp_open;              /* the TCP connect completed */
    double connect_deadline;    /* when a connection still without an id is given up */
    bool fixed_host;            /* o2l_set_host() was called */
    o2l_discovery discovery;    /* a backend besides UDP discovery (poll == NULL: none) */
    double next_connect;        /* fixed host: when to try again */
    uint32_t host_ip, avoid_ip; /* avoid_*: a discovered host that failed */
    int host_tcp, host_udp, avoid_port;
    double avoid_until;
    int bridge_id;
    /* TCP input: length prefix, then body or bytes to skip */
    size_t tcp_got;
    uint32_t tcp_need, tcp_skip;
    msgbuf tcp_in, udp_in, out;
    /* builder */
    size_t out_len, types_at, args_at;
    int n_types;
    bool types_given, build_error;
    /* reader */
    const uint8_t *rd;
    const char *rd_type;
    size_t rd_pos, rd_end;
    bool rd_error;
    /* clock */
    double next_ping, sync_start, ping_sent, gml; /* gml: global minus local */
    int ping_serial, replies;
    double rtt[PING_HISTORY], offset[PING_HISTORY];
    bool synced, cs_sent;
    char services[O2L_MAX_SERVICES_LEN];
    method methods[O2L_MAX_METHODS];
    int n_methods;
    unsigned long dropped;
} L; /* all zero (in .bss, no flash copy): sockets are set up by o2l_initialize */

/* ------------------------------------------------------------------ */
/* byte order                                                          */

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put64(uint8_t *p, uint64_t v) {
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p) {
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static uint64_t double_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static double bits_double(uint64_t u) {
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static size_t pad4(size_t n) {
    return (n + 3) & ~(size_t)3;
}

/* ------------------------------------------------------------------ */
/* validation                                                          */

/* Length of the NUL-terminated string at p[pos..end), padded to 4, or 0 if unterminated. */
static size_t str_size(const uint8_t *p, size_t pos, size_t end) {
    const uint8_t *z = pos < end ? memchr(p + pos, 0, end - pos) : NULL;
    return z ? pad4((size_t)(z - (p + pos)) + 1) : 0;
}

/* Bytes the argument of type `t` at p[pos..end) takes, or -1 if it does not fit. */
static long arg_size(char t, const uint8_t *p, size_t pos, size_t end) {
    size_t room = pos <= end ? end - pos : 0, n;
    switch (t) {
    case 'i':
    case 'f':
    case 'c':
    case 'm':
    case 'B': n = 4; break;
    case 'h':
    case 't':
    case 'd': n = 8; break;
    case 'T':
    case 'F':
    case 'N':
    case 'I':
    case '[':
    case ']': n = 0; break;
    case 's':
    case 'S':
        n = str_size(p, pos, end);
        if (!n) return -1;
        break;
    case 'b':
        if (room < 4 || get32(p + pos) > room - 4) return -1;
        n = 4 + pad4(get32(p + pos));
        break;
    default: return -1;
    }
    return n <= room ? (long)n : -1;
}

/* Offsets of the type string (after ',') and of the arguments, if valid. */
static bool parse_layout(const uint8_t *p, size_t len, size_t *types, size_t *args) {
    if (len < MIN_MSG || (p[12] != '/' && p[12] != '!')) return false;
    size_t a = str_size(p, 12, len);
    if (!a || 12 + a >= len || p[12 + a] != ',') return false;
    size_t t = 12 + a, ts = str_size(p, t, len);
    if (!ts || t + ts > len) return false; /* the padded type string must fit too */
    size_t pos = t + ts;
    for (const uint8_t *c = p + t + 1; *c; c++) {
        if (*c == 'v') { /* vector: 'v' + element type, int32 byte count, elements */
            c++;
            size_t el = (*c == 'i' || *c == 'f') ? 4 : (*c == 'h' || *c == 'd') ? 8 : 0;
            if (!el || pos + 4 > len || get32(p + pos) % el || get32(p + pos) > len - pos - 4)
                return false;
            pos += 4 + get32(p + pos);
            continue;
        }
        long n = arg_size((char)*c, p, pos, len);
        if (n < 0) return false;
        pos += (size_t)n;
    }
    *types = t + 1;
    *args = t + ts;
    return true;
}

bool o2l_msg_valid(const void *msg, size_t length) {
    size_t t, a;
    return msg && parse_layout(msg, length, &t, &a);
}

/* ------------------------------------------------------------------ */
/* builder                                                             */

void o2l_send_start(const char *address, o2l_time time, const char *types, bool tcp) {
    uint8_t *b = L.out.b;
    size_t alen = strlen(address), tlen = types ? strlen(types) : O2L_MAX_TYPES;
    L.build_error = false;
    L.n_types = 0;
    L.types_given = types != NULL;
    L.types_at = 16 + pad4(alen + 1);
    L.args_at = L.types_at + pad4(tlen + 2);
    if (L.args_at > sizeof L.out.b) {
        L.build_error = true;
        L.out_len = L.args_at = L.types_at = 16;
        return;
    }
    memset(b, 0, L.args_at);
    put32(b + 4, tcp ? O2_TCP_FLAG : O2_UDP_FLAG);
    put64(b + 8, double_bits(time));
    memcpy(b + 16, address, alen);
    b[L.types_at] = ',';
    if (types) memcpy(b + L.types_at + 1, types, tlen);
    L.out_len = L.args_at;
}

/* Room for one argument of type `t` and `size` bytes (zero-filled), or NULL. */
static uint8_t *add_arg(char t, size_t size) {
    uint8_t *tp = L.out.b + L.types_at + 1 + L.n_types;
    if (L.build_error) return NULL;
    if (L.types_given ? *tp != t : L.n_types >= O2L_MAX_TYPES) goto fail;
    if (size > sizeof L.out.b - L.out_len) goto fail;
    *tp = (uint8_t)t;
    L.n_types++;
    uint8_t *p = L.out.b + L.out_len;
    memset(p, 0, size);
    L.out_len += size;
    return p;
fail:
    L.build_error = true;
    return NULL;
}

static void add32(char t, uint32_t v) {
    uint8_t *p = add_arg(t, 4);
    if (p) put32(p, v);
}

static void add64(char t, uint64_t v) {
    uint8_t *p = add_arg(t, 8);
    if (p) put64(p, v);
}

static void add_bytes(char t, const void *data, size_t n, bool counted) {
    uint8_t *p = add_arg(t, (counted ? 4 : 0) + pad4(n + !counted));
    if (!p) return;
    if (counted) put32(p, (uint32_t)n), p += 4;
    if (n) memcpy(p, data, n);
}

void o2l_add_int32(int32_t i) {
    add32('i', (uint32_t)i);
}

void o2l_add_int64(int64_t i) {
    add64('h', (uint64_t)i);
}

void o2l_add_float(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    add32('f', u);
}

void o2l_add_double(double x) {
    add64('d', double_bits(x));
}

void o2l_add_time(double t) {
    add64('t', double_bits(t));
}

void o2l_add_string(const char *s) {
    add_bytes('s', s, strlen(s), false);
}

void o2l_add_symbol(const char *s) {
    add_bytes('S', s, strlen(s), false);
}

void o2l_add_bool(bool b) {
    add32('B', b);
}

void o2l_add_char(char c) {
    add32('c', (uint32_t)(unsigned char)c);
}

void o2l_add_midi(uint32_t m) {
    add32('m', m);
}

void o2l_add_blob_data(int32_t size, const void *data) {
    if (size < 0) {
        L.build_error = true;
        return;
    }
    add_bytes('b', data, (size_t)size, true);
}

void o2l_add_blob(const o2l_blob *blob) {
    o2l_add_blob_data(blob->size, blob->data);
}

/* Close the type string (moving the arguments up when types were not given). */
static bool finish(void) {
    uint8_t *b = L.out.b;
    if (L.build_error || (L.types_given && b[L.types_at + 1 + L.n_types])) return false;
    if (!L.types_given) {
        size_t end = L.types_at + pad4((size_t)L.n_types + 2), n = L.out_len - L.args_at;
        memset(b + L.types_at + 1 + L.n_types, 0, end - (L.types_at + 1 + L.n_types));
        memmove(b + end, b + L.args_at, n);
        L.args_at = end;
        L.out_len = end + n;
        L.types_given = true; /* finished: a second call changes nothing */
    }
    put32(b, (uint32_t)(L.out_len - 4));
    return true;
}

const uint8_t *o2l_message_bytes(size_t *length) {
    *length = finish() ? L.out_len - 4 : 0;
    return L.out.b + 4;
}

static void drop_connection(void);

int o2l_send(void) {
    if (!finish()) return O2L_FAIL;
    if (!L.tcp_open) return O2L_FAIL;
    if (get32(L.out.b + 4) & O2_TCP_FLAG) {
        if (o2l_plat_tcp_send(L.tcp, L.out.b, L.out_len) == 0) return O2L_SUCCESS;
        drop_connection();
        return O2L_FAIL;
    }
    return o2l_plat_udp_send(L.udp, L.host_ip, L.host_udp, L.out.b + 4, L.out_len - 4) == 0
               ? O2L_SUCCESS
               : O2L_FAIL;
}

/* ------------------------------------------------------------------ */
/* reader                                                              */

/* The next argument if it has type `t` (or `t2`), else NULL and the error flag. */
static const uint8_t *get_arg(char t, char t2) {
    const uint8_t *p = L.rd + L.rd_pos;
    char have = L.rd_type ? *L.rd_type : 0;
    long n = -1;
    if (!L.rd_error && have && (have == t || have == t2))
        n = arg_size(have, L.rd, L.rd_pos, L.rd_end);
    if (n < 0) {
        L.rd_error = true;
        return NULL;
    }
    L.rd_type++;
    L.rd_pos += (size_t)n;
    return p;
}

int32_t o2l_get_int32(void) {
    const uint8_t *p = get_arg('i', 'i');
    return p ? (int32_t)get32(p) : 0;
}

int64_t o2l_get_int64(void) {
    const uint8_t *p = get_arg('h', 'h');
    return p ? (int64_t)get64(p) : 0;
}

float o2l_get_float(void) {
    const uint8_t *p = get_arg('f', 'f');
    uint32_t u = p ? get32(p) : 0;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

double o2l_get_double(void) {
    const uint8_t *p = get_arg('d', 'd');
    return p ? bits_double(get64(p)) : 0;
}

double o2l_get_time(void) {
    const uint8_t *p = get_arg('t', 't');
    return p ? bits_double(get64(p)) : 0;
}

const char *o2l_get_string(void) {
    const uint8_t *p = get_arg('s', 's');
    return p ? (const char *)p : "";
}

const char *o2l_get_symbol(void) {
    const uint8_t *p = get_arg('S', 'S');
    return p ? (const char *)p : "";
}

bool o2l_get_bool(void) {
    char have = L.rd_type ? *L.rd_type : 0;
    if (have == 'T' || have == 'F') return get_arg(have, have) && have == 'T';
    const uint8_t *p = get_arg('B', 'B');
    return p && get32(p) != 0;
}

char o2l_get_char(void) {
    const uint8_t *p = get_arg('c', 'c');
    return p ? (char)get32(p) : 0;
}

uint32_t o2l_get_midi(void) {
    const uint8_t *p = get_arg('m', 'm');
    return p ? get32(p) : 0;
}

o2l_blob_ptr o2l_get_blob(void) {
    uint8_t *p = (uint8_t *)get_arg('b', 'b');
    if (!p) return NULL;
    int32_t size = (int32_t)get32(p);
    memcpy(p, &size, 4); /* host order in place, as O2's o2lite does */
    return (o2l_blob_ptr)(void *)p;
}

double o2l_get_timestamp(void) {
    return L.rd ? bits_double(get64(L.rd + 4)) : 0;
}

bool o2l_get_error(void) {
    return L.rd_error || L.build_error;
}

/* ------------------------------------------------------------------ */
/* time and clock sync                                                 */

o2l_time o2l_local_time(void) {
    return L.initialized ? o2l_plat_time() - L.start : 0;
}

o2l_time o2l_time_get(void) {
    return L.synced ? o2l_local_time() + L.gml : -1;
}

static void clock_ping(double now) {
    L.ping_sent = now;
    L.ping_serial++;
    o2l_send_start("!_o2/o2lite/cs/get", 0, "iis", false);
    o2l_add_int32(L.bridge_id);
    o2l_add_int32(L.ping_serial);
    o2l_add_string("!_o2/cs/put");
    o2l_send();
    double since = now - L.sync_start;
    L.next_ping = now + (since > 5 ? 10 : since > 1 ? 0.5 : 0.1);
}

/* !_o2/cs/put "it": serial, host time. */
static void on_cs_put(void) {
    int32_t serial = o2l_get_int32();
    double host_time = o2l_get_time(), now = o2l_local_time();
    if (L.rd_error || serial != L.ping_serial || o2l_get_bridge_id() < 0) return;
    double rtt = now - L.ping_sent;
    int i = L.replies++ % PING_HISTORY;
    L.rtt[i] = rtt;
    L.offset[i] = host_time + rtt * 0.5 - now;
    if (L.replies < PING_HISTORY) return;
    int best = 0;
    for (i = 1; i < PING_HISTORY; i++)
        if (L.rtt[i] < L.rtt[best]) best = i;
    double est = L.offset[best], min_rtt = L.rtt[best];
    if (!L.synced) { /* first estimate: take it */
        L.gml = est;
        L.synced = true;
    } else if (L.gml < est - min_rtt) { /* far off: clamp to the estimate's error bound */
        L.gml = est - min_rtt;
    } else if (L.gml > est + min_rtt) {
        L.gml = est + min_rtt;
    } else if (L.gml < est - 0.002) { /* close: move 2 ms at a time, no jumps */
        L.gml += 0.002;
    } else if (L.gml > est + 0.002) {
        L.gml -= 0.002;
    } else {
        L.gml = est;
    }
    if (!L.cs_sent) { /* tell this host once per connection */
        L.cs_sent = true;
        o2l_send_start("!_o2/o2lite/cs/cs", 0, "", true);
        o2l_send();
    }
}

/* ------------------------------------------------------------------ */
/* services                                                            */

/* Copy the next comma-separated name of *list into name; false at the end. */
static bool next_name(const char **list, char *name) {
    const char *s = *list;
    while (*s == ',')
        s++;
    if (!*s) return false;
    size_t n = strcspn(s, ",");
    *list = s + n;
    if (n > NAME_MAX_LEN) n = 0; /* too long: sent as "" and ignored by the host */
    memcpy(name, s, n);
    name[n] = 0;
    return true;
}

static bool listed(const char *list, const char *name) {
    char other[NAME_MAX_LEN + 1];
    while (next_name(&list, other))
        if (!strcmp(other, name)) return true;
    return false;
}

static void send_sv(const char *name, int exists) {
    if (!*name) return;
    o2l_send_start("!_o2/o2lite/sv", 0, "siisi", true);
    o2l_add_string(name);
    o2l_add_int32(exists);
    o2l_add_int32(1); /* a service, not a tap */
    o2l_add_string("");
    o2l_add_int32(0);
    o2l_send();
}

static void send_services(const char *list, int exists, const char *unless_in) {
    char name[NAME_MAX_LEN + 1];
    while (next_name(&list, name))
        if (!unless_in || !listed(unless_in, name)) send_sv(name, exists);
}

int o2l_set_services(const char *services) {
    if (strlen(services) >= sizeof L.services) return O2L_FAIL;
    if (o2l_get_bridge_id() >= 0) {
        send_services(L.services, 0, services); /* withdraw names no longer listed */
        send_services(services, 1, NULL);
    }
    strcpy(L.services, services);
    return O2L_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* connection                                                          */

static uint32_t parse_hex_ip(const char *s) {
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = v << 4 | (uint32_t)d;
    }
    return s[8] ? 0 : v;
}

static uint32_t parse_dotted_ip(const char *s) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned part = 0, digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 4)
            part = part * 10 + (unsigned)(*s++ - '0'), digits++;
        if (!digits || part > 255 || *s++ != (i < 3 ? '.' : 0)) return 0;
        v = v << 8 | part;
    }
    return v;
}

static void open_discovery(void) {
    int port;
    for (int i = 0; i < 16 && L.disc == O2L_NO_SOCK; i++)
        L.disc = o2l_plat_udp_open(discovery_ports[i], &port);
}

static void close_socket(o2l_sock *s) {
    o2l_plat_close(*s);
    *s = O2L_NO_SOCK;
}

static void start_connect(double now) {
    L.tcp = o2l_plat_tcp_connect(L.host_ip, L.host_tcp);
    L.tcp_open = false;
    L.connect_deadline = now + CONNECT_SECONDS;
    L.tcp_got = L.tcp_need = L.tcp_skip = 0;
    if (L.tcp == O2L_NO_SOCK) drop_connection();
}

static void drop_connection(void) {
    double now = o2l_local_time();
    close_socket(&L.tcp);
    if (L.bridge_id < 0 && !L.fixed_host) { /* never got an id: not an O2lite host */
        L.avoid_ip = L.host_ip;
        L.avoid_port = L.host_tcp;
        L.avoid_until = now + AVOID_SECONDS;
    }
    L.tcp_open = false;
    L.bridge_id = -1;
    L.cs_sent = false;
    L.replies = 0;
    L.next_ping = 1e300;
    L.next_connect = now + RETRY_SECONDS;
    if (!L.fixed_host) open_discovery();
}

/* The TCP connection is up: introduce ourselves. */
static void connected(void) {
    char hex[9];
    uint32_t ip = o2l_plat_local_ip(L.tcp);
    for (int i = 0; i < 8; i++)
        hex[i] = "0123456789abcdef"[(ip >> (28 - 4 * i)) & 15];
    hex[8] = 0;
    close_socket(&L.disc); /* frees the discovery port for others while connected */
    L.tcp_open = true;
    o2l_send_start("!_o2/o2lite/con", 0, "si", true);
    o2l_add_string(hex);
    o2l_add_int32(L.udp_port);
    o2l_send();
}

/* !_o2/id "i" */
static void on_id(void) {
    int32_t id = o2l_get_int32();
    if (L.rd_error || !L.tcp_open || id < 0) return;
    L.bridge_id = id;
    send_services(L.services, 1, NULL);
    L.next_ping = o2l_local_time() + 0.05;
    L.sync_start = L.next_ping;
}

int o2l_offer_host(uint32_t ip, int tcp_port, int udp_port) {
    double now = o2l_local_time();
    if (!L.initialized || L.tcp != O2L_NO_SOCK || L.fixed_host || !ip || tcp_port <= 0 ||
        tcp_port > 0xffff || udp_port <= 0 || udp_port > 0xffff ||
        (ip == L.avoid_ip && tcp_port == L.avoid_port && now < L.avoid_until))
        return O2L_FAIL;
    L.host_ip = ip;
    L.host_tcp = tcp_port;
    L.host_udp = udp_port;
    start_connect(now);
    return L.tcp != O2L_NO_SOCK ? O2L_SUCCESS : O2L_FAIL;
}

/* !_o2/dy "sissiii": ensemble, version, public ip, internal ip, tcp, udp, flag */
static void on_dy(void) {
    const char *ens = o2l_get_string();
    int32_t version = o2l_get_int32();
    o2l_get_string();
    uint32_t ip = parse_hex_ip(o2l_get_string());
    int32_t tcp = o2l_get_int32(), udp = o2l_get_int32();
    if (L.rd_error || strcmp(ens, L.ensemble) || (version & 0xff0000) != (O2L_VERSION & 0xff0000))
        return;
    o2l_offer_host(ip, tcp, udp);
}

int o2l_set_discovery(const o2l_discovery *backend) {
    if (!L.initialized) return O2L_FAIL;
    if (L.discovery.finish) L.discovery.finish(L.discovery.ctx);
    memset(&L.discovery, 0, sizeof L.discovery);
    if (backend) L.discovery = *backend;
    return O2L_SUCCESS;
}

const char *o2l_ensemble_name(void) {
    return L.ensemble;
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

static bool matches(const method *m, const char *addr, const char *types) {
    const char *path = m->path + 1;
    size_t n = strlen(path);
    addr++;
    if (m->full ? strcmp(path, addr) != 0
                : strncmp(path, addr, n) != 0 || (addr[n] && addr[n] != '/'))
        return false;
    return !m->typespec || !strcmp(m->typespec, types);
}

/* buf->b[4 .. 4+len) holds a message from misc on. */
static void dispatch_buf(msgbuf *buf, size_t len) {
    size_t t, a;
    const uint8_t *p = buf->b + 4;
    if (L.dispatching || !parse_layout(p, len, &t, &a)) {
        L.dropped++;
        return;
    }
    int32_t len32 = (int32_t)len;
    memcpy(buf->b, &len32, 4);
    const char *addr = (const char *)p + 12, *types = (const char *)p + t;
    L.rd = p;
    L.rd_type = types;
    L.rd_pos = a;
    L.rd_end = len;
    L.rd_error = false;
    L.dispatching = true;
    static const struct {
        const char *addr, *types;
        void (*fn)(void);
    } sys[] = {
        {"_o2/id", "i", on_id}, {"_o2/cs/put", "it", on_cs_put}, {"_o2/dy", "sissiii", on_dy}};
    bool done = false;
    for (size_t i = 0; i < sizeof sys / sizeof sys[0] && !done; i++)
        if (!strcmp(addr + 1, sys[i].addr) && !strcmp(types, sys[i].types)) {
            sys[i].fn();
            done = true;
        }
    for (int i = L.n_methods - 1; i >= 0 && !done; i--) {
        method *m = &L.methods[i];
        if (matches(m, addr, types)) {
            m->handler((o2l_msg_ptr)(void *)buf->b, types, buf->b + 4 + a, m->info);
            done = true;
        }
    }
    if (!done) L.dropped++;
    L.dispatching = false;
    L.rd = NULL;
    L.rd_type = NULL;
}

void o2l_dispatch(const void *msg, size_t length) {
    if (L.dispatching || length > O2L_MAX_MSG_LEN) {
        L.dropped++;
        return;
    }
    memcpy(L.udp_in.b + 4, msg, length);
    dispatch_buf(&L.udp_in, length);
}

int o2l_method_new(const char *path, const char *typespec, bool full, o2l_handler h, void *info) {
    if (L.n_methods >= O2L_MAX_METHODS || !path || !*path || !h) return O2L_FAIL;
    L.methods[L.n_methods++] = (method){path, typespec, full, h, info};
    return O2L_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* polling                                                             */

/* Up to 32 datagrams; *s may be closed by a handler (a dy that connects us). */
static void read_udp(const o2l_sock *s) {
    for (int i = 0; i < 32 && *s != O2L_NO_SOCK; i++) {
        long n = o2l_plat_udp_recv(*s, L.udp_in.b + 4, O2L_MAX_MSG_LEN);
        if (n < 0) return;
        if (n > O2L_MAX_MSG_LEN)
            L.dropped++;
        else
            dispatch_buf(&L.udp_in, (size_t)n);
    }
}

static void read_tcp(void) {
    for (int i = 0; i < 64 && L.tcp != O2L_NO_SOCK; i++) {
        uint8_t *b = L.tcp_in.b;
        size_t want, cap = O2L_MAX_MSG_LEN;
        if (L.tcp_got < 4)
            want = 4 - L.tcp_got;
        else if (L.tcp_skip)
            want = L.tcp_skip < cap ? L.tcp_skip : cap;
        else
            want = L.tcp_need + 4 - L.tcp_got;
        long n = o2l_plat_tcp_recv(L.tcp, L.tcp_skip ? b + 4 : b + L.tcp_got, want);
        if (n == 0) return;
        if (n < 0) {
            drop_connection();
            return;
        }
        if (L.tcp_skip) {
            L.tcp_skip -= (uint32_t)n;
            if (!L.tcp_skip) L.tcp_got = 0;
            continue;
        }
        L.tcp_got += (size_t)n;
        if (L.tcp_got == 4) {
            L.tcp_need = get32(b);
            if (L.tcp_need >= TCP_FRAME_LIMIT) {
                drop_connection();
                return;
            }
            if (L.tcp_need < MIN_MSG || L.tcp_need > cap) {
                L.dropped++;
                L.tcp_skip = L.tcp_need;
                if (!L.tcp_skip) L.tcp_got = 0;
            }
        } else if (L.tcp_got == L.tcp_need + 4) {
            L.tcp_got = 0;
            dispatch_buf(&L.tcp_in, L.tcp_need);
        }
    }
}

void o2l_poll(void) {
    if (!L.initialized || L.dispatching) return;
    double now = o2l_local_time();
    if (L.tcp == O2L_NO_SOCK) {
        if (L.fixed_host && now >= L.next_connect) start_connect(now);
        if (!L.fixed_host) {
            if (L.disc == O2L_NO_SOCK && now >= L.next_connect) {
                open_discovery(); /* all 16 ports were taken: try again later */
                L.next_connect = now + RETRY_SECONDS;
            }
            read_udp(&L.disc);
        }
    }
    if (L.tcp != O2L_NO_SOCK && L.bridge_id < 0) {
        int ready = L.tcp_open ? 1 : o2l_plat_tcp_ready(L.tcp);
        if (ready < 0 || now >= L.connect_deadline)
            drop_connection();
        else if (ready > 0 && !L.tcp_open)
            connected();
    }
    if (L.tcp != O2L_NO_SOCK && L.tcp_open) read_tcp();
    read_udp(&L.udp);
    if (L.discovery.poll) L.discovery.poll(L.tcp == O2L_NO_SOCK && !L.fixed_host, L.discovery.ctx);
    if (L.bridge_id >= 0 && o2l_local_time() >= L.next_ping) clock_ping(o2l_local_time());
}

int o2l_initialize(const char *ensemble) {
    if (L.initialized) return O2L_ALREADY_RUNNING;
    if (!ensemble || strlen(ensemble) > NAME_MAX_LEN) return O2L_FAIL;
    strcpy(L.ensemble, ensemble);
    L.disc = L.tcp = O2L_NO_SOCK;
    L.bridge_id = -1;
    L.udp = o2l_plat_udp_open(0, &L.udp_port);
    if (L.udp == O2L_NO_SOCK) return O2L_FAIL;
    L.start = o2l_plat_time();
    L.initialized = true;
    L.next_ping = 1e300;
    open_discovery();
#ifdef O2L_ZEROCONF_DEFAULT
    /* As O2's o2lite: ZeroConf where the system has it, UDP discovery beside it
     * (a host that cannot be reached by DNS-SD is still found by a dy). */
    o2l_dnssd_enable();
#endif
    return O2L_SUCCESS;
}

int o2l_set_host(const char *ip, int tcp_port, int udp_port) {
    uint32_t a = ip ? parse_dotted_ip(ip) : 0;
    if (!L.initialized || !a || tcp_port <= 0 || tcp_port > 0xffff || udp_port < 0 ||
        udp_port > 0xffff)
        return O2L_FAIL;
    if (L.tcp != O2L_NO_SOCK) drop_connection();
    close_socket(&L.disc);
    o2l_set_discovery(NULL); /* no discovery backend either: the host is known */
    L.fixed_host = true;
    L.host_ip = a;
    L.host_tcp = tcp_port;
    L.host_udp = udp_port ? udp_port : tcp_port;
    L.next_connect = 0;
    return O2L_SUCCESS;
}

int o2l_finish(void) {
    if (!L.initialized) return O2L_FAIL;
    o2l_set_discovery(NULL);
    close_socket(&L.tcp);
    close_socket(&L.udp);
    close_socket(&L.disc);
    memset(&L, 0, sizeof L);
    return O2L_SUCCESS;
}

int o2l_get_bridge_id(void) {
    return L.initialized ? L.bridge_id : -1;
}

int o2l_status(void) {
    if (!L.initialized) return O2L_DISCONNECTED;
    if (L.bridge_id >= 0) return L.synced && L.cs_sent ? O2L_SYNCED : O2L_CONNECTED;
    return L.tcp != O2L_NO_SOCK ? O2L_CONNECTING : O2L_DISCONNECTED;
}

unsigned long o2l_dropped(void) {
    return L.dropped;
}
