/*
 * scimu control — the middle of the O2/O2lite sensor demo, a program that
 * embeds libo2hub:
 *
 *   O2lite device --/imu/imu "fffffff"--> [imu] control [ctrl] <--/ctrl/map "sff"-- browser
 *                                              |
 *                                              +--/soundcool/roll f, /soundcool/pitch f--> OSC
 *
 * It offers "imu" (accelerometer, gyroscope and temperature readings) and
 * "ctrl" (/ctrl/map "sff": parameter name, low, high), turns each reading
 * into roll and pitch, maps each to its configured range and sends the
 * values to "soundcool" — an OSC synthesizer the config delegates to
 * (oscdump stands in for it). Its router config (JSON) gives the
 * transports: tcp + udp (so O2lite devices and other processes reach it),
 * discovery, osc (the delegate) and websocket (the page).
 *
 *   control --config examples/scimu/control.json [--seconds N]
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/o2hub.h>

typedef struct range {
    const char *name;
    float low, high;
} range;

typedef struct control {
    range roll, pitch;
    long readings;
} control;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* -90..90 degrees onto low..high. */
static float map_angle(const range *r, double degrees) {
    double x = (degrees + 90.0) / 180.0;
    if (x < 0) x = 0;
    if (x > 1) x = 1;
    return (float)(r->low + x * (r->high - r->low));
}

/* /imu/imu "fffffff": ax ay az (g), gx gy gz (deg/s), temperature (C). */
static void on_imu(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    control *c = user_data;
    double ax = argv[0]->f, ay = argv[1]->f, az = argv[2]->f;
    double roll = atan2(ay, az) * 180.0 / M_PI;
    double pitch = atan2(-ax, sqrt(ay * ay + az * az)) * 180.0 / M_PI;
    if (roll > 90) roll = 180 - roll;
    if (roll < -90) roll = -180 - roll;
    c->readings++;
    o2h_send(r, "/soundcool/roll", 0, "f", map_angle(&c->roll, roll));
    o2h_send(r, "/soundcool/pitch", 0, "f", map_angle(&c->pitch, pitch));
}

/* /ctrl/map "sff": which parameter ("roll" or "pitch"), its low and high. */
static void on_map(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    control *c = user_data;
    range *target = strcmp(argv[0]->s, "roll") == 0    ? &c->roll
                    : strcmp(argv[0]->s, "pitch") == 0 ? &c->pitch
                                                       : NULL;
    if (!target) {
        fprintf(stderr, "control: /ctrl/map: unknown parameter \"%s\"\n", argv[0]->s);
        return;
    }
    target->low = argv[1]->f;
    target->high = argv[2]->f;
    printf("control: %s maps to %.3f .. %.3f\n", target->name, (double)target->low,
           (double)target->high);
    fflush(stdout);
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
    control c = {.roll = {"roll", 0.0f, 1.0f}, .pitch = {"pitch", 0.0f, 1.0f}};
    int rc = o2h_service_new(r, "imu");
    if (rc == O2H_OK) rc = o2h_method_new(r, "/imu/imu", "fffffff", on_imu, &c, true, true);
    if (rc == O2H_OK) rc = o2h_service_new(r, "ctrl");
    if (rc == O2H_OK) rc = o2h_method_new(r, "/ctrl/map", "sff", on_map, &c, true, true);
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
