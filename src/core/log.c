/* Logging: a process-wide level and sink (see log.h for why process-wide). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static atomic_int log_level = -1; /* -1: not yet read from CYMG_LOG */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static cymg_log_fn sink_fn;
static void *sink_arg;

int cymg__log_level_cached(void) {
  int lvl = atomic_load_explicit(&log_level, memory_order_relaxed);
  if (lvl >= 0) return lvl;
  const char *env = getenv("CYMG_LOG");
  lvl = (env && env[0] >= '0' && env[0] <= '4' && env[1] == '\0') ? env[0] - '0' : CYMG_LL_ERROR;
  int expected = -1;
  atomic_compare_exchange_strong(&log_level, &expected, lvl);
  return atomic_load(&log_level);
}

void cymg_log_set(int level) {
  if (level < CYMG_LL_NONE) level = CYMG_LL_NONE;
  if (level > CYMG_LL_VERBOSE) level = CYMG_LL_VERBOSE;
  atomic_store(&log_level, level);
}

int cymg_log_get(void) { return cymg__log_level_cached(); }

void cymg_log_set_sink(cymg_log_fn fn, void *arg) {
  pthread_mutex_lock(&sink_lock);
  sink_fn = fn;
  sink_arg = arg;
  pthread_mutex_unlock(&sink_lock);
}

void cymg_log(int level, const char *fmt, ...) {
  if (level <= CYMG_LL_NONE || cymg__log_level_cached() < level) return;
  static const char *names[] = {"", "ERROR", "INFO", "DEBUG", "VERBOSE"};
  char line[1024];
  int n = 0;
  if (level <= CYMG_LL_VERBOSE) n = snprintf(line, sizeof(line), "cymg %s: ", names[level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof(line) - (size_t) n, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  size_t len = (size_t) n + (size_t) m;
  if (len >= sizeof(line)) len = sizeof(line) - 1; /* long lines are cut, not lost */
  pthread_mutex_lock(&sink_lock);
  if (sink_fn) {
    sink_fn(level, line, len, sink_arg);
  } else {
    fprintf(stderr, "%.*s\n", (int) len, line);
  }
  pthread_mutex_unlock(&sink_lock);
}
