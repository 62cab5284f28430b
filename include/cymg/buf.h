/* A growable byte buffer: the output side of formatting, encoding and RPC. */
#ifndef CYMG_BUF_H
#define CYMG_BUF_H

#include <stdarg.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* buf[0..len) holds the data; size is the allocation. A buffer that has grown is
 * always NUL-terminated at buf[len] (the NUL is not counted in len), so text can be
 * passed to C string functions. Zero-initialise, or use cymg_buf_init(). */
typedef struct cymg_buf {
  char *buf;
  size_t len;
  size_t size;
} cymg_buf;

CYMG_API void cymg_buf_init(cymg_buf *b);
/* Frees the storage; the buffer is empty and reusable afterwards. */
CYMG_API void cymg_buf_free(cymg_buf *b);
/* Makes room for `extra` more bytes (plus the NUL). Returns 0 or CYMG_ENOMEM. */
CYMG_API CYMG_NODISCARD int cymg_buf_reserve(cymg_buf *b, size_t extra);
/* Appends n bytes. Returns 0 or CYMG_ENOMEM (then the buffer is unchanged). */
CYMG_API CYMG_NODISCARD int cymg_buf_append(cymg_buf *b, const void *p, size_t n);
/* Appends printf-formatted text. Returns the number of bytes appended, or
 * CYMG_ENOMEM / CYMG_EINVAL (bad format) with the buffer unchanged. */
CYMG_API CYMG_NODISCARD int cymg_buf_printf(cymg_buf *b, const char *fmt, ...) CYMG_PRINTF(2, 3);
CYMG_API CYMG_NODISCARD int cymg_buf_vprintf(cymg_buf *b, const char *fmt, va_list ap)
    CYMG_PRINTF(2, 0);
/* Removes n bytes at offset off (clamped to the data). */
CYMG_API void cymg_buf_del(cymg_buf *b, size_t off, size_t n);
/* Gives the storage to the caller (free() it) and leaves the buffer empty.
 * Returns NULL when nothing was ever allocated. */
CYMG_API char *cymg_buf_steal(cymg_buf *b);

#ifdef __cplusplus
}
#endif
#endif
