/* Fuzzes the JSON validator, lookup, iteration and string codecs, checking that
 * they agree with each other and never hand out spans outside the input. */
#include <stdlib.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) \
  do {               \
    if (!(c)) abort(); \
  } while (0)

static bool inside(cymg_str in, cymg_str v) {
  return v.buf >= in.buf && v.len <= in.len && v.buf + v.len <= in.buf + in.len;
}

/* Walks every container below v (depth-bounded by the validator), checking each
 * element's span and type against a fresh validation of that span alone. */
static void walk(cymg_str in, cymg_str v, int type, int depth) {
  if (type != CYMG_JSON_OBJECT && type != CYMG_JSON_ARRAY) return;
  size_t off = 0;
  cymg_str k, e;
  int t, n = 0;
  while ((t = cymg_json_next(v, &off, &k, &e)) > 0) {
    CHECK(inside(v, e) && inside(in, e));
    CHECK(cymg_json_validate(e) == t);
    if (type == CYMG_JSON_OBJECT) {
      cymg_buf b = {NULL, 0, 0};
      CHECK(cymg_json_unescape(k, &b) >= 0);
      cymg_buf_free(&b);
    } else {
      CHECK(k.len == 0);
    }
    if (depth < 64) walk(in, e, t, depth + 1);
    CHECK(++n <= (int) v.len);
  }
  CHECK(t == 0); /* a validated container iterates cleanly */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *p = malloc(size ? size : 1);
  if (p == NULL) return 0;
  memcpy(p, data, size);
  cymg_str in = cymg_str_n(p, size), v;

  int type = cymg_json_validate(in);
  CHECK(type == CYMG_EPARSE || (type >= CYMG_JSON_NULL && type <= CYMG_JSON_OBJECT));
  CHECK(cymg_json_find(in, "$", &v) == type);
  static const char *const paths[] = {"$[0]", "$.a", "$[1].b", "$.a[0]", "$.a.b", "$[0][0]"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    int t = cymg_json_find(in, paths[i], &v);
    if (type < 0) {
      CHECK(t == CYMG_EPARSE);
    } else if (t > 0) {
      CHECK(inside(in, v));
      CHECK(cymg_json_validate(v) == t);
    } else {
      CHECK(t == CYMG_ENOTFOUND);
    }
    double d;
    int64_t x;
    bool b;
    cymg_buf buf = {NULL, 0, 0};
    (void) cymg_json_get_num(in, paths[i], &d);
    (void) cymg_json_get_int(in, paths[i], &x);
    (void) cymg_json_get_bool(in, paths[i], &b);
    int n = cymg_json_get_str(in, paths[i], &buf);
    CHECK(n < 0 ? buf.len == 0 : (size_t) n == buf.len);
    buf.len = 0;
    n = cymg_json_get_hex(in, paths[i], &buf);
    CHECK(n < 0 ? buf.len == 0 : (size_t) n == buf.len);
    buf.len = 0;
    n = cymg_json_get_b64(in, paths[i], &buf);
    CHECK(n < 0 ? buf.len == 0 : (size_t) n == buf.len);
    cymg_buf_free(&buf);
  }
  if (type > 0) {
    CHECK(cymg_json_find(in, "$", &v) == type);
    walk(in, v, type, 0);
  }

  /* Iteration over unvalidated input must stop with an error or cleanly. */
  size_t off = 0;
  cymg_str k, e;
  int t, steps = 0;
  while ((t = cymg_json_next(in, &off, &k, &e)) > 0) {
    CHECK(inside(in, e) && inside(in, k));
    CHECK(++steps <= (int) size);
  }

  /* Strings: unescape -> escape -> validate -> unescape is the identity. */
  cymg_buf u = {NULL, 0, 0}, q = {NULL, 0, 0}, u2 = {NULL, 0, 0};
  int n = cymg_json_unescape(in, &u);
  if (n >= 0) {
    CHECK((size_t) n == u.len && u.len <= size);
    CHECK(cymg_json_str_eq(in, cymg_str_n(u.buf, u.len)));
    CHECK(cymg_json_escape(&q, cymg_str_n(u.buf, u.len)) >= 2);
    CHECK(cymg_json_validate(cymg_str_n(q.buf, q.len)) == CYMG_JSON_STRING);
    CHECK(cymg_json_unescape(cymg_str_n(q.buf, q.len), &u2) == n);
    CHECK(u2.len == u.len && (u.len == 0 || memcmp(u.buf, u2.buf, u.len) == 0));
  } else {
    CHECK(u.len == 0);
  }
  q.len = 0;
  /* Escaping anything gives a valid JSON string. */
  CHECK(cymg_json_escape(&q, in) >= 2);
  CHECK(cymg_json_validate(cymg_str_n(q.buf, q.len)) == CYMG_JSON_STRING);
  cymg_buf_free(&u);
  cymg_buf_free(&q);
  cymg_buf_free(&u2);
  free(p);
  return 0;
}
