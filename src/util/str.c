/* String views. */
#include <string.h>

#include "cymg/common.h"

cymg_str cymg_str_c(const char *s) {
  cymg_str r = {s, s ? strlen(s) : 0};
  return r;
}

cymg_str cymg_str_n(const void *p, size_t n) {
  cymg_str r = {(const char *) p, n};
  return r;
}
