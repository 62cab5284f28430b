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
  /* realloc, not malloc-copy-free: a large buffer (mmapped by the allocator)
   * then grows by remapping its pages, neither copied nor touched, and never
   * frees a mapping, which would raise glibc's mmap threshold and put the
   * next connections' large buffers on the heap, where freed ones stay
   * resident. Growing a backlog of output costs its bytes, not twice them. */
  if (b->head && b->len) memmove(b->buf, b->buf + b->head, b->len);
  b->head = 0;
  char *p = realloc(b->buf, size);
  if (p == NULL) return CYMG_ENOMEM;
  b->buf = p;
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
