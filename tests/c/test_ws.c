/* WebSocket against a real peer, Node's `ws` package (tests/node): its client
 * against our server, and our client against its server, with compression off
 * and on: every length form, 16 MiB messages, fragmentation with interleaved
 * pings, pings both ways, each close code from each side. Skipped only when
 * node is not installed. CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include "ws_test.h"

#define SKIP_WITHOUT_NODE()                                                     \
  do {                                                                          \
    if (!node_ready()) {                                                        \
      print_message("node not found: WebSocket interop test skipped "           \
                    "(Debian: apt-get install nodejs npm)\n");                  \
      skip();                                                                   \
    }                                                                           \
  } while (0)

/* ---- Node's client against our server ---- */

static void run_node_client(const char *mode) {
  cymg_mgr *mgr;
  cymg_conn *lsn;
  ws_srv s = {0};
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  assert_int_equal(cymg_ws_listen(mgr, "ws://127.0.0.1:0", ws_srv_fn, &s, &lsn), 0);
  if (strcmp(mode, "deflate") == 0) assert_int_equal(cymg_ws_set_deflate(lsn, true, 0, 0, 0), 0);
  char port[16];
  snprintf(port, sizeof(port), "%u", (unsigned) cymg_conn_local(lsn)->port);
  int from, to;
  pid_t pid = node_spawn("client.js", port, mode, &from, &to);
  int rc = node_wait(mgr, pid);
  char out[512] = "";
  ssize_t n = read(from, out, sizeof(out) - 1);
  if (n > 0) out[n] = '\0';
  print_message("%s", out);
  close(from);
  close(to);
  assert_int_equal(rc, 0);
  assert_int_equal(s.errors, 0);
  assert_true(s.opens >= 23);
  cymg_close(lsn);
  POLL_UNTIL(mgr, cymg_mgr_count(mgr) == 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_node_client_plain(void **state) {
  (void) state;
  SKIP_WITHOUT_NODE();
  run_node_client("plain");
}

static void test_node_client_deflate(void **state) {
  (void) state;
  SKIP_WITHOUT_NODE();
  run_node_client("deflate");
}

/* ---- our client against Node's server ---- */

typedef struct {
  cymg_mgr *mgr;
  char url[64];
  bool deflate;
  unsigned dflags;
  int sbits, cbits;
} peer;

static cymg_conn *open_client(peer *p, ws_cli *s) {
  cymg_conn *c;
  memset(s, 0, sizeof(*s));
  assert_int_equal(cymg_ws_connect(p->mgr, p->url, ws_cli_fn, s, &c), 0);
  if (p->deflate) assert_int_equal(cymg_ws_set_deflate(c, true, p->dflags, p->sbits, p->cbits), 0);
  POLL_UNTIL(p->mgr, s->open || s->closed);
  if (!s->open) fail_msg("no WebSocket: %s", s->error);
  return c;
}

static void expect_echo(peer *p, cymg_conn *c, ws_cli *s, size_t n, int op) {
  uint8_t *b = malloc(n ? n : 1);
  ws_payload(b, n, op == CYMG_WS_OP_TEXT);
  int before = s->msgs;
  assert_int_equal(cymg_ws_send(c, b, n, op), 0);
  POLL_UNTIL(p->mgr, s->msgs > before || s->closed);
  if (s->msgs != before + 1)
    fail_msg("no echo of %zu bytes: %s (close %d %s)", n, s->error, s->close_code, s->close_reason);
  assert_int_equal(CYMG_WS_OPCODE(s->flags), op);
  assert_int_equal(s->last.len, n);
  if (n) assert_memory_equal(s->last.buf, b, n);
  free(b);
}

static void command(peer *p, cymg_conn *c, ws_cli *s, const char *text) {
  int before = s->msgs;
  assert_int_equal(cymg_ws_send(c, text, strlen(text), CYMG_WS_OP_TEXT), 0);
  POLL_UNTIL(p->mgr, s->msgs > before || s->closed);
  assert_int_equal(s->msgs, before + 1);
}

static void run_node_server(const char *mode, bool deflate, unsigned dflags, int sbits, int cbits) {
  peer p = {0};
  p.deflate = deflate;
  p.dflags = dflags;
  p.sbits = sbits;
  p.cbits = cbits;
  assert_int_equal(cymg_mgr_new(&p.mgr, CYMG_BACKEND_AUTO), 0);
  int from, to;
  pid_t pid = node_spawn("server.js", mode, NULL, &from, &to);
  char line[64] = "";
  size_t got = 0;
  while (got < sizeof(line) - 1 && strchr(line, '\n') == NULL) {
    ssize_t n = read(from, line + got, sizeof(line) - 1 - got);
    if (n <= 0) fail_msg("node server.js did not start");
    got += (size_t) n;
    line[got] = '\0';
  }
  int port = 0;
  assert_int_equal(sscanf(line, "PORT %d", &port), 1);
  snprintf(p.url, sizeof(p.url), "ws://127.0.0.1:%d/ws?x=1", port);

  ws_cli s;
  cymg_conn *c = open_client(&p, &s);
  command(&p, c, &s, "deflate?");
  bool want = deflate && strcmp(mode, "plain") != 0;
  assert_int_equal(s.last.len, want ? 3 : 2);
  assert_int_equal(cymg_ws_is_deflate(c), want);
  static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 16u << 20};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    expect_echo(&p, c, &s, sizes[i], CYMG_WS_OP_TEXT);
    expect_echo(&p, c, &s, sizes[i], CYMG_WS_OP_BINARY);
  }
  /* A fragmented message with a ping between fragments. */
  {
    size_t n = 70000;
    uint8_t *b = malloc(n);
    ws_payload(b, n, true);
    int before = s.msgs, pongs = s.pongs;
    assert_int_equal(cymg_ws_send_frag(c, CYMG_WS_OP_TEXT, b, 30000, false), 0);
    assert_int_equal(cymg_ws_send(c, "between", 7, CYMG_WS_OP_PING), 0);
    assert_int_equal(cymg_ws_send_frag(c, CYMG_WS_OP_CONT, b + 30000, 39990, false), 0);
    assert_int_equal(cymg_ws_send_frag(c, CYMG_WS_OP_CONT, b + 69990, 10, true), 0);
    assert_int_equal(cymg_ws_send_frag(c, CYMG_WS_OP_CONT, b, 1, true), CYMG_ESTATE);
    POLL_UNTIL(p.mgr, s.msgs > before && s.pongs > pongs);
    assert_int_equal(s.last.len, n);
    assert_memory_equal(s.last.buf, b, n);
    free(b);
  }
  /* The server streams fragments; we get one message. */
  command(&p, c, &s, "frag:200000");
  {
    uint8_t *b = malloc(200000);
    ws_payload(b, 200000, false);
    assert_int_equal(s.last.len, 200000);
    assert_memory_equal(s.last.buf, b, 200000);
    assert_int_equal(CYMG_WS_OPCODE(s.flags), CYMG_WS_OP_BINARY);
    free(b);
  }
  /* Our ping, its pong; its ping, our automatic pong. */
  int pongs = s.pongs;
  assert_int_equal(cymg_ws_send(c, "ping-payload", 12, CYMG_WS_OP_PING), 0);
  POLL_UNTIL(p.mgr, s.pongs > pongs);
  assert_int_equal(s.pong.len, 12);
  assert_memory_equal(s.pong.buf, "ping-payload", 12);
  command(&p, c, &s, "ping");
  assert_int_equal(s.last.len, 6);
  assert_memory_equal(s.last.buf, "ponged", 6);
  /* Our close: the server echoes the code and ends TCP. */
  assert_int_equal(cymg_ws_close(c, 1000, "done"), 0);
  assert_int_equal(cymg_ws_send(c, "late", 4, CYMG_WS_OP_TEXT), CYMG_ESTATE);
  POLL_UNTIL(p.mgr, s.closed);
  assert_int_equal(s.closes, 1);
  assert_int_equal(s.close_code, 1000);
  assert_int_equal(s.errors, 0);
  ws_cli_free(&s);

  static const int codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999};
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    c = open_client(&p, &s);
    assert_int_equal(cymg_ws_close(c, codes[i], "reason"), 0);
    POLL_UNTIL(p.mgr, s.closed);
    assert_int_equal(s.close_code, codes[i]);
    ws_cli_free(&s);
    c = open_client(&p, &s);
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "close:%d", codes[i]);
    assert_int_equal(cymg_ws_send(c, cmd, strlen(cmd), CYMG_WS_OP_TEXT), 0);
    POLL_UNTIL(p.mgr, s.closed);
    assert_int_equal(s.closes, 1);
    assert_int_equal(s.close_code, codes[i]);
    assert_string_equal(s.close_reason, "bye");
    assert_int_equal(s.errors, 0);
    ws_cli_free(&s);
  }
  close(to); /* the server exits when its stdin closes */
  close(from);
  assert_int_equal(node_wait(p.mgr, pid), 0);
  POLL_UNTIL(p.mgr, cymg_mgr_count(p.mgr) == 0);
  ASSERT_MGR_CLEAN(p.mgr);
  cymg_mgr_free(p.mgr);
}

static void test_node_server_plain(void **state) {
  (void) state;
  SKIP_WITHOUT_NODE();
  run_node_server("plain", false, 0, 0, 0);
}

static void test_node_server_declines(void **state) {
  (void) state;
  SKIP_WITHOUT_NODE();
  run_node_server("plain", true, 0, 0, 0); /* we offer, it declines: plain frames */
}

static void test_node_server_deflate(void **state) {
  (void) state;
  SKIP_WITHOUT_NODE();
  run_node_server("deflate", true, 0, 0, 0);
}

static void test_node_server_deflate_no_context(void **state) {
  (void) state;
  SKIP_WITHOUT_NODE();
  /* we ask for no context takeover on our side too */
  run_node_server("deflate-noctx", true, CYMG_WS_DEFLATE_CLIENT_NO_CONTEXT, 0, 0);
}

static void test_node_server_deflate_window_bits(void **state) {
  (void) state;
  SKIP_WITHOUT_NODE();
  /* we ask for windows of 11 (server) and 12 (client); it answers 9 and 10 */
  run_node_server("deflate-bits", true, 0, 11, 12);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_node_client_plain),
      cmocka_unit_test(test_node_client_deflate),
      cmocka_unit_test(test_node_server_plain),
      cmocka_unit_test(test_node_server_declines),
      cmocka_unit_test(test_node_server_deflate),
      cmocka_unit_test(test_node_server_deflate_no_context),
      cmocka_unit_test(test_node_server_deflate_window_bits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
