/* Growable byte buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/buf.h"
#include "cymg/error.h"

void cymg_buf_init(cymg_buf *b) {
  b->buf = NULL;
  b->len = b->size = 0;
}

void cymg_buf_free(cymg_buf *b) {
  free(b->buf);
  cymg_buf_init(b);
}

int cymg_buf_reserve(cymg_buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len - 1) return CYMG_ENOMEM;
  size_t need = b->len + extra + 1; /* room for the trailing NUL */
  if (need <= b->size) return 0;
  size_t size = b->size ? b->size : 64;
  while (size < need) size = size > SIZE_MAX / 2 ? need : size * 2;
  char *p = realloc(b->buf, size);
  if (p == NULL) return CYMG_ENOMEM;
  b->buf = p;
  b->size = size;
  b->buf[b->len] = '\0';
  return 0;
}

int cymg_buf_append(cymg_buf *b, const void *p, size_t n) {
  int rc = cymg_buf_reserve(b, n);
  if (rc < 0) return rc;
  if (n > 0) memcpy(b->buf + b->len, p, n);
  b->len += n;
  b->buf[b->len] = '\0';
  return 0;
}

int cymg_buf_vprintf(cymg_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  char small[256];
  int n = vsnprintf(small, sizeof(small), fmt, ap2);
  va_end(ap2);
  if (n < 0) return CYMG_EINVAL;
  int rc = cymg_buf_reserve(b, (size_t) n);
  if (rc < 0) return rc;
  if ((size_t) n < sizeof(small)) {
    memcpy(b->buf + b->len, small, (size_t) n + 1);
  } else {
    va_copy(ap2, ap);
    vsnprintf(b->buf + b->len, (size_t) n + 1, fmt, ap2);
    va_end(ap2);
  }
  b->len += (size_t) n;
  return n;
}

int cymg_buf_printf(cymg_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = cymg_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return n;
}

void cymg_buf_del(cymg_buf *b, size_t off, size_t n) {
  if (off >= b->len) return;
  if (n > b->len - off) n = b->len - off;
  memmove(b->buf + off, b->buf + off + n, b->len - off - n);
  b->len -= n;
  b->buf[b->len] = '\0';
}

char *cymg_buf_steal(cymg_buf *b) {
  char *p = b->buf;
  cymg_buf_init(b);
  return p;
}
