/* Rules for names: ensembles, services, addresses (O2's limits). */
#ifndef O2H_NAMES_H
#define O2H_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define O2H_MAX_NAME_LEN 63

/** Ensemble: 1..63 printable ASCII characters, no '/'. */
bool o2h__names_valid_ensemble(const char *name);

/** Service: starts with a letter, 1..63 characters, no '/' and no pattern characters. */
bool o2h__names_valid_service(const char *name);

/** True for exactly 8 lowercase hex digits, as O2 writes an IPv4 address in a process name. */
bool o2h__names_is_ip_hex(const char *s);

/** True when `s` contains any of the OSC pattern characters * ? [ ] { }. */
bool o2h__names_has_pattern(const char *s);

/**
 * The service part of an address ("/svc/a" or "!svc/a" or "#svc" -> "svc"):
 * stores a pointer to its first character and its length. False if the
 * address has no service part or it is longer than O2H_MAX_NAME_LEN.
 */
bool o2h__names_service_of(const char *address, const char **start, size_t *len);

/* Names, paths and type strings are short: on the routing path an inline
 * loop costs less than a call into libc's vectorised string functions. */

/** a and b are equal strings. */
static inline bool names_equal(const char *a, const char *b) {
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/** s starts with the `n` characters of `prefix` (which has no NUL in them). */
static inline bool names_starts_with(const char *s, const char *prefix, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != prefix[i]) return false; /* also stops at the end of s */
    return true;
}

#endif
