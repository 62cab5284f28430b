/* The WebSocket connection layer: reading frames off a connection (reassembly,
 * control frames, UTF-8, limits, decompression), sending (whole, fragmented,
 * compressed, masked), the close handshake, options. The opening handshake is
 * in handshake.c, the codec in codec.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/rand.h"
#include "http/http_internal.h"
#include "ws/ws_internal.h"

/* Frames up to this size are built on the stack and go out with one cymg_send
 * (tried on the socket at once); larger ones are built in the send buffer
 * directly, so their payload is copied once. */
#define SMALL_FRAME 2048
/* A decompression buffer grown past this is released after its message, so an
 * idle connection does not keep a large message's worth of memory. */
#define KEEP_INFLATED (256u << 10)
/* The client waits this long for the answer to its upgrade request. */
#define HANDSHAKE_MS 30000u

cymg__ws *cymg__ws_of(const cymg_conn *c) {
  return cymg_conn_proto(c) == &cymg__ws_proto ? cymg_conn_proto_state(c) : NULL;
}

static uint64_t max_msg(const cymg__ws *ws) {
  return ws->conf.max_msg ? ws->conf.max_msg : CYMG__WS_DEFAULT_MAX_MSG;
}

static uint32_t close_ms(const cymg__ws *ws) {
  return ws->conf.close_ms ? ws->conf.close_ms : CYMG__WS_DEFAULT_CLOSE_MS;
}

/* The limit on a message as it travels. Compressed, it may come out a little
 * larger than the original (stored blocks cost 5 bytes per 64 KiB), and a
 * message that inflates to exactly the limit must still be accepted. */
static uint64_t wire_max(const cymg__ws *ws) {
  uint64_t m = max_msg(ws);
  return ws->pmd.on ? m + (m >> 8) + 4096 : m;
}

/* One message, its frame headers and a read of slack must fit the receive
 * buffer, or a message at the limit could never complete. */
static void set_recv_limit(cymg_conn *c, const cymg__ws *ws) {
  uint64_t need = wire_max(ws) + 65536;
  if (need > SIZE_MAX) need = SIZE_MAX;
  if (c->recv_limit < need) cymg_conn_set_limits(c, (size_t) need, 0);
}

cymg__ws *cymg__ws_new(cymg_conn *c, const cymg__ws_conf *conf, bool is_server) {
  cymg__ws *ws = calloc(1, sizeof(*ws));
  if (ws == NULL) return NULL;
  ws->conf = *conf;
  ws->mgr = c->mgr;
  ws->is_server = is_server;
  ws->rnd_pos = sizeof(ws->rnd);
  return ws;
}

void cymg__ws_free(void *state) {
  cymg__ws *ws = state;
  if (ws->timer) cymg_timer_cancel(ws->mgr, ws->timer);
  if (ws->old_proto && ws->old_proto->free_state && ws->old_state)
    ws->old_proto->free_state(ws->old_state);
  if (ws->inner && ws->inner->free_state && ws->inner_state) ws->inner->free_state(ws->inner_state);
  cymg__wsz_free(ws->z);
  cymg_buf_free(&ws->inflated);
  cymg_buf_free(&ws->zout);
  free(ws->uri);
  free(ws->req_headers);
  free(ws);
}

int cymg__ws_open(cymg_conn *c, cymg__ws *ws, const cymg__ws_pmd *pmd) {
  ws->pmd = *pmd;
  if (pmd->on) {
    int rc = cymg__wsz_new(&ws->z, pmd, ws->is_server);
    if (rc < 0) return rc;
  }
  cymg_ws_reader_init(&ws->rd, ws->is_server, pmd->on, wire_max(ws));
  ws->open = true;
  set_recv_limit(c, ws);
  ws->last_rx = cymg__millis();
  cymg__ws_timer(c, ws, ws->conf.ping_ms); /* ends a handshake timer, starts keepalive */
  return 0;
}

/* ---- the one timer: client handshake, then the close handshake ---- */

static int send_frame(cymg_conn *c, cymg__ws *ws, uint8_t flags, const void *p, size_t n);

/* Keepalive: a peer silent for ping_ms gets a ping; silent for another ping_ms
 * it is taken for gone (a vanished peer sends no FIN, so nothing else would
 * ever end the connection). Hearing from the peer only updates last_rx: the
 * timer, when it fires early, re-arms itself for the rest. */
static void keepalive(cymg_conn *c, cymg__ws *ws) {
  uint32_t ms = ws->conf.ping_ms;
  if (ms == 0) return;
  uint64_t idle = cymg__millis() - ws->last_rx;
  if (idle < ms) {
    cymg__ws_timer(c, ws, (uint32_t) (ms - idle));
  } else if (!ws->ping_out) {
    ws->ping_out = true;
    int rc = send_frame(c, ws, CYMG_WS_FIN | CYMG_WS_OP_PING, NULL, 0);
    if (rc < 0) {
      cymg_error(c, "WebSocket: keepalive ping could not be queued: %s", cymg_strerror(rc));
      return;
    }
    cymg__ws_timer(c, ws, ms);
  } else {
    cymg_error(c, "WebSocket: no answer from the peer within %u ms of a ping", (unsigned) ms);
  }
}

static void timer_fn(void *arg) {
  cymg_conn *c = arg;
  cymg__ws *ws = cymg__ws_of(c);
  if (ws == NULL) return;
  ws->timer = 0;
  if (!ws->open) {
    cymg_error(c, "WebSocket handshake: no response within %u ms", HANDSHAKE_MS);
  } else if (!ws->close_sent && !ws->close_rcvd) {
    keepalive(c, ws);
  } else {
    CYMG__DEBUG("conn %llu: WebSocket close handshake timed out",
                (unsigned long long) c->id);
    cymg_close(c);
  }
}

void cymg__ws_timer(cymg_conn *c, cymg__ws *ws, uint32_t ms) {
  if (ws->timer) cymg_timer_cancel(c->mgr, ws->timer);
  ws->timer = 0;
  if (ms && cymg_timer_add(c->mgr, ms, CYMG_TIMER_ONCE, timer_fn, c, &ws->timer) < 0)
    cymg__conn_fail_later(c, "WebSocket: cannot arm a timer");
}

/* ---- sending ---- */

static int next_mask(cymg__ws *ws, uint8_t mask[4]) {
  if (ws->rnd_pos + 4 > sizeof(ws->rnd)) {
    int rc = cymg_random_bytes(ws->rnd, sizeof(ws->rnd));
    if (rc < 0) return rc;
    ws->rnd_pos = 0;
  }
  memcpy(mask, ws->rnd + ws->rnd_pos, 4);
  ws->rnd_pos += 4;
  return 0;
}

/* Frames n bytes of payload (masking on a client) into the send buffer. */
static int send_frame(cymg_conn *c, cymg__ws *ws, uint8_t flags, const void *p, size_t n) {
  uint8_t hdr[CYMG_WS_MAX_HEADER], mask[4];
  const uint8_t *m = NULL;
  if (c->flags & CYMG__F_CLOSING) return CYMG_ECLOSED;
  if (!ws->is_server) {
    int rc = next_mask(ws, mask);
    if (rc < 0) return rc;
    m = mask;
  }
  size_t hl = cymg_ws_encode_header(hdr, flags, n, m);
  if (n <= SMALL_FRAME) {
    uint8_t tmp[CYMG_WS_MAX_HEADER + SMALL_FRAME];
    memcpy(tmp, hdr, hl);
    if (n) memcpy(tmp + hl, p, n);
    if (m) cymg_ws_mask(tmp + hl, n, m, 0);
    return cymg_send(c, tmp, hl + n);
  }
  size_t total = hl + n;
  if (n > c->send_limit || total > c->send_limit || c->send.len > c->send_limit - total)
    return CYMG_ELIMIT;
  int rc = cymg__iobuf_reserve(&c->send, total, 0);
  if (rc < 0) return rc;
  char *t = cymg__iobuf_tail(&c->send);
  memcpy(t, hdr, hl);
  memcpy(t + hl, p, n);
  if (m) cymg_ws_mask(t + hl, n, m, 0);
  c->send.len += total;
  c->sent_total += total;
  cymg__conn_update_io(c);
  return 0;
}

/* An upper bound of what n bytes may take once compressed and framed: checked
 * before compressing, because compressing moves the shared context forward and
 * a message that then fails to go out would leave the peer's context behind. */
static bool fits(const cymg_conn *c, size_t n) {
  uint64_t bound = (uint64_t) n + (n >> 10) + 64 + CYMG_WS_MAX_HEADER;
  return bound <= c->send_limit && c->send.len <= c->send_limit - bound;
}

static cymg__ws *open_ws(cymg_conn *c) {
  cymg__ws *ws = c ? cymg__ws_of(c) : NULL;
  return ws && ws->open ? ws : NULL;
}

/* Sends data (or one fragment of it) compressed when negotiated. */
static int send_data(cymg_conn *c, cymg__ws *ws, uint8_t flags, bool first, bool fin,
                     const void *p, size_t n) {
  if (!ws->pmd.on) return send_frame(c, ws, flags, p, n);
  if (!fits(c, n)) return CYMG_ELIMIT;
  ws->zout.len = 0;
  int rc = cymg__wsz_compress(ws->z, p, n, fin, &ws->zout);
  if (rc == 0) rc = send_frame(c, ws, (uint8_t) (flags | (first ? CYMG_WS_RSV1 : 0)),
                               ws->zout.buf, ws->zout.len);
  if (ws->zout.size > KEEP_INFLATED) cymg_buf_free(&ws->zout);
  if (rc < 0) {
    /* The compression context has moved on without the peer: the stream
     * cannot go on. */
    cymg__conn_fail_later(c, "WebSocket: compressed message could not be queued: %s",
                          cymg_strerror(rc));
  }
  return rc;
}

int cymg_ws_send(cymg_conn *c, const void *buf, size_t len, int op) {
  cymg__ws *ws = open_ws(c);
  if (ws == NULL || ws->close_sent) return CYMG_ESTATE;
  if (buf == NULL && len > 0) return CYMG_EINVAL;
  switch (op) {
    case CYMG_WS_OP_TEXT:
    case CYMG_WS_OP_BINARY:
      if (ws->send_op) return CYMG_ESTATE; /* fragments of another message are going out */
      return send_data(c, ws, (uint8_t) (CYMG_WS_FIN | op), true, true, buf, len);
    case CYMG_WS_OP_PING:
    case CYMG_WS_OP_PONG:
    case CYMG_WS_OP_CLOSE: {
      if (len > 125) return CYMG_EINVAL;
      int rc = send_frame(c, ws, (uint8_t) (CYMG_WS_FIN | op), buf, len);
      if (rc == 0 && op == CYMG_WS_OP_CLOSE) {
        ws->close_sent = true;
        cymg__ws_timer(c, ws, close_ms(ws));
      }
      return rc;
    }
    default: return CYMG_EINVAL;
  }
}

int cymg_ws_vprintf(cymg_conn *c, int op, const char *fmt, va_list ap) {
  cymg_buf b;
  cymg_buf_init(&b);
  int n = cymg_buf_vprintf(&b, fmt, ap);
  int rc = n < 0 ? n : cymg_ws_send(c, b.buf, b.len, op);
  cymg_buf_free(&b);
  return rc < 0 ? rc : n;
}

int cymg_ws_printf(cymg_conn *c, int op, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = cymg_ws_vprintf(c, op, fmt, ap);
  va_end(ap);
  return rc;
}

int cymg_ws_send_frag(cymg_conn *c, int op, const void *buf, size_t len, bool fin) {
  cymg__ws *ws = open_ws(c);
  if (ws == NULL || ws->close_sent) return CYMG_ESTATE;
  if (buf == NULL && len > 0) return CYMG_EINVAL;
  bool first = ws->send_op == 0;
  if (first) {
    if (op == CYMG_WS_OP_CONT) return CYMG_ESTATE;
    if (op != CYMG_WS_OP_TEXT && op != CYMG_WS_OP_BINARY) return CYMG_EINVAL;
  } else if (op != CYMG_WS_OP_CONT && op != ws->send_op) {
    return op == CYMG_WS_OP_TEXT || op == CYMG_WS_OP_BINARY ? CYMG_ESTATE : CYMG_EINVAL;
  }
  uint8_t flags = (uint8_t) ((first ? op : CYMG_WS_OP_CONT) | (fin ? CYMG_WS_FIN : 0));
  int rc = send_data(c, ws, flags, first, fin, buf, len);
  if (rc == 0) ws->send_op = fin ? 0 : (uint8_t) (first ? op : ws->send_op);
  return rc;
}

static bool code_ok(int code) {
  char p[2] = {(char) (code >> 8), (char) code};
  return code >= 0 && code <= 0xffff && cymg_ws_check_close(p, 2) == 0;
}

int cymg_ws_close(cymg_conn *c, int code, const char *reason) {
  cymg__ws *ws = open_ws(c);
  if (ws == NULL || ws->close_sent || (c->flags & CYMG__F_CLOSING)) return CYMG_ESTATE;
  size_t rlen = reason ? strlen(reason) : 0;
  if ((code == 0 && rlen) || (code != 0 && !code_ok(code)) || rlen > 123) return CYMG_EINVAL;
  uint8_t p[125];
  size_t n = 0;
  if (code) {
    p[0] = (uint8_t) (code >> 8);
    p[1] = (uint8_t) code;
    if (rlen) memcpy(p + 2, reason, rlen);
    n = 2 + rlen;
  }
  return cymg_ws_send(c, p, n, CYMG_WS_OP_CLOSE);
}

/* ---- receiving ---- */

/* Fails the connection (§7.1.7): a close frame with the code, ERROR for the
 * application, then TCP closes once the frame is out. */
static void fail(cymg_conn *c, cymg__ws *ws, int code, const char *why) {
  ws->failed = true;
  bool queued = true;
  if (!ws->close_sent && !(c->flags & CYMG__F_CLOSING)) {
    uint8_t p[2] = {(uint8_t) (code >> 8), (uint8_t) code};
    /* Not queued (send limit): TCP ends without it, at once. */
    queued = send_frame(c, ws, CYMG_WS_FIN | CYMG_WS_OP_CLOSE, p, 2) == 0;
    ws->close_sent = true;
  }
  char msg[160];
  snprintf(msg, sizeof(msg), "WebSocket: %s (closing with %d)", why, code);
  CYMG__DEBUG("conn %llu: %s", (unsigned long long) c->id, msg);
  cymg_call(c, CYMG_EV_ERROR, msg);
  if (queued) {
    cymg_drain(c);
  } else {
    cymg_close(c);
  }
}

static const char *rule_text(int code, const cymg_ws_frame *f, bool server) {
  unsigned op = CYMG_WS_OPCODE(f->flags);
  if (code == CYMG_WS_CLOSE_TOO_BIG) return "message larger than the limit";
  if (f->masked != server) return server ? "unmasked frame from a client" : "masked frame from the server";
  if (f->flags & (CYMG_WS_RSV2 | CYMG_WS_RSV3)) return "reserved bit set";
  if ((op > 2 && op < 8) || op > 10) return "unknown opcode";
  if (op >= 8) return "control frame fragmented, compressed or over 125 bytes";
  if (f->flags & CYMG_WS_RSV1) return "RSV1 set without compression or on a continuation";
  return "unexpected continuation or data frame (fragmentation out of order)";
}

/* Drops what has been parsed from the front of the receive buffer, keeping a
 * partial message at the front and what follows right behind it. */
static void tidy(cymg_conn *c, cymg__ws *ws) {
  if (ws->have == 0) {
    if (ws->raw) cymg_conn_consume(c, ws->raw);
    ws->raw = 0;
  } else if (ws->raw > ws->have) {
    char *buf = cymg__iobuf_data(&c->recv);
    bool was_full = c->recv.len >= c->recv_limit;
    memmove(buf + ws->have, buf + ws->raw, c->recv.len - ws->raw);
    c->recv.len -= ws->raw - ws->have;
    ws->raw = ws->have;
    if (was_full) cymg__conn_update_io(c);
  }
}

/* Hands a complete message over. Returns false when reading must stop. */
static bool deliver(cymg_conn *c, cymg__ws *ws, const char *p, size_t n) {
  cymg_ws_msg m = {cymg_str_n(p, n), (uint8_t) (CYMG_WS_FIN | ws->msg_flags)};
  if (ws->msg_flags & CYMG_WS_RSV1) {
    ws->inflated.len = 0;
    int rc = cymg__wsz_decompress(ws->z, p, n, true, max_msg(ws), &ws->inflated);
    if (rc == CYMG_ELIMIT) {
      fail(c, ws, CYMG_WS_CLOSE_TOO_BIG, "message inflates past the size limit");
      return false;
    } else if (rc < 0) {
      fail(c, ws, rc == CYMG_ENOMEM ? CYMG_WS_CLOSE_INTERNAL : CYMG_WS_CLOSE_INVALID_DATA,
           rc == CYMG_ENOMEM ? "out of memory inflating a message" : "corrupt compressed data");
      return false;
    }
    uint32_t st = 0;
    if (CYMG_WS_OPCODE(ws->msg_flags) == CYMG_WS_OP_TEXT &&
        (cymg_ws_utf8(&st, ws->inflated.buf, ws->inflated.len) < 0 || st != 0)) {
      fail(c, ws, CYMG_WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8");
      return false;
    }
    m.data = cymg_str_n(ws->inflated.buf, ws->inflated.len);
  }
  cymg_call(c, CYMG_EV_WS_MSG, &m);
  if (ws->inflated.size > KEEP_INFLATED) cymg_buf_free(&ws->inflated);
  return !(c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) && !ws->failed;
}

/* A control frame. Returns false when reading must stop. */
static bool control(cymg_conn *c, cymg__ws *ws, unsigned op, const char *p, size_t n) {
  cymg_ws_msg m = {cymg_str_n(p, n), (uint8_t) (CYMG_WS_FIN | op)};
  if (op == CYMG_WS_OP_CLOSE) {
    int bad = cymg_ws_check_close(p, n);
    if (bad) {
      fail(c, ws, bad, bad == CYMG_WS_CLOSE_PROTOCOL ? "invalid close code or payload"
                                                     : "close reason is not valid UTF-8");
      return false;
    }
    ws->close_rcvd = true;
    cymg_call(c, CYMG_EV_WS_CTL, &m);
    if (c->flags & CYMG__F_CLOSING) return false;
    if (!ws->close_sent) {
      /* Echo the status code (§5.5.1); an empty close is answered empty. */
      int rc = send_frame(c, ws, CYMG_WS_FIN | CYMG_WS_OP_CLOSE, p, n >= 2 ? 2 : 0);
      if (rc < 0) {
        cymg_error(c, "WebSocket: close frame could not be queued: %s", cymg_strerror(rc));
        return false;
      }
      ws->close_sent = true;
    }
    if (ws->is_server) {
      cymg_drain(c); /* the server ends TCP first (§7.1.1) */
    } else {
      cymg__ws_timer(c, ws, close_ms(ws)); /* wait for the server to end TCP */
    }
    return false;
  }
  if (op == CYMG_WS_OP_PING && !ws->close_sent) {
    /* A pong that cannot be queued leaves the peer's ping unanswered for good
     * (with backpressure this only happens below a tiny send limit). */
    int rc = send_frame(c, ws, CYMG_WS_FIN | CYMG_WS_OP_PONG, p, n);
    if (rc < 0) {
      cymg_error(c, "WebSocket: pong could not be queued: %s", cymg_strerror(rc));
      return false;
    }
  }
  cymg_call(c, CYMG_EV_WS_CTL, &m);
  return !(c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) && !ws->failed;
}

/* Frames already received are not processed while the peer leaves our output
 * unread above the high-water mark: each (a ping's pong, an echo) would add to
 * it. Reading resumes on WRITE, once the output drains. */
void cymg__ws_read(cymg_conn *c, cymg__ws *ws) {
  while (!(c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) && !ws->failed && !ws->close_rcvd &&
         cymg__ws_of(c) == ws && !cymg__conn_out_full(c)) {
    char *buf = cymg__iobuf_data(&c->recv);
    size_t len = c->recv.len;
    if (ws->raw >= len) break;
    cymg_ws_frame f;
    int hl = cymg_ws_parse_header(buf + ws->raw, len - ws->raw, &f);
    if (hl == CYMG_EAGAIN) break;
    if (hl < 0) {
      fail(c, ws, CYMG_WS_CLOSE_PROTOCOL, "64-bit frame length with the top bit set");
      return;
    }
    if (!ws->hdr_checked) {
      int code = cymg_ws_reader_frame(&ws->rd, &f);
      if (code) {
        fail(c, ws, code, rule_text(code, &f, ws->is_server));
        return;
      }
      ws->hdr_checked = true;
    }
    unsigned op = CYMG_WS_OPCODE(f.flags);
    bool fin = (f.flags & CYMG_WS_FIN) != 0;
    if (op == CYMG_WS_OP_TEXT || op == CYMG_WS_OP_BINARY) {
      ws->msg_flags = (uint8_t) (op | (f.flags & CYMG_WS_RSV1));
      ws->utf8 = 0;
    }
    size_t avail = len - ws->raw - (size_t) hl;
    if ((uint64_t) avail < f.len) break; /* the frame is incomplete */
    ws->hdr_checked = false;
    char *p = buf + ws->raw + hl;
    size_t n = (size_t) f.len;
    if (f.masked) cymg_ws_mask(p, n, f.mask, 0);
    ws->raw += (size_t) hl + n;
    if (op >= 8) {
      if (!control(c, ws, op, p, n)) return;
      continue;
    }
    /* Text is checked frame by frame, so a bad fragment fails at once rather
     * than after the whole message has been buffered. */
    if (ws->msg_flags == CYMG_WS_OP_TEXT &&
        (cymg_ws_utf8(&ws->utf8, p, n) < 0 || (fin && ws->utf8 != 0))) {
      fail(c, ws, CYMG_WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8");
      return;
    }
    if (fin && ws->have == 0) {
      /* Unfragmented: the payload is delivered where it lies. */
      if (!deliver(c, ws, p, n)) return;
      tidy(c, ws);
      continue;
    }
    memmove(buf + ws->have, p, n);
    ws->have += n;
    if (fin) {
      size_t have = ws->have;
      ws->have = 0;
      if (!deliver(c, ws, buf, have)) return;
      tidy(c, ws);
    }
  }
  if (cymg__ws_of(c) == ws && !(c->flags & CYMG__F_CLOSING)) tidy(c, ws);
}

/* ---- the protocol hooks ---- */

static bool ws_event(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  cymg__ws *ws = cymg_conn_proto_state(c);
  if (ws == NULL) return false;
  if (ws->inner && (ev == CYMG_EV_WS_OPEN || ev == CYMG_EV_WS_MSG || ev == CYMG_EV_WS_CTL ||
                    ev == CYMG_EV_WRITE || ev == CYMG_EV_CLOSE) &&
      ws->inner->on_event(c, ev, ev_data))
    return true;
  if (!ws->open) return cymg__ws_client_event(c, ws, ev);
  switch (ev) {
    case CYMG_EV_READ:
      ws->last_rx = c->mgr->now;
      ws->ping_out = false;
      cymg__ws_read(c, ws);
      return true;
    case CYMG__EV_RESUME:
      if (ws->old_proto) {
        if (ws->old_proto->free_state && ws->old_state) ws->old_proto->free_state(ws->old_state);
        ws->old_proto = NULL;
        ws->old_state = NULL;
      }
      cymg__ws_read(c, ws);
      return true;
    case CYMG_EV_WRITE:
      /* Frames left unread by backpressure: on, if the output has drained. */
      if (c->recv.len > ws->raw && !ws->close_rcvd && !cymg__conn_out_full(c)) cymg__ws_read(c, ws);
      return false;
    default: return false;
  }
}

const cymg_proto cymg__ws_proto = {"websocket", ws_event, cymg__ws_free, NULL};

/* ---- options and accessors ---- */

/* The settings c would use: an open or opening WebSocket's, or the ones an HTTP
 * listener or server connection keeps for a later upgrade. */
static cymg__ws_conf *conf_of(cymg_conn *c, cymg__ws **wsp, int *rc) {
  *wsp = NULL;
  *rc = CYMG_ESTATE;
  if (c == NULL) return NULL;
  cymg__ws *ws = cymg__ws_of(c);
  if (ws) {
    *wsp = ws;
    return &ws->conf;
  }
  cymg__http *h = cymg__http_of(c);
  if (h == NULL || !h->is_server) return NULL;
  /* Shared with the listener's other connections until changed. */
  cymg__http_conf *conf = cymg__http_conf_mut(h);
  if (conf == NULL) *rc = CYMG_ENOMEM;
  return conf ? &conf->ws : NULL;
}

int cymg_ws_set_max_message(cymg_conn *c, uint64_t bytes) {
  cymg__ws *ws;
  int rc;
  cymg__ws_conf *conf = conf_of(c, &ws, &rc);
  if (conf == NULL) return rc;
  if (bytes == 0) return 0;
  conf->max_msg = bytes;
  if (ws && ws->open) {
    ws->rd.max_msg = wire_max(ws);
    set_recv_limit(c, ws);
  }
  return 0;
}

int cymg_ws_set_close_timeout(cymg_conn *c, uint32_t ms) {
  cymg__ws *ws;
  int rc;
  cymg__ws_conf *conf = conf_of(c, &ws, &rc);
  if (conf == NULL) return rc;
  if (ms) conf->close_ms = ms;
  return 0;
}

int cymg_ws_set_ping_interval(cymg_conn *c, uint32_t ms) {
  cymg__ws *ws;
  int rc;
  cymg__ws_conf *conf = conf_of(c, &ws, &rc);
  if (conf == NULL) return rc;
  conf->ping_ms = ms;
  if (ws && ws->open && !ws->close_sent && !ws->close_rcvd) {
    ws->last_rx = cymg__millis();
    ws->ping_out = false;
    cymg__ws_timer(c, ws, ms);
  }
  return 0;
}

int cymg_ws_set_deflate(cymg_conn *c, bool on, unsigned flags, int server_bits, int client_bits) {
  cymg__ws *ws;
  int rc;
  cymg__ws_conf *conf = conf_of(c, &ws, &rc);
  if (conf == NULL) return rc;
  if (ws && (ws->open || ws->req_sent)) return CYMG_ESTATE;
  if ((server_bits && (server_bits < 8 || server_bits > 15)) ||
      (client_bits && (client_bits < 8 || client_bits > 15)) ||
      (flags & ~(CYMG_WS_DEFLATE_SERVER_NO_CONTEXT | CYMG_WS_DEFLATE_CLIENT_NO_CONTEXT)))
    return CYMG_EINVAL;
  conf->deflate = on;
  conf->deflate_flags = (uint8_t) flags;
  conf->server_bits = (uint8_t) server_bits;
  conf->client_bits = (uint8_t) client_bits;
  return 0;
}

int cymg_ws_set_request_headers(cymg_conn *c, const char *headers) {
  cymg__ws *ws = c ? cymg__ws_of(c) : NULL;
  if (ws == NULL || ws->is_server || ws->req_sent) return CYMG_ESTATE;
  char *copy = NULL;
  if (headers && *headers && (copy = strdup(headers)) == NULL) return CYMG_ENOMEM;
  free(ws->req_headers);
  ws->req_headers = copy;
  return 0;
}

bool cymg_conn_is_ws(const cymg_conn *c) {
  return c && cymg__ws_of(c) != NULL;
}

bool cymg_ws_is_deflate(const cymg_conn *c) {
  cymg__ws *ws = c ? cymg__ws_of(c) : NULL;
  return ws && ws->open && ws->pmd.on;
}
