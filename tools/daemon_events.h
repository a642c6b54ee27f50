/*
 * The o2hub daemon's own log lines, with structured fields for JSON: the
 * stop line with every counter, and SIGHUP's reload, one line per changed
 * key (docs/operations.md).
 */
#ifndef O2HUB_DAEMON_EVENTS_H
#define O2HUB_DAEMON_EVENTS_H

#include <o2hub/o2hub.h>

#include "daemon_log.h"

/** "stopped; delivered N, ...": every counter, so that no drop is hidden. */
void daemon_log_stop_line(daemon_log *log, const o2h_router *r);

/** Read `path` again into `r` and log what changed, or why the file was refused. */
void daemon_reload(daemon_log *log, o2h_router *r, const char *path);

#endif
