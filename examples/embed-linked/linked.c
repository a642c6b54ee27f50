/*
 * Plugins linked in: one program, no plugin directory, two routers. Router A
 * offers /hello; router B finds A with the static discovery plugin and sends
 * it a greeting over TCP. The tcp, udp and static plugins come from
 * libo2hub_linked_plugins instead of shared objects (o2hub/linked_plugins.h).
 *
 *   cc linked.c $(pkg-config --cflags --libs o2hub-linked-plugins) -o linked && ./linked
 *
 * Exits 0 once A got the greeting, 1 if not within 5 seconds.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/linked_plugins.h>
#include <o2hub/o2hub.h>

static const o2h_plugin_entry_fn linked[] = O2HUB_LINKED_PLUGINS;

/* A port on 127.0.0.1 free for both TCP and UDP now, for A (B's static
 * discovery names it). Another program may still take it before A does:
 * main() then tries another. */
static int free_port(void) {
    for (int tries = 0; tries < 20; tries++) {
        int udp = socket(AF_INET, SOCK_DGRAM, 0), tcp = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        bool ok = udp >= 0 && tcp >= 0 && bind(udp, (struct sockaddr *)&a, sizeof a) == 0 &&
                  getsockname(udp, (struct sockaddr *)&a, &len) == 0 &&
                  bind(tcp, (struct sockaddr *)&a, sizeof a) == 0;
        if (udp >= 0) close(udp);
        if (tcp >= 0) close(tcp);
        if (ok) return ntohs(a.sin_port);
    }
    return -1;
}

static o2h_router *router(const char *name, int port, const char *discovery) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"linked-demo\", \"log_level\": \"warn\",\n"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],\n"
             " \"discovery\": [%s]}\n",
             port, port, discovery);
    o2h_router_options opts = {.struct_size = sizeof opts, .linked_plugins = linked};
    o2h_error err;
    o2h_router *r = o2h_router_new_from_json(json, name, &opts, &err);
    if (!r) {
        fprintf(stderr, "linked: %s\n", err.message);
        return NULL;
    }
    if (o2h_router_start(r) != O2H_OK) {
        o2h_router_free(r);
        return NULL;
    }
    return r;
}

static void on_greet(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    printf("A got \"%s\"\n", argv[0]->s);
    *(int *)user_data = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void) {
    int port = -1, greeted = 0;
    o2h_router *a = NULL;
    for (int tries = 0; !a && tries < 5; tries++)
        if ((port = free_port()) > 0) a = router("a.json", port, "");
    char discovery[128];
    snprintf(discovery, sizeof discovery, "{\"type\": \"static\", \"peers\": [\"127.0.0.1:%d\"]}",
             port);
    o2h_router *b = a ? router("b.json", 0, discovery) : NULL;
    if (!b) return 1;
    o2h_service_new(a, "hello");
    o2h_method_new(a, "/hello/greet", "s", on_greet, &greeted, false, true);
    bool sent = false;
    for (double end = now_s() + 5; !greeted && now_s() < end;) {
        o2h_router_poll(a, 1);
        o2h_router_poll(b, 1);
        if (!sent && o2h_status(b, "hello") >= 0)
            sent =
                o2h_send_cmd(b, "/hello/greet", 0, "s", "hi from B, in the same program") == O2H_OK;
    }
    if (!greeted) fprintf(stderr, "linked: no greeting within 5 s\n");
    o2h_router_free(b);
    o2h_router_free(a);
    return greeted ? 0 : 1;
}
