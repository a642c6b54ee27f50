/* The event loop: timers, fd watches, cross-thread wake-ups and posts. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "loop.h"

/* Poll until *flag reaches `want` or `limit_s` passes; bounded, never a bare sleep. */
static void poll_until(loop *lp, const int *flag, int want, double limit_s) {
    uint64_t end = o2h__loop_now_ns() + (uint64_t)(limit_s * 1e9);
    bool woken;
    while (*flag < want && o2h__loop_now_ns() < end)
        o2h__loop_poll(lp, 10, &woken);
}

static void count_cb(void *ctx) {
    (*(int *)ctx)++;
}

Test(loop, one_shot_timer_fires_once_after_its_delay) {
    loop lp;
    cr_assert_eq(o2h__loop_init(&lp), 0);
    int n = 0;
    uint64_t t0 = o2h__loop_now_ns();
    o2h_timer *t = o2h__loop_timer_start(&lp, 0.02, 0, count_cb, &n);
    poll_until(&lp, &n, 1, 2.0);
    cr_assert_eq(n, 1);
    cr_assert_geq(o2h__loop_now_ns() - t0, 20000000ull, "fired early");
    bool woken;
    o2h__loop_poll(&lp, 30, &woken);
    cr_assert_eq(n, 1, "a one-shot timer fires once");
    o2h__loop_timer_stop(t);
    o2h__loop_fini(&lp);
}

Test(loop, periodic_timer_repeats) {
    loop lp;
    o2h__loop_init(&lp);
    int n = 0;
    o2h_timer *t = o2h__loop_timer_start(&lp, 0.001, 0.001, count_cb, &n);
    poll_until(&lp, &n, 5, 2.0);
    cr_assert_geq(n, 5);
    o2h__loop_timer_stop(t);
    int before = n;
    bool woken;
    o2h__loop_poll(&lp, 5, &woken);
    cr_assert_eq(n, before, "a stopped timer does not fire");
    o2h__loop_fini(&lp);
}

typedef struct self_stop {
    o2h_timer *t;
    int n;
} self_stop;

static void stop_self(void *ctx) {
    self_stop *s = ctx;
    s->n++;
    o2h__loop_timer_stop(s->t);
}

Test(loop, timer_can_stop_itself) {
    loop lp;
    o2h__loop_init(&lp);
    self_stop s = {0};
    s.t = o2h__loop_timer_start(&lp, 0, 0.001, stop_self, &s);
    poll_until(&lp, &s.n, 1, 2.0);
    bool woken;
    o2h__loop_poll(&lp, 10, &woken);
    cr_assert_eq(s.n, 1);
    o2h__loop_fini(&lp);
}

typedef struct order {
    char seq[8];
    int n;
} order;
static void mark_a(void *c) {
    order *o = c;
    o->seq[o->n++] = 'a';
}
static void mark_b(void *c) {
    order *o = c;
    o->seq[o->n++] = 'b';
}
static void mark_c(void *c) {
    order *o = c;
    o->seq[o->n++] = 'c';
}

Test(loop, timers_fire_in_deadline_order) {
    loop lp;
    o2h__loop_init(&lp);
    order o = {0};
    o2h_timer *t1 = o2h__loop_timer_start(&lp, 0.03, 0, mark_c, &o);
    o2h_timer *t2 = o2h__loop_timer_start(&lp, 0.01, 0, mark_a, &o);
    o2h_timer *t3 = o2h__loop_timer_start(&lp, 0.02, 0, mark_b, &o);
    poll_until(&lp, &o.n, 3, 2.0);
    cr_assert_eq(memcmp(o.seq, "abc", 3), 0, "order %.3s", o.seq);
    o2h__loop_timer_stop(t1);
    o2h__loop_timer_stop(t2);
    o2h__loop_timer_stop(t3);
    o2h__loop_fini(&lp);
}

typedef struct reader {
    loop *lp;
    o2h_watch *w;
    int n;
    bool remove_on_first;
} reader;

static void on_read(void *ctx, int fd, unsigned events) {
    reader *rd = ctx;
    char buf[16];
    cr_assert(events & O2H_EV_READ);
    (void)!read(fd, buf, sizeof buf);
    rd->n++;
    if (rd->remove_on_first) o2h__loop_watch_remove(rd->w);
}

Test(loop, fd_watch_reports_readable) {
    loop lp;
    o2h__loop_init(&lp);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    reader rd = {.lp = &lp};
    rd.w = o2h__loop_watch(&lp, p[0], O2H_EV_READ, on_read, &rd);
    cr_assert_not_null(rd.w);
    cr_assert_eq(write(p[1], "x", 1), 1);
    poll_until(&lp, &rd.n, 1, 2.0);
    cr_assert_eq(rd.n, 1);
    o2h__loop_watch_remove(rd.w);
    cr_assert_eq(write(p[1], "y", 1), 1);
    bool woken;
    o2h__loop_poll(&lp, 20, &woken);
    cr_assert_eq(rd.n, 1, "a removed watch is silent");
    close(p[0]);
    close(p[1]);
    o2h__loop_fini(&lp);
}

Test(loop, watch_can_remove_itself_in_its_callback) {
    loop lp;
    o2h__loop_init(&lp);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    reader rd = {.lp = &lp, .remove_on_first = true};
    rd.w = o2h__loop_watch(&lp, p[0], O2H_EV_READ, on_read, &rd);
    cr_assert_eq(write(p[1], "xy", 2), 2);
    poll_until(&lp, &rd.n, 1, 2.0);
    cr_assert_eq(write(p[1], "z", 1), 1);
    bool woken;
    o2h__loop_poll(&lp, 20, &woken);
    cr_assert_eq(rd.n, 1);
    close(p[0]);
    close(p[1]);
    o2h__loop_fini(&lp);
}

/* ---- busy watches after newly ready ones ---- */

typedef struct turns {
    loop *lp;
    char seq[16];
    int n;
    o2h_deferred d;
} turns;

static void note(turns *t, char c) {
    if (t->n < (int)sizeof t->seq - 1) t->seq[t->n++] = c;
}

static void on_deferred(void *ctx) {
    note(ctx, 'D');
}

/* The flood: one byte a callback, so the pipe stays readable turn after turn. */
static void on_flood_byte(void *ctx, int fd, unsigned events) {
    char c;
    (void)events;
    (void)!read(fd, &c, 1);
    note(ctx, 'F');
}

/* The control message: read, and "sent" (a deferred call, as a transport's write is). */
static void on_control(void *ctx, int fd, unsigned events) {
    turns *t = ctx;
    char c;
    (void)events;
    (void)!read(fd, &c, 1);
    note(t, 'C');
    o2h__loop_defer(t->lp, &t->d, on_deferred, t);
}

Test(loop, a_watch_ready_turn_after_turn_waits_for_newly_ready_ones_and_their_sends) {
    loop lp;
    o2h__loop_init(&lp);
    int flood[2], ctl[2];
    cr_assert_eq(pipe(flood), 0);
    cr_assert_eq(pipe(ctl), 0);
    turns t = {.lp = &lp};
    o2h_watch *wf = o2h__loop_watch(&lp, flood[0], O2H_EV_READ, on_flood_byte, &t);
    o2h_watch *wc = o2h__loop_watch(&lp, ctl[0], O2H_EV_READ, on_control, &t);
    cr_assert(wf && wc);
    cr_assert_eq(write(flood[1], "xxxxxxxx", 8), 8);
    bool woken;
    o2h__loop_poll(&lp, 100, &woken); /* the flood's first turn: nothing else is ready */
    cr_assert_str_eq(t.seq, "F");
    cr_assert_eq(write(ctl[1], "c", 1), 1); /* ready after the flood, so epoll lists it last */
    o2h__loop_poll(&lp, 100, &woken);
    /* The control watch first, its deferred send next, then the flood (still served). */
    cr_assert_str_eq(t.seq, "FCDF", "the turn ran \"%s\" (want FCDF)", t.seq);
    o2h__loop_poll(&lp, 100, &woken);
    cr_assert_str_eq(t.seq, "FCDFF", "a busy watch has its callback in every turn it is ready");
    o2h__loop_watch_remove(wf);
    o2h__loop_watch_remove(wc);
    close(flood[0]);
    close(flood[1]);
    close(ctl[0]);
    close(ctl[1]);
    o2h__loop_fini(&lp);
}

static void *wake_later(void *arg) {
    usleep(20000);
    o2h__loop_wake(arg);
    return NULL;
}

Test(loop, wake_from_another_thread_ends_an_unbounded_poll) {
    loop lp;
    o2h__loop_init(&lp);
    pthread_t th;
    pthread_create(&th, NULL, wake_later, &lp);
    bool woken = false;
    /* A watchdog timer bounds the wait if the wake-up were lost. */
    int fired = 0;
    o2h_timer *dog = o2h__loop_timer_start(&lp, 5.0, 0, count_cb, &fired);
    while (!woken && !fired)
        o2h__loop_poll(&lp, -1, &woken);
    pthread_join(th, NULL);
    cr_assert(woken);
    cr_assert_eq(fired, 0, "the watchdog fired: wake-up lost");
    o2h__loop_timer_stop(dog);
    o2h__loop_fini(&lp);
}

/* ---- through the router API ---- */

typedef struct counter {
    int n;
    int32_t last;
    bool in_order;
} counter;

static void count_handler(o2h_router *r, const o2h_msg *msg, const char *types,
                          const o2h_arg *const *argv, int argc, void *user_data) {
    counter *c = user_data;
    if (argv[0]->i != c->last + 1) c->in_order = false;
    c->last = argv[0]->i;
    c->n++;
}

#define POSTS 20000

static void *poster(void *arg) {
    o2h_router *r = arg;
    o2h_builder *b = o2h_builder_new(NULL); /* no pool: safe off the loop thread */
    for (int i = 1; i <= POSTS; i++) {
        o2h_builder_start(b);
        o2h_add_int32(b, i);
        o2h_msg *m = o2h_builder_finish(b, 0, "/p/n", 0);
        while (o2h_router_post(r, m) == O2H_QUEUE_FULL) {
            /* The queue is bounded: back off and rebuild (the message was released). */
            usleep(100);
            o2h_builder_start(b);
            o2h_add_int32(b, i);
            m = o2h_builder_finish(b, 0, "/p/n", 0);
        }
    }
    o2h_builder_free(b);
    return NULL;
}

Test(loop, posts_from_another_thread_arrive_in_order) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "posts"};
    o2h_router *r = o2h_router_new(&o, NULL);
    counter c = {.in_order = true};
    o2h_service_new(r, "p");
    o2h_method_new(r, "/p/n", "i", count_handler, &c, false, true);
    pthread_t th;
    pthread_create(&th, NULL, poster, r);
    uint64_t end = o2h__loop_now_ns() + 10000000000ull;
    while (c.n < POSTS && o2h__loop_now_ns() < end)
        o2h_router_poll(r, 10);
    pthread_join(th, NULL);
    cr_assert_eq(c.n, POSTS);
    cr_assert(c.in_order);
    o2h_router_free(r);
}

Test(loop, full_post_queue_refuses_and_counts) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "posts", .post_queue_limit = 4};
    o2h_router *r = o2h_router_new(&o, NULL);
    o2h_builder *b = o2h_builder_new(NULL);
    int refused = 0;
    for (int i = 0; i < 10; i++) {
        o2h_builder_start(b);
        o2h_msg *m = o2h_builder_finish(b, 0, "/p/n", 0);
        if (o2h_router_post(r, m) == O2H_QUEUE_FULL) refused++;
    }
    cr_assert_eq(refused, 6);
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    cr_assert_eq(st.dropped_queue_full, 6);
    o2h_builder_free(b);
    o2h_router_free(r); /* frees the 4 still queued */
}

static void *stop_later(void *arg) {
    usleep(20000);
    o2h_router_stop(arg);
    return NULL;
}

Test(loop, run_returns_after_stop_from_another_thread, .timeout = 10) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "run"};
    o2h_router *r = o2h_router_new(&o, NULL);
    pthread_t th;
    pthread_create(&th, NULL, stop_later, r);
    cr_assert_eq(o2h_router_run(r), O2H_OK);
    pthread_join(th, NULL);
    o2h_router_free(r);
}

Test(loop, router_fd_signals_pending_work) {
    o2h_router_options o = {.struct_size = sizeof o, .ensemble = "fd"};
    o2h_router *r = o2h_router_new(&o, NULL);
    struct pollfd pfd = {.fd = o2h_router_fd(r), .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 0), 0, "idle router: nothing to do");
    o2h_router_wake(r);
    cr_assert_eq(poll(&pfd, 1, 1000), 1, "a wake-up makes the fd readable");
    cr_assert_geq(o2h_router_poll(r, 0), 1);
    o2h_router_free(r);
}
