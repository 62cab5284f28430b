/* Chunked transfer coding decoder (RFC 9112 §7.1): a byte-driven state machine
 * for the framing, memmove for the data, so a body of any size streams through a
 * fixed buffer and input may be split anywhere. The contract is in http.h. */
#include <limits.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/http.h"

/* Longest chunk extension text accepted on one size line. Extensions are rarely
 * used; the bound only keeps a peer from streaming an endless size line. */
#define MAX_EXT 4096
/* More digits than a 64-bit size needs is an attack, not padding. */
#define MAX_DIGITS 16

enum {
  S_SIZE,         /* hex digits of chunk-size */
  S_EXT_PRE,      /* after the size or an extension: BWS, ';' or CR */
  S_EXT_BWS,      /* BWS there: only ';' may follow, never the line end */
  S_EXT_NAME_PRE, /* after ';': BWS, then the name */
  S_EXT_NAME,
  S_EXT_NAME_END, /* BWS after a name: '=', ';' or CR */
  S_EXT_VAL_PRE,  /* after '=': BWS, then a token or quoted-string */
  S_EXT_VAL,
  S_EXT_QUOTED,
  S_EXT_QUOTED_ESC,
  S_SIZE_LF, /* CR of the size line seen */
  S_DATA,
  S_DATA_CR, /* chunk data done: CRLF must follow */
  S_DATA_LF,
  S_TRAILER, /* last chunk seen: waiting for the whole trailer section */
  S_DONE,
  S_ERROR
};

void cymg_http_chunked_init(cymg_http_chunked *st, uint64_t max_chunk_size) {
  memset(st, 0, sizeof(*st));
  st->max_chunk = max_chunk_size != 0 ? max_chunk_size : (uint64_t)INT64_MAX;
  st->state = S_SIZE;
}

bool cymg_http_chunked_done(const cymg_http_chunked *st) {
  return st->state == S_DONE;
}

bool cymg_http_chunked_in_trailer(const cymg_http_chunked *st) {
  return st->state == S_TRAILER;
}

int cymg_http_chunked_reason(const cymg_http_chunked *st) {
  return st->state == S_ERROR ? st->reason : CYMG_HTTP_ERR_NONE;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c) {
  return c == ' ' || c == '\t';
}

/* Octets allowed in a quoted-string (qdtext and quoted-pair's second octet). */
static bool is_qchar(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int fail(cymg_http_chunked *st, int reason) {
  st->state = S_ERROR;
  st->reason = (uint8_t)reason;
  return reason == CYMG_HTTP_ERR_CHUNK_TOO_LARGE || reason == CYMG_HTTP_ERR_CHUNK_EXT_TOO_LONG ||
                 reason == CYMG_HTTP_ERR_TRAILER_TOO_LARGE
             ? CYMG_ELIMIT
             : CYMG_EPARSE;
}

/* The size line is over: what follows is data, or the trailer section. */
static void size_line_done(cymg_http_chunked *st) {
  if (st->size == 0) {
    st->state = S_TRAILER;
  } else {
    st->remaining = st->size;
    st->state = S_DATA;
  }
}

/* Transition on one octet of a size line after its digits. Returns 0 or an error
 * reason. */
static int ext_step(cymg_http_chunked *st, unsigned char c) {
  if (c == '\n') return CYMG_HTTP_ERR_BARE_LF;
  if (++st->line_len > MAX_EXT) return CYMG_HTTP_ERR_CHUNK_EXT_TOO_LONG;
  switch (st->state) {
    case S_EXT_PRE:
    case S_EXT_BWS:
      if (is_ows(c))
        st->state = S_EXT_BWS;
      else if (c == ';')
        st->state = S_EXT_NAME_PRE;
      else if (c == '\r' && st->state == S_EXT_PRE)
        st->state = S_SIZE_LF;
      else
        return CYMG_HTTP_ERR_CHUNK_EXT;
      return 0;
    case S_EXT_NAME_PRE:
      if (is_ows(c)) return 0;
      if (!is_tchar(c)) return CYMG_HTTP_ERR_CHUNK_EXT;
      st->state = S_EXT_NAME;
      return 0;
    case S_EXT_NAME:
    case S_EXT_NAME_END:
      /* The grammar has BWS before ';' and '=' only, not before the line end:
       * trailing blanks on a size line are refused like any other oddity. */
      if (is_tchar(c) && st->state == S_EXT_NAME) return 0;
      if (is_ows(c))
        st->state = S_EXT_NAME_END;
      else if (c == '=')
        st->state = S_EXT_VAL_PRE;
      else if (c == ';')
        st->state = S_EXT_NAME_PRE;
      else if (c == '\r' && st->state == S_EXT_NAME)
        st->state = S_SIZE_LF;
      else
        return CYMG_HTTP_ERR_CHUNK_EXT;
      return 0;
    case S_EXT_VAL_PRE:
      if (is_ows(c)) return 0;
      if (c == '"')
        st->state = S_EXT_QUOTED;
      else if (is_tchar(c))
        st->state = S_EXT_VAL;
      else
        return CYMG_HTTP_ERR_CHUNK_EXT;
      return 0;
    case S_EXT_VAL:
      if (is_tchar(c)) return 0;
      if (is_ows(c))
        st->state = S_EXT_BWS;
      else if (c == ';')
        st->state = S_EXT_NAME_PRE;
      else if (c == '\r')
        st->state = S_SIZE_LF;
      else
        return CYMG_HTTP_ERR_CHUNK_EXT;
      return 0;
    case S_EXT_QUOTED:
      if (c == '"')
        st->state = S_EXT_PRE;
      else if (c == '\\')
        st->state = S_EXT_QUOTED_ESC;
      else if (!is_qchar(c))
        return CYMG_HTTP_ERR_CHUNK_EXT;
      return 0;
    default: /* S_EXT_QUOTED_ESC */
      if (!is_qchar(c)) return CYMG_HTTP_ERR_CHUNK_EXT;
      st->state = S_EXT_QUOTED;
      return 0;
  }
}

/* The trailer section is parsed whole, with the header field rules, except that
 * every line must end in CRLF: it decides where the message ends. The outcome
 * must not depend on how the input was split, so only the first
 * CYMG_HTTP_MAX_TRAILER bytes are looked at, and the fields are parsed only up to
 * the first bare LF: if the section ends before it, the LF is not ours; if a field
 * error comes first, that error wins; otherwise the bare LF is the error. */
static int trailer(cymg_http_chunked *st, const char *p, size_t n, size_t *used) {
  size_t m = n < CYMG_HTTP_MAX_TRAILER ? n : CYMG_HTTP_MAX_TRAILER, lf = m;
  for (const char *q = p; (q = memchr(q, '\n', m - (size_t)(q - p))) != NULL; q++) {
    if (q == p || q[-1] != '\r') {
      lf = (size_t)(q - p);
      break;
    }
  }
  int why = CYMG_HTTP_ERR_NONE;
  int rc = cymg_http_parse_fields(p, lf, NULL, SIZE_MAX, NULL, &why);
  if (rc > 0) {
    *used = (size_t)rc;
    st->state = S_DONE;
    return 0;
  }
  if (rc != CYMG_EAGAIN) return fail(st, why);
  if (lf < m) return fail(st, CYMG_HTTP_ERR_BARE_LF);
  if (n >= CYMG_HTTP_MAX_TRAILER) return fail(st, CYMG_HTTP_ERR_TRAILER_TOO_LARGE);
  *used = 0;
  return 0;
}

int cymg_http_chunked_decode(cymg_http_chunked *st, char *buf, size_t len, size_t *data_len) {
  size_t in = 0, out = 0;
  *data_len = 0;
  if (st->state == S_ERROR) return fail(st, st->reason);
  if (len > INT_MAX) len = INT_MAX;

  while (in < len) {
    unsigned char c = (unsigned char)buf[in];
    int r = 0;
    switch (st->state) {
      case S_SIZE: {
        int d = hex_value(c);
        if (d >= 0) {
          if (++st->digits > MAX_DIGITS) return fail(st, CYMG_HTTP_ERR_CHUNK_SIZE);
          st->size = st->size * 16 + (uint64_t)d;
          if (st->size > st->max_chunk) return fail(st, CYMG_HTTP_ERR_CHUNK_TOO_LARGE);
          in++;
          continue;
        }
        if (st->digits == 0) {
          return fail(st, c == '\n' ? CYMG_HTTP_ERR_BARE_LF : CYMG_HTTP_ERR_CHUNK_SIZE);
        }
        if (c == '\r') {
          st->state = S_SIZE_LF;
        } else if (c == '\n') {
          return fail(st, CYMG_HTTP_ERR_BARE_LF);
        } else if (is_ows(c) || c == ';') {
          st->state = S_EXT_PRE;
          r = ext_step(st, c);
        } else {
          return fail(st, CYMG_HTTP_ERR_CHUNK_SIZE);
        }
        break;
      }
      case S_SIZE_LF:
        if (c != '\n') return fail(st, CYMG_HTTP_ERR_BARE_CR);
        size_line_done(st);
        break;
      case S_DATA: {
        size_t n = len - in;
        if (n > st->remaining) n = (size_t)st->remaining;
        if (buf + out != buf + in) memmove(buf + out, buf + in, n);
        out += n;
        in += n;
        st->remaining -= n;
        if (st->remaining == 0) st->state = S_DATA_CR;
        continue;
      }
      case S_DATA_CR:
        if (c != '\r') return fail(st, CYMG_HTTP_ERR_CHUNK_CRLF);
        st->state = S_DATA_LF;
        break;
      case S_DATA_LF:
        if (c != '\n') return fail(st, CYMG_HTTP_ERR_CHUNK_CRLF);
        st->state = S_SIZE;
        st->size = 0;
        st->digits = 0;
        st->line_len = 0;
        break;
      case S_TRAILER: {
        size_t used = 0;
        int rc = trailer(st, buf + in, len - in, &used);
        if (rc != 0) return rc;
        in += used;
        *data_len = out;
        return (int)in;
      }
      case S_DONE: *data_len = out; return (int)in;
      default: r = ext_step(st, c); break;
    }
    if (r != 0) return fail(st, r);
    in++;
  }
  *data_len = out;
  return (int)in;
}
