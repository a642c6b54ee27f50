/*
 * o2l_dnssd.h — DNS-SD discovery of hosts for the o2lite client, as O2's own
 * o2lite does it: browse `_o2proc._tcp` for the ensemble's instances ("ens",
 * or a renamed "ens #2"), resolve one at a time, and connect to the internal
 * IP and ports in its TXT `name` (checked as O2 checks it, `vers` of the same
 * major version). O2 2.x hosts announce themselves only this way by default,
 * so this is how an o2lite program finds one without o2l_set_host().
 *
 * Built on the system's dns_sd.h (avahi's compatibility library on Linux,
 * Bonjour on macOS) in its own static library, `o2lite_dnssd` (pkg-config
 * `o2lite-dnssd`), so that o2lite itself stays free of it. It uses the heap
 * through that library; o2lite does not.
 */
#ifndef O2L_DNSSD_H
#define O2L_DNSSD_H

#include "o2lite.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Look for hosts by DNS-SD from now on (UDP discovery keeps running beside
 * it). Call after o2l_initialize(); o2l_finish() stops it. While there is no
 * host it browses, and browses afresh every 20 s; when the daemon cannot be
 * reached it tries again every 2 s, quietly. Returns O2L_SUCCESS, or O2L_FAIL
 * if the client is not initialized.
 */
int o2l_dnssd_enable(void);

#ifdef __cplusplus
}
#endif

#endif
