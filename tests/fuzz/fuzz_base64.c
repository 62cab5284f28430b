/* Fuzzes base64: encodings round-trip, and strict decoding means an accepted
 * input is exactly the canonical encoding of what it decodes to. */
#include <stdlib.h>
#include <string.h>

#include "cymg/base64.h"
#include "cymg/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) \
  do {               \
    if (!(c)) abort(); \
  } while (0)

static bool same(const cymg_buf *b, const void *p, size_t n) {
  return b->len == n && (n == 0 || memcmp(b->buf, p, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *p = malloc(size ? size : 1);
  if (p == NULL) return 0;
  memcpy(p, data, size);
  cymg_str in = cymg_str_n(p, size);
  cymg_buf e = {NULL, 0, 0}, d = {NULL, 0, 0};

  CHECK(cymg_base64_encode(in, &e) == (int) cymg_base64_encoded_len(size));
  CHECK(cymg_base64_decode(cymg_str_n(e.buf, e.len), &d) == (int) size);
  CHECK(same(&d, p, size));
  e.len = d.len = 0;
  CHECK(cymg_base64url_encode(in, &e) >= 0);
  CHECK(cymg_base64url_decode(cymg_str_n(e.buf, e.len), &d) == (int) size);
  CHECK(same(&d, p, size));

  e.len = d.len = 0;
  int n = cymg_base64_decode(in, &d);
  if (n >= 0) {
    CHECK(cymg_base64_encode(cymg_str_n(d.buf, d.len), &e) >= 0);
    CHECK(same(&e, p, size));
  } else {
    CHECK(n == CYMG_EPARSE && d.len == 0);
  }
  e.len = d.len = 0;
  n = cymg_base64url_decode(in, &d);
  if (n >= 0) {
    CHECK(cymg_base64url_encode(cymg_str_n(d.buf, d.len), &e) >= 0);
    size_t unpadded = size;
    while (unpadded > 0 && p[unpadded - 1] == '=') unpadded--;
    CHECK(same(&e, p, unpadded));
  } else {
    CHECK(n == CYMG_EPARSE && d.len == 0);
  }
  cymg_buf_free(&e);
  cymg_buf_free(&d);
  free(p);
  return 0;
}
