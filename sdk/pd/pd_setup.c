/*
 * pd_setup.c — the library's entry points. One binary, o2hub.pd_linux,
 * holds every class; Pd finds it as o2hub (-lib o2hub, [declare -lib
 * o2hub]) or under the name of any of its objects (the install folder has
 * o2ensemble.pd_linux and the others as links to it, so patches made for
 * O2's external load unchanged). Whichever entry Pd calls first sets up all.
 */
#include <m_pd.h>

#include "pd_objects.h"

static bool set_up; /* classes are per process, as every Pd external's are */

#define EXPORT __attribute__((visibility("default")))

EXPORT void o2hub_setup(void);

void o2hub_setup(void) {
    if (set_up) return;
    set_up = true;
    o2pd_ensemble_setup();
    o2pd_receive_setup();
    o2pd_send_setup();
    o2pd_property_setup();
    o2pd_extras_setup();
    post("o2hub %s: o2ensemble o2receive o2send o2property o2.status o2.tap o2.time",
         o2h_version_string());
}

/* Entries under each object's own name (Pd 0.53: "name_setup", or "setup_" with
 * '.' written 0x2e for the dotted names). */
#define ENTRY(fn)                                                                                  \
    EXPORT void fn(void);                                                                          \
    void fn(void) {                                                                                \
        o2hub_setup();                                                                             \
    }
ENTRY(o2ensemble_setup)
ENTRY(o2receive_setup)
ENTRY(o2send_setup)
ENTRY(o2property_setup)
ENTRY(setup_o20x2eensemble)
ENTRY(setup_o20x2ereceive)
ENTRY(setup_o20x2esend)
ENTRY(setup_o20x2eproperty)
ENTRY(setup_o20x2estatus)
ENTRY(setup_o20x2etap)
ENTRY(setup_o20x2etime)
