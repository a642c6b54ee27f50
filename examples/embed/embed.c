/*
 * Embedding o2hub: a program that owns a router, offers a service, sends
 * itself messages and runs the loop until it has its answers.
 *
 *   cc embed.c $(pkg-config --cflags --libs o2hub) -o embed && ./embed
 */
#include <stdio.h>
#include <stdlib.h>

#include <o2hub/o2hub.h>

typedef struct app {
    int greetings;
    double total;
} app;

/* "/hello/greet" "si": a name and a number. */
static void on_greet(o2h_router *r, const o2h_msg *msg, const char *types,
                     const o2h_arg *const *argv, int argc, void *user_data) {
    app *a = user_data;
    printf("greet from %s with %d\n", argv[0]->s, argv[1]->i);
    a->greetings++;
    /* Sending from a handler is fine: the message is delivered after we return. */
    o2h_send(r, "/hello/add", 0, "d", (double)argv[1]->i);
}

/* "/hello/add" takes a float; ints and doubles are coerced to it. */
static void on_add(o2h_router *r, const o2h_msg *msg, const char *types, const o2h_arg *const *argv,
                   int argc, void *user_data) {
    app *a = user_data;
    a->total += argv[0]->f;
}

int main(void) {
    o2h_router_options opts = {
        .struct_size = sizeof opts, .ensemble = "embed-demo", .log_level = O2H_LOG_WARN};
    o2h_error err;
    o2h_router *r = o2h_router_new(&opts, &err);
    if (!r) {
        fprintf(stderr, "embed: %s\n", err.message);
        return 1;
    }
    app a = {0};
    if (o2h_service_new(r, "hello") != O2H_OK ||
        o2h_method_new(r, "/hello/greet", "si", on_greet, &a, false, true) != O2H_OK ||
        o2h_method_new(r, "/hello/add", "f", on_add, &a, true, true) != O2H_OK) {
        fprintf(stderr, "embed: cannot set up the service\n");
        return 1;
    }
    o2h_router_start(r);

    o2h_send(r, "/hello/greet", 0, "si", "alice", 3);
    o2h_send_cmd(r, "/hello/greet", 0, "si", "bob", 4);
    /* The builder form, as O2's o2_send_start / o2_add_* / o2_send_finish. */
    o2h_builder *b = o2h_send_start(r);
    o2h_add_string(b, "carol");
    o2h_add_int32(b, 5);
    o2h_send_finish(r, 0, "/hello/greet", false);

    /* Poll (with a bound) the way a program with its own main loop would. */
    for (int i = 0; i < 100 && a.greetings < 3; i++)
        o2h_router_poll(r, 10);

    printf("greetings: %d, total: %.1f\n", a.greetings, a.total);
    int ok = a.greetings == 3 && a.total == 12.0;
    o2h_router_free(r);
    return ok ? 0 : 1;
}
