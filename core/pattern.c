/*
 * OSC 1.0 address patterns, matched node by node: '/' splits both strings,
 * the node counts must agree, and nothing but '/' ever matches '/'.
 *
 * Within a node the pattern is a list of atoms -- a literal character, '?',
 * a class "[...]", or a group "{alt,alt}" of literal alternatives -- which
 * the '*' atoms cut into star-free runs. A '*' can swallow any stretch of the
 * node, so whatever the rest of the pattern matches after a run ending at e,
 * it also matches after a run ending earlier (the star takes up the slack).
 * Each run followed by a star is therefore placed once, so that it ends as
 * early as possible, and never reconsidered; only the last run must end
 * exactly at the node's end. With groups absent this is the classic
 * "remember the last star" algorithm.
 *
 * Groups give a run a variable length. Rather than trying the alternatives
 * recursively (exponential in the number of groups), a run started at a
 * given position is simulated with the set of path positions it may have
 * reached so far, kept as a bit window (reach_t). That window's width is
 * 1 + the sum over the run's groups of (longest - shortest alternative);
 * a run needing more than REACH_BITS is rejected as malformed.
 *
 * Bounds: no recursion, no allocation, nothing read beyond either node. For
 * a path node of length S and pattern node of length P, placing a run from
 * one start costs O(P * width) and at most S + 1 + runs * REACH_BITS starts
 * are tried, so a node costs O(S * P) without groups and at most
 * O((S + P * REACH_BITS) * P * REACH_BITS) with them.
 *
 * Malformed (matches nothing): an unclosed '[' or '{' (closing bracket
 * missing before the node ends), an empty class "[]" or "[!]", a '{' inside a
 * group (OSC has no nesting), a run too variable for REACH_BITS. Inside a
 * class, '*', '?', '[', '{' and ',' are plain members; inside a group, every
 * character but ',' and '}' is plain. A class range whose ends are reversed,
 * like "[z-a]", contains nothing.
 */
#include "pattern.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { WORD_BITS = 64, REACH_WORDS = 4, REACH_BITS = WORD_BITS * REACH_WORDS };

/* Path positions where a run may have got to: bit i stands for base + i. */
typedef struct {
    size_t base;
    size_t width;
    uint64_t bits[REACH_WORDS];
} reach_t;

/* One node of the path: never contains '/'. */
typedef struct {
    const char *s;
    size_t len;
} node_t;

/* The ']' closing the class opened at p, or NULL when unclosed or empty. */
static const char *class_close(const char *p, const char *pend) {
    const char *first = p + 1;
    if (first < pend && *first == '!') first++;
    const char *close = memchr(first, ']', (size_t)(pend - first));
    return close == first ? NULL : close;
}

/* The '}' closing the group opened at p, or NULL when unclosed or nested. */
static const char *group_close(const char *p, const char *pend) {
    for (const char *q = p + 1; q < pend; q++) {
        if (*q == '}') return q;
        if (*q == '{') return NULL;
    }
    return NULL;
}

/* One past the atom starting at p, or NULL when the atom is malformed. */
static const char *atom_end(const char *p, const char *pend) {
    const char *last = p;
    if (*p == '[') last = class_close(p, pend);
    if (*p == '{') last = group_close(p, pend);
    return last ? last + 1 : NULL;
}

/* The end of the alternative starting at alt: a ',' or the closing '}'. */
static const char *alt_end(const char *alt, const char *close) {
    const char *comma = memchr(alt, ',', (size_t)(close - alt));
    return comma ? comma : close;
}

static void group_lengths(const char *open, const char *close, size_t *min, size_t *max) {
    *min = SIZE_MAX;
    *max = 0;
    for (const char *alt = open + 1;; alt++) {
        const char *end = alt_end(alt, close);
        size_t n = (size_t)(end - alt);
        if (n < *min) *min = n;
        if (n > *max) *max = n;
        if (end == close) return;
        alt = end;
    }
}

/* Shortest and longest stretch of path that the run [p, pend) can cover. */
static void run_lengths(const char *p, const char *pend, size_t *min, size_t *max) {
    *min = *max = 0;
    while (p < pend) {
        const char *next = atom_end(p, pend);
        size_t lo = 1, hi = 1;
        if (*p == '{') group_lengths(p, next - 1, &lo, &hi);
        *min += lo;
        *max += hi;
        p = next;
    }
}

/* Checked once up front so the matching code can trust every atom. */
static bool node_well_formed(const char *p, const char *pend) {
    size_t spread = 0;
    while (p < pend) {
        const char *next = atom_end(p, pend);
        if (!next) return false;
        if (*p == '*') spread = 0;
        if (*p == '{') {
            size_t lo, hi;
            group_lengths(p, next - 1, &lo, &hi);
            spread += hi - lo;
            if (spread >= REACH_BITS) return false;
        }
        p = next;
    }
    return true;
}

/* The first '*' atom in [p, pend), or pend. */
static const char *next_star(const char *p, const char *pend) {
    while (p < pend && *p != '*')
        p = atom_end(p, pend);
    return p;
}

/* Does the well-formed class [open, close] contain c? */
static bool class_has(const char *open, const char *close, unsigned char c) {
    bool negate = open[1] == '!';
    bool hit = false;
    for (const char *q = open + 1 + negate; q < close && !hit; q++) {
        /* A '-' with no member on one side is a member itself. */
        if (close - q > 2 && q[1] == '-') {
            hit = (unsigned char)q[0] <= c && c <= (unsigned char)q[2];
            q += 2;
        } else {
            hit = (unsigned char)*q == c;
        }
    }
    return hit != negate;
}

static void reach_clear(reach_t *r, size_t base, size_t width) {
    memset(r, 0, sizeof *r);
    r->base = base;
    r->width = width;
}

static bool reach_has(const reach_t *r, size_t pos) {
    if (pos < r->base || pos - r->base >= r->width) return false;
    size_t i = pos - r->base;
    return (r->bits[i / WORD_BITS] >> (i % WORD_BITS)) & 1;
}

static void reach_add(reach_t *r, size_t pos) {
    size_t i = pos - r->base;
    r->bits[i / WORD_BITS] |= (uint64_t)1 << (i % WORD_BITS);
}

static bool reach_empty(const reach_t *r) {
    for (size_t w = 0; w < REACH_WORDS; w++)
        if (r->bits[w]) return false;
    return true;
}

/* The earliest reached position; r must not be empty. */
static size_t reach_first(const reach_t *r) {
    size_t pos = r->base;
    while (!reach_has(r, pos))
        pos++;
    return pos;
}

/* Can the single-character atom [atom, next) match c? */
static bool atom_accepts(const char *atom, const char *next, char c) {
    if (*atom == '?') return true; /* c is never '/': nodes hold none */
    if (*atom == '[') return class_has(atom, next - 1, (unsigned char)c);
    return *atom == c;
}

static void step_char(reach_t *r, const char *atom, const char *next, node_t path) {
    reach_t out;
    reach_clear(&out, r->base + 1, r->width);
    for (size_t pos = r->base; pos < r->base + r->width; pos++) {
        if (reach_has(r, pos) && pos < path.len && atom_accepts(atom, next, path.s[pos]))
            reach_add(&out, pos + 1);
    }
    *r = out;
}

static void step_alternative(const reach_t *r, reach_t *out, const char *alt, size_t n,
                             node_t path) {
    for (size_t pos = r->base; pos < r->base + r->width && pos <= path.len; pos++) {
        if (reach_has(r, pos) && path.len - pos >= n && memcmp(path.s + pos, alt, n) == 0)
            reach_add(out, pos + n);
    }
}

/* Every alternative is tried from every reached position at once. */
static void step_group(reach_t *r, const char *open, const char *close, node_t path) {
    size_t lo, hi;
    group_lengths(open, close, &lo, &hi);
    reach_t out;
    reach_clear(&out, r->base + lo, r->width + (hi - lo));
    for (const char *alt = open + 1;; alt++) {
        const char *end = alt_end(alt, close);
        step_alternative(r, &out, alt, (size_t)(end - alt), path);
        if (end == close) break;
        alt = end;
    }
    *r = out;
}

/* Where the star-free run [p, pend) can end when begun at start; false if nowhere. */
static bool run_from(const char *p, const char *pend, node_t path, size_t start, reach_t *r) {
    reach_clear(r, start, 1);
    reach_add(r, start);
    while (p < pend && !reach_empty(r)) {
        const char *next = atom_end(p, pend);
        if (*p == '{')
            step_group(r, p, next - 1, path);
        else
            step_char(r, p, next, path);
        p = next;
    }
    return !reach_empty(r);
}

/* Moves *pos to the earliest end of the run [p, pend) begun at or after *pos. */
static bool place_early(const char *p, const char *pend, node_t path, size_t *pos) {
    size_t min, max;
    run_lengths(p, pend, &min, &max);
    bool found = false;
    size_t best = 0;
    reach_t r;
    /* A start at i ends at i + min or later: stop once that cannot beat best. */
    for (size_t i = *pos; i + min <= path.len && (!found || i + min < best); i++) {
        if (!run_from(p, pend, path, i, &r)) continue;
        size_t end = reach_first(&r);
        if (!found || end < best) best = end;
        found = true;
    }
    *pos = best;
    return found;
}

/* Can the run [p, pend), begun at or after from, end exactly at the node's end? */
static bool place_last(const char *p, const char *pend, node_t path, size_t from) {
    size_t min, max;
    run_lengths(p, pend, &min, &max);
    if (from > path.len || path.len - from < min) return false;
    size_t first = path.len - from > max ? path.len - max : from;
    reach_t r;
    for (size_t i = first; i <= path.len - min; i++) {
        if (run_from(p, pend, path, i, &r) && reach_has(&r, path.len)) return true;
    }
    return false;
}

static bool match_node(const char *p, const char *pend, node_t path) {
    if (!node_well_formed(p, pend)) return false;
    const char *star = next_star(p, pend);
    reach_t r;
    if (star == pend) return run_from(p, pend, path, 0, &r) && reach_has(&r, path.len);
    if (!run_from(p, star, path, 0, &r)) return false;
    size_t pos = reach_first(&r);
    for (;;) {
        p = star + 1;
        star = next_star(p, pend);
        if (star == pend) return place_last(p, pend, path, pos);
        if (!place_early(p, star, path, &pos)) return false;
    }
}

bool o2h__pattern_match(const char *pattern, const char *path) {
    for (;;) {
        size_t pn = strcspn(pattern, "/");
        node_t node = {path, strcspn(path, "/")};
        if (!match_node(pattern, pattern + pn, node)) return false;
        pattern += pn;
        path += node.len;
        /* Both must end here, or both go on to another node. */
        if (*pattern != *path) return false;
        if (*pattern == '\0') return true;
        pattern++;
        path++;
    }
}
