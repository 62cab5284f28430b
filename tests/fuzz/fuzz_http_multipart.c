/* Fuzzes multipart parsing: the iterator over the whole body and the
 * incremental parser fed whole, split where the input says, and (for small
 * inputs) byte by byte must report the same parts and the same outcome. The
 * first byte picks the boundary and the split; the rest is the body, in an
 * exactly-sized heap buffer. */
#include <stdlib.h>
#include <string.h>

#include "cymg/error.h"
#include "http/static_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)       \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

/* What a parse saw, reduced to a running hash per field so any number of
 * parts compares in constant space. */
typedef struct seen {
  int rc;
  size_t parts;
  uint64_t h;
  bool open;
  uint64_t body_h;  /* bytes of the open part's body so far */
  uint64_t pending; /* h with the open part's head mixed in */
} seen;

static uint64_t mix(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211u;
  return h;
}

static uint64_t mix_part(uint64_t h, const cymg_http_part *p) {
  size_t lens[3] = {p->name.len, p->filename.len, p->headers.len};
  h = mix(h, lens, sizeof(lens));
  h = mix(h, p->name.buf, p->name.len);
  h = mix(h, p->filename.buf, p->filename.len);
  return mix(h, p->headers.buf, p->headers.len);
}

static void iterate(cymg_str body, cymg_str bnd, seen *s) {
  memset(s, 0, sizeof(*s));
  cymg_http_part part;
  int64_t ofs = 0, prev = 0;
  for (;;) {
    ofs = cymg_http_multipart_next(body, bnd, ofs, &part);
    if (ofs <= 0) break;
    CHECK(ofs > prev && (uint64_t)ofs <= body.len);
    CHECK(part.body.buf >= body.buf && part.body.buf + part.body.len <= body.buf + body.len);
    prev = ofs;
    s->h = mix_part(s->h, &part);
    s->h = mix(s->h, &part.body.len, sizeof(part.body.len));
    s->h = mix(s->h, part.body.buf, part.body.len);
    s->parts++;
  }
  CHECK(ofs == 0 || ofs == CYMG_EPARSE);
  s->rc = (int)ofs;
}

static int on_begin(void *ctx, const cymg_http_part *p) {
  seen *s = ctx;
  CHECK(!s->open && p->body.len == 0);
  /* Counted only once the part ends: the iterator never returns a part whose
   * closing delimiter is missing. */
  s->pending = mix_part(s->h, p);
  s->open = true;
  s->body_h = 0;
  return 0;
}

static int on_data(void *ctx, const char *p, size_t n) {
  seen *s = ctx;
  CHECK(s->open && n > 0);
  (void)p;
  s->body_h += n; /* bytes of the open part so far */
  return 0;
}

/* Bodies are mixed at the end of a part, so the pieces are collected. */
typedef struct acc {
  seen s;
  unsigned char *buf;
  size_t len;
} acc;

static int acc_begin(void *ctx, const cymg_http_part *p) {
  acc *a = ctx;
  a->len = 0;
  return on_begin(&a->s, p);
}

static int acc_data(void *ctx, const char *p, size_t n) {
  acc *a = ctx;
  CHECK(on_data(&a->s, p, n) == 0);
  memcpy(a->buf + a->len, p, n);
  a->len += n;
  return 0;
}

static int acc_end(void *ctx) {
  acc *a = ctx;
  CHECK(a->s.open && a->s.body_h == a->len);
  a->s.h = mix(a->s.pending, &a->len, sizeof(a->len));
  a->s.h = mix(a->s.h, a->buf, a->len);
  a->s.open = false;
  a->s.parts++;
  return 0;
}

static const cymg__mp_cb cbs = {acc_begin, acc_data, acc_end};

static void feed(const uint8_t *body, size_t n, cymg_str bnd, size_t first, size_t step,
                 cymg__mp *mp, seen *out) {
  acc a;
  memset(&a, 0, sizeof(a));
  a.buf = malloc(n + 1);
  CHECK(a.buf != NULL);
  CHECK(cymg__mp_init(mp, bnd, &cbs, &a) == 0);
  size_t pos = 0;
  int rc = 0;
  while (pos < n && rc == 0) {
    size_t to = pos == 0 && first ? first : (step ? pos + step : n);
    if (to > n) to = n;
    char *piece = malloc(to - pos);
    CHECK(piece != NULL);
    memcpy(piece, body + pos, to - pos);
    rc = cymg__mp_feed(mp, piece, to - pos);
    free(piece);
    pos = to;
  }
  a.s.rc = cymg__mp_finish(mp);
  CHECK(rc == 0 || a.s.rc == rc);
  CHECK(a.s.rc == 0 || a.s.rc == CYMG_EPARSE);
  free(a.buf);
  *out = a.s;
}

static void same(const seen *a, const seen *b) {
  CHECK(a->rc == b->rc && a->parts == b->parts && a->h == b->h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const bounds[] = {"b", "XyZ", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a b",
                                       "--"};
  if (size < 1) return 0;
  cymg_str bnd = cymg_str_c(bounds[data[0] % 5]);
  const uint8_t *body = data + 1;
  size_t n = size - 1;
  char *copy = malloc(n ? n : 1);
  CHECK(copy != NULL);
  memcpy(copy, body, n);
  seen it, whole, split, bytes;
  iterate(cymg_str_n(copy, n), bnd, &it);
  cymg__mp *mp = malloc(sizeof(*mp));
  CHECK(mp != NULL);
  feed(body, n, bnd, 0, 0, mp, &whole);
  same(&it, &whole);
  feed(body, n, bnd, n ? (size_t)(data[0] >> 3) % n + 1 : 0, 0, mp, &split);
  same(&it, &split);
  if (n <= 1024) {
    feed(body, n, bnd, 0, 1, mp, &bytes);
    same(&it, &bytes);
  }
  free(mp);
  free(copy);
  return 0;
}
