/* Broker name lookups on a thread of their own (mqtt_lookup.h). */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mqtt_lookup.h"

struct mqtt_lookup {
    atomic_int refs; /* the owner and the thread */
    atomic_bool done;
    int efd;
    int gai_error; /* written by the thread before `done` */
    char addr[INET6_ADDRSTRLEN];
    char host[];
};

bool o2h_mqtt_host_is_numeric(const char *host) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void release(mqtt_lookup *l) {
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1) return;
    close(l->efd);
    free(l);
}

static void *run(void *arg) {
    mqtt_lookup *l = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found = NULL;
    l->gai_error = getaddrinfo(l->host, NULL, &hints, &found);
    if (l->gai_error == 0 && getnameinfo(found->ai_addr, found->ai_addrlen, l->addr, sizeof l->addr,
                                         NULL, 0, NI_NUMERICHOST) != 0)
        l->gai_error = EAI_FAIL;
    if (found) freeaddrinfo(found);
    atomic_store_explicit(&l->done, true, memory_order_release);
    uint64_t one = 1;
    (void)!write(l->efd, &one, sizeof one); /* the fd lives as long as a reference does */
    release(l);
    return NULL;
}

mqtt_lookup *o2h_mqtt_lookup_start(const char *host) {
    size_t n = strlen(host) + 1;
    mqtt_lookup *l = calloc(1, sizeof *l + n);
    if (!l) return NULL;
    memcpy(l->host, host, n);
    l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->efd < 0) {
        free(l);
        return NULL;
    }
    atomic_init(&l->refs, 2);
    atomic_init(&l->done, false);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, run, l);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(l->efd);
        free(l);
        return NULL;
    }
    return l;
}

int o2h_mqtt_lookup_fd(const mqtt_lookup *l) {
    return l->efd;
}

bool o2h_mqtt_lookup_result(mqtt_lookup *l, char *addr, size_t addr_size, const char **why) {
    if (!atomic_load_explicit(&l->done, memory_order_acquire)) {
        *why = "pending";
        return false;
    }
    if (l->gai_error != 0) {
        *why = gai_strerror(l->gai_error);
        return false;
    }
    snprintf(addr, addr_size, "%s", l->addr);
    return true;
}

void o2h_mqtt_lookup_abandon(mqtt_lookup *l) {
    if (l) release(l);
}
