/*
 * pd_session.c — the router of one Pd instance, driven by Pd's own loop:
 * its fd (which also wakes for the router's timers) is polled by Pd's
 * scheduler through sys_addpollfn, and a Pd clock polls once more right
 * after the patch sent something. No thread.
 */
#include <stdio.h>
#include <string.h>

#include <m_pd.h>
#include <s_stuff.h>

#include "pd_objects.h"

static t_class *session_class;

static void session_log(void *ctx, bool error, const char *text) {
    (void)ctx;
    if (error)
        pd_error(NULL, "%s", text);
    else
        post("%s", text);
}

static void session_destroy(o2pd_session *s);
static void session_lag_tick(o2pd_session *s);

/* Poll the router; the patch may delete every o2 object from an outlet
 * meanwhile, so the session goes only after the poll. */
static void session_poll_now(o2pd_session *s) {
    s->polling = true;
    o2hb_poll(s->hb);
    s->polling = false;
    if (s->refs == 0)
        session_destroy(s);
    else
        o2pd_session_watch(s); /* an outlet may have left or joined */
}

static void session_poll(void *ptr, int fd) {
    (void)fd;
    session_poll_now(ptr);
}

static void session_kick_tick(void *ptr) {
    session_poll_now(ptr);
}

static t_symbol *session_symbol(void) {
    return gensym("#o2hub-session");
}

o2pd_session *o2pd_session_acquire(void) {
    if (!session_class)
        session_class = class_new(gensym("o2hub-session"), 0, 0, sizeof(o2pd_session), CLASS_PD, 0);
    o2pd_session *s = (o2pd_session *)pd_findbyclass(session_symbol(), session_class);
    if (!s) {
        s = (o2pd_session *)pd_new(session_class);
        s->hb = o2hb_session_new(session_log, s);
        s->kick = clock_new(s, (t_method)session_kick_tick);
        s->lag_sample = clock_new(s, (t_method)session_lag_tick);
        session_lag_tick(s);
        s->fd = -1;
        pd_bind(&s->pd, session_symbol());
    }
    s->refs++;
    return s;
}

static t_symbol *session_symbol(void);

static void session_destroy(o2pd_session *s) {
    if (s->fd >= 0) sys_rmpollfn(s->fd);
    s->fd = -1;
    pd_unbind(&s->pd, session_symbol());
    clock_free(s->kick);
    clock_free(s->lag_sample);
    o2hb_session_free(s->hb);
    pd_free(&s->pd);
}

void o2pd_session_release(o2pd_session *s) {
    if (--s->refs > 0 || s->polling) return;
    session_destroy(s);
}

void o2pd_session_watch(o2pd_session *s) {
    int fd = o2hb_fd(s->hb);
    if (fd == s->fd) return;
    if (s->fd >= 0) sys_rmpollfn(s->fd);
    s->fd = fd;
    if (fd >= 0) {
        sys_addpollfn(fd, session_poll, s);
        o2pd_taps_rejoin(s);
    }
}

/*
 * O2 time and Pd's logical time. Pd runs events at their logical time, which
 * lags real time by up to a tick, and by much more after a stall (a loaded
 * machine), when Pd catches up tick by tick but reads sockets first. A
 * message timed by O2 (real time) would then come out early in the patch's
 * own timeline. So the patch sees O2 time as of its logical time: O2 time
 * now minus how much more than usual Pd is behind, where usual is the least
 * lag over the last LAG_WINDOW_MS to 2 * LAG_WINDOW_MS (the windows follow a
 * Pd clock that drifts from the system's, as an audio device's does).
 */
#define LAG_WINDOW_MS 5000.0
#define LAG_SAMPLE_MS 20.0

static double excess_lag_ms(o2pd_session *s) {
    double real = sys_getrealtime() * 1000.0, lag = real - clock_gettimesince(0);
    if (real >= s->lag_window_end) {
        s->lag_min[0] = s->lag_window_end > 0 ? s->lag_min[1] : lag;
        s->lag_min[1] = lag;
        s->lag_window_end = real + LAG_WINDOW_MS;
    }
    if (lag < s->lag_min[1]) s->lag_min[1] = lag;
    if (lag < s->lag_min[0]) s->lag_min[0] = lag;
    return lag - s->lag_min[0];
}

static void session_lag_tick(o2pd_session *s) {
    excess_lag_ms(s);
    clock_delay(s->lag_sample, LAG_SAMPLE_MS);
}

double o2pd_session_time(o2pd_session *s) {
    double excess = excess_lag_ms(s), now = o2hb_time(s->hb);
    return now < 0 ? -1 : now - excess / 1000.0;
}

double o2pd_session_wait_ms(o2pd_session *s, double o2time) {
    double now = o2pd_session_time(s);
    return now < 0 ? 0 : (o2time - now) * 1000.0;
}

void o2pd_session_kick(o2pd_session *s) {
    if (s->fd >= 0) clock_delay(s->kick, 0);
}

int o2pd_path_from_atoms(int argc, const t_atom *argv, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < argc; i++) {
        char node[MAXPDSTRING];
        if (argv[i].a_type == A_SYMBOL)
            snprintf(node, sizeof node, "%s", argv[i].a_w.w_symbol->s_name);
        else if (argv[i].a_type == A_FLOAT)
            snprintf(node, sizeof node, "%g", argv[i].a_w.w_float);
        else
            return -1;
        const char *sep = (i == 0 && node[0] == '/') ? "" : "/";
        int n = snprintf(buf + len, size - len, "%s%s", sep, node);
        if (n < 0 || (size_t)n >= size - len) return -1;
        len += (size_t)n;
    }
    return (int)len;
}

void o2pd_values_from_atoms(int argc, const t_atom *argv, o2hb_value *out) {
    for (int i = 0; i < argc; i++) {
        if (argv[i].a_type == A_SYMBOL) {
            out[i].kind = 's';
            out[i].s = argv[i].a_w.w_symbol->s_name;
            out[i].f = 0;
        } else {
            out[i].kind = 'f';
            out[i].f = argv[i].a_type == A_FLOAT ? argv[i].a_w.w_float : 0;
            out[i].s = NULL;
        }
    }
}
