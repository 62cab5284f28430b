/* Fuzzes URL parsing, percent coding and the strict number parsers.
 * Invariants: parsed parts lie inside the input; an explicit port is the number
 * its digits spell (so never above 65535); decode(encode(x)) == x; a successful
 * decode re-encodes to something that decodes to the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/buf.h"
#include "cymg/error.h"
#include "cymg/str.h"
#include "cymg/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                  \
  do {                                                                            \
    if (!(c)) {                                                                   \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);   \
      abort();                                                                    \
    }                                                                             \
  } while (0)

static void inside(cymg_str part, cymg_str in) {
  if (part.buf == NULL) {
    CHECK(part.len == 0);
    return;
  }
  CHECK(part.buf >= in.buf && part.len <= in.len && part.buf - in.buf <= (ptrdiff_t) (in.len - part.len));
}

static void check_url(cymg_str in) {
  cymg_url u;
  if (cymg_url_parse(in, &u) == 0) {
    const cymg_str parts[] = {u.scheme, u.user, u.pass, u.host, u.port, u.path, u.query, u.fragment};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) inside(parts[i], in);
    for (size_t i = 0; i < in.len; i++) CHECK((unsigned char) in.buf[i] > 0x20 && in.buf[i] != 0x7f);
    if (u.port.len > 0) {
      unsigned long v = 0;
      for (size_t i = 0; i < u.port.len; i++) {
        CHECK(u.port.buf[i] >= '0' && u.port.buf[i] <= '9');
        v = v * 10 + (unsigned long) (u.port.buf[i] - '0');
        CHECK(v <= 65535);
      }
      CHECK(v == u.port_num);
    } else {
      CHECK(u.port_num == cymg_url_default_port(u.scheme));
    }
    CHECK(u.host.buf != NULL);
    if (u.is_ip6) {
      cymg_str addr, zone;
      int z = cymg_url_split_zone(u.host, &addr, &zone);
      CHECK(z == 0 || zone.len > 0);
      inside(addr, in);
      inside(zone, in);
    }
  }
  cymg_str uri = cymg_url_uri(in);
  if (!(uri.len == 1 && uri.buf[0] == '/' && (uri.buf < in.buf || uri.buf >= in.buf + in.len))) {
    inside(uri, in);
    CHECK(uri.len > 0 && uri.buf + uri.len == in.buf + in.len);
  }
}

static void check_coding(cymg_str in) {
  cymg_buf e = {0}, d = {0};
  CHECK(cymg_url_encode(in, &e) == 0);
  for (int plus = 0; plus < 2; plus++) {
    CHECK(cymg_url_decode(cymg_str_n(e.buf, e.len), &d, plus) == 0);
    CHECK(d.len == in.len && (in.len == 0 || memcmp(d.buf, in.buf, in.len) == 0));
    cymg_buf_free(&d);
  }
  cymg_buf_free(&e);

  int rc = cymg_url_decode(in, &d, true);
  if (rc == 0) {
    CHECK(d.len <= in.len);
    CHECK(cymg_url_encode(cymg_str_n(d.buf, d.len), &e) == 0);
    cymg_buf d2 = {0};
    CHECK(cymg_url_decode(cymg_str_n(e.buf, e.len), &d2, false) == 0);
    CHECK(d2.len == d.len && (d.len == 0 || memcmp(d2.buf, d.buf, d.len) == 0));
    cymg_buf_free(&d2);
    /* The fixed-buffer decoder agrees, and refuses one byte less. */
    char *fixed = malloc(d.len + 1);
    CHECK(fixed != NULL);
    CHECK(cymg_url_decode_to(in, fixed, d.len + 1, true) == (int) d.len);
    CHECK(memcmp(fixed, d.buf, d.len) == 0 && fixed[d.len] == '\0');
    CHECK(cymg_url_decode_to(in, fixed, d.len, true) == CYMG_ENOSPC);
    free(fixed);
  } else {
    CHECK(rc == CYMG_EPARSE && d.len == 0);
  }
  cymg_buf_free(&d);
  cymg_buf_free(&e);
}

static void check_numbers(cymg_str in) {
  uint64_t u;
  int64_t i;
  double dbl;
  char tmp[64];
  if (cymg_str_to_u64(in, 10, &u) == 0) {
    /* Only digits were accepted, so strtoull must read the same value. */
    CHECK(in.len < sizeof(tmp) || in.buf[0] == '0');
    for (size_t k = 0; k < in.len; k++) CHECK(in.buf[k] >= '0' && in.buf[k] <= '9');
    if (in.len < sizeof(tmp)) {
      memcpy(tmp, in.buf, in.len);
      tmp[in.len] = '\0';
      CHECK(strtoull(tmp, NULL, 10) == u);
    }
  }
  if (cymg_str_to_u64(in, 16, &u) == 0 && in.len < sizeof(tmp)) {
    memcpy(tmp, in.buf, in.len);
    tmp[in.len] = '\0';
    CHECK(strtoull(tmp, NULL, 16) == u);
  }
  if (cymg_str_to_i64(in, &i) == 0 && in.len < sizeof(tmp)) {
    memcpy(tmp, in.buf, in.len);
    tmp[in.len] = '\0';
    CHECK(strtoll(tmp, NULL, 10) == i);
  }
  (void) cymg_str_to_double(in, &dbl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exactly-sized copy: any read past the end is caught by ASan. */
  char *p = malloc(size ? size : 1);
  if (p == NULL) return 0;
  if (size) memcpy(p, data, size);
  cymg_str in = cymg_str_n(p, size);
  check_url(in);
  check_coding(in);
  check_numbers(in);
  free(p);
  return 0;
}
