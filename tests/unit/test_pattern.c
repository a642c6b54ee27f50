/* OSC address patterns: hand-picked cases, pathological inputs, and a reference. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"

Test(pattern, literal_addresses_match_only_themselves) {
    cr_assert(o2h__pattern_match("/synth/v1/freq", "/synth/v1/freq"));
    cr_assert(o2h__pattern_match("/", "/"));
    cr_assert(o2h__pattern_match("", ""));
    cr_assert_not(o2h__pattern_match("/synth/v1/freq", "/synth/v1/fre"));
    cr_assert_not(o2h__pattern_match("/synth/v1/fre", "/synth/v1/freq"));
    cr_assert_not(o2h__pattern_match("/synth/v1/freq", "/synth/v2/freq"));
    cr_assert_not(o2h__pattern_match("/a", "/A"));
    cr_assert_not(o2h__pattern_match("/a", ""));
    cr_assert_not(o2h__pattern_match("", "/a"));
}

Test(pattern, question_mark_is_one_character_but_never_a_slash) {
    cr_assert(o2h__pattern_match("/v?", "/v1"));
    cr_assert(o2h__pattern_match("/\?\?/x", "/ab/x"));
    cr_assert_not(o2h__pattern_match("/v?", "/v"));
    cr_assert_not(o2h__pattern_match("/v?", "/v12"));
    cr_assert_not(o2h__pattern_match("/a?b", "/a/b"));
    cr_assert_not(o2h__pattern_match("/a/?", "/a/"));
}

Test(pattern, star_stays_inside_its_node) {
    cr_assert(o2h__pattern_match("/a/*", "/a/xyz"));
    cr_assert(o2h__pattern_match("/synth/*/freq", "/synth/v1/freq"));
    cr_assert(o2h__pattern_match("/*/b", "/a/b"));
    cr_assert_not(o2h__pattern_match("/*", "/a/b"));
    cr_assert_not(o2h__pattern_match("/a*", "/a/b"));
    cr_assert_not(o2h__pattern_match("/a*b", "/a/b"));
    cr_assert_not(o2h__pattern_match("/a/*/c", "/a/b/d/c"));
}

Test(pattern, star_may_be_empty) {
    cr_assert(o2h__pattern_match("/a*", "/a"));
    cr_assert(o2h__pattern_match("/*", "/"));
    cr_assert(o2h__pattern_match("/a/*", "/a/"));
    cr_assert(o2h__pattern_match("/x*y", "/xy"));
    cr_assert(o2h__pattern_match("/*x", "/x"));
    cr_assert(o2h__pattern_match("/**", "/"));
    cr_assert_not(o2h__pattern_match("/*x", "/"));
}

Test(pattern, several_stars_in_a_node) {
    cr_assert(o2h__pattern_match("/x*y*z", "/x123y45z"));
    cr_assert(o2h__pattern_match("/x*y*z", "/xyz"));
    cr_assert(o2h__pattern_match("/*a*b*", "/cacbc"));
    cr_assert(o2h__pattern_match("/*ab*ab", "/xabyab"));
    cr_assert(o2h__pattern_match("/*ab*ab", "/abab"));
    cr_assert(o2h__pattern_match("/*aa", "/aaaa"), "the last run is anchored at the end");
    cr_assert(o2h__pattern_match("/**a**", "/bab"));
    cr_assert_not(o2h__pattern_match("/x*y*z", "/xzy"));
    cr_assert_not(o2h__pattern_match("/*a*b*", "/ba"));
    cr_assert_not(o2h__pattern_match("/*ab*ab", "/aab"));
    cr_assert_not(o2h__pattern_match("/*ab*ab", "/abxab/"));
}

Test(pattern, character_classes) {
    cr_assert(o2h__pattern_match("/v[123]", "/v2"));
    cr_assert(o2h__pattern_match("/[abc][abc]", "/ca"));
    cr_assert(o2h__pattern_match("/[*?]", "/*"), "'*' and '?' are plain inside a class");
    cr_assert(o2h__pattern_match("/[[]", "/["));
    cr_assert_not(o2h__pattern_match("/v[123]", "/v4"));
    cr_assert_not(o2h__pattern_match("/v[123]", "/v"));
    cr_assert_not(o2h__pattern_match("/v[123]", "/v12"));
    cr_assert_not(o2h__pattern_match("/[*?]", "/a"));
    cr_assert_not(o2h__pattern_match("/a[/]b", "/a/b"), "a class never holds '/'");
}

Test(pattern, ranges) {
    cr_assert(o2h__pattern_match("/v[0-9]", "/v0"));
    cr_assert(o2h__pattern_match("/v[0-9]", "/v5"));
    cr_assert(o2h__pattern_match("/v[0-9]", "/v9"));
    cr_assert(o2h__pattern_match("/[a-cx-z]", "/y"));
    cr_assert(o2h__pattern_match("/[a-cM]", "/M"));
    cr_assert(o2h__pattern_match("/[\x80-\xff]", "/\xe9"));
    cr_assert(o2h__pattern_match("/[a-\xff]", "/\xe9"), "bytes compare unsigned");
    cr_assert_not(o2h__pattern_match("/v[0-9]", "/va"));
    cr_assert_not(o2h__pattern_match("/[a-cx-z]", "/m"));
    cr_assert_not(o2h__pattern_match("/[z-a]", "/m"), "a reversed range is empty");
    cr_assert_not(o2h__pattern_match("/[\x80-\xff]", "/a"));
}

Test(pattern, negated_classes) {
    cr_assert(o2h__pattern_match("/v[!0-9]", "/vx"));
    cr_assert(o2h__pattern_match("/[!ab]", "/c"));
    cr_assert(o2h__pattern_match("/[!!]", "/x"));
    cr_assert_not(o2h__pattern_match("/v[!0-9]", "/v5"));
    cr_assert_not(o2h__pattern_match("/[!ab]", "/a"));
    cr_assert_not(o2h__pattern_match("/[!!]", "/!"));
    cr_assert_not(o2h__pattern_match("/[!a]", "/"), "still takes one character");
    cr_assert_not(o2h__pattern_match("/a[!b]c", "/a/c"), "never '/'");
}

Test(pattern, dash_first_or_last_is_literal) {
    cr_assert(o2h__pattern_match("/[-a]", "/-"));
    cr_assert(o2h__pattern_match("/[-a]", "/a"));
    cr_assert(o2h__pattern_match("/[a-]", "/-"));
    cr_assert(o2h__pattern_match("/[-]", "/-"));
    cr_assert(o2h__pattern_match("/[a-c-]", "/-"));
    cr_assert(o2h__pattern_match("/[a-c-]", "/b"));
    cr_assert(o2h__pattern_match("/[!-]", "/x"));
    cr_assert_not(o2h__pattern_match("/[-a]", "/b"));
    cr_assert_not(o2h__pattern_match("/[a-]", "/b"));
    cr_assert_not(o2h__pattern_match("/[!-]", "/-"));
    cr_assert_not(o2h__pattern_match("/[!-a]", "/a"), "after '!' the '-' is still first");
}

Test(pattern, alternatives) {
    cr_assert(o2h__pattern_match("/{freq,amp}", "/amp"));
    cr_assert(o2h__pattern_match("/{freq,amp}", "/freq"));
    cr_assert(o2h__pattern_match("/v{1,2}/x", "/v2/x"));
    cr_assert(o2h__pattern_match("/{a,ab}c", "/abc"), "the first alternative is not enough");
    cr_assert(o2h__pattern_match("/{ab,a}bc", "/abc"));
    cr_assert(o2h__pattern_match("/{a*,b}", "/a*"), "alternatives are literal");
    cr_assert_not(o2h__pattern_match("/{freq,amp}", "/gain"));
    cr_assert_not(o2h__pattern_match("/{freq,amp}", "/fre"));
    cr_assert_not(o2h__pattern_match("/{freq,amp}", "/freqamp"));
    cr_assert_not(o2h__pattern_match("/{a*,b}", "/ax"));
}

Test(pattern, empty_alternative) {
    cr_assert(o2h__pattern_match("/x{,y}", "/x"));
    cr_assert(o2h__pattern_match("/x{,y}", "/xy"));
    cr_assert(o2h__pattern_match("/x{y,}z", "/xz"));
    cr_assert(o2h__pattern_match("/{,}", "/"));
    cr_assert(o2h__pattern_match("/{}", "/"));
    cr_assert_not(o2h__pattern_match("/x{,y}", "/xz"));
    cr_assert_not(o2h__pattern_match("/{}", "/a"));
}

Test(pattern, alternatives_between_stars) {
    cr_assert(o2h__pattern_match("/*{a,b}", "/zzzb"));
    cr_assert(o2h__pattern_match("/{a,b}*", "/bzz"));
    cr_assert(o2h__pattern_match("/*{foo,bar}*", "/xbarx"));
    cr_assert(o2h__pattern_match("/{a,ab}*{b,bc}", "/abc"));
    cr_assert(o2h__pattern_match("/*{aa,a}b", "/aaab"));
    cr_assert(o2h__pattern_match("/*{abcd,b}*cd", "/abcd"), "a later start that ends sooner wins");
    cr_assert(o2h__pattern_match("/{abcd,a}*bcd", "/abcd"), "the first run ends as soon as it can");
    cr_assert(o2h__pattern_match("/*{x,bcd,cdefg}*g", "/bcdefg"),
              "a later start ending later loses");
    cr_assert(o2h__pattern_match("/*{,x}*{a,b}{,c}", "/qqbc"));
    cr_assert_not(o2h__pattern_match("/*{foo,bar}*", "/xbax"));
    cr_assert_not(o2h__pattern_match("/*{a,b}", "/abc"));
    cr_assert_not(o2h__pattern_match("/*{a,b}*/c", "/xa/d"));
}

Test(pattern, malformed_patterns_match_nothing) {
    cr_assert_not(o2h__pattern_match("/a[bc", "/ab"));
    cr_assert_not(o2h__pattern_match("/a[bc", "/a[bc"));
    cr_assert_not(o2h__pattern_match("/a{b,c", "/ab"));
    cr_assert_not(o2h__pattern_match("/a{", "/a{"));
    cr_assert_not(o2h__pattern_match("/a[", "/a["));
    cr_assert_not(o2h__pattern_match("/a[!", "/a[!"));
    cr_assert_not(o2h__pattern_match("/a[]", "/a]"));
    cr_assert_not(o2h__pattern_match("/a[]", "/a"));
    cr_assert_not(o2h__pattern_match("/a[!]", "/ax"));
    cr_assert_not(o2h__pattern_match("/[a/b]", "/a/b"), "'/' ends the node, unclosed");
    cr_assert_not(o2h__pattern_match("/{a/b}", "/a/b"));
    cr_assert_not(o2h__pattern_match("/{a,{b}}", "/a"), "groups do not nest");
    cr_assert_not(o2h__pattern_match("/ok/b[", "/ok/b["), "a bad later node spoils it all");
    cr_assert_not(o2h__pattern_match("/x*[", "/x["));
}

Test(pattern, node_counts_must_agree) {
    cr_assert_not(o2h__pattern_match("/a/b/c", "/a/b"));
    cr_assert_not(o2h__pattern_match("/a/b", "/a/b/c"));
    cr_assert_not(o2h__pattern_match("/*/*", "/a"));
    cr_assert_not(o2h__pattern_match("/a/", "/a"));
    cr_assert(o2h__pattern_match("/?/?/?", "/a/b/c"));
    cr_assert(o2h__pattern_match("/a//b", "/a//b"));
    cr_assert(o2h__pattern_match("/a/*/b", "/a//b"), "an empty node");
}

Test(pattern, runs_too_variable_are_rejected) {
    char pattern[700], path[300];
    memset(path, 'a', sizeof path);
    path[0] = '/';
    path[201] = '\0';
    /* 200 characters between the shortest and longest alternative: fine. */
    strcpy(pattern, "/{,");
    memset(pattern + 3, 'a', 200);
    strcpy(pattern + 203, "}");
    cr_assert(o2h__pattern_match(pattern, "/"));
    cr_assert(o2h__pattern_match(pattern, path));
    /* Twice that in one run: more than the 256-wide window. */
    strcpy(pattern + 204, "{,");
    memset(pattern + 206, 'a', 200);
    strcpy(pattern + 406, "}");
    cr_assert_not(o2h__pattern_match(pattern, "/"));
    /* A star starts a fresh run. */
    strcpy(pattern + 204, "*{,");
    memset(pattern + 207, 'a', 200);
    strcpy(pattern + 407, "}");
    cr_assert(o2h__pattern_match(pattern, path));
}

Test(pattern, pathological_stars_finish_fast, .timeout = 2) {
    char path[1010] = "/a/";
    memset(path + 3, 'a', 1000);
    path[1003] = '\0';
    for (int i = 0; i < 100; i++)
        cr_assert_not(o2h__pattern_match("/a/*a*a*a*a*a*a*a*a*b", path));
    cr_assert(o2h__pattern_match("/a/*a*a*a*a*a*a*a*a*", path));
    path[500] = 'b';
    cr_assert_not(o2h__pattern_match("/a/*a*a*a*a*a*a*a*a*b", path));
    cr_assert(o2h__pattern_match("/a/*a*a*a*a*a*a*a*a*b*", path));
    path[1002] = 'b';
    cr_assert(o2h__pattern_match("/a/*a*a*a*a*a*a*a*a*b", path));
}

static void repeat(char *out, const char *piece, int times, const char *tail) {
    out[0] = '/';
    out[1] = '\0';
    for (int i = 0; i < times; i++)
        strcat(out, piece);
    strcat(out, tail);
}

Test(pattern, pathological_groups_finish_fast, .timeout = 2) {
    char path[1010] = "/", pattern[400];
    memset(path + 1, 'a', 1000);
    path[1001] = '\0';
    repeat(pattern, "{a,aa}", 40, "");
    cr_assert_not(o2h__pattern_match(pattern, path));
    path[61] = '\0';
    cr_assert(o2h__pattern_match(pattern, path));
    path[61] = 'a';
    repeat(pattern, "*{a,aa,aaa}", 30, "b");
    cr_assert_not(o2h__pattern_match(pattern, path));
    repeat(pattern, "*{,a}{a,aa}", 20, "*[!a]");
    cr_assert_not(o2h__pattern_match(pattern, path));
    path[1000] = 'b';
    cr_assert(o2h__pattern_match(pattern, path));
}

/* The brackets of a reference pattern: ']' or '}' closing the one at p, or NULL. */
static const char *ref_class_close(const char *p) {
    const char *first = p[1] == '!' ? p + 2 : p + 1;
    for (const char *q = first; *q && *q != '/'; q++)
        if (*q == ']') return q == first ? NULL : q;
    return NULL;
}

static const char *ref_group_close(const char *p) {
    for (const char *q = p + 1; *q && *q != '/' && *q != '{'; q++)
        if (*q == '}') return q;
    return NULL;
}

static bool ref_well_formed(const char *p) {
    for (; *p; p++) {
        const char *last = p;
        if (*p == '[') last = ref_class_close(p);
        if (*p == '{') last = ref_group_close(p);
        if (!last) return false;
        p = last;
    }
    return true;
}

static bool ref_in_class(const char *p, const char *close, unsigned char c) {
    bool negate = p[1] == '!';
    bool hit = false;
    for (const char *q = p + 1 + negate; q < close; q++) {
        bool range = q + 2 < close && q[1] == '-';
        unsigned char lo = (unsigned char)q[0];
        unsigned char hi = (unsigned char)(range ? q[2] : q[0]);
        if (lo <= c && c <= hi) hit = true;
        if (range) q += 2;
    }
    return hit != negate;
}

static bool ref_match(const char *p, const char *s);

static bool ref_group(const char *p, const char *s) {
    const char *close = ref_group_close(p);
    for (const char *alt = p + 1;; alt++) {
        size_t n = strcspn(alt, ",}");
        if (strncmp(alt, s, n) == 0 && ref_match(close + 1, s + n)) return true;
        alt += n;
        if (alt == close) return false;
    }
}

/* Straight from the spec, exponential: only for short inputs. */
static bool ref_match(const char *p, const char *s) {
    if (*p == '\0') return *s == '\0';
    if (*p == '*') return ref_match(p + 1, s) || (*s && *s != '/' && ref_match(p, s + 1));
    if (*p == '{') return ref_group(p, s);
    if (*p != '?' && *p != '[') return *p == *s && ref_match(p + 1, s + 1);
    if (*s == '\0' || *s == '/') return false;
    if (*p == '?') return ref_match(p + 1, s + 1);
    const char *close = ref_class_close(p);
    return ref_in_class(p, close, (unsigned char)*s) && ref_match(close + 1, s + 1);
}

static bool reference(const char *p, const char *s) {
    return ref_well_formed(p) && ref_match(p, s);
}

/* "/" then up to max characters from alphabet. */
static void random_address(char *out, int max, const char *alphabet) {
    int n = rand() % (max + 1), k = (int)strlen(alphabet);
    out[0] = '/';
    for (int i = 1; i <= n; i++)
        out[i] = alphabet[rand() % k];
    out[n + 1] = '\0';
}

static bool check_pair(const char *p, const char *s) {
    bool want = reference(p, s);
    cr_assert_eq(o2h__pattern_match(p, s), want, "pattern \"%s\" path \"%s\": want %d", p, s, want);
    return want;
}

/* Cross-checks `rounds` random pairs; returns how many matched. */
static int cross_check(int rounds, const char *pattern_chars, const char *path_chars) {
    int matched = 0;
    for (int i = 0; i < rounds; i++) {
        char p[16], s[16];
        random_address(p, 10, pattern_chars);
        random_address(s, 8, path_chars);
        matched += check_pair(p, s);
    }
    return matched;
}

Test(pattern, agrees_with_reference_without_groups, .timeout = 30) {
    srand(7);
    int matched = cross_check(100000, "ab*?/[]!-", "ab-/!]");
    cr_assert_gt(matched, 1000, "too few matches (%d) to mean much", matched);
}

/* Mostly whole groups: single characters would rarely form one. */
static const char *const group_tokens[] = {
    "a",      "b",       "*",       "?",    "/",  "{a,b}", "{,a}",
    "{ab,b}", "{b,ab,}", "{aa,a,}", "[ab]", "{a", "}",     ",",
};

Test(pattern, agrees_with_reference_with_groups, .timeout = 30) {
    srand(11);
    const int ntokens = (int)(sizeof group_tokens / sizeof *group_tokens);
    int matched = 0, with_groups = 0;
    for (int i = 0; i < 100000; i++) {
        char p[128] = "/", s[16];
        for (int n = rand() % 7; n > 0; n--)
            strcat(p, group_tokens[rand() % ntokens]);
        random_address(s, 6, "ab/,}");
        bool hit = check_pair(p, s);
        matched += hit;
        with_groups += hit && strchr(p, '{');
    }
    cr_assert_gt(with_groups, 1000, "too few group matches (%d of %d)", with_groups, matched);
}

Test(pattern, agrees_with_reference_on_arbitrary_bytes, .timeout = 30) {
    srand(13);
    char bytes[300];
    const char *special = "*?[]!-{},/";
    for (int i = 0; i < 255; i++)
        bytes[i] = (char)(i + 1);
    /* Weight the pattern characters so they are not drowned out. */
    for (int i = 0; i < 40; i++)
        bytes[255 + i] = special[i % 10];
    bytes[295] = '\0';
    cross_check(100000, bytes, bytes);
}

/* Rewrites path into a pattern that must match it, with random pattern atoms. */
static void pattern_for(const char *path, char *out) {
    for (const char *c = path; *c; c++) {
        int roll = *c == '/' ? 0 : rand() % 7;
        int run = 0;
        switch (roll) {
        case 1: out += sprintf(out, "?"); break;
        case 2: out += sprintf(out, "[%c]", *c); break;
        case 3: out += sprintf(out, "[!%c]", *c == 'z' ? 'y' : 'z'); break;
        case 4: out += sprintf(out, "{zz,%c,}", *c); break;
        case 5:
            while (run < 3 && c[1] && c[1] != '/') {
                c++;
                run++;
            }
            out += sprintf(out, "*");
            break;
        default: out += sprintf(out, "%c", *c); break;
        }
    }
    *out = '\0';
}

Test(pattern, long_paths_match_patterns_made_from_them, .timeout = 30) {
    srand(17);
    char path[310], pattern[310 * 8];
    for (int i = 0; i < 2000; i++) {
        random_address(path, 300, "abc/");
        pattern_for(path, pattern);
        cr_assert(o2h__pattern_match(pattern, path), "pattern \"%s\" path \"%s\"", pattern, path);
    }
}
