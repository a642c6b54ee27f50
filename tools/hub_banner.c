/*
 * The banner o2hub prints on stdout once the router runs (the log goes to
 * stderr): read from the config the router was made from, with the process
 * name for the TCP port and address actually used.
 */
#include "hub_banner.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tool_defaults.h"

/* "@pppppppp:iiiiiiii:tttt" -> "a.b.c.d" and the TCP port; false before a name. */
static bool name_address(const char *name, char *ip, size_t size, int *tcp_port) {
    unsigned pub, internal, port;
    if (!name || sscanf(name, "@%8x:%8x:%4x", &pub, &internal, &port) != 3) return false;
    snprintf(ip, size, "%u.%u.%u.%u", internal >> 24, (internal >> 16) & 255, (internal >> 8) & 255,
             internal & 255);
    *tcp_port = (int)port;
    return true;
}

static const char *str(const json_t *obj, const char *key, const char *def) {
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : def;
}

static long num(const json_t *obj, const char *key, long def) {
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

/* The one entry of `list` with this "type", or NULL. */
static const json_t *entry(const json_t *list, const char *type) {
    size_t i;
    const json_t *item;
    json_array_foreach(list, i, item) {
        if (strcmp(str(item, "type", ""), type) == 0) return item;
    }
    return NULL;
}

/* A host to print: the process's own address for "every interface". */
static const char *shown_host(const char *host, const char *own_ip) {
    return strcmp(host, "0.0.0.0") == 0 ? own_ip : host;
}

static void print_o2(FILE *out, const json_t *transports, const json_t *discovery, const char *ip,
                     int tcp_port) {
    const json_t *udp = entry(transports, "udp"), *tcp = entry(transports, "tcp");
    if (!tcp) return;
    char udp_text[32] = "";
    if (udp && num(udp, "port", 0) != 0)
        snprintf(udp_text, sizeof udp_text, ", UDP port %ld", num(udp, "port", 0));
    else if (udp)
        snprintf(udp_text, sizeof udp_text, ", UDP (any port)");
    fprintf(out, "  O2, O2lite     TCP port %d%s at %s%s\n", tcp_port, udp_text, ip,
            strcmp(str(tcp, "host", "0.0.0.0"), "0.0.0.0") == 0 ? " (every interface)" : "");
    char found_by[128] = "";
    size_t i;
    const json_t *d;
    json_array_foreach(discovery, i, d) {
        size_t used = strlen(found_by);
        snprintf(found_by + used, sizeof found_by - used, "%s%s", used ? ", " : "",
                 str(d, "type", "?"));
    }
    fprintf(out, "  discovery      %s\n", found_by[0] ? found_by : "none (give peers by address)");
}

/* The pages (the monitor, examples/www) join "demo" unless told ?ensemble=. */
static void print_websocket(FILE *out, const json_t *ws, const char *ip, const char *ensemble) {
    bool tls = json_object_get(ws, "tls_cert") != NULL;
    const char *host = shown_host(str(ws, "host", "127.0.0.1"), ip);
    long port = num(ws, "port", 8080);
    if (port == 0) {
        fprintf(out, "  web            %s on a port of the system's choice (see the log)\n", host);
        return;
    }
    fprintf(out, "  web            %s://%s:%ld/", tls ? "https" : "http", host, port);
    if (!json_object_get(ws, "root"))
        fprintf(out, " (no pages)");
    else if (strcmp(ensemble, O2HUB_DEFAULT_ENSEMBLE) != 0)
        fprintf(out, "?ensemble=%s", ensemble);
    fprintf(out, "   WebSocket %s://%s:%ld/o2ws\n", tls ? "wss" : "ws", host, port);
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(ws, "mounts"), i, m) {
        fprintf(out, "                 %s://%s:%ld%s  (files of %s)\n", tls ? "https" : "http",
                host, port, str(m, "url", "/"), str(m, "root", ""));
    }
}

static void print_osc(FILE *out, const json_t *osc, const char *ip) {
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(osc, "ports"), i, p) {
        long port = num(p, "port", 0);
        char where[64];
        if (port)
            snprintf(where, sizeof where, "port %ld", port);
        else
            snprintf(where, sizeof where, "a port of the system's choice");
        fprintf(out, "  OSC in         %s %s at %s -> service \"%s\"\n",
                strcmp(str(p, "protocol", "udp"), "tcp") == 0 ? "TCP" : "UDP", where,
                shown_host(str(p, "host", "0.0.0.0"), ip), str(p, "service", "?"));
    }
    json_array_foreach(json_object_get(osc, "delegates"), i, p) {
        fprintf(out, "  OSC out        service \"%s\" -> %s %s\n", str(p, "service", "?"),
                str(p, "protocol", "udp"), str(p, "address", "?"));
    }
}

/* Commands to try, with -e only where o2ctl's default ensemble differs. */
static void print_try(FILE *out, const char *ensemble, const json_t *transports) {
    char e[96] = "";
    if (strcmp(ensemble, o2hub_default_ensemble()) != 0) snprintf(e, sizeof e, " -e %s", ensemble);
    fprintf(out, "  try            o2ctl%s list", e);
    const json_t *osc = entry(transports, "osc");
    const json_t *port = json_array_get(json_object_get(osc, "ports"), 0);
    if (port && num(port, "port", 0) && strcmp(str(port, "protocol", "udp"), "udp") == 0) {
        const char *service = str(port, "service", "?");
        fprintf(out, "\n                 o2ctl%s dump %s   and   oscsend localhost %ld /hello i 1",
                e, service, num(port, "port", 0));
    }
    fprintf(out, "\n");
}

void o2hub_print_banner(o2h_router *r, FILE *out) {
    const char *ensemble = o2h_router_ensemble(r);
    const char *name = o2h_router_process_name(r);
    fprintf(out, "o2hub is running: ensemble \"%s\", process %s\n", ensemble, name ? name : "_o2");
    char *text = o2h_router_config_text(r);
    json_t *cfg = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (cfg) {
        const json_t *transports = json_object_get(cfg, "transports");
        char ip[16] = "127.0.0.1";
        int tcp_port = 0;
        if (name_address(name, ip, sizeof ip, &tcp_port))
            print_o2(out, transports, json_object_get(cfg, "discovery"), ip, tcp_port);
        const json_t *ws = entry(transports, "websocket");
        if (ws) print_websocket(out, ws, ip, ensemble);
        const json_t *osc = entry(transports, "osc");
        if (osc) print_osc(out, osc, ip);
        if (entry(transports, "tcp")) print_try(out, ensemble, transports);
        json_decref(cfg);
    }
    fflush(out);
}
