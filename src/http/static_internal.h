/* What static.c and multipart.c share with their tests and fuzz targets: the
 * sans-I/O pieces of file serving (path normalisation, Range, conditionals,
 * dates) and the incremental multipart parser behind cymg_http_upload(). */
#ifndef CYMG_STATIC_INTERNAL_H
#define CYMG_STATIC_INTERNAL_H

#include "cymg/http.h"

/* Normalises the path of a request-target (msg->uri) for mapping onto a folder:
 * percent-decodes it, collapses "//", resolves "." and "..", and writes the
 * result, always starting with '/', NUL-terminated, to out. A result ending in
 * '/' means the input named a folder (it ended in '/', "." or ".."); "/" alone
 * is the root. Bytes >= 0x80 pass through (UTF-8 names).
 * Returns the length written; CYMG_EPARSE when uri does not start with '/' or
 * has a malformed %-escape; CYMG_EINVAL for what must never reach the file
 * system: a decoded NUL or other control byte, DEL, a backslash (raw or
 * encoded), an encoded '/', or a ".." above the root; CYMG_ENOSPC when out is
 * too small (uri.len + 1 bytes always suffice). On failure out holds "". */
int cymg__http_normalize_path(cymg_str uri, char *out, size_t out_len);

#endif
