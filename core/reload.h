/*
 * Reading the config file again while the router runs (o2h_router_reload_file):
 * what changes live and what needs a restart (docs/operations.md has the table).
 */
#ifndef O2H_RELOAD_H
#define O2H_RELOAD_H

/** The services a config offers, router-owned copies (names and O2 property strings). */
typedef struct config_service_set {
    char **names;
    char **props; /* NULL entries: no properties */
    int n;
} config_service_set;

struct router_config;

/** Remember the services a config offered at creation. 0, or -1 out of memory. */
int o2h__reload_offered_init(config_service_set *set, const struct router_config *rc);

void o2h__reload_offered_fini(config_service_set *set);

#endif
