/*
 * The linked-in dnssd entry of a build without avahi's dns_sd.h: it returns
 * NULL, which the loader takes as "not linked in", so a config naming
 * "dnssd" looks for a shared object as it would with no entry at all.
 */
#include <o2hub/plugin.h>

const o2h_plugin_desc *o2hub_dnssd_entry(void);
const o2h_plugin_desc *o2hub_dnssd_entry(void) {
    return NULL;
}
