/* Connection buffers: grow on demand up to a limit, consume from the front.
 *
 * Large buffers (a backlog of output to a slow peer, a big request body) are
 * mapped pages of their own rather than heap blocks. Through malloc, freeing
 * one would raise glibc's mmap threshold, so the next connections' large
 * buffers would come from the heap, where freed blocks stay resident: with 15
 * peers that do not read, that was a third of the server's memory. Mapped,
 * a buffer grows by remapping (nothing copied, nothing touched twice) and
 * its memory goes back to the system when it is freed. Under AddressSanitizer
 * every buffer stays on the heap, so that overflows of large ones are caught. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define CYMG__IOBUF_MAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CYMG__IOBUF_MAP 0
#endif
#endif
#ifndef CYMG__IOBUF_MAP
#define CYMG__IOBUF_MAP 1
#endif

/* From this size on a buffer is mapped (sizes are page multiples then). */
#define MAP_MIN (256u << 10)

static bool mapped(size_t size) { return CYMG__IOBUF_MAP && size >= MAP_MIN; }

void cymg__iobuf_free(cymg__iobuf *b) {
  if (mapped(b->size)) {
    munmap(b->buf, b->size);
  } else {
    free(b->buf);
  }
  b->buf = NULL;
  b->head = b->len = b->size = 0;
}

/* Moves b's data (at the front) into a block of `size` bytes. */
static int resize(cymg__iobuf *b, size_t size) {
  char *p;
  if (!mapped(size)) {
    p = realloc(b->buf, size);
    if (p == NULL) return CYMG_ENOMEM;
  } else {
    size_t page = (size_t) sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - page) return CYMG_ENOMEM;
    size = (size + page - 1) / page * page;
#if defined(__linux__)
    if (mapped(b->size)) {
      p = mremap(b->buf, b->size, size, MREMAP_MAYMOVE);
      if (p == MAP_FAILED) return CYMG_ENOMEM;
      b->buf = p;
      b->size = size;
      return 0;
    }
#endif
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return CYMG_ENOMEM;
    if (b->len) memcpy(p, b->buf, b->len);
    if (mapped(b->size)) {
      munmap(b->buf, b->size);
    } else {
      free(b->buf);
    }
  }
  b->buf = p;
  b->size = size;
  return 0;
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
  /* The data goes to the front first, so growing keeps only its bytes. */
  if (b->head && b->len) memmove(b->buf, b->buf + b->head, b->len);
  b->head = 0;
  return resize(b, size);
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
