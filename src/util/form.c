/* Form and query variables: "a=1&b=x%20y" lookups (application/x-www-form-urlencoded). */
#include <limits.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/str.h"
#include "cymg/url.h"

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Compares a raw key with name while decoding the key, so that browsers' encoded
 * field names ("first+name", "a%5Bb%5D") match without allocating. A key with a bad
 * escape cannot be said to equal anything, so it never matches. */
static bool key_matches(cymg_str key, cymg_str name) {
  size_t j = 0;
  for (size_t i = 0; i < key.len; i++, j++) {
    unsigned char c = (unsigned char) key.buf[i];
    if (c == '%') {
      int hi, lo;
      if (i + 2 >= key.len || (hi = hexval((unsigned char) key.buf[i + 1])) < 0 ||
          (lo = hexval((unsigned char) key.buf[i + 2])) < 0)
        return false;
      c = (unsigned char) (hi << 4 | lo);
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (j >= name.len || (unsigned char) name.buf[j] != c) return false;
  }
  return j == name.len;
}

/* Finds the raw (still encoded) value of the first pair whose key matches. */
static int find_value(cymg_str buf, const char *name, cymg_str *value) {
  if (name == NULL || name[0] == '\0') return CYMG_EINVAL;
  cymg_str want = cymg_str_c(name), rest = buf, pair;
  while (cymg_str_split(&rest, '&', &pair)) {
    const char *eq = memchr(pair.buf, '=', pair.len);
    size_t k_len = eq ? (size_t) (eq - pair.buf) : pair.len;
    if (!key_matches(cymg_str_n(pair.buf, k_len), want)) continue;
    /* A bare "name" has no '='; its value is empty. */
    *value = eq ? cymg_str_n(eq + 1, pair.len - k_len - 1) : cymg_str_n(pair.buf + k_len, 0);
    return 0;
  }
  return CYMG_ENOTFOUND;
}

int cymg_http_var(cymg_str buf, const char *name, char *dst, size_t dst_len) {
  if (dst == NULL) return CYMG_EINVAL;
  if (dst_len > 0) dst[0] = '\0';
  cymg_str value;
  int rc = find_value(buf, name, &value);
  if (rc < 0) return rc;
  return cymg_url_decode_to(value, dst, dst_len, true);
}

int cymg_http_var_buf(cymg_str buf, const char *name, cymg_buf *out) {
  if (out == NULL) return CYMG_EINVAL;
  cymg_str value;
  int rc = find_value(buf, name, &value);
  if (rc < 0) return rc;
  size_t before = out->len;
  if ((rc = cymg_url_decode(value, out, true)) < 0) return rc;
  if (out->len - before > INT_MAX) { /* cannot report the length: undo */
    out->len = before;
    out->buf[before] = '\0';
    return CYMG_ERANGE;
  }
  return (int) (out->len - before);
}
