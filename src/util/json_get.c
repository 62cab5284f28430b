/* JSON path lookup and typed getters, built on the public scanner API
 * (json_parse.c). Every lookup validates the whole document first: answering from
 * a prefix of a broken document would let two parsers disagree about its meaning. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/base64.h"
#include "cymg/error.h"
#include "cymg/json.h"

/* Checks the path's syntax on its own, so a malformed path is reported as such
 * whatever the document holds. */
static bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int check_path(const char *path) {
  if (path == NULL || path[0] != '$') return CYMG_EINVAL;
  const char *p = path + 1;
  while (*p != '\0') {
    if (*p == '.') {
      size_t n = strcspn(p + 1, ".[");
      if (n == 0) return CYMG_EINVAL;
      p += 1 + n;
    } else if (*p == '[') {
      p++;
      if (*p < '0' || *p > '9') return CYMG_EINVAL;
      while (*p >= '0' && *p <= '9') p++;
      if (*p != ']') return CYMG_EINVAL;
      p++;
    } else {
      return CYMG_EINVAL;
    }
  }
  return 0;
}

int cymg_json_find(cymg_str json, const char *path, cymg_str *value) {
  int rc = check_path(path);
  if (rc < 0) return rc;
  int type = cymg_json_validate(json);
  if (type < 0) return type;
  /* The document is known to be well-formed from here on. */
  size_t i = 0;
  while (i < json.len && is_ws(json.buf[i])) i++;
  size_t j = json.len;
  while (j > i && is_ws(json.buf[j - 1])) j--;
  cymg_str cur = cymg_str_n(json.buf + i, j - i);
  const char *p = path + 1;
  while (*p != '\0') {
    size_t off = 0;
    cymg_str k, v;
    int t;
    if (*p == '.') {
      size_t n = strcspn(p + 1, ".[");
      cymg_str want = cymg_str_n(p + 1, n);
      p += 1 + n;
      if (type != CYMG_JSON_OBJECT) return CYMG_ENOTFOUND;
      while ((t = cymg_json_next(cur, &off, &k, &v)) > 0) {
        if (cymg_json_str_eq(k, want)) break;
      }
    } else {
      /* check_path accepted the digits; saturate rather than overflow. */
      size_t idx = 0;
      for (p++; *p != ']'; p++) {
        size_t d = (size_t) (*p - '0');
        idx = idx > (SIZE_MAX - d) / 10 ? SIZE_MAX : idx * 10 + d;
      }
      p++;
      if (type != CYMG_JSON_ARRAY) return CYMG_ENOTFOUND;
      while ((t = cymg_json_next(cur, &off, &k, &v)) > 0 && idx > 0) idx--;
    }
    if (t < 0) return t;
    if (t == 0) return CYMG_ENOTFOUND;
    type = t;
    cur = v;
  }
  if (value != NULL) *value = cur;
  return type;
}

static int find_typed(cymg_str json, const char *path, int want, cymg_str *v) {
  int t = cymg_json_find(json, path, v);
  if (t < 0) return t;
  return t == want ? 0 : CYMG_ETYPE;
}

/* Converts a JSON number with strtod, which needs a NUL-terminated copy in the C
 * locale's syntax. The literal may be arbitrarily long, so it is first reduced to
 * at most KEEP significant digits plus a non-zero "sticky" digit standing for any
 * dropped non-zero tail, and an exponent clamped far beyond the double range.
 * A double's rounding boundaries have at most 767 significant digits, so the
 * reduced literal rounds exactly like the original. No locale-dependent decimal
 * point is ever written: the result is "<digits>e<exp>". */
#define KEEP 780
static double number_value(cymg_str v) {
  char buf[KEEP + 32];
  size_t o = 0, i = 0, kept = 0;
  int64_t exp10 = 0;
  bool sticky = false, frac = false;
  if (v.buf[0] == '-') {
    buf[o++] = '-';
    i++;
  }
  for (; i < v.len; i++) {
    char c = v.buf[i];
    if (c == '.') {
      frac = true;
      continue;
    }
    if (c == 'e' || c == 'E') break;
    if (kept == 0 && c == '0') {
      if (frac) exp10--;
      continue;
    }
    if (kept < KEEP) {
      buf[o++] = c;
      kept++;
      if (frac) exp10--;
    } else {
      if (c != '0') sticky = true;
      if (!frac) exp10++;
    }
  }
  if (kept == 0) return v.buf[0] == '-' ? -0.0 : 0.0;
  if (sticky) {
    buf[o++] = '1';
    exp10--;
  }
  for (; i < v.len && v.buf[i] != 'e' && v.buf[i] != 'E'; i++) {
  }
  if (i < v.len) {
    i++;
    bool neg = false;
    if (v.buf[i] == '+' || v.buf[i] == '-') neg = v.buf[i++] == '-';
    int64_t e = 0;
    for (; i < v.len; i++) {
      if (e < INT64_C(1) << 40) e = e * 10 + (v.buf[i] - '0');
    }
    exp10 += neg ? -e : e;
  }
  /* Beyond +-5000 the result is infinity or zero for any <= 781-digit mantissa. */
  if (exp10 > 5000) exp10 = 5000;
  if (exp10 < -5000) exp10 = -5000;
  snprintf(buf + o, sizeof(buf) - o, "e%d", (int) exp10);
  return strtod(buf, NULL);
}
#undef KEEP

int cymg_json_get_num(cymg_str json, const char *path, double *out) {
  cymg_str v;
  int rc = find_typed(json, path, CYMG_JSON_NUMBER, &v);
  if (rc < 0) return rc;
  double d = number_value(v);
  if (isinf(d)) return CYMG_ERANGE;
  if (out != NULL) *out = d;
  return 0;
}

int cymg_json_get_bool(cymg_str json, const char *path, bool *out) {
  cymg_str v;
  int rc = find_typed(json, path, CYMG_JSON_BOOL, &v);
  if (rc < 0) return rc;
  if (out != NULL) *out = v.buf[0] == 't';
  return 0;
}

int cymg_json_get_int(cymg_str json, const char *path, int64_t *out) {
  cymg_str v;
  int rc = find_typed(json, path, CYMG_JSON_NUMBER, &v);
  if (rc < 0) return rc;
  size_t i = 0;
  bool neg = v.buf[0] == '-';
  if (neg) i++;
  uint64_t limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX, acc = 0;
  for (; i < v.len; i++) {
    char c = v.buf[i];
    if (c < '0' || c > '9') return CYMG_ETYPE; /* fraction or exponent */
    uint64_t d = (uint64_t) (c - '0');
    if (acc > (limit - d) / 10) {
      /* Keep scanning: "1e999999..." is a type error, not a range error. */
      for (; i < v.len; i++) {
        if (v.buf[i] < '0' || v.buf[i] > '9') return CYMG_ETYPE;
      }
      return CYMG_ERANGE;
    }
    acc = acc * 10 + d;
  }
  if (out != NULL) {
    *out = neg ? (acc == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) acc) : (int64_t) acc;
  }
  return 0;
}

int cymg_json_get_str(cymg_str json, const char *path, cymg_buf *out) {
  cymg_str v;
  int rc = find_typed(json, path, CYMG_JSON_STRING, &v);
  if (rc < 0) return rc;
  return cymg_json_unescape(v, out);
}

static void truncate_to(cymg_buf *b, size_t len) {
  b->len = len;
  if (b->buf != NULL) b->buf[len] = '\0';
}

int cymg_json_get_hex(cymg_str json, const char *path, cymg_buf *out) {
  cymg_str v;
  int rc = find_typed(json, path, CYMG_JSON_STRING, &v);
  if (rc < 0) return rc;
  if (out == NULL) return CYMG_EINVAL;
  /* Unescape at the end of `out`, then pack the digit pairs down over them: byte k
   * is written at k, its digits were read from 2k and 2k+1, never behind. */
  size_t start = out->len;
  int n = cymg_json_unescape(v, out);
  if (n < 0) return n;
  unsigned char *p = (unsigned char *) out->buf + start;
  if (n % 2 != 0) {
    truncate_to(out, start);
    return CYMG_EPARSE;
  }
  for (int k = 0; k < n; k++) {
    if (!((p[k] >= '0' && p[k] <= '9') || ((p[k] | 0x20) >= 'a' && (p[k] | 0x20) <= 'f'))) {
      truncate_to(out, start);
      return CYMG_EPARSE;
    }
  }
  for (int k = 0; k < n / 2; k++) {
    unsigned char hi = p[2 * k], lo = p[2 * k + 1];
    int h = hi <= '9' ? hi - '0' : (hi | 0x20) - 'a' + 10;
    int l = lo <= '9' ? lo - '0' : (lo | 0x20) - 'a' + 10;
    p[k] = (unsigned char) (h << 4 | l);
  }
  truncate_to(out, start + (size_t) n / 2);
  return n / 2;
}

int cymg_json_get_b64(cymg_str json, const char *path, cymg_buf *out) {
  cymg_str v;
  int rc = find_typed(json, path, CYMG_JSON_STRING, &v);
  if (rc < 0) return rc;
  if (out == NULL) return CYMG_EINVAL;
  if (memchr(v.buf, '\\', v.len) == NULL) {
    return cymg_base64_decode(cymg_str_n(v.buf + 1, v.len - 2), out);
  }
  /* Escaped content: unescape at the end of `out`, make room for the decoded bytes
   * beforehand so decoding cannot move the text it reads, decode after it, then
   * move the bytes down. */
  size_t start = out->len;
  int n = cymg_json_unescape(v, out);
  if (n < 0) return n;
  rc = cymg_buf_reserve(out, (size_t) n);
  if (rc < 0) {
    truncate_to(out, start);
    return rc;
  }
  int d = cymg_base64_decode(cymg_str_n(out->buf + start, (size_t) n), out);
  if (d < 0) {
    truncate_to(out, start);
    return d;
  }
  memmove(out->buf + start, out->buf + start + (size_t) n, (size_t) d);
  truncate_to(out, start + (size_t) d);
  return d;
}
