/* Tests for src/util/str.c. Malformed inputs are copied into exactly-sized heap
 * buffers (no trailing NUL) so that ASan reports any read past the view. */
#include "cymg_test.h"

#include <locale.h>
#include <math.h>

#include "cymg/str.h"

/* An exactly-sized heap copy of s; free with free(). */
static cymg_str heap(const char *s) {
  size_t n = strlen(s);
  char *p = malloc(n ? n : 1);
  assert_non_null(p);
  memcpy(p, s, n);
  return cymg_str_n(p, n);
}

static void test_eq_and_case(void **state) {
  (void) state;
  cymg_str empty = {NULL, 0};
  assert_true(cymg_str_eq(empty, cymg_str_c("")));
  assert_true(cymg_str_eq(cymg_str_c("abc"), cymg_str_c("abc")));
  assert_false(cymg_str_eq(cymg_str_c("abc"), cymg_str_c("abd")));
  assert_false(cymg_str_eq(cymg_str_c("abc"), cymg_str_c("ab")));
  assert_true(cymg_str_case_eq(cymg_str_c("Content-Length"), cymg_str_c("content-LENGTH")));
  assert_false(cymg_str_case_eq(cymg_str_c("a"), cymg_str_c("ab")));
  assert_int_equal(cymg_str_casecmp(empty, empty), 0);
  assert_true(cymg_str_casecmp(cymg_str_c("ab"), cymg_str_c("AC")) < 0);
  assert_true(cymg_str_casecmp(cymg_str_c("b"), cymg_str_c("A")) > 0);
  assert_true(cymg_str_casecmp(cymg_str_c("ab"), cymg_str_c("ABc")) < 0);
  assert_true(cymg_str_casecmp(cymg_str_c("abc"), cymg_str_c("AB")) > 0);
  /* Only ASCII folds: '[' (0x5B) and '{' (0x7B) differ by 0x20 but are not letters. */
  assert_false(cymg_str_case_eq(cymg_str_c("["), cymg_str_c("{")));
  assert_false(cymg_str_case_eq(cymg_str_c("\xc4"), cymg_str_c("\xe4")));
}

static void test_starts(void **state) {
  (void) state;
  cymg_str empty = {NULL, 0};
  assert_true(cymg_str_starts(cymg_str_c("hello"), cymg_str_c("he")));
  assert_true(cymg_str_starts(cymg_str_c("hello"), empty));
  assert_true(cymg_str_starts(empty, empty));
  assert_false(cymg_str_starts(cymg_str_c("he"), cymg_str_c("hello")));
  assert_false(cymg_str_starts(cymg_str_c("hello"), cymg_str_c("He")));
  assert_true(cymg_str_case_starts(cymg_str_c("hello"), cymg_str_c("HE")));
  assert_false(cymg_str_case_starts(cymg_str_c("h"), cymg_str_c("HE")));
}

static void test_trim(void **state) {
  (void) state;
  cymg_str t = cymg_str_trim(cymg_str_c(" \t a b \t "));
  assert_int_equal(t.len, 3);
  assert_memory_equal(t.buf, "a b", 3);
  assert_int_equal(cymg_str_trim(cymg_str_c(" \t ")).len, 0);
  assert_int_equal(cymg_str_trim(cymg_str_n(NULL, 0)).len, 0);
  /* OWS is space and tab only. */
  assert_int_equal(cymg_str_trim(cymg_str_c("\r\nx\n")).len, 4);
}

static void check_i64(const char *s, int rc, int64_t want) {
  cymg_str in = heap(s);
  int64_t v = 12345;
  assert_int_equal(cymg_str_to_i64(in, &v), rc);
  if (rc == 0) assert_true(v == want);
  else assert_true(v == 12345); /* untouched on failure */
  free((void *) in.buf);
}

static void test_to_i64(void **state) {
  (void) state;
  check_i64("0", 0, 0);
  check_i64("-0", 0, 0);
  check_i64("+42", 0, 42);
  check_i64("-42", 0, -42);
  check_i64("007", 0, 7);
  check_i64("9223372036854775807", 0, INT64_MAX);
  check_i64("-9223372036854775808", 0, INT64_MIN);
  check_i64("9223372036854775808", CYMG_ERANGE, 0);
  check_i64("-9223372036854775809", CYMG_ERANGE, 0);
  check_i64("99999999999999999999999", CYMG_ERANGE, 0);
  check_i64("", CYMG_EPARSE, 0);
  check_i64("-", CYMG_EPARSE, 0);
  check_i64("+", CYMG_EPARSE, 0);
  check_i64(" 1", CYMG_EPARSE, 0);
  check_i64("1 ", CYMG_EPARSE, 0);
  check_i64("1a", CYMG_EPARSE, 0);
  check_i64("0x10", CYMG_EPARSE, 0);
  check_i64("--1", CYMG_EPARSE, 0);
  check_i64("1.0", CYMG_EPARSE, 0);
  /* Garbage after an overflow is still garbage. */
  check_i64("99999999999999999999x", CYMG_EPARSE, 0);
  int64_t v;
  assert_int_equal(cymg_str_to_i64(cymg_str_n(NULL, 0), &v), CYMG_EPARSE);
}

static void check_u64(const char *s, int base, int rc, uint64_t want) {
  cymg_str in = heap(s);
  uint64_t v = 12345;
  assert_int_equal(cymg_str_to_u64(in, base, &v), rc);
  if (rc == 0) assert_true(v == want);
  else assert_true(v == 12345);
  free((void *) in.buf);
}

static void test_to_u64(void **state) {
  (void) state;
  check_u64("0", 10, 0, 0);
  check_u64("18446744073709551615", 10, 0, UINT64_MAX);
  check_u64("18446744073709551616", 10, CYMG_ERANGE, 0);
  check_u64("18446744073709551620", 10, CYMG_ERANGE, 0);
  check_u64("ffffffffffffffff", 16, 0, UINT64_MAX);
  check_u64("FFFFFFFFFFFFFFFF", 16, 0, UINT64_MAX);
  check_u64("10000000000000000", 16, CYMG_ERANGE, 0);
  check_u64("0000000000000000000000001", 16, 0, 1); /* leading zeros are not overflow */
  check_u64("1aF", 16, 0, 0x1af);
  check_u64("1a", 10, CYMG_EPARSE, 0);
  check_u64("0x1a", 16, CYMG_EPARSE, 0);
  check_u64("g", 16, CYMG_EPARSE, 0);
  check_u64("", 10, CYMG_EPARSE, 0);
  check_u64("", 16, CYMG_EPARSE, 0);
  check_u64("+1", 10, CYMG_EPARSE, 0);
  check_u64("-1", 10, CYMG_EPARSE, 0);
  check_u64(" 1", 10, CYMG_EPARSE, 0);
  check_u64("1\t", 16, CYMG_EPARSE, 0);
  check_u64("10", 8, CYMG_EINVAL, 0);
  check_u64("10", 0, CYMG_EINVAL, 0);
}

static void check_dbl(const char *s, int rc, double want) {
  cymg_str in = heap(s);
  double v = 12345;
  assert_int_equal(cymg_str_to_double(in, &v), rc);
  if (rc == 0) assert_true(v == want);
  else assert_true(v == 12345);
  free((void *) in.buf);
}

static void test_to_double(void **state) {
  (void) state;
  check_dbl("0", 0, 0);
  check_dbl("1.5", 0, 1.5);
  check_dbl("-2.25e2", 0, -225);
  check_dbl("+.5", 0, 0.5);
  check_dbl("5.", 0, 5);
  check_dbl("1E-2", 0, 0.01);
  check_dbl("0e999999", 0, 0);
  check_dbl("1.7976931348623157e308", 0, 1.7976931348623157e308);
  check_dbl("1e309", CYMG_ERANGE, 0);
  check_dbl("-1e309", CYMG_ERANGE, 0);
  check_dbl("1e-400", CYMG_ERANGE, 0);
  check_dbl("", CYMG_EPARSE, 0);
  check_dbl(".", CYMG_EPARSE, 0);
  check_dbl("-", CYMG_EPARSE, 0);
  check_dbl("1e", CYMG_EPARSE, 0);
  check_dbl("1e+", CYMG_EPARSE, 0);
  check_dbl(" 1", CYMG_EPARSE, 0);
  check_dbl("1 ", CYMG_EPARSE, 0);
  check_dbl("inf", CYMG_EPARSE, 0);
  check_dbl("nan", CYMG_EPARSE, 0);
  check_dbl("0x1p3", CYMG_EPARSE, 0);
  check_dbl("1,5", CYMG_EPARSE, 0);
  check_dbl("1.2.3", CYMG_EPARSE, 0);
  /* A long input takes the heap path. */
  char big[300];
  memset(big, '0', sizeof(big) - 1);
  big[0] = '1';
  big[1] = '.';
  big[sizeof(big) - 1] = '\0';
  check_dbl(big, 0, 1.0);
}

/* The process locale must not change the decimal point. */
static void test_to_double_locale(void **state) {
  (void) state;
  const char *locs[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "C.UTF-8"};
  for (size_t i = 0; i < sizeof(locs) / sizeof(locs[0]); i++) {
    if (setlocale(LC_NUMERIC, locs[i]) == NULL) continue;
    check_dbl("1.5", 0, 1.5);
    check_dbl("1,5", CYMG_EPARSE, 0);
  }
  setlocale(LC_NUMERIC, "C");
}

static void test_find(void **state) {
  (void) state;
  cymg_str hay = heap("abcabcd");
  cymg_str r = cymg_str_find(hay, cymg_str_c("abcd"));
  assert_ptr_equal(r.buf, hay.buf + 3);
  assert_int_equal(r.len, 4);
  r = cymg_str_find(hay, cymg_str_c("bc"));
  assert_ptr_equal(r.buf, hay.buf + 1);
  assert_null(cymg_str_find(hay, cymg_str_c("abcde")).buf);
  assert_null(cymg_str_find(hay, cymg_str_c("abcabcdx")).buf);
  assert_null(cymg_str_find(hay, cymg_str_c("x")).buf);
  r = cymg_str_find(hay, cymg_str_c("d"));
  assert_ptr_equal(r.buf, hay.buf + 6);
  r = cymg_str_find(hay, cymg_str_c(""));
  assert_ptr_equal(r.buf, hay.buf);
  assert_int_equal(r.len, 0);
  assert_null(cymg_str_find(cymg_str_n(NULL, 0), cymg_str_c("a")).buf);
  free((void *) hay.buf);
}

static void test_split(void **state) {
  (void) state;
  cymg_str in = heap("a,,bc,");
  cymg_str rest = in, tok;
  assert_true(cymg_str_split(&rest, ',', &tok));
  assert_true(cymg_str_eq(tok, cymg_str_c("a")));
  assert_true(cymg_str_split(&rest, ',', &tok));
  assert_int_equal(tok.len, 0);
  assert_true(cymg_str_split(&rest, ',', &tok));
  assert_true(cymg_str_eq(tok, cymg_str_c("bc")));
  assert_false(cymg_str_split(&rest, ',', &tok));
  assert_false(cymg_str_split(&rest, ',', &tok));
  free((void *) in.buf);

  rest = cymg_str_n(NULL, 0);
  assert_false(cymg_str_split(&rest, ',', &tok));
  rest = cymg_str_c("abc");
  assert_true(cymg_str_split(&rest, ',', &tok));
  assert_true(cymg_str_eq(tok, cymg_str_c("abc")));
  assert_false(cymg_str_split(&rest, ',', &tok));
  rest = cymg_str_c(",x");
  assert_true(cymg_str_split(&rest, ',', &tok));
  assert_int_equal(tok.len, 0);
  assert_true(cymg_str_split(&rest, ',', &tok));
  assert_true(cymg_str_eq(tok, cymg_str_c("x")));
  /* On false the part is still set: an empty view, never left as it was. */
  tok = cymg_str_c("stale");
  assert_false(cymg_str_split(&rest, ',', &tok));
  assert_int_equal(tok.len, 0);
  rest = cymg_str_n(NULL, 0);
  tok = cymg_str_c("stale");
  assert_false(cymg_str_split(&rest, ',', &tok));
  assert_int_equal(tok.len, 0);
}

static void test_dup(void **state) {
  (void) state;
  char *p = cymg_str_dup(cymg_str_n("a\0b", 3));
  assert_non_null(p);
  assert_memory_equal(p, "a\0b", 4);
  free(p);
  p = cymg_str_dup(cymg_str_n(NULL, 0));
  assert_non_null(p);
  assert_string_equal(p, "");
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_eq_and_case), cmocka_unit_test(test_starts),
      cmocka_unit_test(test_trim),        cmocka_unit_test(test_to_i64),
      cmocka_unit_test(test_to_u64),      cmocka_unit_test(test_to_double),
      cmocka_unit_test(test_to_double_locale), cmocka_unit_test(test_find),
      cmocka_unit_test(test_split),       cmocka_unit_test(test_dup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
