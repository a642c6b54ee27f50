/* o2ctl's options: the help, the command line and the environment. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <o2hub/linked_plugins.h>

#include "o2ctl.h"
#include "tool_defaults.h"

void o2ctl_usage(FILE *out) {
    fprintf(out,
            "usage: o2ctl [OPTIONS] COMMAND [ARGS...]\n"
            "\n"
            "Commands:\n"
            "  send ADDRESS [TYPES [ARGS...]]  send one message (reliable unless --udp)\n"
            "  dump SERVICE                    offer SERVICE and print every message to it\n"
            "  tap SERVICE                     tap SERVICE and print the copies\n"
            "  list                            services: status, process, properties; taps\n"
            "  time                            the ensemble's (synchronised) time\n"
            "\n"
            "Options:\n"
            "  -e, --ensemble NAME   ensemble to join (default $O2HUB_ENSEMBLE, else "
            "\"" O2HUB_DEFAULT_ENSEMBLE "\")\n"
            "  -p, --peer HOST:PORT  find processes through this one, HOST a name or an IPv4\n"
            "                        address, PORT its UDP port (static discovery; repeatable;\n"
            "                        default $O2HUB_PEERS, comma-separated)\n"
            "  -D, --discovery LIST  dnssd, broadcast, static, none, comma-separated (default\n"
            "                        $O2HUB_DISCOVERY, else dnssd,broadcast, or static alone\n"
            "                        with --peer, none with --hub); dnssd is ZeroConf where\n"
            "                        avahi-daemon runs\n"
            "      --hub HOST:PORT   find every process this one knows (O2's hub discovery;\n"
            "                        HOST its IPv4 address, PORT its TCP port)\n"
            "  -H, --host ADDR       address to bind (default $O2HUB_HOST, else 0.0.0.0)\n"
            "  -P, --port N          our TCP and UDP port (default $O2HUB_PORT, else any)\n"
            "  -u, --udp             send: best effort instead of reliable\n"
            "  -t, --time T          send: timestamp T (O2 time), or +D for D seconds from now\n"
            "  -w, --wait S          list: discovery window (default 1 s); other commands: the\n"
            "                        longest wait for the service or clock (default 5 s)\n"
            "  -U, --until SERVICE   list: stop waiting as soon as SERVICE is known\n"
            "  -n, --count N         dump, tap: exit after N messages\n"
            "  -d, --duration S      dump, tap: exit after S seconds\n"
            "  -j, --json            JSON output (one object per line for dump and tap)\n"
            "  -a, --all             list: also the internal services (_o2, _cs, @process)\n"
            "  -l, --log-level L     error, warn, info or debug (default warn)\n"
            "  -L, --plugin-dir DIR  search DIR for plugins that are not linked in (repeatable)\n"
            "  -h, --help, -V, --version\n"
            "\n"
            "Types for send: i h f d t s S c m B T F N I [ ] and b (hex bytes); T F N I [ ]\n"
            "take no argument. Exit status: 0 ok, 1 failure (nothing found, no clock, send\n"
            "failed), 2 bad usage.\n");
}

static int parse_level(const char *text) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(text, names[i]) == 0) return i;
    return -1;
}

bool o2ctl_has_word(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, word, n) == 0) return true;
        p += k + (p[k] == ',');
    }
    return false;
}

const char *o2ctl_discovery_list(const options *o) {
    if (o->discovery) return o->discovery;
    return o->n_peers ? "static" : o->hub ? "none" : "dnssd,broadcast";
}

static bool valid_discovery(const char *list) {
    static const char *const words[] = {"dnssd", "broadcast", "static", "none"};
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        bool known = false;
        for (int i = 0; i < 4; i++)
            known = known || (strlen(words[i]) == k && strncmp(p, words[i], k) == 0);
        if (!known) {
            fprintf(stderr,
                    "o2ctl: unknown discovery \"%.*s\" in \"%s\" (dnssd, broadcast, "
                    "static, none)\n",
                    (int)k, p, list);
            return false;
        }
        p += k + (p[k] == ',');
    }
    return true;
}

static bool parse_port(const char *text, int *port) {
    char *end;
    long p = strtol(text, &end, 10);
    if (!*text || *end || p < 0 || p > 65535) {
        fprintf(stderr, "o2ctl: \"%s\" is not a port (0..65535)\n", text);
        return false;
    }
    *port = (int)p;
    return true;
}

/* The environment's defaults, as the O2 API reads them (sdk/include/o2hub/o2.h). */
int o2ctl_read_environment(options *o) {
    o->ensemble = o2hub_default_ensemble();
    const char *host = getenv("O2HUB_HOST");
    o->host = host && *host ? host : "0.0.0.0";
    const char *port = getenv("O2HUB_PORT");
    if (port && *port && !parse_port(port, &o->port)) return 2;
    const char *disc = getenv("O2HUB_DISCOVERY");
    if (disc && *disc) {
        if (!valid_discovery(disc)) return 2;
        o->discovery = disc;
    }
    const char *peers = getenv("O2HUB_PEERS");
    if (peers && *peers && (o->env_peers = strdup(peers))) {
        char *save = NULL;
        for (char *p = strtok_r(o->env_peers, ",", &save); p && o->n_peers < MAX_PEERS;
             p = strtok_r(NULL, ",", &save))
            o->peers[o->n_peers++] = p;
    }
    return 0;
}

int o2ctl_parse_args(int argc, char **argv, options *o, bool permute) {
    enum { OPT_HUB = 1000 };
    static const struct option longs[] = {{"ensemble", required_argument, NULL, 'e'},
                                          {"peer", required_argument, NULL, 'p'},
                                          {"discovery", required_argument, NULL, 'D'},
                                          {"host", required_argument, NULL, 'H'},
                                          {"port", required_argument, NULL, 'P'},
                                          {"udp", no_argument, NULL, 'u'},
                                          {"time", required_argument, NULL, 't'},
                                          {"wait", required_argument, NULL, 'w'},
                                          {"until", required_argument, NULL, 'U'},
                                          {"count", required_argument, NULL, 'n'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"all", no_argument, NULL, 'a'},
                                          {"log-level", required_argument, NULL, 'l'},
                                          {"plugin-dir", required_argument, NULL, 'L'},
                                          {"hub", required_argument, NULL, OPT_HUB},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    int c;
    /* "+": options end at the first other word, so send's arguments may start with '-'. */
    const char *optstring =
        permute ? "e:p:D:H:P:ut:w:U:n:d:jal:L:hV" : "+e:p:D:H:P:ut:w:U:n:d:jal:L:hV";
    optind = 0; /* glibc: start over (this runs twice) */
    while ((c = getopt_long(argc, argv, optstring, longs, NULL)) != -1) {
        switch (c) {
        case 'e': o->ensemble = optarg; break;
        case 'p':
            if (o->env_peers) { /* --peer replaces $O2HUB_PEERS */
                o->n_peers = 0;
                free(o->env_peers);
                o->env_peers = NULL;
            }
            if (o->n_peers == MAX_PEERS) {
                fprintf(stderr, "o2ctl: at most %d --peer options\n", MAX_PEERS);
                return 2;
            }
            o->peers[o->n_peers++] = optarg;
            break;
        case 'D':
            if (!valid_discovery(optarg)) return 2;
            o->discovery = optarg;
            break;
        case 'H': o->host = optarg; break;
        case OPT_HUB: o->hub = optarg; break;
        case 'P':
            if (!parse_port(optarg, &o->port)) return 2;
            break;
        case 'u': o->udp = true; break;
        case 't': o->time = optarg; break;
        case 'w': o->wait = atof(optarg); break;
        case 'U': o->until = optarg; break;
        case 'n': o->count = atol(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 'j': o->json = true; break;
        case 'a': o->all = true; break;
        case 'l':
            o->log_level = parse_level(optarg);
            if (o->log_level < 0) {
                fprintf(stderr, "o2ctl: unknown log level \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'L':
            if (o2hub_path_append(&o->plugin_path, optarg)) return 2;
            break;
        case 'h': o2ctl_usage(stdout); exit(0);
        case 'V':
            printf("o2ctl %s (plugins linked in: tcp, udp, osc, shm, static, broadcast%s)\n",
                   o2h_version_string(), o2hub_dnssd_entry() ? ", dnssd" : "");
            exit(0);
        default: o2ctl_usage(stderr); return 2;
        }
    }
    return 0;
}
