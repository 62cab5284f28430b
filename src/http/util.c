/* HTTP codec helpers: error texts and statuses, header lookup, parameters inside
 * field values, status reason phrases. */
#include <string.h>

#include "cymg/error.h"
#include "cymg/http.h"

const char *cymg_http_err_text(int reason) {
  switch (reason) {
    case CYMG_HTTP_ERR_NONE: return "no error";
    case CYMG_HTTP_ERR_METHOD: return "invalid method";
    case CYMG_HTTP_ERR_TARGET: return "invalid request-target";
    case CYMG_HTTP_ERR_VERSION: return "invalid HTTP version";
    case CYMG_HTTP_ERR_VERSION_MAJOR: return "HTTP version not supported";
    case CYMG_HTTP_ERR_STATUS: return "invalid status code";
    case CYMG_HTTP_ERR_REASON: return "invalid character in reason phrase";
    case CYMG_HTTP_ERR_BARE_CR: return "CR not followed by LF";
    case CYMG_HTTP_ERR_BARE_LF: return "LF without CR in chunked framing";
    case CYMG_HTTP_ERR_NUL: return "NUL byte in message head";
    case CYMG_HTTP_ERR_OBS_FOLD: return "obsolete line folding or whitespace-led field line";
    case CYMG_HTTP_ERR_WS_BEFORE_COLON: return "whitespace between field name and colon";
    case CYMG_HTTP_ERR_HEADER_NAME: return "invalid field name or missing colon";
    case CYMG_HTTP_ERR_HEADER_VALUE: return "invalid character in field value";
    case CYMG_HTTP_ERR_TOO_MANY_HEADERS: return "too many header fields";
    case CYMG_HTTP_ERR_HEAD_TOO_LARGE: return "message head too large";
    case CYMG_HTTP_ERR_CL_INVALID: return "invalid Content-Length";
    case CYMG_HTTP_ERR_CL_CONFLICT: return "conflicting Content-Length values";
    case CYMG_HTTP_ERR_CL_AND_TE: return "both Content-Length and Transfer-Encoding";
    case CYMG_HTTP_ERR_TE_INVALID: return "invalid Transfer-Encoding";
    case CYMG_HTTP_ERR_TE_NOT_CHUNKED: return "Transfer-Encoding does not end in chunked";
    case CYMG_HTTP_ERR_TE_CHUNKED_TWICE: return "chunked applied more than once";
    case CYMG_HTTP_ERR_TE_UNSUPPORTED: return "transfer coding not implemented";
    case CYMG_HTTP_ERR_TE_HTTP10: return "Transfer-Encoding in an HTTP/1.0 message";
    case CYMG_HTTP_ERR_HOST: return "missing, repeated or invalid Host";
    case CYMG_HTTP_ERR_CHUNK_SIZE: return "invalid chunk size";
    case CYMG_HTTP_ERR_CHUNK_TOO_LARGE: return "chunk too large";
    case CYMG_HTTP_ERR_CHUNK_EXT: return "invalid chunk extension";
    case CYMG_HTTP_ERR_CHUNK_EXT_TOO_LONG: return "chunk extension too long";
    case CYMG_HTTP_ERR_CHUNK_CRLF: return "chunk data not followed by CRLF";
    case CYMG_HTTP_ERR_TRAILER_TOO_LARGE: return "trailer section too large";
    default: return "unknown HTTP error";
  }
}

int cymg_http_err_status(int reason) {
  switch (reason) {
    case CYMG_HTTP_ERR_TOO_MANY_HEADERS:
    case CYMG_HTTP_ERR_HEAD_TOO_LARGE: return 431;
    case CYMG_HTTP_ERR_TE_UNSUPPORTED: return 501;
    case CYMG_HTTP_ERR_VERSION_MAJOR: return 505;
    default: return 400;
  }
}

static inline unsigned char lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool ieq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return false;
  }
  return true;
}

cymg_str *cymg_http_get_header(const cymg_http_msg *msg, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < msg->num_headers; i++) {
    cymg_http_header *h = &msg->headers[i];
    if (h->name.len == n && ieq(h->name.buf, name, n)) return &h->value;
  }
  return NULL;
}

static inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

static inline bool is_sep(char c) {
  return c == ';' || c == ',';
}

/* Does the ',' at p start a new name=value item (rather than sit inside a value
 * such as an HTTP date)? */
static bool comma_starts_item(const char *p, const char *e) {
  for (p++; p < e && is_ows(*p); p++) continue;
  const char *n = p;
  while (p < e && !is_sep(*p) && !is_ows(*p) && *p != '=' && *p != '"') p++;
  while (p < e && is_ows(*p)) p++;
  return p > n && p < e && *p == '=';
}

int cymg_http_header_var(cymg_str header_value, const char *var, cymg_str *out) {
  const char *p = header_value.buf, *e = p + header_value.len;
  size_t vlen = strlen(var);
  while (p < e) {
    while (p < e && (is_ows(*p) || is_sep(*p))) p++;
    if (p == e) break;
    const char *n = p;
    while (p < e && *p != '=' && !is_sep(*p)) p++;
    const char *ne = p;
    while (ne > n && is_ows(ne[-1])) ne--;
    bool match = (size_t)(ne - n) == vlen && ieq(n, var, vlen);
    cymg_str val = {p, 0};
    if (p < e && *p == '=') {
      for (p++; p < e && is_ows(*p); p++) continue;
      if (p < e && *p == '"') {
        const char *v = ++p;
        while (p < e && *p != '"') p += (*p == '\\' && p + 1 < e) ? 2 : 1;
        if (p >= e) return CYMG_EPARSE;
        val.buf = v;
        val.len = (size_t)(p - v);
        p++;
        while (p < e && !is_sep(*p)) p++; /* ignore junk after the closing quote */
      } else {
        const char *v = p;
        while (p < e && *p != ';' && !(*p == ',' && comma_starts_item(p, e))) p++;
        const char *ve = p;
        while (ve > v && is_ows(ve[-1])) ve--;
        val.buf = v;
        val.len = (size_t)(ve - v);
      }
    }
    if (match) {
      *out = val;
      return 0;
    }
  }
  return CYMG_ENOTFOUND;
}

const char *cymg_http_status_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "";
  }
}
