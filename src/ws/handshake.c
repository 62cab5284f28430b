/* The WebSocket opening handshake on connections: the server's upgrade of an
 * HTTP connection, listening, and the client's request and response check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cymg/base64.h"
#include "cymg/rand.h"
#include "http/http_internal.h"
#include "ws/ws_internal.h"

/* Bound on the client's view of the response head. */
#define MAX_RESPONSE_HEAD 16384
#define MAX_RESPONSE_HEADERS 64

int cymg_ws_listen(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                   cymg_conn **out) {
  return cymg__http_listen_as(mgr, url, "ws", fn, fn_data, out);
}

/* ---- server ---- */

static int refuse(cymg_conn *c, int status, const char *why) {
  /* Connection: close makes the HTTP layer end the connection after it. */
  const char *hdrs = status == 426 ? "Content-Type: text/plain\r\nConnection: close\r\n"
                                     "Sec-WebSocket-Version: 13\r\n"
                                   : "Content-Type: text/plain\r\nConnection: close\r\n";
  CYMG__DEBUG("conn %llu: WebSocket upgrade refused: %s", (unsigned long long) c->id, why);
  cymg_http_reply(c, status, hdrs, "%d %s: %s\n", status, cymg_http_status_reason(status), why);
  return status == 500 ? CYMG_ENOMEM : CYMG_EPROTO;
}

int cymg_ws_upgrade(cymg_conn *c, const cymg_http_msg *msg, const char *extra_headers) {
  cymg__http *h = c ? cymg__http_of(c) : NULL;
  if (h == NULL || !h->is_server || h->is_listener || msg == NULL) return CYMG_ESTATE;
  /* Only from HTTP_MSG: from HTTP_HDRS the HTTP layer would go on reading a
   * body into a connection that is no longer its own. */
  if (h->phase != HTTP_WAIT_REPLY || h->replied || c->sent_total != h->sent_mark)
    return CYMG_ESTATE;
  int status;
  const char *why;
  if (cymg_ws_check_request(msg, &status, &why) < 0) return refuse(c, status, why);
  char accept[29];
  int n;
  cymg_str key = {NULL, 0};
  for (size_t i = 0; i < msg->num_headers; i++)
    if (cymg_str_case_eq(msg->headers[i].name, cymg_str_c("Sec-WebSocket-Key")))
      key = msg->headers[i].value;
  if (cymg_ws_accept_key(key, accept) < 0) return refuse(c, 500, "cannot compute the accept key");

  cymg__ws *ws = cymg__ws_new(c, &h->conf->ws, true);
  cymg__ws_pmd pmd;
  cymg_buf b;
  cymg_buf_init(&b);
  n = ws ? cymg_buf_printf(&b,
                           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
                           accept)
         : CYMG_ENOMEM;
  if (n >= 0) n = cymg__ws_pmd_accept(msg, &h->conf->ws, &pmd, &b);
  if (n >= 0 && extra_headers) n = cymg_buf_append(&b, extra_headers, strlen(extra_headers));
  if (n >= 0) n = cymg_buf_append(&b, "\r\n", 2);
  if (n >= 0) n = cymg__ws_open(c, ws, &pmd);
  if (n < 0) {
    cymg_buf_free(&b);
    if (ws) cymg__ws_free(ws);
    return refuse(c, 500, "out of memory");
  }
  int rc = cymg_send(c, b.buf, b.len);
  cymg_buf_free(&b);
  if (rc < 0) {
    cymg__ws_free(ws);
    /* The request is left unanswered: the client would wait for good. */
    cymg__conn_fail_later(c, "WebSocket upgrade: 101 could not be queued: %s", cymg_strerror(rc));
    return rc;
  }
  /* Swap the layers by hand: the HTTP state holds msg, which the caller may
   * still read after this returns, so it is freed at the next dispatch. The
   * request's bytes are consumed by the HTTP layer when the handler returns;
   * frames the client sent right behind them are read then too. */
  ws->old_proto = c->proto;
  ws->old_state = c->proto_state;
  c->proto = &cymg__ws_proto;
  c->proto_state = ws;
  cymg__tnode_disarm(c->mgr, &c->deadline); /* HTTP's; WebSocket keeps its own timers */
  /* HTTP may have held reading for requests pipelined behind this one (an
   * upgrade made later, from a timer): those bytes are frames now. */
  cymg__conn_hold_read(c, false);
  cymg__conn_defer(c, CYMG__P_RESUME);
  cymg_call(c, CYMG_EV_WS_OPEN, (void *) msg);
  return 0;
}

/* ---- client ---- */

int cymg_ws_connect(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                    cymg_conn **out) {
  cymg_conn *c;
  int rc = cymg__connect_url(mgr, url, "ws", fn, fn_data, &c);
  if (rc < 0) return rc;
  if (out) *out = c;
  cymg__ws_conf conf = {0};
  cymg__ws *ws = cymg__ws_new(c, &conf, false);
  if (ws == NULL) {
    cymg__conn_fail_later(c, "WebSocket: out of memory");
    return 0;
  }
  cymg_conn_set_proto(c, &cymg__ws_proto, ws);
  cymg__http_host(url, ws->host, sizeof(ws->host));
  cymg_str uri = cymg_url_uri(cymg_str_c(url));
  /* The fragment is not sent (§3); a bare "?q" gets its "/". */
  for (size_t i = 0; i < uri.len; i++)
    if (uri.buf[i] == '#') uri.len = i;
  bool slash = uri.len == 0 || uri.buf[0] != '/';
  ws->uri = malloc(uri.len + 2);
  uint8_t raw[16];
  cymg_buf k;
  cymg_buf_init(&k);
  rc = ws->uri ? cymg_random_bytes(raw, sizeof(raw)) : CYMG_ENOMEM;
  if (rc == 0) rc = cymg_base64_encode(cymg_str_n(raw, sizeof(raw)), &k);
  if (rc == 24) memcpy(ws->key, k.buf, 25);
  cymg_buf_free(&k);
  if (rc != 24) {
    cymg__conn_fail_later(c, "WebSocket: cannot make a key: %s", cymg_strerror(rc < 0 ? rc : CYMG_EINVAL));
    return 0;
  }
  snprintf(ws->uri, uri.len + 2, "%s%.*s", slash ? "/" : "", (int) uri.len, uri.buf);
  cymg__ws_timer(c, ws, 30000);
  return 0;
}

static int send_request(cymg_conn *c, cymg__ws *ws) {
  cymg_buf b;
  cymg_buf_init(&b);
  int rc = cymg_buf_printf(&b,
                           "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n",
                           ws->uri, ws->host, ws->key);
  if (rc >= 0) rc = cymg__ws_pmd_offer(&ws->conf, &b);
  if (rc >= 0 && ws->req_headers) rc = cymg_buf_append(&b, ws->req_headers, strlen(ws->req_headers));
  if (rc >= 0) rc = cymg_buf_append(&b, "\r\n", 2);
  if (rc >= 0) rc = cymg_send(c, b.buf, b.len);
  cymg_buf_free(&b);
  ws->req_sent = true;
  return rc < 0 ? rc : 0;
}

/* True when the request's extra headers offered subprotocol p. */
static bool offered(const char *headers, cymg_str p) {
  static const char name[] = "Sec-WebSocket-Protocol:";
  for (const char *s = headers; s && *s;) {
    const char *eol = strchr(s, '\n');
    size_t line = eol ? (size_t) (eol - s) : strlen(s);
    if (line > sizeof(name) - 1 && strncasecmp(s, name, sizeof(name) - 1) == 0) {
      cymg_str rest = cymg_str_n(s + sizeof(name) - 1, line - (sizeof(name) - 1)), tok;
      while (cymg_str_split(&rest, ',', &tok)) {
        tok = cymg_str_trim(tok);
        if (tok.len && tok.buf[tok.len - 1] == '\r') tok.len--;
        if (cymg_str_eq(cymg_str_trim(tok), p)) return true;
      }
    }
    s = eol ? eol + 1 : NULL;
  }
  return false;
}

/* Reads the response to the upgrade request. */
static void read_response(cymg_conn *c, cymg__ws *ws) {
  cymg_str d = cymg_conn_recv_data(c);
  cymg_http_header hdrs[MAX_RESPONSE_HEADERS];
  cymg_http_msg msg;
  int reason = 0;
  size_t len = d.len < MAX_RESPONSE_HEAD ? d.len : MAX_RESPONSE_HEAD;
  int rc = cymg_http_parse_response(d.buf, len, &msg, hdrs, MAX_RESPONSE_HEADERS, &reason);
  if (rc == CYMG_EAGAIN && d.len < MAX_RESPONSE_HEAD) return;
  if (rc < 0) {
    cymg_error(c, "WebSocket handshake: bad HTTP response: %s",
               rc == CYMG_EAGAIN ? "head too large" : cymg_http_err_text(reason));
    return;
  }
  const char *why;
  if (cymg_ws_check_response(&msg, cymg_str_c(ws->key), &why) < 0) {
    if (msg.status != 101) {
      cymg_error(c, "WebSocket handshake: server answered %d %.*s", msg.status,
                 (int) msg.reason.len, msg.reason.buf);
    } else {
      cymg_error(c, "WebSocket handshake: %s", why);
    }
    return;
  }
  cymg__ws_pmd pmd;
  if (cymg__ws_pmd_check(&msg, &ws->conf, &pmd, &why) < 0) {
    cymg_error(c, "WebSocket handshake: %s", why);
    return;
  }
  cymg_str *proto = cymg_http_get_header(&msg, "Sec-WebSocket-Protocol");
  if (proto && !offered(ws->req_headers, cymg_str_trim(*proto))) {
    cymg_error(c, "WebSocket handshake: server chose subprotocol '%.*s', which was not offered",
               (int) proto->len, proto->buf);
    return;
  }
  if (cymg__ws_open(c, ws, &pmd) < 0) {
    cymg_error(c, "WebSocket: out of memory");
    return;
  }
  cymg_call(c, CYMG_EV_WS_OPEN, &msg);
  /* Frames may have come right behind the response. */
  cymg_conn_consume(c, (size_t) rc);
  if (!(c->flags & CYMG__F_CLOSING)) cymg__ws_read(c, ws);
}

bool cymg__ws_client_event(cymg_conn *c, cymg__ws *ws, int ev) {
  switch (ev) {
    case CYMG_EV_CONNECT: {
      int rc = send_request(c, ws);
      if (rc < 0) cymg_error(c, "WebSocket: cannot send the upgrade request: %s", cymg_strerror(rc));
      return false;
    }
    case CYMG_EV_READ:
      if (ws->req_sent) read_response(c, ws);
      return true;
    default: return false;
  }
}
