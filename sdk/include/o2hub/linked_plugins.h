/*
 * o2hub/linked_plugins.h — o2hub's own plugins linked into a program rather
 * than loaded as shared objects: a single binary, or a system without dlopen.
 * Link with libo2hub_linked_plugins (pkg-config o2hub-linked-plugins) and
 * hand the entries to the router:
 *
 *     static const o2h_plugin_entry_fn linked[] = O2HUB_LINKED_PLUGINS;
 *     o2h_router_options opts = {.struct_size = sizeof opts, .linked_plugins = linked};
 *     o2h_router *r = o2h_router_new_from_file("router.json", &opts, &err);
 *
 * Configs then name them by type as usual ("tcp", "udp", ...), with no
 * plugin_path. websocket and mqtt, which bring large libraries of their
 * own, stay shared objects; a router can use both kinds at once. dnssd is
 * here when o2hub was built with avahi's dns_sd.h (pkg-config then adds
 * avahi-compat-libdns_sd); without it o2hub_dnssd_entry() returns NULL and
 * "dnssd" is looked for as a shared object.
 * Each is the same source as the shared object, compiled with
 * -DO2H_PLUGIN_ENTRY=o2hub_<type>_entry (see O2H_PLUGIN_ENTRY in plugin.h).
 */
#ifndef O2HUB_LINKED_PLUGINS_H
#define O2HUB_LINKED_PLUGINS_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

const o2h_plugin_desc *o2hub_tcp_entry(void);
const o2h_plugin_desc *o2hub_udp_entry(void);
const o2h_plugin_desc *o2hub_osc_entry(void);
const o2h_plugin_desc *o2hub_shm_entry(void);
const o2h_plugin_desc *o2hub_static_entry(void);
const o2h_plugin_desc *o2hub_broadcast_entry(void);
const o2h_plugin_desc *o2hub_dnssd_entry(void);

/** Every plugin above, NULL-terminated, for o2h_router_options.linked_plugins. */
#define O2HUB_LINKED_PLUGINS                                                                       \
    {                                                                                              \
        o2hub_tcp_entry, o2hub_udp_entry, o2hub_osc_entry, o2hub_shm_entry, o2hub_static_entry,    \
            o2hub_broadcast_entry, o2hub_dnssd_entry, NULL                                         \
    }

#ifdef __cplusplus
}
#endif

#endif
