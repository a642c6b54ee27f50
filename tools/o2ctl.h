/*
 * o2ctl's parts: its options (o2ctl_options.c) and the conversions between
 * command-line text, JSON and O2 values (o2ctl_values.c).
 */
#ifndef O2HUB_O2CTL_H
#define O2HUB_O2CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include <o2hub/o2hub.h>

#define MAX_PEERS 16

typedef struct options {
    const char *ensemble;
    const char *peers[MAX_PEERS];
    int n_peers;
    char *env_peers;       /* $O2HUB_PEERS, split in place into peers[] */
    const char *discovery; /* "dnssd,broadcast,static,none" words; NULL: the default */
    const char *hub;       /* --hub: find processes through this one as O2's o2_hub does */
    char *plugin_path;     /* the --plugin-dir folders, then $O2HUB_PLUGIN_PATH */
    const char *host;
    int port;
    bool udp;
    const char *time; /* as given: "T" or "+D" */
    double wait;      /* < 0: the command's default */
    const char *until;
    long count;
    double duration;
    bool json;
    bool all;
    int log_level;
} options;

/** Print the help to `out`. */
void o2ctl_usage(FILE *out);

/** Defaults from the environment, as the O2 API reads them; 2 on a bad value. */
int o2ctl_read_environment(options *o);

/**
 * Parse options into `o` (before the command; again after it, `permute` for
 * every command but send, whose arguments may start with '-'). 0, or 2 for
 * bad usage. --help and --version print and exit.
 */
int o2ctl_parse_args(int argc, char **argv, options *o, bool permute);

/** Whether comma list `list` has `word`. */
bool o2ctl_has_word(const char *list, const char *word);

/** The discovery words in effect: --discovery, else $O2HUB_DISCOVERY, else the default. */
const char *o2ctl_discovery_list(const options *o);

/** A message's arguments as JSON values ('[' ... ']' nested, vectors as arrays). */
json_t *o2ctl_args_json(const o2h_msg *msg);

/** Add args[] to the builder as `types` says; false (with a message) on a mistake. */
bool o2ctl_add_args(o2h_builder *b, const char *types, char **args, int n_args);

/** O2's "a:v;b:w;" (escaped) as {"a": "v", "b": "w"}. */
json_t *o2ctl_properties_json(const char *props);

#endif
