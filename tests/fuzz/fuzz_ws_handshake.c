/* Fuzzes the WebSocket opening handshake checks: an HTTP request through
 * cymg_ws_check_request, subprotocol selection and the server's
 * permessage-deflate negotiation; the same bytes as a response through
 * cymg_ws_check_response and the client's check of the extension answer. A
 * negotiated answer must be one the client side accepts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)       \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

#define MAX_HDRS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *b = malloc(size ? size : 1);
  memcpy(b, data, size);
  cymg_http_header h[MAX_HDRS];
  cymg_http_msg m;
  cymg__ws_conf conf = {.deflate = true};
  if (size > 0) {
    conf.deflate_flags = (uint8_t) (data[0] & 3);
    conf.server_bits = (uint8_t) (data[0] >> 4 < 8 ? 0 : data[0] >> 4);
  }
  if (cymg_http_parse_request(b, size, &m, h, MAX_HDRS, NULL) > 0) {
    int status = 0;
    const char *why = NULL;
    int rc = cymg_ws_check_request(&m, &status, &why);
    CHECK(why != NULL);
    CHECK(rc == 0 ? status == 101 : (rc == CYMG_EPROTO && (status == 400 || status == 426)));
    cymg_str sel;
    if (cymg_ws_select_protocol(&m, "chat, superchat,x", &sel) == 0)
      CHECK(sel.len > 0 && sel.buf >= b && sel.buf + sel.len <= b + size);
    cymg__ws_pmd pmd;
    cymg_buf resp = {NULL, 0, 0};
    CHECK(cymg__ws_pmd_accept(&m, &conf, &pmd, &resp) == 0);
    CHECK(pmd.on == (resp.len > 0));
    if (pmd.on) {
      CHECK(pmd.server_bits == 0 || (pmd.server_bits >= 8 && pmd.server_bits <= 15));
      CHECK(pmd.client_bits == 0 || (pmd.client_bits >= 8 && pmd.client_bits <= 15));
      /* Whatever we answer, a client that made a plain offer accepts. */
      char *r = malloc(resp.len + 64);
      int rl = snprintf(r, resp.len + 64, "HTTP/1.1 101 OK\r\n%s\r\n", resp.buf);
      cymg_http_header rh[8];
      cymg_http_msg rm;
      CHECK(cymg_http_parse_response(r, (size_t) rl, &rm, rh, 8, NULL) > 0);
      cymg__ws_conf plain = {.deflate = true};
      cymg__ws_pmd back;
      const char *w;
      CHECK(cymg__ws_pmd_check(&rm, &plain, &back, &w) == 0);
      cymg__wsz *z;
      CHECK(cymg__wsz_new(&z, &pmd, true) == 0);
      cymg__wsz_free(z);
      free(r);
    }
    cymg_buf_free(&resp);
  }
  if (cymg_http_parse_response(b, size, &m, h, MAX_HDRS, NULL) > 0) {
    const char *why = NULL;
    int rc = cymg_ws_check_response(&m, cymg_str_c("dGhlIHNhbXBsZSBub25jZQ=="), &why);
    CHECK(why != NULL && (rc == 0 || rc == CYMG_EPROTO));
    cymg__ws_pmd pmd;
    rc = cymg__ws_pmd_check(&m, &conf, &pmd, &why);
    CHECK(rc == 0 || (rc == CYMG_EPROTO && why && *why));
    if (rc == 0 && pmd.on) {
      cymg__wsz *z;
      CHECK(cymg__wsz_new(&z, &pmd, false) == 0);
      cymg__wsz_free(z);
    }
  }
  free(b);
  return 0;
}
