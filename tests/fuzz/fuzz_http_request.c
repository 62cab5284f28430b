/* Fuzzes cymg_http_parse_request (harness: fuzz_http_head.h). */
#define PARSE_HEAD cymg_http_parse_request
#include "fuzz_http_head.h"

static void check_side(const cymg_http_msg *m, const char *b, size_t n) {
  (void) b, (void) n;
  /* A request body is never delimited by the close of the connection. */
  CHECK(cymg_http_body_kind(m, false, m->method) != CYMG_HTTP_BODY_CLOSE);
}
