/* Fuzzes the path normaliser: whatever it accepts must be a clean absolute path
 * (no empty, "." or ".." segments, no NUL, controls or backslashes) no longer
 * than the input allows, and normalising it again must change nothing unless a
 * '%' came out of decoding. The input sits in an exactly-sized heap buffer. */
#include <stdlib.h>
#include <string.h>

#include "cymg/error.h"
#include "http/static_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)       \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *in = malloc(size ? size : 1);
  CHECK(in != NULL);
  memcpy(in, data, size);
  size_t cap = size + 1;
  char *out = malloc(cap);
  CHECK(out != NULL);
  int rc = cymg__http_normalize_path(cymg_str_n(in, size), out, cap);
  if (rc < 0) {
    CHECK(rc == CYMG_EPARSE || rc == CYMG_EINVAL);
    CHECK(out[0] == '\0');
  } else {
    size_t n = (size_t)rc;
    CHECK(n >= 1 && n <= size && out[n] == '\0' && strlen(out) == n);
    CHECK(out[0] == '/');
    for (size_t i = 0; i < n; i++) {
      unsigned char ch = (unsigned char)out[i];
      CHECK(ch >= 0x20 && ch != 0x7f && ch != '\\');
      if (ch == '/') {
        CHECK(i + 1 == n || out[i + 1] != '/');
        const char *seg = out + i + 1;
        size_t sl = strcspn(seg, "/");
        CHECK(!(sl == 1 && seg[0] == '.'));
        CHECK(!(sl == 2 && seg[0] == '.' && seg[1] == '.'));
      }
    }
    /* An exactly-sized buffer may be too small for the intermediate path
     * (before a ".." removes a segment) but must never be written past. */
    char *small = malloc(n + 1);
    CHECK(small != NULL);
    int rc2 = cymg__http_normalize_path(cymg_str_n(in, size), small, n + 1);
    CHECK(rc2 == rc || rc2 == CYMG_ENOSPC);
    if (rc2 == rc) CHECK(memcmp(small, out, n + 1) == 0);
    free(small);
    if (memchr(out, '%', n) == NULL) {
      char *again = malloc(n + 1);
      CHECK(again != NULL);
      CHECK(cymg__http_normalize_path(cymg_str_n(out, n), again, n + 1) == rc);
      CHECK(memcmp(again, out, n) == 0);
      free(again);
    }
  }
  free(out);
  free(in);
  return 0;
}
