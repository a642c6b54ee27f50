/* Rules for names: ensembles, services, addresses (O2's limits). */
#ifndef O2H_NAMES_H
#define O2H_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define O2H_MAX_NAME_LEN 63

/** Ensemble: 1..63 printable ASCII characters, no '/'. */
bool names_valid_ensemble(const char *name);

/** Service: starts with a letter, 1..63 characters, no '/' and no pattern characters. */
bool names_valid_service(const char *name);

/** True when `s` contains any of the OSC pattern characters * ? [ ] { }. */
bool names_has_pattern(const char *s);

/**
 * The service part of an address ("/svc/a" or "!svc/a" or "#svc" -> "svc"):
 * stores a pointer to its first character and its length. False if the
 * address has no service part or it is longer than O2H_MAX_NAME_LEN.
 */
bool names_service_of(const char *address, const char **start, size_t *len);

#endif
