/* URL parsing (RFC 3986 subset for network URLs) and percent-encoding. */
#include <arpa/inet.h>
#include <limits.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/str.h"
#include "cymg/url.h"

static bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int hexval(unsigned char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* RFC 3986 section 2.3. */
static bool is_unreserved(unsigned char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 section 2.2. */
static bool is_sub_delim(unsigned char c) {
  return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* True when s[i] starts a well-formed %XX escape. */
static bool pct_at(cymg_str s, size_t i) {
  return i + 2 < s.len && s.buf[i] == '%' &&
         hexval((unsigned char) s.buf[i + 1]) >= 0 && hexval((unsigned char) s.buf[i + 2]) >= 0;
}

/* Checks that s holds only unreserved, sub-delim, %XX and (when colon_ok) ':'
 * characters: the grammar of userinfo and reg-name. */
static bool valid_component(cymg_str s, bool colon_ok) {
  for (size_t i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char) s.buf[i];
    if (c == '%') {
      if (!pct_at(s, i)) return false;
      i += 2;
    } else if (!(is_unreserved(c) || is_sub_delim(c) || (colon_ok && c == ':'))) {
      return false;
    }
  }
  return true;
}

static cymg_str sub(cymg_str s, size_t from, size_t to) { return cymg_str_n(s.buf + from, to - from); }

/* Length of a valid scheme at the start of s followed by "://", 0 when there is no
 * "scheme://" prefix, or -1 when something that ends in "://" is not a scheme. */
static ptrdiff_t scheme_len(cymg_str s) {
  size_t i = 0;
  while (i < s.len && (is_alpha((unsigned char) s.buf[i]) || is_digit((unsigned char) s.buf[i]) ||
                       s.buf[i] == '+' || s.buf[i] == '-' || s.buf[i] == '.'))
    i++;
  if (s.len - i < 3 || memcmp(s.buf + i, "://", 3) != 0) return 0;
  if (i == 0 || !is_alpha((unsigned char) s.buf[0])) return -1;
  return (ptrdiff_t) i;
}

/* Validates a bracketed IPv6 literal's contents: address, optionally "%25" zone. */
static bool valid_ip6(cymg_str host) {
  cymg_str addr, zone;
  if (cymg_url_split_zone(host, &addr, &zone) > 0) {
    if (zone.len == 0) return false;
    for (size_t i = 0; i < zone.len; i++) {
      unsigned char c = (unsigned char) zone.buf[i];
      if (c == '%') {
        if (!pct_at(zone, i)) return false;
        i += 2;
      } else if (!is_unreserved(c)) {
        return false;
      }
    }
  } else if (memchr(host.buf, '%', host.len) != NULL) {
    return false; /* a zone must be introduced by "%25" (RFC 6874) */
  }
  char tmp[64];
  if (addr.len == 0 || addr.len >= sizeof(tmp)) return false;
  memcpy(tmp, addr.buf, addr.len);
  tmp[addr.len] = '\0';
  struct in6_addr a6;
  return inet_pton(AF_INET6, tmp, &a6) == 1;
}

int cymg_url_split_zone(cymg_str host, cymg_str *addr, cymg_str *zone) {
  cymg_str z = cymg_str_find(host, cymg_str_c("%25"));
  if (z.buf == NULL) {
    *addr = host;
    *zone = cymg_str_n(NULL, 0);
    return 0;
  }
  size_t at = (size_t) (z.buf - host.buf);
  *addr = sub(host, 0, at);
  *zone = sub(host, at + 3, host.len);
  return 1;
}

/* Parses the port digits; empty means "use the default". */
static bool parse_port(cymg_str p, uint16_t *out) {
  uint32_t v = 0;
  for (size_t i = 0; i < p.len; i++) {
    if (!is_digit((unsigned char) p.buf[i])) return false;
    v = v * 10 + (uint32_t) (p.buf[i] - '0');
    if (v > 65535) return false; /* checked per digit, so v never wraps */
  }
  *out = (uint16_t) v;
  return true;
}

int cymg_url_parse(cymg_str url, cymg_url *out) {
  if (url.buf == NULL || url.len == 0 || out == NULL) return CYMG_EBADURL;
  for (size_t i = 0; i < url.len; i++) {
    unsigned char c = (unsigned char) url.buf[i];
    if (c <= 0x20 || c == 0x7f) return CYMG_EBADURL;
  }
  cymg_url u;
  memset(&u, 0, sizeof(u));
  size_t i = 0;
  ptrdiff_t sl = scheme_len(url);
  if (sl < 0) return CYMG_EBADURL;
  if (sl > 0) {
    u.scheme = sub(url, 0, (size_t) sl);
    i = (size_t) sl + 3;
  }

  /* Authority: up to the first '/', '?' or '#', none of which it may contain. */
  size_t a_end = i;
  while (a_end < url.len && url.buf[a_end] != '/' && url.buf[a_end] != '?' && url.buf[a_end] != '#')
    a_end++;
  cymg_str auth = sub(url, i, a_end);
  const char *at = memchr(auth.buf, '@', auth.len);
  if (at != NULL) {
    size_t at_off = (size_t) (at - auth.buf);
    /* Two '@' is how "http://good.com@evil.com@x" confusions start: refuse. */
    if (memchr(at + 1, '@', auth.len - at_off - 1) != NULL) return CYMG_EBADURL;
    cymg_str ui = sub(auth, 0, at_off);
    const char *colon = memchr(ui.buf, ':', ui.len);
    if (colon != NULL) {
      size_t c_off = (size_t) (colon - ui.buf);
      u.user = sub(ui, 0, c_off);
      u.pass = sub(ui, c_off + 1, ui.len);
    } else {
      u.user = ui;
    }
    if (!valid_component(u.user, false) || !valid_component(u.pass, true)) return CYMG_EBADURL;
    auth = sub(auth, at_off + 1, auth.len);
  }

  cymg_str port_part = {NULL, 0};
  bool has_port = false;
  if (auth.len > 0 && auth.buf[0] == '[') {
    const char *rb = memchr(auth.buf, ']', auth.len);
    if (rb == NULL) return CYMG_EBADURL;
    size_t rb_off = (size_t) (rb - auth.buf);
    u.host = sub(auth, 1, rb_off);
    u.is_ip6 = true;
    if (!valid_ip6(u.host)) return CYMG_EBADURL;
    if (rb_off + 1 < auth.len) {
      if (auth.buf[rb_off + 1] != ':') return CYMG_EBADURL;
      port_part = sub(auth, rb_off + 2, auth.len);
      has_port = true;
    }
  } else {
    const char *colon = memchr(auth.buf, ':', auth.len);
    size_t h_end = colon ? (size_t) (colon - auth.buf) : auth.len;
    u.host = sub(auth, 0, h_end);
    if (!valid_component(u.host, false)) return CYMG_EBADURL;
    if (colon != NULL) {
      port_part = sub(auth, h_end + 1, auth.len);
      has_port = true;
    }
  }
  if (has_port) {
    if (!parse_port(port_part, &u.port_num)) return CYMG_EBADURL;
    u.port = port_part;
  }
  if (!has_port || port_part.len == 0) u.port_num = cymg_url_default_port(u.scheme);

  /* Path, query, fragment. */
  i = a_end;
  size_t p_end = i;
  while (p_end < url.len && url.buf[p_end] != '?' && url.buf[p_end] != '#') p_end++;
  if (p_end > i) u.path = sub(url, i, p_end);
  i = p_end;
  if (i < url.len && url.buf[i] == '?') {
    size_t q_end = i + 1;
    while (q_end < url.len && url.buf[q_end] != '#') q_end++;
    u.query = sub(url, i + 1, q_end);
    i = q_end;
  }
  if (i < url.len && url.buf[i] == '#') u.fragment = sub(url, i + 1, url.len);
  *out = u;
  return 0;
}

/* The one table of the schemes libcymg knows: default port, transport, TLS.
 * cymg_url_default_port(), cymg_url_is_tls() and the listen/connect code all
 * read it, so a scheme is added in one place. */
static const struct {
  const char *name;
  uint16_t port;
  unsigned flags; /* CYMG_URL_UDP, CYMG_URL_TLS */
} schemes[] = {
    {"tcp", 0, 0},      {"udp", 0, CYMG_URL_UDP},        {"http", 80, 0},
    {"https", 443, CYMG_URL_TLS}, {"ws", 80, 0},         {"wss", 443, CYMG_URL_TLS},
    {"mqtt", 1883, 0},  {"mqtts", 8883, CYMG_URL_TLS},   {"sntp", 123, CYMG_URL_UDP},
    {"tls", 0, CYMG_URL_TLS},
};

static int scheme_index(cymg_str scheme) {
  for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
    if (cymg_str_case_eq(scheme, cymg_str_c(schemes[i].name))) return (int) i;
  return -1;
}

unsigned cymg_url_scheme_flags(cymg_str scheme) {
  int i = scheme_index(scheme);
  return i < 0 ? 0 : CYMG_URL_KNOWN | schemes[i].flags;
}

uint16_t cymg_url_default_port(cymg_str scheme) {
  int i = scheme_index(scheme);
  return i < 0 ? 0 : schemes[i].port;
}

bool cymg_url_is_tls(cymg_str scheme) {
  return (cymg_url_scheme_flags(scheme) & CYMG_URL_TLS) != 0;
}

cymg_str cymg_url_uri(cymg_str url) {
  size_t i = 0;
  ptrdiff_t sl = scheme_len(url);
  if (sl > 0) i = (size_t) sl + 3;
  for (; i < url.len; i++)
    if (url.buf[i] == '/' || url.buf[i] == '?' || url.buf[i] == '#') return sub(url, i, url.len);
  return cymg_str_c("/");
}

int cymg_url_encode(cymg_str in, cymg_buf *out) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;
  for (size_t i = 0; i < in.len; i++) {
    size_t add = is_unreserved((unsigned char) in.buf[i]) ? 1 : 3;
    if (n > SIZE_MAX - add) return CYMG_ENOMEM;
    n += add;
  }
  int rc = cymg_buf_reserve(out, n); /* once, so failure leaves out unchanged */
  if (rc < 0) return rc;
  char *d = out->buf + out->len;
  for (size_t i = 0; i < in.len; i++) {
    unsigned char c = (unsigned char) in.buf[i];
    if (is_unreserved(c)) {
      *d++ = (char) c;
    } else {
      *d++ = '%';
      *d++ = hex[c >> 4];
      *d++ = hex[c & 15];
    }
  }
  out->len += n;
  out->buf[out->len] = '\0';
  return 0;
}

/* Validates escapes and returns the decoded length, or CYMG_EPARSE. Run before
 * writing anything so that a failure never leaves partial output. */
static int decoded_len(cymg_str in, size_t *len) {
  size_t n = 0;
  for (size_t i = 0; i < in.len; i++, n++) {
    if (in.buf[i] == '%') {
      if (!pct_at(in, i)) return CYMG_EPARSE;
      i += 2;
    }
  }
  *len = n;
  return 0;
}

/* Decodes already-validated input. */
static void decode_into(cymg_str in, char *d, bool plus_is_space) {
  for (size_t i = 0; i < in.len; i++) {
    char c = in.buf[i];
    if (c == '%') {
      *d++ = (char) ((hexval((unsigned char) in.buf[i + 1]) << 4) | hexval((unsigned char) in.buf[i + 2]));
      i += 2;
    } else {
      *d++ = (plus_is_space && c == '+') ? ' ' : c;
    }
  }
}

int cymg_url_decode(cymg_str in, cymg_buf *out, bool plus_is_space) {
  size_t n;
  int rc = decoded_len(in, &n);
  if (rc < 0) return rc;
  if ((rc = cymg_buf_reserve(out, n)) < 0) return rc;
  decode_into(in, out->buf + out->len, plus_is_space);
  out->len += n;
  out->buf[out->len] = '\0';
  return 0;
}

int cymg_url_decode_to(cymg_str in, char *dst, size_t dst_len, bool plus_is_space) {
  if (dst == NULL) return CYMG_EINVAL;
  if (dst_len > 0) dst[0] = '\0';
  size_t n;
  int rc = decoded_len(in, &n);
  if (rc < 0) return rc;
  if (n >= dst_len) return CYMG_ENOSPC;
  if (n > INT_MAX) return CYMG_ERANGE;
  decode_into(in, dst, plus_is_space);
  dst[n] = '\0';
  return (int) n;
}
