/*
 * Which IPv4 addresses O2 processes may be at: the router's "allow" list of
 * networks (CIDR). A discovery message naming an address outside it, or one
 * no process can have (0.0.0.0/8, multicast, broadcast and the reserved
 * 240/4), never makes this router connect, and a process there is not let in.
 */
#ifndef O2H_ALLOW_H
#define O2H_ALLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct allow_net {
    uint32_t addr; /* host byte order, masked */
    uint32_t mask;
} allow_net;

typedef struct allow_list {
    allow_net *nets; /* NULL: the default (loopback, private and link-local networks,
                        and the networks of this machine's own interfaces) */
    int n;
    allow_net *local; /* this machine's IPv4 networks, read when the router is made */
    int n_local;
} allow_list;

/** Read this machine's IPv4 networks into l->local (part of the default). */
void o2h__allow_read_local(allow_list *l);

/** Parse "a.b.c.d/len" or "a.b.c.d" (a /32). 0 on success, -1 if malformed. */
int o2h__allow_parse_cidr(const char *text, allow_net *out);

/** Add a network to the list (the first replaces the default). 0, or -1 out of memory. */
int o2h__allow_add(allow_list *l, allow_net net);

/** True when a process may be at `ip` (host byte order). */
bool o2h__allow_permits(const allow_list *l, uint32_t ip);

/** Text of the list for logs and errors ("127.0.0.0/8, ..."). */
void o2h__allow_describe(const allow_list *l, char *out, size_t size);

void o2h__allow_fini(allow_list *l);

#endif
