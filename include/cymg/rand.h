/* Cryptographically secure random bytes and the two clocks.
 * Everything here is thread-safe and keeps no state of its own. */
#ifndef CYMG_RAND_H
#define CYMG_RAND_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills buf with len bytes from the operating system's CSPRNG (getrandom(2) on
 * Linux, retried on EINTR and short reads), falling back to OpenSSL's RAND_bytes()
 * where getrandom is unavailable. Returns 0, or a negative error (CYMG_EINVAL for
 * a NULL buf with len > 0, CYMG_EAGAIN/-errno when no source works); on failure
 * the contents of buf are unspecified and must not be used. */
CYMG_API int cymg_random_bytes(void *buf, size_t len);

/* Writes len random characters from [A-Za-z0-9] and a NUL to dst, which must hold
 * len + 1 bytes. Each character is uniformly distributed (rejection sampling, no
 * modulo bias). Returns 0 or a negative error from cymg_random_bytes(). */
CYMG_API CYMG_NODISCARD int cymg_random_str(char *dst, size_t len);

/* Milliseconds from an arbitrary fixed point on a monotonic clock (does not jump
 * when the wall clock is set). For timeouts and intervals. */
CYMG_API uint64_t cymg_millis(void);

/* Milliseconds since the Unix epoch on the wall clock (can jump). For timestamps. */
CYMG_API int64_t cymg_wall_millis(void);

#ifdef __cplusplus
}
#endif
#endif
