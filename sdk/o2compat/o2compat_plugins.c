/* The classic O2 API: OSC, WebSocket/HTTP, MQTT and DNS-SD through o2hub's plugins. */
#include "o2compat_internal.h"

/*
 * These load a plugin with o2h_router_add_plugin and a JSON object, with the
 * keys of docs/configuration.md (the "type" key is given to the core
 * separately, not in the JSON):
 *   osc (transports):       {"delegates": [{"service": S, "address": "HOST:PORT",
 *                                           "protocol": "udp"|"tcp"}]}
 *                           {"ports": [{"port": P, "protocol": "udp"|"tcp", "service": S}]}
 *   websocket (transports): {"port": P, "root": DIR}
 *   mqtt (transports):      {"broker": "HOST:PORT"}
 *   dnssd (discovery):      {}
 */

static O2err load_feature(const char *what, const char *kind, const char *type, const char *json) {
    NEED_ROUTER();
    o2h_error err;
    int rc = o2h_router_add_plugin(o2c__the->r, kind, type, json, &err);
    if (rc == O2H_OK) return O2_SUCCESS;
    if (rc == O2H_PLUGIN_NOT_FOUND) {
        o2c__log("%s needs the \"%s\" plugin (o2hub_%s.so), which was not found in "
                 "$O2HUB_PLUGIN_PATH or the install dir",
                 what, type, type);
    } else {
        char line[1024];
        o2c__log("%s: %s", what, o2h_error_format(&err, line, sizeof line));
    }
    return rc == O2H_SERVICE_EXISTS ? O2_SERVICE_EXISTS : O2_FAIL;
}

O2err o2lite_initialize(void) {
    NEED_ROUTER();
    return O2_SUCCESS; /* the core always hosts O2lite clients on its TCP/UDP ports */
}

O2err o2_osc_port_new(const char *service_name, int port_num, bool tcp_flag) {
    if (!service_name || port_num <= 0 || port_num > 65535) return O2_BAD_ARGS;
    char json[512] = "{\"ports\": [{\"port\": ";
    snprintf(json + strlen(json), sizeof json - strlen(json),
             "%d, \"protocol\": \"%s\", \"service\": ", port_num, tcp_flag ? "tcp" : "udp");
    o2c__append_json_string(json, sizeof json, service_name);
    strncat(json, "}]}", sizeof json - strlen(json) - 1);
    return load_feature("o2_osc_port_new", "transports", "osc", json);
}

O2err o2_osc_port_free(int port_num) {
    o2c__log("o2_osc_port_free(%d): not supported (o2hub cannot unload one plugin instance)",
             port_num);
    return O2_FAIL;
}

O2err o2_osc_delegate(const char *service_name, const char *ip, int port_num, bool tcp_flag) {
    if (!service_name || port_num <= 0 || port_num > 65535) return O2_BAD_ARGS;
    char address[300];
    snprintf(address, sizeof address, "%s:%d",
             !ip || !*ip || strcmp(ip, "localhost") == 0 ? "127.0.0.1" : ip, port_num);
    char json[768] = "{\"delegates\": [{\"service\": ";
    o2c__append_json_string(json, sizeof json, service_name);
    strncat(json, ", \"address\": ", sizeof json - strlen(json) - 1);
    o2c__append_json_string(json, sizeof json, address);
    snprintf(json + strlen(json), sizeof json - strlen(json), ", \"protocol\": \"%s\"}]}",
             tcp_flag ? "tcp" : "udp");
    return load_feature("o2_osc_delegate", "transports", "osc", json);
}

uint64_t o2_osc_time_offset(uint64_t offset) {
    o2c_context *c = o2c__ctx();
    uint64_t old = c->osc_time_offset;
    if (offset) c->osc_time_offset = offset;
    return old;
}

O2err o2_http_initialize(int port, const char *root) {
    if (port <= 0 || port > 65535) return O2_BAD_ARGS;
    char json[1200];
    snprintf(json, sizeof json, "{\"port\": %d, \"root\": ", port);
    o2c__append_json_string(json, sizeof json, root ? root : "www");
    strncat(json, "}", sizeof json - strlen(json) - 1);
    return load_feature("o2_http_initialize", "transports", "websocket", json);
}

O2err o2_mqtt_enable(const char *broker, int port_num) {
    /* The mqtt transport takes one "broker": "host:port" (1883 when no port). */
    char address[300];
    if (port_num > 0)
        snprintf(address, sizeof address, "%s:%d", broker && *broker ? broker : "127.0.0.1",
                 port_num);
    else
        snprintf(address, sizeof address, "%s", broker && *broker ? broker : "");
    char json[512] = "{";
    if (address[0]) {
        strncat(json, "\"broker\": ", sizeof json - strlen(json) - 1);
        o2c__append_json_string(json, sizeof json, address);
    }
    strncat(json, "}", sizeof json - strlen(json) - 1);
    return load_feature("o2_mqtt_enable", "transports", "mqtt", json);
}

O2err o2_mqtt_can_send(void) {
    NEED_ROUTER();
    return O2_SUCCESS;
}
