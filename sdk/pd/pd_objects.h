/*
 * pd_objects.h — what the Pd classes of the o2hub library share: the
 * session of this Pd instance (found through a symbol, so each Pd instance
 * has its own) and small helpers for atoms.
 */
#ifndef O2HUB_PD_OBJECTS_H
#define O2HUB_PD_OBJECTS_H

#include <m_pd.h>

#include "binding.h"

#define O2PD_MAX_TAPS 32

typedef struct o2pd_tap o2pd_tap;

/** One per Pd instance, bound to the symbol "#o2hub-session". */
typedef struct o2pd_session {
    t_pd pd;
    o2hb_session *hb;
    t_clock *kick; /* polls the router once more after Pd sent something */
    int fd;        /* the router's fd while registered with sys_addpollfn, else -1 */
    int refs;      /* objects using the session */
    bool polling;  /* inside the router's poll: a release to 0 waits for its end */
    void *active;  /* the o2ensemble that joined, NULL: none */
    /* Pd's logical time runs behind real time, by more when Pd is late (a
     * loaded machine): the least (real - logical) in ms, over this window
     * and the one before (see o2pd_session_time) */
    double lag_min[2];
    double lag_window_end; /* real time (ms) when lag_min[1] starts afresh */
    t_clock *lag_sample;   /* samples the lag every LAG_SAMPLE_MS */
    o2pd_tap *taps[O2PD_MAX_TAPS];
} o2pd_session;

/** The session of this Pd instance, made on first use; counts a reference. */
o2pd_session *o2pd_session_acquire(void);
void o2pd_session_release(o2pd_session *s);
/** After a join or leave: (un)register the router's fd with Pd's loop. */
void o2pd_session_watch(o2pd_session *s);
/** Poll the router on the next clock tick (after a send). */
void o2pd_session_kick(o2pd_session *s);
/** Called by o2pd_session_watch after a join: taps are made again. */
void o2pd_taps_rejoin(o2pd_session *s);

/** O2 time (s) at Pd's current logical time, -1 with no clock. */
double o2pd_session_time(o2pd_session *s);
/** Logical ms from now until O2 time `o2time` (s); <= 0 when due (or no clock). */
double o2pd_session_wait_ms(o2pd_session *s, double o2time);

/** "/a/b/c" from atoms: one "/a/b" symbol, or nodes "a" "b" 3. */
int o2pd_path_from_atoms(int argc, const t_atom *argv, char *buf, size_t size);
/** Atoms to values (symbols point at Pd's symbol names). */
void o2pd_values_from_atoms(int argc, const t_atom *argv, o2hb_value *out);

void o2pd_ensemble_setup(void);
void o2pd_receive_setup(void);
void o2pd_send_setup(void);
void o2pd_property_setup(void);
void o2pd_extras_setup(void);

#endif
