/* The HTTP server over loopback with a raw-socket client: keep-alive, pipelining,
 * chunked both ways, 100-continue, HEAD, every refusal, limits, timeouts,
 * streaming bodies, SSE. CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include "http_test.h"

typedef struct {
  int hdrs, msgs, reads;
  size_t streamed;
  uint64_t body_sum;
  char last_body[256];
  bool stream, defer_first;
  cymg_conn *deferred;
  unsigned last_flags;
} srv_state;

static void reply_deferred(void *arg) {
  cymg_conn *c = arg;
  assert_int_equal(cymg_http_reply(c, 200, NULL, "deferred"), 0);
}

/* The second half of a sized body, later: the pipelined request behind it
 * must wait for it. */
static void sized_rest(void *arg) {
  cymg_conn *c = arg;
  assert_int_equal(cymg_http_chunk(c, "world", 5), 0);
  assert_int_equal(cymg_http_chunk(c, "x", 1), CYMG_ESTATE); /* complete */
}

static void srv_fn(cymg_conn *c, int ev, void *ev_data) {
  srv_state *s = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_HDRS) {
    s->hdrs++;
    if (s->stream) assert_int_equal(cymg_http_stream_body(c), 0);
  } else if (ev == CYMG_EV_READ) {
    s->reads++;
    size_t n = *(size_t *) ev_data;
    cymg_str d = cymg_conn_recv_data(c);
    assert_true(d.len >= n);
    for (size_t i = 0; i < n; i++) s->body_sum += (unsigned char) d.buf[i];
    s->streamed += n;
  } else if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *m = ev_data;
    s->msgs++;
    s->last_flags = m->flags;
    snprintf(s->last_body, sizeof(s->last_body), "%.*s", (int) m->body.len, m->body.buf);
    for (size_t i = 0; i < m->body.len; i++) s->body_sum += (unsigned char) m->body.buf[i];
    if (cymg_str_eq(m->uri, cymg_str_c("/slow")) && s->defer_first) {
      /* Answer later, from a timer: later requests must wait their turn. */
      assert_int_equal(cymg_timer_add(cymg_conn_mgr(c), 30, 0, reply_deferred, c, NULL), 0);
      return;
    }
    if (cymg_str_eq(m->uri, cymg_str_c("/chunked"))) {
      assert_int_equal(cymg_http_reply_start(c, 200, "Content-Type: text/plain\r\n"), 0);
      assert_int_equal(cymg_http_printf_chunk(c, "part one,"), 0);
      assert_int_equal(cymg_http_chunk(c, " part two", 9), 0);
      assert_int_equal(cymg_http_chunk(c, NULL, 0), 0);
      assert_int_equal(cymg_http_chunk(c, "late", 4), CYMG_ESTATE);
      return;
    }
    if (cymg_str_eq(m->uri, cymg_str_c("/sized"))) {
      assert_int_equal(cymg_http_reply_start_sized(c, 200, "X-Kind: sized\r\n", 10), 0);
      if (cymg_str_eq(m->method, cymg_str_c("HEAD"))) {
        assert_int_equal(cymg_http_chunk(c, "hello", 5), CYMG_ESTATE); /* head only */
        return;
      }
      assert_int_equal(cymg_http_reply_start_sized(c, 200, NULL, 3), CYMG_ESTATE);
      assert_int_equal(cymg_http_chunk(c, "hello", 5), 0);
      assert_int_equal(cymg_http_chunk(c, NULL, 0), CYMG_EINVAL);       /* short: refused */
      assert_int_equal(cymg_http_chunk(c, "world!", 6), CYMG_EINVAL);   /* too long */
      assert_int_equal(cymg_timer_add(cymg_conn_mgr(c), 20, 0, sized_rest, c, NULL), 0);
      return;
    }
    if (cymg_str_eq(m->uri, cymg_str_c("/events"))) {
      assert_int_equal(cymg_http_reply_start(c, 200, "Content-Type: text/event-stream\r\n"), 0);
      assert_int_equal(cymg_http_sse(c, "tick", "line one\nline two"), 0);
      assert_int_equal(cymg_http_sse(c, NULL, "x"), 0);
      assert_int_equal(cymg_http_chunk(c, NULL, 0), 0);
      return;
    }
    if (cymg_str_eq(m->uri, cymg_str_c("/nocontent"))) {
      assert_int_equal(cymg_http_reply(c, 204, NULL, "ignored"), 0);
      return;
    }
    if (cymg_str_eq(m->uri, cymg_str_c("/interim"))) {
      /* No 1xx (nor anything outside 200..999) is a final reply, through any
       * entry point: refused, nothing sent. */
      static const int bad[] = {100, 101, 103, 199, 99, 0, -200, 1000};
      for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cymg_http_reply(c, bad[i], NULL, "interim"), CYMG_EINVAL);
        assert_int_equal(cymg_http_reply_data(c, bad[i], NULL, "x", 1), CYMG_EINVAL);
        assert_int_equal(cymg_http_reply_start(c, bad[i], NULL), CYMG_EINVAL);
        assert_int_equal(cymg_http_reply_status(c), 0);
      }
      assert_int_equal(cymg_conn_send_len(c), 0);
      assert_int_equal(cymg_http_reply(c, 200, NULL, "final"), 0);
      return;
    }
    if (cymg_str_eq(m->uri, cymg_str_c("/raw"))) { /* answered by hand */
      cymg_printf(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nraw");
      return;
    }
    cymg_http_reply(c, 200, "Content-Type: text/plain\r\n", "%.*s %.*s %zu", (int) m->method.len,
                    m->method.buf, (int) m->uri.len, m->uri.buf, m->body.len);
  }
}

typedef struct {
  cymg_mgr *mgr;
  cymg_conn *lsn;
  uint16_t port;
  srv_state s;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  assert_int_equal(cymg_mgr_new(&f->mgr, CYMG_BACKEND_AUTO), 0);
  assert_int_equal(cymg_http_listen(f->mgr, "http://127.0.0.1:0", srv_fn, &f->s, &f->lsn), 0);
  f->port = cymg_conn_local(f->lsn)->port;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  for (cymg_conn *c = cymg_mgr_first(f->mgr); c; c = cymg_conn_next(c)) cymg_close(c);
  cymg_mgr_poll(f->mgr, 0);
  assert_int_equal(cymg_mgr_count(f->mgr), 0);
  assert_int_equal(cymg_timer_count(f->mgr), 0);
  cymg_mgr_free(f->mgr);
  free(f);
  return 0;
}

static char rbuf[1 << 20];

static void test_keepalive(void **state) {
  fixture *f = *state;
  int fd = raw_connect(f->port);
  bool closed;
  const char *req = "GET /one?q=1 HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_false(closed);
  assert_non_null(strstr(rbuf, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(rbuf, "\r\nDate: "));
  assert_null(strstr(rbuf, "Connection: close"));
  assert_non_null(strstr(rbuf, "\r\n\r\nGET /one 0"));
  req = "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "POST /two 5"));
  assert_string_equal(f->s.last_body, "hello");
  assert_int_equal(f->s.hdrs, 2);
  assert_int_equal(f->s.msgs, 2);
  /* Connection: close is honoured: reply, then close. */
  req = "GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(closed);
  assert_non_null(strstr(rbuf, "Connection: close\r\n"));
  assert_non_null(strstr(rbuf, "GET /three 0"));
  close(fd);
}

static void test_http10(void **state) {
  fixture *f = *state;
  bool closed;
  int fd = raw_connect(f->port);
  const char *req = "GET /a HTTP/1.0\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(closed); /* 1.0 without keep-alive closes */
  assert_non_null(strstr(rbuf, "GET /a 0"));
  close(fd);
  fd = raw_connect(f->port);
  req = "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_false(closed);
  assert_non_null(strstr(rbuf, "Connection: keep-alive\r\n"));
  /* A chunked reply to 1.0 ends with the connection instead. */
  req = "GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(closed);
  assert_null(strstr(rbuf, "chunked"));
  assert_non_null(strstr(rbuf, "\r\n\r\npart one, part two"));
  close(fd);
}

static void test_pipelining_in_order(void **state) {
  fixture *f = *state;
  f->s.defer_first = true;
  bool closed;
  int fd = raw_connect(f->port);
  const char *req =
      "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /raw HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /last HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 5, &closed);
  char *a = strstr(rbuf, "deferred"), *b = strstr(rbuf, "GET /fast 0"),
       *c = strstr(rbuf, "POST /post 3"), *d = strstr(rbuf, "raw"), *e = strstr(rbuf, "GET /last 0");
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_non_null(d);
  assert_non_null(e);
  assert_true(a < b && b < c && c < d && d < e);
  close(fd);
}

/* A body of a declared length in pieces: Content-Length, no chunk framing,
 * nothing beyond it, and the next pipelined request waits for its last byte. */
static void test_sized_stream(void **state) {
  fixture *f = *state;
  bool closed;
  int fd = raw_connect(f->port);
  const char *req =
      "GET /sized HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /after HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 2, &closed);
  assert_false(closed);
  assert_non_null(strstr(rbuf, "Content-Length: 10\r\n"));
  assert_non_null(strstr(rbuf, "X-Kind: sized\r\n"));
  assert_null(strstr(rbuf, "chunked"));
  char *body = strstr(rbuf, "\r\n\r\nhelloworldHTTP/1.1 200 OK\r\n");
  assert_non_null(body);
  assert_non_null(strstr(body, "GET /after 0"));
  req = "HEAD /sized HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  size_t n = raw_read_str(f->mgr, fd, rbuf, sizeof(rbuf), "\r\n\r\n");
  assert_non_null(strstr(rbuf, "Content-Length: 10\r\n"));
  assert_string_equal(rbuf + n - 4, "\r\n\r\n");
  req = "GET /after HTTP/1.1\r\nHost: x\r\n\r\n"; /* the HEAD was complete */
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "GET /after 0"));
  close(fd);
}

static void test_chunked_both_ways(void **state) {
  fixture *f = *state;
  bool closed;
  int fd = raw_connect(f->port);
  const char *req =
      "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n"
      "7\r\n, world\r\n"
      "0\r\nX-Trailer: yes\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "POST /up 12"));
  assert_string_equal(f->s.last_body, "hello, world");
  assert_true(f->s.last_flags & CYMG_HTTP_F_CHUNKED);
  req = "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "Transfer-Encoding: chunked\r\n"));
  assert_non_null(strstr(rbuf, "\r\n\r\n9\r\npart one,\r\n9\r\n part two\r\n0\r\n\r\n"));
  close(fd);
}

static void test_head_and_continue(void **state) {
  fixture *f = *state;
  bool closed;
  int fd = raw_connect(f->port);
  const char *req = "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  size_t n = raw_read_str(f->mgr, fd, rbuf, sizeof(rbuf), "\r\n\r\n");
  assert_non_null(strstr(rbuf, "Content-Length: 9\r\n")); /* of "HEAD /h 0" */
  assert_string_equal(rbuf + n - 4, "\r\n\r\n");           /* and no body */
  for (int i = 0; i < 5; i++) cymg_mgr_poll(f->mgr, 2);
  assert_true(recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT) < 0); /* nothing follows */
  req = "POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read_str(f->mgr, fd, rbuf, sizeof(rbuf), "HTTP/1.1 100 Continue\r\n\r\n");
  assert_int_equal(f->s.msgs, 1); /* the POST is not handed over before its body */
  raw_send(f->mgr, fd, "body", 4);
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "POST /c 4"));
  close(fd);
}

/* Each of these must be refused with the status given, and the connection
 * closed: the request-smuggling and malformed-input catalogue. */
static const struct {
  const char *req;
  int status;
} refusals[] = {
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nBad[Name]: v\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     "FFFFFFFFFFFFFFFFF\r\n",
     400},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
    {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
    {"GET / HTTP/1.1\r\n\r\n", 400},
    {"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
};

static void test_refusals(void **state) {
  fixture *f = *state;
  for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
    bool closed;
    int fd = raw_connect(f->port);
    size_t len = strlen(refusals[i].req);
    if (i == 6) len = 38; /* the one with a NUL: its real length */
    raw_send(f->mgr, fd, refusals[i].req, len);
    raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
    char want[32];
    snprintf(want, sizeof(want), "HTTP/1.1 %d ", refusals[i].status);
    if (strncmp(rbuf, want, strlen(want)) != 0)
      fail_msg("case %zu: want %d, got: %.60s", i, refusals[i].status, rbuf);
    assert_true(closed);
    assert_non_null(strstr(rbuf, "Connection: close\r\n"));
    close(fd);
  }
  assert_int_equal(f->s.msgs, 0); /* none reached the handler */
}

static void test_limits(void **state) {
  fixture *f = *state;
  bool closed;
  /* Head larger than 16 KiB: 431. */
  char *big = malloc(20000);
  int n = snprintf(big, 20000, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(big + n, 'a', 17000);
  memcpy(big + n + 17000, "\r\n\r\n", 5);
  int fd = raw_connect(f->port);
  raw_send(f->mgr, fd, big, strlen(big));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 431 ", 13) == 0);
  assert_true(closed);
  close(fd);
  free(big);
  /* More header fields than allowed: 431. */
  assert_int_equal(cymg_http_set_limits(f->lsn, 0, 4, 10), 0);
  assert_int_equal(cymg_http_set_limits(NULL, 0, 4, 10), CYMG_ESTATE);
  assert_int_equal(cymg_http_set_limits(f->lsn, 0, SIZE_MAX, 0), CYMG_EINVAL);
  fd = raw_connect(f->port);
  const char *req = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 431 ", 13) == 0);
  close(fd);
  /* Body over the limit: 413, by Content-Length and by chunked size. */
  fd = raw_connect(f->port);
  req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 413 ", 13) == 0);
  close(fd);
  fd = raw_connect(f->port);
  req = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 413 ", 13) == 0);
  close(fd);
  /* Under the limit still works on a fresh connection. */
  fd = raw_connect(f->port);
  req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "POST / 10"));
  close(fd);
}

static void test_timeouts(void **state) {
  fixture *f = *state;
  bool closed;
  assert_int_equal(cymg_http_set_timeouts(f->lsn, 100, 150), 0);
  /* Slowloris: a head that never completes gets 408, then the close. */
  int fd = raw_connect(f->port);
  raw_send(f->mgr, fd, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow:", 31);
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 408 ", 13) == 0);
  close(fd);
  /* Idle keep-alive: closed quietly after a served request. */
  fd = raw_connect(f->port);
  const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_false(closed);
  assert_true(raw_wait_closed(f->mgr, fd));
  close(fd);
  /* And an idle connection that never sent anything. */
  fd = raw_connect(f->port);
  assert_true(raw_wait_closed(f->mgr, fd));
  close(fd);
}

/* The one accepted connection of the fixture's listener (NULL if none). */
static cymg_conn *accepted(fixture *f) {
  for (cymg_conn *c = cymg_mgr_first(f->mgr); c; c = cymg_conn_next(c))
    if (c != f->lsn) return c;
  return NULL;
}

/* An idle keep-alive connection keeps its idle deadline without a timer slot
 * (it is an entry inside the connection), and settings shared with the
 * listener are copied on change: a later change on the listener leaves the
 * connections it accepted before alone, and one connection's own change is its
 * own. */
static void test_idle_state(void **state) {
  fixture *f = *state;
  bool closed;
  assert_int_equal(cymg_http_set_timeouts(f->lsn, 100, 150), 0);
  int fd = raw_connect(f->port);
  const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_false(closed);
  assert_int_equal(cymg_mgr_count(f->mgr), 2);
  assert_int_equal(cymg_timer_count(f->mgr), 0);
  /* The listener now keeps connections a minute: this one still has 150 ms. */
  assert_int_equal(cymg_http_set_timeouts(f->lsn, 0, 60000), 0);
  assert_true(raw_wait_closed(f->mgr, fd));
  close(fd);
  /* A connection accepted now has the minute; its own change shortens it. */
  fd = raw_connect(f->port);
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_false(closed);
  cymg_conn *c = accepted(f);
  assert_non_null(c);
  assert_int_equal(cymg_http_set_timeouts(c, 0, 100), 0);
  assert_true(raw_wait_closed(f->mgr, fd));
  close(fd);
  /* And a new request on a new connection is still parsed with the
   * listener's header table size after the other connection's change. */
  assert_int_equal(cymg_http_set_limits(f->lsn, 0, 2, 0), 0);
  fd = raw_connect(f->port);
  req = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 431 ", 13) == 0);
  close(fd);
}

static void test_stream_body(void **state) {
  fixture *f = *state;
  f->s.stream = true;
  bool closed;
  /* Larger than the buffered body limit: streaming is not bound by it. */
  assert_int_equal(cymg_http_set_limits(f->lsn, 0, 0, 1000), 0);
  int fd = raw_connect(f->port);
  size_t total = 3u << 20;
  const char *head = "POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  raw_send(f->mgr, fd, head, strlen(head));
  char *chunk = malloc(65536 + 32);
  uint64_t sum = 0;
  for (size_t sent = 0; sent < total; sent += 65536) {
    int hl = sprintf(chunk, "10000\r\n");
    for (int i = 0; i < 65536; i++) {
      chunk[hl + i] = (char) ((sent + (size_t) i) * 31 % 251);
      sum += (unsigned char) chunk[hl + i];
    }
    memcpy(chunk + hl + 65536, "\r\n", 2);
    raw_send(f->mgr, fd, chunk, (size_t) hl + 65538);
  }
  raw_send(f->mgr, fd, "0\r\n\r\n", 5);
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_int_equal(f->s.streamed, total);
  assert_int_equal(f->s.body_sum, sum);
  assert_true(f->s.reads > 1);
  assert_true(f->s.last_flags & CYMG_HTTP_F_STREAMED);
  assert_non_null(strstr(rbuf, "POST /s 0"));
  free(chunk);
  close(fd);
}

/* 204 (and 1xx, 304) carry neither Content-Length nor a body; the connection
 * goes on with the next request. */
static void test_no_content(void **state) {
  fixture *f = *state;
  bool closed;
  int fd = raw_connect(f->port);
  const char *req = "GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read_str(f->mgr, fd, rbuf, sizeof(rbuf), "GET /after 0");
  assert_true(strncmp(rbuf, "HTTP/1.1 204 No Content\r\n", 25) == 0);
  char *end = strstr(rbuf, "\r\n\r\n");
  assert_non_null(end);
  *end = '\0';
  assert_null(strstr(rbuf, "Content-Length"));
  assert_true(strncmp(end + 4, "HTTP/1.1 200 OK", 15) == 0); /* no "ignored" body */
  (void) closed;
  close(fd);
}

/* A 1xx refused as a final reply leaves the connection in step: one final
 * response per request, in order. */
static void test_interim_refused(void **state) {
  fixture *f = *state;
  bool closed;
  int fd = raw_connect(f->port);
  const char *req = "GET /interim HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  size_t n = raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 2, &closed);
  rbuf[n] = '\0';
  assert_false(closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 200 OK\r\n", 17) == 0);
  assert_null(strstr(rbuf, "HTTP/1.1 1"));
  assert_null(strstr(rbuf, "interim"));
  char *a = strstr(rbuf, "\r\n\r\nfinal"), *b = strstr(rbuf, "GET /after 0");
  assert_non_null(a);
  assert_non_null(b);
  assert_true(a < b);
  assert_int_equal(f->s.msgs, 2);
  close(fd);
}

static void test_sse(void **state) {
  fixture *f = *state;
  bool closed;
  int fd = raw_connect(f->port);
  const char *req = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "Content-Type: text/event-stream\r\n"));
  assert_non_null(strstr(rbuf, "event: tick\ndata: line one\ndata: line two\n\n"));
  assert_non_null(strstr(rbuf, "data: x\n\n"));
  close(fd);
}

/* Many clients, each with several keep-alive requests, interleaved. */
static void test_many_keepalive_clients(void **state) {
  fixture *f = *state;
  enum { N = 50, R = 5 };
  int fds[N];
  bool closed;
  for (int i = 0; i < N; i++) fds[i] = raw_connect(f->port);
  for (int r = 0; r < R; r++) {
    for (int i = 0; i < N; i++) {
      char req[64];
      int n = snprintf(req, sizeof(req), "GET /c%d/r%d HTTP/1.1\r\nHost: x\r\n\r\n", i, r);
      raw_send(f->mgr, fds[i], req, (size_t) n);
    }
    for (int i = 0; i < N; i++) {
      char want[32];
      snprintf(want, sizeof(want), "GET /c%d/r%d 0", i, r);
      raw_read(f->mgr, fds[i], rbuf, sizeof(rbuf), 1, &closed);
      assert_non_null(strstr(rbuf, want));
    }
  }
  for (int i = 0; i < N; i++) close(fds[i]);
  assert_int_equal(f->s.msgs, N * R);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http10, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipelining_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sized_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chunked_both_ways, setup, teardown),
      cmocka_unit_test_setup_teardown(test_head_and_continue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_state, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_body, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_interim_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_content, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_keepalive_clients, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
