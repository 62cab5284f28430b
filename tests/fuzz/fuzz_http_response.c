/* Fuzzes cymg_http_parse_response (harness: fuzz_http_head.h). */
#define PARSE_HEAD cymg_http_parse_response
#include "fuzz_http_head.h"

static void check_side(const cymg_http_msg *m, const char *b, size_t n) {
  CHECK(m->status >= 100 && m->status <= 999);
  in_input(m->reason, b, n);
  int kind = cymg_http_body_kind(m, true, cymg_str_c("GET"));
  CHECK(kind >= CYMG_HTTP_BODY_NONE && kind <= CYMG_HTTP_BODY_CLOSE);
  CHECK(cymg_http_body_kind(m, true, cymg_str_c("HEAD")) == CYMG_HTTP_BODY_NONE);
  (void) cymg_http_status_reason(m->status);
}
