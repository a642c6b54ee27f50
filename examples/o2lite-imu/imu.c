/*
 * imu — an O2lite device: finds a host (O2's UDP discovery, and DNS-SD when
 * built with libo2lite_dnssd, as O2's o2lite; or --host), offers
 * a service, sends simulated IMU readings to /imu/imu "fffffff" (ax ay az gx
 * gy gz temperature) at 20 Hz over UDP, and prints every message its service
 * receives.
 *
 *   imu [--ensemble NAME] [--service NAME] [--to ADDRESS]
 *       [--host IP TCP-PORT UDP-PORT] [--dnssd] [--seconds N]
 *
 * With the defaults the device offers "imu" and sends to /imu/imu, so once a
 * host routes the service back to it, it prints its own readings.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "o2lite.h"
#ifdef O2L_HAVE_DNSSD
#include "o2l_dnssd.h"
#endif

static void print_message(o2l_msg_ptr msg, const char *types, void *data, void *info) {
    (void)data;
    (void)info;
    printf("%s", msg->address);
    for (const char *t = types; *t; t++) {
        switch (*t) {
        case 'i': printf(" %d", (int)o2l_get_int32()); break;
        case 'f': printf(" %.3f", (double)o2l_get_float()); break;
        case 'd': printf(" %g", o2l_get_double()); break;
        case 't': printf(" @%.3f", o2l_get_time()); break;
        case 'h': printf(" %lld", (long long)o2l_get_int64()); break;
        case 's': printf(" \"%s\"", o2l_get_string()); break;
        case 'B': printf(" %s", o2l_get_bool() ? "true" : "false"); break;
        default: printf(" <%c ...>", *t); goto done; /* the rest is not printed */
        }
    }
done:
    printf("\n");
    fflush(stdout);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#ifdef O2L_HAVE_DNSSD
#define DISCOVERY_KINDS " (UDP and DNS-SD)" /* libo2lite_dnssd browses by default */
#else
#define DISCOVERY_KINDS " (UDP)"
#endif

int main(int argc, char **argv) {
    /* The ensemble o2hub's tools take by default: $O2HUB_ENSEMBLE, else "demo". */
    const char *ensemble = getenv("O2HUB_ENSEMBLE");
    if (!ensemble || !*ensemble) ensemble = "demo";
    const char *service = "imu", *to = "/imu/imu", *host = NULL;
    int tcp_port = 0, udp_port = 0;
    double seconds = 0;
    bool dnssd = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ensemble") && i + 1 < argc) {
            ensemble = argv[++i];
        } else if (!strcmp(argv[i], "--service") && i + 1 < argc) {
            service = argv[++i];
        } else if (!strcmp(argv[i], "--to") && i + 1 < argc) {
            to = argv[++i];
        } else if (!strcmp(argv[i], "--host") && i + 3 < argc) {
            host = argv[++i];
            tcp_port = atoi(argv[++i]);
            udp_port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--dnssd")) {
#ifdef O2L_HAVE_DNSSD
            dnssd = true;
#else
            fprintf(stderr, "imu: built without DNS-SD (avahi-compat-libdns_sd)\n");
            return 2;
#endif
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: imu [--ensemble NAME] [--service NAME] [--to ADDRESS]\n"
                            "           [--host IP TCP-PORT UDP-PORT] [--dnssd] [--seconds N]\n");
            return 2;
        }
    }
    if (o2l_initialize(ensemble) != O2L_SUCCESS ||
        (host && o2l_set_host(host, tcp_port, udp_port) != O2L_SUCCESS)) {
        fprintf(stderr, "imu: cannot start the O2lite client\n");
        return 1;
    }
#ifdef O2L_HAVE_DNSSD
    if (dnssd && o2l_dnssd_enable() != O2L_SUCCESS) {
        fprintf(stderr, "imu: cannot start DNS-SD discovery\n");
        return 1;
    }
#endif
    o2l_set_services(service);
    char path[80];
    snprintf(path, sizeof path, "/%s", service);
    o2l_method_new(path, NULL, false, print_message, NULL); /* everything to the service */
    printf("imu: ensemble \"%s\", service \"%s\", %s\n", ensemble, service,
           host    ? "connecting to the given host"
           : dnssd ? "discovering a host (UDP and DNS-SD)"
                   : "discovering a host" DISCOVERY_KINDS);
    fflush(stdout);

    int last_status = -1;
    double next_send = 0;
    long sent = 0;
    while (seconds <= 0 || o2l_local_time() < seconds) {
        o2l_poll();
        int status = o2l_status();
        if (status != last_status) {
            static const char *names[] = {"disconnected", "connecting", "connected", "synced"};
            printf("imu: %s (bridge id %d)\n", names[status], o2l_bridge_id);
            fflush(stdout);
            last_status = status;
        }
        double now = o2l_local_time();
        if (status >= O2L_CONNECTED && now >= next_send) {
            double ph = now * 2 * 3.14159265;
            o2l_send_start(to, 0, "fffffff", false);
            o2l_add_float((float)(0.1 * sin(ph))); /* acceleration, g */
            o2l_add_float((float)(0.1 * cos(ph)));
            o2l_add_float((float)(1.0 + 0.01 * sin(3 * ph)));
            o2l_add_float((float)(20 * sin(ph / 4))); /* rotation, deg/s */
            o2l_add_float((float)(20 * cos(ph / 4)));
            o2l_add_float(0.0f);
            o2l_add_float((float)(25.0 + 0.1 * sin(ph / 10))); /* temperature, C */
            if (o2l_send() == O2L_SUCCESS) sent++;
            next_send = (next_send == 0 ? now : next_send) + 0.05; /* 20 Hz */
            if (next_send < now) next_send = now + 0.05;
        }
        sleep_ms(2);
    }
    printf("imu: sent %ld readings, dropped %lu incoming\n", sent, o2l_dropped());
    o2l_finish();
    return 0;
}
