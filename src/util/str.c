/* String views: comparison, trimming, tokenising, strict number parsing. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include "cymg/common.h"
#include "cymg/error.h"
#include "cymg/str.h"

cymg_str cymg_str_c(const char *s) {
  cymg_str r = {s, s ? strlen(s) : 0};
  return r;
}

cymg_str cymg_str_n(const void *p, size_t n) {
  cymg_str r = {(const char *) p, n};
  return r;
}

/* Our own ASCII folding: tolower() depends on the locale and is undefined for
 * negative chars, and protocol tokens are ASCII by definition. */
static unsigned char lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char) (c + ('a' - 'A')) : c;
}

bool cymg_str_eq(cymg_str a, cymg_str b) {
  /* memcmp() must not see NULL even with length 0. */
  return a.len == b.len && (a.len == 0 || memcmp(a.buf, b.buf, a.len) == 0);
}

int cymg_str_casecmp(cymg_str a, cymg_str b) {
  size_t n = a.len < b.len ? a.len : b.len;
  for (size_t i = 0; i < n; i++) {
    int d = (int) lower((unsigned char) a.buf[i]) - (int) lower((unsigned char) b.buf[i]);
    if (d != 0) return d;
  }
  return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

bool cymg_str_case_eq(cymg_str a, cymg_str b) {
  return a.len == b.len && cymg_str_casecmp(a, b) == 0;
}

bool cymg_str_starts(cymg_str s, cymg_str prefix) {
  if (prefix.len > s.len) return false;
  return prefix.len == 0 || memcmp(s.buf, prefix.buf, prefix.len) == 0;
}

bool cymg_str_case_starts(cymg_str s, cymg_str prefix) {
  if (prefix.len > s.len) return false;
  return cymg_str_casecmp(cymg_str_n(s.buf, prefix.len), prefix) == 0;
}

cymg_str cymg_str_trim(cymg_str s) {
  while (s.len > 0 && (s.buf[0] == ' ' || s.buf[0] == '\t')) s.buf++, s.len--;
  while (s.len > 0 && (s.buf[s.len - 1] == ' ' || s.buf[s.len - 1] == '\t')) s.len--;
  return s;
}

/* Accumulates digits into an unsigned magnitude, refusing anything above limit.
 * Shared by the signed and unsigned parsers so the overflow check lives once. */
static int parse_mag(cymg_str s, unsigned base, uint64_t limit, uint64_t *out) {
  if (s.len == 0) return CYMG_EPARSE;
  uint64_t v = 0;
  bool overflow = false;
  for (size_t i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char) s.buf[i];
    unsigned d;
    if (c >= '0' && c <= '9') d = (unsigned) (c - '0');
    else if (base == 16 && lower(c) >= 'a' && lower(c) <= 'f') d = (unsigned) (lower(c) - 'a' + 10);
    else return CYMG_EPARSE; /* garbage wins over overflow: the input is malformed */
    if (v > (limit - d) / base) overflow = true;
    else v = v * base + d;
  }
  if (overflow) return CYMG_ERANGE;
  *out = v;
  return 0;
}

int cymg_str_to_i64(cymg_str s, int64_t *out) {
  bool neg = false;
  if (s.len > 0 && (s.buf[0] == '+' || s.buf[0] == '-')) {
    neg = s.buf[0] == '-';
    s.buf++, s.len--;
  }
  /* |INT64_MIN| is one more than INT64_MAX; computed without signed overflow. */
  uint64_t limit = neg ? (uint64_t) INT64_MAX + 1u : (uint64_t) INT64_MAX;
  uint64_t mag;
  int rc = parse_mag(s, 10, limit, &mag);
  if (rc < 0) return rc;
  if (!neg) *out = (int64_t) mag;
  else if (mag == (uint64_t) INT64_MAX + 1u) *out = INT64_MIN;
  else *out = -(int64_t) mag;
  return 0;
}

int cymg_str_to_u64(cymg_str s, int base, uint64_t *out) {
  if (base != 10 && base != 16) return CYMG_EINVAL;
  return parse_mag(s, (unsigned) base, UINT64_MAX, out);
}

/* Checks the decimal grammar ourselves because strtod() also accepts leading space,
 * hex floats, inf/nan and locale-specific points, none of which belong on the wire.
 * Sets *nonzero when a mantissa digit is not '0' (to tell underflow from zero). */
static bool valid_decimal(cymg_str s, bool *nonzero) {
  size_t i = 0, digits = 0;
  *nonzero = false;
  if (i < s.len && (s.buf[i] == '+' || s.buf[i] == '-')) i++;
  for (; i < s.len && s.buf[i] >= '0' && s.buf[i] <= '9'; i++, digits++)
    if (s.buf[i] != '0') *nonzero = true;
  if (i < s.len && s.buf[i] == '.') {
    for (i++; i < s.len && s.buf[i] >= '0' && s.buf[i] <= '9'; i++, digits++)
      if (s.buf[i] != '0') *nonzero = true;
  }
  if (digits == 0) return false;
  if (i < s.len && (s.buf[i] == 'e' || s.buf[i] == 'E')) {
    size_t exp_digits = 0;
    i++;
    if (i < s.len && (s.buf[i] == '+' || s.buf[i] == '-')) i++;
    for (; i < s.len && s.buf[i] >= '0' && s.buf[i] <= '9'; i++) exp_digits++;
    if (exp_digits == 0) return false;
  }
  return i == s.len;
}

/* A private "C" locale keeps '.' the decimal point without touching the process
 * or thread locale (setlocale/uselocale would be shared state). Made once: it is
 * immutable afterwards, and newlocale per call would cost an allocation on some
 * C libraries. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void) { c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t) 0); }

int cymg_str_to_double(cymg_str s, double *out) {
  bool nonzero;
  if (!valid_decimal(s, &nonzero)) return CYMG_EPARSE;
  /* strtod needs a NUL-terminated copy; numbers are short, so the stack usually does. */
  char small[128], *copy = small;
  if (s.len >= sizeof(small) && (copy = malloc(s.len + 1)) == NULL) return CYMG_ENOMEM;
  memcpy(copy, s.buf, s.len);
  copy[s.len] = '\0';
  pthread_once(&c_locale_once, make_c_locale);
  locale_t c_loc = c_locale;
  int rc = 0;
  if (c_loc == (locale_t) 0) {
    rc = CYMG_ENOMEM;
  } else {
    char *end;
    errno = 0;
    double v = strtod_l(copy, &end, c_loc);
    int err = errno;
    if (end != copy + s.len) rc = CYMG_EPARSE; /* cannot happen after valid_decimal */
    else if (err == ERANGE && isinf(v)) rc = CYMG_ERANGE;
    else if (v == 0.0 && nonzero) rc = CYMG_ERANGE;
    else *out = v;
  }
  if (copy != small) free(copy);
  return rc;
}

cymg_str cymg_str_find(cymg_str hay, cymg_str needle) {
  cymg_str none = {NULL, 0};
  if (needle.len == 0) return cymg_str_n(hay.buf, 0);
  if (needle.len > hay.len) return none;
  const char *p = hay.buf, *last = hay.buf + (hay.len - needle.len);
  while (p <= last) {
    /* memchr on the first byte skips quickly to candidates. */
    p = memchr(p, needle.buf[0], (size_t) (last - p) + 1);
    if (p == NULL) break;
    if (memcmp(p, needle.buf, needle.len) == 0) return cymg_str_n(p, needle.len);
    p++;
  }
  return none;
}

bool cymg_str_split(cymg_str *s, char sep, cymg_str *part) {
  if (s->len == 0) {
    /* Never leave *part unset: a caller that reads it anyway sees an empty
     * view at the end of the input, not stack garbage. */
    *part = cymg_str_n(s->buf, 0);
    return false;
  }
  const char *p = memchr(s->buf, sep, s->len);
  if (p == NULL) {
    *part = *s;
    s->buf += s->len;
    s->len = 0;
  } else {
    size_t n = (size_t) (p - s->buf);
    *part = cymg_str_n(s->buf, n);
    s->buf += n + 1;
    s->len -= n + 1;
  }
  return true;
}

char *cymg_str_dup(cymg_str s) {
  if (s.len == SIZE_MAX) return NULL;
  char *p = malloc(s.len + 1);
  if (p == NULL) return NULL;
  if (s.len > 0) memcpy(p, s.buf, s.len);
  p[s.len] = '\0';
  return p;
}
