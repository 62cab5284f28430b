/* HTTP/1.1 message heads: request line, status line, field lines and message
 * framing (RFC 9112 §2-§6). One left-to-right pass over the bytes, no allocation,
 * no copies: every result is a view into the input.
 *
 * Errors are detected strictly left to right and only from bytes already seen, so
 * a truncated input can only yield CYMG_EAGAIN or the error the whole input would
 * give; the tests check this at every length. Framing checks that need the whole
 * head (Content-Length with Transfer-Encoding, Host) run once it is complete. */
#include <limits.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/http.h"

/* Byte classes, one table lookup per byte in the hot loops. */
enum {
  C_TOKEN = 1,  /* tchar (RFC 9110 §5.6.2) */
  C_VALUE = 2,  /* field-value / reason octet: HTAB, SP, VCHAR, obs-text */
  C_TARGET = 4, /* request-target octet: VCHAR except '#', and obs-text */
  C_HOST = 8    /* URI authority characters, for Host and authority-form */
};

/* clang-format off */
static const unsigned char cls[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 15, 6, 3, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 6, 14, 6, 6,
    6, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6, 14, 7, 15,
    7, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6, 7, 6, 15, 0,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
};
/* clang-format on */

#define IS(c, k) (cls[(unsigned char)(c)] & (k))
#define FAIL(r)         \
  do {                  \
    *why = (r);         \
    return CYMG_EPARSE; \
  } while (0)

/* Eight bytes at a time: field values and targets are long runs of ordinary
 * octets, so test a whole word for "any control or DEL" before going bytewise.
 * The classic has-less-than trick is exact as a presence test. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline int word_has_below(uint64_t w, unsigned n) {
  return ((w - ONES * n) & ~w & HIGHS) != 0;
}

static inline int word_has_byte(uint64_t w, unsigned char b) {
  uint64_t x = w ^ (ONES * b);
  return ((x - ONES) & ~x & HIGHS) != 0;
}

static inline uint64_t load8(const char *p) {
  uint64_t w;
  memcpy(&w, p, sizeof(w));
  return w;
}

/* Lower-case ASCII compare of a token against a lower-case literal. For token
 * characters, c | 0x20 is a lower-case letter only when c is a letter. */
static inline bool tok_ieq(const char *s, size_t n, const char *lit, size_t lit_len) {
  if (n != lit_len) return false;
  for (size_t i = 0; i < n; i++) {
    if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i]) return false;
  }
  return true;
}
#define TOK_IEQ(s, n, lit) tok_ieq((s), (n), lit, sizeof(lit) - 1)

static inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

/* Framing facts gathered while reading fields. */
typedef struct framing {
  int64_t content_length; /* -1 until seen */
  bool is_request, http10;
  bool te, chunked, te_last_chunked;
  bool conn_close, conn_keepalive, conn_upgrade, upgrade, expect_continue;
  unsigned hosts;
} framing;

/* Content-Length: 1*DIGIT, possibly as a list of equal values (see http.h). */
static int on_content_length(framing *fr, const char *v, const char *e, int *why) {
  const char *p = v;
  for (;;) {
    while (p < e && is_ows(*p)) p++;
    if (p == e || *p < '0' || *p > '9') FAIL(CYMG_HTTP_ERR_CL_INVALID);
    int64_t n = 0;
    while (p < e && *p >= '0' && *p <= '9') {
      int d = *p++ - '0';
      if (n > (INT64_MAX - d) / 10) FAIL(CYMG_HTTP_ERR_CL_INVALID);
      n = n * 10 + d;
    }
    while (p < e && is_ows(*p)) p++;
    if (fr->content_length >= 0 && fr->content_length != n) FAIL(CYMG_HTTP_ERR_CL_CONFLICT);
    fr->content_length = n;
    if (p == e) return 0;
    if (*p++ != ',') FAIL(CYMG_HTTP_ERR_CL_INVALID);
  }
}

/* Skips a quoted-string starting at the opening quote; NULL when malformed. */
static const char *skip_quoted(const char *p, const char *e) {
  for (p++; p < e; p++) {
    if (*p == '"') return p + 1;
    if (*p == '\\') {
      if (++p == e || !IS(*p, C_VALUE)) return NULL;
    } else if (!IS(*p, C_VALUE)) {
      return NULL;
    }
  }
  return NULL;
}

/* Transfer-Encoding: #transfer-coding, each token *( OWS ";" OWS name=value ). */
static int on_transfer_encoding(framing *fr, const char *v, const char *e, int *why) {
  const char *p = v;
  bool any = false;
  if (fr->http10) FAIL(CYMG_HTTP_ERR_TE_HTTP10);
  fr->te = true;
  while (p < e) {
    if (*p == ',' || is_ows(*p)) { /* empty list elements are ignored (RFC 9110 §5.6.1) */
      p++;
      continue;
    }
    const char *t = p;
    while (p < e && IS(*p, C_TOKEN)) p++;
    if (p == t) FAIL(CYMG_HTTP_ERR_TE_INVALID);
    if (TOK_IEQ(t, (size_t)(p - t), "chunked")) {
      if (fr->chunked) FAIL(CYMG_HTTP_ERR_TE_CHUNKED_TWICE);
      fr->chunked = fr->te_last_chunked = true;
    } else {
      /* A request whose body we cannot decode cannot be framed: refuse it. */
      if (fr->is_request) {
        FAIL(fr->chunked ? CYMG_HTTP_ERR_TE_NOT_CHUNKED : CYMG_HTTP_ERR_TE_UNSUPPORTED);
      }
      fr->te_last_chunked = false;
    }
    any = true;
    for (;;) { /* parameters */
      const char *q = p;
      while (q < e && is_ows(*q)) q++;
      if (q == e || *q != ';') break;
      q++;
      while (q < e && is_ows(*q)) q++;
      const char *n = q;
      while (q < e && IS(*q, C_TOKEN)) q++;
      if (q == n || q == e || *q != '=') FAIL(CYMG_HTTP_ERR_TE_INVALID);
      q++;
      if (q < e && *q == '"') {
        if ((q = skip_quoted(q, e)) == NULL) FAIL(CYMG_HTTP_ERR_TE_INVALID);
      } else {
        n = q;
        while (q < e && IS(*q, C_TOKEN)) q++;
        if (q == n) FAIL(CYMG_HTTP_ERR_TE_INVALID);
      }
      p = q;
    }
    while (p < e && is_ows(*p)) p++;
    if (p < e && *p != ',') FAIL(CYMG_HTTP_ERR_TE_INVALID);
  }
  if (!any) FAIL(CYMG_HTTP_ERR_TE_INVALID);
  return 0;
}

/* Connection: #connection-option; only the options we act on are noted. */
static void on_connection(framing *fr, const char *p, const char *e) {
  while (p < e) {
    while (p < e && (*p == ',' || is_ows(*p))) p++;
    const char *t = p;
    while (p < e && *p != ',') p++;
    const char *te = p;
    while (te > t && is_ows(te[-1])) te--;
    size_t n = (size_t)(te - t);
    if (TOK_IEQ(t, n, "close"))
      fr->conn_close = true;
    else if (TOK_IEQ(t, n, "keep-alive"))
      fr->conn_keepalive = true;
    else if (TOK_IEQ(t, n, "upgrade"))
      fr->conn_upgrade = true;
  }
}

/* Acts on the fields that frame the message or the connection. The switch on
 * length keeps the common case (an uninteresting field) to one comparison. */
static int on_field(framing *fr, const char *name, size_t nlen, const char *v, const char *e,
                    int *why) {
  switch (nlen) {
    case 4:
      if (fr->is_request && TOK_IEQ(name, nlen, "host")) {
        if (++fr->hosts > 1) FAIL(CYMG_HTTP_ERR_HOST);
        for (const char *p = v; p < e; p++) {
          if (!IS(*p, C_HOST)) FAIL(CYMG_HTTP_ERR_HOST);
        }
      }
      break;
    case 6:
      if (TOK_IEQ(name, nlen, "expect") && TOK_IEQ(v, (size_t)(e - v), "100-continue")) {
        fr->expect_continue = true;
      }
      break;
    case 7:
      if (TOK_IEQ(name, nlen, "upgrade")) fr->upgrade = true;
      break;
    case 10:
      if (TOK_IEQ(name, nlen, "connection")) on_connection(fr, v, e);
      break;
    case 14:
      if (TOK_IEQ(name, nlen, "content-length")) return on_content_length(fr, v, e, why);
      break;
    case 17:
      if (TOK_IEQ(name, nlen, "transfer-encoding")) return on_transfer_encoding(fr, v, e, why);
      break;
    default: break;
  }
  return 0;
}

/* Reads field lines up to and including the empty line. On success *pp moves past
 * it. fr is NULL for trailers, whose fields frame nothing. */
static int parse_fields(const char **pp, const char *end, cymg_http_header *hdrs, size_t max,
                        size_t *num, framing *fr, int *why) {
  const char *p = *pp;
  size_t n = 0;
  for (;;) {
    if (p == end) return CYMG_EAGAIN;
    if (*p == '\r') {
      if (p + 1 == end) return CYMG_EAGAIN;
      if (p[1] != '\n') FAIL(CYMG_HTTP_ERR_BARE_CR);
      p += 2;
      break;
    }
    if (*p == '\n') {
      p++;
      break;
    }
    if (is_ows(*p)) FAIL(CYMG_HTTP_ERR_OBS_FOLD);
    if (n >= max) {
      *why = CYMG_HTTP_ERR_TOO_MANY_HEADERS;
      return CYMG_ELIMIT;
    }

    const char *name = p;
    while (p < end && IS(*p, C_TOKEN)) p++;
    if (p == end) return CYMG_EAGAIN;
    if (*p != ':' || p == name) {
      if (*p == '\0') FAIL(CYMG_HTTP_ERR_NUL);
      if (p > name && is_ows(*p)) {
        /* Which error depends on whether a colon follows the blanks. */
        while (p < end && is_ows(*p)) p++;
        if (p == end) return CYMG_EAGAIN;
        FAIL(*p == ':' ? CYMG_HTTP_ERR_WS_BEFORE_COLON : CYMG_HTTP_ERR_HEADER_NAME);
      }
      FAIL(CYMG_HTTP_ERR_HEADER_NAME);
    }
    size_t nlen = (size_t)(p - name);
    p++;

    while (p < end && is_ows(*p)) p++;
    const char *v = p, *ve;
    for (;;) {
      if (end - p >= 8) {
        uint64_t w = load8(p);
        if (!word_has_below(w, 0x20) && !word_has_byte(w, 0x7f)) {
          p += 8;
          continue;
        }
      }
      if (p == end) return CYMG_EAGAIN;
      if (IS(*p, C_VALUE)) {
        p++;
        continue;
      }
      ve = p;
      if (*p == '\r') {
        if (p + 1 == end) return CYMG_EAGAIN;
        if (p[1] != '\n') FAIL(CYMG_HTTP_ERR_BARE_CR);
        p += 2;
      } else if (*p == '\n') {
        p++;
      } else {
        FAIL(*p == '\0' ? CYMG_HTTP_ERR_NUL : CYMG_HTTP_ERR_HEADER_VALUE);
      }
      break;
    }
    while (ve > v && is_ows(ve[-1])) ve--;
    if (hdrs != NULL) {
      hdrs[n].name.buf = name;
      hdrs[n].name.len = nlen;
      hdrs[n].value.buf = v;
      hdrs[n].value.len = (size_t)(ve - v);
    }
    n++;
    if (fr != NULL) {
      int rc = on_field(fr, name, nlen, v, ve, why);
      if (rc != 0) return rc;
    }
  }
  *pp = p;
  *num = n;
  return 0;
}

/* "HTTP/" DIGIT "." DIGIT at p, checked as far as bytes go so that a prefix never
 * disagrees with the whole. Returns 0 and *minor, CYMG_EAGAIN or CYMG_EPARSE. */
static int parse_version(const char *p, const char *end, int *minor, int *why) {
  size_t avail = (size_t)(end - p);
  for (size_t i = 0; i < 8 && i < avail; i++) {
    char c = p[i];
    bool ok = i < 5 ? c == "HTTP/"[i] : i == 6 ? c == '.' : (c >= '0' && c <= '9');
    if (!ok) FAIL(c == '\0' ? CYMG_HTTP_ERR_NUL : CYMG_HTTP_ERR_VERSION);
  }
  if (avail < 8) return CYMG_EAGAIN;
  if (p[5] != '1') FAIL(CYMG_HTTP_ERR_VERSION_MAJOR);
  *minor = p[7] - '0';
  return 0;
}

/* The end of a start line at p: CRLF, or a bare LF (RFC 9112 §2.2). */
static int line_end(const char **pp, const char *end, int other, int *why) {
  const char *p = *pp;
  if (p == end) return CYMG_EAGAIN;
  if (*p == '\n') {
    *pp = p + 1;
    return 0;
  }
  if (*p != '\r') FAIL(*p == '\0' ? CYMG_HTTP_ERR_NUL : other);
  if (p + 1 == end) return CYMG_EAGAIN;
  if (p[1] != '\n') FAIL(CYMG_HTTP_ERR_BARE_CR);
  *pp = p + 2;
  return 0;
}

static void msg_init(cymg_http_msg *msg, cymg_http_header *hdrs) {
  memset(msg, 0, sizeof(*msg));
  msg->headers = hdrs;
  msg->content_length = -1;
}

/* Applies the whole-head framing rules and fills msg from fr. */
static int finish(cymg_http_msg *msg, const framing *fr, const char *head, const char *p,
                  size_t consumed, int *why) {
  if (fr->te && fr->content_length >= 0) FAIL(CYMG_HTTP_ERR_CL_AND_TE);
  if (fr->is_request && fr->hosts == 0 && !fr->http10) FAIL(CYMG_HTTP_ERR_HOST);
  unsigned f = 0;
  if (fr->te_last_chunked) f |= CYMG_HTTP_F_CHUNKED;
  if (fr->te) f |= CYMG_HTTP_F_TRANSFER_ENCODING;
  if (fr->http10) f |= CYMG_HTTP_F_HTTP10;
  if (fr->conn_close) f |= CYMG_HTTP_F_CONNECTION_CLOSE;
  if (!fr->conn_close && (!fr->http10 || fr->conn_keepalive)) f |= CYMG_HTTP_F_KEEPALIVE;
  /* RFC 9110 §7.8 and §10.1.1: both are ignored in HTTP/1.0 requests. */
  if (fr->upgrade && fr->conn_upgrade && !fr->http10) f |= CYMG_HTTP_F_UPGRADE;
  if (fr->expect_continue && fr->is_request && !fr->http10) f |= CYMG_HTTP_F_EXPECT_CONTINUE;
  msg->flags = f;
  msg->content_length = fr->content_length;
  msg->head.buf = head;
  msg->head.len = (size_t)(p - head);
  msg->message = msg->head;
  msg->body.buf = p;
  msg->body.len = 0;
  *why = CYMG_HTTP_ERR_NONE;
  return (int)consumed;
}

static bool str_is(cymg_str s, const char *lit, size_t n) {
  return s.len == n && memcmp(s.buf, lit, n) == 0;
}

/* Checks the request-target's form against the method (RFC 9112 §3.2) and sets
 * uri/query. t..e is the whole target, already known to be C_TARGET octets. */
static int split_target(cymg_http_msg *msg, const char *t, const char *e, int *why) {
  bool connect = str_is(msg->method, "CONNECT", 7);
  const char *q = memchr(t, '?', (size_t)(e - t));
  const char *pe = q != NULL ? q : e;
  const char *path = t;
  if (*t == '/') {
    if (connect) FAIL(CYMG_HTTP_ERR_TARGET);
  } else if (e - t == 1 && *t == '*') {
    if (!str_is(msg->method, "OPTIONS", 7)) FAIL(CYMG_HTTP_ERR_TARGET);
  } else if (connect) {
    /* authority-form: uri-host ":" port */
    const char *colon = NULL;
    for (const char *p = t; p < e; p++) {
      if (!IS(*p, C_HOST)) FAIL(CYMG_HTTP_ERR_TARGET);
      if (*p == ':') colon = p;
    }
    if (colon == NULL || colon == t || colon + 1 == e) FAIL(CYMG_HTTP_ERR_TARGET);
    for (const char *p = colon + 1; p < e; p++) {
      if (*p < '0' || *p > '9') FAIL(CYMG_HTTP_ERR_TARGET);
    }
  } else {
    /* absolute-form: scheme ":" hier-part; uri is the path after any authority. */
    const char *p = t;
    if (!((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')) FAIL(CYMG_HTTP_ERR_TARGET);
    while (p < pe && (((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9') ||
                      *p == '+' || *p == '-' || *p == '.')) {
      p++;
    }
    if (p == pe || *p != ':') FAIL(CYMG_HTTP_ERR_TARGET);
    p++;
    if (pe - p >= 2 && p[0] == '/' && p[1] == '/') {
      p += 2;
      while (p < pe && *p != '/') p++;
    }
    path = p;
  }
  msg->uri.buf = path;
  msg->uri.len = (size_t)(pe - path);
  if (q != NULL) {
    msg->query.buf = q + 1;
    msg->query.len = (size_t)(e - q - 1);
  } else {
    msg->query.buf = e;
  }
  return 0;
}

int cymg_http_parse_request(const char *buf, size_t len, cymg_http_msg *msg, cymg_http_header *hdrs,
                            size_t max_hdrs, int *reason) {
  int dummy, rc, minor = 1;
  int *why = reason != NULL ? reason : &dummy;
  *why = CYMG_HTTP_ERR_NONE;
  if (len > INT_MAX) len = INT_MAX; /* the return value must fit; heads are small */
  const char *p = buf, *end = buf + len;
  msg_init(msg, hdrs);

  /* RFC 9112 §2.2: ignore empty lines before the request line. */
  while (p < end && (*p == '\r' || *p == '\n')) {
    if (*p == '\r') {
      if (p + 1 == end) return CYMG_EAGAIN;
      if (p[1] != '\n') FAIL(CYMG_HTTP_ERR_BARE_CR);
      p++;
    }
    p++;
  }
  const char *head = p;

  while (p < end && IS(*p, C_TOKEN)) p++;
  if (p == end) return CYMG_EAGAIN;
  if (*p != ' ' || p == head) FAIL(*p == '\0' ? CYMG_HTTP_ERR_NUL : CYMG_HTTP_ERR_METHOD);
  msg->method.buf = head;
  msg->method.len = (size_t)(p - head);
  p++;

  const char *t = p;
  for (;;) {
    if (end - p >= 8) {
      uint64_t w = load8(p);
      if (!word_has_below(w, 0x21) && !word_has_byte(w, 0x7f) && !word_has_byte(w, '#')) {
        p += 8;
        continue;
      }
    }
    if (p == end) return CYMG_EAGAIN;
    if (!IS(*p, C_TARGET)) break;
    p++;
  }
  if (*p != ' ' || p == t) FAIL(*p == '\0' ? CYMG_HTTP_ERR_NUL : CYMG_HTTP_ERR_TARGET);
  msg->target.buf = t;
  msg->target.len = (size_t)(p - t);
  if ((rc = split_target(msg, t, p, why)) != 0) return rc;
  p++;

  if ((rc = parse_version(p, end, &minor, why)) != 0) return rc;
  msg->proto.buf = p;
  msg->proto.len = 8;
  p += 8;
  if ((rc = line_end(&p, end, CYMG_HTTP_ERR_VERSION, why)) != 0) return rc;

  framing fr = {.content_length = -1, .is_request = true, .http10 = minor == 0};
  if ((rc = parse_fields(&p, end, hdrs, max_hdrs, &msg->num_headers, &fr, why)) != 0) {
    return rc;
  }
  return finish(msg, &fr, head, p, (size_t)(p - buf), why);
}

int cymg_http_parse_response(const char *buf, size_t len, cymg_http_msg *msg,
                             cymg_http_header *hdrs, size_t max_hdrs, int *reason) {
  int dummy, rc, minor = 1;
  int *why = reason != NULL ? reason : &dummy;
  *why = CYMG_HTTP_ERR_NONE;
  if (len > INT_MAX) len = INT_MAX;
  const char *p = buf, *end = buf + len;
  msg_init(msg, hdrs);

  if ((rc = parse_version(p, end, &minor, why)) != 0) return rc;
  msg->proto.buf = p;
  msg->proto.len = 8;
  p += 8;
  if (p == end) return CYMG_EAGAIN;
  if (*p++ != ' ') FAIL(p[-1] == '\0' ? CYMG_HTTP_ERR_NUL : CYMG_HTTP_ERR_VERSION);

  int status = 0;
  for (int i = 0; i < 3; i++, p++) {
    if (p == end) return CYMG_EAGAIN;
    if (*p < (i == 0 ? '1' : '0') || *p > '9') FAIL(CYMG_HTTP_ERR_STATUS);
    status = status * 10 + (*p - '0');
  }
  msg->status = status;
  if (p == end) return CYMG_EAGAIN;
  msg->reason.buf = p;
  if (*p == ' ') {
    const char *r = ++p;
    while (p < end && IS(*p, C_VALUE)) p++;
    if (p == end) return CYMG_EAGAIN;
    msg->reason.buf = r;
    msg->reason.len = (size_t)(p - r);
    if ((rc = line_end(&p, end, CYMG_HTTP_ERR_REASON, why)) != 0) return rc;
  } else {
    if ((rc = line_end(&p, end, CYMG_HTTP_ERR_STATUS, why)) != 0) return rc;
  }

  framing fr = {.content_length = -1, .is_request = false, .http10 = minor == 0};
  if ((rc = parse_fields(&p, end, hdrs, max_hdrs, &msg->num_headers, &fr, why)) != 0) {
    return rc;
  }
  return finish(msg, &fr, buf, p, (size_t)(p - buf), why);
}

int cymg_http_parse_fields(const char *buf, size_t len, cymg_http_header *hdrs, size_t max_hdrs,
                           size_t *num_hdrs, int *reason) {
  int dummy, rc;
  int *why = reason != NULL ? reason : &dummy;
  size_t n = 0;
  *why = CYMG_HTTP_ERR_NONE;
  if (len > INT_MAX) len = INT_MAX;
  const char *p = buf;
  rc = parse_fields(&p, buf + len, hdrs, max_hdrs, &n, NULL, why);
  if (num_hdrs != NULL) *num_hdrs = n;
  return rc != 0 ? rc : (int)(p - buf);
}

int cymg_http_body_kind(const cymg_http_msg *msg, bool is_response, cymg_str request_method) {
  if (!is_response) {
    if (msg->flags & CYMG_HTTP_F_CHUNKED) return CYMG_HTTP_BODY_CHUNKED;
    return msg->content_length >= 0 ? CYMG_HTTP_BODY_LENGTH : CYMG_HTTP_BODY_NONE;
  }
  /* RFC 9112 §6.3, in its order. */
  if (str_is(request_method, "HEAD", 4) || msg->status < 200 || msg->status == 204 ||
      msg->status == 304) {
    return CYMG_HTTP_BODY_NONE;
  }
  if (str_is(request_method, "CONNECT", 7) && msg->status < 300) return CYMG_HTTP_BODY_NONE;
  if (msg->flags & CYMG_HTTP_F_TRANSFER_ENCODING) {
    return (msg->flags & CYMG_HTTP_F_CHUNKED) ? CYMG_HTTP_BODY_CHUNKED : CYMG_HTTP_BODY_CLOSE;
  }
  if (msg->content_length >= 0) return CYMG_HTTP_BODY_LENGTH;
  return CYMG_HTTP_BODY_CLOSE;
}
