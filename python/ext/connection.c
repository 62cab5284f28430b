/* Connection: the Python face of one C connection, the event function that
 * turns C events into handler calls, the HTTP reply methods and the WebSocket
 * methods. */
#include "cymg_py.h"

#include <stdio.h>
#include <string.h>

#include "structmember.h"

cymgpy_conn *cymgpy_conn_new(cymgpy_state *st, PyObject *handler) {
  PyTypeObject *tp = st->connection_type;
  cymgpy_conn *w = (cymgpy_conn *) tp->tp_alloc(tp, 0);
  if (w == NULL) return NULL;
  w->handler = Py_XNewRef(handler);
  w->state = CYMGPY_UNBOUND;
  return w;
}

/* ---- event delivery ---- */

PyObject *cymgpy_event_data(cymgpy_state *st, int ev, void *ev_data) {
  switch (ev) {
    case CYMG_EV_HTTP_HDRS:
    case CYMG_EV_HTTP_MSG:
    case CYMG_EV_WS_OPEN: /* the upgrade request (server) or the 101 response (client) */
      if (ev_data == NULL) Py_RETURN_NONE;
      return cymgpy_http_message_new(st, ev_data);
    case CYMG_EV_WS_MSG:
    case CYMG_EV_WS_CTL:
      if (ev_data == NULL) Py_RETURN_NONE;
      return cymgpy_ws_message_new(st, ev_data);
    case CYMG_EV_ERROR: {
      const char *msg = ev_data ? ev_data : "";
      return PyUnicode_DecodeUTF8(msg, (Py_ssize_t) strlen(msg), "replace");
    }
    case CYMG_EV_READ:
      if (ev_data == NULL) Py_RETURN_NONE;
      return PyLong_FromSize_t(*(const size_t *) ev_data);
    case CYMG_EV_WAKEUP: {
      const cymg_str *s = ev_data;
      return PyBytes_FromStringAndSize(s->buf, (Py_ssize_t) s->len);
    }
    case CYMG_EV_MQTT_MSG:
    case CYMG_EV_MQTT_CMD:
      if (ev_data == NULL) Py_RETURN_NONE;
      return cymgpy_mqtt_message_new(st, ev_data);
    case CYMG_EV_MQTT_OPEN:
      return PyLong_FromLong(*(const int *) ev_data);
    case CYMG_EV_SNTP_TIME:
      return PyLong_FromLongLong(*(const int64_t *) ev_data);
    default:
      Py_RETURN_NONE;
  }
}

/* The views point into buffers reused once the handler returns. */
void cymgpy_views_done(cymgpy_state *st, PyObject *data) {
  if (Py_IS_TYPE(data, st->http_message_type)) {
    cymgpy_http_message_done(data);
  } else if (Py_IS_TYPE(data, st->ws_message_type)) {
    cymgpy_ws_message_done(data);
  } else if (Py_IS_TYPE(data, st->mqtt_message_type)) {
    cymgpy_mqtt_message_done(data);
  }
}

/* Drops the reference the C connection held; c is freed right after. */
static void unbind(cymg_conn *c, cymgpy_conn *w) {
  cymg_conn_set_userdata(c, NULL); /* before the DECREF: a GC pass must not see it */
  cymgpy_conn_remember(w, c);
  w->conn = NULL;
  w->state = CYMGPY_CLOSED;
  Py_CLEAR(w->ws_queue); /* a handshake that never completed: nothing to send them on */
  w->ws_queued = 0;
  Py_DECREF(w);
}

static int ws_send_op(cymg_conn *c, int op, const char *buf, size_t len);
static void ws_flush_queue(cymg_conn *c, cymgpy_conn *w);

/* The wrapper for c, creating one for a newly accepted connection (which starts
 * with its listener's user pointer). NULL only on allocation failure. */
static cymgpy_conn *wrapper_for(cymgpy_manager *m, cymg_conn *c) {
  cymgpy_conn *w = cymg_conn_userdata(c);
  if (w == NULL || w->conn == c) return w;
  if (w->state == CYMGPY_UNBOUND) { /* first event of a listen()/connect() */
    w->conn = c;
    w->id = cymg_conn_id(c);
    w->state = CYMGPY_OPEN;
    return w;
  }
  cymgpy_conn *nw = cymgpy_conn_new(m->st, w->handler);
  if (nw == NULL) {
    cymg_conn_set_userdata(c, NULL);
    return NULL;
  }
  nw->conn = c;
  nw->id = cymg_conn_id(c);
  nw->state = CYMGPY_OPEN;
  cymg_conn_set_userdata(c, nw); /* the new reference belongs to the C connection */
  return nw;
}

/* MG_EV_POLL comes to every connection at every poll: the shortest path, for a
 * connection whose wrapper is bound. Nothing is allocated (the event number is
 * a cached small int, the data None) and the handler is called with the
 * arguments on the stack. */
static void poll_event(cymgpy_manager *m, cymgpy_conn *w) {
  PyObject *handler = w->handler ? w->handler : m->handler;
  if (handler == NULL || m->quiet) return;
  Py_INCREF(w);
  Py_INCREF(handler);
  PyObject *evo = PyLong_FromLong(CYMG_EV_POLL); /* small int: no allocation */
  PyObject *argv[3] = {(PyObject *) w, evo, Py_None};
  PyObject *r = PyObject_Vectorcall(handler, argv, 3, NULL);
  if (r == NULL) cymgpy_report_exception(m);
  Py_XDECREF(r);
  Py_DECREF(evo);
  Py_DECREF(handler);
  Py_DECREF(w);
}

void cymgpy_conn_event(cymg_conn *c, int ev, void *ev_data) {
  cymgpy_manager *m = cymgpy_manager_of(c);
  if (ev == CYMG_EV_POLL) {
    cymgpy_conn *pw = cymg_conn_userdata(c);
    if (pw != NULL && pw->conn == c) {
      poll_event(m, pw);
      return;
    }
  }
  /* Bytes a plain connection has received are the handler's to read during READ;
   * nothing in the Python API consumes them, so the binding does it afterwards
   * (a protocol layer, when present, consumes for itself). */
  size_t consume =
      (ev == CYMG_EV_READ && cymg_conn_proto(c) == NULL) ? cymg_conn_recv_len(c) : 0;
  cymgpy_conn *w = wrapper_for(m, c);
  if (w == NULL) {
    if (ev == CYMG_EV_OPEN) {
      /* No memory for a wrapper: the connection cannot be served, drop it. */
      PyErr_Clear();
      cymg_close(c);
    }
    if (consume) cymg_conn_consume(c, consume);
    return;
  }
  Py_INCREF(w);
  /* MG_EV_POLL costs nothing on a connection no handler would see it on. */
  if (ev == CYMG_EV_OPEN && m->poll_events && w->handler == NULL && m->handler == NULL)
    cymg_conn_set_poll(c, false);
  if (ev == CYMG_EV_HTTP_HDRS) w->http_sent = 0; /* a new message begins */
  if (ev == CYMG_EV_WS_OPEN) {
    w->ws_open = 1;
    /* What ws_send() queued during a client's handshake goes out first. */
    if (w->ws_queue != NULL) ws_flush_queue(c, w);
  }
  PyObject *handler = w->handler ? w->handler : m->handler;
  if (handler != NULL && !m->quiet) {
    Py_INCREF(handler);
    PyObject *data = cymgpy_event_data(m->st, ev, ev_data);
    PyObject *evo = data ? PyLong_FromLong(ev) : NULL;
    PyObject *argv[3] = {(PyObject *) w, evo, data};
    PyObject *r = evo ? PyObject_Vectorcall(handler, argv, 3, NULL) : NULL;
    if (r == NULL) cymgpy_report_exception(m);
    if (data != NULL) cymgpy_views_done(m->st, data);
    /* A request whose handler failed before writing anything still gets an
     * answer, so the client is not left waiting and keep-alive goes on. */
    if (r == NULL && ev == CYMG_EV_HTTP_MSG && w->http_sent == 0 && !cymg_conn_is_client(c) &&
        !cymg_conn_is_closing(c) &&
        cymg_http_reply(c, 500, "Content-Type: text/plain\r\n", "Internal Server Error\n") == 0)
      w->http_sent |= CYMGPY_SENT_REPLY;
    Py_XDECREF(r);
    Py_XDECREF(evo);
    Py_XDECREF(data);
    Py_DECREF(handler);
  }
  if (consume) cymg_conn_consume(c, consume);
  if (ev == CYMG_EV_CLOSE && w->mqtt_key != NULL) cymgpy_mqtt_keep_session(m, c, w);
  if (ev == CYMG_EV_CLOSE && w->conn == c) unbind(c, w);
  Py_DECREF(w);
}

/* ---- access guards ---- */

static cymg_conn *live(cymgpy_conn *w) {
  if (w->conn == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "connection is closed");
    return NULL;
  }
  return w->conn;
}

/* For calls that change C state; they run under the call lock (the method
 * table points at their *_locked wrappers), from any thread. */
static cymg_conn *live_mut(cymgpy_conn *w) { return live(w); }

/* ---- methods ---- */

static PyObject *conn_send(PyObject *self, PyObject *data) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  cymg_conn *c = live_mut(w);
  if (c == NULL) return NULL;
  int rc;
  if (PyUnicode_Check(data)) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(data, &n);
    if (s == NULL) return NULL;
    rc = cymg_send(c, s, (size_t) n);
  } else {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
      PyErr_Clear();
      return PyErr_Format(PyExc_TypeError, "send() expects bytes-like data or str, not %.100s",
                          Py_TYPE(data)->tp_name);
    }
    rc = cymg_send(c, view.buf, (size_t) view.len);
    PyBuffer_Release(&view);
  }
  if (rc < 0) return cymgpy_raise_rc("send", rc);
  w->http_sent |= CYMGPY_SENT_RAW;
  Py_RETURN_NONE;
}

static PyObject *peek(PyObject *self, PyObject *args, PyObject *kwargs, int recv) {
  static char *kwlist[] = {"length", NULL};
  Py_ssize_t length = -1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, recv ? "|n:recv_data" : "|n:send_data", kwlist,
                                   &length))
    return NULL;
  if (length < -1) {
    return PyErr_Format(PyExc_ValueError, "length must be >= 0, or -1 for all, not %zd", length);
  }
  cymg_conn *c = ((cymgpy_conn *) self)->conn;
  if (c == NULL) return PyBytes_FromStringAndSize("", 0); /* closed: the buffers are gone */
  cymg_str s = recv ? cymg_conn_recv_data(c) : cymg_conn_send_data(c);
  size_t n = s.len;
  if (length >= 0 && (size_t) length < n) n = (size_t) length;
  return PyBytes_FromStringAndSize(n ? s.buf : "", (Py_ssize_t) n);
}

static PyObject *conn_recv_data(PyObject *self, PyObject *args, PyObject *kwargs) {
  return peek(self, args, kwargs, 1);
}

static PyObject *conn_send_data(PyObject *self, PyObject *args, PyObject *kwargs) {
  return peek(self, args, kwargs, 0);
}

static PyObject *conn_error(PyObject *self, PyObject *arg) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  if (!PyUnicode_Check(arg)) {
    return PyErr_Format(PyExc_TypeError, "error() expects a str message, not %.100s",
                        Py_TYPE(arg)->tp_name);
  }
  const char *msg = PyUnicode_AsUTF8(arg);
  if (msg == NULL) return NULL;
  cymg_conn *c = live_mut(w);
  if (c == NULL) return NULL;
  cymgpy_manager *m = cymgpy_manager_of(c);
  cymg_error(c, "%s", msg); /* ERROR is delivered now, CLOSE at the end of the poll */
  if (cymgpy_raise_pending(m) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *conn_close(PyObject *self, PyObject *unused) {
  (void) unused;
  if (((cymgpy_conn *) self)->conn == NULL) Py_RETURN_NONE; /* already closed: nothing to do */
  cymg_conn *c = live_mut((cymgpy_conn *) self);
  if (c == NULL) return NULL;
  cymg_close(c);
  Py_RETURN_NONE;
}

static PyObject *conn_drain(PyObject *self, PyObject *unused) {
  (void) unused;
  if (((cymgpy_conn *) self)->conn == NULL) Py_RETURN_NONE; /* already closed: nothing to do */
  cymg_conn *c = live_mut((cymgpy_conn *) self);
  if (c == NULL) return NULL;
  cymg_drain(c);
  Py_RETURN_NONE;
}

/* sntp_request(): one more request on an sntp_connect() connection. */
static PyObject *conn_sntp_request(PyObject *self, PyObject *unused) {
  (void) unused;
  cymg_conn *c = live_mut((cymgpy_conn *) self);
  if (c == NULL) return NULL;
  int rc = cymg_sntp_request(c);
  if (rc == CYMG_ESTATE) {
    PyErr_SetString(PyExc_RuntimeError, "sntp_request: not an SNTP connection (sntp_connect)");
    return NULL;
  }
  if (rc == CYMG_ECLOSED) {
    PyErr_SetString(PyExc_RuntimeError, "connection is closed");
    return NULL;
  }
  if (rc < 0) return cymgpy_raise_rc("sntp_request", rc);
  Py_RETURN_NONE;
}

/* http_stream_body(): during MG_EV_HTTP_HDRS of a request, the body is handed
 * over in pieces instead of buffered: MG_EV_READ with the piece's length n
 * (recv_data(n) reads it; it is gone when the handler returns), then
 * MG_EV_HTTP_MSG with an empty body. */
static PyObject *conn_http_stream_body(PyObject *self, PyObject *unused) {
  (void) unused;
  cymg_conn *c = live_mut((cymgpy_conn *) self);
  if (c == NULL) return NULL;
  int rc = cymg_conn_is_client(c) ? CYMG_ESTATE : cymg_http_stream_body(c);
  if (rc == CYMG_ESTATE) {
    PyErr_SetString(PyExc_RuntimeError,
                    "http_stream_body: only during MG_EV_HTTP_HDRS of a request on an HTTP server "
                    "connection");
    return NULL;
  }
  if (rc < 0) return cymgpy_raise_rc("http_stream_body", rc);
  Py_RETURN_NONE;
}

/* pause_reading() / resume_reading(): on a closed connection, nothing to do. */
static PyObject *set_paused(PyObject *self, bool paused) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  if (w->conn == NULL) Py_RETURN_NONE;
  int rc = cymg_conn_pause_read(w->conn, paused);
  if (rc == CYMG_ESTATE) {
    PyErr_SetString(PyExc_RuntimeError, "a listener cannot pause reading");
    return NULL;
  }
  if (rc < 0) return cymgpy_raise_rc(paused ? "pause_reading" : "resume_reading", rc);
  Py_RETURN_NONE;
}

static PyObject *conn_pause_reading(PyObject *self, PyObject *unused) {
  (void) unused;
  return set_paused(self, true);
}

static PyObject *conn_resume_reading(PyObject *self, PyObject *unused) {
  (void) unused;
  return set_paused(self, false);
}

/* resolve(url): a bare name or a URL (port from it, else the scheme's); then
 * MG_EV_RESOLVE with remote_addr set, or MG_EV_ERROR and close. */
static PyObject *conn_resolve(PyObject *self, PyObject *arg) {
  if (!PyUnicode_Check(arg)) {
    return PyErr_Format(PyExc_TypeError, "resolve() expects a str name or URL, not %.100s",
                        Py_TYPE(arg)->tp_name);
  }
  Py_ssize_t n;
  const char *url = PyUnicode_AsUTF8AndSize(arg, &n);
  if (url == NULL) return NULL;
  cymg_conn *c = live_mut((cymgpy_conn *) self);
  if (c == NULL) return NULL;
  int rc = (size_t) n == strlen(url) ? cymg_conn_resolve(c, url) : CYMG_EBADURL;
  if (rc == CYMG_EBADURL) return PyErr_Format(PyExc_ValueError, "resolve: bad name or URL %R", arg);
  if (rc == CYMG_ECLOSED) return PyErr_Format(PyExc_RuntimeError, "resolve: connection is closing");
  if (rc < 0) return cymgpy_raise_rc("resolve", rc);
  Py_RETURN_NONE;
}

static PyObject *conn_resolve_cancel(PyObject *self, PyObject *unused) {
  (void) unused;
  cymg_conn *c = live_mut((cymgpy_conn *) self);
  if (c == NULL) return NULL;
  cymg_conn_resolve_cancel(c);
  Py_RETURN_NONE;
}

static PyObject *conn_set_handler(PyObject *self, PyObject *fn) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  if (fn != Py_None && !PyCallable_Check(fn)) {
    return PyErr_Format(PyExc_TypeError, "handler must be callable or None, not %.100s",
                        Py_TYPE(fn)->tp_name);
  }
  /* On a closed connection this is a no-op: no event will reach it again. */
  if (w->conn == NULL) Py_RETURN_NONE;
  cymg_conn *c = live(w);
  if (c == NULL) return NULL;
  Py_XSETREF(w->handler, fn == Py_None ? NULL : Py_NewRef(fn));
  cymgpy_manager *m = cymgpy_manager_of(c);
  if (m->poll_events) cymg_conn_set_poll(c, w->handler != NULL || m->handler != NULL);
  Py_RETURN_NONE;
}

/* ---- TLS ---- */

/* tls_init(opts): the checks that raise, then cymgpy_tls_apply (tls_opts.c),
 * whose bad-material outcome is an event, not an exception. */
static PyObject *conn_tls_init(PyObject *self, PyObject *opts) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  cymgpy_state *st = PyType_GetModuleState(Py_TYPE(self));
  if (st == NULL || cymgpy_tls_opts_check(st, opts, "tls_init()") < 0) return NULL;
  cymg_conn *c = live_mut(w);
  if (c == NULL) return NULL;
  return cymgpy_tls_apply(c, opts);
}

/* tls_free(): drops the options (and, before the handshake, the TLS state) so
 * tls_init() can be called again; after the handshake it closes the connection. */
static PyObject *conn_tls_free(PyObject *self, PyObject *unused) {
  (void) unused;
  cymg_conn *c = live_mut((cymgpy_conn *) self);
  if (c == NULL) return NULL;
  cymg_tls_free(c);
  Py_RETURN_NONE;
}

/* ---- HTTP replies ---- */

/* The connection answers requests through the HTTP layer. */
static bool is_http_server(cymg_conn *c) {
  const cymg_proto *p = cymg_conn_proto(c);
  return p != NULL && strcmp(p->name, "http") == 0 && !cymg_conn_is_client(c) &&
         !cymg_conn_is_listening(c);
}

static PyObject *http_rc(const char *what, int rc) {
  if (rc == CYMG_ESTATE) {
    return PyErr_Format(PyExc_RuntimeError,
                        "%s: not possible on this connection now (it needs an HTTP server "
                        "connection with no other reply under way)", what);
  }
  if (rc == CYMG_ECLOSED) return PyErr_Format(PyExc_RuntimeError, "%s: connection is closing", what);
  return cymgpy_raise_rc(what, rc);
}

/* Appends "Name: value\r\n" for each (name, value) pair that
 * cymgpy_headers_check() returned. Sets *has_ctype when a Content-Type is among
 * them. Returns 0 or -1 (MemoryError). */
static int format_headers(PyObject *checked, cymg_buf *b, bool *has_ctype) {
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(checked); i++) {
    PyObject *kv = PyList_GET_ITEM(checked, i);
    Py_ssize_t kn, vn;
    const char *ks = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(kv, 0), &kn);
    const char *vs = ks ? PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(kv, 1), &vn) : NULL;
    if (vs == NULL) return -1;
    if (kn == 12 && PyOS_strnicmp(ks, "Content-Type", 12) == 0) *has_ctype = true;
    if (cymg_buf_append(b, ks, (size_t) kn) < 0 || cymg_buf_append(b, ": ", 2) < 0 ||
        cymg_buf_append(b, vs, (size_t) vn) < 0 || cymg_buf_append(b, "\r\n", 2) < 0) {
      PyErr_NoMemory();
      return -1;
    }
  }
  return 0;
}

/* A final status only: a 1xx sent as the reply would put every later reply on
 * the connection out of step (100 Continue and 101 have their own paths). */
static int status_arg(int status) {
  if (status >= 200 && status <= 999) return 0;
  PyErr_Format(PyExc_ValueError, "status_code must be a final status 200..999, not %d", status);
  return -1;
}

/* reply() and reply_json(): one complete response. ctype_line is the whole
 * default "Content-Type: ...\r\n" line: without headers it goes out as it is,
 * so the common reply formats nothing. */
static PyObject *do_reply(cymgpy_conn *w, int status, const Py_buffer *body, PyObject *checked,
                          const char *ctype_line, const char *what) {
  if (status_arg(status) < 0) return NULL;
  cymg_buf h;
  cymg_buf_init(&h);
  const char *hdrs = ctype_line;
  if (checked != NULL && PyList_GET_SIZE(checked) > 0) {
    bool has_ctype = false;
    if (format_headers(checked, &h, &has_ctype) < 0) goto out;
    if (!has_ctype && cymg_buf_append(&h, ctype_line, strlen(ctype_line)) < 0) {
      PyErr_NoMemory();
      goto out;
    }
    hdrs = h.buf ? h.buf : "";
  }
  PyObject *r = NULL;
  cymg_conn *c = live_mut(w);
  if (c != NULL) {
    int rc = cymg_http_reply_data(c, status, hdrs, body->buf, (size_t) body->len);
    if (rc < 0) {
      http_rc(what, rc);
    } else {
      w->http_sent |= CYMGPY_SENT_REPLY;
      r = Py_NewRef(Py_None);
    }
  }
  cymg_buf_free(&h);
  return r;
out:
  cymg_buf_free(&h);
  return NULL;
}

static PyObject *conn_reply(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"status_code", "body", "headers", NULL};
  int status;
  PyObject *body_obj = NULL, *headers = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i|OO:reply", kwlist, &status, &body_obj,
                                   &headers))
    return NULL;
  /* Headers first, whatever the connection's state, so that a handler given
   * bad headers can still answer (e.g. 400) afterwards. None costs nothing. */
  PyObject *checked = NULL;
  if (headers != Py_None && (checked = cymgpy_headers_check(headers, "headers")) == NULL)
    return NULL;
  Py_buffer body = {0};
  PyObject *r = NULL;
  if (body_obj == NULL || cymgpy_get_bytes(body_obj, &body, "body") == 0) {
    r = do_reply((cymgpy_conn *) self, status, &body, checked, "Content-Type: text/plain\r\n",
                 "reply");
    if (body_obj != NULL) PyBuffer_Release(&body);
  }
  Py_XDECREF(checked);
  return r;
}

static PyObject *conn_reply_json(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"data", "status_code", "headers", NULL};
  PyObject *data, *headers = Py_None;
  int status = 200;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|iO:reply_json", kwlist, &data, &status,
                                   &headers))
    return NULL;
  PyObject *checked = NULL; /* first, as in reply() */
  if (headers != Py_None && (checked = cymgpy_headers_check(headers, "headers")) == NULL)
    return NULL;
  PyObject *json = PyImport_ImportModule("json");
  PyObject *text = json ? PyObject_CallMethod(json, "dumps", "O", data) : NULL;
  Py_XDECREF(json);
  Py_buffer body;
  PyObject *r = NULL;
  if (text != NULL && cymgpy_get_bytes(text, &body, "JSON text") == 0) {
    r = do_reply((cymgpy_conn *) self, status, &body, checked,
                 "Content-Type: application/json\r\n", "reply_json");
    PyBuffer_Release(&body);
  }
  Py_XDECREF(text);
  Py_XDECREF(checked);
  return r;
}

/* A chunk framed here: for replies whose head the user wrote with send(), and
 * for connections without the server layer (a client sending a chunked body). */
static int raw_chunk(cymg_conn *c, const void *data, size_t len) {
  cymg_buf b;
  cymg_buf_init(&b);
  int rc = cymg_buf_printf(&b, "%zx\r\n", len);
  if (rc >= 0 && len) rc = cymg_buf_append(&b, data, len);
  if (rc >= 0) rc = cymg_buf_append(&b, "\r\n", 2);
  if (rc >= 0) rc = cymg_send(c, b.buf, b.len);
  cymg_buf_free(&b);
  return rc < 0 ? rc : 0;
}

/* One body piece of a chunked reply (len 0 ends it). Without a reply under way
 * on a server connection, one is started with status 200 and start_headers. */
static PyObject *send_chunk(cymgpy_conn *w, const void *data, size_t len,
                            const char *start_headers, const char *what) {
  cymg_conn *c = live_mut(w);
  if (c == NULL) return NULL;
  int rc = 0;
  if (w->http_sent & CYMGPY_SENT_DISCARD) {
    /* The reply answers HEAD: it has no body to send. */
  } else if ((rc = cymg_http_chunk(c, data, len)) != CYMG_ESTATE) {
    /* a chunked reply through the layer is under way */
  } else if ((w->http_sent & CYMGPY_SENT_RAW) || !is_http_server(c)) {
    rc = raw_chunk(c, data, len);
  } else if ((w->http_sent & (CYMGPY_SENT_STREAM | CYMGPY_SENT_REPLY)) == CYMGPY_SENT_STREAM) {
    /* Started by http_respond() for a HEAD request: the layer sent the head alone. */
    w->http_sent |= CYMGPY_SENT_DISCARD;
  } else if (w->http_sent & (CYMGPY_SENT_REPLY | CYMGPY_SENT_STREAM)) {
    return PyErr_Format(PyExc_RuntimeError,
                        "%s: the reply to this request is already complete", what);
  } else if ((rc = cymg_http_reply_start(c, 200, start_headers)) == 0) {
    w->http_sent |= CYMGPY_SENT_STREAM;
    rc = cymg_http_chunk(c, data, len);
    if (rc == CYMG_ESTATE) { /* HEAD: the layer sent the head alone */
      w->http_sent |= CYMGPY_SENT_DISCARD;
      rc = 0;
    }
  }
  if (rc < 0) return http_rc(what, rc);
  if (len == 0 && !(w->http_sent & CYMGPY_SENT_RAW)) w->http_sent |= CYMGPY_SENT_REPLY;
  Py_RETURN_NONE;
}

static PyObject *conn_http_chunk(PyObject *self, PyObject *data) {
  Py_buffer v;
  if (cymgpy_get_bytes(data, &v, "data") < 0) return NULL;
  PyObject *r = send_chunk((cymgpy_conn *) self, v.buf, (size_t) v.len, NULL, "http_chunk");
  PyBuffer_Release(&v);
  return r;
}

/* http_respond(status_code, headers=None, body=None, length=None): the reply
 * with exactly the headers given (a mapping or (name, value) pairs, order and
 * repeats kept, no default Content-Type). With body: complete, Content-Length
 * set. Without: a streamed reply whose pieces follow through http_chunk():
 * chunked, or with length, a Content-Length body complete with its last byte. */
static PyObject *conn_http_respond(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"status_code", "headers", "body", "length", NULL};
  int status;
  PyObject *headers = Py_None, *body_obj = Py_None, *len_obj = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i|OOO:http_respond", kwlist, &status, &headers,
                                   &body_obj, &len_obj))
    return NULL;
  unsigned long long length = 0;
  if (len_obj != Py_None) {
    length = PyLong_AsUnsignedLongLong(len_obj);
    if (length == (unsigned long long) -1 && PyErr_Occurred()) return NULL;
  }
  if (status_arg(status) < 0) return NULL;
  PyObject *checked = cymgpy_headers_check_as(headers, "headers", true);
  if (checked == NULL) return NULL;
  cymgpy_conn *w = (cymgpy_conn *) self;
  cymg_buf h;
  cymg_buf_init(&h);
  bool has_ctype;
  PyObject *r = NULL;
  Py_buffer body = {0};
  cymg_conn *c = NULL;
  if (format_headers(checked, &h, &has_ctype) < 0 || (c = live_mut(w)) == NULL) goto out;
  if (!is_http_server(c) || w->http_sent != 0) {
    http_rc("http_respond", CYMG_ESTATE);
    goto out;
  }
  const char *hdrs = h.buf ? h.buf : "";
  int rc;
  if (body_obj != Py_None) {
    if (cymgpy_get_bytes(body_obj, &body, "body") < 0) goto out;
    rc = cymg_http_reply_data(c, status, hdrs, body.buf, (size_t) body.len);
    PyBuffer_Release(&body);
    w->http_sent |= CYMGPY_SENT_REPLY;
  } else {
    rc = len_obj == Py_None ? cymg_http_reply_start(c, status, hdrs)
                            : cymg_http_reply_start_sized(c, status, hdrs, length);
    w->http_sent |= CYMGPY_SENT_STREAM;
  }
  if (rc < 0) {
    w->http_sent = 0;
    http_rc("http_respond", rc);
  } else {
    r = Py_NewRef(Py_None);
  }
out:
  cymg_buf_free(&h);
  Py_DECREF(checked);
  return r;
}

/* http_set_limits(max_head=0, max_headers=0, max_body=0): the HTTP layer's
 * limits (0 keeps one); on a listener, for the connections it accepts. */
static PyObject *conn_http_set_limits(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"max_head", "max_headers", "max_body", NULL};
  Py_ssize_t head = 0, nhdrs = 0;
  unsigned long long body = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|nnK:http_set_limits", kwlist, &head, &nhdrs,
                                   &body))
    return NULL;
  if (head < 0 || nhdrs < 0) return PyErr_Format(PyExc_ValueError, "limits must be >= 0");
  cymg_conn *c = live_mut((cymgpy_conn *) self);
  if (c == NULL) return NULL;
  int rc = cymg_http_set_limits(c, (size_t) head, (size_t) nhdrs, body);
  if (rc < 0) return http_rc("http_set_limits", rc);
  Py_RETURN_NONE;
}

/* An event in the text/event-stream format: "event: T", then one "data:" line
 * per line of data (CRLF, CR or LF), then an empty line. */
static int format_sse(cymg_buf *b, const char *event, size_t elen, const char *data, size_t dlen) {
  int rc = 0;
  if (elen) rc = cymg_buf_printf(b, "event: %.*s\n", (int) elen, event);
  size_t i = 0;
  do {
    size_t n = 0;
    while (i + n < dlen && data[i + n] != '\r' && data[i + n] != '\n') n++;
    if (rc >= 0) rc = cymg_buf_append(b, "data: ", 6);
    if (rc >= 0) rc = cymg_buf_append(b, data + i, n);
    if (rc >= 0) rc = cymg_buf_append(b, "\n", 1);
    i += n;
    if (i < dlen && data[i] == '\r' && i + 1 < dlen && data[i + 1] == '\n') i++;
    if (i < dlen) i++;
  } while (i < dlen && rc >= 0);
  if (rc >= 0) rc = cymg_buf_append(b, "\n", 1);
  return rc < 0 ? rc : 0;
}

static PyObject *conn_http_sse(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"event_type", "data", NULL};
  PyObject *ev_obj, *data_obj;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:http_sse", kwlist, &ev_obj, &data_obj))
    return NULL;
  const char *ev = "";
  Py_ssize_t elen = 0;
  if (ev_obj != Py_None) {
    if (!PyUnicode_Check(ev_obj)) {
      return PyErr_Format(PyExc_TypeError, "event_type must be a str or None, not %.100s",
                          Py_TYPE(ev_obj)->tp_name);
    }
    if ((ev = PyUnicode_AsUTF8AndSize(ev_obj, &elen)) == NULL) return NULL;
    if (strcspn(ev, "\r\n") != (size_t) elen) {
      return PyErr_Format(PyExc_ValueError, "event_type must not contain CR, LF or NUL");
    }
  }
  Py_buffer data;
  if (cymgpy_get_bytes(data_obj, &data, "data") < 0) return NULL;
  cymg_buf b;
  cymg_buf_init(&b);
  PyObject *r = NULL;
  if (format_sse(&b, ev, (size_t) elen, data.buf, (size_t) data.len) < 0) {
    PyErr_NoMemory();
  } else {
    r = send_chunk((cymgpy_conn *) self, b.buf, b.len,
                   "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n", "http_sse");
  }
  cymg_buf_free(&b);
  PyBuffer_Release(&data);
  return r;
}

static PyObject *conn_http_basic_auth(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"username", "password", NULL};
  const char *user, *pass;
  Py_ssize_t ulen, plen;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s#s#:http_basic_auth", kwlist, &user, &ulen,
                                   &pass, &plen))
    return NULL;
  if (strlen(user) != (size_t) ulen || strlen(pass) != (size_t) plen) {
    return PyErr_Format(PyExc_ValueError, "username and password must not contain NUL");
  }
  if (memchr(user, ':', (size_t) ulen) != NULL) {
    return PyErr_Format(PyExc_ValueError, "a Basic auth username cannot contain ':'");
  }
  cymgpy_conn *w = (cymgpy_conn *) self;
  cymg_conn *c = live_mut(w);
  if (c == NULL) return NULL;
  int rc = cymg_http_basic_auth(c, user, pass);
  if (rc < 0) return http_rc("http_basic_auth", rc);
  w->http_sent |= CYMGPY_SENT_RAW;
  Py_RETURN_NONE;
}

/* ---- static files ---- */

/* extra_headers as the library wants it: each line ending in CRLF. A value
 * without the final CRLF gets one; NULL when empty. *owned is set when a copy
 * was made (free it with PyMem_Free). */
static const char *header_lines(const char *s, char **owned) {
  *owned = NULL;
  size_t n = strlen(s);
  if (n == 0) return NULL;
  if (n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n') return s;
  if ((*owned = PyMem_Malloc(n + 3)) == NULL) return NULL;
  memcpy(*owned, s, n);
  memcpy(*owned + n, "\r\n", 3);
  return *owned;
}

/* serve_dir() and serve_file(): path is NULL for serve_dir. */
static PyObject *serve(cymgpy_conn *w, PyObject *message, PyObject *path_obj,
                       cymg_http_serve_opts *o, const char *extra, const char *what) {
  cymg_conn *c = live_mut(w);
  if (c == NULL) return NULL;
  const cymg_http_msg *msg = cymgpy_http_message_get(cymgpy_manager_of(c)->st, message);
  if (msg == NULL) return NULL; /* a stale view is a ValueError */
  PyObject *path_bytes = NULL;
  if (path_obj != NULL && !PyUnicode_FSConverter(path_obj, &path_bytes)) return NULL;
  char *owned = NULL;
  o->extra_headers = header_lines(extra, &owned);
  if (o->extra_headers == NULL && *extra) {
    Py_XDECREF(path_bytes);
    return PyErr_NoMemory();
  }
  int rc = path_bytes ? cymg_http_serve_file(c, msg, PyBytes_AS_STRING(path_bytes), o)
                      : cymg_http_serve_dir(c, msg, o);
  PyMem_Free(owned);
  Py_XDECREF(path_bytes);
  if (rc < 0) return http_rc(what, rc);
  w->http_sent |= CYMGPY_SENT_REPLY;
  Py_RETURN_NONE;
}

static PyObject *conn_serve_dir(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"message", "root_dir", "extra_headers", "mime_types", "page404", NULL};
  PyObject *message, *root_obj, *root = NULL, *p404_obj = NULL, *p404 = NULL;
  const char *extra = "", *mime = "";
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|ssO:serve_dir", kwlist, &message, &root_obj,
                                   &extra, &mime, &p404_obj))
    return NULL;
  if (!PyUnicode_FSConverter(root_obj, &root)) return NULL;
  if (p404_obj != NULL && !PyUnicode_FSConverter(p404_obj, &p404)) {
    Py_DECREF(root);
    return NULL;
  }
  cymg_http_serve_opts o = {0};
  o.root_dir = PyBytes_AS_STRING(root);
  o.mime_types = *mime ? mime : NULL;
  o.page404 = (p404 && PyBytes_GET_SIZE(p404) > 0) ? PyBytes_AS_STRING(p404) : NULL;
  PyObject *r = serve((cymgpy_conn *) self, message, NULL, &o, extra, "serve_dir");
  Py_DECREF(root);
  Py_XDECREF(p404);
  return r;
}

static PyObject *conn_serve_file(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"message", "path", "extra_headers", "mime_types", NULL};
  PyObject *message, *path;
  const char *extra = "", *mime = "";
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|ss:serve_file", kwlist, &message, &path,
                                   &extra, &mime))
    return NULL;
  cymg_http_serve_opts o = {0};
  o.mime_types = *mime ? mime : NULL;
  return serve((cymgpy_conn *) self, message, path, &o, extra, "serve_file");
}

/* ---- WebSocket ---- */

/* Sends one message or control frame on an open WebSocket. A close frame goes
 * through cymg_ws_close(), which checks the code and starts the close timeout. */
static int ws_send_op(cymg_conn *c, int op, const char *buf, size_t len) {
  if (op != CYMG_WS_OP_CLOSE) return cymg_ws_send(c, buf, len, op);
  if (len == 0) return cymg_ws_close(c, 0, NULL);
  char reason[124];
  memcpy(reason, buf + 2, len - 2); /* len is 2..125, checked by ws_send() */
  reason[len - 2] = '\0';
  return cymg_ws_close(c, ((unsigned char) buf[0] << 8) | (unsigned char) buf[1], reason);
}

static void ws_flush_queue(cymg_conn *c, cymgpy_conn *w) {
  PyObject *q = w->ws_queue;
  w->ws_queue = NULL;
  w->ws_queued = 0;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(q); i++) {
    PyObject *item = PyList_GET_ITEM(q, i);
    int op = (int) PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
    PyObject *b = PyTuple_GET_ITEM(item, 1);
    int rc = ws_send_op(c, op, PyBytes_AS_STRING(b), (size_t) PyBytes_GET_SIZE(b));
    if (rc < 0 && rc != CYMG_ESTATE) {
      /* Not silently: the application learns it through ERROR, then CLOSE. */
      cymg_error(c, "WebSocket: a message queued before the handshake could not be sent: %s",
                 cymg_strerror(rc));
      break;
    }
    if (rc < 0) break; /* a queued close frame went out: nothing may follow it */
  }
  Py_DECREF(q);
}

/* What ws_send() queues during a client's handshake, at most (the default send
 * buffer limit). */
#define WS_QUEUE_LIMIT ((size_t) 64 << 20)

static PyObject *conn_ws_send(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"data", "op", NULL};
  cymgpy_conn *w = (cymgpy_conn *) self;
  PyObject *data;
  int op = CYMG_WS_OP_TEXT, rc;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|i:ws_send", kwlist, &data, &op)) return NULL;
  if (op != CYMG_WS_OP_TEXT && op != CYMG_WS_OP_BINARY && op != CYMG_WS_OP_PING &&
      op != CYMG_WS_OP_PONG && op != CYMG_WS_OP_CLOSE) {
    return PyErr_Format(PyExc_ValueError,
                        "ws_send: op must be WEBSOCKET_OP_TEXT, _BINARY, _PING, _PONG or 8 "
                        "(close), not %d", op);
  }
  Py_buffer v;
  if (cymgpy_get_bytes(data, &v, "ws_send data") < 0) return NULL;
  const char *buf = v.buf;
  size_t len = (size_t) v.len;
  PyObject *r = NULL;
  uint32_t utf8 = 0;
  if (op == CYMG_WS_OP_TEXT && !PyUnicode_Check(data) &&
      (cymg_ws_utf8(&utf8, buf, len) < 0 || utf8 != 0)) {
    PyErr_SetString(PyExc_ValueError, "ws_send: a text message must be valid UTF-8 (send "
                                      "other bytes with op=WEBSOCKET_OP_BINARY)");
    goto done;
  }
  if (op >= CYMG_WS_OP_CLOSE && len > 125) {
    PyErr_Format(PyExc_ValueError, "ws_send: a control frame carries at most 125 bytes, not %zu",
                 len);
    goto done;
  }
  if (op == CYMG_WS_OP_CLOSE && len > 0 &&
      (len == 1 || memchr(buf + 2, '\0', len - 2) != NULL ||
       cymg_ws_check_close(buf, len) != 0)) {
    PyErr_SetString(PyExc_ValueError,
                    "ws_send: a close payload is empty or a 2-byte code that may be sent "
                    "(1000-1003, 1007-1014, 3000-4999) and a UTF-8 reason without NUL");
    goto done;
  }
  cymg_conn *c = live_mut(w);
  if (c == NULL) goto done;
  if (!cymg_conn_is_ws(c)) {
    PyErr_SetString(PyExc_RuntimeError,
                    "ws_send: not a WebSocket connection (upgrade it with ws_upgrade() in "
                    "MG_EV_HTTP_MSG, or open it with Manager.ws_connect())");
    goto done;
  }
  if (cymg_conn_is_closing(c) || cymg_conn_is_draining(c)) {
    r = Py_NewRef(Py_False);
    goto done;
  }
  if (!w->ws_open) {
    /* A client whose handshake is under way: the frames wait for MG_EV_WS_OPEN. */
    if (len > WS_QUEUE_LIMIT - w->ws_queued) {
      PyErr_SetString(PyExc_RuntimeError, "ws_send: too much queued before the WebSocket "
                                          "handshake completed (64 MiB)");
      goto done;
    }
    if (w->ws_queue == NULL && (w->ws_queue = PyList_New(0)) == NULL) goto done;
    PyObject *item = Py_BuildValue("(iy#)", op, buf, (Py_ssize_t) len);
    if (item == NULL || PyList_Append(w->ws_queue, item) < 0) {
      Py_XDECREF(item);
      goto done;
    }
    Py_DECREF(item);
    w->ws_queued += len;
    r = Py_NewRef(Py_True);
    goto done;
  }
  rc = ws_send_op(c, op, buf, len);
  if (rc == CYMG_ESTATE) {
    r = Py_NewRef(Py_False); /* a close frame was sent or received: the WebSocket is ending */
  } else if (rc < 0) {
    cymgpy_raise_rc("ws_send", rc);
  } else {
    r = Py_NewRef(Py_True);
  }
done:
  PyBuffer_Release(&v);
  return r;
}

static PyObject *conn_ws_upgrade(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"message", "extra_headers", NULL};
  PyObject *message, *headers = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:ws_upgrade", kwlist, &message, &headers))
    return NULL;
  cymgpy_conn *w = (cymgpy_conn *) self;
  /* The headers (when a dict) are checked before anything else, whatever the
   * connection's state, so that the handler can still answer 400. */
  PyObject *checked = NULL;
  if (headers != Py_None && !PyUnicode_Check(headers) &&
      (checked = cymgpy_headers_check(headers, "extra_headers")) == NULL)
    return NULL;
  cymg_conn *c = live_mut(w);
  cymgpy_manager *m = c ? cymgpy_manager_of(c) : NULL;
  const cymg_http_msg *msg = m ? cymgpy_http_message_get(m->st, message) : NULL;
  if (msg == NULL) { /* closed, or a stale view (ValueError) or another type */
    Py_XDECREF(checked);
    return NULL;
  }
  cymg_buf h;
  cymg_buf_init(&h);
  const char *extra = NULL;
  char *owned = NULL;
  if (PyUnicode_Check(headers)) {
    /* Header lines as serve_dir() takes them: the final CRLF is optional. */
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(headers, &n);
    if (s == NULL) return NULL;
    if (strlen(s) != (size_t) n) {
      return PyErr_Format(PyExc_ValueError, "ws_upgrade: extra_headers must not contain NUL");
    }
    extra = header_lines(s, &owned);
    if (extra == NULL && n > 0) return PyErr_NoMemory();
  } else if (checked != NULL) {
    bool has_ctype = false;
    int frc = format_headers(checked, &h, &has_ctype);
    Py_DECREF(checked);
    if (frc < 0) {
      cymg_buf_free(&h);
      return NULL;
    }
    extra = h.len ? h.buf : NULL;
  }
  int rc = cymg_ws_upgrade(c, msg, extra);
  PyMem_Free(owned);
  cymg_buf_free(&h);
  /* 101, 400/426 or 500 was sent: the request is answered either way. */
  if (rc != CYMG_ESTATE) w->http_sent |= CYMGPY_SENT_REPLY;
  if (cymgpy_raise_pending(m) < 0) return NULL;
  if (rc == 0) Py_RETURN_TRUE;
  if (rc == CYMG_EPROTO) Py_RETURN_FALSE; /* a bad upgrade request, answered 400/426 */
  if (rc == CYMG_ESTATE) {
    return PyErr_Format(PyExc_RuntimeError,
                        "ws_upgrade: only in MG_EV_HTTP_MSG on an HTTP server connection, "
                        "before anything was sent for that request");
  }
  return cymgpy_raise_rc("ws_upgrade", rc);
}

/* ---- properties ---- */

static PyObject *get_id(PyObject *self, void *closure) {
  (void) closure;
  return PyLong_FromUnsignedLongLong(((cymgpy_conn *) self)->id);
}

static PyObject *get_handler(PyObject *self, void *closure) {
  (void) closure;
  cymgpy_conn *w = (cymgpy_conn *) self;
  return Py_NewRef(w->handler ? w->handler : Py_None);
}

static PyObject *get_userdata(PyObject *self, void *closure) {
  (void) closure;
  cymgpy_conn *w = (cymgpy_conn *) self;
  return Py_NewRef(w->userdata ? w->userdata : Py_None);
}

static int set_userdata(PyObject *self, PyObject *value, void *closure) {
  (void) closure;
  cymgpy_conn *w = (cymgpy_conn *) self;
  Py_XSETREF(w->userdata, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
  return 0;
}

typedef bool (*flag_fn)(const cymg_conn *);

/* One getter for every boolean: the closure names the accessor. A closed
 * connection reports is_closing, and keeps what it was (client, UDP,
 * listener); every other flag is False. */
static PyObject *get_flag(PyObject *self, void *closure) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  flag_fn fn = *(flag_fn *) closure;
  if (w->conn == NULL) {
    unsigned was = w->last_flags;
    return PyBool_FromLong(fn == cymg_conn_is_closing ||
                           (fn == cymg_conn_is_client && (was & CYMGPY_WAS_CLIENT)) ||
                           (fn == cymg_conn_is_udp && (was & CYMGPY_WAS_UDP)) ||
                           (fn == cymg_conn_is_listening && (was & CYMGPY_WAS_LISTENING)));
  }
  return PyBool_FromLong(fn(w->conn));
}

typedef size_t (*size_fn)(const cymg_conn *);

static PyObject *get_size(PyObject *self, void *closure) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  if (w->conn == NULL) return PyLong_FromLong(0);
  return PyLong_FromSize_t((*(size_fn *) closure)(w->conn));
}

PyObject *cymgpy_addr_tuple(const cymg_addr *a) {
  static const uint8_t zero[16];
  if (a->port == 0 && memcmp(a->ip, zero, sizeof(zero)) == 0) Py_RETURN_NONE;
  char ip[64];
  if (cymg_addr_str(a, false, ip, sizeof(ip)) < 0) Py_RETURN_NONE;
  return Py_BuildValue("(sHO)", ip, a->port, a->is_ip6 ? Py_True : Py_False);
}

static PyObject *get_local_addr(PyObject *self, void *closure) {
  (void) closure;
  cymgpy_conn *w = (cymgpy_conn *) self;
  if (w->conn == NULL) Py_RETURN_NONE;
  return cymgpy_addr_tuple(cymg_conn_local(w->conn));
}

static PyObject *get_remote_addr(PyObject *self, void *closure) {
  (void) closure;
  cymgpy_conn *w = (cymgpy_conn *) self;
  if (w->conn == NULL) Py_RETURN_NONE;
  return cymgpy_addr_tuple(cymg_conn_remote(w->conn));
}

static PyObject *conn_repr(PyObject *self) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  if (w->conn == NULL) {
    return PyUnicode_FromFormat("<cymongoose.Connection id=%llu closed>",
                                (unsigned long long) w->id);
  }
  cymg_conn *c = w->conn;
  char loc[80] = "-", rem[80] = "-";
  const cymg_addr *l = cymg_conn_local(c), *r = cymg_conn_remote(c);
  if (l->port || l->is_ip6 || l->ip[0]) cymg_addr_str(l, true, loc, sizeof(loc));
  if (r->port || r->is_ip6 || r->ip[0]) cymg_addr_str(r, true, rem, sizeof(rem));
  const char *proto = cymg_conn_is_udp(c) ? "udp" : "tcp";
  const char *closing = cymg_conn_is_closing(c) ? " closing" : "";
  if (cymg_conn_is_listening(c)) {
    return PyUnicode_FromFormat("<cymongoose.Connection id=%llu %s listening %s%s>",
                                (unsigned long long) w->id, proto, loc, closing);
  }
  return PyUnicode_FromFormat("<cymongoose.Connection id=%llu %s %s -> %s%s>",
                              (unsigned long long) w->id, proto, loc, rem, closing);
}

/* ---- GC and the type ---- */

static int conn_traverse(PyObject *self, visitproc visit, void *arg) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(w->handler);
  Py_VISIT(w->userdata);
  Py_VISIT(w->ws_queue);
  return 0;
}

static int conn_clear(PyObject *self) {
  cymgpy_conn *w = (cymgpy_conn *) self;
  Py_CLEAR(w->handler);
  Py_CLEAR(w->userdata);
  Py_CLEAR(w->ws_queue);
  Py_CLEAR(w->mqtt_key);
  w->ws_queued = 0;
  return 0;
}

static void conn_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (((cymgpy_conn *) self)->weakreflist != NULL) PyObject_ClearWeakRefs(self);
  conn_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* Every method that reads or changes C state runs under the call lock. */
CYMGPY_LOCKED_O(conn_send)
CYMGPY_LOCKED_O(conn_error)
CYMGPY_LOCKED_O(conn_close)
CYMGPY_LOCKED_O(conn_drain)
CYMGPY_LOCKED_O(conn_set_handler)
CYMGPY_LOCKED_O(conn_http_chunk)
CYMGPY_LOCKED_O(conn_sntp_request)
CYMGPY_LOCKED_O(conn_resolve)
CYMGPY_LOCKED_O(conn_resolve_cancel)
CYMGPY_LOCKED_O(conn_tls_init)
CYMGPY_LOCKED_O(conn_tls_free)
CYMGPY_LOCKED_O(conn_http_stream_body)
CYMGPY_LOCKED_O(conn_pause_reading)
CYMGPY_LOCKED_O(conn_resume_reading)
CYMGPY_LOCKED_KW_READ(conn_recv_data)
CYMGPY_LOCKED_KW_READ(conn_send_data)
CYMGPY_LOCKED_KW(conn_reply)
CYMGPY_LOCKED_KW(conn_reply_json)
CYMGPY_LOCKED_KW(conn_serve_dir)
CYMGPY_LOCKED_KW(conn_serve_file)
CYMGPY_LOCKED_KW(conn_http_sse)
CYMGPY_LOCKED_KW(conn_http_respond)
CYMGPY_LOCKED_KW(conn_http_set_limits)
CYMGPY_LOCKED_KW(conn_http_basic_auth)
CYMGPY_LOCKED_KW(conn_ws_upgrade)
CYMGPY_LOCKED_KW(conn_ws_send)

static PyMethodDef conn_methods[] = {
    {"send", conn_send_locked, METH_O, "send(data): queue bytes-like data (str is sent as UTF-8)."},
    {"recv_data", (PyCFunction) (void (*)(void)) conn_recv_data_locked, METH_VARARGS | METH_KEYWORDS,
     "recv_data(length=-1) -> bytes: peek at the receive buffer."},
    {"send_data", (PyCFunction) (void (*)(void)) conn_send_data_locked, METH_VARARGS | METH_KEYWORDS,
     "send_data(length=-1) -> bytes: peek at the send buffer."},
    {"error", conn_error_locked, METH_O, "error(message): deliver MG_EV_ERROR, then close."},
    {"close", conn_close_locked, METH_NOARGS, "close(): close at the end of this poll, unsent data lost."},
    {"drain", conn_drain_locked, METH_NOARGS, "drain(): stop reading, flush what is queued, then close."},
    {"set_handler", conn_set_handler_locked, METH_O, "set_handler(fn): this connection's handler."},
    {"sntp_request", conn_sntp_request_locked, METH_NOARGS,
     "sntp_request(): send another SNTP request (MG_EV_SNTP_TIME answers it)."},
    {"resolve", conn_resolve_locked, METH_O,
     "resolve(url): look up a name or URL's host; MG_EV_RESOLVE (remote_addr set) or MG_EV_ERROR."},
    {"resolve_cancel", conn_resolve_cancel_locked, METH_NOARGS,
     "resolve_cancel(): stop a resolve() in progress; no later event from it."},
    {"tls_init", conn_tls_init_locked, METH_O,
     "tls_init(opts): start TLS on this connection with a TlsOpts (on a listener: the "
     "options its accepted connections get). Bad material is MG_EV_ERROR, not an exception."},
    {"tls_free", conn_tls_free_locked, METH_NOARGS,
     "tls_free(): drop the TLS options before the handshake (then tls_init() again)."},
    {"reply", (PyCFunction) (void (*)(void)) conn_reply_locked, METH_VARARGS | METH_KEYWORDS,
     "reply(status_code, body=b'', headers=None): a complete HTTP response."},
    {"reply_json", (PyCFunction) (void (*)(void)) conn_reply_json_locked, METH_VARARGS | METH_KEYWORDS,
     "reply_json(data, status_code=200, headers=None): json.dumps(data) as the response."},
    {"serve_dir", (PyCFunction) (void (*)(void)) conn_serve_dir_locked, METH_VARARGS | METH_KEYWORDS,
     "serve_dir(message, root_dir, extra_headers='', mime_types='', page404=''): answer from "
     "files under root_dir."},
    {"serve_file", (PyCFunction) (void (*)(void)) conn_serve_file_locked, METH_VARARGS | METH_KEYWORDS,
     "serve_file(message, path, extra_headers='', mime_types=''): answer with one file."},
    {"http_stream_body", conn_http_stream_body_locked, METH_NOARGS,
     "http_stream_body(): in MG_EV_HTTP_HDRS, hand the request body over as MG_EV_READ "
     "pieces (data: the piece's length; read it with recv_data(n)), then MG_EV_HTTP_MSG."},
    {"pause_reading", conn_pause_reading_locked, METH_NOARGS,
     "pause_reading(): read nothing more from the socket until resume_reading()."},
    {"resume_reading", conn_resume_reading_locked, METH_NOARGS,
     "resume_reading(): read again after pause_reading()."},
    {"http_chunk", conn_http_chunk_locked, METH_O,
     "http_chunk(data): one piece of a chunked response; b'' ends it."},
    {"http_sse", (PyCFunction) (void (*)(void)) conn_http_sse_locked, METH_VARARGS | METH_KEYWORDS,
     "http_sse(event_type, data): one Server-Sent Event."},
    {"http_respond", (PyCFunction) (void (*)(void)) conn_http_respond_locked,
     METH_VARARGS | METH_KEYWORDS,
     "http_respond(status_code, headers=None, body=None, length=None): a reply with exactly "
     "these headers; without body, streamed through http_chunk() (chunked, or sized)."},
    {"http_set_limits", (PyCFunction) (void (*)(void)) conn_http_set_limits_locked,
     METH_VARARGS | METH_KEYWORDS,
     "http_set_limits(max_head=0, max_headers=0, max_body=0): HTTP limits (0 keeps one)."},
    {"http_basic_auth", (PyCFunction) (void (*)(void)) conn_http_basic_auth_locked,
     METH_VARARGS | METH_KEYWORDS,
     "http_basic_auth(username, password): write an Authorization: Basic header line."},
    {"ws_upgrade", (PyCFunction) (void (*)(void)) conn_ws_upgrade_locked, METH_VARARGS | METH_KEYWORDS,
     "ws_upgrade(message, extra_headers=None) -> bool: in MG_EV_HTTP_MSG, switch this "
     "connection to WebSocket (False: the request was refused with 400/426)."},
    {"ws_send", (PyCFunction) (void (*)(void)) conn_ws_send_locked, METH_VARARGS | METH_KEYWORDS,
     "ws_send(data, op=WEBSOCKET_OP_TEXT) -> bool: send one WebSocket message or control "
     "frame (False: the WebSocket is closing)."},
    CYMGPY_CONN_MQTT_METHODS
    {NULL, NULL, 0, NULL},
};

static flag_fn f_listening = cymg_conn_is_listening, f_closing = cymg_conn_is_closing,
               f_client = cymg_conn_is_client, f_tls = cymg_conn_is_tls, f_udp = cymg_conn_is_udp,
               f_readable = cymg_conn_is_readable, f_writable = cymg_conn_is_writable,
               f_full = cymg_conn_is_full, f_draining = cymg_conn_is_draining,
               f_ws = cymg_conn_is_ws, f_read_paused = cymg_conn_is_read_paused;
static size_fn s_recv_len = cymg_conn_recv_len, s_send_len = cymg_conn_send_len,
               s_recv_size = cymg_conn_recv_size, s_send_size = cymg_conn_send_size;

static PyGetSetDef conn_getset[] = {
    {"id", get_id, NULL, "Connection id (unique within its manager).", NULL},
    {"handler", get_handler, NULL, "This connection's own handler, or None.", NULL},
    {"userdata", get_userdata, set_userdata, "Any object you want to attach.", NULL},
    {"is_listening", get_flag, NULL, NULL, &f_listening},
    {"is_closing", get_flag, NULL, NULL, &f_closing},
    {"is_client", get_flag, NULL, NULL, &f_client},
    {"is_tls", get_flag, NULL, NULL, &f_tls},
    {"is_udp", get_flag, NULL, NULL, &f_udp},
    {"is_websocket", get_flag, NULL, NULL, &f_ws},
    {"is_readable", get_flag, NULL, NULL, &f_readable},
    {"is_writable", get_flag, NULL, NULL, &f_writable},
    {"is_full", get_flag, NULL, NULL, &f_full},
    {"is_draining", get_flag, NULL, NULL, &f_draining},
    {"is_read_paused", get_flag, NULL, NULL, &f_read_paused},
    {"local_addr", get_local_addr, NULL, "(ip, port, is_ipv6) or None", NULL},
    {"remote_addr", get_remote_addr, NULL, "(ip, port, is_ipv6) or None", NULL},
    {"recv_len", get_size, NULL, NULL, &s_recv_len},
    {"send_len", get_size, NULL, NULL, &s_send_len},
    {"recv_size", get_size, NULL, NULL, &s_recv_size},
    {"send_size", get_size, NULL, NULL, &s_send_size},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef conn_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cymgpy_conn, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot conn_slots[] = {
    {Py_tp_doc, "A connection, created by Manager.listen()/connect() or accepted."},
    {Py_tp_dealloc, conn_dealloc},
    {Py_tp_traverse, conn_traverse},
    {Py_tp_clear, conn_clear},
    {Py_tp_repr, conn_repr},
    {Py_tp_methods, conn_methods},
    {Py_tp_getset, conn_getset},
    {Py_tp_members, conn_members},
    {0, NULL},
};

PyType_Spec cymgpy_connection_spec = {
    .name = "cymongoose.Connection",
    .basicsize = sizeof(cymgpy_conn),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = conn_slots,
};
