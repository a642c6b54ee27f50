/* The bounded lock-free ring of handoff.h. */
#include "handoff.h"

#include <stdint.h>
#include <stdlib.h>

int handoff_init(handoff_ring *r, size_t capacity) {
    size_t n = 2;
    while (n < capacity)
        n *= 2;
    r->cells = malloc(n * sizeof *r->cells);
    if (!r->cells) return -1;
    for (size_t i = 0; i < n; i++) {
        atomic_init(&r->cells[i].seq, i);
        r->cells[i].item = NULL;
    }
    r->mask = n - 1;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

size_t handoff_capacity(const handoff_ring *r) {
    return r->mask + 1;
}

/* A cell is free for the push at position `pos` when its seq is `pos`, and
 * holds the item for the pop at `pos` when its seq is `pos + 1`; the pop
 * sets it to `pos + capacity`, the position of the next push there. */
bool handoff_push(handoff_ring *r, void *item) {
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    handoff_cell *cell;
    for (;;) {
        cell = &r->cells[pos & r->mask];
        size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (dif < 0) {
            return false; /* the cell still holds the item of a lap ago: full */
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
    cell->item = item;
    atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
    return true;
}

void *handoff_pop(handoff_ring *r) {
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    handoff_cell *cell;
    for (;;) {
        cell = &r->cells[pos & r->mask];
        size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (dif < 0) {
            return NULL; /* not pushed yet: empty */
        } else {
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
    void *item = cell->item;
    cell->item = NULL;
    atomic_store_explicit(&cell->seq, pos + r->mask + 1, memory_order_release);
    return item;
}

void handoff_free(handoff_ring *r) {
    free(r->cells);
    r->cells = NULL;
}
