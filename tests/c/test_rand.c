/* Tests for src/util/rand.c: lengths, alphabet, uniqueness, clocks. */
#include "cymg_test.h"

#include <time.h>

#include "cymg/rand.h"

static void test_random_bytes(void **state) {
  (void) state;
  uint8_t a[64], b[64];
  assert_int_equal(cymg_random_bytes(a, sizeof(a)), 0);
  assert_int_equal(cymg_random_bytes(b, sizeof(b)), 0);
  /* 2^-512 chance of a false failure. */
  assert_memory_not_equal(a, b, sizeof(a));
  assert_int_equal(cymg_random_bytes(NULL, 0), 0);
  assert_int_equal(cymg_random_bytes(NULL, 1), CYMG_EINVAL);
  /* Larger than one getrandom() call returns (32 MiB): exercises the short-read loop. */
  size_t big = (32u << 20) + 4096;
  uint8_t *p = calloc(1, big);
  assert_non_null(p);
  assert_int_equal(cymg_random_bytes(p, big), 0);
  /* The tail was filled too: 4096 zero bytes by chance is impossible in practice. */
  size_t zeros = 0;
  for (size_t i = big - 4096; i < big; i++) zeros += p[i] == 0;
  assert_true(zeros < 100);
  free(p);
}

static bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static void test_random_str(void **state) {
  (void) state;
  static const size_t lens[] = {0, 1, 7, 16, 63, 64, 65, 1000};
  for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
    size_t n = lens[k];
    char *s = malloc(n + 1); /* exactly len + 1: ASan catches a write past the NUL */
    assert_non_null(s);
    assert_int_equal(cymg_random_str(s, n), 0);
    assert_int_equal(strlen(s), n);
    for (size_t i = 0; i < n; i++) assert_true(is_alnum(s[i]));
    free(s);
  }
  char a[33], b[33];
  assert_int_equal(cymg_random_str(a, 32), 0);
  assert_int_equal(cymg_random_str(b, 32), 0);
  assert_string_not_equal(a, b);
  assert_int_equal(cymg_random_str(NULL, 3), CYMG_EINVAL);
}

/* Every one of the 62 characters shows up, and none dominates: a coarse check that
 * catches a wrong alphabet or a gross bias, not a statistical test. */
static void test_random_str_spread(void **state) {
  (void) state;
  enum { N = 62 * 2000 };
  char *s = malloc(N + 1);
  assert_non_null(s);
  assert_int_equal(cymg_random_str(s, N), 0);
  int count[256] = {0};
  for (size_t i = 0; i < N; i++) count[(unsigned char) s[i]]++;
  int seen = 0;
  for (int c = 0; c < 256; c++) {
    if (count[c] == 0) continue;
    seen++;
    /* Expected 2000 each; sd is about 44, so these bounds are > 10 sd away. */
    assert_true(count[c] > 1500 && count[c] < 2500);
  }
  assert_int_equal(seen, 62);
  free(s);
}

static void test_clocks(void **state) {
  (void) state;
  uint64_t t0 = cymg_millis();
  struct timespec ts = {0, 20 * 1000000};
  nanosleep(&ts, NULL);
  uint64_t t1 = cymg_millis();
  assert_true(t1 >= t0 + 19);
  assert_true(t1 - t0 < 10000);
  /* 2020-01-01 .. 2200-01-01 in epoch ms: a sanity window, not a clock check. */
  int64_t w = cymg_wall_millis();
  assert_true(w > INT64_C(1577836800000));
  assert_true(w < INT64_C(7258118400000));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_bytes),
      cmocka_unit_test(test_random_str),
      cmocka_unit_test(test_random_str_spread),
      cmocka_unit_test(test_clocks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
