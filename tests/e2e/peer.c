/*
 * A test peer: an O2 process embedding libo2hub, configured from a JSON file
 * and driven by line commands on stdin; it reports on stdout, one line per
 * event. It also shows the embedding pattern of polling the router's fd
 * beside one's own (here stdin).
 *
 *   name                      -> "name @..."
 *   offer SVC                 offers SVC with /SVC/ping "si" (reply-to, n)
 *                             -> "offered SVC"; replies "is" (n + 1, our name)
 *   subscribe TAPPEE TAPPER   offers TAPPER, taps TAPPEE with it -> "subscribed";
 *                             each copy -> "tapped ADDRESS"
 *   setprop SVC ATTR VALUE    -> "setprop OK" or the error
 *   getprop SVC ATTR          -> "prop SVC ATTR VALUE" or "prop SVC ATTR -"
 *   search ATTR PATTERN       -> "found N FIRST"
 *   status SVC                -> "status SVC N"
 *   time                      -> "time T" (O2 global time, -1 before clock sync)
 *   timecheck SVC             asks SVC's process for its time -> "timecheck ERR_US RTT_US",
 *                             ERR = its time minus ours at the midpoint of the round trip
 *   ping ADDRESS tcp|udp N    sends (our reply address, N) -> later "pong M FROM"
 *   pings ADDRESS tcp|udp N FIRST  sends N pings numbered FIRST.. -> "pings sent K"
 *   quiet on|off              stop (start) printing each pong; pongs are counted anyway
 *   pongs FIRST LAST          -> "pongs K": distinct pongs received with FIRST <= M <= LAST
 *   flood ADDRESS COUNT SIZE  sends COUNT reliable messages with a SIZE-byte blob
 *                             -> "flood ok K full F other E"
 *   burst ADDRESS COUNT SIZE  the same, best effort (UDP) -> "burst ok K full F other E"
 *   push ADDRESS COUNT SIZE   the same, reliable, waiting (polling) while o2h_can_send
 *                             says O2H_BLOCKED, as a well-behaved sender does
 *                             -> "push ok K waits W"
 *   tapsink TAPPEE TAPPER     offers TAPPER counting "ib" copies as sink does, taps
 *                             TAPPEE -> "tapsink"
 *   counter NAME              -> "counter NAME V" (any o2h_stats counter)
 *   many PREFIX N             offers services PREFIX0 .. PREFIX<N-1> -> "many ok K"
 *   sink SVC                  offers SVC counting "ib" (seq, blob) messages -> "sink SVC"
 *   slow US [EVERY]           the sink sleeps US microseconds per message (or once every
 *                             EVERY messages) -> "slow US"
 *   count                     -> "count N bytes B inorder 1|0" (seq = previous + 1 each time)
 *   rt PROCESS                asks PROCESS (@name) for its clock round trips
 *                             -> "rt NAME MEAN_US LEAST_US"
 *   roundtrip                 -> "roundtrip MEAN_US LEAST_US" or "roundtrip none"
 *   rss                       -> "rss KB" (this process's resident memory)
 *   stats                     -> "stats delivered D forwarded F no_service S invalid I"
 *   quit
 * and, unasked:  "si SERVICE STATUS PROCESS"  for every /_o2/si notification.
 * With PEER_DEBUG=1 in the environment it also logs every router line (debug level) and
 * every ping it answers, for diagnosing a failing test.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

typedef struct peer_app {
    o2h_router *r;
    char reply_service[32];
    bool quit;
    double asked_at; /* our global time when timecheck asked */
    /* sink */
    long sunk, sunk_bytes;
    int32_t last_seq;
    bool in_order;
    int slow_us;
    int slow_every;     /* sleep slow_us once every slow_every messages */
    bool quiet;         /* count pongs without printing them */
    uint8_t *pong_seen; /* one byte per pong value below PONG_VALUES */
} peer_app;

#define PONG_VALUES (1 << 20)

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void on_si(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                  int argc, void *user_data) {
    say("si %s %d %s", argv[0]->s, argv[1]->i, argv[2]->s);
}

static void on_ping(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    if (getenv("PEER_DEBUG"))
        say("got ping %d reliable %d misc %x", argv[1]->i, o2h_msg_reliable(msg),
            o2h_msg_misc(msg));
    const char *name = o2h_router_process_name(r);
    int rc = o2h_msg_reliable(msg)
                 ? o2h_send_cmd(r, argv[0]->s, 0, "is", argv[1]->i + 1, name ? name : "_o2")
                 : o2h_send(r, argv[0]->s, 0, "is", argv[1]->i + 1, name ? name : "_o2");
    if (rc != O2H_OK) say("reply failed %s", o2h_strerror(rc));
}

static void on_time_request(o2h_router *r, const o2h_msg *msg, const char *types,
                            const o2h_arg *const *argv, int argc, void *user_data) {
    o2h_send_cmd(r, argv[0]->s, 0, "d", o2h_time_get(r));
}

static void on_time_reply(o2h_router *r, const o2h_msg *msg, const char *types,
                          const o2h_arg *const *argv, int argc, void *user_data) {
    peer_app *app = user_data;
    double now = o2h_time_get(r);
    double err = argv[0]->d - (app->asked_at + now) / 2;
    say("timecheck %.0f %.0f", err * 1e6, (now - app->asked_at) * 1e6);
}

static void on_tapped(o2h_router *r, const o2h_msg *msg, const char *types,
                      const o2h_arg *const *argv, int argc, void *user_data) {
    say("tapped %s", o2h_msg_address(msg));
}

static void on_pong(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    peer_app *app = user_data;
    int v = argv[0]->i;
    if (v >= 0 && v < PONG_VALUES) app->pong_seen[v] = 1;
    if (!app->quiet) say("pong %d %s", v, argv[1]->s);
}

static void on_rt(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                  int argc, void *user_data) {
    say("rt %s %.0f %.0f", argv[0]->s, argv[1]->f * 1e6, argv[2]->f * 1e6);
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

static void on_sink(o2h_router *r, const o2h_msg *msg, const char *types,
                    const o2h_arg *const *argv, int argc, void *user_data) {
    peer_app *app = user_data;
    if (argc != 2 || types[0] != 'i' || types[1] != 'b') return;
    /* Each flood counts from 0 again. */
    if (app->sunk > 0 && argv[0]->i != 0 && argv[0]->i != app->last_seq + 1) app->in_order = false;
    app->last_seq = argv[0]->i;
    app->sunk++;
    app->sunk_bytes += argv[1]->b.size;
    if (app->slow_us && app->sunk % app->slow_every == 0) usleep((useconds_t)app->slow_us);
}

static void offer_many(o2h_router *r, const char *prefix, int n) {
    int ok = 0;
    for (int i = 0; i < n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        if (o2h_service_new(r, name) == O2H_OK) ok++;
    }
    say("many ok %d", ok);
}

static void flood(o2h_router *r, const char *address, int count, int size, bool reliable) {
    uint8_t *payload = calloc(1, (size_t)size + 1);
    o2h_blob blob = {.size = (uint32_t)size, .data = payload};
    int ok = 0, full = 0, other = 0;
    for (int i = 0; i < count; i++) {
        int rc = reliable ? o2h_send_cmd(r, address, 0, "ib", i, &blob)
                          : o2h_send(r, address, 0, "ib", i, &blob);
        if (rc == O2H_OK)
            ok++;
        else if (rc == O2H_QUEUE_FULL || rc == O2H_BLOCKED)
            full++;
        else
            other++;
        if (i % 64 == 0) o2h_router_poll(r, 0); /* let the socket drain what it can */
    }
    free(payload);
    say("%s ok %d full %d other %d", reliable ? "flood" : "burst", ok, full, other);
}

/* Reliable messages as fast as the path takes them: never refused, never lost. */
static void push(o2h_router *r, const char *address, int count, int size) {
    uint8_t *payload = calloc(1, (size_t)size + 1);
    o2h_blob blob = {.size = (uint32_t)size, .data = payload};
    char service[64];
    size_t n = strcspn(address + 1, "/");
    snprintf(service, sizeof service, "%.*s", (int)(n < 63 ? n : 63), address + 1);
    int ok = 0;
    long waits = 0;
    for (int i = 0; i < count; i++) {
        while (o2h_can_send(r, service) == O2H_BLOCKED) {
            waits++;
            o2h_router_poll(r, 1);
        }
        if (o2h_send_cmd(r, address, 0, "ib", i, &blob) == O2H_OK) ok++;
        if (i % 256 == 0) o2h_router_poll(r, 0);
    }
    free(payload);
    say("push ok %d waits %ld", ok, waits);
}

static void counter(o2h_router *r, const char *name) {
    o2h_stats st = {.struct_size = sizeof st};
    o2h_router_get_stats(r, &st);
    for (int i = 0; i < o2h_stats_count(); i++) {
        uint64_t v;
        if (strcmp(o2h_stats_name(i, &st, &v), name) == 0) {
            say("counter %s %llu", name, (unsigned long long)v);
            return;
        }
    }
    say("counter %s -", name);
}

static void command(peer_app *app, char *line) {
    char verb[16] = "", a[128] = "", b[16] = "";
    int n = 0;
    sscanf(line, "%15s %127s %15s %d", verb, a, b, &n);
    o2h_router *r = app->r;
    if (strcmp(verb, "name") == 0) {
        const char *name = o2h_router_process_name(r);
        say("name %s", name ? name : "-");
    } else if (strcmp(verb, "offer") == 0) {
        char path[160];
        snprintf(path, sizeof path, "/%s/ping", a);
        int rc = o2h_service_new(r, a);
        if (rc == O2H_OK) rc = o2h_method_new(r, path, "si", on_ping, app, true, true);
        snprintf(path, sizeof path, "/%s/time", a);
        if (rc == O2H_OK) rc = o2h_method_new(r, path, "s", on_time_request, app, false, true);
        say(rc == O2H_OK ? "offered %s" : "offer %s failed", a);
    } else if (strcmp(verb, "push") == 0) {
        int count = 0, size = 0;
        sscanf(line, "%*s %*s %d %d", &count, &size);
        push(r, a, count, size);
    } else if (strcmp(verb, "tapsink") == 0) {
        char path[64];
        snprintf(path, sizeof path, "/%s", b);
        int rc = o2h_service_new(r, b);
        if (rc == O2H_OK) rc = o2h_method_new(r, path, NULL, on_sink, app, false, true);
        if (rc == O2H_OK) rc = o2h_tap(r, a, b, O2H_TAP_KEEP);
        app->in_order = true;
        say(rc == O2H_OK ? "tapsink" : "tapsink failed");
    } else if (strcmp(verb, "counter") == 0) {
        counter(r, a);
    } else if (strcmp(verb, "subscribe") == 0) {
        char path[64];
        snprintf(path, sizeof path, "/%s", b);
        int rc = o2h_service_new(r, b);
        if (rc == O2H_OK) rc = o2h_method_new(r, path, NULL, on_tapped, app, false, false);
        if (rc == O2H_OK) rc = o2h_tap(r, a, b, O2H_TAP_KEEP);
        say(rc == O2H_OK ? "subscribed" : "subscribe failed");
    } else if (strcmp(verb, "setprop") == 0) {
        char value[64] = "";
        sscanf(line, "%*s %*s %*s %63s", value);
        say("setprop %s", o2h_strerror(o2h_service_set_property(r, a, b, value)));
    } else if (strcmp(verb, "getprop") == 0) {
        char value[256];
        int rc = o2h_service_get_property(r, a, b, value, sizeof value);
        say("prop %s %s %s", a, b, rc == O2H_OK ? value : "-");
    } else if (strcmp(verb, "search") == 0) {
        const char *names[8];
        int found = o2h_service_search(r, a, b, names, 8);
        say("found %d %s", found, found > 0 ? names[0] : "-");
    } else if (strcmp(verb, "time") == 0) {
        say("time %.6f", o2h_time_get(r));
    } else if (strcmp(verb, "timecheck") == 0) {
        char address[160], reply[64];
        snprintf(address, sizeof address, "/%s/time", a);
        snprintf(reply, sizeof reply, "/%s/time", app->reply_service);
        app->asked_at = o2h_time_get(r);
        o2h_send_cmd(r, address, 0, "s", reply);
    } else if (strcmp(verb, "status") == 0) {
        say("status %s %d", a, o2h_status(r, a));
    } else if (strcmp(verb, "ping") == 0) {
        char reply[64];
        snprintf(reply, sizeof reply, "/%s/pong", app->reply_service);
        int rc = strcmp(b, "tcp") == 0 ? o2h_send_cmd(r, a, 0, "si", reply, n)
                                       : o2h_send(r, a, 0, "si", reply, n);
        if (rc != O2H_OK) say("ping failed %s", o2h_strerror(rc));
    } else if (strcmp(verb, "pings") == 0) {
        char reply[64];
        int first = 0, sent = 0;
        sscanf(line, "%*s %*s %*s %*d %d", &first);
        snprintf(reply, sizeof reply, "/%s/pong", app->reply_service);
        for (int i = 0; i < n; i++) {
            int rc = strcmp(b, "tcp") == 0 ? o2h_send_cmd(r, a, 0, "si", reply, first + i)
                                           : o2h_send(r, a, 0, "si", reply, first + i);
            sent += rc == O2H_OK;
            if (i % 64 == 0) o2h_router_poll(r, 0); /* let the transport drain what it can */
        }
        say("pings sent %d", sent);
    } else if (strcmp(verb, "quiet") == 0) {
        app->quiet = strcmp(a, "on") == 0;
        say("quiet %s", app->quiet ? "on" : "off");
    } else if (strcmp(verb, "pongs") == 0) {
        int first = atoi(a), last = atoi(b), count = 0;
        for (int v = first < 0 ? 0 : first; v <= last && v < PONG_VALUES; v++)
            count += app->pong_seen[v];
        say("pongs %d", count);
    } else if (strcmp(verb, "flood") == 0) {
        flood(r, a, atoi(b), n, true);
    } else if (strcmp(verb, "burst") == 0) {
        flood(r, a, atoi(b), n, false);
    } else if (strcmp(verb, "many") == 0) {
        offer_many(r, a, atoi(b));
    } else if (strcmp(verb, "sink") == 0) {
        int rc = o2h_service_new(r, a);
        char path[160];
        snprintf(path, sizeof path, "/%s", a);
        if (rc == O2H_OK) rc = o2h_method_new(r, path, NULL, on_sink, app, false, true);
        app->in_order = true;
        say(rc == O2H_OK ? "sink %s" : "sink %s failed", a);
    } else if (strcmp(verb, "slow") == 0) {
        app->slow_us = atoi(a);
        app->slow_every = atoi(b) > 0 ? atoi(b) : 1;
        say("slow %d", app->slow_us);
    } else if (strcmp(verb, "count") == 0) {
        say("count %ld bytes %ld inorder %d", app->sunk, app->sunk_bytes, app->in_order);
    } else if (strcmp(verb, "rt") == 0) {
        char address[64], reply[64];
        snprintf(address, sizeof address, "!%s/cs/rt", a);
        snprintf(reply, sizeof reply, "/%s/rt", app->reply_service);
        o2h_send_cmd(r, address, 0, "s", reply);
    } else if (strcmp(verb, "roundtrip") == 0) {
        double mean, least;
        if (o2h_clock_roundtrip(r, &mean, &least) == O2H_OK && mean > 0)
            say("roundtrip %.0f %.0f", mean * 1e6, least * 1e6);
        else
            say("roundtrip none");
    } else if (strcmp(verb, "rss") == 0) {
        say("rss %ld", rss_kb());
    } else if (strcmp(verb, "stats") == 0) {
        o2h_stats st = {.struct_size = sizeof st};
        o2h_router_get_stats(r, &st);
        say("stats delivered %llu forwarded %llu no_service %llu invalid %llu queue_full %llu",
            (unsigned long long)st.delivered, (unsigned long long)st.forwarded,
            (unsigned long long)st.dropped_no_service, (unsigned long long)st.dropped_invalid,
            (unsigned long long)st.dropped_queue_full);
    } else if (strcmp(verb, "quit") == 0) {
        app->quit = true;
    } else if (verb[0]) {
        say("unknown command %s", verb);
    }
}

/* Read whatever stdin has; run each complete line. */
static void read_commands(peer_app *app, char *buf, size_t *used, size_t size) {
    ssize_t n = read(0, buf + *used, size - 1 - *used);
    if (n <= 0) {
        app->quit = true;
        return;
    }
    *used += (size_t)n;
    buf[*used] = '\0';
    char *start = buf, *nl;
    while ((nl = strchr(start, '\n'))) {
        *nl = '\0';
        command(app, start);
        start = nl + 1;
    }
    *used = strlen(start);
    memmove(buf, start, *used + 1);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: peer CONFIG.json\n");
        return 2;
    }
    o2h_router_options opts = {.struct_size = sizeof opts, .log_level = O2H_LOG_WARN};
    if (getenv("PEER_DEBUG")) { /* every router log line, for diagnosing a test */
        opts.log_level = O2H_LOG_DEBUG;
        opts.log_level_fixed = true;
    }
    o2h_error err;
    peer_app app = {0};
    app.r = o2h_router_new_from_file(argv[1], &opts, &err);
    if (!app.r) {
        char line[1024];
        fprintf(stderr, "peer: %s\n", o2h_error_format(&err, line, sizeof line));
        return 1;
    }
    app.pong_seen = calloc(PONG_VALUES, 1);
    snprintf(app.reply_service, sizeof app.reply_service, "r%d", (int)getpid());
    o2h_service_new(app.r, app.reply_service);
    char path[64];
    snprintf(path, sizeof path, "/%s/pong", app.reply_service);
    o2h_method_new(app.r, path, "is", on_pong, &app, false, true);
    snprintf(path, sizeof path, "/%s/time", app.reply_service);
    o2h_method_new(app.r, path, "d", on_time_reply, &app, false, true);
    snprintf(path, sizeof path, "/%s/rt", app.reply_service);
    o2h_method_new(app.r, path, "sff", on_rt, &app, false, true);
    o2h_method_new(app.r, "/_o2/si", "siss", on_si, &app, false, true);
    if (o2h_router_start(app.r) != O2H_OK) return 1;
    say("ready");

    char buf[4096];
    size_t used = 0;
    while (!app.quit) {
        struct pollfd fds[2] = {{.fd = 0, .events = POLLIN},
                                {.fd = o2h_router_fd(app.r), .events = POLLIN}};
        poll(fds, 2, 1000); /* the router fd also wakes for its timers (timerfd) */
        if (fds[0].revents) read_commands(&app, buf, &used, sizeof buf);
        o2h_router_poll(app.r, 0);
    }
    o2h_router_free(app.r);
    free(app.pong_seen);
    return 0;
}
