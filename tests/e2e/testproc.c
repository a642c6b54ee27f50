/* Helpers for process-level tests (see testproc.h). */
#include "testproc.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <o2hub/o2hub.h>

#include "proc_util.h"

char tmpdir[64];

double now_s(void) {
    return pu_now();
}

/* A port that is free for TCP and UDP now (the kernel picks it). */
int free_port(void) {
    return pu_free_port();
}

/* In the child, before exec: the namespaces `p` asks for. */
static int enter_namespaces(const proc *p) {
    if (p->netns && (unshare(CLONE_NEWNET) != 0 || loopback_up() != 0)) return -1;
    if (p->resolv &&
        (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
         mount(p->resolv, "/etc/resolv.conf", NULL, MS_BIND, NULL) != 0))
        return -1;
    return 0;
}

void start(proc *p) {
    int in[2], out[2];
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    p->pid = fork();
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        if (enter_namespaces(p) != 0) _exit(126);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(in[1]);
        close(out[0]);
        execl(p->exe ? p->exe : PEER_EXE, "peer", p->config, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->in = fdopen(in[1], "w");
    p->out_fd = out[0];
    p->used = p->seen = 0;
    p->out[0] = '\0';
}

void tell(proc *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->in, fmt, ap);
    va_end(ap);
    fputc('\n', p->in);
    fflush(p->in);
}

/* Wait (bounded) for a line containing `needle` after what was already matched. */
const char *expect(proc *p, const char *needle, double limit_s) {
    double end = now_s() + limit_s;
    for (;;) {
        const char *at = strstr(p->out + p->seen, needle);
        if (at) {
            const char *eol = strchr(at, '\n');
            p->seen = (size_t)((eol ? eol + 1 : at + strlen(at)) - p->out);
            return at;
        }
        double left = end - now_s();
        if (left <= 0) return NULL;
        if (p->used > sizeof p->out * 3 / 4) { /* long outputs: forget what was matched */
            size_t drop = p->seen ? p->seen : p->used / 2;
            memmove(p->out, p->out + drop, p->used - drop + 1);
            p->used -= drop;
            p->seen = 0;
        }
        int ms = (int)(left * 1000) + 1;
        struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
        if (!(p->wait ? p->wait(p->out_fd, ms) : poll(&pfd, 1, ms) > 0)) continue;
        ssize_t n = read(p->out_fd, p->out + p->used, sizeof p->out - 1 - p->used);
        if (n <= 0) return NULL;
        p->used += (size_t)n;
        p->out[p->used] = '\0';
    }
}

void must(proc *p, const char *needle, double limit_s) {
    cr_assert_not_null(expect(p, needle, limit_s), "no \"%s\" from %s; output:\n%s", needle,
                       p->config, p->out);
}

void stop(proc *p, int sig) {
    if (p->pid <= 0) return;
    kill(p->pid, sig);
    int status;
    waitpid(p->pid, &status, 0);
    fclose(p->in);
    close(p->out_fd);
    p->pid = 0;
}

void process_name(proc *p, char *name, size_t size) {
    tell(p, "name");
    const char *at = expect(p, "name @", 5);
    cr_assert_not_null(at);
    sscanf(at, "name %31s", p->name);
    if (name != p->name) snprintf(name, size, "%s", p->name);
}

void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/o2hub-proc-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    (void)!system(cmd);
}

int tcp_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

void udp_to(int port, const void *data, size_t len) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    sendto(fd, data, len, 0, (struct sockaddr *)&a, sizeof a);
    close(fd);
}

void send_frame(int fd, const void *data, uint32_t len, uint32_t claimed) {
    uint8_t hdr[4];
    o2h_wr_u32(hdr, claimed);
    (void)!write(fd, hdr, 4);
    (void)!write(fd, data, len);
}

long stat_field(proc *p, const char *field) {
    tell(p, "stats");
    const char *at = expect(p, "stats delivered", 5);
    cr_assert_not_null(at);
    const char *f = strstr(at, field);
    cr_assert_not_null(f);
    return atol(f + strlen(field) + 1);
}

/* A config with tcp+udp on `port` and the discovery entry `discovery` (JSON). */
void write_config_with(proc *p, const char *name, int port, const char *discovery,
                       const char *extra, const char *top) {
    snprintf(p->config, sizeof p->config, "%s/%s.json", tmpdir, name);
    FILE *f = fopen(p->config, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"ensemble\": \"e2e\", \"plugin_path\": [\"%s\", \"%s\"],\n"
            " \"transports\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", \"port\": %d%s},\n"
            "                {\"type\": \"udp\", \"host\": \"127.0.0.1\", \"port\": %d}],\n"
            " \"discovery\": [%s]%s}\n",
            TRANSPORT_DIR, DISCOVERY_DIR, port, extra ? extra : "", port, discovery,
            top ? top : "");
    fclose(f);
    p->port = port;
}

/* Static discovery of `peers` (ended by -1). */
void write_config(proc *p, const char *name, int port, const int *peers, const char *extra) {
    char list[256] = "", discovery[400];
    for (int i = 0; peers[i] > 0; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"127.0.0.1:%d\"",
                 i ? ", " : "", peers[i]);
    snprintf(discovery, sizeof discovery,
             "{\"type\": \"static\", \"peers\": [%s], \"interval_max\": 1.0}", list);
    write_config_with(p, name, port, discovery, extra, NULL);
}
