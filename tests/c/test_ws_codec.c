/* WebSocket codec: frame headers in every length form, masking, the RFC 6455
 * §5.7 examples, the receive rules and each close code they give, UTF-8 split
 * at every byte, close payloads, the handshake checks, and permessage-deflate
 * negotiation and round trips. */
#include "cymg_test.h"
#include "ws/ws_internal.h"

/* An exactly sized heap copy, so ASan catches any over-read. */
static uint8_t *exact(const void *p, size_t n) {
  uint8_t *b = malloc(n ? n : 1);
  assert_non_null(b);
  memcpy(b, p, n);
  return b;
}

static int parse(const void *p, size_t n, cymg_ws_frame *f) {
  uint8_t *b = exact(p, n);
  int rc = cymg_ws_parse_header(b, n, f);
  free(b);
  return rc;
}

/* §5.7 */
static void test_rfc_examples(void **state) {
  (void) state;
  cymg_ws_frame f;
  static const uint8_t hello[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
  assert_int_equal(parse(hello, sizeof(hello), &f), 2);
  assert_int_equal(f.flags, 0x81);
  assert_false(f.masked);
  assert_int_equal(f.len, 5);

  static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  assert_int_equal(parse(masked, sizeof(masked), &f), 6);
  assert_true(f.masked);
  assert_int_equal(f.len, 5);
  uint8_t pl[5];
  memcpy(pl, masked + 6, 5);
  cymg_ws_mask(pl, 5, f.mask, 0);
  assert_memory_equal(pl, "Hello", 5);
  /* Piecewise unmasking at every split gives the same bytes. */
  for (size_t cut = 0; cut <= 5; cut++) {
    memcpy(pl, masked + 6, 5);
    cymg_ws_mask(pl, cut, f.mask, 0);
    cymg_ws_mask(pl + cut, 5 - cut, f.mask, cut);
    assert_memory_equal(pl, "Hello", 5);
  }
  /* Encoding reproduces the masked example exactly. */
  uint8_t hdr[CYMG_WS_MAX_HEADER];
  assert_int_equal(cymg_ws_encode_header(hdr, 0x81, 5, f.mask), 6);
  assert_memory_equal(hdr, masked, 6);

  /* A fragmented unmasked text message: "Hel" then "lo". */
  static const uint8_t frag1[] = {0x01, 0x03, 'H', 'e', 'l'}, frag2[] = {0x80, 0x02, 'l', 'o'};
  cymg_ws_reader r;
  cymg_ws_reader_init(&r, false, false, 0);
  assert_int_equal(parse(frag1, sizeof(frag1), &f), 2);
  assert_int_equal(cymg_ws_reader_frame(&r, &f), 0);
  assert_true(cymg_ws_reader_in_message(&r));
  assert_int_equal(parse(frag2, sizeof(frag2), &f), 2);
  assert_int_equal(CYMG_WS_OPCODE(f.flags), CYMG_WS_OP_CONT);
  assert_int_equal(cymg_ws_reader_frame(&r, &f), 0);
  assert_false(cymg_ws_reader_in_message(&r));

  /* Unmasked ping, masked pong. */
  static const uint8_t ping[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
  static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  assert_int_equal(parse(ping, sizeof(ping), &f), 2);
  assert_int_equal(CYMG_WS_OPCODE(f.flags), CYMG_WS_OP_PING);
  assert_int_equal(parse(pong, sizeof(pong), &f), 6);
  assert_int_equal(CYMG_WS_OPCODE(f.flags), CYMG_WS_OP_PONG);

  /* 256 bytes and 64 KiB of binary, unmasked. */
  static const uint8_t b256[] = {0x82, 0x7e, 0x01, 0x00};
  assert_int_equal(parse(b256, sizeof(b256), &f), 4);
  assert_int_equal(f.len, 256);
  static const uint8_t b64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
  assert_int_equal(parse(b64k, sizeof(b64k), &f), 10);
  assert_int_equal(f.len, 65536);
}

static void test_length_forms(void **state) {
  (void) state;
  static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 16u << 20, UINT64_MAX >> 1};
  static const size_t hl[] = {2, 2, 2, 4, 4, 4, 10, 10, 10};
  const uint8_t key[4] = {1, 2, 3, 4};
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    for (int m = 0; m < 2; m++) {
      uint8_t hdr[CYMG_WS_MAX_HEADER];
      size_t n = cymg_ws_encode_header(hdr, 0x82, lens[i], m ? key : NULL);
      assert_int_equal(n, hl[i] + (m ? 4 : 0));
      cymg_ws_frame f;
      assert_int_equal(parse(hdr, n, &f), (int) n);
      assert_int_equal(f.len, lens[i]);
      assert_int_equal(f.masked, m);
      if (m) assert_memory_equal(f.mask, key, 4);
      /* Every strict prefix asks for more. */
      for (size_t k = 0; k < n; k++) assert_int_equal(parse(hdr, k, &f), CYMG_EAGAIN);
    }
  }
  /* Non-minimal forms are accepted; the top bit of a 64-bit length is not. */
  static const uint8_t nonmin[] = {0x82, 0x7e, 0x00, 0x05};
  cymg_ws_frame f;
  assert_int_equal(parse(nonmin, sizeof(nonmin), &f), 4);
  assert_int_equal(f.len, 5);
  static const uint8_t top[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1};
  assert_int_equal(parse(top, sizeof(top), &f), CYMG_EPARSE);
}

static void test_mask_long(void **state) {
  (void) state;
  uint8_t buf[1000], ref[1000];
  const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
  for (size_t i = 0; i < sizeof(buf); i++) buf[i] = ref[i] = (uint8_t) (i * 7);
  for (size_t off = 0; off < 9; off++) {
    memcpy(buf, ref, sizeof(buf));
    cymg_ws_mask(buf + 1, 997, key, off); /* odd address and length */
    for (size_t i = 0; i < 997; i++) assert_int_equal(buf[i + 1], ref[i + 1] ^ key[(off + i) & 3]);
  }
}

static int rule(bool server, bool deflate, uint64_t max, const uint8_t *frames, size_t nframes) {
  cymg_ws_reader r;
  cymg_ws_reader_init(&r, server, deflate, max);
  for (size_t i = 0; i < nframes; i++) {
    cymg_ws_frame f = {frames[i * 2], server, {1, 2, 3, 4}, frames[i * 2 + 1]};
    int rc = cymg_ws_reader_frame(&r, &f);
    if (rc) return rc;
  }
  return 0;
}

static void test_reader_rules(void **state) {
  (void) state;
  /* pairs: first byte, length */
  const uint8_t ok1[] = {0x01, 3, 0x89, 5, 0x00, 2, 0x8a, 0, 0x80, 1};    /* ctl inside a message */
  assert_int_equal(rule(true, false, 0, ok1, 5), 0);
  const uint8_t cont_first[] = {0x80, 1};
  assert_int_equal(rule(true, false, 0, cont_first, 1), 1002);
  const uint8_t new_inside[] = {0x01, 1, 0x81, 1};
  assert_int_equal(rule(true, false, 0, new_inside, 2), 1002);
  const uint8_t big_ctl[] = {0x89, 126};
  assert_int_equal(rule(true, false, 0, big_ctl, 1), 1002);
  const uint8_t ctl125[] = {0x89, 125};
  assert_int_equal(rule(true, false, 0, ctl125, 1), 0);
  const uint8_t frag_ctl[] = {0x09, 1};
  assert_int_equal(rule(true, false, 0, frag_ctl, 1), 1002);
  for (int op = 3; op <= 7; op++) {
    const uint8_t bad[] = {(uint8_t) (0x80 | op), 0};
    assert_int_equal(rule(true, false, 0, bad, 1), 1002);
  }
  for (int op = 11; op <= 15; op++) {
    const uint8_t bad[] = {(uint8_t) (0x80 | op), 0};
    assert_int_equal(rule(true, false, 0, bad, 1), 1002);
  }
  const uint8_t rsv1[] = {0xc1, 1}, rsv2[] = {0xa1, 1}, rsv3[] = {0x91, 1};
  assert_int_equal(rule(true, false, 0, rsv1, 1), 1002);
  assert_int_equal(rule(true, true, 0, rsv1, 1), 0);
  assert_int_equal(rule(true, true, 0, rsv2, 1), 1002);
  assert_int_equal(rule(true, true, 0, rsv3, 1), 1002);
  const uint8_t rsv1_cont[] = {0x41, 1, 0xc0, 1};
  assert_int_equal(rule(true, true, 0, rsv1_cont, 2), 1002);
  const uint8_t rsv1_ctl[] = {0xc9, 1};
  assert_int_equal(rule(true, true, 0, rsv1_ctl, 1), 1002);
  /* size limit over fragments: 100 exactly is fine, 101 is not */
  const uint8_t sized[] = {0x02, 60, 0x80, 40};
  assert_int_equal(rule(true, false, 100, sized, 2), 0);
  const uint8_t over[] = {0x02, 60, 0x80, 41};
  assert_int_equal(rule(true, false, 100, over, 2), 1009);
  /* masking by role */
  cymg_ws_reader r;
  cymg_ws_reader_init(&r, true, false, 0);
  cymg_ws_frame f = {0x81, false, {0}, 1};
  assert_int_equal(cymg_ws_reader_frame(&r, &f), 1002); /* unmasked from a client */
  cymg_ws_reader_init(&r, false, false, 0);
  f.masked = true;
  assert_int_equal(cymg_ws_reader_frame(&r, &f), 1002); /* masked from a server */
}

static bool utf8_ok(const char *s, size_t n) {
  uint32_t st = 0;
  uint8_t *b = exact(s, n);
  int rc = cymg_ws_utf8(&st, b, n);
  free(b);
  bool whole = rc == 0 && st == 0;
  /* Split at every byte (and byte by byte): same verdict. */
  for (size_t cut = 0; cut <= n; cut++) {
    st = 0;
    int r1 = cymg_ws_utf8(&st, s, cut);
    int r2 = r1 == 0 ? cymg_ws_utf8(&st, s + cut, n - cut) : r1;
    assert_int_equal(r2 == 0 && st == 0, whole);
  }
  st = 0;
  int rb = 0;
  for (size_t i = 0; i < n && rb == 0; i++) rb = cymg_ws_utf8(&st, s + i, 1);
  assert_int_equal(rb == 0 && st == 0, whole);
  return whole;
}

static void test_utf8(void **state) {
  (void) state;
  static const char *const good[] = {
      "", "plain ascii text, long enough for the word loop", "\xc2\x80", "\xdf\xbf",
      "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
      "\xf4\x8f\xbf\xbf", "κόσμε", "Hello-µ@ßöäüàá-UTF-8!!", "日本語のテキスト 0123456789abcdef"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_true(utf8_ok(good[i], strlen(good[i])));
  static const char *const bad[] = {
      "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc2", "\xc2\x41", "\xe0\x80\x80", "\xe0\x9f\xbf",
      "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
      "\xf5\x80\x80\x80", "\xff", "\xfe", "\xe2\x82", "abc\xf0\x9f\x98", "12345678\xce\xba\xe1",
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80!edited"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_false(utf8_ok(bad[i], strlen(bad[i])));
  /* Once invalid, it stays invalid. */
  uint32_t st = 0;
  assert_int_equal(cymg_ws_utf8(&st, "\xff", 1), CYMG_EPARSE);
  assert_int_equal(cymg_ws_utf8(&st, "a", 1), CYMG_EPARSE);
}

static void test_close_payloads(void **state) {
  (void) state;
  assert_int_equal(cymg_ws_check_close("", 0), 0);
  assert_int_equal(cymg_ws_check_close("\x03", 1), 1002);
  static const int ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
  static const int bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    char p[2] = {(char) (ok[i] >> 8), (char) ok[i]};
    assert_int_equal(cymg_ws_check_close(p, 2), 0);
    assert_int_equal(cymg_ws_close_code(cymg_str_n(p, 2)), ok[i]);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char p[2] = {(char) (bad[i] >> 8), (char) bad[i]};
    assert_int_equal(cymg_ws_check_close(p, 2), 1002);
  }
  assert_int_equal(cymg_ws_check_close("\x03\xe8ok \xce\xba", 7), 0);
  assert_int_equal(cymg_ws_check_close("\x03\xe8\xff", 3), 1007);
  assert_int_equal(cymg_ws_check_close("\x03\xe8\xce", 3), 1007);
  assert_int_equal(cymg_ws_close_code(cymg_str_n("", 0)), 1005);
}

static int check_req(const char *text, int *status) {
  cymg_http_header h[32];
  cymg_http_msg m;
  assert_true(cymg_http_parse_request(text, strlen(text), &m, h, 32, NULL) > 0);
  const char *why = NULL;
  int rc = cymg_ws_check_request(&m, status, &why);
  assert_non_null(why);
  return rc;
}

static void test_handshake(void **state) {
  (void) state;
  char acc[29];
  assert_int_equal(cymg_ws_accept_key(cymg_str_c("dGhlIHNhbXBsZSBub25jZQ=="), acc), 0);
  assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

  int st;
  const char *good = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n"
                     "Connection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n";
  assert_int_equal(check_req(good, &st), 0);
  assert_int_equal(st, 101);
  const char *post = "POST /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  assert_int_equal(check_req(post, &st), CYMG_EPROTO);
  assert_int_equal(st, 400);
  const char *noup = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  assert_int_equal(check_req(noup, &st), CYMG_EPROTO);
  assert_int_equal(st, 400);
  const char *noconn = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgraded\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  assert_int_equal(check_req(noconn, &st), CYMG_EPROTO);
  const char *ver = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
  assert_int_equal(check_req(ver, &st), CYMG_EPROTO);
  assert_int_equal(st, 426);
  const char *shortkey = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  assert_int_equal(check_req(shortkey, &st), CYMG_EPROTO);
  assert_int_equal(st, 400);
  const char *badkey = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!=\r\nSec-WebSocket-Version: 13\r\n\r\n";
  assert_int_equal(check_req(badkey, &st), CYMG_EPROTO);

  /* The response side. */
  const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  cymg_http_header h[16];
  cymg_http_msg m;
  const char *why;
  assert_true(cymg_http_parse_response(resp, strlen(resp), &m, h, 16, NULL) > 0);
  assert_int_equal(cymg_ws_check_response(&m, cymg_str_c("dGhlIHNhbXBsZSBub25jZQ=="), &why), 0);
  assert_int_equal(cymg_ws_check_response(&m, cymg_str_c("AAAAAAAAAAAAAAAAAAAAAA=="), &why),
                   CYMG_EPROTO);
  assert_non_null(strstr(why, "Accept"));
  const char *r200 = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  assert_true(cymg_http_parse_response(r200, strlen(r200), &m, h, 16, NULL) > 0);
  assert_int_equal(cymg_ws_check_response(&m, cymg_str_c("dGhlIHNhbXBsZSBub25jZQ=="), &why),
                   CYMG_EPROTO);

  /* Subprotocols: the client's order of preference wins. */
  const char *sp = "GET / HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: soap, chat\r\n"
                   "Sec-WebSocket-Protocol: wamp\r\n\r\n";
  assert_true(cymg_http_parse_request(sp, strlen(sp), &m, h, 16, NULL) > 0);
  cymg_str out;
  assert_int_equal(cymg_ws_select_protocol(&m, "wamp, chat", &out), 0);
  assert_true(cymg_str_eq(out, cymg_str_c("chat")));
  assert_int_equal(cymg_ws_select_protocol(&m, "mqtt", &out), CYMG_ENOTFOUND);
  assert_int_equal(cymg_ws_select_protocol(&m, NULL, &out), CYMG_ENOTFOUND);
}

/* ---- permessage-deflate ---- */

static int offer(const char *ext, const cymg__ws_conf *conf, cymg__ws_pmd *pmd, cymg_buf *resp) {
  char req[512];
  snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n", ext);
  cymg_http_header h[16];
  cymg_http_msg m;
  assert_true(cymg_http_parse_request(req, strlen(req), &m, h, 16, NULL) > 0);
  return cymg__ws_pmd_accept(&m, conf, pmd, resp);
}

static void test_deflate_negotiation(void **state) {
  (void) state;
  cymg__ws_conf on = {.deflate = true}, off = {.deflate = false};
  cymg__ws_pmd p;
  cymg_buf r = {NULL, 0, 0};
  assert_int_equal(offer("Sec-WebSocket-Extensions: permessage-deflate", &off, &p, &r), 0);
  assert_false(p.on);
  assert_int_equal(r.len, 0);
  assert_int_equal(offer("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
                         &on, &p, &r), 0);
  assert_true(p.on);
  assert_string_equal(r.buf, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
  r.len = 0;
  /* An offer with an unknown parameter is passed over for the next one. */
  assert_int_equal(offer("Sec-WebSocket-Extensions: permessage-deflate; foo=1, "
                         "permessage-deflate; server_max_window_bits=\"10\"; "
                         "client_no_context_takeover",
                         &on, &p, &r), 0);
  assert_true(p.on);
  assert_int_equal(p.server_bits, 10);
  assert_true(p.client_no_ctx);
  assert_string_equal(r.buf, "Sec-WebSocket-Extensions: permessage-deflate; "
                             "client_no_context_takeover; server_max_window_bits=10\r\n");
  r.len = 0;
  static const char *const refused[] = {
      "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16",
      "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits",
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=7",
      "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover=1",
      ("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
       "server_no_context_takeover"),
      "Sec-WebSocket-Extensions: x-webkit-deflate-frame",
      "Sec-WebSocket-Extensions: permessage-deflate;; ",
  };
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    assert_int_equal(offer(refused[i], &on, &p, &r), 0);
    assert_false(p.on);
    assert_int_equal(r.len, 0);
  }
  /* The server's own wishes: no context takeover, smaller windows. */
  cymg__ws_conf mine = {
      .deflate = true, .deflate_flags = CYMG_WS_DEFLATE_SERVER_NO_CONTEXT, .server_bits = 11,
      .client_bits = 12};
  assert_int_equal(offer("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
                         &mine, &p, &r), 0);
  assert_string_equal(r.buf, "Sec-WebSocket-Extensions: permessage-deflate; "
                             "server_no_context_takeover; server_max_window_bits=11; "
                             "client_max_window_bits=12\r\n");
  cymg_buf_free(&r);

  /* Client: the offer, and checking answers against it. */
  cymg_buf o = {NULL, 0, 0};
  assert_int_equal(cymg__ws_pmd_offer(&mine, &o), 0);
  assert_string_equal(o.buf, "Sec-WebSocket-Extensions: permessage-deflate; "
                             "server_no_context_takeover; server_max_window_bits=11; "
                             "client_max_window_bits=12\r\n");
  cymg_buf_free(&o);
  static const struct {
    const char *hdr;
    int rc;
  } answers[] = {
      {"", 0},
      {"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
       "server_max_window_bits=10\r\n", 0},
      {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n", CYMG_EPROTO},
      {"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
       "server_max_window_bits=12\r\n", CYMG_EPROTO},
      {"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
       "server_max_window_bits=11; client_max_window_bits\r\n", CYMG_EPROTO},
      {"Sec-WebSocket-Extensions: other\r\n", CYMG_EPROTO},
      {"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
       "server_max_window_bits=11, permessage-deflate\r\n", CYMG_EPROTO},
  };
  for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
    char resp[512];
    snprintf(resp, sizeof(resp), "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", answers[i].hdr);
    cymg_http_header h[16];
    cymg_http_msg m;
    assert_true(cymg_http_parse_response(resp, strlen(resp), &m, h, 16, NULL) > 0);
    const char *why;
    assert_int_equal(cymg__ws_pmd_check(&m, &mine, &p, &why), answers[i].rc);
    if (i == 1) {
      assert_true(p.on && p.server_no_ctx && p.server_bits == 10 && p.client_bits == 12);
    }
  }
  /* Without an offer, any extension in the answer is an error. */
  const char *resp = "HTTP/1.1 101 OK\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
  cymg_http_header h[16];
  cymg_http_msg m;
  const char *why;
  assert_true(cymg_http_parse_response(resp, strlen(resp), &m, h, 16, NULL) > 0);
  assert_int_equal(cymg__ws_pmd_check(&m, &off, &p, &why), CYMG_EPROTO);
}

/* Compresses messages on one side and inflates them on the other. */
static void roundtrip(const cymg__ws_pmd *pmd) {
  cymg__wsz *srv, *cli;
  assert_int_equal(cymg__wsz_new(&srv, pmd, true), 0);
  assert_int_equal(cymg__wsz_new(&cli, pmd, false), 0);
  /* Random letters: compressible, but not so repetitive that a message
   * compresses as well without the previous one as with it. Small enough to
   * fit a 32 KiB window. */
  size_t big = 20000;
  char *msg = malloc(300000);
  uint32_t x = 12345;
  for (size_t i = 0; i < big; i++) {
    x = x * 1103515245u + 12345u;
    msg[i] = (char) ('a' + (x >> 16) % 16);
  }
  size_t sizes[] = {0, 1, 5, 100, 4096, big};
  size_t first_len = 0;
  for (int rep = 0; rep < 2; rep++) {
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
      for (int dir = 0; dir < 2; dir++) {
        cymg__wsz *a = dir ? cli : srv, *b = dir ? srv : cli;
        cymg_buf c = {NULL, 0, 0}, d = {NULL, 0, 0};
        /* as one piece, and fragmented in three */
        if (k % 2) {
          assert_int_equal(cymg__wsz_compress(a, msg, sizes[k], true, &c), 0);
        } else {
          size_t t = sizes[k] / 3;
          assert_int_equal(cymg__wsz_compress(a, msg, t, false, &c), 0);
          assert_int_equal(cymg__wsz_compress(a, msg + t, t, false, &c), 0);
          assert_int_equal(cymg__wsz_compress(a, msg + 2 * t, sizes[k] - 2 * t, true, &c), 0);
        }
        if (sizes[k] == big && dir == 0) {
          if (rep == 0) first_len = c.len;
          /* With context takeover the repeat is far smaller. */
          if (rep == 1 && !pmd->server_no_ctx && !pmd->server_bits)
            assert_true(c.len < first_len / 4);
          if (rep == 1 && pmd->server_no_ctx) assert_int_equal(c.len, first_len);
        }
        uint8_t *copy = exact(c.buf ? c.buf : "", c.len);
        assert_int_equal(cymg__wsz_decompress(b, copy, c.len, true, big, &d), 0);
        free(copy);
        assert_int_equal(d.len, sizes[k]);
        if (sizes[k]) assert_memory_equal(d.buf, msg, sizes[k]);
        cymg_buf_free(&c);
        cymg_buf_free(&d);
      }
    }
  }
  /* A bomb: 300 KB of one byte inflates past a 1000-byte limit. */
  memset(msg, 'a', 300000);
  cymg_buf c = {NULL, 0, 0}, d = {NULL, 0, 0};
  assert_int_equal(cymg__wsz_compress(cli, msg, 300000, true, &c), 0);
  assert_int_equal(cymg__wsz_decompress(srv, c.buf, c.len, true, 1000, &d), CYMG_ELIMIT);
  assert_true(d.len <= 1001);
  cymg_buf_free(&d);
  /* Garbage fails cleanly. */
  assert_int_equal(cymg__wsz_decompress(cli, "\xff\xff\xff\xff", 4, true, 1000, &d), CYMG_EPARSE);
  cymg_buf_free(&c);
  cymg_buf_free(&d);
  free(msg);
  cymg__wsz_free(srv);
  cymg__wsz_free(cli);
}

static void test_deflate_roundtrip(void **state) {
  (void) state;
  cymg__ws_pmd takeover = {true, false, false, 0, 0};
  roundtrip(&takeover);
  cymg__ws_pmd no_ctx = {true, true, true, 0, 0};
  roundtrip(&no_ctx);
  cymg__ws_pmd small = {true, false, false, 8, 9}; /* 8 is compressed with 9 */
  roundtrip(&small);
  /* The RFC 7692 §7.2.3.1 example: "Hello" compressed. */
  cymg__ws_pmd p = {true, false, false, 0, 0};
  cymg__wsz *z;
  assert_int_equal(cymg__wsz_new(&z, &p, false), 0);
  cymg_buf d = {NULL, 0, 0};
  assert_int_equal(cymg__wsz_decompress(z, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, true, 100, &d), 0);
  assert_int_equal(d.len, 5);
  assert_memory_equal(d.buf, "Hello", 5);
  /* §7.2.3.2: the same again with context takeover, referring back. */
  d.len = 0;
  assert_int_equal(cymg__wsz_decompress(z, "\xf2\x00\x11\x00\x00", 5, true, 100, &d), 0);
  assert_int_equal(d.len, 5);
  assert_memory_equal(d.buf, "Hello", 5);
  cymg_buf_free(&d);
  cymg__wsz_free(z);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc_examples),      cmocka_unit_test(test_length_forms),
      cmocka_unit_test(test_mask_long),         cmocka_unit_test(test_reader_rules),
      cmocka_unit_test(test_utf8),              cmocka_unit_test(test_close_payloads),
      cmocka_unit_test(test_handshake),         cmocka_unit_test(test_deflate_negotiation),
      cmocka_unit_test(test_deflate_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
