/* Address helpers shared by the network plugins (compiled into each one). */
#ifndef O2H_NETADDR_H
#define O2H_NETADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include <o2hub/plugin.h>

/** Parse "a.b.c.d:port" (port 1..65535). 0 on success, -1 otherwise. */
int o2h_netaddr_parse_endpoint(const char *text, struct sockaddr_in *out);

/** Parse "a.b.c.d" and a port (0..65535). 0 on success, -1 otherwise. */
int o2h_netaddr_parse_ipv4(const char *host, int port, struct sockaddr_in *out);

/**
 * As o2h_netaddr_parse_ipv4, but `host` may also be a name ("localhost",
 * "studio.local"), looked up for IPv4 with getaddrinfo. The lookup blocks:
 * call it when reading a config, never on the loop. On success the numeric
 * address is written to `numeric` (INET_ADDRSTRLEN bytes) when not NULL.
 */
int o2h_netaddr_resolve_ipv4(const char *host, int port, struct sockaddr_in *out, char *numeric);

/**
 * The address a plugin listens on, from its config: `host` (the value of its
 * "host" key; a name is looked up as above) and `port` (of its "port" key),
 * claimed for `proto` (O2H_NET_TCP or O2H_NET_UDP) so that no other plugin
 * is given it. O2H_OK, or O2H_CONFIG_ERROR with the error reported at the key.
 */
int o2h_netaddr_cfg_listen(const o2h_host *h, const o2h_cfg *cfg, const char *host, int port,
                           int proto, struct sockaddr_in *out);

/** "host:port" with a name or an IPv4 address (port 1..65535); blocks as above. */
int o2h_netaddr_resolve_endpoint(const char *text, struct sockaddr_in *out);

/**
 * The internal IPv4 address (host order) O2 names a process by: the bound
 * address, or for 0.0.0.0 the first up, non-loopback interface, else 127.0.0.1.
 */
uint32_t o2h_netaddr_internal_ip(const struct sockaddr_in *bound);

/**
 * Whether an O2 process may be at `from` (the router's "allow"); if not, the
 * refusal of `what` ("a UDP datagram") from there is counted and logged.
 */
bool o2h_netaddr_allowed(const o2h_host *host, o2h_plugin *self, const struct sockaddr_in *from,
                         const char *what);

#endif
