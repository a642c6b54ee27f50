/*
 * The O2lite scenario across processes: an O2lite device (the o2lite-imu
 * example on our C client library) finds its host by O2's UDP discovery,
 * offers "imu" and sends /imu/imu "fffffff" at 20 Hz over UDP; a third, full
 * o2hub process subscribes to "imu" (a tap) and receives every reading
 * through the ensemble; a message from that process reaches the device; the
 * device's clock sync shows in the statuses (BRIDGE on its host, REMOTE
 * elsewhere). Separate processes on 127.0.0.1, bounded waits.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "testproc.h"

TestSuite(o2lite_ensemble, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 60);

/* Ask until the reply line contains `want`. */
static bool poll_status(proc *p, const char *svc, int want, double limit_s) {
    char reply[64];
    snprintf(reply, sizeof reply, "status %s %d", svc, want);
    for (double end = now_s() + limit_s; now_s() < end;) {
        tell(p, "status %s", svc);
        if (expect(p, reply, 0.2)) return true;
    }
    return false;
}

Test(o2lite_ensemble, a_device_publishes_through_its_host_to_a_third_process) {
    char ensemble[32];
    snprintf(ensemble, sizeof ensemble, "lite%d", (int)getpid());
    proc host = {0}, third = {0};
    int ph = free_port(), pt = free_port();
    char discovery[256], top[128];
    snprintf(discovery, sizeof discovery,
             "{\"type\": \"broadcast\"}, {\"type\": \"static\", \"peers\": [\"127.0.0.1:%d\"]}",
             pt);
    snprintf(top, sizeof top, ", \"clock\": {\"reference\": true}");
    write_config_with(&host, "host", ph, discovery, NULL, top);
    int to_host[2] = {ph, -1};
    write_config(&third, "third", pt, to_host, NULL);
    /* Both configs name the test's own ensemble. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sed -i 's/\"e2e\"/\"%s\"/' %s %s", ensemble, host.config,
             third.config);
    cr_assert_eq(system(cmd), 0);
    start(&host);
    start(&third);
    tell(&third, "subscribe imu spy");
    must(&third, "subscribed", 5);

    int out[2];
    cr_assert_eq(pipe(out), 0);
    pid_t imu = fork();
    if (imu == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        dup2(out[1], 2);
        execl(IMU_EXE, "o2lite-imu", "--ensemble", ensemble, "--seconds", "30", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    proc device = {.pid = -1, .out_fd = out[0]}; /* read its output with expect() */

    /* Found by discovery; its clock sync reached and reported. */
    cr_assert(poll_status(&host, "imu", O2H_STATUS_BRIDGE, 10), "host never saw a synced imu:\n%s",
              host.out);
    cr_assert(poll_status(&third, "imu", O2H_STATUS_REMOTE, 10), "third never saw imu:\n%s",
              third.out);

    /* Every reading reaches the subscriber: about 20 per second. */
    expect(&third, "tapped /spy/imu", 3);
    int copies = 0;
    for (double end = now_s() + 1.0; now_s() < end;)
        if (expect(&third, "tapped /spy/imu", end - now_s())) copies++;
    cr_assert(copies >= 15 && copies <= 25, "%d readings in 1 s at the subscriber", copies);

    /* And a message from the third process reaches the device. */
    tell(&third, "ping /imu/hello tcp 41");
    cr_assert_not_null(expect(&device, "/imu/hello", 5), "the device printed nothing:\n%s",
                       device.out);

    kill(imu, SIGTERM);
    waitpid(imu, NULL, 0);
    close(out[0]);
    cr_assert(poll_status(&third, "imu", O2H_STATUS_UNKNOWN, 5), "imu outlived its device");
    stop(&host, SIGTERM);
    stop(&third, SIGTERM);
}
