/* Static files, the sans-I/O parts: HTTP dates, ETags, preconditions, If-Range,
 * Range parsing, Accept-Encoding. (Serving over sockets: test_http_static.c.) */
#include <inttypes.h>
#include <time.h>

#include "cymg_test.h"
#include "cymg/error.h"
#include "http/static_internal.h"

/* ---- helpers: a request made of header lines ---- */

typedef struct reqbuf {
  cymg_http_msg msg;
  cymg_http_header h[32];
  char buf[2048];
} reqbuf;

/* Parses "METHOD / HTTP/1.1" with the given extra header lines. */
static cymg_http_msg *mkreq(reqbuf *r, const char *method, const char *headers) {
  int n = snprintf(r->buf, sizeof(r->buf), "%s /f HTTP/1.1\r\nHost: h\r\n%s\r\n", method, headers);
  assert_true(n > 0 && (size_t)n < sizeof(r->buf));
  assert_int_equal(cymg_http_parse_request(r->buf, (size_t)n, &r->msg, r->h, 32, NULL), n);
  return &r->msg;
}

/* ---- dates ---- */

static void test_dates(void **state) {
  (void)state;
  int64_t t = 0;
  /* The three forms of RFC 9110 §5.6.7 for the same instant. */
  assert_int_equal(cymg__http_parse_date(cymg_str_c("Sun, 06 Nov 1994 08:49:37 GMT"), &t), 0);
  assert_int_equal(t, 784111777);
  t = 0;
  assert_int_equal(cymg__http_parse_date(cymg_str_c("Sunday, 06-Nov-94 08:49:37 GMT"), &t), 0);
  assert_int_equal(t, 784111777);
  t = 0;
  assert_int_equal(cymg__http_parse_date(cymg_str_c("Sun Nov  6 08:49:37 1994"), &t), 0);
  assert_int_equal(t, 784111777);
  assert_int_equal(cymg__http_parse_date(cymg_str_c("Thu, 01 Jan 1970 00:00:00 GMT"), &t), 0);
  assert_int_equal(t, 0);
  assert_int_equal(cymg__http_parse_date(cymg_str_c("Tue, 29 Feb 2000 23:59:59 GMT"), &t), 0);
  assert_int_equal(t, 951868799);
  assert_int_equal(cymg__http_parse_date(cymg_str_c("Wed, 31 Dec 1969 23:59:59 GMT"), &t), 0);
  assert_int_equal(t, -1);
  assert_int_equal(cymg__http_parse_date(cymg_str_c("Friday, 31-Dec-49 00:00:00 GMT"), &t), 0);
  assert_int_equal(t, 2524521600); /* 2049 */
  assert_int_equal(cymg__http_parse_date(cymg_str_c("Mon Jan 19 03:14:08 2038"), &t), 0);
  assert_int_equal(t, 2147483648LL);
  static const char *const bad[] = {
      "",
      "Sun, 06 Nov 1994 08:49:37 UTC",
      "Sun, 06 Nov 1994 08:49:37 gmt",
      "Sun, 6 Nov 1994 08:49:37 GMT",
      "Sun, 06 nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun, 06 Nov 1994 08:60:00 GMT",
      "Sun, 31 Nov 1994 08:49:37 GMT",
      "Sun, 29 Feb 1900 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMT ",
      "Sun, 06 Nov 94 08:49:37 GMT",
      "Sunday, 06-Nov-1994 08:49:37 GMT",
      "Sonday, 06-Nov-94 08:49:37 GMT",
      "Sun Nov 06 08:49:37 1994 ",
      "Sun Nov  6 08:49:37 94",
      "1994-11-06T08:49:37Z",
      "784111777",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (cymg__http_parse_date(cymg_str_c(bad[i]), &t) != CYMG_EPARSE)
      fail_msg("accepted %s", bad[i]);
  }
  char out[30];
  assert_int_equal(cymg__http_format_date(784111777, out), 29);
  assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
  assert_int_equal(cymg__http_format_date(0, out), 29);
  assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
  assert_int_equal(cymg__http_format_date(253402300800LL, out), CYMG_ERANGE);
  /* Round trips across many instants, leap years included. */
  for (int64_t x = -86400LL * 365 * 3; x < 86400LL * 365 * 80; x += 86400 * 13 + 3607) {
    assert_int_equal(cymg__http_format_date(x, out), 29);
    assert_int_equal(cymg__http_parse_date(cymg_str_c(out), &t), 0);
    assert_int_equal(t, x);
  }
}

/* ---- validators ---- */

static void test_etag(void **state) {
  (void)state;
  char a[48], b[48];
  assert_int_equal(cymg__http_etag(a, sizeof(a), 5, 1000, 1), 9);
  assert_string_equal(a, "\"5-3e8-1\"");
  /* Any change of size or mtime (to the nanosecond) changes the tag. */
  assert_true(cymg__http_etag(b, sizeof(b), 6, 1000, 1) > 0);
  assert_string_not_equal(a, b);
  assert_true(cymg__http_etag(b, sizeof(b), 5, 1000, 2) > 0);
  assert_string_not_equal(a, b);
  assert_true(cymg__http_etag(a, sizeof(a), UINT64_MAX, INT64_MAX, 999999999) > 0);
  assert_int_equal(cymg__http_etag(a, 4, 5, 1000, 1), CYMG_ENOSPC);
}

#define ETAG "\"5-3e8-1\""
#define MTIME 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */

#define NOW 784200000   /* Mon, 07 Nov 1994 09:20:00 GMT */

static int pre(const char *method, const char *headers) {
  reqbuf r;
  return cymg__http_preconditions(mkreq(&r, method, headers), cymg_str_c(ETAG), MTIME, NOW);
}

static void test_if_none_match(void **state) {
  (void)state;
  assert_int_equal(pre("GET", ""), 0);
  assert_int_equal(pre("GET", "If-None-Match: " ETAG "\r\n"), 304);
  assert_int_equal(pre("HEAD", "If-None-Match: " ETAG "\r\n"), 304);
  assert_int_equal(pre("GET", "If-None-Match: W/" ETAG "\r\n"), 304); /* weak comparison */
  assert_int_equal(pre("GET", "If-None-Match: \"x\", " ETAG "\r\n"), 304);
  assert_int_equal(pre("GET", "If-None-Match: \"x\",," ETAG " ,\r\n"), 304);
  assert_int_equal(pre("GET", "If-None-Match: \"x\"\r\nIf-None-Match: " ETAG "\r\n"), 304);
  assert_int_equal(pre("GET", "If-None-Match: *\r\n"), 304);
  assert_int_equal(pre("GET", "If-None-Match: \"5-3e8-2\"\r\n"), 0);
  assert_int_equal(pre("GET", "If-None-Match: 5-3e8-1\r\n"), 0);    /* unquoted */
  assert_int_equal(pre("GET", "If-None-Match: \"5-3e8-1\r\n"), 0);  /* unterminated */
  assert_int_equal(pre("GET", "If-None-Match: x " ETAG "\r\n"), 0); /* malformed */
  /* Other methods: a matching If-None-Match fails the request. */
  assert_int_equal(pre("POST", "If-None-Match: " ETAG "\r\n"), 412);
  assert_int_equal(pre("POST", "If-None-Match: *\r\n"), 412);
  assert_int_equal(pre("POST", "If-None-Match: \"y\"\r\n"), 0);
}

static void test_if_modified_since(void **state) {
  (void)state;
  assert_int_equal(pre("GET", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), 304);
  assert_int_equal(pre("GET", "If-Modified-Since: Sun, 06 Nov 1994 08:49:38 GMT\r\n"), 304);
  assert_int_equal(pre("HEAD", "If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT\r\n"), 304);
  assert_int_equal(pre("GET", "If-Modified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n"), 0);
  assert_int_equal(pre("GET", "If-Modified-Since: yesterday\r\n"), 0);
  assert_int_equal(pre("POST", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), 0);
  /* Two of them: ignored (§13.1.3). */
  assert_int_equal(pre("GET",
                       "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                       "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
                   0);
  /* If-None-Match present: the date is not looked at (§13.2.2). */
  assert_int_equal(pre("GET",
                       "If-None-Match: \"other\"\r\n"
                       "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
                   0);
  assert_int_equal(pre("GET", "If-None-Match: " ETAG "\r\n"
                              "If-Modified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n"),
                   304);
  /* Later than the server's clock: invalid, ignored (§13.1.3); up to now is fine. */
  assert_int_equal(pre("GET", "If-Modified-Since: Mon, 07 Nov 1994 09:20:01 GMT\r\n"), 0);
  assert_int_equal(pre("GET", "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n"), 0);
  assert_int_equal(pre("GET", "If-Modified-Since: Mon, 07 Nov 1994 09:20:00 GMT\r\n"), 304);
}

static void test_if_match(void **state) {
  (void)state;
  assert_int_equal(pre("GET", "If-Match: " ETAG "\r\n"), 0);
  assert_int_equal(pre("GET", "If-Match: *\r\n"), 0);
  assert_int_equal(pre("GET", "If-Match: \"a\", " ETAG "\r\n"), 0);
  assert_int_equal(pre("GET", "If-Match: W/" ETAG "\r\n"), 412); /* strong comparison */
  assert_int_equal(pre("GET", "If-Match: \"a\"\r\n"), 412);
  assert_int_equal(pre("GET", "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), 0);
  assert_int_equal(pre("GET", "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n"), 412);
  /* If-Match wins over If-Unmodified-Since, and is checked before If-None-Match. */
  assert_int_equal(pre("GET", "If-Match: " ETAG "\r\n"
                              "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n"),
                   0);
  assert_int_equal(pre("GET", "If-Match: \"a\"\r\nIf-None-Match: " ETAG "\r\n"), 412);
  assert_int_equal(pre("GET", "If-Match: " ETAG "\r\nIf-None-Match: " ETAG "\r\n"), 304);
}

static void test_if_range(void **state) {
  (void)state;
  reqbuf r;
  cymg_str e = cymg_str_c(ETAG);
  assert_true(cymg__http_if_range(mkreq(&r, "GET", ""), e, MTIME));
  assert_true(cymg__http_if_range(mkreq(&r, "GET", "If-Range: " ETAG "\r\n"), e, MTIME));
  assert_false(cymg__http_if_range(mkreq(&r, "GET", "If-Range: W/" ETAG "\r\n"), e, MTIME));
  assert_false(cymg__http_if_range(mkreq(&r, "GET", "If-Range: \"x\"\r\n"), e, MTIME));
  assert_true(cymg__http_if_range(mkreq(&r, "GET", "If-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
                                  e, MTIME));
  assert_false(cymg__http_if_range(mkreq(&r, "GET", "If-Range: Sun, 06 Nov 1994 08:49:38 GMT\r\n"),
                                   e, MTIME));
  assert_false(cymg__http_if_range(mkreq(&r, "GET", "If-Range: Wed, 09 Nov 1994 08:49:37 GMT\r\n"),
                                   e, MTIME));
  assert_false(cymg__http_if_range(mkreq(&r, "GET", "If-Range: garbage\r\n"), e, MTIME));
  /* Our tag weak: never a strong match. */
  assert_false(cymg__http_if_range(mkreq(&r, "GET", "If-Range: " ETAG "\r\n"),
                                   cymg_str_c("W/" ETAG), MTIME));
}

/* ---- ranges ---- */

static void range(const char *v, uint64_t size, int want, uint64_t ws, uint64_t wl) {
  uint64_t s = 7777, l = 7777;
  int rc = cymg__http_parse_range(cymg_str_c(v), size, &s, &l);
  if (rc != want) fail_msg("'%s' size %" PRIu64 ": got %d, want %d", v, size, rc, want);
  if (want == CYMG__RANGE_ONE && (s != ws || l != wl))
    fail_msg("'%s': got %" PRIu64 "+%" PRIu64 ", want %" PRIu64 "+%" PRIu64, v, s, l, ws, wl);
  if (want != CYMG__RANGE_ONE) assert_true(s == 7777 && l == 7777);
}

static void test_range(void **state) {
  (void)state;
  range("bytes=0-0", 10, CYMG__RANGE_ONE, 0, 1);
  range("bytes=0-9", 10, CYMG__RANGE_ONE, 0, 10);
  range("bytes=2-5", 10, CYMG__RANGE_ONE, 2, 4);
  range("bytes=2-", 10, CYMG__RANGE_ONE, 2, 8);
  range("bytes=9-", 10, CYMG__RANGE_ONE, 9, 1);
  range("bytes=5-100", 10, CYMG__RANGE_ONE, 5, 5); /* clamped to the end */
  range("bytes=-3", 10, CYMG__RANGE_ONE, 7, 3);
  range("bytes=-10", 10, CYMG__RANGE_ONE, 0, 10);
  range("bytes=-100", 10, CYMG__RANGE_ONE, 0, 10);
  range("Bytes=1-2", 10, CYMG__RANGE_ONE, 1, 2); /* units ignore case */
  range(" bytes=1-2 ", 10, CYMG__RANGE_ONE, 1, 2);
  range("bytes=1-2,", 10, CYMG__RANGE_ONE, 1, 2); /* empty list elements */
  range("bytes=, 1-2", 10, CYMG__RANGE_ONE, 1, 2);
  range("bytes=1-2 ", 10, CYMG__RANGE_ONE, 1, 2);
  range("bytes=0-18446744073709551615", 10, CYMG__RANGE_ONE, 0, 10);
  range("bytes=0-99999999999999999999999", 10, CYMG__RANGE_ONE, 0, 10);
  range("bytes=-99999999999999999999999", 10, CYMG__RANGE_ONE, 0, 10);
  /* Above 4 GiB. */
  uint64_t big = 5ULL << 30;
  range("bytes=4294967296-4294967305", big, CYMG__RANGE_ONE, 4294967296ULL, 10);
  range("bytes=5368709110-", big, CYMG__RANGE_ONE, big - 10, 10);
  range("bytes=-5", big, CYMG__RANGE_ONE, big - 5, 5);
  range("bytes=5368709120-", big, CYMG__RANGE_UNSAT, 0, 0);
  /* Not satisfiable: 416. */
  range("bytes=10-", 10, CYMG__RANGE_UNSAT, 0, 0);
  range("bytes=10-20", 10, CYMG__RANGE_UNSAT, 0, 0);
  range("bytes=-0", 10, CYMG__RANGE_UNSAT, 0, 0);
  range("bytes=99999999999999999999999-", 10, CYMG__RANGE_UNSAT, 0, 0);
  /* Ignored: the whole representation is sent (200). */
  range("", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=,", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=5-2", 10, CYMG__RANGE_NONE, 0, 0); /* invalid */
  range("bytes=-", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=a-b", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=1", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=1-2-3", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=+1-2", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=--1", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes 1-2", 10, CYMG__RANGE_NONE, 0, 0);
  range("items=1-2", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=0-1,4-5", 10, CYMG__RANGE_NONE, 0, 0); /* several ranges */
  range("bytes=0-1,-1", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=0-1,x", 10, CYMG__RANGE_NONE, 0, 0);
  range("bytes=0-0", 0, CYMG__RANGE_NONE, 0, 0); /* an empty file is sent whole */
  range("bytes=-1", 0, CYMG__RANGE_NONE, 0, 0);
}

/* ---- content coding ---- */

static bool gz(const char *headers) {
  reqbuf r;
  return cymg__http_accepts_gzip(mkreq(&r, "GET", headers));
}

static void test_accept_encoding(void **state) {
  (void)state;
  assert_false(gz(""));
  assert_true(gz("Accept-Encoding: gzip\r\n"));
  assert_true(gz("Accept-Encoding: GZIP\r\n"));
  assert_true(gz("Accept-Encoding: x-gzip\r\n"));
  assert_true(gz("Accept-Encoding: gzip, deflate, br, zstd\r\n"));
  assert_true(gz("Accept-Encoding: br;q=1.0, gzip;q=0.5\r\n"));
  assert_true(gz("Accept-Encoding: gzip ; q=0.001\r\n"));
  assert_true(gz("Accept-Encoding: *\r\n"));
  assert_true(gz("Accept-Encoding: br\r\nAccept-Encoding: gzip\r\n"));
  assert_false(gz("Accept-Encoding: gzip;q=0\r\n"));
  assert_false(gz("Accept-Encoding: gzip;q=0.000\r\n"));
  assert_false(gz("Accept-Encoding: gzip; Q=0.0\r\n"));
  assert_false(gz("Accept-Encoding: gzip;q=0, *\r\n")); /* gzip named: "*" does not apply */
  assert_false(gz("Accept-Encoding: *;q=0\r\n"));
  assert_false(gz("Accept-Encoding: identity\r\n"));
  assert_false(gz("Accept-Encoding: br, deflate\r\n"));
  assert_false(gz("Accept-Encoding: gzipx, xgzip\r\n"));
  assert_false(gz("Accept-Encoding:\r\n"));
  /* §5.6.1 list forms: empty elements, OWS. */
  assert_true(gz("Accept-Encoding: ,gzip\r\n"));
  assert_false(gz("Accept-Encoding: ,\r\n"));
  assert_false(gz("Accept-Encoding: , ;q=0\r\n"));
  assert_true(gz("Accept-Encoding: gzip,,\r\n"));
  assert_true(gz("Accept-Encoding: ;q=1,gzip\r\n"));
  assert_true(gz("Accept-Encoding: gzip\t;\tq=0.5\r\n"));
  /* §12.4.2 weights: three decimals at most, 0..1; a malformed one refuses. */
  assert_true(gz("Accept-Encoding: gzip;q=1.000\r\n"));
  assert_true(gz("Accept-Encoding: gzip;q=0.001\r\n"));
  assert_false(gz("Accept-Encoding: gzip;q=1.5\r\n"));
  assert_false(gz("Accept-Encoding: gzip;q=1.001\r\n"));
  assert_false(gz("Accept-Encoding: gzip;q=0.0001\r\n"));
  assert_false(gz("Accept-Encoding: gzip;q=abc\r\n"));
  assert_false(gz("Accept-Encoding: gzip;q=\r\n"));
  /* identity preferred over gzip wins; an equal weight keeps gzip. */
  assert_false(gz("Accept-Encoding: gzip;q=0.5, identity\r\n"));
  assert_true(gz("Accept-Encoding: gzip, identity\r\n"));
  assert_true(gz("Accept-Encoding: identity;q=0, *\r\n"));
}

/* ================================================= over real sockets ==== */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dates),
      cmocka_unit_test(test_etag),
      cmocka_unit_test(test_if_none_match),
      cmocka_unit_test(test_if_modified_since),
      cmocka_unit_test(test_if_match),
      cmocka_unit_test(test_if_range),
      cmocka_unit_test(test_range),
      cmocka_unit_test(test_accept_encoding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
