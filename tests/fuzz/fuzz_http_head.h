/* The harness shared by the request and response fuzz targets: no crash or
 * over-read on any input (the input sits in an exactly-sized heap buffer under
 * ASan), every view lies inside the input, and truncations never disagree with
 * the whole input. A target defines PARSE_HEAD (the parser) and check_side()
 * (what only its side guarantees), then includes this file. */
#include <stdlib.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HDRS 32
/* Not assert(): fuzz builds define NDEBUG. */
#define CHECK(c)       \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

static void in_input(cymg_str s, const char *b, size_t n) {
  if (s.len > 0) CHECK(s.buf >= b && s.buf + s.len <= b + n);
}

static void check_side(const cymg_http_msg *m, const char *b, size_t n);

static int parse(const uint8_t *data, size_t n, cymg_http_msg *m, cymg_http_header *h, int *why) {
  char *b = malloc(n ? n : 1);
  CHECK(b != NULL);
  memcpy(b, data, n);
  int rc = PARSE_HEAD(b, n, m, h, MAX_HDRS, why);
  if (rc > 0) {
    CHECK((size_t) rc <= n && *why == CYMG_HTTP_ERR_NONE);
    CHECK(m->head.buf + m->head.len == b + rc);
    in_input(m->method, b, n);
    in_input(m->uri, b, n);
    in_input(m->query, b, n);
    in_input(m->proto, b, n);
    in_input(m->target, b, n);
    in_input(m->head, b, n);
    CHECK(m->num_headers <= MAX_HDRS);
    for (size_t i = 0; i < m->num_headers; i++) {
      in_input(h[i].name, b, n);
      in_input(h[i].value, b, n);
      cymg_str v;
      (void) cymg_http_header_var(h[i].value, "charset", &v);
    }
    CHECK(!((m->flags & CYMG_HTTP_F_CHUNKED) && m->content_length >= 0));
    check_side(m, b, n);
    (void) cymg_http_get_header(m, "content-type");
  } else if (rc == CYMG_EAGAIN) {
    CHECK(*why == CYMG_HTTP_ERR_NONE);
  } else {
    CHECK(rc == CYMG_EPARSE || rc == CYMG_ELIMIT);
    CHECK(*why > CYMG_HTTP_ERR_NONE && *why < CYMG_HTTP_ERR_MAX_);
    (void) cymg_http_err_text(*why);
    (void) cymg_http_err_status(*why);
  }
  free(b);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cymg_http_msg m;
  cymg_http_header h[MAX_HDRS];
  int why, why2;
  int rc = parse(data, size, &m, h, &why);
  /* Two truncations: the last byte off, and a cut chosen by the input. */
  size_t cuts[2] = {size ? size - 1 : 0, size ? data[0] % size : 0};
  for (int i = 0; i < 2; i++) {
    int rc2 = parse(data, cuts[i], &m, h, &why2);
    if (rc > 0 && (size_t) rc <= cuts[i]) {
      CHECK(rc2 == rc);
    } else if (rc2 != CYMG_EAGAIN) {
      CHECK(rc2 == rc && why2 == why);
    }
  }
  return 0;
}
