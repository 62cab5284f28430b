/* Fuzzes form/query variable lookup and the string tokeniser.
 * Input: "name\nquery". Invariants: the allocating and the fixed-buffer lookups
 * agree; the fixed one fits exactly in length + 1 bytes and refuses one less;
 * split() tokens tile the input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/buf.h"
#include "cymg/error.h"
#include "cymg/str.h"
#include "cymg/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                  \
  do {                                                                            \
    if (!(c)) {                                                                   \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);   \
      abort();                                                                    \
    }                                                                             \
  } while (0)

static void check_split(cymg_str in, char sep) {
  cymg_str rest = in, tok;
  size_t covered = 0, parts = 0;
  while (cymg_str_split(&rest, sep, &tok)) {
    CHECK(tok.buf == in.buf + covered);
    CHECK(memchr(tok.buf, sep, tok.len) == NULL);
    covered += tok.len;
    if (covered < in.len) covered++; /* the separator */
    CHECK(++parts <= in.len);
  }
  CHECK(covered == in.len && rest.len == 0);
}

/* A reference for cymg_str_find. */
static int naive_find(const char *h, size_t hl, const char *n, size_t nl) {
  for (size_t i = 0; nl <= hl && i <= hl - nl; i++)
    if (memcmp(h + i, n, nl) == 0) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nl = memchr(data, '\n', size);
  if (nl == NULL) return 0;
  size_t nlen = (size_t) (nl - data);
  if (memchr(data, '\0', nlen) != NULL) return 0;
  char *name = malloc(nlen + 1);
  size_t qlen = size - nlen - 1;
  char *q = malloc(qlen ? qlen : 1); /* exactly sized, no NUL */
  if (name == NULL || q == NULL) goto out;
  memcpy(name, data, nlen);
  name[nlen] = '\0';
  if (qlen) memcpy(q, nl + 1, qlen);
  cymg_str query = cymg_str_n(q, qlen);

  cymg_buf b = {0};
  int n = cymg_http_var_buf(query, name, &b);
  char small[8];
  int rs = cymg_http_var(query, name, small, sizeof(small));
  if (n >= 0) {
    CHECK((size_t) n == b.len);
    CHECK((size_t) n <= qlen);
    char *dst = malloc((size_t) n + 1);
    CHECK(dst != NULL);
    CHECK(cymg_http_var(query, name, dst, (size_t) n + 1) == n);
    CHECK(memcmp(dst, b.buf, (size_t) n) == 0 && dst[n] == '\0');
    CHECK(cymg_http_var(query, name, dst, (size_t) n) == CYMG_ENOSPC);
    CHECK(dst[0] == '\0' || n == 0);
    free(dst);
    CHECK(rs == (n < (int) sizeof(small) ? n : CYMG_ENOSPC));
  } else {
    CHECK(n == CYMG_ENOTFOUND || n == CYMG_EPARSE || n == CYMG_EINVAL);
    CHECK(rs == n && small[0] == '\0' && b.len == 0);
  }
  cymg_buf_free(&b);

  check_split(query, '&');
  check_split(query, '=');
  cymg_str t = cymg_str_trim(query);
  CHECK(t.len <= qlen);
  cymg_str f = cymg_str_find(query, cymg_str_n(name, nlen));
  if (f.buf != NULL) CHECK(f.buf >= q && f.buf + f.len <= q + qlen && memcmp(f.buf, name, nlen) == 0);
  else CHECK(nlen > 0 && !naive_find(q, qlen, name, nlen));
out:
  free(name);
  free(q);
  return 0;
}
