/*
 * The Pd external takes the object arguments and messages that patches made
 * for O2's own external use (docs/pd.md), in real headless Pd processes and
 * o2ctl on 127.0.0.1:
 * - [o2ensemble] with a broker's address (a symbol) or 3 as network level
 *   joins the local network and says in the console that MQTT needs -config;
 * - flags before the nodes: [o2receive -t f svc a] and [o2send -t i svc b];
 * - O2's type strings "any" (every message) and "none" (no arguments), in
 *   -t and in a types message;
 * - a second Pd at network level 3 with -c 0 finds the first through static
 *   discovery and follows its clock ([o2.status] gives 5).
 *
 * Exit 0: all passed; 1: a check failed; 77: no pd (skipped).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_harness.h"

static char ensemble[64];
static int port_a;

/* o2ctl in this test's ensemble (pd_harness.h o2ctl_in). */
static int o2ctl(proc *p, double limit, const char *const *args) {
    return o2ctl_in(ensemble, p, limit, args);
}

/* [print NAME] on `from`'s outlet. */
static void print_of(patch *p, int from, int outlet, const char *name) {
    wire(p, from, outlet, obj(p, "obj", "print %s", name), 0);
}

/* o2ctl send ADDR [TYPES [A1 [A2]]] to A (reliable), waiting up to 10 s for the service. */
static int send_msg(const char *addr, const char *types, const char *a1, const char *a2) {
    char peer[32];
    snprintf(peer, sizeof peer, "127.0.0.1:%d", port_a);
    const char *args[] = {"-p", peer, "--wait", "10", "send", addr, types, a1, a2, NULL};
    static proc p;
    return o2ctl(&p, 20, args);
}

/* A "NAME: VALUE" line of [print NAME] in out. */
static bool printed(const char *out, const char *name, const char *value) {
    char line[128];
    snprintf(line, sizeof line, "%s: %s\n", name, value);
    return strstr(out, line) != NULL;
}

int main(void) {
    if (access(PD_EXE, X_OK) != 0) {
        printf("pd not found at %s: skipped\n", PD_EXE);
        return 77;
    }
    snprintf(ensemble, sizeof ensemble, "pdcompat-%d", (int)getpid());
    make_tmpdir();
    port_a = free_port();
    int port_b = free_port();
    char peer_a[32];
    snprintf(peer_a, sizeof peer_a, "127.0.0.1:%d", port_a);

    /* Patch A: O2's positional arguments with a broker's address as network level. */
    patch a = {0};
    int ens = obj(&a, "obj",
                  "o2ensemble %s broker.invalid:1883 0 0 -host 127.0.0.1 -port %d "
                  "-discovery none -c 1",
                  ensemble, port_a);
    print_of(&a, ens, 0, "ENS");
    /* flags first in both: what /compat/pre gets (as f) goes on to /compatout/val as i */
    int pre = obj(&a, "obj", "o2receive -t f compat pre");
    print_of(&a, pre, 0, "PRE");
    int fwd = obj(&a, "obj", "o2send -t i compatout val");
    wire(&a, pre, 0, fwd, 0);
    print_of(&a, obj(&a, "obj", "o2receive compat none -t none"), 0, "NONE");
    print_of(&a, obj(&a, "obj", "o2receive compat any -t any"), 0, "ANY");
    /* a types message: "-t f" becomes "any" once the patch has loaded */
    int late = obj(&a, "obj", "o2receive compat late -t f");
    print_of(&a, late, 0, "LATE");
    int lb = obj(&a, "obj", "loadbang");
    int types_any = obj(&a, "msg", "types any");
    wire(&a, lb, 0, types_any, 0);
    wire(&a, types_any, 0, late, 0);
    char path_a[128];
    write_patch(path_a, sizeof path_a, "a.pd", &a);

    /* Patch B: network level 3, no clock of its own, A as its static peer. */
    patch b = {0};
    int ens_b = obj(&b, "obj", "o2ensemble %s 3 -c 0 -host 127.0.0.1 -port %d -peer %s", ensemble,
                    port_b, peer_a);
    print_of(&b, ens_b, 0, "BENS");
    print_of(&b, obj(&b, "obj", "o2.status compat"), 0, "BST");
    char path_b[128];
    write_patch(path_b, sizeof path_b, "b.pd", &b);

    static proc pa, pb, dump;
    start_pd(&pa, path_a);
    char joined[96];
    snprintf(joined, sizeof joined, "ENS: joined %s", ensemble);
    check(expect(&pa, joined, 20) != NULL,
          "a broker's address as network level: the patch joins (%s)", pa.out);
    check(strstr(pa.out, "MQTT broker broker.invalid:1883: not in the Pd external") != NULL,
          "the console says MQTT needs -config");
    check(!strstr(pa.out, "unknown option") && !strstr(pa.out, "bad types") &&
              !strstr(pa.out, "couldn't create"),
          "flags before nodes, -t any and -t none are accepted (%s)", pa.out);

    start_pd(&pb, path_b);
    snprintf(joined, sizeof joined, "BENS: joined %s", ensemble);
    check(expect(&pb, joined, 20) != NULL && strstr(pb.out, "network level 3 (MQTT)"),
          "network level 3: the second patch joins, with a console note (%s)", pb.out);
    check(expect(&pb, "BST: 5", 30) != NULL,
          "it finds the first's service with the first's clock: [o2.status] 5 (%s)", pb.out);

    /* -t f before the nodes: a string is dropped, an int comes out as a number */
    const char *dump_args[] = {"-p", peer_a, "dump", "compatout", "-n", "1", "-d", "40", NULL};
    o2ctl(&dump, 0, dump_args);
    check(expect(&dump, "offering compatout", 20) != NULL, "o2ctl dump runs (%s)", dump.out);
    check(send_msg("/compat/pre", "s", "x", NULL) == 0, "o2ctl sends a string to /compat/pre");
    /* A learns of the dump's service on its own schedule: send again until it has one */
    bool got = false;
    for (int i = 0; i < 10 && !got; i++) {
        send_msg("/compat/pre", "i", "5", NULL);
        got = expect(&dump, "/compatout/val ,i 5", 2) != NULL;
    }
    check(expect(&pa, "PRE: 5", 10) != NULL, "[o2receive -t f compat pre] gets 5 (%s)", pa.out);
    check(got, "[o2send -t i compatout val] sends it on as an int (%s)", dump.out);
    check(!printed(pa.out, "PRE", "x") && !printed(pa.out, "PRE", "symbol x"),
          "-t f drops the string");

    /* -t none: only a message without arguments */
    send_msg("/compat/none", "i", "1", NULL);
    send_msg("/compat/none", NULL, NULL, NULL);
    check(expect(&pa, "NONE: bang", 10) != NULL,
          "[o2receive ... -t none] gets a message without arguments (%s)", pa.out);
    check(!printed(pa.out, "NONE", "1"), "and not one with an argument");

    /* -t any in the object and in a types message */
    send_msg("/compat/any", "si", "x", "2");
    check(expect(&pa, "ANY: list x 2", 10) != NULL,
          "[o2receive ... -t any] gets what it is sent (%s)", pa.out);
    send_msg("/compat/late", "s", "word", NULL);
    check(expect(&pa, "LATE: list word", 10) != NULL || expect(&pa, "LATE: symbol word", 1) != NULL,
          "[types any( lets a string through a former -t f (%s)", pa.out);

    stop(&pa);
    stop(&pb);
    stop(&dump);
    remove_tmpdir();
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
