/* Request path normalisation for serving files: percent-decoding and dot-segment
 * resolution done once, strictly, without I/O, so the file layer only ever sees a
 * path that cannot leave its root. */
#include <string.h>

#include "cymg/error.h"
#include "http/static_internal.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int cymg__http_normalize_path(cymg_str uri, char *out, size_t out_len) {
  if (out == NULL || out_len == 0) return CYMG_EINVAL;
  out[0] = '\0';
  if (uri.len == 0 || uri.buf[0] != '/') return CYMG_EPARSE;
  /* Every output byte stands for at least one input byte (decoding and dot
   * removal only shrink), so uri.len + 1 bytes always hold the result. */
  size_t o = 1; /* bytes of out in use; out[0] is the root's '/' */
  out[0] = '/';
  size_t i = 0;
  while (i < uri.len) {
    /* One segment: decode it into out after the path so far, then decide what
     * it means. Decoding first is safe because no escape may produce a '/', so
     * a segment's extent is fixed by raw slashes alone. */
    while (i < uri.len && uri.buf[i] == '/') i++; /* "//" collapses */
    if (i >= uri.len) break;
    size_t seg = o;
    while (i < uri.len && uri.buf[i] != '/') {
      unsigned char ch = (unsigned char)uri.buf[i];
      if (ch == '%') {
        if (uri.len - i < 3) goto bad_escape;
        int hi = hexval(uri.buf[i + 1]), lo = hexval(uri.buf[i + 2]);
        if (hi < 0 || lo < 0) goto bad_escape;
        ch = (unsigned char)(hi * 16 + lo);
        /* An encoded separator would name another file than the one the
         * client's path shows; a backslash is a separator on Windows shares
         * and to some proxies. */
        if (ch == '/' || ch == '\\') goto refused;
        i += 3;
      } else {
        i++;
      }
      /* NUL truncates C paths; other controls have no business in a file name
       * served over HTTP. A raw backslash is refused like an encoded one. */
      if (ch < 0x20 || ch == 0x7f || ch == '\\') goto refused;
      if (o + 1 >= out_len) goto no_space;
      out[o++] = (char)ch;
    }
    size_t slen = o - seg;
    if (slen == 1 && out[seg] == '.') {
      o = seg; /* "." names the folder itself */
    } else if (slen == 2 && out[seg] == '.' && out[seg + 1] == '.') {
      /* ".." drops the previous segment. Above the root it is an attack, not a
       * slip: browsers resolve dot segments before sending. */
      if (seg == 1) goto refused;
      o = seg - 1; /* at the '/' in front of the dropped segment's end */
      while (out[o - 1] != '/') o--;
    } else if (i < uri.len) {
      /* A raw '/' follows: keep it, so "/a/" stays a folder. */
      if (o + 1 >= out_len) goto no_space;
      out[o++] = '/';
    }
  }
  out[o] = '\0';
  return (int)o;
bad_escape:
  out[0] = '\0';
  return CYMG_EPARSE;
refused:
  out[0] = '\0';
  return CYMG_EINVAL;
no_space:
  out[0] = '\0';
  return CYMG_ENOSPC;
}
