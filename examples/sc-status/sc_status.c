/*
 * sc_status — ask SuperCollider's server for its status through o2hub, with
 * O2's API (sdk/include/o2hub/o2.h).
 *
 * examples/supercollider.json runs a hub whose service "sc" is delegated to
 * scsynth (127.0.0.1:57110) with "replies": "scr": what scsynth answers goes
 * to the O2 service "scr". This program joins the hub's ensemble, offers
 * "scr", sends /sc/status and prints the /status.reply that comes back:
 *
 *   jackd --no-realtime -d dummy &            # or a real audio interface
 *   scsynth -u 57110 -R 0 &
 *   build/tools/o2hub --config examples/supercollider.json &
 *   O2HUB_DISCOVERY=static O2HUB_PEERS=127.0.0.1:50020 build/examples/sc-status/sc_status
 *
 * Exit status: 0 with the answer printed, 1 if none came within 5 seconds.
 */
#include <stdio.h>
#include <string.h>

#include "o2.h"

static int replies = 0;

/* /status.reply: 1, ugens, synths, groups, synthdefs, avg CPU %, peak CPU %,
 * nominal and actual sample rate. */
static void on_status(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                      const void *user_data) {
    (void)msg, (void)user_data;
    if (argc != 9 || strcmp(types, "iiiiiffdd") != 0) {
        printf("unexpected /status.reply types \"%s\"\n", types);
        return;
    }
    printf("scsynth: %d ugens, %d synths, %d groups, %d synthdefs, CPU %.1f%% (peak %.1f%%),"
           " %.0f Hz (actual %.3f Hz)\n",
           argv[1]->i32, argv[2]->i32, argv[3]->i32, argv[4]->i32, argv[5]->f, argv[6]->f,
           argv[7]->d, argv[8]->d);
    replies++;
}

/* Poll O2 until `*flag` holds or `limit` seconds pass. */
static bool wait_for(bool (*done)(void), double limit) {
    double until = o2_local_time() + limit;
    while (!done() && o2_local_time() < until) {
        o2_poll();
        o2_sleep(2);
    }
    return done();
}

static bool sc_known(void) {
    return o2_status("sc") >= 0;
}

static bool answered(void) {
    return replies > 0;
}

int main(void) {
    o2_network_enable(false); /* this machine only: the hub is on 127.0.0.1 */
    if (o2_initialize("demo") != O2_SUCCESS) {
        printf("o2_initialize failed\n");
        return 1;
    }
    o2_service_new("scr");
    o2_method_new("/scr/status.reply", NULL, on_status, NULL, false, true);
    if (!wait_for(sc_known, 5)) {
        printf("no service \"sc\": is the hub running (examples/supercollider.json)?\n");
        o2_finish();
        return 1;
    }
    o2_send_cmd("/sc/status", 0, "");
    bool ok = wait_for(answered, 5);
    if (!ok) printf("no /status.reply: is scsynth running on 127.0.0.1:57110?\n");
    o2_finish();
    return ok ? 0 : 1;
}
