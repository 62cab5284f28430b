/* Glob matching. A naive backtracking matcher is exponential on patterns such as
 * "*a*a*a*a*b"; this one backtracks in the same (shortest-first) order but
 * remembers every (wildcard, position) state that has already failed, so each
 * state is explored once. */
#include <stdlib.h>
#include <string.h>

#include "cymg/log.h"
#include "cymg/match.h"

static bool is_star(char c) {
  return c == '*' || c == '#';
}

/* End (exclusive) of the literal/'?' chunk that starts at pattern index i. */
static size_t chunk_end(cymg_str pat, size_t i) {
  while (i < pat.len && !is_star(pat.buf[i])) i++;
  return i;
}

/* Whether pattern[from, to) matches s at position p. */
static bool chunk_match(cymg_str s, size_t p, cymg_str pat, size_t from, size_t to) {
  if (to - from > s.len - p) return false;
  for (size_t i = from; i < to; i++, p++) {
    if (pat.buf[i] != '?' && pat.buf[i] != s.buf[p]) return false;
  }
  return true;
}

/* Fills the captures once the star spans are known: a '?' or literal advances one
 * byte, a star covers [start[k], end[k]). */
static void fill_caps(cymg_str s, cymg_str pat, const size_t *start, const size_t *end,
                      cymg_str *caps, size_t ncaps) {
  size_t pos = 0, k = 0, c = 0;
  for (size_t i = 0; i < pat.len; i++) {
    char ch = pat.buf[i];
    if (ch == '?' || is_star(ch)) {
      size_t from = pos, n = 1;
      if (is_star(ch)) {
        from = start[k];
        n = end[k] - start[k];
        pos = end[k];
        k++;
      } else {
        pos++;
      }
      if (c < ncaps) caps[c] = cymg_str_n(s.buf + from, n);
      c++;
    } else {
      pos++;
    }
  }
  if (c < ncaps) caps[c] = cymg_str_n(NULL, 0);
}

#define MATCH_STACK_WORDS 256

bool cymg_match(cymg_str s, cymg_str pat, cymg_str *caps, size_t ncaps) {
  if ((s.buf == NULL && s.len > 0) || (pat.buf == NULL && pat.len > 0)) return false;
  if (caps == NULL) ncaps = 0;
  size_t nstars = 0;
  for (size_t i = 0; i < pat.len; i++) nstars += is_star(pat.buf[i]);

  size_t c0 = chunk_end(pat, 0);
  if (!chunk_match(s, 0, pat, 0, c0)) return false;
  if (nstars == 0) {
    if (c0 != s.len) return false;
    fill_caps(s, pat, NULL, NULL, caps, ncaps);
    return true;
  }

  /* Working memory: start[] and end[] of each star, then the failure bits. */
  size_t cols = s.len + 1;
  if (cols == 0 || nstars > SIZE_MAX / 2 / sizeof(size_t) || cols > SIZE_MAX / nstars) {
    return false;
  }
  size_t nbits = nstars * cols;
  size_t words = 2 * nstars + nbits / (8 * sizeof(size_t)) + 1;
  if (words < nbits / (8 * sizeof(size_t))) return false;
  size_t local[MATCH_STACK_WORDS];
  size_t *mem = local;
  if (words > MATCH_STACK_WORDS) {
    if (words > SIZE_MAX / sizeof(size_t)) return false;
    mem = malloc(words * sizeof(size_t));
    if (mem == NULL) {
      /* The bool answer cannot carry it, so it is said where it can be seen. */
      cymg_log(CYMG_LL_ERROR, "cymg_match: out of memory for a %zu-byte subject", s.len);
      return false;
    }
  }
  memset(mem, 0, words * sizeof(size_t));
  size_t *start = mem, *end = mem + nstars, *failed = mem + 2 * nstars;
  const size_t wbits = 8 * sizeof(size_t);
#define FAILED(k, p) (failed[((k) * cols + (p)) / wbits] >> (((k) * cols + (p)) % wbits) & 1u)
#define SET_FAILED(k, p) \
  (failed[((k) * cols + (p)) / wbits] |= (size_t) 1 << (((k) * cols + (p)) % wbits))

  bool ok = false;
  size_t k = 0;           /* current star */
  size_t star = c0;       /* its index in the pattern */
  size_t cur = c0;        /* it currently covers s[start[k], cur) */
  start[0] = c0;
  for (;;) {
    /* First try to end star k here and match the chunk after it. */
    size_t from = star + 1, to = chunk_end(pat, from);
    if (chunk_match(s, cur, pat, from, to)) {
      size_t q = cur + (to - from);
      if (k + 1 == nstars) {
        if (q == s.len) {
          end[k] = cur;
          ok = true;
          break;
        }
      } else if (!FAILED(k + 1, q)) {
        end[k] = cur;
        k++;
        star = to;
        start[k] = cur = q;
        continue;
      }
    }
    /* Otherwise let star k take one more byte, unless that state already failed. */
    for (;;) {
      if (cur < s.len && (pat.buf[star] == '#' || s.buf[cur] != '/') && !FAILED(k, cur + 1)) {
        cur++;
        break;
      }
      /* Every position star k could reach from start[k] fails: remember that and
       * go back to the previous star, which then takes one more byte. */
      for (size_t p = start[k]; p <= cur; p++) SET_FAILED(k, p);
      if (k == 0) goto done;
      k--;
      star--;
      while (!is_star(pat.buf[star])) star--;
      cur = end[k];
    }
  }
done:
#undef FAILED
#undef SET_FAILED
  if (ok) fill_caps(s, pat, start, end, caps, ncaps);
  if (mem != local) free(mem);
  return ok;
}
