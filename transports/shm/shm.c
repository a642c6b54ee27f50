/*
 * The shared-memory bridge transport (O2sm): O2lite over shared memory, for
 * threads of this process and for other processes on this machine.
 *
 * Rendezvous: a unix-domain SOCK_SEQPACKET socket at `socket`. A client
 * connects and sends an o2sm_hello; the host creates the client's segment
 * (shm_open, one pair of rings), two eventfds, a link and a bridge ("O2sm"),
 * and answers with an o2sm_welcome carrying the segment, both eventfds
 * (SCM_RIGHTS) and the client's bridge id. The connection then stays open
 * and idle: it is the client's liveness. When the client exits or is killed
 * the kernel closes it, epoll reports the hang-up at once, and the host
 * delivers what is left in the client's ring and frees the link (its
 * services are withdrawn and other processes told).
 *
 * Messages: the client's ring (to_host) is drained when its eventfd fires,
 * at most `batch` records per loop iteration per client; messages the
 * router sends to the client's services are copied into to_client by send()
 * (a full ring returns O2H_QUEUE_FULL, counted by the core). Messages to
 * !_o2/o2sm/... are the bridge protocol (sv, cs/cs, st, fin), handled here.
 * Timed messages are forwarded at once: the client library schedules them.
 *
 * Clock: the host publishes O2 time minus CLOCK_MONOTONIC in every segment
 * (every 100 ms and at once on registration); a client that reads a valid
 * offset sends !_o2/o2sm/cs/cs and its services become BRIDGE (status 6).
 *
 * Cleanup: segments are named /o2hub-shm.<name>.<host pid>.<client id> and
 * unlinked when their client leaves or the host stops; at start, segments
 * with that prefix whose host pid is dead (a killed host) are unlinked, and
 * a stale socket file (nobody accepting on it) is replaced.
 *
 * Config: { "type": "shm", "name": "o2hub", "socket": "/tmp/o2sm-<name>.sock",
 *           "ring_bytes": 1048576, "max_clients": 64, "batch": 1024, "spin_ns": 0 }
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/plugin.h>

#include "o2sm_shm.h"

#define HELLO_TIMEOUT_S 2.0
#define CLOCK_PERIOD_S 0.1
#define RELEASE_EVERY 32 /* records consumed between tail stores */

typedef struct shm_transport shm_transport;

typedef enum { CL_HELLO, CL_ACTIVE } client_state;

typedef struct shm_client {
    shm_transport *tr;
    client_state state;
    bool dead;   /* closed; its memory goes in the loop's deferred phase */
    bool paused; /* the core holds what it sent for a full link: its ring is not read */
    o2h_deferred free_later;
    int sock;
    o2h_watch *sock_watch;
    o2h_timer *hello_timer;
    int efd_in;  /* the client writes it: records in to_host */
    int efd_out; /* we write it: records in to_client, or room in to_host */
    o2h_watch *efd_watch;
    o2sm_seg *seg;
    size_t seg_size;
    char seg_name[O2SM_SEG_NAME_MAX];
    o2sm_ring rx; /* to_host: we consume */
    o2sm_ring tx; /* to_client: we produce */
    o2h_link *link;
    int id;
    int pid;
    int64_t spin_ns; /* adaptive: how long the next spin for more records lasts */
    char label[32];
    struct shm_client *next;
} shm_client;

struct shm_transport {
    const o2h_host *host;
    o2h_plugin *self;
    char name[O2SM_NAME_MAX + 1];
    char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int64_t ring_bytes;
    int64_t max_clients;
    int64_t batch;
    int64_t spin_ns; /* 0: never spin; else the most a ring callback spins for more records */
    int listen_fd;
    bool own_socket_file; /* we bound it: unlink at stop */
    o2h_watch *listen_watch;
    o2h_timer *clock_timer;
    shm_client *clients;
    int n_active;
    unsigned seq; /* segment serial numbers */
};

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void efd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n; /* EAGAIN only when the counter is at its maximum: already signalled */
}

static void efd_clear(int fd) {
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
}

/* ---- clients ---- */

static void client_unlink(shm_transport *tr, shm_client *c) {
    for (shm_client **pp = &tr->clients; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

static void unmap_segment(shm_client *c) {
    if (c->seg) {
        atomic_store(&c->seg->host_closing, 1);
        munmap(c->seg, c->seg_size);
        c->seg = NULL;
    }
    if (c->seg_name[0]) shm_unlink(c->seg_name);
    c->seg_name[0] = '\0';
}

/* Close everything and tell the core the link is gone (services withdrawn). */
static void client_close(shm_client *c, const char *why) {
    if (c->dead) return;
    shm_transport *tr = c->tr;
    const o2h_host *h = tr->host;
    c->dead = true;
    if (c->state == CL_ACTIVE) {
        tr->n_active--;
        h->log->write(tr->self, O2H_LOG_INFO, "client %d (pid %d%s%s) left: %s", c->id, c->pid,
                      c->label[0] ? ", " : "", c->label, why);
    }
    h->loop->watch_remove(c->sock_watch);
    h->loop->watch_remove(c->efd_watch);
    if (c->hello_timer) h->loop->timer_stop(c->hello_timer);
    c->sock_watch = c->efd_watch = NULL;
    c->hello_timer = NULL;
    client_unlink(tr, c);
    o2h_link *link = c->link;
    c->link = NULL;
    if (link) h->link->link_free(link);
    unmap_segment(c);
    close(c->sock);
    if (c->efd_in >= 0) close(c->efd_in);
    if (c->efd_out >= 0) close(c->efd_out);
    c->efd_in = c->efd_out = -1;
    h->loop->defer(tr->self, &c->free_later, free, c); /* our callbacks may still look at c */
}

static void publish_clock(shm_transport *tr, shm_client *c) {
    double t = tr->host->loop->time_get(tr->self);
    int64_t off = t < 0 ? O2SM_NO_CLOCK : (int64_t)(t * 1e9 + 0.5) - mono_ns();
    atomic_store_explicit(&c->seg->clock_offset_ns, off, memory_order_release);
}

static void on_clock_timer(void *ctx) {
    shm_transport *tr = ctx;
    for (shm_client *c = tr->clients; c; c = c->next)
        if (c->state == CL_ACTIVE && !c->dead) publish_clock(tr, c);
}

/* ---- the bridge protocol: !_o2/o2sm/... from the client ---- */

static bool is_control(const o2h_msg *m) {
    const char *a = o2h_msg_address(m);
    return (a[0] == '!' || a[0] == '/') && a[1] == '_' && strncmp(a + 1, "_o2/o2sm/", 9) == 0;
}

static void reply_status(shm_client *c, const char *service) {
    const o2h_host *h = c->tr->host;
    o2h_builder *b = h->msg->builder_new(c->tr->self);
    if (!b) return;
    h->msg->add_string(b, service);
    h->msg->add_int32(b, h->link->service_status(c->tr->self, service));
    o2h_msg *m = h->msg->builder_finish(b, 0, "!_o2/st", O2H_FLAG_RELIABLE);
    h->msg->builder_free(b);
    if (!m) return;
    if (o2sm_ring_push(&c->tx, m->data, m->length) == O2SM_RING_OK &&
        o2sm_ring_should_wake_consumer(&c->tx))
        efd_signal(c->efd_out);
    h->msg->msg_unref(m);
}

/* Handle one control message (borrowed). */
static void control(shm_client *c, const o2h_msg *m) {
    shm_transport *tr = c->tr;
    const o2h_host *h = tr->host;
    const char *cmd = o2h_msg_address(m) + 10;
    const char *types = h->msg->msg_types(m);
    o2h_reader rd;
    o2h_arg a[5];
    if (strcmp(cmd, "sv") == 0 && strcmp(types, "siisi") == 0) {
        h->msg->reader_init(&rd, m, NULL, 0);
        for (int i = 0; i < 5; i++)
            h->msg->reader_next(&rd, types[i], &a[i]);
        int rc =
            h->bridge->service(tr->self, c->link, a[0].s, a[1].i != 0, a[2].i != 0, a[3].s, a[4].i);
        if (rc != O2H_OK)
            h->log->write(tr->self, O2H_LOG_WARN, "client %d: %s %s: error %d", c->id,
                          a[1].i ? "adding" : "removing", a[0].s, rc);
    } else if (strcmp(cmd, "cs/cs") == 0) {
        h->bridge->synced(tr->self, c->link);
    } else if (strcmp(cmd, "st") == 0 && strcmp(types, "s") == 0) {
        h->msg->reader_init(&rd, m, NULL, 0);
        h->msg->reader_next(&rd, 's', &a[0]);
        reply_status(c, a[0].s);
    } else if (strcmp(cmd, "fin") == 0) {
        client_close(c, "finished");
    } else {
        h->link->count_invalid(tr->self, "unknown !_o2/o2sm message");
    }
}

/* ---- receiving ---- */

/* Deliver up to `budget` records; returns how many were taken. *stuck is set
 * when records remain that could not be taken now (out of memory). */
static int drain(shm_client *c, int budget, bool *corrupt, bool *stuck) {
    shm_transport *tr = c->tr;
    const o2h_host *h = tr->host;
    int done = 0;
    while (done < budget && !c->dead) {
        uint32_t n;
        int rc = o2sm_ring_peek(&c->rx, O2H_MSG_MAX_SIZE, &n);
        if (rc == O2SM_RING_EMPTY) break;
        if (rc == O2SM_RING_CORRUPT) {
            *corrupt = true;
            break;
        }
        o2h_msg *m = h->msg->msg_alloc(tr->self, n ? n : 4);
        if (!m) {
            *stuck = true;
            break;
        }
        o2sm_ring_take(&c->rx, m->data, n);
        m->length = n;
        if (++done % RELEASE_EVERY == 0) o2sm_ring_release(&c->rx);
        if (n >= 16 && is_control(m)) {
            if (h->msg->msg_validate(m->data, m->length, NULL) == O2H_OK)
                control(c, m);
            else
                h->link->count_invalid(tr->self, "malformed !_o2/o2sm message");
            h->msg->msg_unref(m);
        } else {
            h->link->deliver(tr->self, c->link, m); /* validates; may close c */
        }
    }
    if (!c->dead) {
        o2sm_ring_release(&c->rx);
        if (o2sm_ring_should_wake_producer(&c->rx)) efd_signal(c->efd_out);
    }
    return done;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Records waiting in another client's ring (its callback will run next). */
static bool others_waiting(const shm_client *c) {
    for (const shm_client *o = c->tr->clients; o; o = o->next)
        if (o != c && o->state == CL_ACTIVE && !o->dead &&
            atomic_load_explicit(&o->rx.ctl->head, memory_order_relaxed) != o->rx.pos)
            return true;
    return false;
}

/*
 * With "spin_ns": before going back to epoll, watch the ring for a while: a
 * record that comes within the spin costs neither the client a write() nor
 * the router an epoll wake-up. The spin ends early when another client has
 * records. Adaptive: a spin that caught a record doubles the next one (up to
 * spin_ns), one that did not halves it (down to 1/64 of it).
 */
static bool spin_for_more(shm_client *c) {
    int64_t max = c->tr->spin_ns, min = max / 64 > 0 ? max / 64 : 1;
    if (c->spin_ns <= 0) c->spin_ns = max;
    int64_t end = mono_ns() + c->spin_ns;
    do {
        for (int i = 0; i < 64; i++) {
            if (atomic_load_explicit(&c->rx.ctl->head, memory_order_acquire) != c->rx.pos) {
                c->spin_ns = c->spin_ns * 2 < max ? c->spin_ns * 2 : max;
                return true;
            }
            cpu_relax();
        }
        if (others_waiting(c)) return false;
    } while (mono_ns() < end);
    c->spin_ns = c->spin_ns / 2 > min ? c->spin_ns / 2 : min;
    return false;
}

/*
 * The client's eventfd fired. Deliver at most `batch` records, so that one
 * busy client cannot starve the others or the router's own work; if more
 * remain the eventfd is made readable and the loop calls again. Once the
 * ring is empty: clear the eventfd, raise consumer_sleeping, and look once
 * more (o2sm_ring_prepare_sleep). So the callback always ends either asleep
 * with the flag raised after a last look, or with the eventfd readable: a
 * record is never left without a wake-up.
 */
static void on_ring_event(void *ctx, int fd, unsigned events) {
    shm_client *c = ctx;
    (void)fd;
    (void)events;
    int budget = (int)c->tr->batch;
    bool corrupt = false, stuck = false;
    while (!c->dead && !c->paused) {
        budget -= drain(c, budget, &corrupt, &stuck);
        if (corrupt) {
            c->tr->host->link->count_invalid(c->tr->self, "corrupt shm ring");
            client_close(c, "corrupt ring");
            break;
        }
        if (c->dead) break;
        if (budget <= 0 || stuck) {
            /* Come back on the next loop iteration. The eventfd may have been
             * cleared by an earlier round of this loop: make sure it is not. */
            efd_signal(c->efd_in);
            break;
        }
        if (c->tr->spin_ns > 0 && spin_for_more(c)) continue;
        efd_clear(c->efd_in);
        if (o2sm_ring_prepare_sleep(&c->rx)) break; /* asleep: the client wakes us */
    }
}

/* ---- sending ---- */

static int shm_send(void *instance, void *link_ctx, o2h_msg *msg) {
    shm_client *c = link_ctx;
    (void)instance;
    if (c->dead || c->state != CL_ACTIVE) return O2H_SEND_FAIL;
    if (o2sm_record_size(msg->length) > c->tx.cap) return O2H_TOO_LARGE;
    int rc = o2sm_ring_push(&c->tx, msg->data, msg->length);
    if (rc == O2SM_RING_OK) {
        if (o2sm_ring_should_wake_consumer(&c->tx)) efd_signal(c->efd_out);
        return O2H_OK;
    }
    if (rc == O2SM_RING_FULL) return O2H_QUEUE_FULL;
    c->tr->host->link->count_invalid(c->tr->self, "corrupt shm ring");
    client_close(c, "corrupt ring");
    return O2H_SEND_FAIL;
}

/* ---- registration ---- */

static int send_welcome(shm_client *c, int status, const int *fds, int nfds) {
    o2sm_welcome w = {.magic = O2SM_MAGIC, .version = O2SM_VERSION, .status = status};
    if (status == O2H_OK) {
        w.client_id = c->id;
        w.seg_size = c->seg_size;
        w.ring_bytes = (uint32_t)c->tr->ring_bytes;
        snprintf(w.seg_name, sizeof w.seg_name, "%s", c->seg_name);
    }
    struct iovec iov = {.iov_base = &w, .iov_len = sizeof w};
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n = sendmsg(c->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    return n == (ssize_t)sizeof w ? O2H_OK : O2H_SEND_FAIL;
}

/* Create the segment and eventfds; the open segment fd in *seg_fd. */
static int make_segment(shm_client *c, int *seg_fd) {
    shm_transport *tr = c->tr;
    uint64_t hdr = o2sm_header_size();
    c->seg_size = (size_t)(hdr + 2 * (uint64_t)tr->ring_bytes);
    snprintf(c->seg_name, sizeof c->seg_name, "/" O2SM_SEG_PREFIX "%s.%d.%u", tr->name,
             (int)getpid(), ++tr->seq);
    int fd = shm_open(c->seg_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) { /* left by an earlier router in this process */
        shm_unlink(c->seg_name);
        fd = shm_open(c->seg_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        c->seg_name[0] = '\0';
        return O2H_NO_MEMORY;
    }
    if (ftruncate(fd, (off_t)c->seg_size) != 0) {
        close(fd);
        return O2H_NO_MEMORY;
    }
    void *p = mmap(NULL, c->seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return O2H_NO_MEMORY;
    }
    c->seg = p; /* ftruncate gave zeroes: every index and flag starts at 0 */
    o2sm_seg *s = c->seg;
    s->magic = O2SM_MAGIC;
    s->version = O2SM_VERSION;
    s->ring_bytes = (uint32_t)tr->ring_bytes;
    s->client_id = c->id;
    s->host_pid = (int32_t)getpid();
    s->data_offset = (uint32_t)hdr;
    s->seg_size = c->seg_size;
    snprintf(s->name, sizeof s->name, "%s", c->seg_name);
    atomic_store(&s->clock_offset_ns, O2SM_NO_CLOCK);
    atomic_store(&s->to_host.consumer_sleeping, 1); /* the first record wakes us */
    uint8_t *base = p;
    o2sm_ring_attach(&c->rx, &s->to_host, base + hdr, (uint64_t)tr->ring_bytes, false);
    o2sm_ring_attach(&c->tx, &s->to_client, base + hdr + tr->ring_bytes, (uint64_t)tr->ring_bytes,
                     true);
    c->efd_in = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->efd_out = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd_in < 0 || c->efd_out < 0) {
        close(fd);
        return O2H_NO_MEMORY;
    }
    *seg_fd = fd;
    return O2H_OK;
}

static void refuse(shm_client *c, int status, const char *why) {
    c->tr->host->log->write(c->tr->self, O2H_LOG_WARN, "refused a client (pid %d): %s", c->pid,
                            why);
    send_welcome(c, status, NULL, 0);
    client_close(c, why);
}

static void on_hello(shm_client *c) {
    shm_transport *tr = c->tr;
    const o2h_host *h = tr->host;
    o2sm_hello hello;
    ssize_t n = recv(c->sock, &hello, sizeof hello, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        client_close(c, "closed before registering");
        return;
    }
    if (n != (ssize_t)sizeof hello || hello.magic != O2SM_MAGIC) {
        h->link->count_invalid(tr->self, "bad o2sm hello");
        refuse(c, O2H_INVALID_MSG, "bad hello");
        return;
    }
    if (hello.version != O2SM_VERSION) {
        refuse(c, O2H_BAD_ARGS, "protocol version differs");
        return;
    }
    if (tr->n_active >= tr->max_clients) {
        refuse(c, O2H_QUEUE_FULL, "max_clients reached");
        return;
    }
    hello.label[sizeof hello.label - 1] = '\0';
    for (char *p = hello.label; *p; p++)
        if ((unsigned char)*p < 32 || (unsigned char)*p > 126) *p = '?';
    snprintf(c->label, sizeof c->label, "%s", hello.label);
    char desc[96];
    snprintf(desc, sizeof desc, "shm pid %d%s%s", c->pid, c->label[0] ? " " : "", c->label);
    c->link = h->link->link_new(tr->self, c, desc);
    if (!c->link) {
        refuse(c, O2H_NO_MEMORY, "out of memory");
        return;
    }
    int id = h->bridge->bridge_new(tr->self, c->link, "O2sm", 0);
    if (id <= 0) {
        refuse(c, id < 0 ? id : O2H_FAIL, "bridge refused");
        return;
    }
    c->id = id;
    int seg_fd = -1;
    if (make_segment(c, &seg_fd) != O2H_OK) {
        refuse(c, O2H_NO_MEMORY, "cannot create the segment");
        return;
    }
    c->state = CL_ACTIVE;
    tr->n_active++;
    publish_clock(tr, c);
    h->loop->timer_stop(c->hello_timer);
    c->hello_timer = NULL;
    c->efd_watch = h->loop->watch_fd(tr->self, c->efd_in, O2H_EV_READ, on_ring_event, c);
    int fds[3] = {seg_fd, c->efd_in, c->efd_out};
    int rc = c->efd_watch ? send_welcome(c, O2H_OK, fds, 3) : O2H_NO_MEMORY;
    close(seg_fd);
    if (rc != O2H_OK) {
        client_close(c, "could not answer");
        return;
    }
    h->log->write(tr->self, O2H_LOG_INFO, "client %d (pid %d%s%s) connected, segment %s", c->id,
                  c->pid, c->label[0] ? ", " : "", c->label, c->seg_name);
}

static void on_sock_event(void *ctx, int fd, unsigned events) {
    shm_client *c = ctx;
    (void)fd;
    if (c->state == CL_HELLO) {
        on_hello(c);
    } else {
        /* Registered clients send nothing here: EOF or a hang-up means it is gone. */
        char b[64];
        ssize_t n = recv(c->sock, b, sizeof b, MSG_DONTWAIT);
        if (n > 0) {
            c->tr->host->link->count_invalid(c->tr->self, "data on an o2sm control socket");
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR) ||
                   (events & (O2H_EV_HUP | O2H_EV_ERROR))) {
            /* What it sent before dying is still delivered. */
            bool corrupt = false, stuck = false;
            drain(c, 1 << 30, &corrupt, &stuck);
            client_close(c, "connection closed");
        }
    }
}

static void on_hello_timeout(void *ctx) {
    client_close(ctx, "no hello");
}

static void on_accept(void *ctx, int fd, unsigned events) {
    shm_transport *tr = ctx;
    (void)events;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) return;
        shm_client *c = calloc(1, sizeof *c);
        if (!c) {
            close(cfd);
            continue;
        }
        c->tr = tr;
        c->sock = cfd;
        c->efd_in = c->efd_out = -1;
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) c->pid = cred.pid;
        c->sock_watch = tr->host->loop->watch_fd(tr->self, cfd, O2H_EV_READ, on_sock_event, c);
        c->hello_timer =
            tr->host->loop->timer_start(tr->self, HELLO_TIMEOUT_S, 0, on_hello_timeout, c);
        if (!c->sock_watch || !c->hello_timer) {
            tr->host->loop->watch_remove(c->sock_watch);
            if (c->hello_timer) tr->host->loop->timer_stop(c->hello_timer);
            close(cfd);
            free(c);
            continue;
        }
        c->next = tr->clients;
        tr->clients = c;
    }
}

/* ---- start-up cleanup ---- */

/* Segments of hosts that died without cleaning up: our prefix and a dead pid. */
static void remove_stale_segments(shm_transport *tr) {
    DIR *d = opendir("/dev/shm");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, O2SM_SEG_PREFIX, strlen(O2SM_SEG_PREFIX)) != 0) continue;
        /* ... .<pid>.<serial> at the end */
        const char *last = strrchr(e->d_name, '.');
        if (!last || last == e->d_name) continue;
        const char *p = last - 1;
        while (p > e->d_name && *p != '.')
            p--;
        char *end;
        long pid = strtol(p + 1, &end, 10);
        if (end != last || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[300];
        snprintf(path, sizeof path, "/%s", e->d_name);
        if (shm_unlink(path) == 0)
            tr->host->log->write(tr->self, O2H_LOG_INFO,
                                 "removed stale segment %s (host pid %ld dead)", path, pid);
    }
    closedir(d);
}

/* A socket file left by a dead host is removed; one that answers is in use. */
static int clear_socket_path(shm_transport *tr) {
    struct stat st;
    if (lstat(tr->socket_path, &st) != 0) return O2H_OK;
    if (!S_ISSOCK(st.st_mode)) {
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "%s exists and is not a socket",
                             tr->socket_path);
        return O2H_NO_PORT;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", tr->socket_path);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    int err = errno;
    close(fd);
    if (rc == 0) {
        tr->host->log->write(tr->self, O2H_LOG_ERROR, "%s is in use by a running host",
                             tr->socket_path);
        return O2H_NO_PORT;
    }
    if (err == ECONNREFUSED || err == ENOENT) {
        unlink(tr->socket_path);
        tr->host->log->write(tr->self, O2H_LOG_INFO, "removed stale socket %s", tr->socket_path);
        return O2H_OK;
    }
    tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot use %s: %s", tr->socket_path,
                         strerror(err));
    return O2H_NO_PORT;
}

/* ---- lifecycle ---- */

static bool valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > O2SM_NAME_MAX) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static int shm_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg, void **instance) {
    shm_transport *tr = calloc(1, sizeof *tr);
    if (!tr) return O2H_NO_MEMORY;
    tr->host = host;
    tr->self = self;
    tr->listen_fd = -1;
    const char *name, *sock;
    int rc = O2H_CONFIG_ERROR;
    if (host->cfg->get_string(cfg, "name", "o2hub", &name) == O2H_CONFIG_ERROR) goto fail;
    if (!valid_name(name)) {
        host->cfg->error(cfg, "name", "expected 1 to %d letters, digits, '-' or '_'",
                         O2SM_NAME_MAX);
        goto fail;
    }
    snprintf(tr->name, sizeof tr->name, "%s", name);
    char def_sock[128];
    snprintf(def_sock, sizeof def_sock, "/tmp/o2sm-%s.sock", tr->name);
    if (host->cfg->get_string(cfg, "socket", def_sock, &sock) == O2H_CONFIG_ERROR) goto fail;
    if (!sock[0] || strlen(sock) >= sizeof tr->socket_path) {
        host->cfg->error(cfg, "socket", "expected a path of 1 to %zu characters",
                         sizeof tr->socket_path - 1);
        goto fail;
    }
    snprintf(tr->socket_path, sizeof tr->socket_path, "%s", sock);
    if (host->cfg->get_int(cfg, "ring_bytes", 1 << 20, 4096, (int64_t)1 << 30, &tr->ring_bytes) ==
        O2H_CONFIG_ERROR)
        goto fail;
    if (tr->ring_bytes & (tr->ring_bytes - 1)) {
        host->cfg->error(cfg, "ring_bytes", "expected a power of two, found %lld",
                         (long long)tr->ring_bytes);
        goto fail;
    }
    if (host->cfg->get_int(cfg, "max_clients", 64, 1, 4096, &tr->max_clients) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "batch", 1024, 1, 1 << 20, &tr->batch) == O2H_CONFIG_ERROR ||
        host->cfg->get_int(cfg, "spin_ns", 0, 0, 1000000, &tr->spin_ns) == O2H_CONFIG_ERROR)
        goto fail;
    *instance = tr;
    return O2H_OK;
fail:
    free(tr);
    return rc;
}

static int shm_start(void *instance) {
    shm_transport *tr = instance;
    const o2h_host *h = tr->host;
    remove_stale_segments(tr);
    int rc = clear_socket_path(tr);
    if (rc != O2H_OK) return rc;
    tr->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", tr->socket_path);
    if (tr->listen_fd < 0 || bind(tr->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(tr->listen_fd, 64) != 0) {
        h->log->write(tr->self, O2H_LOG_ERROR, "cannot listen on %s: %s", tr->socket_path,
                      strerror(errno));
        if (tr->listen_fd >= 0) close(tr->listen_fd);
        tr->listen_fd = -1;
        return O2H_NO_PORT;
    }
    tr->own_socket_file = true;
    chmod(tr->socket_path, 0600);
    tr->listen_watch = h->loop->watch_fd(tr->self, tr->listen_fd, O2H_EV_READ, on_accept, tr);
    tr->clock_timer =
        h->loop->timer_start(tr->self, CLOCK_PERIOD_S, CLOCK_PERIOD_S, on_clock_timer, tr);
    if (!tr->listen_watch || !tr->clock_timer) return O2H_NO_MEMORY;
    h->log->write(tr->self, O2H_LOG_INFO, "o2sm clients connect to %s (rings of %lld bytes)",
                  tr->socket_path, (long long)tr->ring_bytes);
    return O2H_OK;
}

static void shm_stop(void *instance) {
    shm_transport *tr = instance;
    const o2h_host *h = tr->host;
    while (tr->clients)
        client_close(tr->clients, "host stopping");
    h->loop->watch_remove(tr->listen_watch);
    tr->listen_watch = NULL;
    if (tr->clock_timer) h->loop->timer_stop(tr->clock_timer);
    tr->clock_timer = NULL;
    if (tr->listen_fd >= 0) close(tr->listen_fd);
    tr->listen_fd = -1;
    if (tr->own_socket_file) unlink(tr->socket_path);
    tr->own_socket_file = false;
}

static void shm_destroy(void *instance) {
    shm_transport *tr = instance;
    while (tr->clients)
        client_close(tr->clients, "host stopping");
    free(tr);
}

static void shm_close(void *instance, void *link_ctx) {
    (void)instance;
    client_close(link_ctx, "closed by the router"); /* freed later if inside our callback */
}

/* Paused, the ring is not read (the client finds it full and slows down);
 * the eventfd is not watched meanwhile, as it stays readable. */
static int shm_pause(void *instance, void *link_ctx, bool paused) {
    shm_client *c = link_ctx;
    (void)instance;
    if (c->dead || c->paused == paused || !c->efd_watch) return O2H_OK;
    c->paused = paused;
    c->tr->host->loop->watch_modify(c->efd_watch, paused ? 0 : O2H_EV_READ);
    if (!paused) efd_signal(c->efd_in); /* look at what came meanwhile */
    return O2H_OK;
}

static const o2h_transport_ops shm_ops = {
    .connect = NULL,
    .send = shm_send,
    .close = shm_close,
    .pause = shm_pause,
};

static const o2h_plugin_desc shm_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_transport_ops),
    .kind = O2H_PLUGIN_TRANSPORT,
    .name = "shm",
    .version = "1.0.0",
    .description = "O2sm bridge: O2lite clients over shared-memory rings (threads and processes)",
    .lifecycle = {shm_create, shm_start, shm_stop, shm_destroy},
    .ops = &shm_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &shm_desc;
}
