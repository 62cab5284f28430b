/* Connection buffers: grow on demand up to a limit, consume from the front. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void cymg__iobuf_free(cymg__iobuf *b) {
  free(b->buf);
  b->buf = NULL;
  b->head = b->len = b->size = 0;
}

int cymg__iobuf_reserve(cymg__iobuf *b, size_t room, size_t limit) {
  if (limit && (room > limit || b->len > limit - room)) return CYMG_ELIMIT;
  if (cymg__iobuf_room(b) >= room) return 0;
  size_t need = b->len + room;
  if (b->size >= need) { /* enough in total: slide the data to the front */
    memmove(b->buf, b->buf + b->head, b->len);
    b->head = 0;
    return 0;
  }
  size_t size = b->size ? b->size : 1024;
  while (size < need) size = size > SIZE_MAX / 2 ? need : size * 2;
  if (limit && size > limit) size = limit > need ? limit : need;
  char *p = malloc(size);
  if (p == NULL) return CYMG_ENOMEM;
  if (b->len) memcpy(p, b->buf + b->head, b->len);
  free(b->buf);
  b->buf = p;
  b->head = 0;
  b->size = size;
  return 0;
}

int cymg__iobuf_append(cymg__iobuf *b, const void *p, size_t n, size_t limit) {
  int rc = cymg__iobuf_reserve(b, n, limit);
  if (rc < 0) return rc;
  if (n) memcpy(cymg__iobuf_tail(b), p, n);
  b->len += n;
  return 0;
}

void cymg__iobuf_consume(cymg__iobuf *b, size_t n) {
  if (n >= b->len) {
    b->head = b->len = 0;
  } else {
    b->head += n;
    b->len -= n;
  }
}

void cymg__iobuf_cut(cymg__iobuf *b, size_t ofs, size_t n) {
  if (ofs >= b->len || n == 0) return;
  if (n > b->len - ofs) n = b->len - ofs;
  char *at = b->buf + b->head + ofs;
  size_t after = b->len - ofs - n;
  if (after) memmove(at, at + n, after);
  b->len -= n;
  if (b->len == 0) b->head = 0;
}
