/*
 * The bounded multi-producer, single-consumer hand-off of messages from
 * other threads to a router's loop thread. Producers push onto a lock-free
 * stack (one CAS); the consumer takes the whole stack with one exchange and
 * reverses it, so messages come out in the order they were posted.
 */
#ifndef O2H_POST_QUEUE_H
#define O2H_POST_QUEUE_H

#include <stdatomic.h>
#include <stdint.h>

#include "o2hub/msg.h"

typedef struct post_queue {
    _Atomic(o2h_msg *) head;
    atomic_uint_fast32_t count;
    atomic_uint_fast64_t dropped;
    uint32_t limit;
} post_queue;

void o2h__post_queue_init(post_queue *q, uint32_t limit);

/** Thread-safe. Takes the reference; 0 on success, -1 when full (message released). */
int o2h__post_queue_push(post_queue *q, o2h_msg *msg);

/** Consumer only: everything posted so far, oldest first, linked by msg_next(). */
o2h_msg *o2h__post_queue_take_all(post_queue *q);

/** Consumer only: release whatever is still queued. */
void o2h__post_queue_fini(post_queue *q);

#endif
