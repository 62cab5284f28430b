/* Path normalisation for file serving: every traversal trick must be refused or
 * resolved inside the root, and every input is also run from an exactly-sized
 * heap copy so ASan catches any read past its end. */
#include "cymg_test.h"
#include "cymg/error.h"
#include "http/static_internal.h"

typedef struct pcase {
  const char *in;
  int rc;          /* expected length, or error */
  const char *out; /* expected result when rc >= 0 */
} pcase;

static int norm(const char *in, size_t n, char *out, size_t out_len) {
  char *copy = malloc(n ? n : 1);
  assert_non_null(copy);
  memcpy(copy, in, n);
  int rc = cymg__http_normalize_path(cymg_str_n(copy, n), out, out_len);
  free(copy);
  return rc;
}

static void run(const pcase *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char out[256];
    int rc = norm(t[i].in, strlen(t[i].in), out, sizeof(out));
    if (t[i].rc >= 0) {
      if (rc < 0 || strcmp(out, t[i].out) != 0)
        fail_msg("%s: got %d '%s', want '%s'", t[i].in, rc, rc >= 0 ? out : "", t[i].out);
      assert_int_equal(rc, strlen(t[i].out));
    } else {
      if (rc != t[i].rc) fail_msg("%s: got %d '%s', want %d", t[i].in, rc, out, t[i].rc);
      assert_string_equal(out, "");
    }
  }
}

static void test_plain(void **state) {
  (void)state;
  static const pcase t[] = {
      {"/", 1, "/"},
      {"/a", 2, "/a"},
      {"/a/", 3, "/a/"},
      {"/a/b.txt", 8, "/a/b.txt"},
      {"//a//b//", 5, "/a/b/"},
      {"///", 1, "/"},
      {"/a%20b", 4, "/a b"},
      {"/%41%62", 3, "/Ab"},
      {"/%7e~", 3, "/~~"},
      {"/100%25", 5, "/100%"},
      {"/caf%C3%A9", 6, "/caf\xc3\xa9"},
      {"/\xe2\x82\xac/x", 6, "/\xe2\x82\xac/x"},
      {"/a+b", 4, "/a+b"}, /* '+' is not a space in paths */
      {"/...", 4, "/..."}, /* not a dot segment: a name */
      {"/a..", 4, "/a.."},
      {"/..a", 4, "/..a"},
      {"/.hidden", 8, "/.hidden"}, /* dot files are the file layer's policy */
  };
  run(t, sizeof(t) / sizeof(t[0]));
}

static void test_dots(void **state) {
  (void)state;
  static const pcase t[] = {
      {"/.", 1, "/"},
      {"/./", 1, "/"},
      {"/a/.", 3, "/a/"},
      {"/a/./b", 4, "/a/b"},
      {"/a/..", 1, "/"},
      {"/a/../", 1, "/"},
      {"/a/b/..", 3, "/a/"},
      {"/a/b/../c", 4, "/a/c"},
      {"/a/b/../../c", 2, "/c"},
      {"/a/%2e%2e/b", 2, "/b"},
      {"/a/%2E%2E", 1, "/"},
      {"/a/%2e", 3, "/a/"},
      {"/a/.%2e/", 1, "/"},
      {"/a/b/%2E./c", 4, "/a/c"},
      {"/a//..//b", 2, "/b"}, /* as the file system reads it: "a//.." is "a/.." */
  };
  run(t, sizeof(t) / sizeof(t[0]));
}

static void test_traversal(void **state) {
  (void)state;
  static const pcase t[] = {
      {"/..", CYMG_EINVAL, NULL},
      {"/../", CYMG_EINVAL, NULL},
      {"/../etc/passwd", CYMG_EINVAL, NULL},
      {"/a/../../b", CYMG_EINVAL, NULL},
      {"/a/../..", CYMG_EINVAL, NULL},
      {"/%2e%2e/etc/passwd", CYMG_EINVAL, NULL},
      {"/%2E%2E/etc/passwd", CYMG_EINVAL, NULL},
      {"/%2E./etc/passwd", CYMG_EINVAL, NULL},
      {"/.%2e/etc/passwd", CYMG_EINVAL, NULL},
      {"/..%2fetc/passwd", CYMG_EINVAL, NULL},
      {"/..%2Fetc%2Fpasswd", CYMG_EINVAL, NULL},
      {"/a%2fb", CYMG_EINVAL, NULL},
      {"/%2f", CYMG_EINVAL, NULL},
      {"/%5c", CYMG_EINVAL, NULL},
      {"/..%5c..%5cetc", CYMG_EINVAL, NULL},
      {"/a\\b", CYMG_EINVAL, NULL},
      {"/..\\..\\etc", CYMG_EINVAL, NULL},
      {"/a%00.html", CYMG_EINVAL, NULL},
      {"/%00", CYMG_EINVAL, NULL},
      {"/a%0a", CYMG_EINVAL, NULL},
      {"/a%0d%0aSet-Cookie:x", CYMG_EINVAL, NULL},
      {"/a%7f", CYMG_EINVAL, NULL},
      {"/a%1f", CYMG_EINVAL, NULL},
      {"/./../x", CYMG_EINVAL, NULL},
      {"/a/./../../x", CYMG_EINVAL, NULL},
  };
  run(t, sizeof(t) / sizeof(t[0]));
}

static void test_absolute_and_doubled(void **state) {
  (void)state;
  /* Leading slashes collapse, so "//etc/passwd" is "/etc/passwd" relative to
   * the root, never an absolute or network path. */
  static const pcase t[] = {
      {"//etc/passwd", 11, "/etc/passwd"},
      {"///etc//passwd", 11, "/etc/passwd"},
      {"/C:/Windows", 11, "/C:/Windows"}, /* just a name on POSIX */
  };
  run(t, sizeof(t) / sizeof(t[0]));
}

static void test_malformed(void **state) {
  (void)state;
  static const pcase t[] = {
      {"", CYMG_EPARSE, NULL},        {"a", CYMG_EPARSE, NULL},     {"*", CYMG_EPARSE, NULL},
      {"host:80", CYMG_EPARSE, NULL}, {"../x", CYMG_EPARSE, NULL},  {"/%", CYMG_EPARSE, NULL},
      {"/%2", CYMG_EPARSE, NULL},     {"/a%g0", CYMG_EPARSE, NULL}, {"/a%0g", CYMG_EPARSE, NULL},
      {"/%%32e", CYMG_EPARSE, NULL}, /* no double decoding */
  };
  run(t, sizeof(t) / sizeof(t[0]));
  /* Double encoding decodes once only: "%252e" is the name "%2e". */
  char out[32];
  assert_int_equal(norm("/%252e%252e/x", 13, out, sizeof(out)), 9);
  assert_string_equal(out, "/%2e%2e/x");
}

static void test_embedded_nul(void **state) {
  (void)state;
  char out[32];
  assert_int_equal(norm("/a\0b", 4, out, sizeof(out)), CYMG_EINVAL);
  assert_int_equal(norm("/\0", 2, out, sizeof(out)), CYMG_EINVAL);
}

static void test_space(void **state) {
  (void)state;
  char out[8];
  /* uri.len + 1 always fits. */
  assert_int_equal(norm("/abcdef", 7, out, 8), 7);
  assert_int_equal(norm("/abcdefg", 8, out, 8), CYMG_ENOSPC);
  assert_string_equal(out, "");
  assert_int_equal(norm("/abc/de/", 8, out, 8), CYMG_ENOSPC);
  assert_string_equal(out, "");
  assert_int_equal(norm("/abc/de", 7, out, 8), 7);
  assert_string_equal(out, "/abc/de");
  assert_int_equal(norm("/a/", 3, out, 1), CYMG_ENOSPC);
  assert_int_equal(norm("/", 1, out, 2), 1);
  assert_int_equal(cymg__http_normalize_path(cymg_str_c("/"), out, 0), CYMG_EINVAL);
  assert_int_equal(cymg__http_normalize_path(cymg_str_c("/"), NULL, 8), CYMG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain),     cmocka_unit_test(test_dots),
      cmocka_unit_test(test_traversal), cmocka_unit_test(test_absolute_and_doubled),
      cmocka_unit_test(test_malformed), cmocka_unit_test(test_embedded_nul),
      cmocka_unit_test(test_space),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
