/* Request and response bodies over loopback at the extremes of their framing:
 * 8 MiB in 1-byte chunks (six bytes of wire per body byte), buffered and
 * streamed, on the server and on the client; the body limit counted in body
 * bytes, not wire bytes. CYMG_TEST_BACKENDS: runs once per I/O backend. */
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
} up_state;

static void check_piece(up_state *s, const char *p, size_t n) {
  if (s->got + n > sizeof(want) || memcmp(p, want + s->got, n) != 0) s->same = false;
  s->got += n;
}

static void up_fn(cymg_conn *c, int ev, void *ev_data) {
  up_state *s = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_HDRS) {
    s->hdrs++;
    s->same = true;
    s->got = 0;
    if (s->stream) assert_int_equal(cymg_http_stream_body(c), 0);
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

int main(void) {
  fill_want();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_buffered_tiny_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_streamed_tiny_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tiny_chunks_over_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_buffered_tiny_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_streamed_tiny_chunks, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
