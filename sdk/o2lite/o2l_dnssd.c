/*
 * DNS-SD discovery backend for the o2lite client (o2l_dnssd.h): browse,
 * resolve one instance at a time, offer what checks out to o2lite.
 *
 * Browsing only runs while the client has no host, and each browse starts
 * afresh: a fresh browse reports every instance present, so a host lost
 * later is found again without keeping a table of instances.
 */
#include <arpa/inet.h>
#include <dns_sd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "o2l_dnssd.h"

#define SERVICE_TYPE "_o2proc._tcp"
#define MAX_PENDING 8         /* instances waiting to be resolved */
#define INSTANCE_MAX 64       /* DNS label: 63 bytes + NUL */
#define RESOLVE_SECONDS 1.0   /* give up on one instance after this */
#define REBROWSE_SECONDS 20.0 /* no host yet: browse afresh (as O2's o2lite does) */
#define RETRY_SECONDS 2.0     /* the daemon could not be reached */
#define TXT_NAME_LEN 28       /* "@pppppppp:iiiiiiii:tttt:uuuu" */

/* One client per program (o2lite.h), so one discovery state. */
static struct {
    DNSServiceRef browse, resolve;
    bool browse_failed, resolve_done; /* acted on after DNSServiceProcessResult returns */
    double browse_since, resolve_until, retry_at;
    char pending[MAX_PENDING][INSTANCE_MAX];
    int n_pending;
} Z;

/* ---- what O2 registers, checked as O2 checks it ---- */

static int hex_digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | d;
    }
    return v;
}

/* "@pppppppp:iiiiiiii:tttt:uuuu", tttt equal to the SRV port; the internal IP and UDP port. */
static bool parse_proc_name(const char *s, int len, int srv_port, uint32_t *ip, int *udp) {
    if (len != TXT_NAME_LEN || s[0] != '@' || s[9] != ':' || s[18] != ':' || s[23] != ':')
        return false;
    int pub_hi = hex_digits(s + 1, 4), pub_lo = hex_digits(s + 5, 4);
    int hi = hex_digits(s + 10, 4), lo = hex_digits(s + 14, 4);
    int tcp = hex_digits(s + 19, 4), port = hex_digits(s + 24, 4);
    if (pub_hi < 0 || pub_lo < 0 || hi < 0 || lo < 0 || tcp != srv_port || port <= 0) return false;
    *ip = (uint32_t)hi << 16 | (uint32_t)lo;
    *udp = port;
    return true;
}

/* "2.0.1": the major version, -1 if malformed. */
static int major_version(const char *s, int len) {
    int major = 0, i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        major = major * 10 + (s[i] - '0');
    return i == 0 || i >= len || s[i] != '.' || major > 255 ? -1 : major;
}

/* The ensemble's instance, or a renaming: "ens #2" (avahi), "ens (2)" (Bonjour). */
static bool ensemble_instance(const char *name) {
    const char *ens = o2l_ensemble_name();
    size_t n = strlen(ens);
    if (strncmp(name, ens, n) != 0) return false;
    const char *rest = name + n;
    if (!rest[0]) return true;
    char close = 0;
    if (strncmp(rest, " #", 2) == 0) {
        rest += 2;
    } else if (strncmp(rest, " (", 2) == 0) {
        rest += 2;
        close = ')';
    } else {
        return false;
    }
    const char *digits = rest;
    while (*rest >= '0' && *rest <= '9')
        rest++;
    if (rest == digits) return false;
    if (close && *rest++ != close) return false;
    return *rest == '\0';
}

/* ---- browse and resolve ---- */

static void stop(DNSServiceRef *ref) {
    if (*ref) DNSServiceRefDeallocate(*ref);
    *ref = NULL;
}

static void DNSSD_API on_resolved(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
                                  DNSServiceErrorType err, const char *fullname,
                                  const char *hosttarget, uint16_t port, uint16_t txt_len,
                                  const unsigned char *txt, void *ctx) {
    (void)ref, (void)flags, (void)ifindex, (void)fullname, (void)hosttarget, (void)ctx;
    Z.resolve_done = true;
    if (err) return;
    uint8_t name_len = 0, vers_len = 0;
    const char *name = TXTRecordGetValuePtr(txt_len, txt, "name", &name_len);
    const char *vers = TXTRecordGetValuePtr(txt_len, txt, "vers", &vers_len);
    uint32_t ip;
    int udp;
    if (!name || !vers || !parse_proc_name(name, name_len, ntohs(port), &ip, &udp)) return;
    if (major_version(vers, vers_len) != (O2L_VERSION >> 16)) return;
    o2l_offer_host(ip, ntohs(port), udp);
}

static void DNSSD_API on_browse(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
                                DNSServiceErrorType err, const char *name, const char *type,
                                const char *domain, void *ctx) {
    (void)ref, (void)ifindex, (void)type, (void)domain, (void)ctx;
    if (err) {
        Z.browse_failed = true;
        return;
    }
    if (!(flags & kDNSServiceFlagsAdd) || !ensemble_instance(name) ||
        strlen(name) >= INSTANCE_MAX || Z.n_pending == MAX_PENDING)
        return;
    for (int i = 0; i < Z.n_pending; i++) /* one entry per name (it may be on several interfaces) */
        if (strcmp(Z.pending[i], name) == 0) return;
    strcpy(Z.pending[Z.n_pending++], name);
}

static void start_browse(double now) {
    Z.n_pending = 0;
    Z.browse_failed = false;
    Z.browse_since = now;
    if (DNSServiceBrowse(&Z.browse, 0, kDNSServiceInterfaceIndexAny, SERVICE_TYPE, NULL, on_browse,
                         NULL) != kDNSServiceErr_NoError) {
        Z.browse = NULL;
        Z.retry_at = now + RETRY_SECONDS;
    }
}

static void start_resolve(double now) {
    char name[INSTANCE_MAX];
    strcpy(name, Z.pending[0]);
    memmove(Z.pending[0], Z.pending[1], (size_t)(--Z.n_pending) * INSTANCE_MAX);
    Z.resolve_done = false;
    Z.resolve_until = now + RESOLVE_SECONDS;
    if (DNSServiceResolve(&Z.resolve, 0, kDNSServiceInterfaceIndexAny, name, SERVICE_TYPE, "local.",
                          on_resolved, NULL) != kDNSServiceErr_NoError)
        Z.resolve = NULL;
}

/* Run the callbacks of whatever the daemon has sent; false if the connection failed. */
static bool process(DNSServiceRef ref) {
    struct pollfd p = {.fd = DNSServiceRefSockFD(ref), .events = POLLIN};
    if (p.fd < 0) return false;
    while (poll(&p, 1, 0) > 0) {
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return false;
        if (DNSServiceProcessResult(ref) != kDNSServiceErr_NoError) return false;
    }
    return true;
}

static void dnssd_poll(bool want_host, void *ctx) {
    (void)ctx;
    if (!want_host) { /* connected or connecting: nothing to look for */
        stop(&Z.resolve);
        stop(&Z.browse);
        return;
    }
    double now = o2l_local_time();
    if (!Z.browse && now < Z.retry_at) return;
    if (!Z.browse || (now - Z.browse_since > REBROWSE_SECONDS && !Z.resolve && !Z.n_pending)) {
        stop(&Z.browse);
        start_browse(now);
        if (!Z.browse) return;
    }
    if (!process(Z.browse) || Z.browse_failed) {
        stop(&Z.resolve);
        stop(&Z.browse);
        Z.retry_at = now + RETRY_SECONDS;
        return;
    }
    if (Z.resolve && (!process(Z.resolve) || Z.resolve_done || now > Z.resolve_until))
        stop(&Z.resolve);
    /* o2l_offer_host() may have connected us inside the callback: then stop looking. */
    if (!Z.resolve && Z.n_pending && o2l_status() == O2L_DISCONNECTED) start_resolve(now);
}

static void dnssd_finish(void *ctx) {
    (void)ctx;
    stop(&Z.resolve);
    stop(&Z.browse);
    memset(&Z, 0, sizeof Z);
}

int o2l_dnssd_enable(void) {
    if (!o2l_ensemble_name()[0]) return O2L_FAIL;
    /* avahi's compatibility layer prints a warning for every program that uses it. */
    setenv("AVAHI_COMPAT_NOWARN", "1", 0);
    o2l_discovery d = {.poll = dnssd_poll, .finish = dnssd_finish, .ctx = NULL};
    return o2l_set_discovery(&d);
}
