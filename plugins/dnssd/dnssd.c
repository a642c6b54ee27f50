/*
 * DNS-SD discovery, as O2 2.x does it with ZeroConf (docs/dnssd.md),
 * through the Bonjour API (dns_sd.h) of avahi's compatibility library.
 *
 * - Registers a `_o2proc._tcp` service named after the ensemble (avahi renames
 *   a second one on the network "ens #2"), SRV port = the TCP port, TXT
 *   `name=@pppppppp:iiiiiiii:tttt:uuuu` (the process name and the UDP port in
 *   4 hex digits: 28 characters) and `vers=2.0.1`.
 * - Browses `_o2proc._tcp`, keeps the instances whose name is the ensemble's
 *   (or its renamings "ens #N", "ens (N)"), resolves them (one at a time, in
 *   name order from its own; a failed one again later, see retry_later),
 *   checks the TXT as O2 does (28 characters, lowercase hex, the TCP port in
 *   the name equal to the SRV port, the same major version), ignores its
 *   own, and sends this process's !_o2/dy to the internal IP and UDP port
 *   taken from the name, three times (0, 0.5 and 1.5 s after the resolve).
 *   The core then connects or asks the peer to connect, as O2 does.
 * - Every DNSServiceRef socket is watched on the router's loop; the callbacks
 *   run there, inside DNSServiceProcessResult.
 * - Without avahi (or dbus) the plugin logs one warning and retries with a
 *   growing delay (retry_min doubling up to retry_max); when avahi goes away
 *   later, the same. Failed retries log at debug level only.
 *
 * Config: { "type": "dnssd", "interface": "", "retry_min": 1.0,
 *           "retry_max": 30.0, "resolve_timeout": 5.0, "when_unavailable": "warn" }
 * "interface" names the one interface to register and browse on ("lo"); the
 * default "" means all interfaces (index 0). "when_unavailable": "info" makes
 * the one line about a missing avahi an info line, for configs where other
 * discovery stands beside this one (a machine without avahi is then normal).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dns_sd.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <o2hub/plugin.h>

#define SERVICE_TYPE "_o2proc._tcp"
/* Concurrent DNSServiceResolve calls. avahi's compat layer makes a dbus
 * connection for each DNSServiceRef, and dbus-daemon allows one user 256: with
 * the registration and the browse, 64 processes of one user on one machine
 * hold 256 at 2, 192 at 1 (O2 resolves one at a time too). */
#define MAX_RESOLVING 1
#define N_SENDS 3        /* !_o2/dy datagrams per resolved instance */
#define PROC_NAME_LEN 23 /* "@pppppppp:iiiiiiii:tttt" */
#define TXT_NAME_LEN 28  /* ... + ":uuuu" */
#define MAX_INSTANCE_NAME 256
#define MAX_RENAMES 1000 /* name conflicts met before giving up */

static const double send_offsets[N_SENDS] = {0, 0.5, 1.5};

typedef struct entry {
    struct entry *next;
    struct dnssd *d;
    char name[MAX_INSTANCE_NAME];
    char domain[MAX_INSTANCE_NAME];
    uint32_t ifindex;
    int n_ifaces; /* browse reported it on this many interfaces */
    DNSServiceRef resolve;
    o2h_watch *watch;
    bool waiting;    /* for a free resolve slot */
    bool done;       /* the resolve callback came (success or not) */
    bool resolved;   /* a valid peer: ip, udp_port set */
    int attempts;    /* resolves since found (or since a peer was lost) */
    bool ignored;    /* resolved to ourselves, another major version or a bad TXT */
    double deadline; /* of the running resolve, or of the next attempt */
    double resolved_at;
    int sends;   /* dy datagrams sent since resolved_at */
    uint32_t ip; /* host byte order */
    int udp_port;
    char proc[PROC_NAME_LEN + 1];
} entry;

typedef struct dnssd {
    const o2h_host *host;
    o2h_plugin *self;
    const char *ifname;
    uint32_t ifindex;
    double retry_min, retry_max, retry, resolve_timeout;
    int fd; /* UDP socket for dy datagrams */

    bool announced;
    char ensemble[128];
    char proc_name[PROC_NAME_LEN + 1];
    int32_t version;
    int tcp_port;
    uint8_t txt[80];
    uint16_t txt_len;

    bool up;               /* register + browse running */
    bool down_reported;    /* the one warning has been logged */
    int unavailable_level; /* of that line: O2H_LOG_WARN, or INFO beside other discovery */
    int failure;           /* set by a callback: tear down after dispatch */
    const char *failure_what;
    DNSServiceRef reg, browse;
    o2h_watch *reg_watch, *browse_watch;
    int renames; /* name conflicts met: 0 registers as the ensemble name (see instance_name) */
    char registered_as[MAX_INSTANCE_NAME];
    entry *instances;
    int n_resolving;
    o2h_timer *retry_timer;
    o2h_timer *tick;
} dnssd;

static void connect_avahi(dnssd *d);
static void schedule_tick(dnssd *d);

static double now(dnssd *d) {
    return d->host->loop->local_time(d->self);
}

/* ---- TXT: what O2 registers and how it checks what it finds ---- */

static void put_txt(dnssd *d, const char *item) {
    size_t n = strlen(item);
    d->txt[d->txt_len] = (uint8_t)n;
    memcpy(d->txt + d->txt_len + 1, item, n);
    d->txt_len = (uint16_t)(d->txt_len + 1 + n);
}

static int build_txt(dnssd *d, const o2h_process_info *info) {
    if (strlen(info->name) != PROC_NAME_LEN) return O2H_BAD_NAME;
    char item[64];
    d->txt_len = 0;
    snprintf(item, sizeof item, "name=%s:%04x", info->name, (unsigned)info->udp_port);
    put_txt(d, item);
    snprintf(item, sizeof item, "vers=%u.%u.%u", (unsigned)(info->version >> 16) & 0xff,
             (unsigned)(info->version >> 8) & 0xff, (unsigned)info->version & 0xff);
    put_txt(d, item);
    return O2H_OK;
}

static bool lower_hex(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static unsigned hex_value(const char *s, int n) {
    char buf[9];
    memcpy(buf, s, (size_t)n);
    buf[n] = '\0';
    return (unsigned)strtoul(buf, NULL, 16);
}

/* "@pppppppp:iiiiiiii:tttt:uuuu" with tttt equal to the SRV port (as O2 checks). */
static bool parse_txt_name(const char *name, int len, int srv_port, uint32_t *ip, int *udp_port) {
    if (len != TXT_NAME_LEN || name[0] != '@' || !lower_hex(name + 1, 8) || name[9] != ':' ||
        !lower_hex(name + 10, 8) || name[18] != ':' || !lower_hex(name + 19, 4) ||
        name[23] != ':' || !lower_hex(name + 24, 4))
        return false;
    if ((int)hex_value(name + 19, 4) != srv_port) return false;
    *ip = hex_value(name + 10, 8);
    *udp_port = (int)hex_value(name + 24, 4);
    return *udp_port > 0;
}

/* "2.0.1" -> 0x020001, 0 if malformed (O2's o2_parse_version). */
static int32_t parse_version(const char *s, int len) {
    int32_t version = 0, field = 0;
    int shift = 16;
    bool digits = false;
    for (int i = 0; i < len; i++) {
        if (isdigit((unsigned char)s[i])) {
            field = field * 10 + (s[i] - '0');
            if (field > 255) return 0;
            digits = true;
        } else if (s[i] == '.') {
            if (!digits || shift == 0) return 0;
            version += field << shift;
            field = 0;
            shift -= 8;
            digits = false;
        } else {
            return 0;
        }
    }
    if (!digits || shift != 0) return 0;
    return version + field;
}

/* The ensemble's own instance name, or a renaming: "ens #2" (avahi), "ens (2)" (Bonjour). */
static bool ensemble_instance(const dnssd *d, const char *name) {
    size_t n = strlen(d->ensemble);
    if (strncmp(name, d->ensemble, n) != 0) return false;
    const char *rest = name + n;
    if (!rest[0]) return true;
    char close = 0;
    if (strncmp(rest, " #", 2) == 0)
        rest += 2;
    else if (strncmp(rest, " (", 2) == 0) {
        rest += 2;
        close = ')';
    } else
        return false;
    if (!isdigit((unsigned char)*rest)) return false;
    while (isdigit((unsigned char)*rest))
        rest++;
    if (close && *rest++ != close) return false;
    return *rest == '\0';
}

/* ---- failures: one warning, then quiet retries with backoff ---- */

static void release_resolve(dnssd *d, entry *in) {
    if (!in->resolve) return;
    d->host->loop->watch_remove(in->watch);
    in->watch = NULL;
    DNSServiceRefDeallocate(in->resolve);
    in->resolve = NULL;
    d->n_resolving--;
}

static void free_instances(dnssd *d) {
    while (d->instances) {
        entry *in = d->instances;
        d->instances = in->next;
        release_resolve(d, in);
        free(in);
    }
}

static void teardown(dnssd *d) {
    free_instances(d);
    d->host->loop->watch_remove(d->browse_watch);
    d->host->loop->watch_remove(d->reg_watch);
    d->browse_watch = d->reg_watch = NULL;
    if (d->browse) DNSServiceRefDeallocate(d->browse);
    if (d->reg) DNSServiceRefDeallocate(d->reg);
    d->browse = d->reg = NULL;
    d->host->loop->timer_stop(d->tick);
    d->tick = NULL;
    d->up = false;
    d->failure = 0;
    d->registered_as[0] = '\0';
}

static void on_retry(void *ctx) {
    dnssd *d = ctx;
    connect_avahi(d);
}

static void fail(dnssd *d, const char *what, int err) {
    bool was_up = d->up;
    teardown(d);
    if (err == kDNSServiceErr_BadParam) { /* e.g. an ensemble name that is no DNS label */
        d->host->log->write(d->self, O2H_LOG_ERROR,
                            "%s (DNS-SD error %d): ensemble '%s' cannot be registered; no DNS-SD "
                            "discovery",
                            what, err, d->ensemble);
        return;
    }
    if (err == kDNSServiceErr_NameConflict && d->renames < MAX_RENAMES) {
        /* A conflict found while probing (another registration of the name came at
         * the same time): all anew under the next name. (Making only the
         * registration anew, the browse kept, left processes unable to find each
         * other for a while.) */
        d->renames++;
        connect_avahi(d);
        return;
    }
    if (!d->down_reported && d->unavailable_level == O2H_LOG_INFO) {
        d->host->log->write(d->self, O2H_LOG_INFO,
                            "avahi-daemon (or dbus) is not running: no ZeroConf discovery until "
                            "it is (other discovery goes on); retrying every %g to %g s",
                            d->retry_min, d->retry_max);
        d->down_reported = true;
    } else if (!d->down_reported) {
        d->host->log->write(d->self, O2H_LOG_WARN,
                            "%s (DNS-SD error %d): is avahi-daemon (and dbus) running? no DNS-SD "
                            "discovery until it is; retrying every %g to %g s",
                            what, err, d->retry_min, d->retry_max);
        d->down_reported = true;
    } else {
        d->host->log->write(d->self, O2H_LOG_DEBUG, "%s (DNS-SD error %d), retry in %g s", what,
                            err, d->retry);
    }
    if (was_up) d->retry = d->retry_min; /* it was working: come back quickly */
    d->host->loop->timer_stop(d->retry_timer);
    d->retry_timer = d->host->loop->timer_start(d->self, d->retry, 0, on_retry, d);
    d->retry *= 2;
    if (d->retry > d->retry_max) d->retry = d->retry_max;
}

/* A callback saw a failure; act on it once DNSServiceProcessResult has returned. */
static void note_failure(dnssd *d, const char *what, int err) {
    if (d->failure) return;
    d->failure = err ? err : kDNSServiceErr_Unknown;
    d->failure_what = what;
}

static bool check_failure(dnssd *d) {
    if (!d->failure) return false;
    fail(d, d->failure_what, d->failure);
    return true;
}

/* ---- contacting a found peer ---- */

static void send_dy(dnssd *d, entry *in) {
    o2h_msg *dy = d->host->proc->dy_message(d->self, O2H_DY_INFO);
    if (!dy) return;
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)in->udp_port),
                             .sin_addr.s_addr = htonl(in->ip)};
    sendto(d->fd, dy->data, dy->length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
    d->host->msg->msg_unref(dy);
}

static void start_resolves(dnssd *d);
static void retry_later(dnssd *d, entry *in);

static void DNSSD_API on_resolved(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
                                  DNSServiceErrorType err, const char *fullname,
                                  const char *hosttarget, uint16_t port, uint16_t txt_len,
                                  const unsigned char *txt, void *ctx) {
    entry *in = ctx;
    dnssd *d = in->d;
    in->done = true;
    if (err) {
        d->host->log->write(d->self, O2H_LOG_DEBUG, "resolving '%s' failed (%d)", in->name, err);
        return;
    }
    uint8_t name_len = 0, vers_len = 0;
    const char *name = TXTRecordGetValuePtr(txt_len, txt, "name", &name_len);
    const char *vers = TXTRecordGetValuePtr(txt_len, txt, "vers", &vers_len);
    int srv_port = ntohs(port);
    uint32_t ip;
    int udp_port;
    if (!name || !vers || !parse_txt_name(name, name_len, srv_port, &ip, &udp_port)) {
        d->host->link->count_invalid(d->self, "dnssd: TXT without a valid O2 process name");
        d->host->log->write(d->self, O2H_LOG_DEBUG, "'%s': no valid TXT name for port %d", in->name,
                            srv_port);
        in->ignored = true; /* it will not get better by asking again */
        return;
    }
    int32_t version = parse_version(vers, vers_len);
    if (!version || (version & 0xff0000) != (d->version & 0xff0000)) {
        d->host->log->write(d->self, O2H_LOG_DEBUG, "'%s': ignored, O2 version %.*s", in->name,
                            (int)vers_len, vers);
        in->ignored = true;
        return;
    }
    memcpy(in->proc, name, PROC_NAME_LEN);
    in->proc[PROC_NAME_LEN] = '\0';
    if (strcmp(in->proc, d->proc_name) == 0) {
        in->ignored = true; /* our own registration */
        return;
    }
    in->ip = ip;
    in->udp_port = udp_port;
    in->resolved = true;
    in->resolved_at = now(d);
    in->sends = 0;
    d->host->log->write(d->self, O2H_LOG_INFO, "found %s ('%s')", in->proc, in->name);
}

static void on_resolve_readable(void *ctx, int fd, unsigned events) {
    entry *in = ctx;
    dnssd *d = in->d;
    DNSServiceErrorType err = DNSServiceProcessResult(in->resolve);
    if (err) {
        in->done = true;
        d->host->log->write(d->self, O2H_LOG_DEBUG, "resolve of '%s' ended (%d)", in->name, err);
    }
    if (!in->done) return;
    release_resolve(d, in);
    if (!in->resolved) retry_later(d, in);
    start_resolves(d);
    if (!check_failure(d)) schedule_tick(d); /* `in` may be gone after a failure */
}

/* A resolve failed or timed out: again after retry_min, doubling up to retry_max, for as
 * long as the instance is there (a daemon under load, or out of dbus connections, refuses
 * some; giving up would leave a pair of processes that never meet). */
static void retry_later(dnssd *d, entry *in) {
    double delay = d->retry_min;
    for (int i = 1; i < in->attempts && delay < d->retry_max; i++)
        delay *= 2;
    if (delay > d->retry_max) delay = d->retry_max;
    in->waiting = !in->ignored;
    in->deadline = now(d) + delay;
}

static void start_resolve(dnssd *d, entry *in) {
    in->waiting = false;
    in->done = false;
    in->attempts++;
    DNSServiceErrorType err = DNSServiceResolve(&in->resolve, 0, in->ifindex, in->name,
                                                SERVICE_TYPE, in->domain, on_resolved, in);
    if (err) { /* this resolve, not the registration or the browse: they report their own */
        in->resolve = NULL;
        d->host->log->write(d->self, O2H_LOG_DEBUG, "cannot resolve '%s' (DNS-SD error %d)",
                            in->name, err);
        retry_later(d, in);
        return;
    }
    d->n_resolving++;
    in->deadline = now(d) + d->resolve_timeout;
    in->watch = d->host->loop->watch_fd(d->self, DNSServiceRefSockFD(in->resolve), O2H_EV_READ,
                                        on_resolve_readable, in);
}

/* Whether `a` comes before `b` in this process's order of resolves: by name,
 * starting after its own instance's name and wrapping around. A pair of
 * processes meets when either has resolved the other; with every process
 * going round from its own place, each pair is met within half a round (N
 * processes started together: N/2 resolves each instead of N-1). */
static bool resolves_before(const dnssd *d, const entry *a, const entry *b) {
    bool a_wraps = strcmp(a->name, d->registered_as) <= 0;
    bool b_wraps = strcmp(b->name, d->registered_as) <= 0;
    if (a_wraps != b_wraps) return b_wraps;
    return strcmp(a->name, b->name) < 0;
}

static void start_resolves(dnssd *d) {
    double t = now(d);
    while (d->n_resolving < MAX_RESOLVING && !d->failure) {
        entry *next = NULL;
        for (entry *in = d->instances; in; in = in->next)
            if (in->waiting && !in->resolve && in->deadline <= t &&
                (!next || resolves_before(d, in, next)))
                next = in;
        if (!next) return;
        start_resolve(d, next); /* refused: it waits again, with a later deadline */
    }
}

/* Resolve timeouts, retries, and the repeated dy datagrams. */
static void on_tick(void *ctx) {
    dnssd *d = ctx;
    double t = now(d);
    for (entry *in = d->instances; in; in = in->next) {
        if (in->resolve && in->deadline <= t) { /* no answer in time */
            d->host->log->write(d->self, O2H_LOG_DEBUG, "resolving '%s' timed out", in->name);
            release_resolve(d, in);
            retry_later(d, in);
        }
        while (in->resolved && in->sends < N_SENDS &&
               in->resolved_at + send_offsets[in->sends] <= t + 0.001) {
            send_dy(d, in);
            in->sends++;
        }
    }
    start_resolves(d);
    if (!check_failure(d)) schedule_tick(d);
}

/* One timer for the earliest thing to do, or none. */
static void schedule_tick(dnssd *d) {
    double next = -1;
    for (entry *in = d->instances; in; in = in->next) {
        double t = -1;
        if (in->resolve || (in->waiting && d->n_resolving < MAX_RESOLVING))
            t = in->deadline;
        else if (in->resolved && in->sends < N_SENDS)
            t = in->resolved_at + send_offsets[in->sends];
        if (t >= 0 && (next < 0 || t < next)) next = t;
    }
    d->host->loop->timer_stop(d->tick);
    d->tick = NULL;
    if (next < 0) return;
    double delay = next - now(d);
    d->tick = d->host->loop->timer_start(d->self, delay > 0 ? delay : 0, 0, on_tick, d);
}

/* ---- browsing ---- */

static entry *find_instance(dnssd *d, const char *name) {
    for (entry *in = d->instances; in; in = in->next)
        if (strcmp(in->name, name) == 0) return in;
    return NULL;
}

static void remove_instance(dnssd *d, entry *gone) {
    for (entry **p = &d->instances; *p; p = &(*p)->next)
        if (*p == gone) {
            *p = gone->next;
            release_resolve(d, gone);
            free(gone);
            return;
        }
}

static void DNSSD_API on_browse(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
                                DNSServiceErrorType err, const char *name, const char *type,
                                const char *domain, void *ctx) {
    dnssd *d = ctx;
    if (err) {
        note_failure(d, "lost avahi-daemon (browse)", err);
        return;
    }
    if (!name || !domain) return;
    bool add = (flags & kDNSServiceFlagsAdd) != 0;
    if (!ensemble_instance(d, name)) {
        if (add) d->host->log->write(d->self, O2H_LOG_DEBUG, "'%s' is not of this ensemble", name);
        return;
    }
    entry *in = find_instance(d, name);
    if (!add) {
        if (in && --in->n_ifaces <= 0) {
            d->host->log->write(d->self, O2H_LOG_DEBUG, "'%s' is gone", name);
            remove_instance(d, in);
        }
        return;
    }
    if (in) {
        in->n_ifaces++;
        return;
    }
    if (strlen(name) >= MAX_INSTANCE_NAME || strlen(domain) >= MAX_INSTANCE_NAME) return;
    in = calloc(1, sizeof *in);
    if (!in) return;
    in->d = d;
    snprintf(in->name, sizeof in->name, "%s", name);
    snprintf(in->domain, sizeof in->domain, "%s", domain);
    in->ifindex = ifindex;
    in->n_ifaces = 1;
    in->deadline = now(d);
    /* Our own registration needs no resolve; the TXT check would catch it anyway. */
    in->waiting = strcmp(name, d->registered_as) != 0;
    in->next = d->instances;
    d->instances = in;
}

static void on_browse_readable(void *ctx, int fd, unsigned events) {
    dnssd *d = ctx;
    DNSServiceErrorType err = DNSServiceProcessResult(d->browse);
    if (err) note_failure(d, "lost avahi-daemon", err);
    if (check_failure(d)) return;
    start_resolves(d);
    if (!check_failure(d)) schedule_tick(d);
}

/* ---- registering ---- */

static void DNSSD_API on_registered(DNSServiceRef ref, DNSServiceFlags flags,
                                    DNSServiceErrorType err, const char *name, const char *type,
                                    const char *domain, void *ctx) {
    dnssd *d = ctx;
    if (err) {
        note_failure(d, "registration failed", err);
        return;
    }
    if (name && strcmp(name, d->registered_as) != 0) {
        snprintf(d->registered_as, sizeof d->registered_as, "%s", name);
        d->host->log->write(d->self, O2H_LOG_INFO, "registered %s as '%s'", d->proc_name, name);
        entry *self = find_instance(d, name);
        if (self && !self->resolve) self->waiting = false;
    }
}

static void on_reg_readable(void *ctx, int fd, unsigned events) {
    dnssd *d = ctx;
    DNSServiceErrorType err = DNSServiceProcessResult(d->reg);
    if (err) note_failure(d, "lost avahi-daemon", err);
    check_failure(d);
}

/* The instance name after `renames` conflicts: "ens", then "ens #2" as avahi
 * renames. Another process of the ensemble that registered with this daemon
 * first is a conflict avahi's compat layer does not rename, and processes that
 * start together would each meet every one before them in "#2", "#3", ...
 * (N processes: N^2 / 2 registrations); so after "#2" the number is drawn from
 * this process's name, and conflicts are rare. */
static void instance_name(const dnssd *d, char *name, size_t size) {
    if (!d->renames) {
        snprintf(name, size, "%s", d->ensemble);
        return;
    }
    uint32_t h = 2166136261u; /* FNV-1a of the process name and the attempt */
    for (const char *c = d->proc_name; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    h = (h ^ (uint32_t)d->renames) * 16777619u;
    unsigned n = d->renames == 1 ? 2 : 3 + (unsigned)(h % 9997);
    snprintf(name, size, "%s #%u", d->ensemble, n);
}

/* Register, under the next name while avahi reports a conflict at once. */
static bool register_instance(dnssd *d) {
    char name[sizeof d->ensemble + 16];
    DNSServiceErrorType err;
    do { /* avahi reports a local conflict here, or later to on_registered */
        instance_name(d, name, sizeof name);
        err =
            DNSServiceRegister(&d->reg, 0, d->ifindex, name, SERVICE_TYPE, NULL, NULL,
                               htons((uint16_t)d->tcp_port), d->txt_len, d->txt, on_registered, d);
    } while (err == kDNSServiceErr_NameConflict && d->renames++ < MAX_RENAMES);
    if (err) {
        d->reg = NULL;
        fail(d, "cannot register with avahi-daemon", err);
        return false;
    }
    d->reg_watch = d->host->loop->watch_fd(d->self, DNSServiceRefSockFD(d->reg), O2H_EV_READ,
                                           on_reg_readable, d);
    if (!d->reg_watch) {
        fail(d, "cannot watch the DNS-SD sockets", kDNSServiceErr_NoMemory);
        return false;
    }
    return true;
}

static void connect_avahi(dnssd *d) {
    if (!d->announced || d->up) return;
    if (!register_instance(d)) return;
    DNSServiceErrorType err;
    err = DNSServiceBrowse(&d->browse, 0, d->ifindex, SERVICE_TYPE, "local.", on_browse, d);
    if (err) {
        d->browse = NULL;
        fail(d, "cannot browse with avahi-daemon", err);
        return;
    }
    d->browse_watch = d->host->loop->watch_fd(d->self, DNSServiceRefSockFD(d->browse), O2H_EV_READ,
                                              on_browse_readable, d);
    if (!d->browse_watch) {
        fail(d, "cannot watch the DNS-SD sockets", kDNSServiceErr_NoMemory);
        return;
    }
    d->up = true;
    d->retry = d->retry_min;
    d->host->log->write(d->self, d->down_reported ? d->unavailable_level : O2H_LOG_INFO,
                        "DNS-SD is up: registering %s (ensemble '%s') and browsing " SERVICE_TYPE
                        "%s%s",
                        d->proc_name, d->ensemble, d->ifname[0] ? " on " : "", d->ifname);
    d->down_reported = false;
}

/* ---- lifecycle ---- */

/* "when_unavailable": how loudly to say that avahi cannot be reached. */
static int read_unavailable_level(const o2h_host *host, const o2h_cfg *cfg, int *level) {
    const char *text;
    if (host->cfg->get_string(cfg, "when_unavailable", "warn", &text) == O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    if (strcmp(text, "warn") != 0 && strcmp(text, "info") != 0)
        return host->cfg->error(cfg, "when_unavailable", "expected \"warn\" or \"info\"");
    *level = text[0] == 'w' ? O2H_LOG_WARN : O2H_LOG_INFO;
    return O2H_OK;
}

static int dnssd_create(const o2h_host *host, o2h_plugin *self, const o2h_cfg *cfg,
                        void **instance_out) {
    dnssd *d = calloc(1, sizeof *d);
    if (!d) return O2H_NO_MEMORY;
    *d = (dnssd){.host = host, .self = self, .fd = -1};
    if (host->cfg->get_string(cfg, "interface", "", &d->ifname) == O2H_CONFIG_ERROR ||
        host->cfg->get_double(cfg, "retry_min", 1.0, &d->retry_min) == O2H_CONFIG_ERROR ||
        host->cfg->get_double(cfg, "retry_max", 30.0, &d->retry_max) == O2H_CONFIG_ERROR ||
        host->cfg->get_double(cfg, "resolve_timeout", 5.0, &d->resolve_timeout) ==
            O2H_CONFIG_ERROR ||
        read_unavailable_level(host, cfg, &d->unavailable_level) != O2H_OK ||
        ((d->retry_min <= 0 || d->retry_max < d->retry_min) &&
         host->cfg->error(cfg, NULL, "need 0 < retry_min <= retry_max")) ||
        (d->resolve_timeout <= 0 && host->cfg->error(cfg, "resolve_timeout", "must be > 0")) ||
        (strlen(d->ifname) >= IF_NAMESIZE &&
         host->cfg->error(cfg, "interface", "not an interface name"))) {
        free(d);
        return O2H_CONFIG_ERROR;
    }
    d->retry = d->retry_min;
    *instance_out = d;
    return O2H_OK;
}

static int dnssd_start(void *inst) {
    dnssd *d = inst;
    if (d->ifname[0]) {
        d->ifindex = if_nametoindex(d->ifname);
        if (!d->ifindex) {
            d->host->log->write(d->self, O2H_LOG_ERROR, "no network interface '%s'", d->ifname);
            return O2H_BAD_ARGS;
        }
    }
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return d->fd < 0 ? O2H_SOCKET_ERROR : O2H_OK;
}

static int dnssd_announce(void *inst, const o2h_process_info *info) {
    dnssd *d = inst;
    if (!d->announced) {
        if (strlen(info->ensemble) >= sizeof d->ensemble || build_txt(d, info) != O2H_OK) {
            d->host->log->write(d->self, O2H_LOG_ERROR, "cannot announce %s of ensemble '%s'",
                                info->name, info->ensemble);
            return O2H_BAD_NAME;
        }
        snprintf(d->ensemble, sizeof d->ensemble, "%s", info->ensemble);
        snprintf(d->proc_name, sizeof d->proc_name, "%s", info->name);
        d->version = info->version;
        d->tcp_port = info->tcp_port;
        d->announced = true;
        connect_avahi(d);
        return O2H_OK;
    }
    /* A peer was lost: resolve every known instance again (a peer that came
     * back under the same instance name may have a new name and ports) and
     * contact it. */
    double t = now(d);
    for (entry *in = d->instances; in; in = in->next) {
        if (!in->resolve && strcmp(in->name, d->registered_as) != 0) {
            in->resolved = false;
            in->ignored = false;
            in->attempts = 0;
            in->waiting = true;
            in->deadline = t;
        }
    }
    if (d->up) {
        start_resolves(d);
        if (!check_failure(d)) schedule_tick(d);
    }
    return O2H_OK;
}

static int dnssd_withdraw(void *inst) {
    dnssd *d = inst;
    teardown(d); /* deallocating the registration withdraws it */
    d->host->loop->timer_stop(d->retry_timer);
    d->retry_timer = NULL;
    d->announced = false;
    return O2H_OK;
}

static void dnssd_stop(void *inst) {
    dnssd *d = inst;
    dnssd_withdraw(d);
    if (d->fd >= 0) close(d->fd);
    d->fd = -1;
}

static void dnssd_destroy(void *inst) {
    free(inst);
}

static const o2h_discovery_ops dnssd_ops = {.announce = dnssd_announce, .withdraw = dnssd_withdraw};

static const o2h_plugin_desc dnssd_desc = {
    O2H_PLUGIN_DESC_HEADER(o2h_discovery_ops),
    .kind = O2H_PLUGIN_DISCOVERY,
    .name = "dnssd",
    .version = "1.0.0",
    .description = "O2's ZeroConf discovery (_o2proc._tcp) through avahi's dns_sd API",
    .lifecycle = {dnssd_create, dnssd_start, dnssd_stop, dnssd_destroy},
    .ops = &dnssd_ops,
};

O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void);
O2H_PLUGIN_EXPORT const o2h_plugin_desc *O2H_PLUGIN_ENTRY(void) {
    return &dnssd_desc;
}
