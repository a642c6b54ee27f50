#include "avahi_env.h"

#include <dns_sd.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* The private bus's config; `max_connections_per_user` 0 keeps dbus-daemon's default (256). */
static void write_bus_conf(const avahi_env *e) {
    char path[256], text[1280], limit[128] = "";
    if (e->max_connections_per_user > 0)
        snprintf(limit, sizeof limit, "  <limit name=\"max_connections_per_user\">%d</limit>\n",
                 e->max_connections_per_user);
    snprintf(path, sizeof path, "%s/bus.conf", e->dir);
    snprintf(text, sizeof text,
             "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
             " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
             "<busconfig>\n"
             "  <type>system</type>\n"
             "  <listen>unix:path=%s</listen>\n"
             "  <auth>EXTERNAL</auth>\n"
             "%s"
             "  <policy context=\"default\">\n"
             "    <allow user=\"*\"/>\n"
             "    <allow own=\"*\"/>\n"
             "    <allow send_destination=\"*\"/>\n"
             "    <allow receive_sender=\"*\"/>\n"
             "  </policy>\n"
             "</busconfig>\n",
             e->bus_path, limit);
    write_file(path, text);
}

void avahi_env_limit_connections(avahi_env *e, int per_user) {
    e->max_connections_per_user = per_user;
    write_bus_conf(e);
}

void avahi_env_init(avahi_env *e, const char *dir) {
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s", dir);
    snprintf(e->bus_path, sizeof e->bus_path, "%s/bus", dir);
    write_bus_conf(e);
    char path[256];
    snprintf(path, sizeof path, "%s/avahi-daemon.conf", dir);
    write_file(path, "[server]\n"
                     "use-ipv4=yes\n"
                     "use-ipv6=no\n"
                     "allow-interfaces=lo\n"
                     "enable-dbus=yes\n"
                     "disallow-other-stacks=no\n"
                     "[wide-area]\n"
                     "enable-wide-area=no\n"
                     "[publish]\n"
                     "publish-hinfo=no\n"
                     "publish-workstation=no\n"
                     "publish-domain=no\n");
    char address[256];
    snprintf(address, sizeof address, "unix:path=%s", e->bus_path);
    setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1);
    setenv("AVAHI_COMPAT_NOWARN", "1", 1);
}

static bool find_program(const char *name, char *out, size_t size) {
    const char *dirs[] = {"/usr/sbin", "/usr/bin",        "/sbin",
                          "/bin",      "/usr/local/sbin", "/usr/local/bin"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(out, size, "%s/%s", dirs[i], name);
        if (access(out, X_OK) == 0) return true;
    }
    return false;
}

static bool bus_answers(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) return false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memcpy(a.sun_path, path, strlen(path) + 1);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* The child end: report a failure through `report` (closed on a successful exec). */
static void child_fail(int report, const char *what) {
    char msg[256];
    int n = snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
    (void)!write(report, msg, (size_t)n);
    _exit(127);
}

/* Fork, run `prepare` in the child, exec argv with output to `log`. On failure
 * fills e->why and returns -1. */
static pid_t spawn(avahi_env *e, char *const argv[], const char *log, bool own_namespaces) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (own_namespaces) {
            if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0)
                child_fail(report[1], "unshare(CLONE_NEWNET | CLONE_NEWNS)");
            if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
                child_fail(report[1], "mount --make-rprivate /");
            if (mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") != 0)
                child_fail(report[1], "mount tmpfs on /run");
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            struct ifreq ifr = {0};
            snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
            if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
                child_fail(report[1], "reading lo's flags");
            ifr.ifr_flags |= IFF_UP;
            if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) child_fail(report[1], "bringing lo up");
            close(s);
        }
        execv(argv[0], argv);
        child_fail(report[1], argv[0]);
    }
    close(report[1]);
    char msg[256] = "";
    ssize_t n = pid > 0 ? read(report[0], msg, sizeof msg - 1) : -1;
    close(report[0]);
    if (pid < 0 || n > 0) {
        if (n > 0) msg[n] = '\0';
        snprintf(e->why, sizeof e->why, "cannot start %s: %s", argv[0],
                 pid < 0 ? "fork failed" : msg);
        if (pid > 0) waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static bool exited(pid_t pid) {
    int status;
    return waitpid(pid, &status, WNOHANG) == pid;
}

static void DNSSD_API probe_cb(DNSServiceRef ref, DNSServiceFlags flags, uint32_t ifindex,
                               DNSServiceErrorType err, const char *name, const char *type,
                               const char *domain, void *ctx) {
}

/* A DNS-SD client can talk to the daemon. */
static bool avahi_answers(void) {
    DNSServiceRef ref;
    if (DNSServiceBrowse(&ref, 0, 0, "_o2hubprobe._tcp", "local.", probe_cb, NULL) != 0)
        return false;
    DNSServiceRefDeallocate(ref);
    return true;
}

static bool start_dbus(avahi_env *e, double limit_s) {
    if (e->dbus_pid > 0) return true;
    char exe[128], conf[256], log[256], arg_conf[300];
    if (!find_program("dbus-daemon", exe, sizeof exe)) {
        snprintf(e->why, sizeof e->why, "dbus-daemon is not installed (Debian package dbus)");
        return false;
    }
    unlink(e->bus_path);
    snprintf(conf, sizeof conf, "%s/bus.conf", e->dir);
    snprintf(arg_conf, sizeof arg_conf, "--config-file=%s", conf);
    snprintf(log, sizeof log, "%s/dbus.log", e->dir);
    char *argv[] = {exe, arg_conf, "--nofork", "--nopidfile", NULL};
    e->dbus_pid = spawn(e, argv, log, false);
    if (e->dbus_pid < 0) {
        e->dbus_pid = 0;
        return false;
    }
    double end = now_s() + limit_s;
    while (!bus_answers(e->bus_path)) {
        if (exited(e->dbus_pid) || now_s() > end) {
            snprintf(e->why, sizeof e->why, "dbus-daemon did not start (see %s)", log);
            e->dbus_pid = 0;
            return false;
        }
        sleep_ms(20);
    }
    return true;
}

bool avahi_env_start(avahi_env *e, double limit_s) {
    if (!start_dbus(e, limit_s)) return false;
    if (e->avahi_pid > 0) return true;
    char exe[128], conf[256], log[256];
    if (!find_program("avahi-daemon", exe, sizeof exe)) {
        snprintf(e->why, sizeof e->why,
                 "avahi-daemon is not installed (Debian package avahi-daemon)");
        return false;
    }
    snprintf(conf, sizeof conf, "%s/avahi-daemon.conf", e->dir);
    snprintf(log, sizeof log, "%s/avahi.log", e->dir);
    char *argv[] = {
        exe, "-f", conf, "--no-drop-root", "--no-chroot", "--no-rlimits", "--no-proc-title", NULL};
    e->avahi_pid = spawn(e, argv, log, true);
    if (e->avahi_pid < 0) {
        e->avahi_pid = 0;
        return false;
    }
    double end = now_s() + limit_s;
    while (!avahi_answers()) {
        if (exited(e->avahi_pid) || now_s() > end) {
            snprintf(e->why, sizeof e->why, "avahi-daemon did not come up (see %s)", log);
            if (!exited(e->avahi_pid)) kill(e->avahi_pid, SIGKILL);
            e->avahi_pid = 0;
            return false;
        }
        sleep_ms(50);
    }
    return true;
}

static void stop_pid(pid_t *pid, double limit_s) {
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    double end = now_s() + limit_s;
    while (!exited(*pid)) {
        if (now_s() > end) {
            kill(*pid, SIGKILL);
            waitpid(*pid, NULL, 0);
            break;
        }
        sleep_ms(20);
    }
    *pid = 0;
}

void avahi_env_stop_avahi(avahi_env *e) {
    stop_pid(&e->avahi_pid, 5); /* avahi sends goodbye packets first (~1 s) */
}

void avahi_env_stop(avahi_env *e) {
    avahi_env_stop_avahi(e);
    stop_pid(&e->dbus_pid, 5);
    unlink(e->bus_path);
}
