/* OSC address patterns. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"

Test(pattern, literal) {
    cr_assert(pattern_match("/a/b", "/a/b"));
    cr_assert_not(pattern_match("/a/b", "/a/c"));
    cr_assert_not(pattern_match("/a/b", "/a/bc"));
    cr_assert_not(pattern_match("/a/bc", "/a/b"));
}

Test(pattern, question_mark_is_one_character_within_a_node) {
    cr_assert(pattern_match("/a/b?", "/a/bx"));
    cr_assert_not(pattern_match("/a/b?", "/a/b"));
    cr_assert_not(pattern_match("/a?b", "/a/b"), "never matches '/'");
}

Test(pattern, star_stays_inside_its_node) {
    cr_assert(pattern_match("/a/*", "/a/anything"));
    cr_assert(pattern_match("/a/*", "/a/"), "star may be empty");
    cr_assert(pattern_match("/a/x*y*z", "/a/x123y45z"));
    cr_assert(pattern_match("/*/b", "/a/b"));
    cr_assert_not(pattern_match("/a/*", "/a/b/c"), "star never crosses '/'");
    cr_assert_not(pattern_match("/*", "/a/b"));
}

Test(pattern, character_classes) {
    cr_assert(pattern_match("/v[123]", "/v2"));
    cr_assert_not(pattern_match("/v[123]", "/v4"));
    cr_assert(pattern_match("/v[a-c]x", "/vbx"));
    cr_assert_not(pattern_match("/v[a-c]x", "/vdx"));
    cr_assert(pattern_match("/v[!a-c]", "/vz"));
    cr_assert_not(pattern_match("/v[!a-c]", "/vb"));
    cr_assert(pattern_match("/v[-x]", "/v-"), "a leading '-' is literal");
    cr_assert(pattern_match("/v[x-]", "/v-"), "a trailing '-' is literal");
}

Test(pattern, alternatives) {
    cr_assert(pattern_match("/{freq,amp}", "/amp"));
    cr_assert(pattern_match("/{freq,amp}", "/freq"));
    cr_assert_not(pattern_match("/{freq,amp}", "/gain"));
    cr_assert(pattern_match("/x{,y}", "/x"), "an empty alternative");
    cr_assert(pattern_match("/x{,y}", "/xy"));
    cr_assert(pattern_match("/*{a,b}", "/zzzb"));
    cr_assert(pattern_match("/{a,b}*", "/bzz"));
}

Test(pattern, malformed_patterns_match_nothing) {
    cr_assert_not(pattern_match("/a[bc", "/ab"));
    cr_assert_not(pattern_match("/a{b,c", "/ab"));
    cr_assert_not(pattern_match("/a[]", "/a]"));
}

Test(pattern, node_counts_must_agree) {
    cr_assert_not(pattern_match("/a/b/c", "/a/b"));
    cr_assert_not(pattern_match("/a/b", "/a/b/c"));
    cr_assert(pattern_match("/?/?/?", "/a/b/c"));
}

Test(pattern, pathological_stars_finish_fast, .timeout = 2) {
    char path[1100] = "/a/";
    memset(path + 3, 'a', 1000);
    path[1003] = '\0';
    cr_assert_not(pattern_match("/a/*a*a*a*a*a*a*a*a*a*a*b", path));
    path[1002] = 'b';
    cr_assert(pattern_match("/a/*a*a*a*a*a*a*a*a*a*a*b", path));
}

/* An obviously correct (exponential) reference for patterns without braces. */
static bool reference(const char *p, const char *s) {
    if (!*p) return !*s;
    if (*p == '*') {
        for (const char *t = s;; t++) {
            if (reference(p + 1, t)) return true;
            if (!*t || *t == '/') return false;
        }
    }
    if (!*s) return false;
    if (*p == '?') return *s != '/' && reference(p + 1, s + 1);
    return *p == *s && reference(p + 1, s + 1);
}

Test(pattern, agrees_with_a_reference_on_random_inputs, .timeout = 30) {
    srand(7);
    const char *palpha = "ab*?/", *salpha = "ab/";
    for (int i = 0; i < 100000; i++) {
        char p[12], s[12];
        int pn = rand() % 10, sn = rand() % 10;
        p[0] = s[0] = '/';
        for (int k = 1; k <= pn; k++)
            p[k] = palpha[rand() % 5];
        for (int k = 1; k <= sn; k++)
            s[k] = salpha[rand() % 3];
        p[pn + 1] = s[sn + 1] = '\0';
        cr_assert_eq(pattern_match(p, s), reference(p, s), "pattern %s path %s", p, s);
    }
}
