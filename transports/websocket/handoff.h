/*
 * A bounded lock-free queue of pointers (C11 atomics, no locks, no
 * allocation after init), used to hand work from libmicrohttpd's thread to
 * the router's loop thread when the websocket transport runs MHD in its own
 * thread ("mhd_thread": true). Any number of producers and consumers may use
 * it at once (D. Vyukov's bounded MPMC ring: each cell carries a sequence
 * number that says whose turn it is); here there is one of each. A push
 * "happens before" the pop that returns its item (release/acquire), so the
 * consumer sees everything the producer wrote to the item before pushing.
 */
#ifndef O2H_WS_HANDOFF_H
#define O2H_WS_HANDOFF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct handoff_cell {
    atomic_size_t seq;
    void *item;
} handoff_cell;

typedef struct handoff_ring {
    handoff_cell *cells;
    size_t mask; /* capacity - 1; the capacity is a power of two */
    char pad0[64];
    atomic_size_t head; /* next position to push (producers) */
    char pad1[64];
    atomic_size_t tail; /* next position to pop (consumers) */
    char pad2[64];
} handoff_ring;

/** Room for at least `capacity` items (rounded up to a power of two, at least 2).
 * Returns 0, or -1 when out of memory. */
int handoff_init(handoff_ring *r, size_t capacity);
/** The number of items the ring holds when full. */
size_t handoff_capacity(const handoff_ring *r);
/** Append `item` (not NULL); false, and nothing changed, when the ring is full. */
bool handoff_push(handoff_ring *r, void *item);
/** The oldest item, or NULL when the ring is empty. */
void *handoff_pop(handoff_ring *r);
/** Release the cells (items still queued are the caller's business). */
void handoff_free(handoff_ring *r);

#endif
