/* HTTP head parsing: valid requests and responses, one test per refusal reason,
 * and for every input every truncation, placed right before an unreadable page so
 * that any read past the end crashes. */
#include <sys/mman.h>
#include <unistd.h>

#include "cymg_test.h"
#include "cymg/http.h"

#define MAX_HDRS 64

/* A region whose last readable byte is followed by a PROT_NONE page. */
typedef struct guard {
  char *base;
  size_t cap, maplen;
} guard;

static void guard_init(guard *g, size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  g->cap = (n + page - 1) / page * page;
  if (g->cap == 0) g->cap = page;
  g->maplen = g->cap + page;
  g->base = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(g->base != MAP_FAILED);
  assert_int_equal(mprotect(g->base + g->cap, page, PROT_NONE), 0);
}

static const char *guard_put(guard *g, const char *s, size_t n) {
  char *p = g->base + g->cap - n;
  memcpy(p, s, n);
  return p;
}

static void guard_free(guard *g) {
  munmap(g->base, g->maplen);
}

typedef struct parsed {
  guard g;
  const char *buf;
  int rc, why;
  cymg_http_msg msg;
  cymg_http_header hdrs[MAX_HDRS];
} parsed;

static int run(bool resp, const char *buf, size_t len, cymg_http_msg *m, cymg_http_header *h,
               size_t max, int *why) {
  return resp ? cymg_http_parse_response(buf, len, m, h, max, why)
              : cymg_http_parse_request(buf, len, m, h, max, why);
}

static void assert_in(const parsed *p, cymg_str s, size_t len) {
  if (s.len == 0) return;
  assert_true(s.buf >= p->buf && s.buf + s.len <= p->buf + len);
}

/* Parses s whole, then every strict prefix: a prefix may only need more bytes or
 * fail exactly as the whole does; past a complete head it must agree with it. */
static void parse_full(parsed *p, bool resp, const char *s, size_t n, size_t max) {
  cymg_http_msg m;
  cymg_http_header h[MAX_HDRS];
  guard_init(&p->g, n);
  p->buf = guard_put(&p->g, s, n);
  p->rc = run(resp, p->buf, n, &p->msg, p->hdrs, max, &p->why);
  for (size_t k = 0; k < n; k++) {
    int why = -1;
    const char *b = guard_put(&p->g, s, k);
    int rc = run(resp, b, k, &m, h, max, &why);
    if (p->rc > 0 && (size_t)p->rc <= k) {
      assert_int_equal(rc, p->rc);
    } else if (rc != CYMG_EAGAIN) {
      if (rc != p->rc || why != p->why) {
        fail_msg("prefix %zu of %zu: rc %d why %d, whole: rc %d why %d", k, n, rc, why, p->rc,
                 p->why);
      }
    } else {
      assert_int_equal(why, CYMG_HTTP_ERR_NONE);
    }
  }
  p->buf = guard_put(&p->g, s, n);
  p->rc = run(resp, p->buf, n, &p->msg, p->hdrs, max, &p->why);
  if (p->rc > 0) {
    const cymg_http_msg *m2 = &p->msg;
    assert_true((size_t)p->rc <= n);
    assert_int_equal(p->why, CYMG_HTTP_ERR_NONE);
    assert_in(p, m2->method, n);
    assert_in(p, m2->uri, n);
    assert_in(p, m2->query, n);
    assert_in(p, m2->proto, n);
    assert_in(p, m2->head, n);
    assert_true(m2->head.buf + m2->head.len == p->buf + p->rc);
    for (size_t i = 0; i < m2->num_headers; i++) {
      assert_in(p, m2->headers[i].name, n);
      assert_in(p, m2->headers[i].value, n);
    }
  }
}

#define REQ(p, lit) parse_full((p), false, (lit), sizeof(lit) - 1, MAX_HDRS)
#define RESP(p, lit) parse_full((p), true, (lit), sizeof(lit) - 1, MAX_HDRS)

static void assert_str(cymg_str s, const char *want) {
  if (s.len != strlen(want) || (s.len > 0 && memcmp(s.buf, want, s.len) != 0)) {
    fail_msg("got '%.*s', want '%s'", (int)s.len, s.buf, want);
  }
}

static void assert_hdr(const parsed *p, const char *name, const char *value) {
  cymg_str *v = cymg_http_get_header(&p->msg, name);
  if (v == NULL) fail_msg("no header %s", name);
  assert_str(*v, value);
}

/* ---- valid requests ---- */

static void test_get_with_query(void **state) {
  (void)state;
  parsed p;
  REQ(&p, "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n\r\n");
  assert_int_equal(p.rc, (int)p.msg.head.len);
  assert_str(p.msg.method, "GET");
  assert_str(p.msg.uri, "/a/b");
  assert_str(p.msg.query, "x=1&y=2");
  assert_str(p.msg.target, "/a/b?x=1&y=2");
  assert_str(p.msg.proto, "HTTP/1.1");
  assert_int_equal(p.msg.num_headers, 2);
  assert_str(p.msg.headers[0].name, "Host");
  assert_str(p.msg.headers[0].value, "example.com");
  assert_int_equal(p.msg.content_length, -1);
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_KEEPALIVE);
  assert_int_equal(p.msg.status, 0);
  assert_int_equal(cymg_http_body_kind(&p.msg, false, p.msg.method), CYMG_HTTP_BODY_NONE);
  assert_int_equal(p.msg.body.len, 0);
  assert_true(p.msg.body.buf == p.buf + p.rc);
  guard_free(&p.g);
}

static void test_post_content_length(void **state) {
  (void)state;
  parsed p;
  REQ(&p, "POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  assert_int_equal(p.rc,
                   (int)sizeof("POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n") - 1);
  assert_str(p.msg.query, "");
  assert_int_equal(p.msg.content_length, 5);
  assert_int_equal(cymg_http_body_kind(&p.msg, false, p.msg.method), CYMG_HTTP_BODY_LENGTH);
  assert_memory_equal(p.buf + p.rc, "hello", 5);
  guard_free(&p.g);
}

static void test_chunked_post(void **state) {
  (void)state;
  parsed p;
  REQ(&p,
      "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  assert_true(p.rc > 0);
  assert_int_equal(p.msg.flags,
                   CYMG_HTTP_F_CHUNKED | CYMG_HTTP_F_TRANSFER_ENCODING | CYMG_HTTP_F_KEEPALIVE);
  assert_int_equal(cymg_http_body_kind(&p.msg, false, p.msg.method), CYMG_HTTP_BODY_CHUNKED);
  guard_free(&p.g);
  REQ(&p, "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,CHUNKED ,\r\n\r\n");
  assert_int_equal(p.msg.flags & CYMG_HTTP_F_CHUNKED, CYMG_HTTP_F_CHUNKED);
  guard_free(&p.g);
}

static void test_pipelined(void **state) {
  (void)state;
  static const char two[] =
      "GET /one HTTP/1.1\r\nHost: h\r\n\r\nPOST /two HTTP/1.1\r\nHost: h\r\nContent-Length: "
      "2\r\n\r\n"
      "okGET /three HTTP/1.1\r\nHost: h\r\n\r\n";
  parsed p;
  REQ(&p, two);
  size_t off = (size_t)p.rc;
  assert_str(p.msg.uri, "/one");
  guard_free(&p.g);
  parse_full(&p, false, two + off, sizeof(two) - 1 - off, MAX_HDRS);
  assert_str(p.msg.uri, "/two");
  off += (size_t)p.rc + (size_t)p.msg.content_length;
  guard_free(&p.g);
  parse_full(&p, false, two + off, sizeof(two) - 1 - off, MAX_HDRS);
  assert_str(p.msg.uri, "/three");
  assert_int_equal(off + (size_t)p.rc, sizeof(two) - 1);
  guard_free(&p.g);
}

static void test_target_forms(void **state) {
  (void)state;
  parsed p;
  REQ(&p, "GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
  assert_str(p.msg.uri, "/p/q");
  assert_str(p.msg.query, "x=1");
  assert_str(p.msg.target, "http://example.com:8080/p/q?x=1");
  guard_free(&p.g);
  REQ(&p, "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
  assert_str(p.msg.uri, "");
  guard_free(&p.g);
  REQ(&p, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  assert_str(p.msg.uri, "*");
  guard_free(&p.g);
  REQ(&p, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  assert_str(p.msg.method, "CONNECT");
  assert_str(p.msg.uri, "example.com:443");
  guard_free(&p.g);
  REQ(&p, "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n");
  assert_true(p.rc > 0);
  guard_free(&p.g);
  REQ(&p, "GET /caf\xc3\xa9?q=\xe2\x82\xac HTTP/1.1\r\nHost: h\r\n\r\n");
  assert_str(p.msg.uri, "/caf\xc3\xa9");
  guard_free(&p.g);
}

static void test_many_headers(void **state) {
  (void)state;
  char buf[4096];
  size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\n");
  for (int i = 1; i < MAX_HDRS; i++) {
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-Header-%d: value %d\r\n", i, i);
  }
  n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
  parsed p;
  parse_full(&p, false, buf, n, MAX_HDRS);
  assert_int_equal(p.rc, (int)n);
  assert_int_equal(p.msg.num_headers, MAX_HDRS);
  assert_hdr(&p, "x-header-63", "value 63");
  guard_free(&p.g);
  /* One more than fits: 431. */
  parse_full(&p, false, buf, n, MAX_HDRS - 1);
  assert_int_equal(p.rc, CYMG_ELIMIT);
  assert_int_equal(p.why, CYMG_HTTP_ERR_TOO_MANY_HEADERS);
  assert_int_equal(cymg_http_err_status(p.why), 431);
  guard_free(&p.g);
}

static void test_http10_keepalive(void **state) {
  (void)state;
  parsed p;
  REQ(&p, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_HTTP10 | CYMG_HTTP_F_KEEPALIVE);
  guard_free(&p.g);
  REQ(&p, "GET / HTTP/1.0\r\n\r\n");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_HTTP10);
  guard_free(&p.g);
  REQ(&p, "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_CONNECTION_CLOSE);
  guard_free(&p.g);
  /* RFC 9110 §2.5: a higher minor version is handled as the highest we know. */
  REQ(&p, "GET / HTTP/1.7\r\nHost: h\r\n\r\n");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_KEEPALIVE);
  assert_str(p.msg.proto, "HTTP/1.7");
  guard_free(&p.g);
}

static void test_upgrade_and_expect(void **state) {
  (void)state;
  parsed p;
  REQ(&p,
      "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_UPGRADE | CYMG_HTTP_F_KEEPALIVE);
  assert_hdr(&p, "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
  guard_free(&p.g);
  REQ(&p, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_KEEPALIVE); /* no Connection: upgrade */
  guard_free(&p.g);
  REQ(&p, "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-Continue\r\n\r\n");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_EXPECT_CONTINUE | CYMG_HTTP_F_KEEPALIVE);
  guard_free(&p.g);
  REQ(&p, "PUT /f HTTP/1.0\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_HTTP10); /* ignored in HTTP/1.0 */
  guard_free(&p.g);
}

static void test_values(void **state) {
  (void)state;
  parsed p;
  REQ(&p,
      "GET / HTTP/1.1\r\nHost: h\r\nX-Name: \t Jos\xc3\xa9 \xe2\x82\xac \t \r\nX-Empty:\r\n"
      "X-Blank:   \r\nX-Inner: a \t b\r\n\r\n");
  assert_hdr(&p, "X-NAME", "Jos\xc3\xa9 \xe2\x82\xac");
  assert_hdr(&p, "x-empty", "");
  assert_hdr(&p, "x-blank", "");
  assert_hdr(&p, "x-inner", "a \t b");
  assert_null(cymg_http_get_header(&p.msg, "X-Missing"));
  assert_null(cymg_http_get_header(&p.msg, "X-Nam"));
  guard_free(&p.g);
}

static void test_line_endings(void **state) {
  (void)state;
  parsed p;
  REQ(&p, "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  assert_int_equal(p.rc, 4 + (int)p.msg.head.len);
  assert_true(p.msg.head.buf == p.buf + 4);
  guard_free(&p.g);
  REQ(&p, "\nGET / HTTP/1.1\nHost: h\nX: y\n\n");
  assert_true(p.rc > 0);
  assert_hdr(&p, "x", "y");
  guard_free(&p.g);
}

static void test_content_length_repeats(void **state) {
  (void)state;
  parsed p;
  REQ(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42, 42\r\nContent-Length: 42\r\n\r\n");
  assert_int_equal(p.msg.content_length, 42);
  guard_free(&p.g);
  REQ(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  assert_int_equal(p.msg.content_length, 0);
  guard_free(&p.g);
  REQ(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n");
  assert_true(p.msg.content_length == INT64_MAX);
  guard_free(&p.g);
}

/* ---- refusals: every reason, with its code and status ---- */

typedef struct bad {
  const char *in;
  size_t len; /* inputs may hold NUL bytes */
  int rc, why, status;
} bad;

static void check_bad(bool resp, const bad *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    parsed p;
    parse_full(&p, resp, cases[i].in, cases[i].len, MAX_HDRS);
    if (p.rc != cases[i].rc || p.why != cases[i].why) {
      fail_msg("case %zu '%s': rc %d why %d (%s), want rc %d why %d", i, cases[i].in, p.rc, p.why,
               cymg_http_err_text(p.why), cases[i].rc, cases[i].why);
    }
    assert_int_equal(cymg_http_err_status(p.why), cases[i].status);
    guard_free(&p.g);
  }
}

#define E400(in, why) \
  { in, sizeof(in) - 1, CYMG_EPARSE, CYMG_HTTP_ERR_##why, 400 }
#define EXX(in, why, st) \
  { in, sizeof(in) - 1, CYMG_EPARSE, CYMG_HTTP_ERR_##why, st }

static void test_bad_requests(void **state) {
  (void)state;
  static const bad cases[] = {
      E400("G@T / HTTP/1.1\r\nHost: h\r\n\r\n", METHOD),
      E400(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", METHOD),
      E400("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", METHOD),
      E400("GET\r\n\r\n", METHOD),
      E400("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("GET * HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("CONNECT example.com:x HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("GET 1http://x/ HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("GET example.com HTTP/1.1\r\nHost: h\r\n\r\n", TARGET),
      E400("GET /\r\n\r\n", TARGET),
      E400("GET / HTTP/1.1x\r\nHost: h\r\n\r\n", VERSION),
      E400("GET / http/1.1\r\nHost: h\r\n\r\n", VERSION),
      E400("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", VERSION),
      E400("GET / HTTP/11.1\r\nHost: h\r\n\r\n", VERSION),
      E400("GET / HTTP/1\r\nHost: h\r\n\r\n", VERSION),
      EXX("GET / HTTP/2.0\r\nHost: h\r\n\r\n", VERSION_MAJOR, 505),
      EXX("GET / HTTP/0.9\r\n\r\n", VERSION_MAJOR, 505),
      E400("GET / HTTP/1.1\rHost: h\r\n\r\n", BARE_CR),
      E400("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", BARE_CR),
      E400("GET / HTTP/1.1\r\nHost: h\r\n\rX", BARE_CR),
      E400("\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", BARE_CR),
      E400("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", NUL),
      E400("GE\0T / HTTP/1.1\r\nHost: h\r\n\r\n", NUL),
      E400("GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n", NUL),
      E400("GET / HTTP/1.1\r\nHo\0st: h\r\n\r\n", NUL),
      E400("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", OBS_FOLD),
      E400("GET / HTTP/1.1\r\n Host: h\r\n\r\n", OBS_FOLD),
      E400("GET / HTTP/1.1\r\nHost: h\r\n\tX: b\r\n\r\n", OBS_FOLD),
      E400("GET / HTTP/1.1\r\nHost : h\r\n\r\n", WS_BEFORE_COLON),
      E400("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", WS_BEFORE_COLON),
      E400("GET / HTTP/1.1\r\nHost h\r\n\r\n", HEADER_NAME),
      E400("GET / HTTP/1.1\r\nHo(st: h\r\n\r\n", HEADER_NAME),
      E400("GET / HTTP/1.1\r\n: h\r\n\r\n", HEADER_NAME),
      E400("GET / HTTP/1.1\r\nHost\r\n\r\n", HEADER_NAME),
      E400("GET / HTTP/1.1\r\nX\xc3\xa9: h\r\n\r\n", HEADER_NAME),
      E400("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01 b\r\n\r\n", HEADER_VALUE),
      E400("GET / HTTP/1.1\r\nHost: h\r\nX: \x7f\r\n\r\n", HEADER_VALUE),
      E400("GET / HTTP/1.1\r\nHost: h\r\nX: a\x1b[0m\r\n\r\n", HEADER_VALUE),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", CL_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", CL_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", CL_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", CL_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n", CL_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n", CL_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", CL_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n", CL_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
           CL_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
           CL_CONFLICT),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", CL_CONFLICT),
      E400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
           CL_AND_TE),
      E400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
           CL_AND_TE),
      E400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
           TE_NOT_CHUNKED),
      E400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
           "x\r\n\r\n",
           TE_NOT_CHUNKED),
      E400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
           TE_CHUNKED_TWICE),
      E400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
           "chunked\r\n\r\n",
           TE_CHUNKED_TWICE),
      E400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", TE_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;\r\n\r\n", TE_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", TE_INVALID),
      E400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked x\r\n\r\n", TE_INVALID),
      EXX("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", TE_UNSUPPORTED, 501),
      EXX("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", TE_UNSUPPORTED,
          501),
      E400("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TE_HTTP10),
      E400("GET / HTTP/1.1\r\n\r\n", HOST),
      E400("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HOST),
      E400("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", HOST),
      E400("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HOST),
      E400("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HOST),
  };
  check_bad(false, cases, sizeof(cases) / sizeof(cases[0]));

  parsed p;
  parse_full(&p, false, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", 40, 2);
  assert_int_equal(p.rc, CYMG_ELIMIT);
  assert_int_equal(p.why, CYMG_HTTP_ERR_TOO_MANY_HEADERS);
  guard_free(&p.g);
  int why = -1;
  cymg_http_msg m;
  assert_int_equal(
      cymg_http_parse_request("GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27, &m, NULL, 0, &why),
      CYMG_ELIMIT);
  assert_int_equal(why, CYMG_HTTP_ERR_TOO_MANY_HEADERS);
  /* NULL reason is allowed. */
  assert_int_equal(cymg_http_parse_request("G@T", 3, &m, NULL, 0, NULL), CYMG_EPARSE);
  /* The caller's head limit: EAGAIN at the limit means 431. */
  assert_int_equal(cymg_http_err_status(CYMG_HTTP_ERR_HEAD_TOO_LARGE), 431);
}

/* ---- responses ---- */

static void test_responses(void **state) {
  (void)state;
  cymg_str get = cymg_str_c("GET"), head = cymg_str_c("HEAD"), connect = cymg_str_c("CONNECT");
  parsed p;
  RESP(&p, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nabc");
  assert_int_equal(p.msg.status, 200);
  assert_str(p.msg.reason, "OK");
  assert_str(p.msg.proto, "HTTP/1.1");
  assert_str(p.msg.method, "");
  assert_int_equal(p.msg.content_length, 3);
  assert_int_equal(cymg_http_body_kind(&p.msg, true, get), CYMG_HTTP_BODY_LENGTH);
  assert_int_equal(cymg_http_body_kind(&p.msg, true, head), CYMG_HTTP_BODY_NONE);
  guard_free(&p.g);

  RESP(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  assert_int_equal(cymg_http_body_kind(&p.msg, true, get), CYMG_HTTP_BODY_CHUNKED);
  guard_free(&p.g);
  RESP(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
  assert_int_equal(cymg_http_body_kind(&p.msg, true, get), CYMG_HTTP_BODY_CLOSE);
  guard_free(&p.g);
  RESP(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  assert_int_equal(cymg_http_body_kind(&p.msg, true, get), CYMG_HTTP_BODY_CLOSE);
  guard_free(&p.g);

  RESP(&p, "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nbody until close");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_HTTP10);
  assert_int_equal(cymg_http_body_kind(&p.msg, true, get), CYMG_HTTP_BODY_CLOSE);
  guard_free(&p.g);

  RESP(&p, "HTTP/1.1 204 No Content\r\n\r\n");
  assert_int_equal(cymg_http_body_kind(&p.msg, true, get), CYMG_HTTP_BODY_NONE);
  guard_free(&p.g);
  RESP(&p, "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n");
  assert_int_equal(cymg_http_body_kind(&p.msg, true, get), CYMG_HTTP_BODY_NONE);
  guard_free(&p.g);
  RESP(&p, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n");
  assert_int_equal(p.msg.status, 100);
  assert_int_equal(p.rc, 25);
  assert_int_equal(cymg_http_body_kind(&p.msg, true, get), CYMG_HTTP_BODY_NONE);
  guard_free(&p.g);
  RESP(&p, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_UPGRADE | CYMG_HTTP_F_KEEPALIVE);
  guard_free(&p.g);
  RESP(&p, "HTTP/1.1 200 Connection established\r\n\r\n");
  assert_int_equal(cymg_http_body_kind(&p.msg, true, connect), CYMG_HTTP_BODY_NONE);
  guard_free(&p.g);

  RESP(&p, "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n");
  assert_int_equal(p.msg.status, 404);
  assert_str(p.msg.reason, "");
  guard_free(&p.g);
  RESP(&p, "HTTP/1.1 599\r\nConnection: close\r\n\r\n");
  assert_int_equal(p.msg.status, 599);
  assert_str(p.msg.reason, "");
  assert_int_equal(p.msg.flags, CYMG_HTTP_F_CONNECTION_CLOSE);
  guard_free(&p.g);
  RESP(&p, "HTTP/1.1 200 D\xc3\xa9j\xc3\xa0 vu\t ok\nX: 1\n\n");
  assert_str(p.msg.reason, "D\xc3\xa9j\xc3\xa0 vu\t ok");
  guard_free(&p.g);
}

static void test_bad_responses(void **state) {
  (void)state;
  static const bad cases[] = {
      E400("HTTP/1.1 20 OK\r\n\r\n", STATUS),
      E400("HTTP/1.1 099 Low\r\n\r\n", STATUS),
      E400("HTTP/1.1 2000 OK\r\n\r\n", STATUS),
      E400("HTTP/1.1 2x0 OK\r\n\r\n", STATUS),
      E400("HTTP/1.1  200 OK\r\n\r\n", STATUS),
      E400("HTTP/1.1 200 O\x01K\r\n\r\n", REASON),
      E400("HTTP/1.1 200 O\x7fK\r\n\r\n", REASON),
      E400("HTTP/1.1 200 OK\rX\r\n\r\n", BARE_CR),
      E400("HTTP/1.1 200 O\0K\r\n\r\n", NUL),
      E400("HTTPS/1.1 200 OK\r\n\r\n", VERSION),
      E400("HTTP/1.1\t200 OK\r\n\r\n", VERSION),
      E400("\r\nHTTP/1.1 200 OK\r\n\r\n", VERSION),
      EXX("HTTP/2.0 200 OK\r\n\r\n", VERSION_MAJOR, 505),
      E400("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", CL_AND_TE),
      E400("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", CL_CONFLICT),
      E400("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,chunked\r\n\r\n", TE_CHUNKED_TWICE),
      E400("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", TE_HTTP10),
      E400("HTTP/1.1 200 OK\r\nX : y\r\n\r\n", WS_BEFORE_COLON),
      E400("HTTP/1.1 200 OK\r\nX: y\r\n  z\r\n\r\n", OBS_FOLD),
  };
  check_bad(true, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_fields(void **state) {
  (void)state;
  static const char t[] = "X-Sum: abc\r\nY:z\r\n\r\nnext";
  cymg_http_header h[4];
  size_t n = 99;
  int why = -1;
  assert_int_equal(cymg_http_parse_fields(t, sizeof(t) - 1, h, 4, &n, &why), 19);
  assert_int_equal(n, 2);
  assert_str(h[1].value, "z");
  assert_int_equal(cymg_http_parse_fields(t, 10, h, 4, &n, &why), CYMG_EAGAIN);
  assert_int_equal(cymg_http_parse_fields(t, sizeof(t) - 1, NULL, SIZE_MAX, &n, &why), 19);
  assert_int_equal(cymg_http_parse_fields("\r\n", 2, NULL, 0, &n, &why), 2);
  assert_int_equal(n, 0);
  assert_int_equal(cymg_http_parse_fields("A B: c\r\n\r\n", 10, h, 4, &n, &why), CYMG_EPARSE);
  assert_int_equal(why, CYMG_HTTP_ERR_HEADER_NAME);
}

/* ---- helpers ---- */

static void test_header_var(void **state) {
  (void)state;
  cymg_str v;
  cymg_str ct = cymg_str_c("text/html; charset=\"utf-8\"");
  assert_int_equal(cymg_http_header_var(ct, "charset", &v), 0);
  assert_str(v, "utf-8");
  assert_int_equal(cymg_http_header_var(ct, "CHARSET", &v), 0);
  assert_int_equal(cymg_http_header_var(ct, "boundary", &v), CYMG_ENOTFOUND);
  cymg_str ck = cymg_str_c("a=1; b=2;c= 3 ;empty=; flag");
  assert_int_equal(cymg_http_header_var(ck, "a", &v), 0);
  assert_str(v, "1");
  assert_int_equal(cymg_http_header_var(ck, "b", &v), 0);
  assert_str(v, "2");
  assert_int_equal(cymg_http_header_var(ck, "c", &v), 0);
  assert_str(v, "3");
  assert_int_equal(cymg_http_header_var(ck, "empty", &v), 0);
  assert_str(v, "");
  assert_int_equal(cymg_http_header_var(ck, "flag", &v), 0);
  assert_str(v, "");
  assert_int_equal(cymg_http_header_var(ck, "d", &v), CYMG_ENOTFOUND);
  cymg_str sc = cymg_str_c("id=a3f; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Secure");
  assert_int_equal(cymg_http_header_var(sc, "expires", &v), 0);
  assert_str(v, "Wed, 21 Oct 2015 07:28:00 GMT");
  cymg_str auth = cymg_str_c("username=\"Mufasa\", realm=\"a, b; c\", nc=00000001, qop=auth");
  assert_int_equal(cymg_http_header_var(auth, "realm", &v), 0);
  assert_str(v, "a, b; c");
  assert_int_equal(cymg_http_header_var(auth, "nc", &v), 0);
  assert_str(v, "00000001");
  assert_int_equal(cymg_http_header_var(auth, "qop", &v), 0);
  assert_str(v, "auth");
  cymg_str esc = cymg_str_c("x=\"a\\\"b\"; y=1");
  assert_int_equal(cymg_http_header_var(esc, "x", &v), 0);
  assert_str(v, "a\\\"b");
  assert_int_equal(cymg_http_header_var(esc, "y", &v), 0);
  assert_str(v, "1");
  assert_int_equal(cymg_http_header_var(cymg_str_c("x=\"open"), "x", &v), CYMG_EPARSE);
  assert_int_equal(cymg_http_header_var(cymg_str_c(""), "x", &v), CYMG_ENOTFOUND);
}

static void test_status_reason_and_errors(void **state) {
  (void)state;
  assert_string_equal(cymg_http_status_reason(200), "OK");
  assert_string_equal(cymg_http_status_reason(404), "Not Found");
  assert_string_equal(cymg_http_status_reason(413), "Content Too Large");
  assert_string_equal(cymg_http_status_reason(418), "I'm a teapot");
  assert_string_equal(cymg_http_status_reason(429), "Too Many Requests");
  assert_string_equal(cymg_http_status_reason(431), "Request Header Fields Too Large");
  assert_string_equal(cymg_http_status_reason(451), "Unavailable For Legal Reasons");
  assert_string_equal(cymg_http_status_reason(505), "HTTP Version Not Supported");
  assert_string_equal(cymg_http_status_reason(299), "");
  assert_string_equal(cymg_http_status_reason(-1), "");
  for (int r = 0; r < CYMG_HTTP_ERR_MAX_; r++) {
    assert_string_not_equal(cymg_http_err_text(r), "unknown HTTP error");
    int s = cymg_http_err_status(r);
    assert_true(s == 400 || s == 431 || s == 501 || s == 505);
  }
  assert_string_equal(cymg_http_err_text(CYMG_HTTP_ERR_MAX_), "unknown HTTP error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_with_query),
      cmocka_unit_test(test_post_content_length),
      cmocka_unit_test(test_chunked_post),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_target_forms),
      cmocka_unit_test(test_many_headers),
      cmocka_unit_test(test_http10_keepalive),
      cmocka_unit_test(test_upgrade_and_expect),
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_line_endings),
      cmocka_unit_test(test_content_length_repeats),
      cmocka_unit_test(test_bad_requests),
      cmocka_unit_test(test_responses),
      cmocka_unit_test(test_bad_responses),
      cmocka_unit_test(test_parse_fields),
      cmocka_unit_test(test_header_var),
      cmocka_unit_test(test_status_reason_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
