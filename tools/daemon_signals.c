/* The daemon's signal handlers (daemon_signals.h). */
#include "daemon_signals.h"

#include <string.h>

/* A handler gets only the signal number: this is where it finds the router. */
static daemon_signals *volatile installed;

static void on_signal(int sig) {
    daemon_signals *s = installed;
    if (!s) return;
    if (sig == SIGHUP)
        s->reload = 1;
    else
        s->stop = 1;
    if (s->router) o2h_router_stop(s->router); /* wakes o2h_router_run: main does the work */
}

void daemon_signals_install(daemon_signals *s, o2h_router *r) {
    s->router = r;
    s->stop = s->reload = 0;
    installed = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

void daemon_signals_attach(daemon_signals *s, o2h_router *r) {
    s->router = r;
    if ((s->stop || s->reload) && r) o2h_router_stop(r);
}

void daemon_signals_remove(daemon_signals *s) {
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (installed == s) installed = NULL;
}
