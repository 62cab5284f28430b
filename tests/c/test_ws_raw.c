/* WebSocket against hand-made bytes on raw sockets: every kind of bad frame
 * from a client gets the right close code while another WebSocket connection
 * on the same server keeps working; bad handshakes get 400/426; our client
 * refuses bad answers and masked server frames, and times out a close the
 * server never answers. CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include "ws/ws_internal.h"
#include "ws_test.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

typedef struct {
  cymg_mgr *mgr;
  cymg_conn *lsn, *good;
  uint16_t port;
  ws_srv s;
  ws_cli gc;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  assert_int_equal(cymg_mgr_new(&f->mgr, CYMG_BACKEND_AUTO), 0);
  assert_int_equal(cymg_ws_listen(f->mgr, "ws://127.0.0.1:0", ws_srv_fn, &f->s, &f->lsn), 0);
  assert_int_equal(cymg_ws_set_max_message(f->lsn, 1u << 20), 0);
  assert_int_equal(cymg_ws_set_deflate(f->lsn, true, 0, 0, 0), 0);
  f->port = cymg_conn_local(f->lsn)->port;
  /* The well-behaved neighbour. */
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/", (unsigned) f->port);
  assert_int_equal(cymg_ws_connect(f->mgr, url, ws_cli_fn, &f->gc, &f->good), 0);
  POLL_UNTIL(f->mgr, f->gc.open);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  for (cymg_conn *c = cymg_mgr_first(f->mgr); c; c = cymg_conn_next(c)) cymg_close(c);
  POLL_UNTIL(f->mgr, cymg_mgr_count(f->mgr) == 0);
  ASSERT_MGR_CLEAN(f->mgr);
  cymg_mgr_free(f->mgr);
  ws_cli_free(&f->gc);
  free(f);
  return 0;
}

/* The neighbour still gets its echo. */
static void good_still_works(fixture *f) {
  int before = f->gc.msgs;
  assert_int_equal(cymg_ws_send(f->good, "still here", 10, CYMG_WS_OP_TEXT), 0);
  POLL_UNTIL(f->mgr, f->gc.msgs > before);
  assert_int_equal(f->gc.last.len, 10);
}

/* A raw client through the handshake; extra: more request header lines. */
static int raw_ws(fixture *f, const char *extra, char *resp, size_t resp_len) {
  int fd = raw_connect(f->port);
  char req[512];
  snprintf(req, sizeof(req),
           "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
           extra ? extra : "");
  raw_send(f->mgr, fd, req, strlen(req));
  char buf[2048];
  raw_read_str(f->mgr, fd, buf, sizeof(buf), "\r\n\r\n");
  assert_non_null(strstr(buf, "HTTP/1.1 101 Switching Protocols\r\n"));
  assert_non_null(strstr(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  if (resp) snprintf(resp, resp_len, "%s", buf);
  return fd;
}

/* Sends one frame; masked with a fixed key unless told otherwise. */
static void raw_frame(fixture *f, int fd, uint8_t flags, const void *p, size_t n, bool masked) {
  static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  uint8_t *b = malloc(n + CYMG_WS_MAX_HEADER);
  size_t hl = cymg_ws_encode_header(b, flags, n, masked ? key : NULL);
  memcpy(b + hl, p, n);
  if (masked) cymg_ws_mask(b + hl, n, key, 0);
  raw_send(f->mgr, fd, b, hl + n);
  free(b);
}

/* Reads until the server ends TCP; returns the code of the first frame, which
 * must be a close frame. */
static int close_code(fixture *f, int fd) {
  static char buf[1 << 16];
  bool closed;
  size_t n = raw_read(f->mgr, fd, buf, sizeof(buf), 0, &closed);
  assert_true(closed);
  close(fd);
  cymg_ws_frame fr;
  int hl = cymg_ws_parse_header(buf, n, &fr);
  assert_true(hl > 0);
  assert_int_equal(CYMG_WS_OPCODE(fr.flags), CYMG_WS_OP_CLOSE);
  assert_false(fr.masked);
  return fr.len >= 2 ? ((uint8_t) buf[hl] << 8 | (uint8_t) buf[hl + 1]) : 1005;
}

static void expect(fixture *f, int fd, int code) {
  int errors = f->s.errors;
  assert_int_equal(close_code(f, fd), code);
  if (code != 1000) assert_int_equal(f->s.errors, errors + 1);
  good_still_works(f);
}

static void test_bad_frames(void **state) {
  fixture *f = *state;
  int fd;
  /* unmasked client frame */
  fd = raw_ws(f, NULL, NULL, 0);
  raw_frame(f, fd, 0x81, "hello", 5, false);
  expect(f, fd, 1002);
  assert_non_null(strstr(f->s.last_error, "unmasked"));
  /* invalid UTF-8, whole and across fragments (failing at the bad fragment) */
  fd = raw_ws(f, NULL, NULL, 0);
  raw_frame(f, fd, 0x81, "\xff\xfe", 2, true);
  expect(f, fd, 1007);
  fd = raw_ws(f, NULL, NULL, 0);
  raw_frame(f, fd, 0x01, "ok \xce", 4, true);
  raw_frame(f, fd, 0x00, "\x41", 1, true);
  expect(f, fd, 1007);
  fd = raw_ws(f, NULL, NULL, 0); /* a sequence cut off at the message's end */
  raw_frame(f, fd, 0x81, "ok \xe2\x82", 5, true);
  expect(f, fd, 1007);
  /* oversize: announced in one header, and reached over fragments */
  fd = raw_ws(f, NULL, NULL, 0);
  uint8_t big[14] = {0x82, 0xff, 0, 0, 0, 0, 0, 0x20, 0, 0, 1, 2, 3, 4};
  raw_send(f->mgr, fd, big, sizeof(big));
  expect(f, fd, 1009);
  fd = raw_ws(f, NULL, NULL, 0);
  char *half = calloc(1, 600000);
  raw_frame(f, fd, 0x02, half, 600000, true);
  raw_frame(f, fd, 0x80, half, 600000, true);
  free(half);
  expect(f, fd, 1009);
  /* reserved bits (RSV1 without compression negotiated, RSV2, RSV3) */
  static const uint8_t rsv[] = {0xc1, 0xa1, 0x91};
  for (size_t i = 0; i < sizeof(rsv); i++) {
    fd = raw_ws(f, NULL, NULL, 0);
    raw_frame(f, fd, rsv[i], "x", 1, true);
    expect(f, fd, 1002);
  }
  /* unknown opcodes */
  static const uint8_t ops[] = {0x83, 0x87, 0x8b, 0x8f};
  for (size_t i = 0; i < sizeof(ops); i++) {
    fd = raw_ws(f, NULL, NULL, 0);
    raw_frame(f, fd, ops[i], "x", 1, true);
    expect(f, fd, 1002);
  }
  /* control frames: too long, fragmented */
  char ctl[126] = {0};
  fd = raw_ws(f, NULL, NULL, 0);
  raw_frame(f, fd, 0x89, ctl, 126, true);
  expect(f, fd, 1002);
  fd = raw_ws(f, NULL, NULL, 0);
  raw_frame(f, fd, 0x09, ctl, 1, true);
  expect(f, fd, 1002);
  /* fragmentation out of order */
  fd = raw_ws(f, NULL, NULL, 0);
  raw_frame(f, fd, 0x80, "x", 1, true);
  expect(f, fd, 1002);
  fd = raw_ws(f, NULL, NULL, 0);
  raw_frame(f, fd, 0x01, "x", 1, true);
  raw_frame(f, fd, 0x81, "y", 1, true);
  expect(f, fd, 1002);
}

static void test_close_frames(void **state) {
  fixture *f = *state;
  static const struct {
    const char *p;
    size_t n;
    int code;
  } cases[] = {
      {"\x03", 1, 1002},           {"\x03\xed", 2, 1002} /* 1005 */, {"\x03\xee", 2, 1002},
      {"\x03\xe7", 2, 1002},       {"\x03\xf8", 2, 1002} /* 1016 */, {"\x13\x88", 2, 1002},
      {"\x03\xec", 2, 1002},       {"\x03\xe8\xff", 3, 1007},
      {"\x03\xe8" "bye", 5, 1000}, {"\x0f\xa0", 2, 4000},            {"", 0, 1005},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int fd = raw_ws(f, NULL, NULL, 0);
    raw_frame(f, fd, 0x88, cases[i].p, cases[i].n, true);
    int errors = f->s.errors;
    assert_int_equal(close_code(f, fd), cases[i].code);
    /* valid ones are echoed without an error */
    bool valid = cases[i].code == 1000 || cases[i].code == 4000 || cases[i].code == 1005;
    assert_int_equal(f->s.errors, errors + (valid ? 0 : 1));
    good_still_works(f);
  }
  /* A ping between fragments is answered at once; the message still arrives. */
  int fd = raw_ws(f, NULL, NULL, 0);
  raw_frame(f, fd, 0x01, "Hel", 3, true);
  raw_frame(f, fd, 0x89, "pp", 2, true);
  char buf[256];
  size_t n = raw_read_str(f->mgr, fd, buf, sizeof(buf), "pp");
  assert_true(n >= 4);
  assert_int_equal((uint8_t) buf[0], 0x8a);
  raw_frame(f, fd, 0x80, "lo", 2, true);
  raw_read_str(f->mgr, fd, buf, sizeof(buf), "Hello");
  close(fd);
}

static void test_compressed_frames(void **state) {
  fixture *f = *state;
  char resp[2048];
  int fd = raw_ws(f, "Sec-WebSocket-Extensions: permessage-deflate\r\n", resp, sizeof(resp));
  assert_non_null(strstr(resp, "Sec-WebSocket-Extensions: permessage-deflate\r\n"));
  /* RFC 7692 §7.2.3.1: "Hello", compressed; comes back compressed. */
  raw_frame(f, fd, 0xc1, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, true);
  char buf[256];
  raw_read_str(f->mgr, fd, buf, sizeof(buf), "\xf2\x48\xcd\xc9\xc9\x07\x00");
  assert_int_equal((uint8_t) buf[0], 0xc1);
  /* A zip bomb: 2 MiB of zeros in about 2 KiB, against a 1 MiB limit. */
  cymg__ws_pmd pmd = {true, false, false, 0, 0};
  cymg__wsz *z;
  assert_int_equal(cymg__wsz_new(&z, &pmd, false), 0);
  char *zeros = calloc(1, 2u << 20);
  cymg_buf c = {NULL, 0, 0};
  assert_int_equal(cymg__wsz_compress(z, zeros, 2u << 20, true, &c), 0);
  assert_true(c.len < 8192);
  raw_frame(f, fd, 0xc2, c.buf, c.len, true);
  expect(f, fd, 1009);
  /* Corrupt compressed data. */
  fd = raw_ws(f, "Sec-WebSocket-Extensions: permessage-deflate\r\n", NULL, 0);
  raw_frame(f, fd, 0xc2, "\xff\xff\xff\xff", 4, true);
  expect(f, fd, 1007);
  /* Compressed text that is not UTF-8. */
  fd = raw_ws(f, "Sec-WebSocket-Extensions: permessage-deflate\r\n", NULL, 0);
  c.len = 0;
  assert_int_equal(cymg__wsz_compress(z, "\xc0\xaf", 2, true, &c), 0);
  raw_frame(f, fd, 0xc1, c.buf, c.len, true);
  expect(f, fd, 1007);
  cymg_buf_free(&c);
  free(zeros);
  cymg__wsz_free(z);
}

static void test_bad_handshakes(void **state) {
  fixture *f = *state;
  static const struct {
    const char *req, *want;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Version: 13\r\n\r\n",
       "HTTP/1.1 400 "},
      {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n",
       "Sec-WebSocket-Version: 13\r\n"},
      {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n",
       "not base64 of 16 bytes"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int fd = raw_connect(f->port);
    raw_send(f->mgr, fd, cases[i].req, strlen(cases[i].req));
    char buf[2048];
    bool closed;
    raw_read(f->mgr, fd, buf, sizeof(buf), 0, &closed);
    assert_true(closed);
    assert_non_null(strstr(buf, cases[i].want));
    if (i == 1) assert_non_null(strstr(buf, "HTTP/1.1 426 "));
    close(fd);
    good_still_works(f);
  }
}

/* ---- our client against a raw server ---- */

static int raw_listener(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
  assert_int_equal(listen(fd, 8), 0);
  socklen_t sl = sizeof(sin);
  getsockname(fd, (struct sockaddr *) &sin, &sl);
  *port = ntohs(sin.sin_port);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* Accepts our client, reads its request and answers with `answer`, where "%s"
 * stands for the right accept value. Returns the server side's socket. */
static int serve_handshake(cymg_mgr *mgr, int lfd, const char *answer) {
  int fd = -1;
  uint64_t start = cymg_mgr_now(mgr);
  while ((fd = accept(lfd, NULL, NULL)) < 0) {
    cymg_mgr_poll(mgr, 5);
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("client did not connect");
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  char buf[2048];
  raw_read_str(mgr, fd, buf, sizeof(buf), "\r\n\r\n");
  assert_non_null(strstr(buf, "GET /p?q=1 HTTP/1.1\r\n"));
  const char *k = strstr(buf, "Sec-WebSocket-Key: ");
  assert_non_null(k);
  char accept_val[29];
  assert_int_equal(cymg_ws_accept_key(cymg_str_n(k + 19, 24), accept_val), 0);
  char resp[1024];
  const char *at = strstr(answer, "%s");
  assert_non_null(at);
  snprintf(resp, sizeof(resp), "%.*s%s%s", (int) (at - answer), answer, accept_val, at + 2);
  raw_send(mgr, fd, resp, strlen(resp));
  return fd;
}

#define GOOD_101                                                                 \
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
  "Sec-WebSocket-Accept: %s\r\n\r\n"

static void test_client_refuses(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  uint16_t port;
  int lfd = raw_listener(&port);
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/p?q=1#frag", (unsigned) port);
  static const struct {
    const char *answer, *error;
  } cases[] = {
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n%s",
       "Sec-WebSocket-Accept"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: %s\r\n\r\n", "answered 200"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
       "not offered"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
       "subprotocol"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ws_cli s = {0};
    assert_int_equal(cymg_ws_connect(mgr, url, ws_cli_fn, &s, NULL), 0);
    int fd = serve_handshake(mgr, lfd, cases[i].answer);
    POLL_UNTIL(mgr, s.closed);
    assert_false(s.open);
    assert_int_equal(s.errors, 1);
    if (strstr(s.error, cases[i].error) == NULL) fail_msg("error '%s'", s.error);
    close(fd);
    ws_cli_free(&s);
  }
  /* A masked frame from the server: the client fails with 1002. */
  ws_cli s = {0};
  cymg_conn *c;
  assert_int_equal(cymg_ws_connect(mgr, url, ws_cli_fn, &s, &c), 0);
  assert_int_equal(cymg_ws_set_request_headers(c, "Sec-WebSocket-Protocol: chat, x\r\n"), 0);
  int fd = serve_handshake(mgr, lfd,
                           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                           "Sec-WebSocket-Protocol: chat\r\n\r\n"
                           "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
  POLL_UNTIL(mgr, s.closed);
  assert_true(s.open);
  assert_non_null(strstr(s.error, "masked frame from the server"));
  char buf[256];
  bool closed;
  size_t n = raw_read(mgr, fd, buf, sizeof(buf), 0, &closed);
  cymg_ws_frame fr;
  int hl = cymg_ws_parse_header(buf, n, &fr);
  assert_true(hl > 0 && fr.masked && fr.len == 2);
  cymg_ws_mask(buf + hl, 2, fr.mask, 0);
  assert_int_equal(cymg_ws_close_code(cymg_str_n(buf + hl, 2)), 1002);
  close(fd);
  ws_cli_free(&s);

  /* A close the server never answers ends after the close timeout. */
  memset(&s, 0, sizeof(s));
  assert_int_equal(cymg_ws_connect(mgr, url, ws_cli_fn, &s, &c), 0);
  fd = serve_handshake(mgr, lfd, GOOD_101);
  POLL_UNTIL(mgr, s.open);
  assert_int_equal(cymg_ws_set_close_timeout(c, 100), 0);
  assert_int_equal(cymg_ws_close(c, 1000, NULL), 0);
  assert_int_equal(cymg_ws_close(c, 1000, NULL), CYMG_ESTATE);
  uint64_t t0 = cymg_mgr_now(mgr);
  POLL_UNTIL(mgr, s.closed);
  assert_true(cymg_mgr_now(mgr) - t0 >= 90);
  close(fd);
  ws_cli_free(&s);

  /* The server closes: our echo goes out and we wait for TCP to end. */
  memset(&s, 0, sizeof(s));
  assert_int_equal(cymg_ws_connect(mgr, url, ws_cli_fn, &s, &c), 0);
  fd = serve_handshake(mgr, lfd, GOOD_101 "\x88\x02\x03\xe9");
  POLL_UNTIL(mgr, s.closes == 1);
  assert_int_equal(s.close_code, 1001);
  n = raw_read_str(mgr, fd, buf, sizeof(buf), "\x88");
  hl = cymg_ws_parse_header(buf, n, &fr);
  assert_true(hl > 0 && fr.masked && fr.len == 2);
  cymg_ws_mask(buf + hl, 2, fr.mask, 0);
  assert_int_equal(cymg_ws_close_code(cymg_str_n(buf + hl, 2)), 1001);
  assert_false(s.closed);
  close(fd);
  POLL_UNTIL(mgr, s.closed);
  assert_int_equal(s.errors, 0);
  ws_cli_free(&s);

  close(lfd);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* Keepalive: a peer that goes silent gets a ping, then is dropped with an
 * ERROR; a peer that answers (our client pongs by itself) stays. */
static void test_keepalive(void **state) {
  fixture *f = *state;
  assert_int_equal(cymg_ws_set_ping_interval(f->lsn, 250), 0);
  int fd = raw_ws(f, NULL, NULL, 0);
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/", (unsigned) f->port);
  ws_cli alive = {0};
  cymg_conn *ac;
  assert_int_equal(cymg_ws_connect(f->mgr, url, ws_cli_fn, &alive, &ac), 0);
  POLL_UNTIL(f->mgr, alive.open);
  int errors = f->s.errors;
  /* The silent one sees a ping (unmasked, empty), then the end of TCP. */
  static char buf[4096];
  bool closed;
  size_t n = raw_read(f->mgr, fd, buf, sizeof(buf), 0, &closed);
  assert_true(closed);
  cymg_ws_frame fr;
  assert_true(n >= 2 && cymg_ws_parse_header(buf, n, &fr) == 2);
  assert_int_equal(CYMG_WS_OPCODE(fr.flags), CYMG_WS_OP_PING);
  assert_int_equal(f->s.errors, errors + 1);
  close(fd);
  /* The answering one outlived several intervals and still echoes. */
  assert_false(alive.closed);
  int before = alive.msgs;
  assert_int_equal(cymg_ws_send(ac, "ok", 2, CYMG_WS_OP_TEXT), 0);
  POLL_UNTIL(f->mgr, alive.msgs > before);
  good_still_works(f);
  assert_int_equal(cymg_ws_set_ping_interval(NULL, 10), CYMG_ESTATE);
  cymg_close(ac);
  POLL_UNTIL(f->mgr, alive.closed);
  ws_cli_free(&alive);
}

static void test_api_misuse(void **state) {
  fixture *f = *state;
  assert_int_equal(cymg_ws_send(f->lsn, "x", 1, CYMG_WS_OP_TEXT), CYMG_ESTATE);
  assert_int_equal(cymg_ws_send(f->good, "x", 1, 3), CYMG_EINVAL);
  char big[126] = {0};
  assert_int_equal(cymg_ws_send(f->good, big, 126, CYMG_WS_OP_PING), CYMG_EINVAL);
  assert_int_equal(cymg_ws_send_frag(f->good, CYMG_WS_OP_CONT, "x", 1, true), CYMG_ESTATE);
  assert_int_equal(cymg_ws_close(f->good, 1005, NULL), CYMG_EINVAL);
  assert_int_equal(cymg_ws_close(f->good, 0, "reason without code"), CYMG_EINVAL);
  assert_int_equal(cymg_ws_set_deflate(f->good, true, 0, 0, 0), CYMG_ESTATE);
  assert_int_equal(cymg_ws_set_deflate(f->lsn, true, 0, 7, 0), CYMG_EINVAL);
  assert_true(cymg_conn_is_ws(f->good));
  assert_false(cymg_conn_is_ws(f->lsn));
  assert_int_equal(cymg_ws_connect(f->mgr, "http://127.0.0.1:1/", ws_cli_fn, NULL, NULL),
                   CYMG_ESCHEME);
  good_still_works(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_bad_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compressed_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_handshakes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_api_misuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
      cmocka_unit_test(test_client_refuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
