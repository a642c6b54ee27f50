/*
 * Back-pressure for reliable messages. When a link's send queue is full, a
 * reliable message is never dropped: it waits, in order, in the link's hold
 * (bounded), later reliable messages for that link wait behind it, and the
 * link the message came from is paused (its transport stops reading it) so
 * that the sender slows down instead of the router growing. When the full
 * link drains (the transport calls host->link->drained, or a retry timer
 * finds room), the held messages go out and the paused links resume. Best
 * effort messages keep their counted drops.
 */
#ifndef O2H_LINK_HOLD_H
#define O2H_LINK_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "o2hub/types.h"

/* At most this many messages or bytes wait per link; beyond, a reliable
 * message is refused with O2H_BLOCKED (counted and logged, never silent). */
#define HOLD_MAX_MSGS 65536u
#define HOLD_MAX_BYTES (4u << 20)

typedef struct link_hold {
    o2h_msg **ring; /* held messages, oldest first */
    uint32_t head, count, cap;
    size_t bytes;
    o2h_link **paused; /* links paused because of this one */
    uint32_t n_paused, cap_paused;
    o2h_timer *retry;              /* fallback for transports that never call drained */
    struct o2h_link *next_holding; /* the router's list of links holding messages */
} link_hold;

/** Whether `link` has messages waiting (new reliable ones must wait behind them). */
bool o2h__link_hold_busy(const o2h_link *link);

/**
 * Hold `msg` (takes a reference) for `link` after a full queue, and pause the
 * link it came from. O2H_OK when held, O2H_BLOCKED when the hold is full.
 */
int o2h__link_hold_push(o2h_router *r, o2h_link *link, o2h_msg *msg);

/** Room on `link` (host->link->drained): send what waits, resume what was paused. */
void o2h__link_hold_drained(o2h_link *link);

/** `link` is being freed: drop what it holds (counted), resume its paused links,
 * and take it out of every other link's paused list. */
void o2h__link_hold_release(o2h_router *r, o2h_link *link);

#endif
