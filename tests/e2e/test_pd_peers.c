/*
 * A headless Pd patch (the external) with a test peer (tests/e2e/peer.c) on
 * the other side, messages both ways: the peer's ping comes out of the
 * patch's [o2receive] and the patch's [o2send] answers it; when [o2.status]
 * sees the peer's service, the patch asks it something and prints the reply.
 *
 * Restart: the peer is killed by PID (SIGKILL, no goodbye); [o2.status]
 * reports its service gone (-1, as O2 does); the peer starts again on the
 * same port; the status comes back and messages flow both ways again.
 *
 * MQTT: the patch joins by [o2ensemble -config FILE] with the mqtt transport
 * and a mosquitto started here on 127.0.0.1 and an ephemeral port; the peer
 * runs in a network namespace of its own and reaches the broker through a
 * unix socket, so the broker is the only path between them.
 *
 * Exit 0: all passed; 1: a check failed; 77: no pd (skipped).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pd_harness.h"

static char ensemble[64];

/* Wait for [o2.status]'s next "STATUS: N" with N >= 0 (present) or N < 0 (gone). */
static bool status_becomes(proc *pd, bool present, double limit) {
    double end = now_s() + limit;
    for (;;) {
        const char *at = expect_next(pd, "STATUS: ", end - now_s());
        if (!at) return false;
        if ((atoi(at + 8) >= 0) == present) return true;
    }
}

static void start_peer(proc *p, const char *config, bool netns) {
    char *argv[] = {PEER_EXE, (char *)config, NULL};
    spawn_with(p, argv, true, netns);
}

/* Both ways: the patch asked peer_svc and printed its answer; the peer's ping is answered. */
static void both_ways(proc *pd, proc *peer, const char *svc, int n, const char *when) {
    check(expect_next(pd, "PONG: 101", 10) != NULL,
          "%s: patch -> peer: [o2send] reached the peer's service, its answer came back", when);
    char ping[64], pong[32];
    snprintf(ping, sizeof ping, "PING: list /r%d/pong %d", (int)peer->pid, n);
    snprintf(pong, sizeof pong, "pong %d pd", n + 1);
    tell(peer, "ping /%s/ping tcp %d", svc, n);
    check(expect_next(pd, ping, 10) != NULL, "%s: peer -> patch: [o2receive] got the ping", when);
    check(expect_next(peer, pong, 10) != NULL, "%s: the patch's answer reached the peer (%s)", when,
          peer->out);
}

static void peer_restarts(void) {
    int port_pd = free_port(), port_peer = free_port();
    while (port_peer == port_pd)
        port_peer = free_port();
    char config[128], json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"%s\",\n"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}]}\n",
             ensemble, port_peer, port_peer);
    write_file(config, sizeof config, "peer.json", json);

    /* The patch finds the peer (static discovery); the peer has no discovery of its own. */
    patch p = {0};
    int ens = obj(&p, "obj", "o2ensemble %s -host 127.0.0.1 -port %d -peer 127.0.0.1:%d -c 1",
                  ensemble, port_pd, port_peer);
    wire(&p, ens, 0, obj(&p, "obj", "print ENS"), 0);
    answer_peer(&p, "pdr", "rsvc");
    char path[128];
    write_patch(path, sizeof path, "restart.pd", &p);

    proc peer, pd;
    start_peer(&peer, config, false);
    check(expect_next(&peer, "ready", 10) != NULL, "the peer started (%s)", peer.out);
    tell(&peer, "offer rsvc");
    expect_next(&peer, "offered rsvc", 5);
    start_pd(&pd, path);
    check(expect_next(&pd, "ENS: joined", 10) != NULL, "Pd joined (%s)", pd.out);
    check(status_becomes(&pd, true, 15), "[o2.status rsvc] saw the peer's service");
    both_ways(&pd, &peer, "pdr", 7, "first peer");

    kill_hard(&peer);
    check(status_becomes(&pd, false, 15), "the peer killed: [o2.status rsvc] says -1 (gone)");

    start_peer(&peer, config, false); /* the same config: the same port, the same name */
    check(expect_next(&peer, "ready", 10) != NULL, "the peer started again (%s)", peer.out);
    tell(&peer, "offer rsvc");
    expect_next(&peer, "offered rsvc", 5);
    check(status_becomes(&pd, true, 20), "[o2.status rsvc] saw the service come back");
    both_ways(&pd, &peer, "pdr", 9, "restarted peer");
    check(kill(pd.pid, 0) == 0, "Pd is still running");
    if (failures) printf("# Pd's output:\n%s\n# the peer's:\n%s\n", pd.out, peer.out);
    stop(&peer);
    stop(&pd);
}

/* ---- MQTT ------------------------------------------------------------------- */

static bool broker_listening(const char *sock) {
    struct stat st;
    return stat(sock, &st) == 0;
}

static void same_netns(pid_t a, pid_t b, bool *same) {
    char pa[64], pb[64], na[64] = "", nb[64] = "";
    snprintf(pa, sizeof pa, "/proc/%d/ns/net", (int)a);
    snprintf(pb, sizeof pb, "/proc/%d/ns/net", (int)b);
    ssize_t la = readlink(pa, na, sizeof na - 1), lb = readlink(pb, nb, sizeof nb - 1);
    *same = la > 0 && lb > 0 && strcmp(na, nb) == 0;
}

static void through_mqtt(void) {
    if (!MOSQUITTO_EXE[0] || access(TRANSPORT_DIR "/o2hub_mqtt.so", R_OK) != 0) {
        printf("ok - # SKIP no mosquitto or no mqtt transport\n");
        return;
    }
    if (!netns_available()) {
        printf("ok - # SKIP MQTT: needs a network namespace (root or CAP_SYS_ADMIN)\n");
        return;
    }
    int broker_port = free_port(), port_pd = free_port(), port_peer = free_port();
    char conf[128], sock[128], text[1024];
    snprintf(sock, sizeof sock, "%s/mqtt.sock", tmpdir);
    snprintf(text, sizeof text,
             "per_listener_settings false\nlistener %d 127.0.0.1\nlistener 0 %s\n"
             "allow_anonymous true\npersistence false\nuser root\nlog_dest stderr\n",
             broker_port, sock);
    write_file(conf, sizeof conf, "mosquitto.conf", text);
    proc broker;
    char *bargv[] = {MOSQUITTO_EXE, "-c", conf, NULL};
    spawn(&broker, bargv);
    for (double end = now_s() + 10; !broker_listening(sock) && now_s() < end;)
        drain(&broker, 20);
    check(broker_listening(sock), "mosquitto listens on 127.0.0.1:%d and %s", broker_port, sock);
    if (!broker_listening(sock)) printf("# mosquitto:\n%s\n", broker.out);

    /* Pd: tcp+udp on 127.0.0.1 here, and the broker by TCP */
    char pd_config[128], peer_config[128], broker_addr[32];
    snprintf(broker_addr, sizeof broker_addr, "127.0.0.1:%d", broker_port);
    snprintf(text, sizeof text,
             "{\"ensemble\": \"%s\",\n"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
             "                {\"type\": \"mqtt\", \"broker\": \"%s\", \"keepalive\": 5,\n"
             "                 \"direct\": false, \"reconnect_max\": 0.5}]}\n",
             ensemble, port_pd, port_pd, broker_addr);
    write_file(pd_config, sizeof pd_config, "pd-mqtt.json", text);
    /* the peer: its own network (its 127.0.0.1 is not Pd's), the broker by its unix socket */
    snprintf(text, sizeof text,
             "{\"ensemble\": \"%s\",\n"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
             "                {\"type\": \"mqtt\", \"broker\": \"unix:%s\", \"keepalive\": 5,\n"
             "                 \"direct\": false, \"reconnect_max\": 0.5}]}\n",
             ensemble, port_peer, port_peer, sock);
    write_file(peer_config, sizeof peer_config, "peer-mqtt.json", text);

    patch p = {0};
    int ens = obj(&p, "obj", "o2ensemble -config %s", pd_config);
    wire(&p, ens, 0, obj(&p, "obj", "print ENS"), 0);
    answer_peer(&p, "pdm", "msvc");
    char path[128];
    write_patch(path, sizeof path, "mqtt.pd", &p);

    proc peer, pd;
    start_peer(&peer, peer_config, true);
    check(expect_next(&peer, "ready", 10) != NULL, "the peer started in its own network (%s)",
          peer.out);
    tell(&peer, "offer msvc");
    start_pd(&pd, path);
    check(expect_next(&pd, "ENS: joined", 10) != NULL, "Pd joined by a config with mqtt (%s)",
          pd.out);
    bool same = true;
    same_netns(pd.pid, peer.pid, &same);
    check(!same, "Pd and the peer are in different networks: only the broker joins them");
    check(status_becomes(&pd, true, 20), "[o2.status msvc] saw the peer's service via MQTT");
    both_ways(&pd, &peer, "pdm", 3, "MQTT");
    if (failures) printf("# Pd's output:\n%s\n# the peer's:\n%s\n", pd.out, peer.out);
    stop(&peer);
    stop(&pd);
    stop(&broker);
}

int main(void) {
    if (access(PD_EXE, X_OK) != 0) {
        printf("pd not found at %s: skipped\n", PD_EXE);
        return 77;
    }
    snprintf(ensemble, sizeof ensemble, "pdpeers-%d", (int)getpid());
    make_tmpdir();
    peer_restarts();
    through_mqtt();
    remove_tmpdir();
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
