/* Base definitions every libcymg header shares: the export macro and the string view. */
#ifndef CYMG_COMMON_H
#define CYMG_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(CYMG_BUILDING) && defined(__GNUC__)
#define CYMG_API __attribute__((visibility("default")))
#else
#define CYMG_API
#endif

#if defined(__GNUC__)
#define CYMG_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define CYMG_PRINTF(fmt_idx, arg_idx)
#endif

/* On a function that can fail: its result says whether the out-parameters
 * were written, so a caller that drops it reads undefined data (an ignored
 * split once crashed the static file server). GCC and clang then warn about a
 * call whose result is dropped, even through a cast to void. */
#if defined(__GNUC__)
#define CYMG_NODISCARD __attribute__((warn_unused_result))
#else
#define CYMG_NODISCARD
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A view of bytes: not NUL-terminated, not owned. Message views and parsers hand
 * these out pointing into buffers they do not own; see each API for how long the
 * bytes stay valid. */
typedef struct cymg_str {
  const char *buf;
  size_t len;
} cymg_str;

/* A view of a NUL-terminated C string (NULL gives an empty view). */
CYMG_API cymg_str cymg_str_c(const char *s);
/* A view of n bytes at p. */
CYMG_API cymg_str cymg_str_n(const void *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
