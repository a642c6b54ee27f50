#include "osc_peers.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osc_helpers.h"

static bool in_path(const char *name) {
    const char *path = getenv("PATH");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dir, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char file[4200];
        snprintf(file, sizeof file, "%s/%s", d, name);
        if (access(file, X_OK) == 0) return true;
    }
    return false;
}

/* Run argv with stdin from /dev/null and stdout and stderr appended to `log`;
 * `death` is the signal it gets if the test dies first. */
static pid_t spawn_logged(char *const argv[], const char *log, int death) {
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, death); /* never outlive a failed test */
        int in = open("/dev/null", O_RDONLY);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0) _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Wait up to `limit_s` for `pid` to exit: its status, or -1 (still running). */
static int wait_exit(pid_t pid, double limit_s) {
    double end = now_mono() + limit_s;
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (now_mono() >= end) return -1;
        usleep(5000);
    }
}

/* SIGTERM, a bounded wait, then SIGKILL. */
static void stop_pid(pid_t *pid) {
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    if (wait_exit(*pid, 3) < 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

static bool file_has(const char *file, const char *needle, size_t from, size_t *after) {
    FILE *f = fopen(file, "r");
    if (!f) return false;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (from > n) return false;
    const char *at = strstr(buf + from, needle);
    if (at && after) *after = (size_t)(at - buf) + strlen(needle);
    return at != NULL;
}

static void tail_of(const char *file, char *out, size_t size) {
    FILE *f = fopen(file, "r");
    out[0] = '\0';
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    long from = len > (long)size - 1 ? len - (long)size + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    for (char *c = out; *c; c++)
        if (*c == '\n') *c = '|';
}

static void remove_dir(const char *dir, const char *const files[]) {
    char path[256];
    for (int i = 0; files[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* ---- SuperCollider ---- */

const char *sc_server_missing(void) {
    if (!in_path("scsynth"))
        return "scsynth is not installed (Debian package supercollider-server)";
    if (!in_path("jackd")) return "jackd is not installed (Debian package jackd2)";
    if (!in_path("jack_wait")) return "jack_wait is not installed (Debian package jackd2)";
    return NULL;
}

/*
 * JACK keeps its servers in one registry for the whole machine (at most 8,
 * /dev/shm/jack-shm-registry) and reuses the entry of a dead server only for
 * a server of the same name: so the tests use a few fixed names, the next one
 * when a name is taken by a running server, and jackd gets SIGTERM (it then
 * unregisters) if the test dies.
 */
#define JACK_NAMES 4

static bool start_jackd(sc_server *s) {
    setenv("JACK_NO_AUDIO_RESERVATION", "1", 1); /* no D-Bus device reservation */
    char rate[16];
    snprintf(rate, sizeof rate, "%d", (int)SC_SAMPLE_RATE);
    for (int i = 0; i < JACK_NAMES; i++) {
        char name[64];
        snprintf(name, sizeof name, "o2hub-test-%d", i);
        setenv("JACK_DEFAULT_SERVER", name, 1); /* jackd, jack_wait and scsynth use it */
        char *check_argv[] = {"jack_wait", "-c", NULL};
        pid_t c = spawn_logged(check_argv, s->jack_log, SIGKILL);
        if (wait_exit(c, 5) < 0) kill(c, SIGKILL), waitpid(c, NULL, 0);
        bool taken = file_has(s->jack_log, "running", 0, NULL) &&
                     !file_has(s->jack_log, "not running", 0, NULL);
        truncate(s->jack_log, 0);
        if (taken) continue; /* another test run's server */
        char *jack_argv[] = {"jackd", "--no-realtime", "-d", "dummy", "-r", rate,
                             "-p",    "256",           NULL};
        s->jackd = spawn_logged(jack_argv, s->jack_log, SIGTERM);
        char *wait_argv[] = {"jack_wait", "-w", "-t", "10", NULL};
        pid_t w = spawn_logged(wait_argv, s->jack_log, SIGKILL);
        int rc = wait_exit(w, 15);
        if (rc < 0) kill(w, SIGKILL), waitpid(w, NULL, 0);
        if (rc == 0) return true;
        stop_pid(&s->jackd);
        char tail[300];
        tail_of(s->jack_log, tail, sizeof tail);
        snprintf(s->why, sizeof s->why, "jackd did not start (jack_wait %d): %s", rc, tail);
        return false;
    }
    snprintf(s->why, sizeof s->why, "jackd: servers o2hub-test-0..%d all run already",
             JACK_NAMES - 1);
    return false;
}

bool sc_server_start(sc_server *s, bool tcp) {
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/o2hub-sc-XXXXXX");
    if (!mkdtemp(s->dir)) {
        snprintf(s->why, sizeof s->why, "mkdtemp: %s", strerror(errno));
        return false;
    }
    snprintf(s->log, sizeof s->log, "%s/scsynth.log", s->dir);
    snprintf(s->jack_log, sizeof s->jack_log, "%s/jackd.log", s->dir);
    if (!start_jackd(s)) return false;
    s->tcp = tcp;
    s->port = free_port(tcp ? SOCK_STREAM : SOCK_DGRAM);
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    /* No inputs, no Bonjour, no synthdefs to load: only the OSC server matters here. */
    char *sc_argv[] = {"scsynth",   tcp ? "-t" : "-u",
                       port,        "-B",
                       "127.0.0.1", "-i",
                       "0",         "-o",
                       "2",         "-R",
                       "0",         "-D",
                       "0",         "-l",
                       "4",         NULL};
    s->scsynth = spawn_logged(sc_argv, s->log, SIGKILL);
    double end = now_mono() + 15;
    while (!file_has(s->log, "server ready", 0, NULL)) {
        int rc = wait_exit(s->scsynth, 0);
        if (rc >= 0 || now_mono() >= end) {
            char tail[300];
            tail_of(s->log, tail, sizeof tail);
            snprintf(s->why, sizeof s->why, "scsynth %s: %s", rc >= 0 ? "exited" : "not ready",
                     tail);
            if (rc >= 0) s->scsynth = 0;
            return false;
        }
        usleep(10000);
    }
    return true;
}

/* OSC /quit to scsynth: it closes its JACK client (a killed client leaves
 * jackd's shared memory behind). */
static void sc_send_quit(const sc_server *s) {
    static const char quit[8] = "/quit\0\0\0";
    static const char packet[16] = {0, 0, 0, 12, '/', 'q', 'u', 'i', 't', 0, 0, 0, ',', 0, 0, 0};
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)s->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, s->tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (fd < 0) return;
    if (s->tcp) {
        if (connect(fd, (struct sockaddr *)&to, sizeof to) == 0) {
            ssize_t n = send(fd, packet, sizeof packet, MSG_NOSIGNAL);
            (void)n;
        }
    } else {
        char msg[12];
        memcpy(msg, quit, 8);
        memcpy(msg + 8, ",\0\0\0", 4);
        sendto(fd, msg, sizeof msg, 0, (struct sockaddr *)&to, sizeof to);
    }
    close(fd);
}

void sc_server_stop(sc_server *s) {
    if (s->scsynth > 0) sc_send_quit(s);
    if (s->scsynth > 0 && wait_exit(s->scsynth, 3) >= 0) s->scsynth = 0;
    stop_pid(&s->scsynth);
    stop_pid(&s->jackd);
    char shm[64];
    snprintf(shm, sizeof shm, "/dev/shm/SuperColliderServer_%d", s->port);
    unlink(shm); /* scsynth's shared memory, left by a killed server */
    const char *files[] = {"scsynth.log", "jackd.log", NULL};
    if (s->dir[0]) remove_dir(s->dir, files);
    s->dir[0] = '\0';
}

int sc_server_count(const sc_server *s, const char *needle) {
    FILE *f = fopen(s->log, "r");
    if (!f) return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

/* ---- Pure Data ---- */

const char *pd_missing(void) {
    return in_path("pd") ? NULL : "pd is not installed (Debian package puredata-core)";
}

/* [netreceive -u -b -f] gives the packet and the sender's address; [oscparse]
 * -> drop the address -> [oscformat -f ifs echo] -> [netsend -u -b], which
 * the sender's address (from the right outlet, first) connected. */
static const char echo_patch[] = "#N canvas 0 0 600 400 12;\n"
                                 "#X obj 10 10 netreceive -u -b -f %d;\n"
                                 "#X obj 10 40 oscparse;\n"
                                 "#X obj 10 70 list split 1;\n"
                                 "#X obj 10 100 oscformat -f ifs echo;\n"
                                 "#X obj 10 130 list prepend send;\n"
                                 "#X obj 10 160 list trim;\n"
                                 "#X obj 10 190 netsend -u -b;\n"
                                 "#X obj 250 40 list prepend connect;\n"
                                 "#X obj 250 70 list trim;\n"
                                 "#X obj 250 100 print o2hub-from;\n"
                                 "#X obj 400 10 loadbang;\n"
                                 "#X msg 400 40 o2hub-echo-ready;\n"
                                 "#X obj 400 70 print;\n"
                                 "#X obj 150 130 print o2hub-echo-sent;\n"
                                 "#X connect 0 0 1 0;\n"
                                 "#X connect 0 1 7 0;\n"
                                 "#X connect 1 0 2 0;\n"
                                 "#X connect 2 1 3 0;\n"
                                 "#X connect 3 0 4 0;\n"
                                 "#X connect 4 0 5 0;\n"
                                 "#X connect 5 0 6 0;\n"
                                 "#X connect 7 0 8 0;\n"
                                 "#X connect 8 0 6 0;\n"
                                 "#X connect 8 0 9 0;\n"
                                 "#X connect 2 1 13 0;\n"
                                 "#X connect 10 0 11 0;\n"
                                 "#X connect 11 0 12 0;\n";

bool pd_start_echo(pd_process *p) {
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "/tmp/o2hub-pd-XXXXXX");
    if (!mkdtemp(p->dir)) {
        snprintf(p->why, sizeof p->why, "mkdtemp: %s", strerror(errno));
        return false;
    }
    snprintf(p->log, sizeof p->log, "%s/pd.log", p->dir);
    char patch[128];
    snprintf(patch, sizeof patch, "%s/echo.pd", p->dir);
    p->port = free_port(SOCK_DGRAM);
    FILE *f = fopen(patch, "w");
    if (!f) {
        snprintf(p->why, sizeof p->why, "%s: %s", patch, strerror(errno));
        return false;
    }
    fprintf(f, echo_patch, p->port);
    fclose(f);
    char *argv[] = {"pd", "-nogui", "-noaudio", "-nomidi", "-stderr", "-open", patch, NULL};
    p->pid = spawn_logged(argv, p->log, SIGKILL);
    return p->pid > 0;
}

bool pd_wait_line_polling(pd_process *p, o2h_router *r, const char *needle, double limit_s) {
    double end = now_mono() + limit_s;
    for (;;) {
        size_t after;
        if (file_has(p->log, needle, p->seen, &after)) {
            p->seen = after;
            return true;
        }
        if (now_mono() >= end) return false;
        if (r)
            o2h_router_poll(r, 5);
        else
            usleep(5000);
    }
}

bool pd_wait_line(pd_process *p, const char *needle, double limit_s) {
    return pd_wait_line_polling(p, NULL, needle, limit_s);
}

void pd_stop(pd_process *p) {
    stop_pid(&p->pid);
    const char *files[] = {"pd.log", "echo.pd", NULL};
    if (p->dir[0]) remove_dir(p->dir, files);
    p->dir[0] = '\0';
}
