/*
 * o2info — the /_o2/si notices one O2-style process (o2.h only) gets around
 * o2_clock_set, as O2 2.x sends them: its services as LOCAL_NOTIME, then
 * "_cs" at once, then (at the next o2_poll) every local service as LOCAL,
 * "_o2" among them, each once; a service freed names this process.
 * Prints "INFO DONE" and exits 0 when every check holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "o2.h"

#define check(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            printf("INFO CHECK FAILED: %s (%s:%d)\n", #x, __FILE__, __LINE__);                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_SEEN 32

static struct {
    char service[32];
    int status;
    char process[32];
} seen[MAX_SEEN];
static int n_seen;

static void on_si(O2msg_data_ptr msg, const char *types, O2arg_ptr *argv, int argc,
                  const void *user_data) {
    printf("si %s %d %s \"%s\"\n", argv[0]->s, argv[1]->i32, argv[2]->s, argv[3]->s);
    check(n_seen < MAX_SEEN && argv[3]->s[0] == '\0');
    snprintf(seen[n_seen].service, sizeof seen[n_seen].service, "%s", argv[0]->s);
    seen[n_seen].status = argv[1]->i32;
    snprintf(seen[n_seen].process, sizeof seen[n_seen].process, "%s", argv[2]->s);
    n_seen++;
}

static void poll_a_while(void) {
    for (int i = 0; i < 200; i++)
        o2_poll();
}

/* seen[i] is `service` with `status` from `process`. */
static bool is(int i, const char *service, int status, const char *process) {
    return i < n_seen && strcmp(seen[i].service, service) == 0 && seen[i].status == status &&
           strcmp(seen[i].process, process) == 0;
}

/* seen[from..from+2] are the three names, in any order (O2 walks a hash table). */
static bool three_local(int from, const char *a, const char *b, const char *c) {
    const char *names[3] = {a, b, c};
    bool used[3] = {false, false, false};
    for (int i = from; i < from + 3; i++) {
        bool found = false;
        for (int k = 0; k < 3 && !found; k++)
            if (!used[k] && is(i, names[k], O2_LOCAL, "_o2")) used[k] = found = true;
        if (!found) return false;
    }
    return true;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    check(o2_network_enable(false) == O2_SUCCESS);
    check(o2_initialize("o2info") == O2_SUCCESS);
    check(o2_method_new("/_o2/si", "siss", &on_si, NULL, false, true) == O2_SUCCESS);
    check(o2_service_new("alpha") == O2_SUCCESS);
    check(o2_service_new("beta") == O2_SUCCESS);
    poll_a_while();
    check(n_seen == 2);
    check(is(0, "alpha", O2_LOCAL_NOTIME, "_o2") && is(1, "beta", O2_LOCAL_NOTIME, "_o2"));

    check(o2_clock_set(NULL, NULL) == O2_SUCCESS);
    poll_a_while();
    check(n_seen == 6);
    check(is(2, "_cs", O2_LOCAL, "_o2"));
    check(three_local(3, "_o2", "alpha", "beta"));

    const char *me = o2_get_proc_name();
    check(me && me[0] == '@');
    check(o2_service_free("beta") == O2_SUCCESS);
    poll_a_while();
    check(n_seen == 7 && is(6, "beta", O2_UNKNOWN, me));

    o2_finish();
    printf("INFO DONE\n");
    return 0;
}
