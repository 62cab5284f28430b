/* Base64 (RFC 4648). Decoding is strict because encodings are compared and signed
 * elsewhere (WebSocket keys, JWT-like tokens): a lenient decoder would accept many
 * spellings of the same bytes. */
#include <limits.h>
#include <string.h>

#include "cymg/base64.h"
#include "cymg/error.h"

static const char std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t cymg_base64_encoded_len(size_t n) {
  size_t groups = n / 3 + (n % 3 != 0);
  if (groups > SIZE_MAX / 4) return 0;
  return groups * 4;
}

static int encode(cymg_str in, cymg_buf *out, const char *alphabet, bool pad) {
  if (out == NULL || (in.buf == NULL && in.len > 0)) return CYMG_EINVAL;
  size_t full = cymg_base64_encoded_len(in.len);
  if (full == 0 && in.len > 0) return CYMG_ERANGE;
  if (full > INT_MAX) return CYMG_ERANGE;
  int rc = cymg_buf_reserve(out, full);
  if (rc < 0) return rc;
  const unsigned char *p = (const unsigned char *) in.buf;
  char *d = out->buf + out->len;
  size_t i = 0;
  for (; i + 3 <= in.len; i += 3) {
    uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];
    *d++ = alphabet[v >> 18];
    *d++ = alphabet[(v >> 12) & 63];
    *d++ = alphabet[(v >> 6) & 63];
    *d++ = alphabet[v & 63];
  }
  size_t rest = in.len - i;
  if (rest > 0) {
    uint32_t v = (uint32_t) p[i] << 16 | (rest == 2 ? (uint32_t) p[i + 1] << 8 : 0);
    *d++ = alphabet[v >> 18];
    *d++ = alphabet[(v >> 12) & 63];
    if (rest == 2) *d++ = alphabet[(v >> 6) & 63];
    if (pad) {
      if (rest == 1) *d++ = '=';
      *d++ = '=';
    }
  }
  size_t n = (size_t) (d - (out->buf + out->len));
  out->len += n;
  out->buf[out->len] = '\0';
  return (int) n;
}

int cymg_base64_encode(cymg_str in, cymg_buf *out) {
  return encode(in, out, std_alphabet, true);
}

int cymg_base64url_encode(cymg_str in, cymg_buf *out) {
  return encode(in, out, url_alphabet, false);
}

/* Value of one symbol, or -1. The two alphabets differ only in values 62 and 63. */
static int sym(unsigned char c, bool url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

/* Validates the whole input before touching `out`, so a failure leaves it as it
 * was. `pad_required` selects the standard form; otherwise padding is optional. */
static int decode(cymg_str in, cymg_buf *out, bool url, bool pad_required) {
  if (out == NULL || (in.buf == NULL && in.len > 0)) return CYMG_EINVAL;
  const unsigned char *p = (const unsigned char *) in.buf;
  size_t n = in.len;
  size_t pads = 0;
  if (n % 4 == 0 && n > 0 && p[n - 1] == '=') pads = (p[n - 2] == '=') ? 2 : 1;
  if (pad_required && n % 4 != 0) return CYMG_EPARSE;
  size_t data = n - pads;         /* symbols that carry bits */
  if (data % 4 == 1) return CYMG_EPARSE; /* 6 bits cannot make a byte */
  for (size_t i = 0; i < data; i++) {
    if (sym(p[i], url) < 0) return CYMG_EPARSE;
  }
  /* Dropped bits must be zero, or two inputs would decode to the same bytes. */
  if (data % 4 == 2 && (sym(p[data - 1], url) & 0x0f) != 0) return CYMG_EPARSE;
  if (data % 4 == 3 && (sym(p[data - 1], url) & 0x03) != 0) return CYMG_EPARSE;
  size_t outlen = data / 4 * 3 + (data % 4 == 0 ? 0 : data % 4 - 1);
  if (outlen > INT_MAX) return CYMG_ERANGE;
  int rc = cymg_buf_reserve(out, outlen);
  if (rc < 0) return rc;
  unsigned char *d = (unsigned char *) out->buf + out->len;
  size_t i = 0;
  for (; i + 4 <= data; i += 4) {
    uint32_t v = (uint32_t) sym(p[i], url) << 18 | (uint32_t) sym(p[i + 1], url) << 12 |
                 (uint32_t) sym(p[i + 2], url) << 6 | (uint32_t) sym(p[i + 3], url);
    *d++ = (unsigned char) (v >> 16);
    *d++ = (unsigned char) (v >> 8);
    *d++ = (unsigned char) v;
  }
  if (data - i >= 2) {
    uint32_t v = (uint32_t) sym(p[i], url) << 18 | (uint32_t) sym(p[i + 1], url) << 12;
    if (data - i == 3) v |= (uint32_t) sym(p[i + 2], url) << 6;
    *d++ = (unsigned char) (v >> 16);
    if (data - i == 3) *d++ = (unsigned char) (v >> 8);
  }
  out->len += outlen;
  out->buf[out->len] = '\0';
  return (int) outlen;
}

int cymg_base64_decode(cymg_str in, cymg_buf *out) {
  return decode(in, out, false, true);
}

int cymg_base64url_decode(cymg_str in, cymg_buf *out) {
  return decode(in, out, true, false);
}
