/*
 * Network namespaces for e2e tests: a process (or a child before exec) in a
 * namespace of its own has only lo, and lo starts down.
 */
#ifndef O2H_TEST_NETNS_UTIL_H
#define O2H_TEST_NETNS_UTIL_H

#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/** Bring up lo in a fresh network namespace. 0 or -1. */
static inline int loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (rc == 0) rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    close(fd);
    return rc;
}

/** Can this process make network namespaces (root, or CAP_SYS_ADMIN)? */
static inline bool netns_available(void) {
    pid_t c = fork();
    if (c == 0) _exit(unshare(CLONE_NEWNET) == 0 && loopback_up() == 0 ? 0 : 1);
    int status;
    waitpid(c, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

#endif
