/*
 * scimu control — the middle of the O2/O2lite sensor demo, a program that
 * embeds libo2hub:
 *
 *   O2lite device --/imu/imu "fffffff"--> [imu] control [ctrl] <--/ctrl/map "sff"-- browser
 *                                              |    |
 *                                              |    +--/VIEW/map, /VIEW/reading--> browser
 *                                              +--/soundcool/roll f, /soundcool/pitch f--> OSC
 *
 * It offers "imu" (accelerometer, gyroscope and temperature readings) and
 * "ctrl", turns each reading into roll and pitch (degrees), maps each from
 * its input range to its output range and sends the values to "soundcool" —
 * an OSC synthesizer the config delegates to (oscdump stands in for it).
 *
 * Messages to ctrl:
 *   /ctrl/map "sff"    parameter ("roll" or "pitch"), output low, output high
 *   /ctrl/input "sff"  parameter, the angles (degrees) that map to low and to high
 *   /ctrl/watch "s"    a service that wants the mapping and the live values: it gets
 *                      /SERVICE/map "sffff" (parameter, input low, input high, output low,
 *                      output high) for each parameter now and after every change, and
 *                      /SERVICE/reading "ffff" (roll, pitch in degrees; the roll and pitch
 *                      values just sent to soundcool) for every reading.
 * The mapping starts as input -90 .. 90 degrees, output 0 .. 1 for both. A watcher
 * is forgotten once its service has gone away (or was never seen for 10 s).
 * The router config (JSON) gives the transports: tcp + udp (so O2lite devices
 * and other processes reach it), discovery, osc (the delegate) and websocket
 * (the page).
 *
 *   control --config examples/scimu/control.json [--seconds N]
 */
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/o2hub.h>

enum { PARAMS = 2, MAX_WATCHERS = 8, SERVICE_MAX = 63 };
#define WATCHER_GRACE 10.0 /* seconds a watcher's service may take to appear */

typedef struct range {
    const char *name;
    float in_low, in_high; /* degrees */
    float low, high;       /* what in_low and in_high become */
} range;

typedef struct watcher {
    char service[SERVICE_MAX + 1];
    double since; /* local time of its /ctrl/watch */
    bool seen;    /* its service has been known since */
} watcher;

typedef struct control {
    range param[PARAMS]; /* roll, pitch */
    long readings;
    watcher watchers[MAX_WATCHERS];
    int nwatchers;
} control;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* in_low .. in_high degrees onto low .. high, clamped to the output range. */
static float map_angle(const range *r, double degrees) {
    double x = (degrees - r->in_low) / (r->in_high - r->in_low);
    if (x < 0) x = 0;
    if (x > 1) x = 1;
    return (float)(r->low + x * (r->high - r->low));
}

static range *find_param(control *c, const char *name) {
    for (int i = 0; i < PARAMS; i++)
        if (strcmp(c->param[i].name, name) == 0) return &c->param[i];
    return NULL;
}

static void send_map(o2h_router *r, const watcher *w, const range *p) {
    char address[SERVICE_MAX + 8];
    snprintf(address, sizeof address, "/%s/map", w->service);
    o2h_send_cmd(r, address, 0, "sffff", p->name, (double)p->in_low, (double)p->in_high,
                 (double)p->low, (double)p->high);
}

/* Forget watchers whose service went away; true if `w` is still kept. */
static bool watcher_alive(o2h_router *r, control *c, int i) {
    watcher *w = &c->watchers[i];
    if (o2h_status(r, w->service) >= 0) {
        w->seen = true;
        return true;
    }
    if (!w->seen && o2h_local_time(r) - w->since < WATCHER_GRACE) return true;
    printf("control: %s no longer watches\n", w->service);
    fflush(stdout);
    c->watchers[i] = c->watchers[--c->nwatchers];
    return false;
}

/* /imu/imu "fffffff": ax ay az (g), gx gy gz (deg/s), temperature (C). */
static void on_imu(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    (void)msg, (void)types, (void)argc;
    control *c = user_data;
    double ax = argv[0]->f, ay = argv[1]->f, az = argv[2]->f;
    double roll = atan2(ay, az) * 180.0 / M_PI;
    double pitch = atan2(-ax, sqrt(ay * ay + az * az)) * 180.0 / M_PI;
    if (roll > 90) roll = 180 - roll;
    if (roll < -90) roll = -180 - roll;
    c->readings++;
    float roll_out = map_angle(&c->param[0], roll), pitch_out = map_angle(&c->param[1], pitch);
    o2h_send(r, "/soundcool/roll", 0, "f", (double)roll_out);
    o2h_send(r, "/soundcool/pitch", 0, "f", (double)pitch_out);
    for (int i = c->nwatchers - 1; i >= 0; i--) {
        if (!watcher_alive(r, c, i)) continue;
        char address[SERVICE_MAX + 12];
        snprintf(address, sizeof address, "/%s/reading", c->watchers[i].service);
        o2h_send(r, address, 0, "ffff", roll, pitch, (double)roll_out, (double)pitch_out);
    }
}

/* The parameter named by argv[0], with finite argv[1] and argv[2]; NULL (and why) if not. */
static range *checked_param(control *c, const char *what, const o2h_arg *const *argv) {
    range *p = find_param(c, argv[0]->s);
    if (!p) {
        fprintf(stderr, "control: %s: unknown parameter \"%s\" (roll or pitch)\n", what,
                argv[0]->s);
        return NULL;
    }
    if (!isfinite(argv[1]->f) || !isfinite(argv[2]->f)) {
        fprintf(stderr, "control: %s: %s: the range must be two finite numbers\n", what, p->name);
        return NULL;
    }
    return p;
}

static void tell_watchers(o2h_router *r, control *c, const range *p) {
    for (int i = c->nwatchers - 1; i >= 0; i--)
        if (watcher_alive(r, c, i)) send_map(r, &c->watchers[i], p);
}

/* /ctrl/map "sff": which parameter ("roll" or "pitch"), its output low and high. */
static void on_map(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    (void)msg, (void)types, (void)argc;
    control *c = user_data;
    range *p = checked_param(c, "/ctrl/map", argv);
    if (!p) return;
    p->low = argv[1]->f;
    p->high = argv[2]->f;
    printf("control: %s maps to %.3f .. %.3f\n", p->name, (double)p->low, (double)p->high);
    fflush(stdout);
    tell_watchers(r, c, p);
}

/* /ctrl/input "sff": which parameter, the angles (degrees) that map to its low and high. */
static void on_input(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    (void)msg, (void)types, (void)argc;
    control *c = user_data;
    range *p = checked_param(c, "/ctrl/input", argv);
    if (!p) return;
    if (argv[1]->f == argv[2]->f) {
        fprintf(stderr, "control: /ctrl/input: %s: the two angles must differ\n", p->name);
        return;
    }
    p->in_low = argv[1]->f;
    p->in_high = argv[2]->f;
    printf("control: %s reads %.1f .. %.1f degrees\n", p->name, (double)p->in_low,
           (double)p->in_high);
    fflush(stdout);
    tell_watchers(r, c, p);
}

static bool service_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > SERVICE_MAX ||
        !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    return strpbrk(s, "/!#*?[]{} ") == NULL;
}

/* /ctrl/watch "s": a service to tell the mapping (now and on changes) and the live values. */
static void on_watch(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    (void)msg, (void)types, (void)argc;
    control *c = user_data;
    const char *service = argv[0]->s;
    if (!service_name_ok(service)) {
        fprintf(stderr, "control: /ctrl/watch: \"%s\" is not a service name\n", service);
        return;
    }
    watcher *w = NULL;
    for (int i = 0; i < c->nwatchers && !w; i++)
        if (strcmp(c->watchers[i].service, service) == 0) w = &c->watchers[i];
    if (!w) {
        for (int i = c->nwatchers - 1; i >= 0; i--)
            watcher_alive(r, c, i);
        if (c->nwatchers == MAX_WATCHERS) {
            fprintf(stderr, "control: /ctrl/watch: %d watchers already, %s refused\n", MAX_WATCHERS,
                    service);
            return;
        }
        w = &c->watchers[c->nwatchers++];
        snprintf(w->service, sizeof w->service, "%s", service);
        w->seen = false;
        printf("control: %s watches\n", service);
        fflush(stdout);
    }
    w->since = o2h_local_time(r);
    for (int i = 0; i < PARAMS; i++)
        send_map(r, w, &c->param[i]);
}

int main(int argc, char **argv) {
    const char *config = NULL;
    double seconds = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: control --config FILE [--seconds N]\n");
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "usage: control --config FILE [--seconds N]\n");
        return 2;
    }
    o2h_error err;
    o2h_router *r = o2h_router_new_from_file(config, NULL, &err);
    if (!r) {
        char text[1024];
        fprintf(stderr, "control: %s\n", o2h_error_format(&err, text, sizeof text));
        return 1;
    }
    control c = {
        .param = {{"roll", -90.0f, 90.0f, 0.0f, 1.0f}, {"pitch", -90.0f, 90.0f, 0.0f, 1.0f}}};
    int rc = o2h_service_new(r, "imu");
    if (rc == O2H_OK) rc = o2h_method_new(r, "/imu/imu", "fffffff", on_imu, &c, true, true);
    if (rc == O2H_OK) rc = o2h_service_new(r, "ctrl");
    if (rc == O2H_OK) rc = o2h_method_new(r, "/ctrl/map", "sff", on_map, &c, true, true);
    if (rc == O2H_OK) rc = o2h_method_new(r, "/ctrl/input", "sff", on_input, &c, true, true);
    if (rc == O2H_OK) rc = o2h_method_new(r, "/ctrl/watch", "s", on_watch, &c, true, true);
    if (rc == O2H_OK) rc = o2h_router_start(r);
    if (rc != O2H_OK) {
        fprintf(stderr, "control: %s\n", o2h_strerror(rc));
        o2h_router_free(r);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("control: running as %s\n",
           o2h_router_process_name(r) ? o2h_router_process_name(r) : "?");
    fflush(stdout);
    double end = seconds > 0 ? o2h_local_time(r) + seconds : 0;
    while (!stop_requested && (end == 0 || o2h_local_time(r) < end))
        o2h_router_poll(r, 50);
    printf("control: %ld readings\n", c.readings);
    o2h_router_free(r);
    return 0;
}
