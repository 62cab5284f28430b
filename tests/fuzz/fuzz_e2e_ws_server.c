/* End to end: arbitrary bytes from a peer through an accepted connection of a
 * WebSocket server: the upgrade request (HTTP layer), the switch, then frames
 * (reassembly, control frames, UTF-8, close handshake, permessage-deflate) into
 * a handler that echoes. See e2e.h for the input layout.
 *
 * ctl[0] bits 0-1 pick the listener:
 *   0  no compression
 *   1  permessage-deflate, defaults
 *   2  permessage-deflate, no context takeover both ways, 10/12-bit windows
 *   3  permessage-deflate, messages limited to 256 bytes (1009 paths)
 * ctl[0] bit 4: echoes go out as three fragments with a ping between them.
 * The handler upgrades any request for /ws... (choosing a subprotocol from
 * "chat, superchat" when one is offered) and answers others with 404; a
 * message starting with "close" makes it start the close handshake. */
#include "cymg/cymg.h"
#include "e2e.h"

static cymg_mgr *mgr;
static cymg_conn *lsn[4];
static bool frag_echo;

static void at_exit(void) { cymg_mgr_free(mgr); }

static void echo(cymg_conn *c, const cymg_ws_msg *m) {
  int op = CYMG_WS_OPCODE(m->flags);
  if (m->data.len >= 5 && memcmp(m->data.buf, "close", 5) == 0) {
    (void) cymg_ws_close(c, 1000, "bye");
  } else if (frag_echo) {
    size_t third = m->data.len / 3;
    if (cymg_ws_send_frag(c, op, m->data.buf, third, false) == 0) {
      (void) cymg_ws_send(c, "p", 1, CYMG_WS_OP_PING);
      (void) cymg_ws_send_frag(c, CYMG_WS_OP_CONT, m->data.buf + third, third, false);
      (void) cymg_ws_send_frag(c, CYMG_WS_OP_CONT, m->data.buf + 2 * third,
                               m->data.len - 2 * third, true);
    }
  } else {
    (void) cymg_ws_send(c, m->data.buf, m->data.len, op);
  }
}

static void fn(cymg_conn *c, int ev, void *ev_data) {
  e2e_trace(ev, ev_data);
  if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *m = ev_data;
    if (m->uri.len >= 3 && memcmp(m->uri.buf, "/ws", 3) == 0) {
      cymg_str p;
      char extra[128] = "";
      if (cymg_ws_select_protocol(m, "chat, superchat", &p) == 0)
        snprintf(extra, sizeof(extra), "Sec-WebSocket-Protocol: %.*s\r\n", (int) p.len, p.buf);
      (void) cymg_ws_upgrade(c, m, extra);
    } else {
      (void) cymg_http_reply(c, 404, NULL, "no\n");
    }
  } else if (ev == CYMG_EV_WS_OPEN) {
    (void) cymg_ws_send(c, "hello", 5, CYMG_WS_OP_TEXT);
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    int op = CYMG_WS_OPCODE(m->flags);
    CHECK(op == CYMG_WS_OP_TEXT || op == CYMG_WS_OP_BINARY);
    if (op == CYMG_WS_OP_TEXT) { /* the layer let only valid UTF-8 through */
      uint32_t st = 0;
      CHECK(cymg_ws_utf8(&st, m->data.buf, m->data.len) == 0 && st == 0);
    }
    if (cymg_conn_userdata(c) == lsn[3]) CHECK(m->data.len <= 256);
    echo(c, m);
  } else if (ev == CYMG_EV_WS_CTL) {
    cymg_ws_msg *m = ev_data;
    int op = CYMG_WS_OPCODE(m->flags);
    CHECK(op == CYMG_WS_OP_CLOSE || op == CYMG_WS_OP_PING || op == CYMG_WS_OP_PONG);
    CHECK(m->data.len <= 125);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (mgr == NULL) {
    mgr = e2e_mgr_new();
    for (int i = 0; i < 4; i++)
      CHECK(cymg_ws_listen(mgr, "ws://127.0.0.1:0", fn, NULL, &lsn[i]) == 0);
    /* Each listener's own handle as user pointer, for the per-listener checks. */
    for (int i = 0; i < 4; i++) cymg_conn_set_userdata(lsn[i], lsn[i]);
    CHECK(cymg_ws_set_deflate(lsn[1], true, 0, 0, 0) == 0);
    CHECK(cymg_ws_set_deflate(lsn[2], true,
                              CYMG_WS_DEFLATE_SERVER_NO_CONTEXT | CYMG_WS_DEFLATE_CLIENT_NO_CONTEXT,
                              10, 12) == 0);
    CHECK(cymg_ws_set_deflate(lsn[3], true, 0, 0, 0) == 0);
    CHECK(cymg_ws_set_max_message(lsn[3], 256) == 0);
    atexit(at_exit);
  }
  e2e_in in;
  if (e2e_in_parse(data, size, &in) < 0) return 0;
  frag_echo = (in.ctl & 0x10) != 0;
  int fd;
  uint64_t id = e2e_adopt(lsn[in.ctl & 3], &fd);
  e2e_write(mgr, id, fd, &in);
  e2e_finish(mgr, id, fd, &in);
  CHECK(cymg_mgr_count(mgr) == 4);
  return 0;
}
