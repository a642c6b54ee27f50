/* The host side of O2lite over the TCP and UDP transports. */
#ifndef O2H_O2LITE_HOST_H
#define O2H_O2LITE_HOST_H

#include "o2hub/o2hub.h"

/** Install the !_o2/o2lite/... handlers on the "_o2" service. */
int o2h__o2lite_host_init(o2h_router *r);

#endif
