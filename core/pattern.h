/* OSC 1.0 address pattern matching: * ? [abc] [a-z] [!a-z] {foo,bar}. */
#ifndef O2H_PATTERN_H
#define O2H_PATTERN_H

#include <stdbool.h>

/**
 * Match a whole address `pattern` against a method's `path` (both
 * NUL-terminated, e.g. "/synth/v?/freq" vs "/synth/v1/freq"). '/' separates
 * nodes and is only ever matched by '/': '*' and '?' never cross it. A
 * malformed pattern (unclosed '[' or '{') matches nothing. Runs in bounded
 * time (no exponential backtracking) and never reads past either string.
 */
bool o2h__pattern_match(const char *pattern, const char *path);

#endif
