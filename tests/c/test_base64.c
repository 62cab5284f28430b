/* base64: RFC 4648 section 10 vectors, strict decoding, URL-safe variant. */
#include "cymg_test.h"
#include "cymg/base64.h"

/* Copies into an exactly sized heap block so ASan catches any over-read. */
static cymg_str exact(const char *s, size_t n) {
  char *p = malloc(n ? n : 1);
  assert_non_null(p);
  memcpy(p, s, n);
  return cymg_str_n(p, n);
}

static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const encoded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

static void test_rfc4648_vectors(void **state) {
  (void) state;
  for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
    cymg_buf b = {NULL, 0, 0};
    cymg_str in = exact(plain[i], strlen(plain[i]));
    assert_int_equal(cymg_base64_encode(in, &b), (int) strlen(encoded[i]));
    assert_memory_equal(b.buf, encoded[i], strlen(encoded[i]) + 1);
    assert_int_equal(cymg_base64_encoded_len(in.len), strlen(encoded[i]));
    free((void *) in.buf);
    cymg_buf_free(&b);

    cymg_str enc = exact(encoded[i], strlen(encoded[i]));
    assert_int_equal(cymg_base64_decode(enc, &b), (int) strlen(plain[i]));
    assert_int_equal(b.len, strlen(plain[i]));
    if (b.len) assert_memory_equal(b.buf, plain[i], b.len);
    cymg_buf_free(&b);
    free((void *) enc.buf);
  }
}

static void test_url_vectors(void **state) {
  (void) state;
  for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
    size_t unpadded = strcspn(encoded[i], "=");
    cymg_buf b = {NULL, 0, 0};
    cymg_str in = exact(plain[i], strlen(plain[i]));
    assert_int_equal(cymg_base64url_encode(in, &b), (int) unpadded);
    if (unpadded) assert_memory_equal(b.buf, encoded[i], unpadded);
    free((void *) in.buf);
    cymg_buf_free(&b);
    /* Both padded and unpadded spellings decode. */
    for (int padded = 0; padded < 2; padded++) {
      size_t n = padded ? strlen(encoded[i]) : unpadded;
      cymg_str enc = exact(encoded[i], n);
      assert_int_equal(cymg_base64url_decode(enc, &b), (int) strlen(plain[i]));
      if (b.len) assert_memory_equal(b.buf, plain[i], b.len);
      cymg_buf_free(&b);
      free((void *) enc.buf);
    }
  }
  /* The alphabets differ in exactly two symbols. */
  const unsigned char raw[] = {0xfb, 0xff, 0xbf};
  cymg_buf b = {NULL, 0, 0};
  assert_int_equal(cymg_base64_encode(cymg_str_n(raw, 3), &b), 4);
  assert_string_equal(b.buf, "+/+/");
  b.len = 0;
  assert_int_equal(cymg_base64url_encode(cymg_str_n(raw, 3), &b), 4);
  assert_string_equal(b.buf, "-_-_");
  cymg_buf_free(&b);
}

static void test_strict_rejects(void **state) {
  (void) state;
  static const char *const bad_std[] = {
      "Zg=",   "Zg",    "Z",     "Z===",  "====",     "Zh==",      "Zm9=",  "Zg==Zg==",
      "Zm9v\n", " Zm9v", "Zm9v ", "Zm-v",  "Zm_v",     "Zm9vY===",  "Zm=v",  "=Zm9",
      "Zm9vYg=", "Zm9v\r\nYmFy", "Zg=\0"};
  for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
    cymg_buf b = {NULL, 0, 0};
    assert_int_equal(cymg_buf_append(&b, "keep", 4), 0);
    size_t n = strlen(bad_std[i]);
    if (i == sizeof(bad_std) / sizeof(bad_std[0]) - 1) n = 4; /* embedded NUL */
    cymg_str in = exact(bad_std[i], n);
    assert_int_equal(cymg_base64_decode(in, &b), CYMG_EPARSE);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.buf, "keep");
    free((void *) in.buf);
    cymg_buf_free(&b);
  }
  static const char *const bad_url[] = {"Zg=", "Z", "Zh", "Zm9", "Zm+v", "Zm/v", "Zg=a", "Z==="};
  for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
    cymg_buf b = {NULL, 0, 0};
    cymg_str in = exact(bad_url[i], strlen(bad_url[i]));
    assert_int_equal(cymg_base64url_decode(in, &b), CYMG_EPARSE);
    assert_int_equal(b.len, 0);
    free((void *) in.buf);
    cymg_buf_free(&b);
  }
}

static void test_roundtrip_all_bytes(void **state) {
  (void) state;
  unsigned char data[300];
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (unsigned char) (i * 7 + 3);
  for (size_t n = 0; n <= sizeof(data); n += (n < 20 ? 1 : 37)) {
    for (int url = 0; url < 2; url++) {
      cymg_buf e = {NULL, 0, 0}, d = {NULL, 0, 0};
      int rc = url ? cymg_base64url_encode(cymg_str_n(data, n), &e)
                   : cymg_base64_encode(cymg_str_n(data, n), &e);
      assert_true(rc >= 0);
      cymg_str enc = exact(e.buf ? e.buf : "", e.len);
      rc = url ? cymg_base64url_decode(enc, &d) : cymg_base64_decode(enc, &d);
      assert_int_equal(rc, (int) n);
      if (n) assert_memory_equal(d.buf, data, n);
      free((void *) enc.buf);
      cymg_buf_free(&e);
      cymg_buf_free(&d);
    }
  }
}

static void test_appends_and_lengths(void **state) {
  (void) state;
  cymg_buf b = {NULL, 0, 0};
  assert_int_equal(cymg_buf_append(&b, "x:", 2), 0);
  assert_int_equal(cymg_base64_encode(cymg_str_c("hi"), &b), 4);
  assert_string_equal(b.buf, "x:aGk=");
  assert_int_equal(cymg_base64_decode(cymg_str_c("aGk="), &b), 2);
  assert_string_equal(b.buf, "x:aGk=hi");
  cymg_buf_free(&b);
  assert_int_equal(cymg_base64_encoded_len(0), 0);
  assert_int_equal(cymg_base64_encoded_len(1), 4);
  assert_int_equal(cymg_base64_encoded_len(3), 4);
  assert_int_equal(cymg_base64_encoded_len(4), 8);
  assert_int_equal(cymg_base64_encoded_len(SIZE_MAX), 0);
  assert_int_equal(cymg_base64_encode(cymg_str_c("a"), NULL), CYMG_EINVAL);
  assert_int_equal(cymg_base64_decode(cymg_str_n(NULL, 3), &b), CYMG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc4648_vectors),     cmocka_unit_test(test_url_vectors),
      cmocka_unit_test(test_strict_rejects),      cmocka_unit_test(test_roundtrip_all_bytes),
      cmocka_unit_test(test_appends_and_lengths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
