/* Glob matching: wildcards, captures, and patterns that are exponential for a
 * naive backtracker. */
#include <time.h>

#include "cymg_test.h"
#include "cymg/match.h"

/* Matches with both sides in exactly sized heap blocks (ASan sees over-reads). */
static bool m(const char *s, const char *pat, cymg_str *caps, size_t ncaps) {
  size_t sn = strlen(s), pn = strlen(pat);
  char *sb = malloc(sn ? sn : 1), *pb = malloc(pn ? pn : 1);
  assert_true(sb && pb);
  memcpy(sb, s, sn);
  memcpy(pb, pat, pn);
  bool r = cymg_match(cymg_str_n(sb, sn), cymg_str_n(pb, pn), caps, ncaps);
  /* Captures must point into s; rebase them onto the caller's string. */
  if (r) {
    for (size_t i = 0; i < ncaps && caps[i].buf != NULL; i++) {
      assert_true(caps[i].buf >= sb && caps[i].buf + caps[i].len <= sb + sn);
      caps[i].buf = s + (caps[i].buf - sb);
    }
  }
  free(sb);
  free(pb);
  return r;
}

#define CAP_IS(c, text) \
  do {                                                           \
    assert_non_null((c).buf);                                    \
    assert_int_equal((c).len, strlen(text));                     \
    assert_memory_equal((c).buf, (text), (c).len);               \
  } while (0)

static void test_literals(void **state) {
  (void) state;
  assert_true(m("", "", NULL, 0));
  assert_true(m("abc", "abc", NULL, 0));
  assert_false(m("abd", "abc", NULL, 0));
  assert_false(m("ab", "abc", NULL, 0));
  assert_false(m("abcd", "abc", NULL, 0));
  assert_false(m("", "a", NULL, 0));
  assert_false(m("a", "", NULL, 0));
  assert_true(m("a.b+c(d)", "a.b+c(d)", NULL, 0)); /* no regex meaning */
}

static void test_wildcards(void **state) {
  (void) state;
  cymg_str c[4];
  assert_true(m("abc", "a?c", c, 4));
  CAP_IS(c[0], "b");
  assert_null(c[1].buf);
  assert_true(m("a/c", "a?c", c, 4)); /* ? takes any byte */
  assert_false(m("ac", "a?c", c, 4));
  assert_true(m("/api/foo", "/api/*", c, 4));
  CAP_IS(c[0], "foo");
  assert_false(m("/api/foo/bar", "/api/*", c, 4));
  assert_true(m("/api/foo/bar", "/api/#", c, 4));
  CAP_IS(c[0], "foo/bar");
  assert_true(m("/api/", "/api/#", c, 4));
  CAP_IS(c[0], "");
  assert_true(m("", "*", c, 4));
  CAP_IS(c[0], "");
  assert_true(m("", "#", c, 4));
  assert_true(m("", "**#", c, 4));
  assert_false(m("/", "*", c, 4));
  assert_true(m("/", "#", c, 4));
  assert_true(m("x/y/z", "*/#", c, 4));
  CAP_IS(c[0], "x");
  CAP_IS(c[1], "y/z");
}

static void test_captures(void **state) {
  (void) state;
  cymg_str c[5];
  assert_true(m("a.b.c/d", "*.?.#", c, 5));
  CAP_IS(c[0], "a");
  CAP_IS(c[1], "b");
  CAP_IS(c[2], "c/d");
  assert_null(c[3].buf);
  assert_int_equal(c[3].len, 0);
  /* Shortest first for the leftmost wildcard. */
  assert_true(m("banana", "*a*", c, 5));
  CAP_IS(c[0], "b");
  CAP_IS(c[1], "nana");
  /* A too-early split would put '/' inside '*': the matcher must look further. */
  assert_true(m("a/xa", "#a*", c, 5));
  CAP_IS(c[0], "a/x");
  CAP_IS(c[1], "");
  assert_true(m("ab/ab", "#a*b", c, 5));
  CAP_IS(c[0], "ab/");
  CAP_IS(c[1], "");
  assert_false(m("ab/xb", "*a*b", c, 5));
  /* Fewer slots than wildcards: only those are written. */
  cymg_str two[3] = {{"u", 1}, {"u", 1}, {"sentinel", 8}};
  assert_true(m("1/2/3", "?/?/?", two, 2));
  CAP_IS(two[0], "1");
  CAP_IS(two[1], "2");
  CAP_IS(two[2], "sentinel");
  /* No match leaves captures alone. */
  cymg_str one[2] = {{"u", 1}, {"v", 1}};
  assert_false(m("abc", "x*", one, 2));
  CAP_IS(one[0], "u");
  CAP_IS(one[1], "v");
  /* Exactly enough room: no terminator is written past the end. */
  cymg_str exact_caps[2] = {{NULL, 0}, {"sentinel", 8}};
  assert_true(m("q", "?", exact_caps, 1));
  CAP_IS(exact_caps[0], "q");
  CAP_IS(exact_caps[1], "sentinel");
}

static void test_pathological(void **state) {
  (void) state;
  size_t n = 100000;
  char *s = malloc(n + 2);
  assert_non_null(s);
  memset(s, 'a', n);
  s[n] = '\0';
  clock_t t0 = clock();
  assert_false(m(s, "*a*a*a*a*a*a*a*a*a*b", NULL, 0));
  assert_false(m(s, "#a#a#a#a#a#a#a#a#a#b", NULL, 0));
  assert_false(m(s, "*?*?*?*?*?*?*?*?*b", NULL, 0));
  assert_false(m(s, "#*#*#*#*#*#*#*b", NULL, 0));
  s[n] = 'b';
  s[n + 1] = '\0';
  cymg_str c[12];
  assert_true(m(s, "*a*a*a*a*a*a*a*a*a*b", c, 12));
  CAP_IS(c[0], "");
  assert_int_equal(c[9].len, n - 9);
  /* Slashes every few bytes make '*' fail late and often. */
  for (size_t i = 0; i < n; i += 7) s[i] = '/';
  s[n] = '\0';
  assert_false(m(s, "#a*a*a*a*a*a*a*b", NULL, 0));
  double secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
  /* Exponential behaviour would take ages; this is generous even under ASan. */
  assert_true(secs < 60);
  free(s);
}

static void test_bad_args(void **state) {
  (void) state;
  assert_false(cymg_match(cymg_str_n(NULL, 1), cymg_str_c("*"), NULL, 0));
  assert_false(cymg_match(cymg_str_c("a"), cymg_str_n(NULL, 1), NULL, 0));
  assert_true(cymg_match(cymg_str_n(NULL, 0), cymg_str_n(NULL, 0), NULL, 5));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_literals),     cmocka_unit_test(test_wildcards),
      cmocka_unit_test(test_captures),     cmocka_unit_test(test_pathological),
      cmocka_unit_test(test_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
