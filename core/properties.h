/*
 * Service properties as O2 keeps them: one string ";attr:value;attr:value;"
 * (leading ';'), attribute names alphanumeric, and ':' ';' '\' in values
 * escaped with '\'.
 */
#ifndef O2H_PROPERTIES_H
#define O2H_PROPERTIES_H

#include <stdbool.h>
#include <stddef.h>

/** A new string: `props` (may be NULL) with `attr` set to `value` (first). NULL: no memory. */
char *o2h__props_set(const char *props, const char *attr, const char *value);

/** A new string: `props` without `attr` (a copy if it is absent). */
char *o2h__props_remove(const char *props, const char *attr);

/** Copy the unescaped value of `attr` into `out`; false if absent (or `out` too small). */
bool o2h__props_get(const char *props, const char *attr, char *out, size_t size);

/**
 * O2's search rules on the value of `attr`: ":abc" the value starts with
 * abc, "abc;" ends with abc, ":abc;" equals abc, otherwise contains abc.
 */
bool o2h__props_match(const char *props, const char *attr, const char *pattern);

/** True when `attr` is a valid attribute name (1..64 alphanumeric characters). */
bool o2h__props_valid_attr(const char *attr);

#endif
