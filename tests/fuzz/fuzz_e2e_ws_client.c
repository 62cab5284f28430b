/* End to end: the WebSocket client reads arbitrary bytes as the server's answer
 * to its upgrade request (the 101 response, extension and subprotocol answers)
 * and then as frames from the server, over a real loopback TCP connection; the
 * harness plays the server. See e2e.h for the input layout.
 *
 * The client's key is random, so a fuzzer could never produce the matching
 * Sec-WebSocket-Accept: every "@ACCEPT@" in the payload is replaced with the
 * right value for the request the harness received, before any byte is sent.
 *
 * ctl[0] bits 0-1 pick the client's configuration:
 *   0  no compression          1  permessage-deflate offered, defaults
 *   2  permessage-deflate, no context takeover both ways, 9/11-bit windows
 *   3  permessage-deflate, subprotocols "chat, superchat" offered, messages
 *      limited to 256 bytes (1009 paths)
 * ctl[0] bit 4: the client echoes each message it gets (masked, compressed
 * when negotiated); a message starting with "close" makes it close. */
#include "cymg/cymg.h"
#include "e2e.h"

#define TOKEN "@ACCEPT@"

static cymg_mgr *mgr;
static int lfd = -1;
static char url[80];
static uint8_t ctl;

static void at_exit(void) {
  cymg_mgr_free(mgr);
  if (lfd >= 0) close(lfd);
}

static void fn(cymg_conn *c, int ev, void *ev_data) {
  e2e_trace(ev, ev_data);
  if (ev == CYMG_EV_WS_OPEN) {
    cymg_http_msg *m = ev_data;
    CHECK(m->status == 101);
    (void) cymg_ws_send(c, "hi", 2, CYMG_WS_OP_TEXT);
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    int op = CYMG_WS_OPCODE(m->flags);
    CHECK(op == CYMG_WS_OP_TEXT || op == CYMG_WS_OP_BINARY);
    if (op == CYMG_WS_OP_TEXT) {
      uint32_t st = 0;
      CHECK(cymg_ws_utf8(&st, m->data.buf, m->data.len) == 0 && st == 0);
    }
    if ((ctl & 3) == 3) CHECK(m->data.len <= 256);
    if (m->data.len >= 5 && memcmp(m->data.buf, "close", 5) == 0) {
      (void) cymg_ws_close(c, 1000, NULL);
    } else if (ctl & 0x10) {
      (void) cymg_ws_send(c, m->data.buf, m->data.len, op);
    }
  } else if (ev == CYMG_EV_WS_CTL) {
    cymg_ws_msg *m = ev_data;
    int op = CYMG_WS_OPCODE(m->flags);
    CHECK(op == CYMG_WS_OP_CLOSE || op == CYMG_WS_OP_PING || op == CYMG_WS_OP_PONG);
    CHECK(m->data.len <= 125);
  }
}

/* Reads the upgrade request and computes the accept value for its key.
 * Returns false when the request never came whole. */
static bool read_request(int fd, uint64_t id, char accept[29]) {
  char req[4096];
  size_t len = 0;
  for (int i = 0; i < E2E_MAX_POLLS && len < sizeof(req) - 1; i++) {
    ptrdiff_t n = recv(fd, req + len, sizeof(req) - 1 - len, MSG_DONTWAIT);
    if (n > 0) {
      len += (size_t) n;
      req[len] = '\0';
      if (strstr(req, "\r\n\r\n")) break;
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      return false;
    }
    if (cymg_mgr_find(mgr, id) == NULL) return false;
    e2e_poll(mgr, -1, false);
  }
  req[len] = '\0';
  const char *k = strstr(req, "Sec-WebSocket-Key: ");
  CHECK(k != NULL && strstr(req, "\r\n\r\n") != NULL); /* our own client's request */
  k += strlen("Sec-WebSocket-Key: ");
  const char *e = strstr(k, "\r\n");
  CHECK(e != NULL);
  CHECK(cymg_ws_accept_key(cymg_str_n(k, (size_t) (e - k)), accept) == 0);
  return true;
}

/* The payload with every TOKEN replaced by accept (28 characters). */
static uint8_t *substitute(const uint8_t *p, size_t len, const char *accept, size_t *out_len) {
  size_t tl = strlen(TOKEN), n = 0, cap = len + len / tl * 20 + 1;
  uint8_t *out = malloc(cap);
  CHECK(out != NULL);
  for (size_t i = 0; i < len;) {
    if (len - i >= tl && memcmp(p + i, TOKEN, tl) == 0) {
      memcpy(out + n, accept, 28);
      n += 28;
      i += tl;
    } else {
      out[n++] = p[i++];
    }
  }
  *out_len = n;
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (mgr == NULL) {
    mgr = e2e_mgr_new();
    uint16_t port;
    lfd = e2e_tcp_listener(&port);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%u/chat?room=1", (unsigned) port);
    atexit(at_exit);
  }
  e2e_in in;
  if (e2e_in_parse(data, size, &in) < 0) return 0;
  ctl = in.ctl;
  cymg_conn *c = NULL;
  CHECK(cymg_ws_connect(mgr, url, fn, NULL, &c) == 0 && c != NULL);
  uint64_t id = cymg_conn_id(c);
  switch (ctl & 3) {
    case 1: CHECK(cymg_ws_set_deflate(c, true, 0, 0, 0) == 0); break;
    case 2:
      CHECK(cymg_ws_set_deflate(c, true,
                                CYMG_WS_DEFLATE_SERVER_NO_CONTEXT | CYMG_WS_DEFLATE_CLIENT_NO_CONTEXT,
                                9, 11) == 0);
      break;
    case 3:
      CHECK(cymg_ws_set_deflate(c, true, 0, 0, 0) == 0);
      CHECK(cymg_ws_set_request_headers(c, "Sec-WebSocket-Protocol: chat, superchat\r\n") == 0);
      CHECK(cymg_ws_set_max_message(c, 256) == 0);
      break;
    default: break;
  }
  int fd = e2e_tcp_accept(mgr, lfd, id);
  CHECK(fd >= 0);
  char accept[29];
  uint8_t *sub = NULL;
  if (read_request(fd, id, accept)) {
    size_t n;
    sub = substitute(in.p, in.len, accept, &n);
    e2e_in_set(&in, sub, n, data + 1);
    e2e_write(mgr, id, fd, &in);
  }
  e2e_finish(mgr, id, fd, &in);
  free(sub);
  CHECK(cymg_mgr_count(mgr) == 0);
  return 0;
}
