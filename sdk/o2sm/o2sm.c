/* The o2sm client: see o2sm.h, and o2sm_shm.h for the segment and rings. */
#include "o2sm.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "o2sm_shm.h"

#define RELEASE_EVERY 32
#define HUP_CHECK_NS 10000000 /* look at the control socket at most every 10 ms in o2sm_poll */
#define SPIN_MIN_NS 500

typedef struct method {
    char *key; /* the path without its leading '/': "svc/a/b" or "svc" */
    char *typespec;
    o2sm_handler handler;
    void *user_data;
    bool coerce, parse;
} method;

typedef struct timed {
    double when;
    uint64_t seq;
    o2h_msg *msg;
} timed;

struct o2sm_client {
    int sock, efd_to_host, efd_from_host;
    o2sm_seg *seg;
    size_t seg_size;
    char seg_name[O2SM_SEG_NAME_MAX];
    int id;
    o2sm_ring tx; /* to_host: we produce */
    o2sm_ring rx; /* to_client: we consume */
    bool hup;
    bool synced;
    int send_wait_ms;
    uint32_t spin_max_ns, spin_ns;
    int64_t next_hup_check;
    o2h_pool *pool;
    o2h_builder *builder;  /* o2sm_send_start's */
    o2h_builder *vbuilder; /* o2sm_send's and the bridge protocol's: never clobbers the other */
    o2sm_stats stats;
    /* methods: open addressing, power-of-two capacity */
    method *methods;
    uint32_t n_methods, methods_cap;
    /* timed messages: a min-heap by (when, seq) */
    timed *heap;
    uint32_t heap_len, heap_cap, max_timed;
    uint64_t timed_seq;
    /* the answer to o2sm_status */
    char status_of[64];
    int status_value;
    bool status_got;
    /* decoding */
    o2h_arg *args;
    const o2h_arg **argv;
    uint32_t args_cap;
    uint8_t *scratch;
    size_t scratch_size;
};

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double o2sm_local_time(void) {
    return (double)mono_ns() * 1e-9;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void efd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n;
}

static void efd_clear(int fd) {
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
}

/* ---- connecting ---- */

static int socket_path(const char *name, char *out, size_t size) {
    if (!name || !name[0]) return O2H_BAD_NAME;
    int n = strchr(name, '/') ? snprintf(out, size, "%s", name)
                              : snprintf(out, size, "/tmp/o2sm-%s.sock", name);
    return n > 0 && (size_t)n < size ? O2H_OK : O2H_BAD_NAME;
}

/* The welcome and its three descriptors, waiting at most timeout_ms. */
static int receive_welcome(int sock, int timeout_ms, o2sm_welcome *w, int fds[3]) {
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int left = (int)((deadline - mono_ns()) / 1000000);
        if (left < 0) return O2H_BLOCKED;
        int n = poll(&pfd, 1, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return O2H_BLOCKED;
        break;
    }
    struct iovec iov = {.iov_base = w, .iov_len = sizeof *w};
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    int nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
                if (nfds < 3)
                    fds[nfds++] = fd;
                else
                    close(fd);
            }
        }
    int rc = O2H_OK;
    if (n != (ssize_t)sizeof *w || w->magic != O2SM_MAGIC || w->version != O2SM_VERSION)
        rc = n == 0 ? O2H_TCP_HUP : O2H_INVALID_MSG;
    else if (w->status != O2H_OK)
        rc = w->status;
    else if (nfds != 3 || (mh.msg_flags & MSG_CTRUNC))
        rc = O2H_INVALID_MSG;
    if (rc != O2H_OK) {
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
    }
    return rc;
}

static int map_segment(o2sm_client *c, int seg_fd, const o2sm_welcome *w) {
    struct stat st;
    uint64_t hdr = o2sm_header_size();
    uint64_t cap = w->ring_bytes;
    if (fstat(seg_fd, &st) != 0 || cap < 4096 || (cap & (cap - 1)) ||
        w->seg_size != hdr + 2 * cap || (uint64_t)st.st_size < w->seg_size)
        return O2H_INVALID_MSG;
    void *p = mmap(NULL, (size_t)w->seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, seg_fd, 0);
    if (p == MAP_FAILED) return O2H_NO_MEMORY;
    c->seg = p;
    c->seg_size = (size_t)w->seg_size;
    if (c->seg->magic != O2SM_MAGIC || c->seg->ring_bytes != cap || c->seg->data_offset != hdr)
        return O2H_INVALID_MSG;
    uint8_t *base = p;
    o2sm_ring_attach(&c->tx, &c->seg->to_host, base + hdr, cap, true);
    o2sm_ring_attach(&c->rx, &c->seg->to_client, base + hdr + cap, cap, false);
    return O2H_OK;
}

static void client_free(o2sm_client *c) {
    if (c->seg) munmap(c->seg, c->seg_size);
    if (c->sock >= 0) close(c->sock);
    if (c->efd_to_host >= 0) close(c->efd_to_host);
    if (c->efd_from_host >= 0) close(c->efd_from_host);
    for (uint32_t i = 0; i < c->methods_cap; i++)
        if (c->methods && c->methods[i].key) {
            free(c->methods[i].key);
            free(c->methods[i].typespec);
        }
    free(c->methods);
    for (uint32_t i = 0; i < c->heap_len; i++)
        o2h_msg_unref(c->heap[i].msg);
    free(c->heap);
    free(c->args);
    free(c->argv);
    free(c->scratch);
    if (c->builder) o2h_builder_free(c->builder);
    if (c->vbuilder) o2h_builder_free(c->vbuilder);
    if (c->pool) o2h_pool_free(c->pool);
    free(c);
}

o2sm_client *o2sm_connect(const char *name, const o2sm_options *opts, int *err) {
    int dummy;
    if (!err) err = &dummy;
    o2sm_options o = {0};
    if (opts) memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    *err = socket_path(name, addr.sun_path, sizeof addr.sun_path);
    if (*err != O2H_OK) return NULL;
    o2sm_client *c = calloc(1, sizeof *c);
    if (!c) {
        *err = O2H_NO_MEMORY;
        return NULL;
    }
    c->sock = c->efd_to_host = c->efd_from_host = -1;
    c->send_wait_ms = o.send_wait_ms > 0 ? o.send_wait_ms : 0;
    c->max_timed = o.max_timed ? o.max_timed : 4096;
    c->spin_max_ns = o.spin_max_ns ? o.spin_max_ns : 20000;
    c->spin_ns = c->spin_max_ns / 4 > SPIN_MIN_NS ? c->spin_max_ns / 4 : SPIN_MIN_NS;
    c->pool = o2h_pool_new();
    c->builder = c->pool ? o2h_builder_new(c->pool) : NULL;
    c->vbuilder = c->pool ? o2h_builder_new(c->pool) : NULL;
    c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (!c->builder || !c->vbuilder || c->sock < 0) {
        *err = c->sock < 0 ? O2H_SOCKET_ERROR : O2H_NO_MEMORY;
        client_free(c);
        return NULL;
    }
    if (connect(c->sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
        *err = O2H_TCP_CONNECT_FAIL;
        client_free(c);
        return NULL;
    }
    o2sm_hello hello = {.magic = O2SM_MAGIC, .version = O2SM_VERSION, .pid = (int32_t)getpid()};
    if (o.label) snprintf(hello.label, sizeof hello.label, "%s", o.label);
    if (send(c->sock, &hello, sizeof hello, MSG_NOSIGNAL) != (ssize_t)sizeof hello) {
        *err = O2H_SEND_FAIL;
        client_free(c);
        return NULL;
    }
    o2sm_welcome w;
    int fds[3];
    *err =
        receive_welcome(c->sock, o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 5000, &w, fds);
    if (*err != O2H_OK) {
        client_free(c);
        return NULL;
    }
    c->efd_to_host = fds[1];
    c->efd_from_host = fds[2];
    *err = map_segment(c, fds[0], &w);
    close(fds[0]);
    if (*err != O2H_OK) {
        client_free(c);
        return NULL;
    }
    c->id = w.client_id;
    w.seg_name[sizeof w.seg_name - 1] = '\0';
    snprintf(c->seg_name, sizeof c->seg_name, "%s", w.seg_name);
    c->next_hup_check = mono_ns() + HUP_CHECK_NS;
    return c;
}

int o2sm_get_id(const o2sm_client *c) {
    return c->id;
}

const char *o2sm_segment_name(const o2sm_client *c) {
    return c->seg_name;
}

int o2sm_fd(const o2sm_client *c) {
    return c->efd_from_host;
}

void o2sm_get_stats(const o2sm_client *c, o2sm_stats *out) {
    *out = c->stats;
}

/* ---- liveness ---- */

static bool check_hup(o2sm_client *c) {
    if (c->hup) return true;
    if (atomic_load_explicit(&c->seg->host_closing, memory_order_relaxed)) {
        c->hup = true;
        return true;
    }
    char b;
    ssize_t n = recv(c->sock, &b, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) c->hup = true;
    return c->hup;
}

bool o2sm_connected(o2sm_client *c) {
    return !check_hup(c);
}

/* ---- sending ---- */

/* Wait (bounded) for room in the ring to the host: a refill's worth, see
 * O2SM_REFILL_DIVISOR, at least `need` bytes. */
static int wait_room(o2sm_client *c, uint64_t need) {
    int64_t deadline = mono_ns() + (int64_t)c->send_wait_ms * 1000000;
    int64_t spin_end = mono_ns() + c->spin_ns;
    need = o2sm_ring_refill_room(&c->tx, need);
    for (;;) {
        int rc = o2sm_ring_room(&c->tx, need);
        if (rc != O2SM_RING_FULL) return rc == O2SM_RING_OK ? O2H_OK : O2H_SEND_FAIL;
        int64_t now = mono_ns();
        if (now >= deadline) return O2H_QUEUE_FULL;
        if (now < spin_end) {
            cpu_relax();
            continue;
        }
        if (check_hup(c)) return O2H_TCP_HUP;
        if (!o2sm_ring_prepare_wait_room(&c->tx, need)) continue;
        struct pollfd pfd[2] = {{.fd = c->efd_from_host, .events = POLLIN},
                                {.fd = c->sock, .events = POLLIN | POLLRDHUP}};
        int ms = (int)((deadline - now + 999999) / 1000000);
        c->stats.sleeps++;
        poll(pfd, 2, ms > 100 ? 100 : ms); /* wake now and then to look at the ring anyway */
        atomic_store_explicit(&c->tx.ctl->producer_sleeping, 0, memory_order_relaxed);
        if (pfd[0].revents & POLLIN) efd_clear(c->efd_from_host);
    }
}

/* After a record was published: wake the host if it sleeps. */
static void pushed(o2sm_client *c) {
    c->stats.sent++;
    if (o2sm_ring_should_wake_consumer(&c->tx)) {
        c->stats.wakeups_sent++;
        efd_signal(c->efd_to_host);
    }
}

static int push(o2sm_client *c, const uint8_t *data, uint32_t n) {
    if (c->hup) return O2H_TCP_HUP;
    uint64_t need = o2sm_record_size(n);
    if (need > c->tx.cap) return O2H_TOO_LARGE;
    int rc = o2sm_ring_push(&c->tx, data, n);
    if (rc == O2SM_RING_FULL && c->send_wait_ms > 0) {
        rc = wait_room(c, need);
        if (rc == O2H_OK)
            rc = o2sm_ring_push(&c->tx, data, n);
        else if (rc != O2H_QUEUE_FULL)
            return rc;
        else
            rc = O2SM_RING_FULL;
    }
    if (rc == O2SM_RING_FULL) {
        c->stats.send_full++;
        return O2H_QUEUE_FULL;
    }
    if (rc != O2SM_RING_OK) return O2H_SEND_FAIL;
    pushed(c);
    return O2H_OK;
}

int o2sm_message_send(o2sm_client *c, const o2h_msg *msg) {
    if (!msg) return O2H_BAD_ARGS;
    return push(c, msg->data, msg->length);
}

o2h_builder *o2sm_send_start(o2sm_client *c) {
    o2h_builder_start(c->builder);
    return c->builder;
}

static int finish_and_push(o2sm_client *c, o2h_builder *b, double time, const char *address,
                           bool reliable) {
    uint32_t flags = reliable ? O2H_FLAG_RELIABLE : 0;
    /* Straight into the ring when there is room in one piece: no copy. */
    size_t size = c->hup ? 0 : o2h_builder_encode(b, time, address, flags, NULL, 0);
    uint8_t *in_place = size ? o2sm_ring_reserve(&c->tx, (uint32_t)size) : NULL;
    if (in_place) {
        o2h_builder_encode(b, time, address, flags, in_place, size);
        o2sm_ring_commit(&c->tx, (uint32_t)size);
        pushed(c);
        return O2H_OK;
    }
    o2h_msg *m = o2h_builder_finish(b, time, address, flags);
    if (!m) {
        int rc = o2h_builder_error(b);
        return rc != O2H_OK ? rc : O2H_BAD_NAME;
    }
    int rc = push(c, m->data, m->length);
    o2h_msg_unref(m);
    return rc;
}

int o2sm_send_finish(o2sm_client *c, double time, const char *address, bool reliable) {
    return finish_and_push(c, c->builder, time, address, reliable);
}

static int sendv(o2sm_client *c, const char *address, double time, bool reliable, const char *types,
                 va_list ap) {
    o2h_builder *b = c->vbuilder;
    o2h_builder_start(b);
    va_list aq;
    va_copy(aq, ap);
    int rc = o2h_builder_add_va(b, types, &aq);
    va_end(aq);
    if (rc != O2H_OK) return rc;
    return finish_and_push(c, b, time, address, reliable);
}

int o2sm_send(o2sm_client *c, const char *address, double time, const char *types, ...) {
    va_list ap;
    va_start(ap, types);
    int rc = sendv(c, address, time, false, types, ap);
    va_end(ap);
    return rc;
}

int o2sm_send_cmd(o2sm_client *c, const char *address, double time, const char *types, ...) {
    va_list ap;
    va_start(ap, types);
    int rc = sendv(c, address, time, true, types, ap);
    va_end(ap);
    return rc;
}

/* ---- services (the bridge protocol) ---- */

static bool valid_service(const char *s) {
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')) || strlen(s) > 63)
        return false;
    return strchr(s, '/') == NULL;
}

static int send_sv(o2sm_client *c, const char *name, bool add, bool is_service, const char *extra,
                   int mode) {
    if (!valid_service(name)) return O2H_BAD_NAME;
    return o2sm_send_cmd(c, "!_o2/o2sm/sv", 0, "siisi", name, add ? 1 : 0, is_service ? 1 : 0,
                         extra ? extra : "", mode);
}

int o2sm_service_new(o2sm_client *c, const char *service, const char *properties) {
    return send_sv(c, service, true, true, properties, 0);
}

int o2sm_service_free(o2sm_client *c, const char *service) {
    return send_sv(c, service, false, true, "", 0);
}

int o2sm_tap(o2sm_client *c, const char *tappee, const char *tapper, int mode) {
    if (!tappee || !tappee[0]) return O2H_BAD_NAME;
    return send_sv(c, tapper, true, false, tappee, mode);
}

int o2sm_untap(o2sm_client *c, const char *tappee, const char *tapper) {
    if (!tappee || !tappee[0]) return O2H_BAD_NAME;
    return send_sv(c, tapper, false, false, tappee, 0);
}

/* ---- methods: a hash table of exact paths ---- */

static uint32_t hash_key(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static method *find_method(o2sm_client *c, const char *key, size_t n) {
    if (!c->methods_cap) return NULL;
    uint32_t mask = c->methods_cap - 1;
    for (uint32_t i = hash_key(key, n) & mask;; i = (i + 1) & mask) {
        method *m = &c->methods[i];
        if (!m->key) return NULL;
        if (strncmp(m->key, key, n) == 0 && m->key[n] == '\0') return m;
    }
}

static int grow_methods(o2sm_client *c) {
    uint32_t cap = c->methods_cap ? c->methods_cap * 2 : 16;
    method *t = calloc(cap, sizeof *t);
    if (!t) return O2H_NO_MEMORY;
    for (uint32_t i = 0; i < c->methods_cap; i++) {
        method *m = &c->methods[i];
        if (!m->key) continue;
        uint32_t j = hash_key(m->key, strlen(m->key)) & (cap - 1);
        while (t[j].key)
            j = (j + 1) & (cap - 1);
        t[j] = *m;
    }
    free(c->methods);
    c->methods = t;
    c->methods_cap = cap;
    return O2H_OK;
}

int o2sm_method_new(o2sm_client *c, const char *path, const char *typespec, o2sm_handler h,
                    void *user_data, bool coerce, bool parse) {
    if (!path || (path[0] != '/' && path[0] != '!') || !h) return O2H_BAD_ARGS;
    const char *key = path + 1;
    size_t svc_len = strcspn(key, "/");
    char svc[64];
    if (svc_len == 0 || svc_len >= sizeof svc) return O2H_BAD_NAME;
    memcpy(svc, key, svc_len);
    svc[svc_len] = '\0';
    if (!valid_service(svc) || strpbrk(key, "*?[]{}")) return O2H_BAD_NAME;
    method *m = find_method(c, key, strlen(key));
    if (!m) {
        if ((c->n_methods + 1) * 4 > c->methods_cap * 3 && grow_methods(c) != O2H_OK)
            return O2H_NO_MEMORY;
        uint32_t mask = c->methods_cap - 1;
        uint32_t i = hash_key(key, strlen(key)) & mask;
        while (c->methods[i].key)
            i = (i + 1) & mask;
        m = &c->methods[i];
        m->key = strdup(key);
        if (!m->key) return O2H_NO_MEMORY;
        c->n_methods++;
    } else {
        free(m->typespec);
    }
    m->typespec = typespec ? strdup(typespec) : NULL;
    m->handler = h;
    m->user_data = user_data;
    m->coerce = coerce;
    m->parse = parse;
    return O2H_OK;
}

/* ---- receiving ---- */

static int ensure_args(o2sm_client *c, uint32_t n, size_t scratch) {
    if (n > c->args_cap) {
        uint32_t cap = n < 16 ? 16 : n * 2;
        o2h_arg *a = realloc(c->args, cap * sizeof *a);
        if (!a) return O2H_NO_MEMORY;
        c->args = a;
        const o2h_arg **v = realloc(c->argv, cap * sizeof *v);
        if (!v) return O2H_NO_MEMORY;
        c->argv = v;
        c->args_cap = cap;
    }
    if (scratch > c->scratch_size) {
        uint8_t *s = realloc(c->scratch, scratch);
        if (!s) return O2H_NO_MEMORY;
        c->scratch = s;
        c->scratch_size = scratch;
    }
    return O2H_OK;
}

static void call_method(o2sm_client *c, const method *m, const o2h_msg *msg) {
    const char *types = o2h_msg_types(msg);
    if (m->typespec && !m->coerce && strcmp(types, m->typespec) != 0) {
        c->stats.dropped_bad_types++;
        return;
    }
    if (!m->parse) {
        if (m->typespec && m->coerce && strlen(types) != strlen(m->typespec)) {
            c->stats.dropped_bad_types++;
            return;
        }
        c->stats.delivered++;
        m->handler(c, msg, types, NULL, 0, m->user_data);
        return;
    }
    const char *want = m->typespec ? m->typespec : types;
    size_t n = strlen(want);
    if (ensure_args(c, (uint32_t)n + 1, (size_t)msg->length * 2 + 64) != O2H_OK) return;
    o2h_reader rd;
    if (o2h_reader_init(&rd, msg, c->scratch, c->scratch_size) != O2H_OK) {
        c->stats.dropped_bad_types++;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char t = want[i];
        if (t == 'v') c->args[i].v.type = 0;
        if (o2h_reader_next(&rd, t, &c->args[i]) != O2H_OK) {
            c->stats.dropped_bad_types++;
            return;
        }
        c->argv[i] = &c->args[i];
    }
    if (m->typespec && o2h_reader_peek(&rd) != 0) { /* more arguments than the typespec */
        c->stats.dropped_bad_types++;
        return;
    }
    c->stats.delivered++;
    m->handler(c, msg, m->typespec ? m->typespec : types, c->argv, (int)n, m->user_data);
}

static void dispatch_now(o2sm_client *c, const o2h_msg *msg);

static void dispatch_bundle(o2sm_client *c, const o2h_msg *bundle) {
    uint32_t pos = 0;
    const uint8_t *elem;
    uint32_t len;
    while (o2h_bundle_next(bundle, &pos, &elem, &len)) {
        o2h_msg *m = o2h_msg_alloc(c->pool, len);
        if (!m) return;
        memcpy(m->data, elem, len);
        m->length = len;
        dispatch_now(c, m);
        o2h_msg_unref(m);
    }
}

/* The host's answer to !_o2/o2sm/st: "!_o2/st" "si". */
static void take_status(o2sm_client *c, const o2h_msg *msg) {
    o2h_reader rd;
    o2h_arg name, status;
    if (strcmp(o2h_msg_types(msg), "si") != 0 || o2h_reader_init(&rd, msg, NULL, 0) != O2H_OK ||
        o2h_reader_next(&rd, 's', &name) != O2H_OK || o2h_reader_next(&rd, 'i', &status) != O2H_OK)
        return;
    if (strcmp(name.s, c->status_of) == 0) {
        c->status_value = status.i;
        c->status_got = true;
    }
}

static void dispatch_now(o2sm_client *c, const o2h_msg *msg) {
    if (o2h_msg_is_bundle(msg)) {
        dispatch_bundle(c, msg);
        return;
    }
    if (strcmp(o2h_msg_address(msg), "!_o2/st") == 0) {
        take_status(c, msg);
        return;
    }
    const char *key = o2h_msg_address(msg) + 1;
    const method *m = find_method(c, key, strlen(key));
    if (!m) m = find_method(c, key, strcspn(key, "/")); /* the service's own handler */
    if (!m) {
        c->stats.dropped_no_handler++;
        return;
    }
    call_method(c, m, msg);
}

/* ---- timed messages ---- */

static bool heap_less(const timed *a, const timed *b) {
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_push(o2sm_client *c, o2h_msg *msg, double when) {
    if (c->heap_len >= c->max_timed) {
        c->stats.dropped_timed_full++;
        o2h_msg_unref(msg);
        return;
    }
    if (c->heap_len == c->heap_cap) {
        uint32_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        timed *h = realloc(c->heap, cap * sizeof *h);
        if (!h) {
            c->stats.dropped_timed_full++;
            o2h_msg_unref(msg);
            return;
        }
        c->heap = h;
        c->heap_cap = cap;
    }
    uint32_t i = c->heap_len++;
    timed t = {when, c->timed_seq++, msg};
    while (i > 0 && heap_less(&t, &c->heap[(i - 1) / 2])) {
        c->heap[i] = c->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    c->heap[i] = t;
}

static o2h_msg *heap_pop(o2sm_client *c) {
    o2h_msg *top = c->heap[0].msg;
    timed last = c->heap[--c->heap_len];
    uint32_t i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1, s = i;
        const timed *best = &last;
        if (l < c->heap_len && heap_less(&c->heap[l], best)) {
            s = l;
            best = &c->heap[l];
        }
        if (l + 1 < c->heap_len && heap_less(&c->heap[l + 1], best)) s = l + 1;
        if (s == i) break;
        c->heap[i] = c->heap[s];
        i = s;
    }
    if (c->heap_len) c->heap[i] = last;
    return top;
}

/* ---- clock ---- */

static int64_t clock_offset(o2sm_client *c) {
    return atomic_load_explicit(&c->seg->clock_offset_ns, memory_order_acquire);
}

double o2sm_time_get(o2sm_client *c) {
    int64_t off = clock_offset(c);
    if (off == O2SM_NO_CLOCK) return -1;
    if (!c->synced) {
        c->synced = true; /* tell the host: our services become BRIDGE (6) */
        if (o2sm_send_cmd(c, "!_o2/o2sm/cs/cs", 0, "") != O2H_OK) c->synced = false;
    }
    return (double)(mono_ns() + off) * 1e-9;
}

/* ---- polling ---- */

int o2sm_poll(o2sm_client *c) {
    int64_t now_ns = mono_ns();
    if (now_ns >= c->next_hup_check) {
        c->next_hup_check = now_ns + HUP_CHECK_NS;
        check_hup(c);
    }
    if (c->hup) return O2H_TCP_HUP;
    double now = o2sm_time_get(c);
    int handled = 0;
    /* What is in the ring now (not what keeps arriving while we work). */
    uint64_t end = atomic_load_explicit(&c->rx.ctl->head, memory_order_acquire);
    if (end < c->rx.pos || end - c->rx.pos > c->rx.cap) {
        c->stats.dropped_invalid++;
        c->hup = true;
        return O2H_TCP_HUP;
    }
    c->rx.cached = end;
    uint32_t since_release = 0;
    while (c->rx.pos != end) {
        uint32_t n;
        if (o2sm_ring_peek(&c->rx, O2H_MSG_MAX_SIZE, &n) != O2SM_RING_OK) {
            c->stats.dropped_invalid++;
            c->hup = true;
            return O2H_TCP_HUP;
        }
        o2h_msg *m = o2h_msg_alloc(c->pool, n ? n : 4);
        if (!m) break;
        o2sm_ring_take(&c->rx, m->data, n);
        m->length = n;
        if (++since_release == RELEASE_EVERY) {
            o2sm_ring_release(&c->rx);
            since_release = 0;
        }
        c->stats.received++;
        if (o2h_msg_validate(m->data, m->length, NULL) != O2H_OK) {
            c->stats.dropped_invalid++;
            o2h_msg_unref(m);
            continue;
        }
        double when = o2h_msg_time(m);
        if (when > 0 && (now < 0 || when > now)) {
            if (now < 0) {
                c->stats.dropped_no_clock++;
                o2h_msg_unref(m);
            } else {
                heap_push(c, m, when); /* takes the reference */
            }
            continue;
        }
        dispatch_now(c, m);
        o2h_msg_unref(m);
        handled++;
    }
    o2sm_ring_release(&c->rx);
    if (c->heap_len && now >= 0) {
        while (c->heap_len && c->heap[0].when <= now) {
            o2h_msg *m = heap_pop(c);
            dispatch_now(c, m);
            o2h_msg_unref(m);
            handled++;
        }
    }
    return handled;
}

static bool has_input(o2sm_client *c) {
    return atomic_load_explicit(&c->rx.ctl->head, memory_order_acquire) != c->rx.pos;
}

int o2sm_wait(o2sm_client *c, int timeout_ms) {
    if (timeout_ms < 0) return O2H_BAD_ARGS;
    if (c->hup) return O2H_TCP_HUP;
    if (has_input(c)) return 1;
    int64_t start = mono_ns();
    int64_t deadline = start + (int64_t)timeout_ms * 1000000;
    if (c->heap_len) { /* a timed message falls due: no need to wait past it */
        double now = o2sm_time_get(c);
        if (now >= 0) {
            double due = c->heap[0].when - now;
            if (due <= 0) return 1;
            int64_t due_at = start + (int64_t)(due * 1e9);
            if (due_at < deadline) deadline = due_at;
        }
    }
    /* Spin first: a message that comes within spin_ns costs no system call. */
    int64_t spin_end = start + c->spin_ns;
    if (spin_end > deadline) spin_end = deadline;
    for (int64_t now = start; now < spin_end; now = mono_ns()) {
        for (int i = 0; i < 32; i++) {
            if (has_input(c)) {
                uint32_t grown = c->spin_ns * 2;
                c->spin_ns = grown < c->spin_max_ns ? grown : c->spin_max_ns;
                return 1;
            }
            cpu_relax();
        }
    }
    c->spin_ns = c->spin_ns / 2 > SPIN_MIN_NS ? c->spin_ns / 2 : SPIN_MIN_NS;
    for (;;) {
        int64_t now = mono_ns();
        if (now >= deadline) return c->heap_len ? 1 : 0;
        if (!o2sm_ring_prepare_sleep(&c->rx)) return 1;
        struct pollfd pfd[2] = {{.fd = c->efd_from_host, .events = POLLIN},
                                {.fd = c->sock, .events = POLLIN | POLLRDHUP}};
        int64_t left_us = (deadline - now + 999) / 1000;
        struct timespec ts = {.tv_sec = left_us / 1000000, .tv_nsec = (left_us % 1000000) * 1000};
        c->stats.sleeps++;
        int n = ppoll(pfd, 2, &ts, NULL);
        atomic_store_explicit(&c->rx.ctl->consumer_sleeping, 0, memory_order_relaxed);
        if (n > 0 && (pfd[0].revents & POLLIN)) efd_clear(c->efd_from_host);
        if (n > 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLRDHUP | POLLERR)) && check_hup(c))
            return O2H_TCP_HUP;
        if (has_input(c)) return 1;
    }
}

int o2sm_status(o2sm_client *c, const char *service, int timeout_ms) {
    if (!service || strlen(service) >= sizeof c->status_of || timeout_ms < 0) return O2H_BAD_ARGS;
    snprintf(c->status_of, sizeof c->status_of, "%s", service);
    c->status_got = false;
    int rc = o2sm_send_cmd(c, "!_o2/o2sm/st", 0, "s", service);
    if (rc != O2H_OK) return rc;
    int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        rc = o2sm_poll(c);
        if (rc < 0) return rc;
        if (c->status_got) {
            c->status_of[0] = '\0';
            return c->status_value;
        }
        int64_t left = deadline - mono_ns();
        if (left <= 0) break;
        rc = o2sm_wait(c, (int)((left + 999999) / 1000000));
        if (rc < 0) return rc;
    }
    c->status_of[0] = '\0';
    return O2H_BLOCKED;
}

int o2sm_finish(o2sm_client *c) {
    if (!c) return O2H_BAD_ARGS;
    if (!c->hup) {
        int saved = c->send_wait_ms;
        c->send_wait_ms = 0;
        o2sm_send_cmd(c, "!_o2/o2sm/fin", 0, "");
        c->send_wait_ms = saved;
    }
    client_free(c);
    return O2H_OK;
}
