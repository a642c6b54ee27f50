/* The classic O2 API: time, clock and scheduling. */
#include "o2compat_internal.h"

O2err o2_clock_set(o2_time_callback gettime, void *rock) {
    (void)rock;
    NEED_ROUTER();
    if (gettime && !o2c__the->warned_clock_callback) {
        o2c__log("o2_clock_set: custom clock callbacks are not supported; "
                 "using the router's monotonic clock");
        o2c__the->warned_clock_callback = true;
    }
    return o2h_clock_set(o2c__the->r) == O2H_OK ? O2_SUCCESS : O2_FAIL;
}

O2err o2_time_jump_callback_set(o2_time_jump_callback callback) {
    (void)callback; /* o2hub slews and jumps its clock itself and calls nobody */
    return O2_SUCCESS;
}

O2err o2_clock_jump(double local_time, double global_time, bool adjust) {
    (void)local_time;
    (void)global_time;
    (void)adjust;
    return O2_FAIL;
}

int o2_roundtrip(double *mean, double *min) {
    if (!o2c__the || !o2c__the->r) {
        if (mean) *mean = -1;
        if (min) *min = -1;
        return O2_NOT_INITIALIZED;
    }
    return o2h_clock_roundtrip(o2c__the->r, mean, min) == O2H_OK ? O2_SUCCESS : O2_FAIL;
}

O2time o2_native_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

O2time o2_time_get(void) {
    return o2c__the && o2c__the->r ? o2h_time_get(o2c__the->r) : -1;
}

O2time o2_local_time(void) {
    return o2c__the && o2c__the->r ? o2h_local_time(o2c__the->r) : o2_native_time();
}

O2err o2_schedule_msg(O2sched_ptr scheduler, O2message_ptr msg) {
    if (!msg) return O2_BAD_ARGS;
    if (!o2c__the || !o2c__the->r) {
        free(msg);
        return O2_NOT_INITIALIZED;
    }
    if (!scheduler || scheduler->which == 0) return o2_message_send(msg); /* the core schedules */
    O2message_ptr *pp = &o2c__the->lt_head; /* local time: kept here, sent by o2_poll */
    while (*pp && (*pp)->data.timestamp <= msg->data.timestamp)
        pp = &(*pp)->next;
    msg->next = *pp;
    *pp = msg;
    return O2_SUCCESS;
}

O2err o2_sched_flush(void) {
    while (o2c__the && o2c__the->lt_head) {
        O2message_ptr m = o2c__the->lt_head;
        o2c__the->lt_head = m->next;
        free(m);
    }
    return O2_SUCCESS;
}
