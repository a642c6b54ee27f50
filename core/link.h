/*
 * Links as the core sees them: a transport's connection, what it leads to
 * (a peer process, a bridge client), the one place that sends on it and
 * counts, and the rules that keep the re-entrancy contract of plugin.h:
 * the core's own closes are deferred, and a freed link is never named again.
 */
#ifndef O2H_LINK_H
#define O2H_LINK_H

#include <stdbool.h>

#include "link_hold.h"
#include "log_limit.h"
#include "msg_internal.h"
#include "o2hub/plugin.h"

struct o2h_link {
    o2h_plugin *plugin;
    void *ctx;
    char *description;
    struct peer *peer;     /* the O2 process this link leads to, if any */
    struct bridge *bridge; /* the light client this link carries, if any */
    bool freed;         /* the transport called o2h__link_free: memory goes in the deferred phase */
    bool close_pending; /* the core decided to close it; ops->close runs deferred */
    o2h_deferred close_later;
    o2h_deferred free_later;
    rate_limit drop_log;  /* a link that starts dropping says so, once per burst */
    link_hold hold;       /* reliable messages waiting for room, and the links paused for it */
    uint32_t pause_count; /* how many full links hold this one paused */
    uint64_t dropped;     /* messages this link refused (queue full or send error) */
};

/** A new link of plugin `p` (host->link->link_new). */
o2h_link *o2h__link_new(o2h_plugin *p, void *ctx, const char *description);

/** The transport closed the link (host->link->link_free): withdraw what it carried. */
void o2h__link_free(o2h_link *link);

/**
 * The core is done with the link: ops->close runs in the loop's deferred
 * phase (never inside a host call), unless the transport frees it first.
 */
void o2h__link_close(o2h_link *link);

/** Bytes the link's transport accepted and has not written yet (0: none, or it cannot tell). */
size_t o2h__link_queued(const o2h_link *link);

/** Send on one link (borrows the message); counts forwarded or dropped. */
int o2h__link_send(o2h_router *r, o2h_link *link, o2h_msg *msg);

/** The link a message came by while it is dispatched, or NULL (local, or since freed). */
static inline o2h_link *msg_origin(const o2h_msg *m) {
    o2h_link *l = msg_block_of(m)->origin;
    return l && !l->freed ? l : NULL;
}

static inline void msg_set_origin(o2h_msg *m, o2h_link *l) {
    msg_block_of(m)->origin = l;
}

#endif
