#include "strmap.h"

#include <stdlib.h>
#include <string.h>

/* A unique non-NULL address marks deleted slots. */
static const char tombstone_marker;
#define STRMAP_TOMBSTONE ((char *)(uintptr_t)&tombstone_marker)

void o2h__strmap_init(strmap *m) {
    memset(m, 0, sizeof *m);
}

void o2h__strmap_fini(strmap *m) {
    for (uint32_t i = 0; i < m->capacity; i++) {
        char *k = m->slots[i].key;
        if (k && k != STRMAP_TOMBSTONE) free(k);
    }
    free(m->slots);
    memset(m, 0, sizeof *m);
}

uint64_t o2h__strmap_hash(const char *key, size_t len) {
    /* FNV-1a, 64 bit: short keys (addresses) dominate, and it is branch-free. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static strmap_slot *find_slot(const strmap *m, const char *key, size_t len, uint64_t h) {
    if (m->capacity == 0) return NULL;
    uint32_t mask = m->capacity - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        strmap_slot *s = &m->slots[i];
        if (!s->key) return NULL;
        if (s->key != STRMAP_TOMBSTONE && s->hash == h && s->key_len == len &&
            memcmp(s->key, key, len) == 0)
            return s;
    }
}

void *o2h__strmap_getn(const strmap *m, const char *key, size_t len) {
    strmap_slot *s = find_slot(m, key, len, o2h__strmap_hash(key, len));
    return s ? s->value : NULL;
}

static void insert_fresh(strmap_slot *slots, uint32_t capacity, strmap_slot item) {
    uint32_t mask = capacity - 1;
    uint32_t i = (uint32_t)item.hash & mask;
    while (slots[i].key && slots[i].key != STRMAP_TOMBSTONE)
        i = (i + 1) & mask;
    slots[i] = item;
}

static int grow(strmap *m) {
    uint32_t cap = m->capacity ? m->capacity * 2 : 16;
    /* Rehash in place of growing when tombstones are most of the load. */
    if (m->capacity && m->count < m->capacity / 4) cap = m->capacity;
    strmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (uint32_t i = 0; i < m->capacity; i++) {
        strmap_slot *s = &m->slots[i];
        if (s->key && s->key != STRMAP_TOMBSTONE) insert_fresh(slots, cap, *s);
    }
    free(m->slots);
    m->slots = slots;
    m->capacity = cap;
    m->tombstones = 0;
    return 0;
}

int o2h__strmap_put(strmap *m, const char *key, void *value) {
    size_t len = strlen(key);
    uint64_t h = o2h__strmap_hash(key, len);
    strmap_slot *s = find_slot(m, key, len, h);
    if (s) {
        s->value = value;
        return 0;
    }
    if ((m->count + m->tombstones + 1) * 4 > m->capacity * 3 && grow(m) != 0) return -1;
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, key, len + 1);
    /* Reuse the first tombstone on the probe path, else the empty slot. */
    uint32_t mask = m->capacity - 1;
    uint32_t i = (uint32_t)h & mask;
    while (m->slots[i].key && m->slots[i].key != STRMAP_TOMBSTONE)
        i = (i + 1) & mask;
    if (m->slots[i].key == STRMAP_TOMBSTONE) m->tombstones--;
    m->slots[i] = (strmap_slot){.key = copy, .value = value, .hash = h, .key_len = len};
    m->count++;
    return 0;
}

void *o2h__strmap_remove(strmap *m, const char *key) {
    size_t len = strlen(key);
    strmap_slot *s = find_slot(m, key, len, o2h__strmap_hash(key, len));
    if (!s) return NULL;
    void *v = s->value;
    free(s->key);
    s->key = STRMAP_TOMBSTONE;
    s->value = NULL;
    m->count--;
    m->tombstones++;
    return v;
}

int o2h__strmap_next(const strmap *m, uint32_t *pos, const char **key, void **value) {
    while (*pos < m->capacity) {
        strmap_slot *s = &m->slots[(*pos)++];
        if (s->key && s->key != STRMAP_TOMBSTONE) {
            *key = s->key;
            *value = s->value;
            return 1;
        }
    }
    return 0;
}
