/* Tests for src/util/form.c. Query strings are copied into exactly-sized heap
 * buffers without a NUL so that ASan reports any read past the view. */
#include "cymg_test.h"

#include "cymg/url.h"

static cymg_str heap(const char *s) {
  size_t n = strlen(s);
  char *p = malloc(n ? n : 1);
  assert_non_null(p);
  memcpy(p, s, n);
  return cymg_str_n(p, n);
}

/* Looks name up in q with a generous buffer; returns the rc, value in out. */
static int var(const char *q, const char *name, char *out, size_t out_len) {
  cymg_str in = heap(q);
  int rc = cymg_http_var(in, name, out, out_len);
  free((void *) in.buf);
  return rc;
}

static void test_lookup(void **state) {
  (void) state;
  char v[64];
  assert_int_equal(var("a=1&b=2", "a", v, sizeof(v)), 1);
  assert_string_equal(v, "1");
  assert_int_equal(var("a=1&b=2", "b", v, sizeof(v)), 1);
  assert_string_equal(v, "2");
  assert_int_equal(var("a=1&b=2&a=3", "a", v, sizeof(v)), 1); /* first wins */
  assert_string_equal(v, "1");
  assert_int_equal(var("a=1&b=2", "c", v, sizeof(v)), CYMG_ENOTFOUND);
  assert_string_equal(v, "");
  assert_int_equal(var("", "a", v, sizeof(v)), CYMG_ENOTFOUND);
  assert_int_equal(var("&&", "a", v, sizeof(v)), CYMG_ENOTFOUND);
  assert_int_equal(var("&&a=x&", "a", v, sizeof(v)), 1);
  assert_string_equal(v, "x");
  /* Values may contain '='. */
  assert_int_equal(var("t=a=b", "t", v, sizeof(v)), 3);
  assert_string_equal(v, "a=b");
}

static void test_empty_and_bare(void **state) {
  (void) state;
  char v[8] = "junk";
  assert_int_equal(var("a=&b=2", "a", v, sizeof(v)), 0);
  assert_string_equal(v, "");
  strcpy(v, "junk");
  assert_int_equal(var("x=1&a&b=2", "a", v, sizeof(v)), 0);
  assert_string_equal(v, "");
  assert_int_equal(var("a", "a", v, sizeof(v)), 0);
  assert_int_equal(var("b=1&a", "a", v, sizeof(v)), 0);
}

static void test_exact_name(void **state) {
  (void) state;
  char v[8];
  assert_int_equal(var("ab=1", "a", v, sizeof(v)), CYMG_ENOTFOUND);
  assert_int_equal(var("a=1", "ab", v, sizeof(v)), CYMG_ENOTFOUND);
  assert_int_equal(var("ba=1", "a", v, sizeof(v)), CYMG_ENOTFOUND);
  assert_int_equal(var("ab=1&a=2", "a", v, sizeof(v)), 1);
  assert_string_equal(v, "2");
  assert_int_equal(var("A=1", "a", v, sizeof(v)), CYMG_ENOTFOUND); /* case-sensitive */
  assert_int_equal(var("xa=1&a=", "a", v, sizeof(v)), 0);
  /* Keys are decoded before comparing, as browsers encode field names. */
  assert_int_equal(var("first+name=Ada", "first name", v, sizeof(v)), 3);
  assert_string_equal(v, "Ada");
  assert_int_equal(var("a%5B%5d=7", "a[]", v, sizeof(v)), 1);
  assert_string_equal(v, "7");
  assert_int_equal(var("a%=1&a=2", "a", v, sizeof(v)), 1); /* bad key skipped */
  assert_string_equal(v, "2");
  assert_int_equal(var("a%4=1", "a", v, sizeof(v)), CYMG_ENOTFOUND);
  assert_int_equal(var("a=1", "", v, sizeof(v)), CYMG_EINVAL);
  assert_int_equal(cymg_http_var(cymg_str_c("a=1"), NULL, v, sizeof(v)), CYMG_EINVAL);
  assert_int_equal(cymg_http_var(cymg_str_c("a=1"), "a", NULL, 8), CYMG_EINVAL);
}

static void test_decoding(void **state) {
  (void) state;
  char v[32];
  assert_int_equal(var("q=hello+world%21", "q", v, sizeof(v)), 12);
  assert_string_equal(v, "hello world!");
  assert_int_equal(var("q=%2B%26%3d", "q", v, sizeof(v)), 3);
  assert_string_equal(v, "+&=");
  assert_int_equal(var("q=a%00b", "q", v, sizeof(v)), 3); /* NUL inside: length tells */
  assert_memory_equal(v, "a\0b", 4);
}

static void test_dst_size(void **state) {
  (void) state;
  char v[6];
  /* "hello" needs 6 bytes with its NUL. */
  assert_int_equal(var("x=hello", "x", v, 6), 5);
  assert_string_equal(v, "hello");
  assert_int_equal(var("x=hello", "x", v, 5), CYMG_ENOSPC);
  assert_string_equal(v, ""); /* nothing truncated: empty, not "hell" */
  assert_int_equal(var("x=h%41llo", "x", v, 6), 5);
  assert_string_equal(v, "hAllo");
  assert_int_equal(var("x=h%41llo", "x", v, 5), CYMG_ENOSPC);
  assert_int_equal(var("x=", "x", v, 1), 0);
  assert_int_equal(var("x=", "x", v, 0), CYMG_ENOSPC);
  assert_int_equal(var("y=", "x", v, 0), CYMG_ENOTFOUND);
}

static void test_bad_escapes(void **state) {
  (void) state;
  static const char *bad[] = {"v=%", "v=%1", "v=%G1", "v=a%", "v=%zz&w=1", "v=ab%4"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char v[16] = "junk";
    assert_int_equal(var(bad[i], "v", v, sizeof(v)), CYMG_EPARSE);
    assert_string_equal(v, "");
  }
  char v[16];
  /* A bad escape in another pair's value does not matter. */
  assert_int_equal(var("w=%&v=ok", "v", v, sizeof(v)), 2);
}

static void test_var_buf(void **state) {
  (void) state;
  cymg_buf b = {0};
  cymg_str q = heap("a=1&msg=hi+there%21&e=&bad=%G");
  assert_int_equal(cymg_http_var_buf(q, "msg", &b), 9);
  assert_string_equal(b.buf, "hi there!");
  assert_int_equal(cymg_http_var_buf(q, "a", &b), 1); /* appends */
  assert_string_equal(b.buf, "hi there!1");
  assert_int_equal(cymg_http_var_buf(q, "e", &b), 0);
  assert_int_equal(cymg_http_var_buf(q, "nope", &b), CYMG_ENOTFOUND);
  assert_int_equal(cymg_http_var_buf(q, "bad", &b), CYMG_EPARSE);
  assert_int_equal(cymg_http_var_buf(q, "a", NULL), CYMG_EINVAL);
  assert_string_equal(b.buf, "hi there!1");
  cymg_buf_free(&b);
  free((void *) q.buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lookup),     cmocka_unit_test(test_empty_and_bare),
      cmocka_unit_test(test_exact_name), cmocka_unit_test(test_decoding),
      cmocka_unit_test(test_dst_size),   cmocka_unit_test(test_bad_escapes),
      cmocka_unit_test(test_var_buf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
