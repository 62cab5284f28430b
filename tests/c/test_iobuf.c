/* Buffers: the connection I/O buffer and the public growable buffer. */
#include "cymg_test.h"
#include "internal.h"

static void test_iobuf_grow_consume(void **state) {
  (void) state;
  cymg__iobuf b = {0};
  assert_int_equal(cymg__iobuf_append(&b, "hello", 5, 0), 0);
  assert_int_equal(b.len, 5);
  cymg__iobuf_consume(&b, 2);
  assert_int_equal(b.len, 3);
  assert_memory_equal(cymg__iobuf_data(&b), "llo", 3);
  /* Room is made by sliding the data down before allocating more. */
  size_t size = b.size;
  assert_int_equal(cymg__iobuf_reserve(&b, size - 3, 0), 0);
  assert_int_equal(b.size, size);
  assert_int_equal(b.head, 0);
  assert_memory_equal(cymg__iobuf_data(&b), "llo", 3);
  cymg__iobuf_consume(&b, 100); /* clamped */
  assert_int_equal(b.len, 0);
  assert_int_equal(b.head, 0);
  cymg__iobuf_free(&b);
  assert_null(b.buf);
}

static void test_iobuf_limit(void **state) {
  (void) state;
  cymg__iobuf b = {0};
  char data[100] = {0};
  assert_int_equal(cymg__iobuf_append(&b, data, 60, 100), 0);
  assert_int_equal(cymg__iobuf_append(&b, data, 41, 100), CYMG_ELIMIT);
  assert_int_equal(b.len, 60);
  assert_int_equal(cymg__iobuf_append(&b, data, 40, 100), 0);
  assert_true(b.size <= 100 + 0); /* never allocates past the limit */
  assert_int_equal(cymg__iobuf_reserve(&b, SIZE_MAX, 100), CYMG_ELIMIT);
  cymg__iobuf_free(&b);
}

/* Cutting out of the middle: the front stays put, the rest closes the gap. */
static void test_iobuf_cut(void **state) {
  (void) state;
  cymg__iobuf b = {0};
  assert_int_equal(cymg__iobuf_append(&b, "xxhead[gap]tail", 15, 0), 0);
  cymg__iobuf_consume(&b, 2); /* a head offset that is not 0 */
  const char *front = cymg__iobuf_data(&b);
  cymg__iobuf_cut(&b, 4, 5);
  assert_int_equal(b.len, 8);
  assert_ptr_equal(cymg__iobuf_data(&b), front);
  assert_memory_equal(cymg__iobuf_data(&b), "headtail", 8);
  cymg__iobuf_cut(&b, 4, 0); /* nothing */
  cymg__iobuf_cut(&b, 8, 3); /* at the end: nothing there */
  cymg__iobuf_cut(&b, 100, 3);
  assert_int_equal(b.len, 8);
  cymg__iobuf_cut(&b, 6, 100); /* clamped to the end */
  assert_int_equal(b.len, 6);
  assert_memory_equal(cymg__iobuf_data(&b), "headta", 6);
  cymg__iobuf_cut(&b, 0, 6); /* all of it */
  assert_int_equal(b.len, 0);
  assert_int_equal(b.head, 0);
  /* Appending after a cut goes right behind what is left. */
  assert_int_equal(cymg__iobuf_append(&b, "abc", 3, 0), 0);
  cymg__iobuf_cut(&b, 1, 1);
  assert_int_equal(cymg__iobuf_append(&b, "d", 1, 0), 0);
  assert_memory_equal(cymg__iobuf_data(&b), "acd", 3);
  cymg__iobuf_free(&b);
}

static void test_buf(void **state) {
  (void) state;
  cymg_buf b;
  cymg_buf_init(&b);
  assert_int_equal(cymg_buf_printf(&b, "%d-%s", 42, "x"), 4);
  assert_string_equal(b.buf, "42-x");
  char big[1000];
  memset(big, 'z', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(cymg_buf_printf(&b, "%s", big), 999); /* beyond the small path */
  assert_int_equal(b.len, 1003);
  assert_int_equal(b.buf[b.len], '\0');
  cymg_buf_del(&b, 2, 1000);
  assert_string_equal(b.buf, "42z");
  cymg_buf_del(&b, 10, 1); /* out of range: no-op */
  assert_int_equal(b.len, 3);
  assert_int_equal(cymg_buf_append(&b, "\0bin", 4), 0);
  assert_int_equal(b.len, 7);
  assert_int_equal(cymg_buf_reserve(&b, SIZE_MAX), CYMG_ENOMEM);
  char *p = cymg_buf_steal(&b);
  assert_memory_equal(p, "42z\0bin", 7);
  free(p);
  assert_null(b.buf);
  assert_int_equal(b.len, 0);
  cymg_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_iobuf_grow_consume),
      cmocka_unit_test(test_iobuf_limit),
      cmocka_unit_test(test_iobuf_cut),
      cmocka_unit_test(test_buf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
