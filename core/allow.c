/* The allow list of O2 process addresses (see allow.h). */
#include "allow.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loopback, the private networks of RFC 1918 and link-local: a LAN ensemble
 * works with no config, an address on the internet needs "allow". */
static const allow_net default_nets[] = {
    {0x7f000000u, 0xff000000u}, /* 127.0.0.0/8 */
    {0x0a000000u, 0xff000000u}, /* 10.0.0.0/8 */
    {0xac100000u, 0xfff00000u}, /* 172.16.0.0/12 */
    {0xc0a80000u, 0xffff0000u}, /* 192.168.0.0/16 */
    {0xa9fe0000u, 0xffff0000u}, /* 169.254.0.0/16 */
};

int o2h__allow_parse_cidr(const char *text, allow_net *out) {
    char ip[INET_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    if (len == 0 || len >= sizeof ip) return -1;
    memcpy(ip, text, len);
    ip[len] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, ip, &a) != 1) return -1;
    long bits = 32;
    if (slash) {
        char *end;
        bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || bits < 0 || bits > 32) return -1;
    }
    out->mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    out->addr = ntohl(a.s_addr) & out->mask;
    return 0;
}

/* Addresses that never name one process: "this network", multicast, reserved, broadcast. */
static bool never_a_process(uint32_t ip) {
    return (ip >> 24) == 0 || (ip >> 28) == 0xe || (ip >> 28) == 0xf;
}

void o2h__allow_read_local(allow_list *l) {
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) return;
    int n = 0;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        n += i->ifa_addr && i->ifa_netmask && i->ifa_addr->sa_family == AF_INET;
    free(l->local);
    l->local = n ? calloc((size_t)n, sizeof *l->local) : NULL;
    l->n_local = 0;
    for (struct ifaddrs *i = ifs; i && l->local; i = i->ifa_next) {
        if (!i->ifa_addr || !i->ifa_netmask || i->ifa_addr->sa_family != AF_INET) continue;
        uint32_t addr = ntohl(((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
        uint32_t mask = ntohl(((const struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr);
        l->local[l->n_local++] = (allow_net){addr & mask, mask};
    }
    freeifaddrs(ifs);
}

static bool in_nets(const allow_net *nets, int n, uint32_t ip) {
    for (int i = 0; i < n; i++)
        if ((ip & nets[i].mask) == nets[i].addr) return true;
    return false;
}

/* The configured networks, or the fixed part of the default. */
static const allow_net *listed(const allow_list *l, int *n) {
    if (l && l->nets) {
        *n = l->n;
        return l->nets;
    }
    *n = (int)(sizeof default_nets / sizeof default_nets[0]);
    return default_nets;
}

bool o2h__allow_permits(const allow_list *l, uint32_t ip) {
    if (never_a_process(ip)) return false;
    if (l && !l->nets && in_nets(l->local, l->n_local, ip)) return true; /* the machine's LANs */
    int n;
    const allow_net *nets = listed(l, &n);
    return in_nets(nets, n, ip);
}

int o2h__allow_add(allow_list *l, allow_net net) {
    allow_net *nets = realloc(l->nets, (size_t)(l->n + 1) * sizeof *nets);
    if (!nets) return -1;
    nets[l->n++] = net;
    l->nets = nets;
    return 0;
}

void o2h__allow_describe(const allow_list *l, char *out, size_t size) {
    int n;
    const allow_net *nets = listed(l, &n);
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n && used < size; i++) {
        struct in_addr a = {.s_addr = htonl(nets[i].addr)};
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a, ip, sizeof ip);
        int bits = __builtin_popcount(nets[i].mask);
        int k = snprintf(out + used, size - used, "%s%s/%d", i ? ", " : "", ip, bits);
        if (k < 0) break;
        used += (size_t)k;
    }
    if (!(l && l->nets) && used < size)
        snprintf(out + used, size - used, " and this machine's networks");
}

void o2h__allow_fini(allow_list *l) {
    free(l->nets);
    free(l->local);
    memset(l, 0, sizeof *l);
}
