#include "netaddr.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int o2h_netaddr_parse_ipv4(const char *host, int port, struct sockaddr_in *out) {
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return port >= 0 && port <= 65535 && inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

int o2h_netaddr_resolve_ipv4(const char *host, int port, struct sockaddr_in *out, char *numeric) {
    if (o2h_netaddr_parse_ipv4(host, port, out) != 0) {
        if (port < 0 || port > 65535 || !host[0]) return -1;
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *found = NULL;
        if (getaddrinfo(host, NULL, &hints, &found) != 0 || !found) return -1;
        out->sin_addr = ((const struct sockaddr_in *)found->ai_addr)->sin_addr;
        freeaddrinfo(found);
    }
    if (numeric) inet_ntop(AF_INET, &out->sin_addr, numeric, INET_ADDRSTRLEN);
    return 0;
}

/* Split "host:port" into host (NUL-terminated in `host`) and a port 1..65535. */
static int split_endpoint(const char *text, char *host, size_t size, int *port) {
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= size) return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p <= 0 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

int o2h_netaddr_parse_endpoint(const char *text, struct sockaddr_in *out) {
    char host[64];
    int port;
    if (split_endpoint(text, host, sizeof host, &port) != 0) return -1;
    return o2h_netaddr_parse_ipv4(host, port, out);
}

int o2h_netaddr_resolve_endpoint(const char *text, struct sockaddr_in *out) {
    char host[256];
    int port;
    if (split_endpoint(text, host, sizeof host, &port) != 0) return -1;
    return o2h_netaddr_resolve_ipv4(host, port, out, NULL);
}

uint32_t o2h_netaddr_internal_ip(const struct sockaddr_in *bound) {
    uint32_t ip = ntohl(bound->sin_addr.s_addr);
    if (ip != INADDR_ANY) return ip;
    ip = INADDR_LOOPBACK;
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0) return ip;
    for (struct ifaddrs *i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_flags & IFF_LOOPBACK))
            continue;
        ip = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
        break;
    }
    freeifaddrs(list);
    return ip;
}

bool o2h_netaddr_allowed(const o2h_host *host, o2h_plugin *self, const struct sockaddr_in *from,
                         const char *what) {
    if (host->proc->allowed(self, ntohl(from->sin_addr.s_addr))) return true;
    char text[96], ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &from->sin_addr, ip, sizeof ip);
    snprintf(text, sizeof text, "%s from %s: not in \"allow\"", what, ip);
    host->proc->refused(self, text);
    return false;
}

int o2h_netaddr_cfg_listen(const o2h_host *h, const o2h_cfg *cfg, const char *host, int port,
                           int proto, struct sockaddr_in *out) {
    char numeric[INET_ADDRSTRLEN];
    if (o2h_netaddr_resolve_ipv4(host, port, out, numeric) != 0)
        return h->cfg->error(cfg, "host", "\"%s\" is neither an IPv4 address nor a name of one",
                             host);
    return h->cfg->claim_port(cfg, "port", proto, numeric, port) == O2H_OK ? O2H_OK
                                                                           : O2H_CONFIG_ERROR;
}
