/* Fuzzes the WebSocket frame reader as the connection layer drives it: header
 * parsing, the receive rules for both roles, unmasking, reassembly, UTF-8 of
 * text, control frame payloads, and (when the first byte says so) inflating
 * compressed messages under a size limit. No crash, no over-read (the input sits
 * in an exactly-sized heap buffer), and the codec's own invariants hold. */
#include <stdlib.h>
#include <string.h>

#include "ws/ws_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)       \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

#define MAX_MSG 65536

static void run(const uint8_t *in, size_t n, bool server, bool deflate) {
  cymg_ws_reader r;
  cymg_ws_reader_init(&r, server, deflate, MAX_MSG);
  cymg__wsz *z = NULL;
  cymg__ws_pmd pmd = {true, false, false, 0, 0};
  if (deflate) CHECK(cymg__wsz_new(&z, &pmd, server) == 0);
  uint8_t *msg = malloc(MAX_MSG + 1);
  size_t have = 0;
  uint32_t utf8 = 0;
  uint8_t op = 0;
  bool compressed = false;
  cymg_buf out = {NULL, 0, 0};
  size_t off = 0;
  while (off < n) {
    cymg_ws_frame f;
    int hl = cymg_ws_parse_header(in + off, n - off, &f);
    if (hl < 0) {
      CHECK(hl == CYMG_EAGAIN || hl == CYMG_EPARSE);
      break;
    }
    CHECK(hl >= 2 && hl <= CYMG_WS_MAX_HEADER && (size_t) hl <= n - off);
    /* Re-encoding the header gives the same frame (lengths may be shorter). */
    uint8_t enc[CYMG_WS_MAX_HEADER];
    size_t el = cymg_ws_encode_header(enc, f.flags, f.len, f.masked ? f.mask : NULL);
    cymg_ws_frame g;
    CHECK(cymg_ws_parse_header(enc, el, &g) == (int) el && g.len == f.len && g.flags == f.flags);
    CHECK(el <= (size_t) hl);
    int code = cymg_ws_reader_frame(&r, &f);
    if (code) {
      CHECK(code == 1002 || code == 1009);
      break;
    }
    if (f.len > n - off - (size_t) hl) break; /* incomplete */
    uint8_t *p = malloc(f.len ? f.len : 1);
    memcpy(p, in + off + hl, f.len);
    if (f.masked) cymg_ws_mask(p, f.len, f.mask, 0);
    off += (size_t) hl + f.len;
    unsigned o = CYMG_WS_OPCODE(f.flags);
    if (o >= 8) {
      CHECK(f.len <= 125);
      if (o == CYMG_WS_OP_CLOSE) {
        int cc = cymg_ws_check_close(p, f.len);
        CHECK(cc == 0 || cc == 1002 || cc == 1007);
        (void) cymg_ws_close_code(cymg_str_n(p, f.len));
      }
      free(p);
      continue;
    }
    if (o != CYMG_WS_OP_CONT) {
      op = (uint8_t) o;
      compressed = (f.flags & CYMG_WS_RSV1) != 0;
      CHECK(!compressed || deflate);
      have = 0;
      utf8 = 0;
    }
    CHECK(have + f.len <= MAX_MSG);
    memcpy(msg + have, p, f.len);
    have += f.len;
    free(p);
    if (op == CYMG_WS_OP_TEXT && !compressed && cymg_ws_utf8(&utf8, msg + have - f.len, f.len) < 0)
      break;
    if (!(f.flags & CYMG_WS_FIN)) continue;
    CHECK(!cymg_ws_reader_in_message(&r));
    if (compressed) {
      out.len = 0;
      int rc = cymg__wsz_decompress(z, msg, have, true, MAX_MSG, &out);
      CHECK(rc == 0 || rc == CYMG_ELIMIT || rc == CYMG_EPARSE);
      if (rc < 0) break;
      CHECK(out.len <= MAX_MSG);
      uint32_t st = 0;
      (void) cymg_ws_utf8(&st, out.buf, out.len);
    }
  }
  cymg_buf_free(&out);
  free(msg);
  cymg__wsz_free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  /* The first byte picks the role and whether compression was negotiated. */
  uint8_t mode = data[0];
  uint8_t *in = malloc(size - 1 ? size - 1 : 1);
  memcpy(in, data + 1, size - 1);
  run(in, size - 1, mode & 1, (mode & 2) != 0);
  free(in);
  return 0;
}
