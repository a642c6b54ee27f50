/*
 * What o2hub and o2ctl (and examples/o2lite-imu) take when nothing is said:
 * one rule, so that a hub started with no options and a client started with
 * no options meet in the same ensemble.
 */
#ifndef O2HUB_TOOL_DEFAULTS_H
#define O2HUB_TOOL_DEFAULTS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** The ensemble every example config names. */
#define O2HUB_DEFAULT_ENSEMBLE "demo"

/** $O2HUB_ENSEMBLE when set and not empty, else "demo". */
static inline const char *o2hub_default_ensemble(void) {
    const char *e = getenv("O2HUB_ENSEMBLE");
    return e && *e ? e : O2HUB_DEFAULT_ENSEMBLE;
}

/** Append `dir` to the ':'-separated `*list` (NULL: empty). 0, or 2 out of memory. */
static inline int o2hub_path_append(char **list, const char *dir) {
    size_t old = *list ? strlen(*list) : 0;
    char *p = realloc(*list, old + strlen(dir) + 2);
    if (!p) return 2;
    snprintf(p + old, strlen(dir) + 2, "%s%s", old ? ":" : "", dir);
    *list = p;
    return 0;
}

#endif
