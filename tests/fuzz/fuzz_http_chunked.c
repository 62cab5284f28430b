/* Fuzzes the chunked decoder: decoding the input whole, split at a point the
 * input picks, and (for small inputs) byte by byte must give the same data,
 * completion and consumed count, or the same error. Every call gets an
 * exactly-sized heap buffer, so ASan sees any access outside it. */
#include <stdlib.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): fuzz builds define NDEBUG. */
#define CHECK(c)       \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

typedef struct result {
  int rc, why;
  bool done;
  size_t consumed, out_len;
  char *out;
} result;

/* Feeds data in pieces of `step` bytes (0: all at once after the first `first`
 * bytes), re-presenting unconsumed bytes in front of each new piece. */
static void feed(const uint8_t *data, size_t size, size_t first, size_t step, uint64_t max,
                 result *r) {
  cymg_http_chunked st;
  cymg_http_chunked_init(&st, max);
  memset(r, 0, sizeof(*r));
  r->out = malloc(size + 1);
  CHECK(r->out != NULL);
  char *pend = NULL;
  size_t plen = 0, pos = 0;
  while (pos < size || plen > 0) {
    size_t to = pos == 0 && first ? first : (step ? pos + step : size);
    if (to > size) to = size;
    size_t blen = plen + (to - pos);
    char *b = malloc(blen ? blen : 1);
    CHECK(b != NULL);
    if (plen) memcpy(b, pend, plen);
    memcpy(b + plen, data + pos, to - pos);
    free(pend);
    pend = NULL;
    bool last_piece = to == size;
    pos = to;
    size_t dl = 0;
    int rc = cymg_http_chunked_decode(&st, b, blen, &dl);
    if (rc < 0) {
      CHECK(rc == CYMG_EPARSE || rc == CYMG_ELIMIT);
      r->rc = rc;
      r->why = cymg_http_chunked_reason(&st);
      CHECK(r->why > CYMG_HTTP_ERR_NONE && r->why < CYMG_HTTP_ERR_MAX_);
      free(b);
      break;
    }
    CHECK((size_t)rc <= blen && dl <= (size_t)rc);
    memcpy(r->out + r->out_len, b, dl);
    r->out_len += dl;
    r->consumed += (size_t)rc;
    plen = blen - (size_t)rc;
    if (plen) {
      CHECK(cymg_http_chunked_in_trailer(&st) || cymg_http_chunked_done(&st));
      pend = malloc(plen);
      CHECK(pend != NULL);
      memcpy(pend, b + rc, plen);
    }
    free(b);
    if (last_piece || cymg_http_chunked_done(&st)) break;
  }
  free(pend);
  r->done = cymg_http_chunked_done(&st);
  CHECK(r->consumed <= size && r->out_len <= r->consumed);
}

static void same(const result *a, const result *b) {
  CHECK(a->rc == b->rc && a->why == b->why);
  if (a->rc == 0) {
    CHECK(a->done == b->done && a->consumed == b->consumed && a->out_len == b->out_len);
    CHECK(memcmp(a->out, b->out, a->out_len) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The first byte picks a chunk-size limit and the split, so both get explored. */
  uint64_t max = size && (data[0] & 1) ? 64 : 0;
  result whole, split, bytes;
  feed(data, size, 0, 0, max, &whole);
  feed(data, size, size ? data[0] % size + 1 : 0, 0, max, &split);
  same(&whole, &split);
  free(split.out);
  if (size <= 512) {
    feed(data, size, 0, 1, max, &bytes);
    same(&whole, &bytes);
    free(bytes.out);
  }
  free(whole.out);
  return 0;
}
