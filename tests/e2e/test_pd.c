/*
 * The Pd external in a real, headless Pure Data (pd -nogui -noaudio -stderr)
 * running patches this test writes. o2ctl sends to the patch's [o2receive]
 * (int, float, string; coerced by -t), the patch prints with [print] to
 * stderr, which the test reads. The patch's [o2send] (coerced by -t) reaches
 * o2ctl dump. Messages the patch sends itself with "delay 300", "delay 100"
 * and "delay 200" come out in timestamp order, none earlier in Pd's logical
 * time ([timer]) nor before its timestamp, even when Pd is stalled (SIGSTOP)
 * while they fall due. Bad
 * arguments give console errors and Pd keeps running. A second Pd finds the
 * first through static discovery and sends it a message. Every help patch
 * opens without an error.
 *
 * Exit 0: all passed; 1: a check failed; 77: no pd (skipped).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd_harness.h"

/* Every help patch and the example open with no error and no "couldn't create". */
static void help_patches_open_cleanly(void) {
    static const char *const names[] = {"o2ensemble-help.pd", "o2receive-help.pd", "o2send-help.pd",
                                        "o2property-help.pd", "o2.status-help.pd", "o2.tap-help.pd",
                                        "o2.time-help.pd",    "o2hub-example.pd"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", PD_HELP_DIR, names[i]);
        char *argv[] = {PD_EXE,  "-nogui",        "-noaudio", "-stderr", "-noprefs", "-nrt",
                        "-path", PD_EXTERNAL_DIR, "-open",    path,      "-send",    "pd quit",
                        NULL};
        proc p;
        int st = run(&p, argv, 15);
        check(st == 0 && strstr(p.out, "o2hub ") && !strstr(p.out, "error") &&
                  !strstr(p.out, "couldn't create"),
              "%s opens cleanly (exit %d: %s)", names[i], st, p.out);
    }
}

static char ensemble[64];

typedef struct bad_input {
    const char *input, *text; /* what the patch does, the console error it must give */
} bad_input;

static const bad_input load_errors[] = {
    {"[o2ensemble other -bogus 1]", "o2ensemble: unknown option -bogus"},
    {"[o2ensemble 5]", "o2ensemble: the ensemble name must be a symbol"},
    {"[o2ensemble -log info] (no name)", "o2ensemble: options but no ensemble name"},
    {"[o2receive /pdrx/bad -t iq]", "o2receive /pdrx/bad: bad types \"iq\": type code 'q'"},
    {"[o2receive /pdrx/bad2 -t 5]", "o2receive: -t wants a type string"},
    {"[o2send /pdrx/v -t q]", "o2send: bad types \"q\": type code 'q'"},
    {"[o2send /pdrx/v -t 5]", "o2send: -t wants a type string"},
    {"[o2property 1 color]", "o2property: wants [o2property SERVICE ATTRIBUTE]"},
    {"[o2.status 5]", "o2.status: wants one service name"},
    {"[o2.tap 5]", "o2.tap: which service?"},
    {"[o2.time now]", "o2.time: takes no arguments"},
};

static const bad_input message_errors[] = {
    {"[o2send /nosuch/x] (a service that does not exist)",
     "o2send /nosuch/x: no service \"nosuch\" (yet): message dropped"},
    {"abc to [o2send /pdrx/v -t i]", "o2send /pdrx/v: type 'i' wants a number, not \"abc\""},
    {"[join( with no name", "o2ensemble: join needs an ensemble name"},
    {"[join pdx -port many(", "o2ensemble: -port wants a number"},
    {"[put 1 2( to [o2property]", "o2property: put service attribute [value]"},
    {"[time abc( to [o2send]", "o2send: time MS, or time SECONDS MS"},
    {"[foo( to [o2.time]", "o2.time: no method for 'foo'"},
};

/* The objects of load_errors, and what /pdrx/err's outlet sends for message_errors. */
static void bad_inputs(patch *a) {
    obj(a, "obj", "o2ensemble other -bogus 1");
    int passive = obj(a, "obj", "o2ensemble 5");
    obj(a, "obj", "o2ensemble -log info");
    obj(a, "obj", "o2receive /pdrx/bad -t iq");
    obj(a, "obj", "o2receive /pdrx/bad2 -t 5");
    obj(a, "obj", "o2send /pdrx/v -t q");
    obj(a, "obj", "o2send /pdrx/v -t 5");
    int prop = obj(a, "obj", "o2property 1 color");
    obj(a, "obj", "o2.status 5");
    obj(a, "obj", "o2.tap 5");
    int now = obj(a, "obj", "o2.time now");
    int err = obj(a, "obj", "o2receive /pdrx/err");
    wire(a, err, 0, obj(a, "obj", "o2send /nosuch/x"), 0);
    int abc = obj(a, "msg", "abc");
    wire(a, err, 0, abc, 0);
    wire(a, abc, 0, obj(a, "obj", "o2send /pdrx/v -t i"), 0);
    int join = obj(a, "msg", "join \\, join pdx -port many");
    wire(a, err, 0, join, 0);
    wire(a, join, 0, passive, 0);
    int put = obj(a, "msg", "put 1 2");
    wire(a, err, 0, put, 0);
    wire(a, put, 0, prop, 0);
    int time = obj(a, "msg", "time abc");
    wire(a, err, 0, time, 0);
    wire(a, time, 0, obj(a, "obj", "o2send /pdrx/v"), 0);
    int foo = obj(a, "msg", "foo");
    wire(a, err, 0, foo, 0);
    wire(a, foo, 0, now, 0);
}
static int port_a, port_b;

static int o2ctl(proc *p, double limit, const char *const *args) {
    return o2ctl_in(ensemble, p, limit, args);
}

int main(void) {
    if (access(PD_EXE, X_OK) != 0) {
        printf("pd not found at %s: skipped\n", PD_EXE);
        return 77;
    }
    help_patches_open_cleanly();
    snprintf(ensemble, sizeof ensemble, "pdtest-%d", (int)getpid());
    make_tmpdir();
    port_a = free_port();
    port_b = free_port();
    char peer_a[32];
    snprintf(peer_a, sizeof peer_a, "127.0.0.1:%d", port_a);

    /* Patch A: the reference clock, no discovery of its own (others find it). */
    patch a = {0};
    int ens = obj(&a, "obj", "o2ensemble %s -host 127.0.0.1 -port %d -discovery none -c 1",
                  ensemble, port_a);
    wire(&a, ens, 0, obj(&a, "obj", "print ENS"), 0);
    receive_print(&a, "pdrx v", "RX"); /* O2's node form of /pdrx/v */
    receive_print(&a, "/pdrx/typed -t ifs", "TYPED");
    /* echo: what comes in goes out to /box/out, coerced to "ifs" */
    int echo = obj(&a, "obj", "o2receive /pdrx/echo");
    int fwd = obj(&a, "obj", "o2send /box/out -t ifs");
    wire(&a, echo, 0, fwd, 0);
    /* timed: /pdrx/timed starts a [timer] and sends /pdrx/late three values, stamped
     * 300, 100 and 200 ms later; each comes out with the [timer]'s logical time and
     * [o2.time] minus its stamp */
    int timed = obj(&a, "obj", "o2receive /pdrx/timed");
    int tbb = obj(&a, "obj", "t b b");
    int timer = obj(&a, "obj", "timer");
    int later = obj(&a, "msg", "delay 300 \\, 3 \\, delay 100 \\, 1 \\, delay 200 \\, 2");
    int self = obj(&a, "obj", "o2.send /pdrx/late");
    wire(&a, timed, 0, tbb, 0);
    wire(&a, tbb, 1, timer, 0);
    wire(&a, tbb, 1, obj(&a, "obj", "print TIMED"), 0);
    wire(&a, tbb, 0, later, 0);
    wire(&a, later, 0, self, 0);
    int late = obj(&a, "obj", "o2.receive /pdrx/late");
    int tbbf = obj(&a, "obj", "t b b f");
    int now = obj(&a, "obj", "o2.time");
    int minus = obj(&a, "obj", "-");
    wire(&a, late, 1, minus, 1);
    wire(&a, late, 0, tbbf, 0);
    wire(&a, tbbf, 2, obj(&a, "obj", "print LATEVALUE"), 0);
    wire(&a, tbbf, 1, timer, 1);
    wire(&a, tbbf, 0, now, 0);
    wire(&a, now, 0, minus, 0);
    wire(&a, timer, 0, obj(&a, "obj", "print ELAPSED"), 0);
    wire(&a, minus, 0, obj(&a, "obj", "print LATENESS"), 0);
    /* /pdrx/split: [o2.time]'s seconds and ms stamp a message with "time SECONDS MS" */
    int split_in = obj(&a, "obj", "o2receive /pdrx/split");
    int tb2 = obj(&a, "obj", "t b b");
    int split_now = obj(&a, "obj", "o2.time");
    int prepend = obj(&a, "obj", "list prepend time");
    int trim = obj(&a, "obj", "list trim");
    int seven = obj(&a, "msg", "7");
    int stamp = obj(&a, "obj", "o2send /pdrx/stamped");
    wire(&a, split_in, 0, tb2, 0);
    wire(&a, tb2, 1, split_now, 0);
    wire(&a, split_now, 1, obj(&a, "obj", "print SPLIT"), 0);
    wire(&a, split_now, 0, obj(&a, "obj", "print SPLITMS"), 0);
    wire(&a, split_now, 1, prepend, 0);
    wire(&a, prepend, 0, trim, 0);
    wire(&a, trim, 0, stamp, 0);
    wire(&a, tb2, 0, seven, 0);
    wire(&a, seven, 0, stamp, 0);
    receive_print(&a, "/pdrx/stamped", "STAMPED");
    /* bad input, when the patch loads and when /pdrx/err comes: none may stop Pd */
    bad_inputs(&a);
    receive_print(&a, "/pdrx/fromb", "FROMB");
    /* a tap on our own service; a property put and read back */
    int tap = obj(&a, "obj", "o2.tap pdrx");
    wire(&a, tap, 0, obj(&a, "obj", "print TAP"), 0);
    int prop_in = obj(&a, "obj", "o2receive /pdrx/prop");
    int prop_msg = obj(&a, "msg", "put pdrx color red \\, get pdrx color \\, get pdrx flavor");
    int prop = obj(&a, "obj", "o2property");
    wire(&a, prop_in, 0, prop_msg, 0);
    wire(&a, prop_msg, 0, prop, 0);
    wire(&a, prop, 0, obj(&a, "obj", "print PROP"), 0);
    wire(&a, prop, 1, obj(&a, "obj", "print NOPROP"), 0);
    char path_a[128];
    write_patch(path_a, sizeof path_a, "a.pd", &a);

    proc pa, c, dump, pb;
    start_pd(&pa, path_a);
    check(expect(&pa, "ENS: joined", 10) != NULL, "Pd A joined (%s)", pa.out);
    for (size_t i = 0; i < sizeof load_errors / sizeof load_errors[0]; i++)
        check(expect(&pa, load_errors[i].text, 2) != NULL, "console error for %s",
              load_errors[i].input);

    const char *s1[] = {"-p", peer_a, "send", "/pdrx/v", "ifs", "3", "2.5", "hello", NULL};
    check(o2ctl(&c, 20, s1) == 0, "o2ctl send /pdrx/v (%s)", c.out);
    check(expect(&pa, "RX: 3 2.5 hello", 5) != NULL, "[o2receive pdrx v] got int, float, string");
    check(strstr(pa.out, "RX_T: 0") != NULL, "an untimed message has time 0 on the right outlet");

    check(expect(&pa, "TAP: list /pdrx/v 3 2.5 hello", 5) != NULL, "[o2.tap pdrx] got a copy");

    const char *sp[] = {"-p", peer_a, "send", "/pdrx/prop", NULL};
    check(o2ctl(&c, 20, sp) == 0, "o2ctl send /pdrx/prop");
    check(expect(&pa, "PROP: symbol red", 5) != NULL, "[o2property] put and got color red");
    check(expect(&pa, "NOPROP: bang", 5) != NULL, "an unknown attribute bangs the right outlet");
    const char *ls[] = {"-p", peer_a, "list", "-U", "pdrx", NULL};
    check(o2ctl(&c, 20, ls) == 0 && strstr(c.out, "color:red"), "o2ctl list shows it: %s", c.out);

    const char *s2[] = {"-p", peer_a, "send", "/pdrx/typed", "dis", "1.5", "4", "word", NULL};
    check(o2ctl(&c, 20, s2) == 0, "o2ctl send /pdrx/typed (%s)", c.out);
    check(expect(&pa, "TYPED: 1 4 word", 5) != NULL, "-t ifs coerced d i s to i f s");

    /* [o2send] -> o2ctl dump */
    char box_port[16];
    snprintf(box_port, sizeof box_port, "%d", free_port());
    const char *d[] = {"-p", peer_a, "-P", box_port, "dump", "box", "--count", "1", NULL};
    o2ctl(&dump, 0, d);
    expect(&dump, "offering box", 10);
    bool dumped = false;
    for (int i = 0; i < 20 && !dumped; i++) {
        const char *s3[] = {"-p", peer_a, "send", "/pdrx/echo", "fis", "2.7", "9", "sym", NULL};
        o2ctl(&c, 20, s3);
        dumped = expect(&dump, "/box/out", 0.5) != NULL;
    }
    expect(&dump, "\n", 1);
    drain(&dump, 500);
    check(dumped && strstr(dump.out, "2") && strstr(dump.out, "sym"),
          "[o2send /box/out -t ifs] reached o2ctl dump: %s", dump.out);
    check(strstr(dump.out, "/box/out ,ifs 2 9 \"sym\"") != NULL,
          "coerced by -t ifs: 2.7 -> 2, 9 -> 9.0, sym -> \"sym\"");
    stop(&dump);

    /* timed, in Pd's logical time, with Pd stalled while they fall due (a loaded
     * machine: Pd then catches up tick by tick, reading sockets first) */
    const char *s4[] = {"-p", peer_a, "send", "/pdrx/timed", NULL};
    check(o2ctl(&c, 20, s4) == 0, "o2ctl send /pdrx/timed");
    if (expect_next(&pa, "TIMED: bang", 10)) {
        kill(pa.pid, SIGSTOP); /* the fault injected, not a wait for an event */
        usleep(400000);
        kill(pa.pid, SIGCONT);
    }
    for (int k = 1; k <= 3; k++) {
        const char *v = expect_next(&pa, "LATEVALUE: ", 10);
        const char *el = v ? expect_next(&pa, "ELAPSED: ", 2) : NULL;
        const char *ln = el ? expect_next(&pa, "LATENESS: ", 2) : NULL;
        int value = v ? atoi(v + 11) : -1;
        double elapsed = el ? atof(el + 9) : -1, lateness = ln ? atof(ln + 10) : -1e9;
        check(value == k, "timed message %d came out in timestamp order (got %d)", k, value);
        /* 0.01 ms: [timer] and [-] in 32-bit floats */
        check(elapsed >= 100 * k - 0.01 && elapsed < 100 * k + 5000,
              "delay %d came out after %g ms of logical time: not early", 100 * k, elapsed);
        check(lateness >= -0.01 && lateness < 5000,
              "[o2.time] at its delivery is not before its stamp (%g ms late)", lateness);
    }

    /* the time split */
    const char *ssplit[] = {"-p", peer_a, "send", "/pdrx/split", NULL};
    check(o2ctl(&c, 20, ssplit) == 0, "o2ctl send /pdrx/split");
    const char *sp_at = expect_next(&pa, "SPLIT: ", 5);
    const char *ms_at = sp_at ? expect_next(&pa, "SPLITMS: ", 2) : NULL;
    const char *st_at = ms_at ? expect_next(&pa, "STAMPED_T: ", 5) : NULL;
    double sec = 0, frac = -1;
    if (sp_at) sscanf(sp_at + 7, "%lf %lf", &sec, &frac);
    double split_ms = sec * 1000 + frac, ms = ms_at ? atof(ms_at + 9) : -1;
    double stamped = st_at ? atof(st_at + 11) : -1;
    double tol = 0.01 + 1e-5 * split_ms; /* [print] shows 6 digits */
    check(frac >= 0 && frac < 1000 && split_ms - ms < tol && ms - split_ms < tol,
          "[o2.time]: %g s %g ms on the right, %g ms on the left", sec, frac, ms);
    check(st_at && stamped - split_ms < tol && split_ms - stamped < tol,
          "\"time SECONDS MS\" stamped the message at %g ms (%g)", stamped, split_ms);

    /* bad messages, from /pdrx/err's outlet; then Pd still answers */
    const char *s5[] = {"-p", peer_a, "send", "/pdrx/err", "i", "1", NULL};
    check(o2ctl(&c, 20, s5) == 0, "o2ctl send /pdrx/err");
    for (size_t i = 0; i < sizeof message_errors / sizeof message_errors[0]; i++)
        check(expect(&pa, message_errors[i].text, 5) != NULL, "console error for %s",
              message_errors[i].input);
    const char *s5b[] = {"-p", peer_a, "send", "/pdrx/v", "i", "77", NULL};
    check(o2ctl(&c, 20, s5b) == 0 && expect(&pa, "RX: 77", 5) != NULL,
          "after every bad input Pd A still runs and its [o2receive] still works");

    /* Pd B finds A and, once A's service is known, sends to it */
    patch b = {0};
    obj(&b, "obj", "o2ensemble %s -host 127.0.0.1 -port %d -peer %s -c 0", ensemble, port_b,
        peer_a);
    int st = obj(&b, "obj", "o2.status pdrx");
    int sel = obj(&b, "obj", "sel 1 5");
    int once = obj(&b, "obj", "spigot 1");
    int shut = obj(&b, "msg", "0");
    int hello = obj(&b, "msg", "hello 7");
    int tob = obj(&b, "obj", "o2send /pdrx/fromb");
    wire(&b, st, 0, once, 0);
    wire(&b, once, 0, sel, 0);
    wire(&b, sel, 0, hello, 0);
    wire(&b, sel, 1, hello, 0);
    wire(&b, sel, 0, shut, 0);
    wire(&b, sel, 1, shut, 0);
    wire(&b, shut, 0, once, 1);
    wire(&b, hello, 0, tob, 0);
    wire(&b, st, 0, obj(&b, "obj", "print STATUS"), 0);
    char path_b[128];
    write_patch(path_b, sizeof path_b, "b.pd", &b);
    start_pd(&pb, path_b);
    bool from_b = expect(&pa, "FROMB: list hello 7", 15) != NULL;
    drain(&pb, 100);
    check(from_b, "Pd B found Pd A and sent to it (B: %s)", pb.out);
    if (failures) printf("# Pd A's output:\n%s\n", pa.out);

    stop(&pb);
    stop(&pa);

    /* Pd C joins by a config file, leaves and joins again: its receiver comes back */
    int port_c = free_port();
    patch cp = {0};
    int lb = obj(&cp, "obj", "loadbang");
    /* a config file (the plugins by type, linked in) and a bad one */
    char cfg_c[128], cfg_bad[128], json[512];
    snprintf(json, sizeof json,
             "{\"ensemble\": \"%s\",\n"
             " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d},\n"
             "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}]}\n",
             ensemble, port_c, port_c);
    write_file(cfg_c, sizeof cfg_c, "c.json", json);
    write_file(
        cfg_bad, sizeof cfg_bad, "bad.json",
        "{\"ensemble\": \"x\",\n \"transports\": [{\"type\": \"tcp\", \"port\": \"many\"}]}\n");
    obj(&cp, "obj", "o2ensemble -config %s", cfg_bad);
    int join1 = obj(&cp, "msg", "join -config %s", cfg_c);
    int d1 = obj(&cp, "obj", "delay 300");
    int leave = obj(&cp, "msg", "leave");
    int d2 = obj(&cp, "obj", "delay 300");
    int ens_c = obj(&cp, "obj", "o2ensemble");
    wire(&cp, lb, 0, join1, 0);
    wire(&cp, lb, 0, d1, 0);
    wire(&cp, d1, 0, leave, 0);
    wire(&cp, d1, 0, d2, 0);
    wire(&cp, d2, 0, join1, 0);
    wire(&cp, join1, 0, ens_c, 0);
    wire(&cp, leave, 0, ens_c, 0);
    wire(&cp, ens_c, 0, obj(&cp, "obj", "print ENSC"), 0);
    receive_print(&cp, "/cyc/x", "CYC");
    /* leaving from a message's outlet: inside the router's own poll */
    int quit = obj(&cp, "obj", "o2receive /cyc/quit");
    int leave2 = obj(&cp, "msg", "leave");
    wire(&cp, quit, 0, leave2, 0);
    wire(&cp, leave2, 0, ens_c, 0);
    char path_c[128], peer_c[32];
    snprintf(peer_c, sizeof peer_c, "127.0.0.1:%d", port_c);
    write_patch(path_c, sizeof path_c, "c.pd", &cp);
    proc pc;
    start_pd(&pc, path_c);
    const char *left = expect(&pc, "ENSC: left", 10);
    check(strstr(pc.out, "bad.json:2:") != NULL,
          "a bad config file is a console error at file:line");
    check(left && expect(&pc, "ENSC: joined", 0) < left, "Pd C joined, then left");
    const char *again = left ? strstr(left, "ENSC: joined") : NULL;
    for (double end = now_s() + 10; left && !again && now_s() < end; drain(&pc, 50))
        again = strstr(left, "ENSC: joined");
    check(again != NULL, "and joined again (%s)", pc.out);
    const char *s6[] = {"-p", peer_c, "send", "/cyc/x", "i", "5", NULL};
    check(o2ctl(&c, 20, s6) == 0, "o2ctl send /cyc/x after the second join (%s)", c.out);
    check(expect(&pc, "CYC: 5", 5) != NULL, "the receiver came back with the second join");
    const char *s7[] = {"-p", peer_c, "send", "/cyc/quit", NULL};
    check(o2ctl(&c, 20, s7) == 0, "o2ctl send /cyc/quit");
    const char *cyc = strstr(pc.out, "CYC: 5");
    const char *left2 = NULL;
    for (double end = now_s() + 5; cyc && !left2 && now_s() < end; drain(&pc, 50))
        left2 = strstr(cyc, "ENSC: left");
    check(left2 != NULL, "a leave from [o2receive]'s outlet left");
    drain(&pc, 200);
    check(kill(pc.pid, 0) == 0 && !strstr(pc.out, "ERROR: AddressSanitizer"),
          "and Pd C is still running");
    stop(&pc);
    remove_tmpdir();
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
