/* HttpMessage and WsMessage: views of the HTTP message an MG_EV_HTTP_HDRS /
 * MG_EV_HTTP_MSG / MG_EV_WS_OPEN handler is given, and of the WebSocket message
 * or control frame of MG_EV_WS_MSG / MG_EV_WS_CTL.
 *
 * The C message points into the connection's receive buffer, which is reused as
 * soon as the handler returns. So the view holds a bare pointer only while the
 * handler runs: the event function makes it stale right after the call. A stale
 * view is falsy and its accessors give empty values ("", b"", [], 0, None or
 * the default), never an error: programs written for the package keep views in
 * lists and read them later (spec "Stale views"). Only the calls that would act
 * on the message (serve_dir, serve_file, ws_upgrade) refuse it, with ValueError.
 * Accessors copy out (str or bytes), so what they return stays valid. Text is
 * decoded as UTF-8 with invalid bytes replaced: a peer's bytes never make an
 * accessor raise. */
#include "cymg_py.h"

#include <stdint.h>
#include <string.h>

PyObject *cymgpy_http_message_new(cymgpy_state *st, const cymg_http_msg *msg) {
  PyTypeObject *tp = st->http_message_type;
  cymgpy_http_message *v = PyObject_New(cymgpy_http_message, tp);
  if (v == NULL) return NULL;
  v->msg = msg;
  v->owned = NULL;
  return (PyObject *) v;
}

void cymgpy_http_message_done(PyObject *view) {
  cymgpy_http_message *v = (cymgpy_http_message *) view;
  if (v->owned == NULL) v->msg = NULL; /* a copy() outlives every event it is passed to */
}

/* The message behind a view, NULL once stale (no exception: see above). */
static const cymg_http_msg *live(PyObject *self) {
  return ((cymgpy_http_message *) self)->msg;
}

const cymg_http_msg *cymgpy_http_message_get(cymgpy_state *st, PyObject *obj) {
  if (!PyObject_TypeCheck(obj, st->http_message_type)) {
    PyErr_Format(PyExc_TypeError, "expected the HttpMessage of the current event, not %.100s",
                 Py_TYPE(obj)->tp_name);
    return NULL;
  }
  const cymg_http_msg *m = live(obj);
  if (m == NULL) {
    PyErr_SetString(PyExc_ValueError,
                    "HttpMessage used after its handler returned: pass the message of the "
                    "current event");
  }
  return m;
}

/* A NUL-terminated copy of a str argument in a name, or NULL with TypeError.
 * Names with an embedded NUL cannot match anything: *nul is set for those. */
static const char *name_arg(PyObject *obj, const char *what, int *nul) {
  if (!PyUnicode_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what, Py_TYPE(obj)->tp_name);
    return NULL;
  }
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
  if (s != NULL) *nul = strlen(s) != (size_t) n;
  return s;
}

/* ---- properties ---- */

static PyObject *str_field(PyObject *self, size_t offset) {
  const cymg_http_msg *m = live(self);
  if (m == NULL) return PyUnicode_FromStringAndSize("", 0);
  const cymg_str *s = (const cymg_str *) ((const char *) m + offset);
  return cymgpy_str(s->buf, s->len);
}

static PyObject *get_method(PyObject *self, void *closure) {
  (void) closure;
  return str_field(self, offsetof(cymg_http_msg, method));
}

static PyObject *get_uri(PyObject *self, void *closure) {
  (void) closure;
  return str_field(self, offsetof(cymg_http_msg, uri));
}

static PyObject *get_query(PyObject *self, void *closure) {
  (void) closure;
  return str_field(self, offsetof(cymg_http_msg, query));
}

static PyObject *get_proto(PyObject *self, void *closure) {
  (void) closure;
  return str_field(self, offsetof(cymg_http_msg, proto));
}

static PyObject *get_body_text(PyObject *self, void *closure) {
  (void) closure;
  return str_field(self, offsetof(cymg_http_msg, body));
}

static PyObject *get_body_bytes(PyObject *self, void *closure) {
  (void) closure;
  const cymg_http_msg *m = live(self);
  if (m == NULL) return PyBytes_FromStringAndSize("", 0);
  return PyBytes_FromStringAndSize(m->body.len ? m->body.buf : "", (Py_ssize_t) m->body.len);
}

/* ---- methods ---- */

static PyObject *msg_header(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"name", "default", NULL};
  PyObject *name_obj, *dflt = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:header", kwlist, &name_obj, &dflt))
    return NULL;
  int nul = 0;
  const char *name = name_arg(name_obj, "header name", &nul);
  if (name == NULL) return NULL;
  const cymg_http_msg *m = live(self);
  const cymg_str *v = (nul || m == NULL) ? NULL : cymg_http_get_header(m, name);
  if (v == NULL) return Py_NewRef(dflt);
  return cymgpy_str(v->buf, v->len);
}

static PyObject *msg_headers(PyObject *self, PyObject *unused) {
  (void) unused;
  const cymg_http_msg *m = live(self);
  if (m == NULL) return PyList_New(0);
  PyObject *list = PyList_New((Py_ssize_t) m->num_headers);
  if (list == NULL) return NULL;
  for (size_t i = 0; i < m->num_headers; i++) {
    const cymg_http_header *h = &m->headers[i];
    PyObject *name = cymgpy_str(h->name.buf, h->name.len);
    PyObject *value = name ? cymgpy_str(h->value.buf, h->value.len) : NULL;
    PyObject *pair = value ? PyTuple_Pack(2, name, value) : NULL;
    Py_XDECREF(name);
    Py_XDECREF(value);
    if (pair == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t) i, pair);
  }
  return list;
}

static PyObject *msg_query_var(PyObject *self, PyObject *name_obj) {
  int nul = 0;
  const char *name = name_arg(name_obj, "variable name", &nul);
  if (name == NULL) return NULL;
  const cymg_http_msg *m = live(self);
  if (m == NULL || nul) Py_RETURN_NONE;
  cymg_buf out;
  cymg_buf_init(&out);
  int rc = cymg_http_var_buf(m->query, name, &out);
  PyObject *r;
  if (rc >= 0) {
    r = cymgpy_str(out.buf, out.len);
  } else if (rc == CYMG_ENOMEM) {
    r = PyErr_NoMemory();
  } else {
    /* Absent, or a value with a bad %-escape: either way there is no value. */
    r = Py_NewRef(Py_None);
  }
  cymg_buf_free(&out);
  return r;
}

static PyObject *msg_status(PyObject *self, PyObject *unused) {
  (void) unused;
  const cymg_http_msg *m = live(self);
  if (m == NULL) Py_RETURN_NONE;
  return PyLong_FromLong(m->status); /* 0 for a request */
}

static PyObject *msg_header_var(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"header_name", "var_name", NULL};
  PyObject *hname_obj, *vname_obj;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:header_var", kwlist, &hname_obj,
                                   &vname_obj))
    return NULL;
  int nul1 = 0, nul2 = 0;
  const char *hname = name_arg(hname_obj, "header_name", &nul1);
  const char *vname = hname ? name_arg(vname_obj, "var_name", &nul2) : NULL;
  if (vname == NULL) return NULL;
  const cymg_http_msg *m = live(self);
  const cymg_str *v = (m == NULL || nul1 || nul2) ? NULL : cymg_http_get_header(m, hname);
  cymg_str out;
  if (v == NULL || cymg_http_header_var(*v, vname, &out) < 0) Py_RETURN_NONE;
  return cymgpy_str(out.buf, out.len);
}

/* A slice of `from` moved to the same place in `to`; other slices (empty ones
 * pointing elsewhere) become empty slices at `to`. */
static cymg_str rebase(cymg_str s, cymg_str from, char *to) {
  uintptr_t p = (uintptr_t) s.buf, lo = (uintptr_t) from.buf;
  if (s.buf != NULL && p >= lo && p - lo <= from.len && s.len <= from.len - (p - lo))
    s.buf = to + (p - lo);
  else if (s.len == 0)
    s.buf = to;
  return s;
}

/* copy(): an HttpMessage that owns a copy of the message (one allocation: the
 * struct, the header array, the head and the body) and so stays valid after the
 * handler returns, e.g. to call ws_upgrade() later from another thread once an
 * application decided to accept (the ASGI adapter does). */
static PyObject *msg_copy(PyObject *self, PyObject *unused) {
  (void) unused;
  const cymg_http_msg *m = live(self);
  if (m == NULL) {
    PyErr_SetString(PyExc_ValueError, "HttpMessage.copy(): the message is stale (its handler "
                                      "returned); copy it inside the handler");
    return NULL;
  }
  size_t hsz = m->num_headers * sizeof(cymg_http_header);
  if (m->head.len > PY_SSIZE_T_MAX / 2 || m->body.len > PY_SSIZE_T_MAX / 2) return PyErr_NoMemory();
  size_t total = sizeof(cymg_http_msg) + hsz + m->head.len + m->body.len + 1;
  char *block = PyMem_Malloc(total);
  if (block == NULL) return PyErr_NoMemory();
  cymg_http_msg *c = (cymg_http_msg *) (void *) block;
  cymg_http_header *hdrs = (cymg_http_header *) (void *) (block + sizeof(cymg_http_msg));
  char *head = block + sizeof(cymg_http_msg) + hsz, *body = head + m->head.len;
  if (m->head.len) memcpy(head, m->head.buf, m->head.len);
  if (m->body.len) memcpy(body, m->body.buf, m->body.len);
  body[m->body.len] = '\0';
  *c = *m;
  c->method = rebase(m->method, m->head, head);
  c->uri = rebase(m->uri, m->head, head);
  c->query = rebase(m->query, m->head, head);
  c->proto = rebase(m->proto, m->head, head);
  c->reason = rebase(m->reason, m->head, head);
  c->target = rebase(m->target, m->head, head);
  c->head = (cymg_str){head, m->head.len};
  c->body = (cymg_str){body, m->body.len};
  c->message = (cymg_str){head, m->head.len + m->body.len};
  c->headers = hdrs;
  for (size_t i = 0; i < m->num_headers; i++) {
    hdrs[i].name = rebase(m->headers[i].name, m->head, head);
    hdrs[i].value = rebase(m->headers[i].value, m->head, head);
  }
  cymgpy_http_message *v = PyObject_New(cymgpy_http_message, Py_TYPE(self));
  if (v == NULL) {
    PyMem_Free(block);
    return NULL;
  }
  v->msg = c;
  v->owned = block;
  return (PyObject *) v;
}

/* ---- the type ---- */

static int msg_bool(PyObject *self) { return ((cymgpy_http_message *) self)->msg != NULL; }

static PyObject *msg_repr(PyObject *self) {
  const cymg_http_msg *m = ((cymgpy_http_message *) self)->msg;
  if (m == NULL) return PyUnicode_FromString("<cymongoose.HttpMessage stale>");
  if (m->status != 0) {
    return PyUnicode_FromFormat("<cymongoose.HttpMessage %d, %zu body bytes>", m->status,
                                m->body.len);
  }
  /* PyUnicode_FromFormat has no "%.*s" before Python 3.12: make the parts first. */
  PyObject *method = cymgpy_str(m->method.buf, m->method.len > 32 ? 32 : m->method.len);
  PyObject *uri = method ? cymgpy_str(m->uri.buf, m->uri.len > 200 ? 200 : m->uri.len) : NULL;
  PyObject *r = uri ? PyUnicode_FromFormat("<cymongoose.HttpMessage %U %U, %zu body bytes>",
                                           method, uri, m->body.len)
                    : NULL;
  Py_XDECREF(method);
  Py_XDECREF(uri);
  return r;
}

static void msg_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(tp);
}

static void http_msg_dealloc(PyObject *self) {
  PyMem_Free(((cymgpy_http_message *) self)->owned);
  msg_dealloc(self);
}

static PyMethodDef msg_methods[] = {
    {"header", (PyCFunction) (void (*)(void)) msg_header, METH_VARARGS | METH_KEYWORDS,
     "header(name, default=None) -> str: the first header with this name (any case)."},
    {"headers", msg_headers, METH_NOARGS, "headers() -> list of (name, value), in order."},
    {"query_var", msg_query_var, METH_O,
     "query_var(name) -> str or None: a query-string variable, %-decoded."},
    {"status", msg_status, METH_NOARGS,
     "status() -> int: the response status, 0 for a request (None once stale)."},
    {"header_var", (PyCFunction) (void (*)(void)) msg_header_var, METH_VARARGS | METH_KEYWORDS,
     "header_var(header_name, var_name) -> str or None: e.g. charset of Content-Type."},
    {"copy", msg_copy, METH_NOARGS,
     "copy() -> HttpMessage: an owned copy that stays valid after the handler returns."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef msg_getset[] = {
    {"method", get_method, NULL, "Request method (\"\" in a response).", NULL},
    {"uri", get_uri, NULL, "Request path, without the query.", NULL},
    {"query", get_query, NULL, "Query string without the '?' (\"\" when none).", NULL},
    {"proto", get_proto, NULL, "Protocol version as received, e.g. \"HTTP/1.1\".", NULL},
    {"body_bytes", get_body_bytes, NULL, "The body (b\"\" in MG_EV_HTTP_HDRS).", NULL},
    {"body_text", get_body_text, NULL, "The body as UTF-8 text, bad bytes replaced.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot msg_slots[] = {
    {Py_tp_doc, "The HTTP message of an MG_EV_HTTP_HDRS/MG_EV_HTTP_MSG event. Valid only "
                "while the handler runs; afterwards bool(msg) is False and its accessors give "
                "empty values."},
    {Py_tp_dealloc, http_msg_dealloc},
    {Py_tp_repr, msg_repr},
    {Py_nb_bool, msg_bool},
    {Py_tp_methods, msg_methods},
    {Py_tp_getset, msg_getset},
    {0, NULL},
};

PyType_Spec cymgpy_http_message_spec = {
    .name = "cymongoose.HttpMessage",
    .basicsize = sizeof(cymgpy_http_message),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = msg_slots,
};

/* ---- WsMessage ---- */

PyObject *cymgpy_ws_message_new(cymgpy_state *st, const cymg_ws_msg *msg) {
  PyTypeObject *tp = st->ws_message_type;
  cymgpy_ws_message *v = PyObject_New(cymgpy_ws_message, tp);
  if (v == NULL) return NULL;
  v->msg = msg;
  return (PyObject *) v;
}

void cymgpy_ws_message_done(PyObject *view) { ((cymgpy_ws_message *) view)->msg = NULL; }

static const cymg_ws_msg *ws_live(PyObject *self) { return ((cymgpy_ws_message *) self)->msg; }

static PyObject *ws_get_data(PyObject *self, void *closure) {
  (void) closure;
  const cymg_ws_msg *m = ws_live(self);
  if (m == NULL) return PyBytes_FromStringAndSize("", 0);
  return PyBytes_FromStringAndSize(m->data.len ? m->data.buf : "", (Py_ssize_t) m->data.len);
}

static PyObject *ws_get_text(PyObject *self, void *closure) {
  (void) closure;
  const cymg_ws_msg *m = ws_live(self);
  if (m == NULL) return PyUnicode_FromStringAndSize("", 0);
  return cymgpy_str(m->data.buf, m->data.len);
}

static PyObject *ws_get_flags(PyObject *self, void *closure) {
  (void) closure;
  const cymg_ws_msg *m = ws_live(self);
  if (m == NULL) return PyLong_FromLong(0);
  return PyLong_FromLong(m->flags);
}

static int ws_bool(PyObject *self) { return ((cymgpy_ws_message *) self)->msg != NULL; }

static PyObject *ws_repr(PyObject *self) {
  const cymg_ws_msg *m = ((cymgpy_ws_message *) self)->msg;
  if (m == NULL) return PyUnicode_FromString("<cymongoose.WsMessage stale>");
  return PyUnicode_FromFormat("<cymongoose.WsMessage op=%d, %zu bytes>",
                              (int) CYMG_WS_OPCODE(m->flags), m->data.len);
}

static PyGetSetDef ws_getset[] = {
    {"data", ws_get_data, NULL, "The payload as bytes.", NULL},
    {"text", ws_get_text, NULL,
     "The payload as str (UTF-8; text messages are valid UTF-8, other bytes are replaced).",
     NULL},
    {"flags", ws_get_flags, NULL,
     "The frame's first byte: FIN (0x80), RSV1 (0x40, the message arrived compressed) and the "
     "opcode in the low 4 bits (WEBSOCKET_OP_*, or 8 for close).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ws_slots[] = {
    {Py_tp_doc, "The WebSocket message (MG_EV_WS_MSG) or control frame (MG_EV_WS_CTL) of an "
                "event. Valid only while the handler runs; afterwards bool(msg) is False and "
                "its accessors give b'', '' and 0."},
    {Py_tp_dealloc, msg_dealloc},
    {Py_tp_repr, ws_repr},
    {Py_nb_bool, ws_bool},
    {Py_tp_getset, ws_getset},
    {0, NULL},
};

PyType_Spec cymgpy_ws_message_spec = {
    .name = "cymongoose.WsMessage",
    .basicsize = sizeof(cymgpy_ws_message),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ws_slots,
};
