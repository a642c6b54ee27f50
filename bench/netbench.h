/* Shared parts of the network benchmarks (see netbench.c). */
#ifndef O2H_NETBENCH_H
#define O2H_NETBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <o2hub/o2hub.h>

double nb_now(void);
int nb_free_port(void);

/** A started router with tcp+udp on `port` and static discovery of `peer_port`. */
o2h_router *nb_router(int port, int peer_port);

/** Poll until `service` is known (status >= 0) or `limit_s` passes. */
bool nb_wait_service(o2h_router *r, const char *service, double limit_s);

int nb_tcp_listen(int *port);
int nb_tcp_connect(int port);
int nb_udp_bind(int *port);
bool nb_read_full(int fd, void *buf, size_t len);

/** CPU time of process `pid` in seconds (/proc/PID/schedstat, else stat), or -1. */
double nb_proc_cpu_s(pid_t pid);

/** Seconds process `pid` has waited on a run queue, runnable but not running
 * (/proc/PID/schedstat), or -1. */
double nb_proc_wait_s(pid_t pid);

/** The first CPU this process may use in `*first`, and the next in `*second`
 * (the same as `*first` when `one_cpu` or when only one is allowed); both stay
 * -1 when the affinity cannot be read. */
void nb_choose_cpus(bool one_cpu, int *first, int *second);

/** Pin the calling process to `cpu`; a negative `cpu` leaves it unpinned. */
void nb_pin_to(int cpu);

/** VmRSS of process `pid` in KB, or -1. */
long nb_proc_rss_kb(pid_t pid);

/** The q-quantile (0..1) of `values` (sorts them). */
double nb_percentile(double *values, int n, double q);

#endif
