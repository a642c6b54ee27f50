/* Questions a monitor asks a router about itself (see monitor.c). */
#ifndef O2H_MONITOR_H
#define O2H_MONITOR_H

#include "o2hub/o2hub.h"

/** Install /_o2/hub/counts on the "_o2" service. */
int o2h__monitor_init(o2h_router *r);

#endif
