/*
 * OSC pattern matching, node by node. Within a node, '*' uses the greedy
 * "remember the last star" algorithm (linear backtracking); '{a,b}' tries
 * each alternative against the rest of the node, recursing at most
 * MAX_BRACE_DEPTH times, so a match costs O(len(pattern) * len(node) *
 * alternatives^depth) at worst with a small fixed depth.
 */
#include "pattern.h"

#include <stddef.h>
#include <string.h>

#define MAX_BRACE_DEPTH 4

/* Length of a node: up to '/' or the end. */
static size_t node_len(const char *s) {
    return strcspn(s, "/");
}

/* Does c fall in the class starting after '['? Sets *end past ']'. False on malformed. */
static bool class_matches(const char *p, const char *pend, char c, const char **end, bool *ok) {
    bool negate = false, hit = false;
    if (p < pend && *p == '!') {
        negate = true;
        p++;
    }
    const char *start = p;
    while (p < pend && *p != ']') {
        if (p + 2 < pend && p[1] == '-' && p[2] != ']') {
            char lo = p[0], hi = p[2];
            if ((unsigned char)c >= (unsigned char)lo && (unsigned char)c <= (unsigned char)hi)
                hit = true;
            p += 3;
        } else {
            if (*p == c) hit = true;
            p++;
        }
    }
    if (p >= pend || p == start) {
        *ok = false;
        return false;
    }
    *end = p + 1;
    *ok = true;
    return hit != negate;
}

static bool match_node(const char *p, const char *pend, const char *s, const char *send, int depth);

/* '{' at p: try each alternative followed by the rest of the pattern. */
static bool match_braces(const char *p, const char *pend, const char *s, const char *send,
                         int depth) {
    if (depth >= MAX_BRACE_DEPTH) return false;
    const char *close = memchr(p, '}', (size_t)(pend - p));
    if (!close) return false;
    const char *rest = close + 1;
    const char *alt = p + 1;
    for (;;) {
        const char *comma = memchr(alt, ',', (size_t)(close - alt));
        const char *alt_end = comma ? comma : close;
        size_t n = (size_t)(alt_end - alt);
        if ((size_t)(send - s) >= n && memcmp(s, alt, n) == 0 &&
            match_node(rest, pend, s + n, send, depth + 1))
            return true;
        if (!comma) return false;
        alt = comma + 1;
    }
}

static bool match_node(const char *p, const char *pend, const char *s, const char *send,
                       int depth) {
    const char *star_p = NULL, *star_s = NULL;
    while (s < send || p < pend) {
        if (p < pend) {
            char pc = *p;
            if (pc == '*') {
                star_p = ++p;
                star_s = s;
                continue;
            }
            if (pc == '{') {
                if (match_braces(p, pend, s, send, depth)) return true;
                /* fall through to star backtracking */
            } else if (s < send) {
                bool ok = true;
                const char *next = p + 1;
                bool hit;
                if (pc == '?')
                    hit = true;
                else if (pc == '[')
                    hit = class_matches(p + 1, pend, *s, &next, &ok);
                else
                    hit = pc == *s;
                if (!ok) return false;
                if (hit) {
                    p = next;
                    s++;
                    continue;
                }
            }
        }
        if (star_p && star_s < send) {
            p = star_p;
            s = ++star_s;
            continue;
        }
        return false;
    }
    return true;
}

bool pattern_match(const char *pattern, const char *path) {
    for (;;) {
        size_t pn = node_len(pattern), sn = node_len(path);
        if (!match_node(pattern, pattern + pn, path, path + sn, 0)) return false;
        pattern += pn;
        path += sn;
        if (*pattern != *path) return false; /* one ended, the other has another node */
        if (*pattern == '\0') return true;
        pattern++;
        path++;
    }
}
