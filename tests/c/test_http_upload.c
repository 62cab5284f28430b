/* Request and response bodies over loopback at the extremes of their framing
 * and pace: 8 MiB in 1-byte chunks (six bytes of wire per body byte), buffered
 * and streamed, on the server and on the client, with the body limit counted
 * in body bytes; bodies trickled in pieces against the gap timeout and the
 * total limit. CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include "http_test.h"

#define BIG (8u << 20) /* the default max_body, which must be accepted exactly */

static unsigned char want[BIG + 1]; /* the body every test sends */

static void fill_want(void) {
  for (size_t i = 0; i < sizeof(want); i++) want[i] = (unsigned char) ((i * 131 + (i >> 13)) % 251);
}

typedef struct {
  bool stream, client;
  int hdrs, msgs;
  size_t got;         /* streamed bytes checked so far */
  size_t body_len;    /* of the buffered body */
  bool same;          /* every byte was as sent */
  unsigned flags;
  char err[160];      /* the last ERROR */
} up_state;

static void check_piece(up_state *s, const char *p, size_t n) {
  if (s->got + n > sizeof(want) || memcmp(p, want + s->got, n) != 0) s->same = false;
  s->got += n;
}

static void reply_late(void *arg) {
  cymg_conn *c = arg;
  assert_int_equal(cymg_http_reply(c, 200, NULL, "late"), 0);
}

static int late_switches; /* streaming asked for after HTTP_HDRS, and refused */

static void switch_late(void *arg) {
  cymg_conn *c = arg;
  assert_int_equal(cymg_http_stream_body(c), CYMG_ESTATE);
  late_switches++;
}

static void up_fn(cymg_conn *c, int ev, void *ev_data) {
  up_state *s = cymg_conn_userdata(c);
  if (ev == CYMG_EV_ERROR) {
    snprintf(s->err, sizeof(s->err), "%s", (const char *) ev_data);
  } else if (ev == CYMG_EV_HTTP_HDRS) {
    s->hdrs++;
    s->same = true;
    s->got = 0;
    if (s->stream) assert_int_equal(cymg_http_stream_body(c), 0);
    if (cymg_str_eq(((cymg_http_msg *) ev_data)->uri, cymg_str_c("/switch")))
      assert_int_equal(cymg_timer_add(cymg_conn_mgr(c), 0, 0, switch_late, c, NULL), 0);
  } else if (ev == CYMG_EV_READ && s->stream) {
    size_t n = *(size_t *) ev_data;
    cymg_str d = cymg_conn_recv_data(c);
    assert_true(d.len >= n);
    check_piece(s, d.buf, n);
  } else if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *m = ev_data;
    s->msgs++;
    s->flags = m->flags;
    if (!s->stream) {
      s->body_len = m->body.len;
      check_piece(s, m->body.buf, m->body.len);
    }
    if (cymg_str_eq(m->uri, cymg_str_c("/late"))) { /* answered after 2 gap timeouts */
      assert_int_equal(cymg_timer_add(cymg_conn_mgr(c), 600, 0, reply_late, c, NULL), 0);
      return;
    }
    if (!s->client) assert_int_equal(cymg_http_reply(c, 200, NULL, "got %zu", s->got), 0);
  }
}

/* The wire of body[from, to) as 1-byte chunks; with `end`, the last chunk and
 * an empty trailer section follow. */
static void send_tiny_chunks(cymg_mgr *mgr, int fd, size_t from, size_t to, bool end) {
  static char wire[6 * 8192];
  while (from < to) {
    size_t n = 0;
    for (; from < to && n + 6 <= sizeof(wire); from++) {
      memcpy(wire + n, "1\r\n", 3);
      wire[n + 3] = (char) want[from];
      memcpy(wire + n + 4, "\r\n", 2);
      n += 6;
    }
    raw_send(mgr, fd, wire, n);
  }
  if (end) raw_send(mgr, fd, "0\r\n\r\n", 5);
}

typedef struct {
  cymg_mgr *mgr;
  cymg_conn *lsn;
  uint16_t port;
  up_state s;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  assert_int_equal(cymg_mgr_new(&f->mgr, CYMG_BACKEND_AUTO), 0);
  assert_int_equal(cymg_http_listen(f->mgr, "http://127.0.0.1:0", up_fn, &f->s, &f->lsn), 0);
  f->port = cymg_conn_local(f->lsn)->port;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  for (cymg_conn *c = cymg_mgr_first(f->mgr); c; c = cymg_conn_next(c)) cymg_close(c);
  cymg_mgr_poll(f->mgr, 0);
  ASSERT_MGR_CLEAN(f->mgr);
  cymg_mgr_free(f->mgr);
  free(f);
  return 0;
}

static char rbuf[1 << 16];

static const char chunked_head[] =
    "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

/* Sends BIG body bytes in 1-byte chunks and a second request behind them on the
 * same connection: both are answered, and the body arrived intact. */
static void upload_tiny_chunks(fixture *f) {
  bool closed;
  int fd = raw_connect(f->port);
  raw_send(f->mgr, fd, chunked_head, sizeof(chunked_head) - 1);
  send_tiny_chunks(f->mgr, fd, 0, BIG, true);
  size_t len = raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_false(closed);
  assert_true(len > 0);
  assert_true(strncmp(rbuf, "HTTP/1.1 200 ", 13) == 0);
  char expect[32];
  snprintf(expect, sizeof(expect), "got %u", BIG);
  assert_non_null(strstr(rbuf, expect));
  assert_int_equal(f->s.msgs, 1);
  assert_int_equal(f->s.got, BIG);
  assert_true(f->s.same);
  /* The connection goes on: what came behind the body is the next request. */
  static const char next[] = "POST /next HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "1\r\n" "\x00" "\r\n0\r\n\r\n";
  raw_send(f->mgr, fd, next, sizeof(next) - 1);
  raw_read_str(f->mgr, fd, rbuf, sizeof(rbuf), "got 1");
  assert_int_equal(f->s.msgs, 2);
  assert_true(f->s.same); /* want[0] is 0 */
  close(fd);
}

static void test_buffered_tiny_chunks(void **state) {
  fixture *f = *state;
  upload_tiny_chunks(f);
  assert_int_equal(f->s.body_len, 1);
  assert_false(f->s.flags & CYMG_HTTP_F_STREAMED);
}

static void test_streamed_tiny_chunks(void **state) {
  fixture *f = *state;
  f->s.stream = true;
  /* A streamed body is not bound by the buffered limit at all. */
  assert_int_equal(cymg_http_set_limits(f->lsn, 0, 0, 1000), 0);
  upload_tiny_chunks(f);
  assert_true(f->s.flags & CYMG_HTTP_F_STREAMED);
}

/* One body byte over the limit, in 1-byte chunks: 413, then the close. */
static void test_tiny_chunks_over_limit(void **state) {
  fixture *f = *state;
  bool closed;
  int fd = raw_connect(f->port);
  raw_send(f->mgr, fd, chunked_head, sizeof(chunked_head) - 1);
  send_tiny_chunks(f->mgr, fd, 0, BIG, false);
  /* The last byte without its CRLF: the server has nothing left unread when it
   * refuses, so its close is a FIN and the answer cannot be lost to a reset. */
  char last[4] = {'1', '\r', '\n', (char) want[BIG]};
  raw_send(f->mgr, fd, last, sizeof(last));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 413 ", 13) == 0);
  assert_int_equal(f->s.msgs, 0);
  close(fd);
}

/* ---- the client reading a response in 1-byte chunks ---- */

static int raw_listen(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
  assert_int_equal(listen(fd, 4), 0);
  socklen_t sl = sizeof(sin);
  assert_int_equal(getsockname(fd, (struct sockaddr *) &sin, &sl), 0);
  *port = ntohs(sin.sin_port);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static int raw_accept(cymg_mgr *mgr, int lfd) {
  int fd = -1;
  POLL_UNTIL(mgr, (fd = accept(lfd, NULL, NULL)) >= 0);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static void client_tiny_chunks(fixture *f, bool stream) {
  up_state cs = {.stream = stream, .client = true};
  uint16_t port;
  int lfd = raw_listen(&port);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned) port);
  cymg_conn *c;
  assert_int_equal(cymg_http_connect(f->mgr, url, up_fn, &cs, &c), 0);
  assert_int_equal(cymg_http_request(c, "GET", "/big", NULL, NULL, 0), 0);
  int fd = raw_accept(f->mgr, lfd);
  raw_read_str(f->mgr, fd, rbuf, sizeof(rbuf), "\r\n\r\n");
  const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  raw_send(f->mgr, fd, head, strlen(head));
  send_tiny_chunks(f->mgr, fd, 0, BIG, true);
  POLL_UNTIL(f->mgr, cs.msgs == 1);
  assert_int_equal(cs.hdrs, 1);
  assert_int_equal(cs.got, BIG);
  assert_true(cs.same);
  assert_int_equal((cs.flags & CYMG_HTTP_F_STREAMED) != 0, stream);
  cymg_close(c);
  close(fd);
  close(lfd);
}

static void test_client_buffered_tiny_chunks(void **state) {
  client_tiny_chunks(*state, false);
}

static void test_client_streamed_tiny_chunks(void **state) {
  client_tiny_chunks(*state, true);
}

static void pause_ms(cymg_mgr *mgr, uint64_t ms) {
  uint64_t start = cymg_mgr_now(mgr);
  while (cymg_mgr_now(mgr) - start < ms) assert_true(cymg_mgr_poll(mgr, 5) >= 0);
}

/* Sends all of data, or returns false once the peer has closed. */
static bool try_send(cymg_mgr *mgr, int fd, const void *data, size_t len) {
  size_t off = 0;
  uint64_t start = cymg_mgr_now(mgr);
  while (off < len) {
    ssize_t n = send(fd, (const char *) data + off, len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t) n;
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return false;
    } else {
      assert_true(cymg_mgr_poll(mgr, 1) >= 0);
    }
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("try_send stuck");
  }
  return true;
}

/* A close-delimited response body over the client's limit is an ERROR at once,
 * not a stall at the receive limit. */
static void test_client_close_delimited_over_limit(void **state) {
  fixture *f = *state;
  up_state cs = {.client = true};
  uint16_t port;
  int lfd = raw_listen(&port);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned) port);
  cymg_conn *c;
  assert_int_equal(cymg_http_connect(f->mgr, url, up_fn, &cs, &c), 0);
  assert_int_equal(cymg_http_request(c, "GET", "/", NULL, NULL, 0), 0);
  int fd = raw_accept(f->mgr, lfd);
  raw_read_str(f->mgr, fd, rbuf, sizeof(rbuf), "\r\n\r\n");
  const char *head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
  raw_send(f->mgr, fd, head, strlen(head));
  for (size_t off = 0; off < sizeof(want) && cs.err[0] == '\0'; off += 65536) {
    size_t n = sizeof(want) - off < 65536 ? sizeof(want) - off : 65536;
    if (!try_send(f->mgr, fd, want + off, n)) break;
  }
  POLL_UNTIL(f->mgr, cs.err[0] != '\0');
  assert_non_null(strstr(cs.err, "exceeds the limit"));
  assert_int_equal(cs.msgs, 0);
  POLL_UNTIL(f->mgr, cymg_mgr_count(f->mgr) == 1); /* the listener */
  close(fd);
  close(lfd);
}

/* ---- body timeouts ----
 * The pace of the peer is set by polling the manager for a while between
 * pieces; what is asserted is only the outcome (served, 408, ERROR), each
 * awaited with a bounded wait. The gaps are a tenth of the gap timeout, so a
 * loaded machine does not turn a pause into a stall. */

#define GAP_MS 500
#define PACE_MS 50
#define PIECES 20 /* PIECES * PACE_MS is twice GAP_MS */

/* The head of a request with a PIECES-byte body, sized or chunked. */
static void send_body_head(fixture *f, int fd, bool chunked) {
  char head[128];
  int n = chunked ? snprintf(head, sizeof(head), "%s", chunked_head)
                  : snprintf(head, sizeof(head),
                             "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
                             PIECES);
  raw_send(f->mgr, fd, head, (size_t) n);
}

/* Piece i of that body: one byte, as a chunk of its own when chunked. */
static bool send_piece(fixture *f, int fd, bool chunked, int i) {
  char p[8] = {'1', '\r', '\n', (char) want[i], '\r', '\n'};
  if (!chunked) return try_send(f->mgr, fd, &want[i], 1);
  return try_send(f->mgr, fd, p, 6);
}

/* A body trickled with pauses well under the gap timeout, over twice as long as
 * it in all, is served: the timeout bounds the gaps, not the body. */
static void trickle(fixture *f, bool chunked, bool stream) {
  bool closed;
  f->s.stream = stream;
  f->s.msgs = 0;
  int fd = raw_connect(f->port);
  send_body_head(f, fd, chunked);
  for (int i = 0; i < PIECES; i++) {
    pause_ms(f->mgr, PACE_MS);
    assert_true(send_piece(f, fd, chunked, i));
  }
  if (chunked) raw_send(f->mgr, fd, "0\r\n\r\n", 5);
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 200 ", 13) == 0);
  assert_non_null(strstr(rbuf, "got 20"));
  assert_int_equal(f->s.msgs, 1);
  assert_true(f->s.same);
  close(fd);
}

static void test_trickle_within_gap(void **state) {
  fixture *f = *state;
  assert_int_equal(cymg_http_set_body_timeouts(f->lsn, GAP_MS, 0), 0);
  assert_int_equal(cymg_http_set_body_timeouts(NULL, GAP_MS, 0), CYMG_ESTATE);
  trickle(f, false, false);
  trickle(f, true, false);
  trickle(f, false, true);
  trickle(f, true, true);
}

/* A pause longer than the gap timeout: 408, then the close. */
static void stall(fixture *f, bool chunked, bool stream) {
  bool closed;
  f->s.stream = stream;
  f->s.msgs = 0;
  int fd = raw_connect(f->port);
  send_body_head(f, fd, chunked);
  for (int i = 0; i < PIECES / 2; i++) assert_true(send_piece(f, fd, chunked, i));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed); /* waits for the close */
  assert_true(closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 408 ", 13) == 0);
  assert_non_null(strstr(rbuf, "body stalled"));
  assert_int_equal(f->s.msgs, 0);
  close(fd);
}

static void test_gap_exceeded(void **state) {
  fixture *f = *state;
  assert_int_equal(cymg_http_set_body_timeouts(f->lsn, 300, 0), 0);
  stall(f, false, false);
  stall(f, true, false);
  stall(f, false, true);
  stall(f, true, true);
  /* Once the body is in, no body timeout runs while the handler answers. */
  bool closed;
  int fd = raw_connect(f->port);
  const char *req = "POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
  raw_send(f->mgr, fd, req, strlen(req));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 200 ", 13) == 0);
  assert_non_null(strstr(rbuf, "late"));
  close(fd);
}

/* A steady trickle that would go on past the total limit is cut there: 408. */
static void endless(fixture *f, bool chunked) {
  bool closed;
  f->s.msgs = 0;
  int fd = raw_connect(f->port);
  send_body_head(f, fd, chunked);
  /* Far more pieces than the limit lets through; sending stops at the answer. */
  int i = 0;
  for (; i < PIECES * 20; i++) {
    pause_ms(f->mgr, PACE_MS);
    ssize_t n = recv(fd, rbuf, sizeof(rbuf) - 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || !send_piece(f, fd, chunked, i % PIECES)) break;
  }
  assert_true(i < PIECES * 20);
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 0, &closed);
  assert_true(closed);
  assert_true(strncmp(rbuf, "HTTP/1.1 408 ", 13) == 0);
  assert_non_null(strstr(rbuf, "body not received in time"));
  assert_int_equal(f->s.msgs, 0);
  close(fd);
}

static void test_total_limit(void **state) {
  fixture *f = *state;
  assert_int_equal(cymg_http_set_body_timeouts(f->lsn, GAP_MS, 2 * GAP_MS), 0);
  endless(f, false);
  endless(f, true);
}

/* The client: a response body trickled past head_ms and past the gap timeout
 * in all completes; a response body that stalls is an ERROR. */
static void test_client_body_timeouts(void **state) {
  fixture *f = *state;
  uint16_t port;
  int lfd = raw_listen(&port);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned) port);
  for (int round = 0; round < 2; round++) {
    up_state cs = {.client = true};
    cymg_conn *c;
    assert_int_equal(cymg_http_connect(f->mgr, url, up_fn, &cs, &c), 0);
    assert_int_equal(cymg_http_set_timeouts(c, GAP_MS, 0), 0);
    assert_int_equal(cymg_http_set_body_timeouts(c, GAP_MS, 0), 0);
    assert_int_equal(cymg_http_request(c, "GET", "/", NULL, NULL, 0), 0);
    int fd = raw_accept(f->mgr, lfd);
    raw_read_str(f->mgr, fd, rbuf, sizeof(rbuf), "\r\n\r\n");
    char head[80];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", PIECES);
    raw_send(f->mgr, fd, head, (size_t) n);
    if (round == 0) {
      for (int i = 0; i < PIECES; i++) {
        pause_ms(f->mgr, PACE_MS);
        raw_send(f->mgr, fd, &want[i], 1);
      }
      POLL_UNTIL(f->mgr, cs.msgs == 1);
      assert_int_equal(cs.got, PIECES);
      assert_true(cs.same);
      assert_string_equal(cs.err, "");
      cymg_close(c);
    } else {
      raw_send(f->mgr, fd, want, PIECES / 2);
      POLL_UNTIL(f->mgr, cs.err[0] != '\0');
      assert_non_null(strstr(cs.err, "response body stalled"));
      assert_int_equal(cs.msgs, 0);
    }
    POLL_UNTIL(f->mgr, cymg_mgr_count(f->mgr) == 1); /* the listener */
    close(fd);
  }
  close(lfd);
}

/* Streaming can only be chosen while the head is handed over: later, part of
 * the body may already be buffered behind the head. */
static void test_stream_body_only_in_hdrs(void **state) {
  fixture *f = *state;
  bool closed;
  int fd = raw_connect(f->port);
  const char *req = "POST /switch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";
  raw_send(f->mgr, fd, req, strlen(req));
  POLL_UNTIL(f->mgr, late_switches == 1);
  raw_send(f->mgr, fd, "hi", 2);
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "got 2"));
  assert_false(f->s.flags & CYMG_HTTP_F_STREAMED);
  close(fd);
}

int main(void) {
  fill_want();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_buffered_tiny_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_streamed_tiny_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tiny_chunks_over_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_buffered_tiny_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_streamed_tiny_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_close_delimited_over_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_body_only_in_hdrs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_trickle_within_gap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gap_exceeded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_total_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_body_timeouts, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
