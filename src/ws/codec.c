/* The WebSocket codec (RFC 6455): frame headers, masking, the receive-side
 * rules, UTF-8 validation, close payloads, the opening handshake's checks.
 * No I/O, no allocation (the handshake's SHA-1 aside). */
#include <string.h>

#include "cymg/base64.h"
#include "cymg/error.h"
#include "cymg/hash.h"
#include "cymg/str.h"
#include "cymg/ws.h"

/* ---- frame headers ---- */

int cymg_ws_parse_header(const void *buf, size_t len, cymg_ws_frame *f) {
  const uint8_t *p = buf;
  if (len < 2) return CYMG_EAGAIN;
  size_t need = 2;
  uint8_t l7 = p[1] & 0x7f;
  if (l7 == 126) need += 2;
  if (l7 == 127) need += 8;
  if (p[1] & 0x80) need += 4;
  if (len < need) return CYMG_EAGAIN;
  uint64_t n = l7;
  size_t i = 2;
  if (l7 == 126) {
    n = (uint64_t) p[2] << 8 | p[3];
    i = 4;
  } else if (l7 == 127) {
    if (p[2] & 0x80) return CYMG_EPARSE; /* §5.2: the most significant bit MUST be 0 */
    n = 0;
    for (i = 2; i < 10; i++) n = n << 8 | p[i];
  }
  f->flags = p[0];
  f->masked = (p[1] & 0x80) != 0;
  f->len = n;
  if (f->masked) {
    memcpy(f->mask, p + i, 4);
  } else {
    memset(f->mask, 0, 4);
  }
  return (int) need;
}

size_t cymg_ws_encode_header(uint8_t out[CYMG_WS_MAX_HEADER], uint8_t flags, uint64_t len,
                             const uint8_t mask[4]) {
  size_t i = 2;
  out[0] = flags;
  uint8_t m = mask ? 0x80 : 0;
  if (len < 126) {
    out[1] = (uint8_t) (m | len);
  } else if (len <= 0xffff) {
    out[1] = m | 126;
    out[2] = (uint8_t) (len >> 8);
    out[3] = (uint8_t) len;
    i = 4;
  } else {
    out[1] = m | 127;
    for (int k = 0; k < 8; k++) out[2 + k] = (uint8_t) (len >> (56 - 8 * k));
    i = 10;
  }
  if (mask) {
    memcpy(out + i, mask, 4);
    i += 4;
  }
  return i;
}

void cymg_ws_mask(void *buf, size_t len, const uint8_t mask[4], uint64_t offset) {
  uint8_t *p = buf;
  uint8_t k[8];
  for (int i = 0; i < 8; i++) k[i] = mask[(offset + (uint64_t) i) & 3];
  size_t i = 0;
  /* Eight bytes at a time: the key rotated to this offset repeats every 4, so
   * one 64-bit word of it masks any aligned run. memcpy keeps it alignment-safe
   * and compiles to plain loads and stores. */
  uint64_t kw;
  memcpy(&kw, k, 8);
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w ^= kw;
    memcpy(p + i, &w, 8);
  }
  for (; i < len; i++) p[i] ^= k[i & 7];
}

/* ---- the receive-side rules ---- */

void cymg_ws_reader_init(cymg_ws_reader *r, bool server, bool deflate, uint64_t max_msg) {
  memset(r, 0, sizeof(*r));
  r->server = server;
  r->deflate = deflate;
  r->max_msg = max_msg ? max_msg : UINT64_MAX;
}

bool cymg_ws_reader_in_message(const cymg_ws_reader *r) {
  return r->op != 0;
}

int cymg_ws_reader_frame(cymg_ws_reader *r, const cymg_ws_frame *f) {
  unsigned op = CYMG_WS_OPCODE(f->flags);
  bool fin = (f->flags & CYMG_WS_FIN) != 0;
  if (f->masked != r->server) return CYMG_WS_CLOSE_PROTOCOL; /* §5.1 both ways */
  if (f->flags & (CYMG_WS_RSV2 | CYMG_WS_RSV3)) return CYMG_WS_CLOSE_PROTOCOL;
  if (op >= 8) {
    if (op > CYMG_WS_OP_PONG) return CYMG_WS_CLOSE_PROTOCOL;
    /* §5.5: control frames are never fragmented, never over 125 bytes, and
     * RFC 7692 §6 never compresses them. */
    if (!fin || f->len > 125 || (f->flags & CYMG_WS_RSV1)) return CYMG_WS_CLOSE_PROTOCOL;
    return 0;
  }
  if (op > CYMG_WS_OP_BINARY) return CYMG_WS_CLOSE_PROTOCOL;
  if (op == CYMG_WS_OP_CONT) {
    if (r->op == 0) return CYMG_WS_CLOSE_PROTOCOL;      /* nothing to continue */
    if (f->flags & CYMG_WS_RSV1) return CYMG_WS_CLOSE_PROTOCOL; /* RSV1 is per message */
  } else {
    if (r->op != 0) return CYMG_WS_CLOSE_PROTOCOL; /* a new message inside one */
    if ((f->flags & CYMG_WS_RSV1) && !r->deflate) return CYMG_WS_CLOSE_PROTOCOL;
    r->op = (uint8_t) op;
    r->msg_len = 0;
    r->compressed = (f->flags & CYMG_WS_RSV1) != 0;
  }
  if (f->len > r->max_msg - r->msg_len) return CYMG_WS_CLOSE_TOO_BIG;
  r->msg_len += f->len;
  if (fin) r->op = 0;
  return 0;
}

/* ---- UTF-8 ----
 * The state packs what the next byte may be: bits 0-1 how many continuation
 * bytes are still due, bits 8-15 and 16-23 the lowest and highest value the
 * next one may take (the first continuation byte is narrower after E0, ED, F0
 * and F4: that is how overlongs, surrogates and code points past U+10FFFF are
 * refused). */

static uint32_t utf8_start(uint8_t b) {
#define U8(need, lo, hi) ((uint32_t) (need) | (uint32_t) (lo) << 8 | (uint32_t) (hi) << 16)
  if (b >= 0xc2 && b <= 0xdf) return U8(1, 0x80, 0xbf);
  if (b == 0xe0) return U8(2, 0xa0, 0xbf);
  if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) return U8(2, 0x80, 0xbf);
  if (b == 0xed) return U8(2, 0x80, 0x9f);
  if (b == 0xf0) return U8(3, 0x90, 0xbf);
  if (b >= 0xf1 && b <= 0xf3) return U8(3, 0x80, 0xbf);
  if (b == 0xf4) return U8(3, 0x80, 0x8f);
  return 0xffffffffu; /* 80-C1, F5-FF never start a character */
}

int cymg_ws_utf8(uint32_t *state, const void *buf, size_t len) {
  const uint8_t *p = buf;
  uint32_t st = *state;
  if (st == 0xffffffffu) return CYMG_EPARSE;
  size_t i = 0;
  while (i < len) {
    if (st == 0) {
      /* ASCII runs eight bytes at a time: most text is mostly ASCII. */
      while (i + 8 <= len) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i == len) break;
      uint8_t b = p[i++];
      if (b < 0x80) continue;
      st = utf8_start(b);
      if (st == 0xffffffffu) break;
      continue;
    }
    uint8_t b = p[i++];
    if (b < ((st >> 8) & 0xff) || b > ((st >> 16) & 0xff)) {
      st = 0xffffffffu;
      break;
    }
    st = (st & 3) - 1;
    if (st) st |= U8(0, 0x80, 0xbf);
  }
#undef U8
  *state = st;
  return st == 0xffffffffu ? CYMG_EPARSE : 0;
}

/* ---- close payloads ---- */

static bool close_code_ok(unsigned code) {
  if (code >= 3000 && code <= 4999) return true; /* registered / private use */
  if (code < 1000 || code > 1014) return false;
  return code != 1004 && code != 1005 && code != 1006; /* reserved, never on the wire */
}

int cymg_ws_check_close(const void *payload, size_t len) {
  const uint8_t *p = payload;
  if (len == 0) return 0;
  if (len == 1) return CYMG_WS_CLOSE_PROTOCOL;
  if (!close_code_ok((unsigned) p[0] << 8 | p[1])) return CYMG_WS_CLOSE_PROTOCOL;
  uint32_t st = 0;
  if (cymg_ws_utf8(&st, p + 2, len - 2) < 0 || st != 0) return CYMG_WS_CLOSE_INVALID_DATA;
  return 0;
}

int cymg_ws_close_code(cymg_str payload) {
  if (payload.len < 2) return CYMG_WS_CLOSE_NO_STATUS;
  const uint8_t *p = (const uint8_t *) payload.buf;
  return (int) ((unsigned) p[0] << 8 | p[1]);
}

/* ---- the opening handshake ---- */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int cymg_ws_accept_key(cymg_str key, char out[29]) {
  char in[128 + sizeof(WS_GUID)];
  if (key.len > 128) return CYMG_EINVAL;
  memcpy(in, key.buf, key.len);
  memcpy(in + key.len, WS_GUID, sizeof(WS_GUID) - 1);
  uint8_t digest[CYMG_SHA1_LEN];
  int rc = cymg_sha1(cymg_str_n(in, key.len + sizeof(WS_GUID) - 1), digest);
  if (rc < 0) return rc;
  cymg_buf b;
  cymg_buf_init(&b);
  rc = cymg_base64_encode(cymg_str_n(digest, sizeof(digest)), &b);
  if (rc == 28) memcpy(out, b.buf, 29);
  cymg_buf_free(&b);
  return rc == 28 ? 0 : (rc < 0 ? rc : CYMG_EPARSE);
}

/* True when some header `name` holds `token` in its comma-separated list
 * (ASCII case-insensitive). Every field with that name counts (§4.2.1 lets
 * Connection be split over several lines). */
static bool has_token(const cymg_http_msg *m, const char *name, const char *token) {
  cymg_str n = cymg_str_c(name), t = cymg_str_c(token);
  for (size_t i = 0; i < m->num_headers; i++) {
    if (!cymg_str_case_eq(m->headers[i].name, n)) continue;
    cymg_str rest = m->headers[i].value, part;
    while (cymg_str_split(&rest, ',', &part))
      if (cymg_str_case_eq(cymg_str_trim(part), t)) return true;
  }
  return false;
}

/* The one value of header `name`, or an empty view when absent or repeated. */
static cymg_str single(const cymg_http_msg *m, const char *name, int *count) {
  cymg_str n = cymg_str_c(name), v = {NULL, 0};
  *count = 0;
  for (size_t i = 0; i < m->num_headers; i++) {
    if (cymg_str_case_eq(m->headers[i].name, n)) {
      v = m->headers[i].value;
      (*count)++;
    }
  }
  return *count == 1 ? v : cymg_str_n(NULL, 0);
}

static int refuse(int *status, const char **why, int st, const char *text) {
  if (status) *status = st;
  if (why) *why = text;
  return CYMG_EPROTO;
}

int cymg_ws_check_request(const cymg_http_msg *msg, int *status, const char **why) {
  int n;
  if (!cymg_str_eq(msg->method, cymg_str_c("GET")))
    return refuse(status, why, 400, "WebSocket upgrade must use GET");
  if (msg->flags & CYMG_HTTP_F_HTTP10)
    return refuse(status, why, 400, "WebSocket upgrade needs HTTP/1.1");
  if (!has_token(msg, "Upgrade", "websocket"))
    return refuse(status, why, 400, "missing 'Upgrade: websocket'");
  if (!has_token(msg, "Connection", "upgrade"))
    return refuse(status, why, 400, "missing 'Connection: Upgrade'");
  cymg_str ver = single(msg, "Sec-WebSocket-Version", &n);
  if (n == 0) return refuse(status, why, 400, "missing Sec-WebSocket-Version");
  if (!cymg_str_eq(ver, cymg_str_c("13")))
    return refuse(status, why, 426, "unsupported Sec-WebSocket-Version (this server speaks 13)");
  cymg_str key = single(msg, "Sec-WebSocket-Key", &n);
  if (n != 1) return refuse(status, why, 400, "missing or repeated Sec-WebSocket-Key");
  /* base64 of 16 bytes is 24 characters ending in "==" (§4.1); the strict
   * decoder checks the rest. Host is the HTTP parser's business. */
  if (key.len != 24 || key.buf[22] != '=' || key.buf[23] != '=')
    return refuse(status, why, 400, "Sec-WebSocket-Key is not base64 of 16 bytes");
  cymg_buf dec;
  cymg_buf_init(&dec);
  int rc = cymg_base64_decode(key, &dec);
  cymg_buf_free(&dec);
  if (rc != 16) return refuse(status, why, 400, "Sec-WebSocket-Key is not base64 of 16 bytes");
  if (why) *why = "";
  if (status) *status = 101;
  return 0;
}

int cymg_ws_check_response(const cymg_http_msg *msg, cymg_str key, const char **why) {
  const char *w = "";
  int n;
  if (msg->status != 101) {
    w = "server did not switch protocols (status is not 101)";
  } else if (!has_token(msg, "Upgrade", "websocket")) {
    w = "response lacks 'Upgrade: websocket'";
  } else if (!has_token(msg, "Connection", "upgrade")) {
    w = "response lacks 'Connection: Upgrade'";
  } else {
    char want[29];
    cymg_str got = single(msg, "Sec-WebSocket-Accept", &n);
    if (cymg_ws_accept_key(key, want) < 0 || n != 1 || !cymg_str_eq(got, cymg_str_c(want)))
      w = "wrong or missing Sec-WebSocket-Accept";
  }
  if (why) *why = w;
  return *w ? CYMG_EPROTO : 0;
}

int cymg_ws_select_protocol(const cymg_http_msg *msg, const char *supported, cymg_str *out) {
  cymg_str n = cymg_str_c("Sec-WebSocket-Protocol");
  for (size_t i = 0; supported && i < msg->num_headers; i++) {
    if (!cymg_str_case_eq(msg->headers[i].name, n)) continue;
    cymg_str offered = msg->headers[i].value, o;
    while (cymg_str_split(&offered, ',', &o)) {
      o = cymg_str_trim(o);
      if (o.len == 0) continue;
      cymg_str ours = cymg_str_c(supported), s;
      while (cymg_str_split(&ours, ',', &s)) {
        if (cymg_str_eq(cymg_str_trim(s), o)) { /* subprotocol names are case-sensitive */
          *out = o;
          return 0;
        }
      }
    }
  }
  return CYMG_ENOTFOUND;
}
