/*
 * o2mqtt — an O2-style process (o2.h only) that meets another process only
 * through an MQTT broker, enabled as O2 programs do it:
 * o2_mqtt_enable("127.0.0.1", PORT). It offers "o2side", waits until the
 * other side's "peerside" is known, and prints "MQTT DONE".
 *
 *   o2mqtt ENSEMBLE BROKER_PORT
 */
#include <stdio.h>
#include <stdlib.h>

#include "o2.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: o2mqtt ENSEMBLE BROKER_PORT\n");
        return 2;
    }
    if (o2_initialize(argv[1]) != O2_SUCCESS) return 1;
    O2err rc = o2_mqtt_enable("127.0.0.1", atoi(argv[2]));
    if (rc != O2_SUCCESS) {
        printf("MQTT ENABLE FAILED: %d\n", (int)rc);
        return 1;
    }
    o2_service_new("o2side");
    for (int i = 0; i < 2000 && o2_status("peerside") < 0; i++) { /* 20 s at most */
        o2_poll();
        o2_sleep(10);
    }
    int status = o2_status("peerside");
    o2_finish();
    if (status < 0) {
        printf("MQTT NEVER MET peerside\n");
        return 1;
    }
    printf("MQTT DONE\n");
    return 0;
}
