/* Publishing the HTTP server on DNS-SD (see http_dnssd.h). */
#include "http_dnssd.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef O2H_HAVE_DNS_SD
#include <dns_sd.h>

#define RETRY_MIN 1.0
#define RETRY_MAX 30.0

struct http_dnssd {
    const o2h_host *host;
    o2h_plugin *self;
    char name[64];
    int port;
    const char *type; /* "_http._tcp" or "_https._tcp" */
    DNSServiceRef ref;
    o2h_watch *watch;
    o2h_timer *retry;
    double backoff;
    bool warned; /* one warning per outage, then quiet retries */
};

static void try_register(void *ctx);

static void drop_ref(http_dnssd *d) {
    if (d->watch) d->host->loop->watch_remove(d->watch);
    d->watch = NULL;
    if (d->ref) DNSServiceRefDeallocate(d->ref);
    d->ref = NULL;
}

static void retry_later(http_dnssd *d, const char *why, int err) {
    drop_ref(d);
    if (!d->warned) {
        d->host->log->write(
            d->self, O2H_LOG_WARN,
            "cannot publish http on DNS-SD (%s, error %d): is avahi-daemon running? "
            "retrying",
            why, err);
        d->warned = true;
    }
    d->host->loop->timer_stop(d->retry);
    d->retry = d->host->loop->timer_start(d->self, d->backoff, 0, try_register, d);
    d->backoff = d->backoff * 2 > RETRY_MAX ? RETRY_MAX : d->backoff * 2;
}

static void DNSSD_API on_registered(DNSServiceRef ref, DNSServiceFlags flags,
                                    DNSServiceErrorType err, const char *name, const char *type,
                                    const char *domain, void *ctx) {
    http_dnssd *d = ctx;
    (void)ref;
    (void)flags;
    (void)domain;
    if (err != kDNSServiceErr_NoError) {
        retry_later(d, "registration refused", err);
        return;
    }
    d->host->log->write(d->self, O2H_LOG_INFO, "published \"%s\" as %s on port %d", name, type,
                        d->port);
    d->warned = false;
    d->backoff = RETRY_MIN;
}

static void on_readable(void *ctx, int fd, unsigned events) {
    http_dnssd *d = ctx;
    (void)fd;
    (void)events;
    DNSServiceErrorType err = DNSServiceProcessResult(d->ref);
    if (err != kDNSServiceErr_NoError) retry_later(d, "lost the daemon", err);
}

static void try_register(void *ctx) {
    http_dnssd *d = ctx;
    d->host->loop->timer_stop(d->retry);
    d->retry = NULL;
    DNSServiceErrorType err =
        DNSServiceRegister(&d->ref, 0, 0, d->name, d->type, NULL, NULL, htons((uint16_t)d->port), 0,
                           NULL, on_registered, d);
    if (err != kDNSServiceErr_NoError) {
        d->ref = NULL;
        retry_later(d, "no DNS-SD daemon", err);
        return;
    }
    d->watch =
        d->host->loop->watch_fd(d->self, DNSServiceRefSockFD(d->ref), O2H_EV_READ, on_readable, d);
    if (!d->watch) retry_later(d, "cannot watch its socket", 0);
}

bool http_dnssd_available(void) {
    return true;
}

http_dnssd *http_dnssd_start(const o2h_host *host, o2h_plugin *self, const char *name, int port,
                             bool tls) {
    http_dnssd *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->host = host;
    d->self = self;
    snprintf(d->name, sizeof d->name, "%s", name);
    d->port = port;
    d->type = tls ? "_https._tcp" : "_http._tcp";
    d->backoff = RETRY_MIN;
    try_register(d);
    return d;
}

void http_dnssd_stop(http_dnssd *d) {
    if (!d) return;
    drop_ref(d);
    d->host->loop->timer_stop(d->retry);
    free(d);
}

#else /* built without avahi's dns_sd.h */

bool http_dnssd_available(void) {
    return false;
}

http_dnssd *http_dnssd_start(const o2h_host *host, o2h_plugin *self, const char *name, int port,
                             bool tls) {
    (void)name;
    (void)port;
    (void)tls;
    host->log->write(self, O2H_LOG_WARN, "\"dnssd\": this build has no DNS-SD (avahi's dns_sd.h)");
    return NULL;
}

void http_dnssd_stop(http_dnssd *d) {
    (void)d;
}
#endif
