/* JSON syntax (RFC 8259): the validator, member iteration, and string
 * escaping/unescaping. Lookups and typed getters are in json_get.c.
 *
 * The scanner is iterative with an explicit bit stack (one bit per open container:
 * object or array), so hostile nesting costs CYMG_JSON_MAX_DEPTH / 8 bytes and
 * never recursion. Every read is bounds-checked against the view's length: inputs
 * are not NUL-terminated. */
#include <limits.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/json.h"

static bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n && is_ws(s[i])) i++;
  return i;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Length of the well-formed UTF-8 sequence at p (Unicode table 3-7), or minus the
 * length of its maximal ill-formed subpart (at least 1), which is the unit the
 * escaper replaces with one U+FFFD. */
static int utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  int need;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    need = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 3;
    if (c == 0xe0) lo = 0xa0;      /* overlong */
    if (c == 0xed) hi = 0x9f;      /* UTF-16 surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 4;
    if (c == 0xf0) lo = 0x90;      /* overlong */
    if (c == 0xf4) hi = 0x8f;      /* above U+10FFFF */
  } else {
    return -1;
  }
  for (int i = 1; i < need; i++) {
    if ((size_t) i >= n || p[i] < lo || p[i] > hi) return -i;
    lo = 0x80;
    hi = 0xbf;
  }
  return need;
}

static int put_utf8(unsigned char *o, uint32_t cp) {
  if (cp < 0x80) {
    o[0] = (unsigned char) cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char) (0xc0 | cp >> 6);
    o[1] = (unsigned char) (0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char) (0xe0 | cp >> 12);
    o[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    o[2] = (unsigned char) (0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (unsigned char) (0xf0 | cp >> 18);
  o[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
  o[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
  o[3] = (unsigned char) (0x80 | (cp & 0x3f));
  return 4;
}

static int hex4(const char *s, size_t n, size_t i, uint32_t *out) {
  if (n - i < 4) return -1;
  uint32_t v = 0;
  for (size_t k = 0; k < 4; k++) {
    int h = hexval(s[i + k]);
    if (h < 0) return -1;
    v = v << 4 | (uint32_t) h;
  }
  *out = v;
  return 0;
}

/* Decodes one character of raw string content s[*i, n) into o and advances *i.
 * Returns the number of bytes written to o (1..4) or CYMG_EPARSE. The caller
 * stops at the closing quote; a quote reaching here is unescaped content. */
static int decode_char(const char *s, size_t n, size_t *i, unsigned char o[4]) {
  unsigned char c = (unsigned char) s[*i];
  if (c == '"' || c < 0x20) return CYMG_EPARSE;
  if (c != '\\') {
    int len = utf8_len((const unsigned char *) s + *i, n - *i);
    if (len < 0) return CYMG_EPARSE;
    memcpy(o, s + *i, (size_t) len);
    *i += (size_t) len;
    return len;
  }
  if (n - *i < 2) return CYMG_EPARSE;
  char e = s[*i + 1];
  *i += 2;
  switch (e) {
    case '"': o[0] = '"'; return 1;
    case '\\': o[0] = '\\'; return 1;
    case '/': o[0] = '/'; return 1;
    case 'b': o[0] = '\b'; return 1;
    case 'f': o[0] = '\f'; return 1;
    case 'n': o[0] = '\n'; return 1;
    case 'r': o[0] = '\r'; return 1;
    case 't': o[0] = '\t'; return 1;
    case 'u': break;
    default: return CYMG_EPARSE;
  }
  uint32_t cp, lo;
  if (hex4(s, n, *i, &cp) < 0) return CYMG_EPARSE;
  *i += 4;
  if (cp >= 0xdc00 && cp <= 0xdfff) return CYMG_EPARSE; /* low half first */
  if (cp >= 0xd800 && cp <= 0xdbff) {
    /* A high surrogate only means something with a low one right after it. */
    if (n - *i < 6 || s[*i] != '\\' || s[*i + 1] != 'u') return CYMG_EPARSE;
    if (hex4(s, n, *i + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) return CYMG_EPARSE;
    *i += 6;
    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
  }
  return put_utf8(o, cp);
}

/* s[*i] is the opening quote; on success *i is just past the closing one. */
static int scan_string(const char *s, size_t n, size_t *i) {
  size_t p = *i + 1;
  unsigned char tmp[4];
  for (;;) {
    if (p >= n) return CYMG_EPARSE;
    if (s[p] == '"') break;
    /* Plain ASCII is the common case: skip the decoder for it. */
    unsigned char c = (unsigned char) s[p];
    if (c >= 0x20 && c < 0x80 && c != '\\') {
      p++;
      continue;
    }
    if (decode_char(s, n, &p, tmp) < 0) return CYMG_EPARSE;
  }
  *i = p + 1;
  return 0;
}

static size_t skip_digits(const char *s, size_t n, size_t i) {
  while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  return i;
}

/* number = [ "-" ] ( "0" / 1-9 *DIGIT ) [ "." 1*DIGIT ] [ ( "e" / "E" ) [ "+" / "-" ] 1*DIGIT ]
 * What follows the number is the caller's business: "01" fails there. */
static int scan_number(const char *s, size_t n, size_t *i) {
  size_t p = *i;
  if (p < n && s[p] == '-') p++;
  if (p >= n) return CYMG_EPARSE;
  if (s[p] == '0') {
    p++;
  } else if (s[p] >= '1' && s[p] <= '9') {
    p = skip_digits(s, n, p + 1);
  } else {
    return CYMG_EPARSE;
  }
  if (p < n && s[p] == '.') {
    size_t q = skip_digits(s, n, p + 1);
    if (q == p + 1) return CYMG_EPARSE;
    p = q;
  }
  if (p < n && (s[p] == 'e' || s[p] == 'E')) {
    p++;
    if (p < n && (s[p] == '+' || s[p] == '-')) p++;
    size_t q = skip_digits(s, n, p);
    if (q == p) return CYMG_EPARSE;
    p = q;
  }
  *i = p;
  return 0;
}

static int scan_literal(const char *s, size_t n, size_t *i, const char *word) {
  size_t len = strlen(word);
  if (n - *i < len || memcmp(s + *i, word, len) != 0) return CYMG_EPARSE;
  *i += len;
  return 0;
}

/* Scans one value starting at s[*i] (after whitespace), at most max_depth
 * containers deep. Returns its type and leaves *i just past it, or CYMG_EPARSE. */
static int scan_value(const char *s, size_t n, size_t *i, int max_depth) {
  unsigned char stack[(CYMG_JSON_MAX_DEPTH + 7) / 8 + 1];
  int depth = 0, type = 0;
  size_t p = skip_ws(s, n, *i);
  if (max_depth > CYMG_JSON_MAX_DEPTH) max_depth = CYMG_JSON_MAX_DEPTH;
  enum { VALUE, KEY, AFTER } state = VALUE;
  for (;;) {
    if (state == VALUE) {
      p = skip_ws(s, n, p);
      if (p >= n) return CYMG_EPARSE;
      int t;
      char c = s[p];
      if (c == '{' || c == '[') {
        if (depth >= max_depth) return CYMG_EPARSE;
        bool obj = c == '{';
        if (obj) {
          stack[depth / 8] |= (unsigned char) (1u << depth % 8);
        } else {
          stack[depth / 8] &= (unsigned char) ~(1u << depth % 8);
        }
        if (type == 0) type = obj ? CYMG_JSON_OBJECT : CYMG_JSON_ARRAY;
        depth++;
        p = skip_ws(s, n, p + 1);
        if (p < n && s[p] == (obj ? '}' : ']')) {
          p++;
          depth--;
          state = AFTER;
        } else {
          state = obj ? KEY : VALUE;
        }
        continue;
      }
      if (c == '"') {
        t = CYMG_JSON_STRING;
        if (scan_string(s, n, &p) < 0) return CYMG_EPARSE;
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        t = CYMG_JSON_NUMBER;
        if (scan_number(s, n, &p) < 0) return CYMG_EPARSE;
      } else if (c == 't' || c == 'f') {
        t = CYMG_JSON_BOOL;
        if (scan_literal(s, n, &p, c == 't' ? "true" : "false") < 0) return CYMG_EPARSE;
      } else if (c == 'n') {
        t = CYMG_JSON_NULL;
        if (scan_literal(s, n, &p, "null") < 0) return CYMG_EPARSE;
      } else {
        return CYMG_EPARSE;
      }
      if (type == 0) type = t;
      state = AFTER;
    } else if (state == KEY) {
      p = skip_ws(s, n, p);
      if (p >= n || s[p] != '"' || scan_string(s, n, &p) < 0) return CYMG_EPARSE;
      p = skip_ws(s, n, p);
      if (p >= n || s[p] != ':') return CYMG_EPARSE;
      p++;
      state = VALUE;
    } else {
      if (depth == 0) break;
      p = skip_ws(s, n, p);
      if (p >= n) return CYMG_EPARSE;
      bool obj = (stack[(depth - 1) / 8] >> (depth - 1) % 8) & 1u;
      if (s[p] == ',') {
        p++;
        state = obj ? KEY : VALUE;
      } else if (s[p] == (obj ? '}' : ']')) {
        p++;
        depth--;
      } else {
        return CYMG_EPARSE;
      }
    }
  }
  *i = p;
  return type;
}

int cymg_json_validate(cymg_str json) {
  if (json.buf == NULL) return CYMG_EPARSE;
  size_t p = 0;
  int type = scan_value(json.buf, json.len, &p, CYMG_JSON_MAX_DEPTH);
  if (type < 0) return type;
  if (skip_ws(json.buf, json.len, p) != json.len) return CYMG_EPARSE;
  return type;
}

int cymg_json_next(cymg_str c, size_t *offset, cymg_str *key, cymg_str *value) {
  if (offset == NULL || (c.buf == NULL && c.len > 0) || c.len == SIZE_MAX) return CYMG_EINVAL;
  const char *s = c.buf;
  size_t n = c.len, p = *offset;
  if (p > n) return 0; /* finished earlier */
  size_t open = skip_ws(s, n, 0);
  if (open >= n || (s[open] != '{' && s[open] != '[')) return CYMG_EPARSE;
  bool obj = s[open] == '{';
  char close = obj ? '}' : ']';
  if (p == 0) {
    p = skip_ws(s, n, open + 1);
    if (p < n && s[p] == close) goto done;
  } else {
    p = skip_ws(s, n, p);
    if (p >= n) return CYMG_EPARSE;
    if (s[p] == close) goto done;
    if (s[p] != ',') return CYMG_EPARSE;
    p++;
  }
  cymg_str k = {s + p, 0};
  if (obj) {
    p = skip_ws(s, n, p);
    size_t kstart = p;
    if (p >= n || s[p] != '"' || scan_string(s, n, &p) < 0) return CYMG_EPARSE;
    k = cymg_str_n(s + kstart + 1, p - kstart - 2);
    p = skip_ws(s, n, p);
    if (p >= n || s[p] != ':') return CYMG_EPARSE;
    p++;
  }
  p = skip_ws(s, n, p);
  size_t vstart = p;
  int type = scan_value(s, n, &p, CYMG_JSON_MAX_DEPTH - 1);
  if (type < 0) return type;
  if (key != NULL) *key = obj ? k : cymg_str_n(s + vstart, 0);
  if (value != NULL) *value = cymg_str_n(s + vstart, p - vstart);
  *offset = p;
  return type;

done:
  /* The container's span ends at its closing bracket (whitespace aside). */
  if (skip_ws(s, n, p + 1) != n) return CYMG_EPARSE;
  *offset = n + 1;
  return 0;
}

/* Strips the quotes of a quoted string; raw content is taken as it is. */
static int raw_content(cymg_str in, cymg_str *raw) {
  if (in.buf == NULL && in.len > 0) return CYMG_EINVAL;
  if (in.len > 0 && in.buf[0] == '"') {
    if (in.len < 2 || in.buf[in.len - 1] != '"') return CYMG_EPARSE;
    *raw = cymg_str_n(in.buf + 1, in.len - 2);
  } else {
    *raw = in;
  }
  return 0;
}

bool cymg_json_str_eq(cymg_str json_str, cymg_str s) {
  cymg_str raw;
  if (raw_content(json_str, &raw) < 0 || (s.buf == NULL && s.len > 0)) return false;
  size_t i = 0, j = 0;
  unsigned char o[4];
  while (i < raw.len) {
    int k = decode_char(raw.buf, raw.len, &i, o);
    if (k < 0 || s.len - j < (size_t) k || memcmp(s.buf + j, o, (size_t) k) != 0) return false;
    j += (size_t) k;
  }
  return j == s.len;
}

int cymg_json_unescape(cymg_str in, cymg_buf *out) {
  cymg_str raw;
  int rc = raw_content(in, &raw);
  if (rc < 0) return rc;
  if (out == NULL) return CYMG_EINVAL;
  if (raw.len > INT_MAX) return CYMG_ERANGE;
  /* Unescaping never lengthens (\uXXXX is 6 bytes for at most 3, a pair 12 for
   * 4), so one reservation covers the output. */
  rc = cymg_buf_reserve(out, raw.len);
  if (rc < 0) return rc;
  size_t start = out->len, i = 0;
  unsigned char *d = (unsigned char *) out->buf + start;
  while (i < raw.len) {
    int k = decode_char(raw.buf, raw.len, &i, d);
    if (k < 0) {
      out->buf[start] = '\0';
      return CYMG_EPARSE;
    }
    d += k;
  }
  size_t n = (size_t) (d - (unsigned char *) out->buf) - start;
  out->len = start + n;
  out->buf[out->len] = '\0';
  return (int) n;
}

int cymg_json_escape(cymg_buf *out, cymg_str s) {
  if (out == NULL || (s.buf == NULL && s.len > 0)) return CYMG_EINVAL;
  /* Worst case is 6 output bytes per input byte (\u00XX) plus the quotes. */
  if (s.len > (INT_MAX - 2) / 6) return CYMG_ERANGE;
  int rc = cymg_buf_reserve(out, s.len * 6 + 2);
  if (rc < 0) return rc;
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *) s.buf;
  char *d = out->buf + out->len;
  *d++ = '"';
  for (size_t i = 0; i < s.len;) {
    unsigned char c = p[i];
    if (c >= 0x80) {
      int len = utf8_len(p + i, s.len - i);
      if (len > 0) {
        memcpy(d, p + i, (size_t) len);
        d += len;
        i += (size_t) len;
      } else {
        memcpy(d, "\xef\xbf\xbd", 3);
        d += 3;
        i += (size_t) -len;
      }
      continue;
    }
    i++;
    if (c == '"' || c == '\\') {
      *d++ = '\\';
      *d++ = (char) c;
    } else if (c >= 0x20) {
      *d++ = (char) c;
    } else {
      const char *sh = NULL;
      switch (c) {
        case '\b': sh = "\\b"; break;
        case '\f': sh = "\\f"; break;
        case '\n': sh = "\\n"; break;
        case '\r': sh = "\\r"; break;
        case '\t': sh = "\\t"; break;
        default: break;
      }
      if (sh != NULL) {
        memcpy(d, sh, 2);
        d += 2;
      } else {
        memcpy(d, "\\u00", 4);
        d[4] = hex[c >> 4];
        d[5] = hex[c & 15];
        d += 6;
      }
    }
  }
  *d++ = '"';
  size_t n = (size_t) (d - (out->buf + out->len));
  out->len += n;
  out->buf[out->len] = '\0';
  return (int) n;
}
