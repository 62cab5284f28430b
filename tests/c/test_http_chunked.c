/* Chunked decoding: every input is fed whole, split at every byte boundary and
 * one byte at a time, always in exactly-sized heap buffers (ASan catches any
 * over-read), and every way of feeding it must give the same result. */
#include "cymg_test.h"
#include "cymg/http.h"

typedef struct result {
  int rc;          /* 0, or the error */
  int why;         /* reason after an error */
  bool done;       /* message complete */
  size_t consumed; /* input bytes consumed overall */
  char data[4096]; /* decoded body */
  size_t data_len;
} result;

/* Feeds `in` in pieces ending at the offsets in cuts[] (then the rest). The
 * unconsumed bytes of each call are passed again in front of the next piece, as
 * the contract says. */
static void feed(const char *in, size_t n, const size_t *cuts, size_t ncuts, uint64_t max,
                 result *r) {
  cymg_http_chunked st;
  cymg_http_chunked_init(&st, max);
  memset(r, 0, sizeof(*r));
  char *pending = NULL;
  size_t plen = 0, pos = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    size_t add = to - pos;
    /* An exactly-sized buffer per call: pending bytes, then the new piece. */
    char *b = malloc(plen + add + 1);
    assert_non_null(b);
    if (plen) memcpy(b, pending, plen);
    memcpy(b + plen, in + pos, add);
    free(pending);
    pending = NULL;
    size_t blen = plen + add, dl = 12345;
    pos = to;
    int rc = cymg_http_chunked_decode(&st, b, blen, &dl);
    if (rc < 0) {
      assert_int_equal(dl, 0);
      r->rc = rc;
      r->why = cymg_http_chunked_reason(&st);
      /* Errors are sticky. */
      assert_int_equal(cymg_http_chunked_decode(&st, b, blen, &dl), rc);
      free(b);
      return;
    }
    assert_int_equal(cymg_http_chunked_reason(&st), CYMG_HTTP_ERR_NONE);
    assert_true((size_t)rc <= blen && dl <= (size_t)rc);
    assert_true(r->data_len + dl <= sizeof(r->data));
    memcpy(r->data + r->data_len, b, dl);
    r->data_len += dl;
    r->consumed += (size_t)rc;
    plen = blen - (size_t)rc;
    /* Only a trailer section or a finished message leaves bytes behind. */
    if (plen > 0) assert_true(cymg_http_chunked_in_trailer(&st) || cymg_http_chunked_done(&st));
    if (plen) {
      pending = malloc(plen);
      assert_non_null(pending);
      memcpy(pending, b + rc, plen);
    }
    free(b);
  }
  r->done = cymg_http_chunked_done(&st);
  free(pending);
}

static void same(const result *a, const result *b, const char *how, size_t at) {
  /* After an error, how much data came out before it depends on the split. */
  if (a->rc != b->rc || a->why != b->why ||
      (a->rc == 0 && (a->done != b->done || a->data_len != b->data_len ||
                      memcmp(a->data, b->data, a->data_len) != 0 || a->consumed != b->consumed))) {
    fail_msg("%s at %zu: rc %d/%d why %d/%d done %d/%d len %zu/%zu consumed %zu/%zu", how, at,
             a->rc, b->rc, a->why, b->why, a->done, b->done, a->data_len, b->data_len, a->consumed,
             b->consumed);
  }
}

/* Decodes whole, then at every single split, then byte by byte; all must agree. */
static void decode_all(const char *in, size_t n, uint64_t max, result *whole) {
  result r;
  feed(in, n, NULL, 0, max, whole);
  for (size_t k = 0; k <= n; k++) {
    feed(in, n, &k, 1, max, &r);
    same(whole, &r, "split", k);
  }
  size_t *cuts = malloc((n + 1) * sizeof(*cuts));
  assert_non_null(cuts);
  for (size_t k = 0; k < n; k++) cuts[k] = k + 1;
  feed(in, n, cuts, n, max, &r);
  same(whole, &r, "bytewise", 0);
  free(cuts);
}

#define DECODE(lit, res) decode_all((lit), sizeof(lit) - 1, 0, (res))

static void expect_data(const result *r, const char *want) {
  assert_int_equal(r->rc, 0);
  assert_true(r->done);
  assert_int_equal(r->data_len, strlen(want));
  assert_memory_equal(r->data, want, r->data_len);
}

static void test_basic(void **state) {
  (void)state;
  result r;
  DECODE("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", &r);
  expect_data(&r, "hello world");
  assert_int_equal(r.consumed, 26);
  DECODE("0\r\n\r\n", &r);
  expect_data(&r, "");
  DECODE("000A\r\n0123456789\r\n1\r\n!\r\n00\r\n\r\n", &r);
  expect_data(&r, "0123456789!");
  DECODE("a\r\nabcdefghij\r\nF\r\n0123456789ABCDE\r\n0\r\n\r\n", &r);
  expect_data(&r, "abcdefghij0123456789ABCDE");
}

static void test_stops_at_message_end(void **state) {
  (void)state;
  static const char in[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
  result r;
  DECODE(in, &r);
  expect_data(&r, "abc");
  assert_int_equal(r.consumed, 13);

  /* After done, nothing more is consumed. */
  cymg_http_chunked st;
  char buf[sizeof(in)];
  memcpy(buf, in, sizeof(in));
  size_t dl;
  cymg_http_chunked_init(&st, 0);
  assert_int_equal(cymg_http_chunked_decode(&st, buf, sizeof(in) - 1, &dl), 13);
  assert_true(cymg_http_chunked_done(&st));
  assert_int_equal(cymg_http_chunked_decode(&st, buf + 13, sizeof(in) - 14, &dl), 0);
  assert_int_equal(dl, 0);
}

static void test_extensions(void **state) {
  (void)state;
  result r;
  DECODE("5;name=value\r\nhello\r\n3 ; a = \"q\\\"x;\" ;b\t;c=d\r\nabc\r\n0;last\r\n\r\n", &r);
  expect_data(&r, "helloabc");
  DECODE("5;a=b ;c\r\nhello\r\n3;a=\"\" ; b\r\nabc\r\n0\r\n\r\n", &r);
  expect_data(&r, "helloabc");
  DECODE("1;a;b;c\r\nx\r\n0\r\n\r\n", &r);
  expect_data(&r, "x");
  DECODE("1;x=\"caf\xc3\xa9\"\r\nx\r\n0\r\n\r\n", &r);
  expect_data(&r, "x");
}

static void test_trailers(void **state) {
  (void)state;
  static const char in[] = "4\r\nwiki\r\n0\r\nX-Checksum: abc\r\nExpires: Wed, 21 Oct\r\n\r\nNEXT";
  result r;
  DECODE(in, &r);
  expect_data(&r, "wiki");
  assert_int_equal(r.consumed, sizeof(in) - 1 - 4);

  /* While waiting in the trailer, the unconsumed bytes start with it. */
  char buf[sizeof(in)];
  memcpy(buf, in, sizeof(in));
  cymg_http_chunked st;
  size_t dl;
  cymg_http_chunked_init(&st, 0);
  int rc = cymg_http_chunked_decode(&st, buf, 30, &dl);
  assert_int_equal(rc, 12);
  assert_int_equal(dl, 4);
  assert_true(cymg_http_chunked_in_trailer(&st));
  assert_false(cymg_http_chunked_done(&st));
  cymg_http_header h[4];
  size_t nh;
  int why;
  assert_int_equal(cymg_http_parse_fields(buf + rc, sizeof(in) - 1 - 12, h, 4, &nh, &why),
                   (int)sizeof(in) - 1 - 12 - 4);
  assert_int_equal(nh, 2);
  assert_int_equal(h[0].value.len, 3);
  assert_memory_equal(h[0].value.buf, "abc", 3);
}

static void test_large_chunk_streams(void **state) {
  (void)state;
  /* A 64 KiB chunk through small pieces: data comes out as it arrives. */
  size_t size = 65536, n = 0;
  char *in = malloc(size + 32);
  assert_non_null(in);
  n += (size_t)sprintf(in, "10000\r\n");
  for (size_t i = 0; i < size; i++) in[n++] = (char)('a' + i % 26);
  memcpy(in + n, "\r\n0\r\n\r\n", 7);
  n += 7;
  cymg_http_chunked st;
  cymg_http_chunked_init(&st, 0);
  size_t total = 0, off = 0;
  char piece[1000];
  while (off < n) {
    size_t k = n - off < sizeof(piece) ? n - off : sizeof(piece), dl;
    memcpy(piece, in + off, k);
    int rc = cymg_http_chunked_decode(&st, piece, k, &dl);
    assert_true(rc >= 0);
    for (size_t i = 0; i < dl; i++) assert_int_equal(piece[i], 'a' + (total + i) % 26);
    total += dl;
    off += (size_t)rc;
    if ((size_t)rc < k) break;
  }
  assert_true(cymg_http_chunked_done(&st));
  assert_int_equal(total, size);
  assert_int_equal(off, n);
  free(in);
}

typedef struct bad {
  const char *in;
  size_t len;
  uint64_t max;
  int rc, why;
} bad;

#define BAD(in, why) \
  { in, sizeof(in) - 1, 0, CYMG_EPARSE, CYMG_HTTP_ERR_##why }
#define BADL(in, max, why) \
  { in, sizeof(in) - 1, max, CYMG_ELIMIT, CYMG_HTTP_ERR_##why }

static void test_errors(void **state) {
  (void)state;
  static const bad cases[] = {
      BAD("\r\n", CHUNK_SIZE),
      BAD("g\r\n", CHUNK_SIZE),
      BAD("-5\r\n", CHUNK_SIZE),
      BAD("+5\r\n", CHUNK_SIZE),
      BAD("0x5\r\n", CHUNK_SIZE),
      BAD("5x\r\nhello\r\n0\r\n\r\n", CHUNK_SIZE),
      BAD("10000000000000000\r\n", CHUNK_SIZE),
      BAD("00000000000000001\r\n", CHUNK_SIZE),
      BADL("FFFFFFFFFFFFFFFF\r\n", 0, CHUNK_TOO_LARGE),
      BADL("65\r\n", 100, CHUNK_TOO_LARGE),
      BAD("5\r\nhelloX\r\n0\r\n\r\n", CHUNK_CRLF),
      BAD("5\r\nhello\n0\r\n\r\n", CHUNK_CRLF),
      BAD("5\r\nhello\r0\r\n\r\n", CHUNK_CRLF),
      BAD("5\r\nhello world\r\n", CHUNK_CRLF),
      BAD("5\nhello\r\n0\r\n\r\n", BARE_LF),
      BAD("\n", BARE_LF),
      BAD("5;a=b\nhello\r\n", BARE_LF),
      BAD("5\rhello\r\n", BARE_CR),
      BAD("0\r\n\n", BARE_LF),
      BAD("0\r\nX: y\n\r\n", BARE_LF),
      BAD("0\r\nX: y\r\nZ: a\nBad Name: b\r\n\r\n", BARE_LF),
      BAD("0\r\nBad Name: b\r\nX: y\n\r\n", HEADER_NAME),
      BAD("5 \r\nhello\r\n", CHUNK_EXT),
      BAD("5;=x\r\nhello\r\n", CHUNK_EXT),
      BAD("5;a \r\nhello\r\n", CHUNK_EXT),
      BAD("5;a=b \r\nhello\r\n", CHUNK_EXT),
      BAD("5;a=\"b\" \r\nhello\r\n", CHUNK_EXT),
      BAD("5;a=\r\nhello\r\n", CHUNK_EXT),
      BAD("5;a b\r\nhello\r\n", CHUNK_EXT),
      BAD("5;a=\"x\r\nhello\r\n", CHUNK_EXT),
      BAD("5;a=\"x\"y\r\nhello\r\n", CHUNK_EXT),
      BAD("5;a=@\r\nhello\r\n", CHUNK_EXT),
      BAD("5;a=\"\x01\"\r\nhello\r\n", CHUNK_EXT),
      BAD("0\r\nBad Name: x\r\n\r\n", HEADER_NAME),
      BAD("0\r\nX: a\x01\r\n\r\n", HEADER_VALUE),
      BAD("0\r\nX: a\r\n b\r\n\r\n", OBS_FOLD),
      BAD("0\r\nX: a\rb\r\n\r\n", BARE_CR),
      BAD("0\r\nX : a\r\n\r\n", WS_BEFORE_COLON),
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    result r;
    decode_all(cases[i].in, cases[i].len, cases[i].max, &r);
    if (r.rc != cases[i].rc || r.why != cases[i].why) {
      fail_msg("case %zu: rc %d why %d (%s), want %d %d", i, r.rc, r.why, cymg_http_err_text(r.why),
               cases[i].rc, cases[i].why);
    }
  }
}

static void test_limits(void **state) {
  (void)state;
  /* Extension text longer than the bound. */
  size_t n = 0;
  char *in = malloc(8192);
  assert_non_null(in);
  in[n++] = '1';
  in[n++] = ';';
  in[n++] = 'a';
  in[n++] = '=';
  in[n++] = '"';
  while (n < 5000) in[n++] = 'x';
  result r;
  feed(in, n, NULL, 0, 0, &r);
  assert_int_equal(r.rc, CYMG_ELIMIT);
  assert_int_equal(r.why, CYMG_HTTP_ERR_CHUNK_EXT_TOO_LONG);
  free(in);

  /* A trailer section that never ends: valid lines, no empty line. */
  size_t tn = 3 + (CYMG_HTTP_MAX_TRAILER / 40 + 2) * 40;
  in = malloc(tn);
  assert_non_null(in);
  memcpy(in, "0\r\n", 3);
  for (size_t i = 3; i + 40 <= tn; i += 40) {
    memset(in + i, 'x', 40);
    memcpy(in + i, "X-Filler: ", 10);
    memcpy(in + i + 38, "\r\n", 2);
  }
  size_t cut = 1000;
  feed(in, tn, &cut, 1, 0, &r);
  assert_int_equal(r.rc, CYMG_ELIMIT);
  assert_int_equal(r.why, CYMG_HTTP_ERR_TRAILER_TOO_LARGE);
  free(in);

  /* The exact limit: 100 is fine with max 100. */
  static const char ok[] = "64\r\n";
  cymg_http_chunked st;
  char b[8];
  size_t dl;
  memcpy(b, ok, 4);
  cymg_http_chunked_init(&st, 100);
  assert_int_equal(cymg_http_chunked_decode(&st, b, 4, &dl), 4);
  assert_int_equal(cymg_http_chunked_reason(&st), CYMG_HTTP_ERR_NONE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_stops_at_message_end),
      cmocka_unit_test(test_extensions),
      cmocka_unit_test(test_trailers),
      cmocka_unit_test(test_large_chunk_streams),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
