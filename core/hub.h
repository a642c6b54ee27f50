/*
 * Hub discovery, as O2's o2_hub: a process told of one hub learns the
 * ensemble through it. Every router is a hub for whoever asks; a router asks
 * the processes named by o2h_router_hub (or the static plugin's "hub").
 */
#ifndef O2H_HUB_H
#define O2H_HUB_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

/** A process asked to be our hub, as it was named to us. */
struct hub_entry {
    char name[32]; /* "@pppppppp:iiiiiiii:tttt": the name O2's tie rule compares */
    uint32_t ip;   /* internal IPv4, host order */
    int tcp_port;
    int udp_port; /* until its own !_o2/dy says otherwise */
    struct hub_entry *next;
};

/** Register the /_o2/hub handler (part of the "_o2" service). */
int o2h__hub_init(o2h_router *r);
void o2h__hub_fini(o2h_router *r);

/**
 * Use the process at `ip`:`tcp` (public IP `pip`, 8 hex digits) as a hub:
 * remembered, and reached now if this process has a name (else once it
 * has). Again for a hub already in use: nothing. O2H_FAIL when "allow"
 * refuses the address or too many hubs are in use.
 */
int o2h__hub_use(o2h_router *r, const char *pip, uint32_t ip, int tcp, int udp);

/** Is the process at `ip`:`tcp` one we asked to be our hub? */
bool o2h__hub_is(const o2h_router *r, uint32_t ip, int tcp);

/** This process has its name now: reach the hubs asked for before. */
void o2h__hub_named(o2h_router *r);

/** Send `!_o2/hub` to our hub `p` (it answers with the processes it knows). */
void o2h__hub_ask(o2h_router *r, peer *p);

/** A dy REPLY came by `from`: our hub has answered our dy HUB. */
void o2h__hub_replied(o2h_router *r, o2h_link *from, const char *name, int udp);

/** A new peer: the processes that use us as their hub and it are introduced. */
void o2h__hub_peer_added(o2h_router *r, peer *p);

#endif
