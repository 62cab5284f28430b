/* Logging. The level and the sink are process-wide settings (the one exception to
 * "everything hangs off a manager": a library logs from places that have no
 * manager, and applications configure logging once). */
#ifndef CYMG_LOG_H
#define CYMG_LOG_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  CYMG_LL_NONE = 0,
  CYMG_LL_ERROR = 1,
  CYMG_LL_INFO = 2,
  CYMG_LL_DEBUG = 3,
  CYMG_LL_VERBOSE = 4,
};

/* Sink: receives one formatted line (no trailing newline). */
typedef void (*cymg_log_fn)(int level, const char *line, size_t len, void *arg);

/* Sets the level (clamped to NONE..VERBOSE). Default ERROR, or the CYMG_LOG
 * environment variable (0..4) when set. Thread-safe. */
CYMG_API void cymg_log_set(int level);
CYMG_API int cymg_log_get(void);
/* Replaces the sink (NULL restores the default: stderr). Thread-safe. */
CYMG_API void cymg_log_set_sink(cymg_log_fn fn, void *arg);
/* Logs at level when the level is enabled. */
CYMG_API void cymg_log(int level, const char *fmt, ...) CYMG_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif
#endif
