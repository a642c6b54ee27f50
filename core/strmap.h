/*
 * A string-keyed hash map (open addressing, linear probing, tombstones),
 * used for the service table and each service's method table. Keys are
 * copied; values are opaque pointers.
 */
#ifndef O2H_STRMAP_H
#define O2H_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap_slot {
    char *key; /* NULL: empty; STRMAP_TOMBSTONE: deleted */
    void *value;
    uint64_t hash;
    size_t key_len;
} strmap_slot;

typedef struct strmap {
    strmap_slot *slots;
    uint32_t capacity; /* power of two, or 0 */
    uint32_t count;
    uint32_t tombstones;
} strmap;

void o2h__strmap_init(strmap *m);

/** Free the keys and the table (values are the caller's). */
void o2h__strmap_fini(strmap *m);

uint64_t o2h__strmap_hash(const char *key, size_t len);

/** Look up `len` bytes at `key` (need not be NUL-terminated). */
void *o2h__strmap_getn(const strmap *m, const char *key, size_t len);

static inline void *strmap_get(const strmap *m, const char *key);

/** Insert or replace. Returns 0, or -1 when out of memory. */
int o2h__strmap_put(strmap *m, const char *key, void *value);

/** Remove and return the value (NULL if absent). */
void *o2h__strmap_remove(strmap *m, const char *key);

/**
 * Iterate: start with *pos = 0; returns 1 and sets key/value for each entry,
 * 0 at the end. Do not insert while iterating (removing is fine).
 */
int o2h__strmap_next(const strmap *m, uint32_t *pos, const char **key, void **value);

#include <string.h>
static inline void *strmap_get(const strmap *m, const char *key) {
    return o2h__strmap_getn(m, key, strlen(key));
}

#endif
