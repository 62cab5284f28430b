/* JSON-RPC 2.0 dispatcher. Responses are written straight into the caller's
 * buffer; each one is appended whole or not at all (a failed write truncates back
 * to where it began), so a batch reply is always well-formed JSON. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/json.h"
#include "cymg/match.h"
#include "cymg/rpc.h"

typedef struct method {
  char *name;
  bool glob;
  cymg_rpc_fn fn;
  void *fn_data;
} method;

struct cymg_rpc {
  method *methods;
  size_t n, cap;
  unsigned flags; /* CYMG_RPC_* */
};

struct cymg_rpc_req {
  cymg_str frame, method, params, id;
  void *fn_data;
  cymg_str caps[CYMG_RPC_MAX_CAPS + 1];
  cymg_buf *out;
  const char *sep; /* written before the response: "," inside a batch */
  bool answered;
};

static bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int cymg_rpc_new(cymg_rpc **out) {
  if (out == NULL) return CYMG_EINVAL;
  *out = calloc(1, sizeof(**out));
  return *out == NULL ? CYMG_ENOMEM : 0;
}

void cymg_rpc_free(cymg_rpc *rpc) {
  if (rpc == NULL) return;
  for (size_t i = 0; i < rpc->n; i++) free(rpc->methods[i].name);
  free(rpc->methods);
  free(rpc);
}

int cymg_rpc_add(cymg_rpc *rpc, const char *name, cymg_rpc_fn fn, void *fn_data) {
  if (rpc == NULL || name == NULL || name[0] == '\0' || fn == NULL) return CYMG_EINVAL;
  for (size_t i = 0; i < rpc->n; i++) {
    if (strcmp(rpc->methods[i].name, name) == 0) {
      rpc->methods[i].fn = fn;
      rpc->methods[i].fn_data = fn_data;
      return 0;
    }
  }
  if (rpc->n == rpc->cap) {
    size_t cap = rpc->cap ? rpc->cap * 2 : 8;
    if (cap > SIZE_MAX / sizeof(method)) return CYMG_ENOMEM;
    method *m = realloc(rpc->methods, cap * sizeof(method));
    if (m == NULL) return CYMG_ENOMEM;
    rpc->methods = m;
    rpc->cap = cap;
  }
  size_t len = strlen(name);
  char *copy = malloc(len + 1);
  if (copy == NULL) return CYMG_ENOMEM;
  memcpy(copy, name, len + 1);
  method *m = &rpc->methods[rpc->n++];
  m->name = copy;
  m->glob = strpbrk(name, "?*#") != NULL;
  m->fn = fn;
  m->fn_data = fn_data;
  return 0;
}

int cymg_rpc_set_flags(cymg_rpc *rpc, unsigned flags) {
  if (rpc == NULL || (flags & ~(unsigned) CYMG_RPC_LENIENT) != 0) return CYMG_EINVAL;
  rpc->flags = flags;
  return 0;
}

size_t cymg_rpc_count(const cymg_rpc *rpc) {
  return rpc == NULL ? 0 : rpc->n;
}

const char *cymg_rpc_method(const cymg_rpc *rpc, size_t i) {
  return rpc == NULL || i >= rpc->n ? NULL : rpc->methods[i].name;
}

cymg_str cymg_rpc_req_frame(const cymg_rpc_req *req) {
  return req->frame;
}
cymg_str cymg_rpc_req_method(const cymg_rpc_req *req) {
  return req->method;
}
cymg_str cymg_rpc_req_params(const cymg_rpc_req *req) {
  return req->params;
}
cymg_str cymg_rpc_req_id(const cymg_rpc_req *req) {
  return req->id;
}
void *cymg_rpc_req_fn_data(const cymg_rpc_req *req) {
  return req->fn_data;
}
const cymg_str *cymg_rpc_req_captures(const cymg_rpc_req *req) {
  return req->caps;
}

static void truncate_to(cymg_buf *b, size_t len) {
  b->len = len;
  if (b->buf != NULL) b->buf[len] = '\0';
}

/* Appends sep + {"jsonrpc":"2.0","id":<id>, — the part every response shares. */
static int put_head(cymg_buf *out, const char *sep, cymg_str id) {
  if (id.len == 0) id = cymg_str_c("null");
  int rc = cymg_buf_printf(out, "%s{\"jsonrpc\":\"2.0\",\"id\":", sep);
  if (rc >= 0) rc = cymg_buf_append(out, id.buf, id.len);
  if (rc >= 0) rc = cymg_buf_append(out, ",", 1);
  return rc;
}

/* Appends a whole error response with an already formatted message. */
static int put_error(cymg_buf *out, const char *sep, cymg_str id, int code, cymg_str msg) {
  size_t start = out->len;
  int rc = put_head(out, sep, id);
  if (rc >= 0) rc = cymg_buf_printf(out, "\"error\":{\"code\":%d,\"message\":", code);
  if (rc >= 0) rc = cymg_json_escape(out, msg);
  if (rc >= 0) rc = cymg_buf_append(out, "}}", 2);
  if (rc < 0) truncate_to(out, start);
  return rc < 0 ? rc : 0;
}

int cymg_rpc_okv(cymg_rpc_req *req, const char *fmt, va_list ap) {
  if (req == NULL) return CYMG_EINVAL;
  if (req->answered) return CYMG_ESTATE;
  if (req->id.len == 0) {
    req->answered = true;
    return 0;
  }
  cymg_buf *out = req->out;
  size_t start = out->len;
  int rc = put_head(out, req->sep, req->id);
  if (rc >= 0) rc = cymg_buf_append(out, "\"result\":", 9);
  size_t res = out->len;
  if (rc >= 0) rc = fmt == NULL ? cymg_buf_append(out, "null", 4) : cymg_buf_vprintf(out, fmt, ap);
  /* A handler's typo must not put broken JSON on the wire. */
  if (rc >= 0 && cymg_json_validate(cymg_str_n(out->buf + res, out->len - res)) < 0) {
    rc = CYMG_EINVAL;
  }
  if (rc >= 0) rc = cymg_buf_append(out, "}", 1);
  if (rc < 0) {
    truncate_to(out, start);
    return rc;
  }
  req->answered = true;
  return 0;
}

int cymg_rpc_ok(cymg_rpc_req *req, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = cymg_rpc_okv(req, fmt, ap);
  va_end(ap);
  return rc;
}

int cymg_rpc_errv(cymg_rpc_req *req, int code, const char *fmt, va_list ap) {
  if (req == NULL) return CYMG_EINVAL;
  if (req->answered) return CYMG_ESTATE;
  if (req->id.len == 0) {
    req->answered = true;
    return 0;
  }
  cymg_buf msg = {NULL, 0, 0};
  int rc = fmt == NULL ? 0 : cymg_buf_vprintf(&msg, fmt, ap);
  if (rc >= 0) rc = put_error(req->out, req->sep, req->id, code, cymg_str_n(msg.buf, msg.len));
  cymg_buf_free(&msg);
  if (rc < 0) return rc;
  req->answered = true;
  return 0;
}

int cymg_rpc_err(cymg_rpc_req *req, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = cymg_rpc_errv(req, code, fmt, ap);
  va_end(ap);
  return rc;
}

static bool key_is(cymg_str key, const char *name) {
  return cymg_json_str_eq(key, cymg_str_c(name));
}

/* Handles one request object (or what should have been one). Returns 1 when a
 * response was appended, 0 when none is due, or a negative error. */
static int process_one(cymg_rpc *rpc, cymg_str v, int type, cymg_buf *out, const char *sep) {
  cymg_str none = {NULL, 0}, invalid = cymg_str_c("Invalid Request");
  if (type != CYMG_JSON_OBJECT) {
    int rc = put_error(out, sep, none, CYMG_RPC_INVALID_REQUEST, invalid);
    return rc < 0 ? rc : 1;
  }
  /* With duplicate members the first one counts, as in cymg_json_find. */
  cymg_str k, e, version = none, name = none, params = none, id = none;
  int t, vt = 0, nt = 0, pt = 0, it = 0;
  size_t off = 0;
  while ((t = cymg_json_next(v, &off, &k, &e)) > 0) {
    if (vt == 0 && key_is(k, "jsonrpc")) {
      vt = t;
      version = e;
    } else if (nt == 0 && key_is(k, "method")) {
      nt = t;
      name = e;
    } else if (pt == 0 && key_is(k, "params")) {
      pt = t;
      params = e;
    } else if (it == 0 && key_is(k, "id")) {
      it = t;
      id = e;
    }
  }
  if (t < 0) return t; /* cannot happen: the frame was validated */
  bool id_ok = it == CYMG_JSON_STRING || it == CYMG_JSON_NUMBER || it == CYMG_JSON_NULL;
  bool version_ok = (vt == CYMG_JSON_STRING && cymg_json_str_eq(version, cymg_str_c("2.0"))) ||
                    (vt == 0 && (rpc->flags & CYMG_RPC_LENIENT));
  if ((it != 0 && !id_ok) || !version_ok ||
      nt != CYMG_JSON_STRING || (pt != 0 && pt != CYMG_JSON_ARRAY && pt != CYMG_JSON_OBJECT)) {
    int rc = put_error(out, sep, id_ok ? id : none, CYMG_RPC_INVALID_REQUEST, invalid);
    return rc < 0 ? rc : 1;
  }

  cymg_rpc_req req;
  memset(&req, 0, sizeof(req));
  req.frame = v;
  req.params = params;
  req.id = id;
  req.out = out;
  req.sep = sep;
  /* Most names have no escapes and can be used in place. */
  cymg_buf unesc = {NULL, 0, 0};
  req.method = cymg_str_n(name.buf + 1, name.len - 2);
  if (memchr(name.buf, '\\', name.len) != NULL) {
    int rc = cymg_json_unescape(name, &unesc);
    if (rc < 0) return rc;
    req.method = cymg_str_n(unesc.buf, unesc.len);
  }
  const method *found = NULL;
  for (size_t i = 0; i < rpc->n && found == NULL; i++) {
    const method *m = &rpc->methods[i];
    if (m->glob) {
      if (cymg_match(req.method, cymg_str_c(m->name), req.caps, CYMG_RPC_MAX_CAPS + 1)) found = m;
    } else if (strlen(m->name) == req.method.len &&
               memcmp(m->name, req.method.buf, req.method.len) == 0) {
      found = m;
    }
  }
  req.caps[CYMG_RPC_MAX_CAPS] = none;
  int rc = 0;
  size_t start = out->len;
  if (found == NULL) {
    if (id.len > 0) {
      rc = put_error(out, sep, id, CYMG_RPC_METHOD_NOT_FOUND, cymg_str_c("Method not found"));
    }
  } else {
    if (!found->glob) req.caps[0] = none;
    req.fn_data = found->fn_data;
    found->fn(&req);
    if (!req.answered && id.len > 0) {
      rc = put_error(out, sep, id, CYMG_RPC_INTERNAL_ERROR,
                     cymg_str_c("Internal error: no response"));
    }
  }
  cymg_buf_free(&unesc);
  if (rc < 0) return rc;
  return out->len > start ? 1 : 0;
}

int cymg_rpc_process(cymg_rpc *rpc, cymg_str frame, cymg_buf *out) {
  if (rpc == NULL || out == NULL || (frame.buf == NULL && frame.len > 0)) return CYMG_EINVAL;
  size_t start = out->len;
  int rc, type = cymg_json_validate(frame);
  cymg_str none = {NULL, 0};
  if (type < 0) {
    rc = put_error(out, "", none, CYMG_RPC_PARSE_ERROR, cymg_str_c("Parse error"));
  } else {
    /* Trim the surrounding whitespace so the request span is exactly the value. */
    size_t i = 0, j = frame.len;
    while (is_ws(frame.buf[i])) i++;
    while (is_ws(frame.buf[j - 1])) j--;
    cymg_str v = cymg_str_n(frame.buf + i, j - i);
    if (type != CYMG_JSON_ARRAY) {
      rc = process_one(rpc, v, type, out, "");
    } else {
      size_t off = 0, elements = 0, answers = 0;
      cymg_str e;
      int t;
      rc = cymg_buf_append(out, "[", 1);
      while (rc >= 0 && (t = cymg_json_next(v, &off, NULL, &e)) > 0) {
        elements++;
        rc = process_one(rpc, e, t, out, answers > 0 ? "," : "");
        if (rc > 0) answers++;
      }
      if (rc >= 0 && elements == 0) {
        truncate_to(out, start);
        rc = put_error(out, "", none, CYMG_RPC_INVALID_REQUEST, cymg_str_c("Invalid Request"));
      } else if (rc >= 0 && answers == 0) {
        truncate_to(out, start);
      } else if (rc >= 0) {
        rc = cymg_buf_append(out, "]", 1);
      }
    }
  }
  if (rc < 0) {
    truncate_to(out, start);
    return rc;
  }
  size_t n = out->len - start;
  return n > INT_MAX ? INT_MAX : (int) n;
}
