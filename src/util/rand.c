/* Random bytes from the kernel (OpenSSL as fallback) and the two clocks. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#if defined(__linux__)
#include <sys/random.h>
#define CYMG_HAVE_GETRANDOM 1
#endif

#include "cymg/error.h"
#include "cymg/rand.h"

static int openssl_bytes(unsigned char *p, size_t len) {
  /* RAND_bytes takes an int length. */
  while (len > 0) {
    int n = len > INT_MAX ? INT_MAX : (int) len;
    if (RAND_bytes(p, n) != 1) return CYMG_EAGAIN; /* not seeded / no entropy */
    p += n;
    len -= (size_t) n;
  }
  return 0;
}

int cymg_random_bytes(void *buf, size_t len) {
  if (buf == NULL && len > 0) return CYMG_EINVAL;
  unsigned char *p = buf;
#ifdef CYMG_HAVE_GETRANDOM
  while (len > 0) {
    /* Blocks only until the pool is first initialised at boot; reads above 32 MiB
     * and reads interrupted by a signal come back short, hence the loop. */
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      break; /* ENOSYS (old kernel), seccomp EPERM...: let OpenSSL try */
    }
    p += n;
    len -= (size_t) n;
  }
#endif
  return len > 0 ? openssl_bytes(p, len) : 0;
}

int cymg_random_str(char *dst, size_t len) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  enum { N = sizeof(alphabet) - 1, LIMIT = 256 - 256 % N }; /* 62, 248 */
  if (dst == NULL) return CYMG_EINVAL;
  unsigned char pool[64];
  size_t have = 0, used = 0, i = 0;
  while (i < len) {
    if (used == have) {
      /* Over-draw a little: about 3% of bytes are rejected. */
      size_t want = len - i + (len - i) / 16 + 1;
      have = want < sizeof(pool) ? want : sizeof(pool);
      used = 0;
      int rc = cymg_random_bytes(pool, have);
      if (rc < 0) {
        dst[0] = '\0';
        return rc;
      }
    }
    unsigned char b = pool[used++];
    /* Bytes >= 248 would make the first 8 letters more likely than the rest. */
    if (b < LIMIT) dst[i++] = alphabet[b % N];
  }
  dst[len] = '\0';
  return 0;
}

static int64_t clock_ms(clockid_t id) {
  struct timespec ts;
  /* Cannot fail for these clock ids on supported systems. */
  if (clock_gettime(id, &ts) != 0) return 0;
  return (int64_t) ts.tv_sec * 1000 + (int64_t) (ts.tv_nsec / 1000000);
}

uint64_t cymg_millis(void) { return (uint64_t) clock_ms(CLOCK_MONOTONIC); }

int64_t cymg_wall_millis(void) { return clock_ms(CLOCK_REALTIME); }
