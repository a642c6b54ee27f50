/* What o2hub prints once it runs: what to connect to, and how. */
#ifndef O2HUB_HUB_BANNER_H
#define O2HUB_HUB_BANNER_H

#include <stdio.h>

#include <o2hub/o2hub.h>

/**
 * Print the ensemble, the process name and, from the config as read, the
 * addresses of the tcp, udp, websocket and osc transports and the
 * discovery in use, with commands to try; then flush `out`.
 */
void o2hub_print_banner(o2h_router *r, FILE *out);

#endif
