/* Fuzzes glob matching against a simple dynamic-programming reference, and checks
 * that the captures of every match rebuild the subject exactly. Input: one byte
 * giving the pattern length, the pattern, then the subject. */
#include <stdlib.h>
#include <string.h>

#include "cymg/match.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) \
  do {               \
    if (!(c)) abort(); \
  } while (0)

/* ok[i][j]: pattern[i..] matches s[j..]. Quadratic memory, so small inputs only. */
#define REF_MAX 96
static bool reference(const char *s, size_t n, const char *pat, size_t m) {
  static bool ok[REF_MAX + 1][REF_MAX + 1];
  for (size_t i = m + 1; i-- > 0;) {
    for (size_t j = n + 1; j-- > 0;) {
      bool r;
      if (i == m) {
        r = j == n;
      } else if (pat[i] == '*' || pat[i] == '#') {
        r = ok[i + 1][j] || (j < n && (pat[i] == '#' || s[j] != '/') && ok[i][j + 1]);
      } else {
        r = j < n && (pat[i] == '?' || pat[i] == s[j]) && ok[i + 1][j + 1];
      }
      ok[i][j] = r;
    }
  }
  return ok[0][0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t m = data[0];
  if (m > size - 1) m = size - 1;
  size_t n = size - 1 - m;
  char *pat = malloc(m ? m : 1), *s = malloc(n ? n : 1);
  if (pat == NULL || s == NULL) abort();
  memcpy(pat, data + 1, m);
  memcpy(s, data + 1 + m, n);
  size_t nwild = 0;
  for (size_t i = 0; i < m; i++) nwild += pat[i] == '?' || pat[i] == '*' || pat[i] == '#';
  cymg_str *caps = calloc(nwild + 1, sizeof(*caps));
  if (caps == NULL) abort();
  bool r = cymg_match(cymg_str_n(s, n), cymg_str_n(pat, m), caps, nwild + 1);
  if (m <= REF_MAX && n <= REF_MAX) CHECK(r == reference(s, n, pat, m));
  if (r) {
    CHECK(caps[nwild].buf == NULL && caps[nwild].len == 0);
    size_t pos = 0, c = 0;
    for (size_t i = 0; i < m; i++) {
      if (pat[i] == '?' || pat[i] == '*' || pat[i] == '#') {
        CHECK(caps[c].buf == s + pos && caps[c].len <= n - pos);
        if (pat[i] == '?') CHECK(caps[c].len == 1);
        if (pat[i] == '*') CHECK(memchr(caps[c].buf, '/', caps[c].len) == NULL);
        pos += caps[c].len;
        c++;
      } else {
        CHECK(pos < n && s[pos] == pat[i]);
        pos++;
      }
    }
    CHECK(pos == n);
  }
  free(caps);
  free(pat);
  free(s);
  return 0;
}
