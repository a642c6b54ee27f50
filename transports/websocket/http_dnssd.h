/*
 * Publishing the HTTP server as `_http._tcp` (`_https._tcp` when it speaks
 * TLS) on DNS-SD (avahi's dns_sd.h),
 * as O2 does for its web pages, so browsers and tools find the ensemble's
 * page by name. The dns_sd socket runs in the router's loop. Without avahi
 * (not built with it, or the daemon is down) there is one log line and
 * retries with backoff; the HTTP server works the same either way.
 */
#ifndef O2H_HTTP_DNSSD_H
#define O2H_HTTP_DNSSD_H

#include <stdbool.h>

#include <o2hub/plugin.h>

typedef struct http_dnssd http_dnssd;

/** Whether this build can publish (avahi's dns_sd.h was found). */
bool http_dnssd_available(void);

/**
 * Start publishing instance `name` on `port`, as `_https._tcp` if `tls`
 * (retries until it works); NULL if out of memory.
 */
http_dnssd *http_dnssd_start(const o2h_host *host, o2h_plugin *self, const char *name, int port,
                             bool tls);

/** Withdraw the registration and free everything. */
void http_dnssd_stop(http_dnssd *d);

#endif
