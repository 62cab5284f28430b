/* Error codes. Every fallible function returns an int: >= 0 on success, a negative
 * code on failure. System errors are -errno; conditions of libcymg's own have the
 * CYMG_E* values below 10000. cymg_strerror() names either kind. */
#ifndef CYMG_ERROR_H
#define CYMG_ERROR_H

#include <errno.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* System errors that libcymg itself returns, spelled with the prefix. */
#define CYMG_EINVAL (-EINVAL)       /* bad argument */
#define CYMG_ENOMEM (-ENOMEM)       /* allocation failed */
#define CYMG_EAGAIN (-EAGAIN)       /* would block; try again later */
#define CYMG_ERANGE (-ERANGE)       /* number out of range */
#define CYMG_ENOSPC (-ENOSPC)       /* output buffer too small */
#define CYMG_ETIMEDOUT (-ETIMEDOUT) /* timed out */
#define CYMG_ENOTSUP (-ENOTSUP)     /* not supported by this build or platform */

enum {
  CYMG_EBADURL = -10001,  /* malformed URL */
  CYMG_ESCHEME = -10002,  /* URL scheme not supported here */
  CYMG_ERESOLVE = -10003, /* host name could not be resolved */
  CYMG_ELIMIT = -10004,   /* a configured size or count limit was exceeded */
  CYMG_ECLOSED = -10005,  /* connection is closing or closed */
  CYMG_EPARSE = -10006,   /* malformed input */
  CYMG_ENOTFOUND = -10007,/* lookup found nothing */
  CYMG_ETYPE = -10008,    /* value has another type than asked for */
  CYMG_ESTATE = -10009,   /* call not valid in the object's current state */
  CYMG_EPROTO = -10010,   /* peer violated the protocol */
  CYMG_ETLS = -10011,     /* TLS library error */
  CYMG_ENOCONN = -10012,  /* no connection with that id */
};

/* Text for a code returned by any libcymg function (static storage, never NULL).
 * Thread-safe. */
CYMG_API const char *cymg_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
