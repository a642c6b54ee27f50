#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct o2h_watch {
    loop *lp;
    int fd;
    unsigned events;
    o2h_fd_cb cb;
    void *ctx;
    uint64_t ready_turn; /* the last turn epoll said it was ready in */
    bool dead;
    struct o2h_watch *next_dead;
};

struct o2h_timer {
    loop *lp;
    uint64_t deadline_ns;
    uint64_t period_ns;
    o2h_timer_cb cb;
    void *ctx;
    int32_t heap_index; /* -1 when not scheduled */
    bool running;
    bool stopped;
};

/* epoll user data for the loop's own fds; watches use their pointer. */
static const char wake_tag, timer_tag;

/* Timers fired in one pass at most, so a callback re-arming at 0 delay cannot spin forever. */
#define MAX_TIMERS_PER_PASS 1024
#define MAX_EVENTS 64

uint64_t o2h__loop_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int add_internal_fd(loop *lp, int fd, const void *tag) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)(uintptr_t)tag};
    return epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int o2h__loop_init(loop *lp) {
    memset(lp, 0, sizeof *lp);
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    lp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    lp->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    atomic_init(&lp->wake_pending, false);
    if (lp->epfd < 0 || lp->wakefd < 0 || lp->timerfd < 0 ||
        add_internal_fd(lp, lp->wakefd, &wake_tag) != 0 ||
        add_internal_fd(lp, lp->timerfd, &timer_tag) != 0) {
        o2h__loop_fini(lp);
        return -1;
    }
    return 0;
}

static void free_dead_watches(loop *lp) {
    while (lp->dead_watches) {
        o2h_watch *w = lp->dead_watches;
        lp->dead_watches = w->next_dead;
        free(w);
    }
}

void o2h__loop_fini(loop *lp) {
    o2h__loop_run_deferred(lp);
    for (uint32_t i = 0; i < lp->heap_len; i++)
        free(lp->heap[i]);
    free(lp->heap);
    lp->heap = NULL;
    lp->heap_len = lp->heap_cap = 0;
    free_dead_watches(lp);
    if (lp->epfd >= 0) close(lp->epfd);
    if (lp->wakefd >= 0) close(lp->wakefd);
    if (lp->timerfd >= 0) close(lp->timerfd);
    lp->epfd = lp->wakefd = lp->timerfd = -1;
}

/* ---- fd watches ---- */

o2h_watch *o2h__loop_watch(loop *lp, int fd, unsigned events, o2h_fd_cb cb, void *ctx) {
    o2h_watch *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    *w = (o2h_watch){.lp = lp, .fd = fd, .events = events, .cb = cb, .ctx = ctx};
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(w);
        return NULL;
    }
    lp->n_watches++;
    return w;
}

int o2h__loop_watch_modify(o2h_watch *w, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(w->lp->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0) return -1;
    w->events = events;
    return 0;
}

void o2h__loop_watch_remove(o2h_watch *w) {
    if (!w || w->dead) return;
    loop *lp = w->lp;
    /* The fd may already be closed by its owner; then epoll dropped it itself. */
    epoll_ctl(lp->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->dead = true;
    lp->n_watches--;
    /* Events for it may still sit in the current batch: free after the batch. */
    w->next_dead = lp->dead_watches;
    lp->dead_watches = w;
    if (!lp->in_poll) free_dead_watches(lp);
}

/* ---- timer heap ---- */

static void heap_set(loop *lp, uint32_t i, o2h_timer *t) {
    lp->heap[i] = t;
    t->heap_index = (int32_t)i;
}

static void heap_up(loop *lp, uint32_t i) {
    o2h_timer *t = lp->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (lp->heap[parent]->deadline_ns <= t->deadline_ns) break;
        heap_set(lp, i, lp->heap[parent]);
        i = parent;
    }
    heap_set(lp, i, t);
}

static void heap_down(loop *lp, uint32_t i) {
    o2h_timer *t = lp->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= lp->heap_len) break;
        if (child + 1 < lp->heap_len &&
            lp->heap[child + 1]->deadline_ns < lp->heap[child]->deadline_ns)
            child++;
        if (lp->heap[child]->deadline_ns >= t->deadline_ns) break;
        heap_set(lp, i, lp->heap[child]);
        i = child;
    }
    heap_set(lp, i, t);
}

static int heap_push(loop *lp, o2h_timer *t) {
    if (lp->heap_len == lp->heap_cap) {
        uint32_t cap = lp->heap_cap ? lp->heap_cap * 2 : 16;
        o2h_timer **h = realloc(lp->heap, cap * sizeof *h);
        if (!h) return -1;
        lp->heap = h;
        lp->heap_cap = cap;
    }
    heap_set(lp, lp->heap_len++, t);
    heap_up(lp, lp->heap_len - 1);
    return 0;
}

static void heap_remove(loop *lp, o2h_timer *t) {
    uint32_t i = (uint32_t)t->heap_index;
    t->heap_index = -1;
    o2h_timer *last = lp->heap[--lp->heap_len];
    if (last == t) return;
    heap_set(lp, i, last);
    heap_up(lp, i);
    heap_down(lp, (uint32_t)last->heap_index);
}

/* Delays come from message timestamps too (any double): beyond ~31 years
 * they are capped, as a cast out of range would be undefined. NaN gives 0. */
static uint64_t seconds_to_ns(double s) {
    if (!(s > 0)) return 0;
    return s >= 1e9 ? 1000000000000000000ull : (uint64_t)(s * 1e9 + 0.5);
}

o2h_timer *o2h__loop_timer_start(loop *lp, double delay_s, double period_s, o2h_timer_cb cb,
                                 void *ctx) {
    o2h_timer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    *t = (o2h_timer){.lp = lp,
                     .deadline_ns = o2h__loop_now_ns() + seconds_to_ns(delay_s),
                     .period_ns = seconds_to_ns(period_s),
                     .cb = cb,
                     .ctx = ctx,
                     .heap_index = -1};
    if (heap_push(lp, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void o2h__loop_timer_stop(o2h_timer *t) {
    if (!t) return;
    if (t->heap_index >= 0) heap_remove(t->lp, t);
    if (t->running)
        t->stopped = true; /* freed when its callback returns */
    else
        free(t);
}

static int run_due_timers(loop *lp) {
    int fired = 0;
    uint64_t now = o2h__loop_now_ns();
    while (lp->heap_len > 0 && lp->heap[0]->deadline_ns <= now && fired < MAX_TIMERS_PER_PASS) {
        o2h_timer *t = lp->heap[0];
        heap_remove(lp, t);
        t->running = true;
        t->cb(t->ctx);
        t->running = false;
        fired++;
        if (t->stopped) {
            free(t);
        } else if (t->period_ns > 0) {
            /* Keep the period's phase, but skip missed ticks instead of bursting. */
            t->deadline_ns += t->period_ns;
            if (t->deadline_ns < now) t->deadline_ns = now + t->period_ns;
            if (heap_push(lp, t) != 0) t->heap_index = -1;
        }
    }
    return fired;
}

static void arm_timerfd(loop *lp) {
    uint64_t want = lp->heap_len ? lp->heap[0]->deadline_ns : 0;
    if (want == lp->armed_ns) return;
    struct itimerspec its = {0};
    if (want) {
        its.it_value.tv_sec = (time_t)(want / 1000000000ull);
        its.it_value.tv_nsec = (long)(want % 1000000000ull);
    }
    timerfd_settime(lp->timerfd, want ? TFD_TIMER_ABSTIME : 0, &its, NULL);
    lp->armed_ns = want;
}

static void drain_fd(int fd) {
    uint64_t v;
    while (read(fd, &v, sizeof v) == (ssize_t)sizeof v) {
    }
}

/* A watch ready in the turn before this one too is busy (a flood, or a backlog): it has
 * its callback after the watches that just became ready, and what those sent is written
 * first (the deferred phase runs between the two). A control message that arrives
 * during a flood so waits for at most one turn's share of the flood, and never behind
 * it in the same turn. Each watch still has its callback in every turn it is ready. */
static bool busy(loop *lp, o2h_watch *w) {
    bool was_ready = w->ready_turn != 0 && w->ready_turn + 1 == lp->turn;
    w->ready_turn = lp->turn;
    return was_ready;
}

int o2h__loop_poll(loop *lp, int timeout_ms, bool *woken) {
    struct epoll_event events[MAX_EVENTS];
    o2h_watch *later[MAX_EVENTS];
    unsigned later_events[MAX_EVENTS];
    int n_later = 0;
    *woken = false;
    /* What was queued since the last turn (outside any) goes out before we wait. */
    o2h__loop_run_deferred(lp);
    lp->in_poll = true;
    int handled = run_due_timers(lp);
    arm_timerfd(lp);
    int n = epoll_wait(lp->epfd, events, MAX_EVENTS, handled > 0 ? 0 : timeout_ms);
    if (n < 0 && errno != EINTR) {
        lp->in_poll = false;
        return -1;
    }
    lp->turn++;
    for (int i = 0; i < n; i++) {
        void *tag = events[i].data.ptr;
        if (tag == &wake_tag) {
            /* Drain before clearing the flag: a waker that still sees the flag
             * set has queued its work before this point, and the caller
             * processes queued work after o2h__loop_poll returns. */
            drain_fd(lp->wakefd);
            atomic_store(&lp->wake_pending, false);
            *woken = true;
            handled++;
        } else if (tag == &timer_tag) {
            drain_fd(lp->timerfd);
            lp->armed_ns = 0;
        } else {
            o2h_watch *w = tag;
            if (w->dead) continue;
            if (busy(lp, w)) {
                later[n_later] = w;
                later_events[n_later++] = events[i].events;
                continue;
            }
            w->cb(w->ctx, w->fd, events[i].events);
            handled++;
        }
    }
    if (n_later > 0) o2h__loop_run_deferred(lp); /* what the others sent goes first */
    for (int i = 0; i < n_later; i++) {
        o2h_watch *w = later[i];
        if (w->dead) continue;
        w->cb(w->ctx, w->fd, later_events[i]);
        handled++;
    }
    handled += run_due_timers(lp);
    arm_timerfd(lp);
    free_dead_watches(lp);
    lp->in_poll = false;
    o2h__loop_run_deferred(lp);
    return handled;
}

void o2h__loop_defer(loop *lp, o2h_deferred *d, void (*fn)(void *ctx), void *ctx) {
    if (d->pending_) return;
    d->pending_ = 1;
    if (!lp->in_poll && !lp->in_deferred && lp->turn_open == 0) o2h__loop_wake(lp);
    d->fn_ = fn;
    d->ctx_ = ctx;
    d->next_ = NULL;
    if (lp->deferred_tail)
        lp->deferred_tail->next_ = d;
    else
        lp->deferred_head = d;
    lp->deferred_tail = d;
}

void o2h__loop_run_deferred(loop *lp) {
    if (lp->in_deferred) return; /* a deferred call's own host calls: the loop below goes on */
    lp->in_deferred = true;
    while (lp->deferred_head) {
        o2h_deferred *d = lp->deferred_head;
        lp->deferred_head = d->next_;
        if (!lp->deferred_head) lp->deferred_tail = NULL;
        d->pending_ = 0;
        d->fn_(d->ctx_); /* may free d, may defer more */
    }
    lp->in_deferred = false;
}

void o2h__loop_wake(loop *lp) {
    /* One write per burst of wake-ups keeps cross-thread posting cheap. */
    if (atomic_exchange(&lp->wake_pending, true)) return;
    uint64_t one = 1;
    ssize_t r = write(lp->wakefd, &one, sizeof one);
    (void)r;
}
