/* MqttBroker and MqttBridge: Manager.mqtt_broker() over include/cymg/mqtt_broker.h.
 *
 * Ownership: the Manager's `brokers` list holds each open broker, and the
 * broker holds its Manager, so a broker runs whether or not the program keeps
 * a reference; close() (or Manager.close(), which frees brokers before the C
 * manager) ends it. The listeners and the connections the handler has seen
 * are Connection wrappers owned by the broker (lists / dicts below); they go
 * stale at their CLOSE, which the broker's event function reports, and all of
 * them when the broker closes.
 *
 * Speed: with no hook, no handler and no watch set, the C broker runs without
 * any Python: the auth/acl pointers are NULL and the event function only
 * looks at CLOSE of a listener.
 *
 * Python code (hooks, handler, watch callbacks) runs on the manager's thread
 * with the GIL, from inside broker code; `busy` counts those frames so close()
 * refuses to free the broker under them. A hook that raises (or returns
 * something that is neither a bool nor a reason code) refuses, with the
 * exception reported like a handler's. */
#include "mqtt_broker.h"

#include <string.h>

#include "structmember.h"

/* What hooks answer when they fail: refused, "not authorized". */
#define REFUSE_CODE 0x87
/* False from auth: "bad user name or password" (3.1.1: return code 4). */
#define BAD_LOGIN_CODE 0x86

cymgpy_state *cymgpy_broker_state(cymgpy_mqtt_broker *self) {
  return self->mgr->st;
}

/* ---- Connection wrappers of the broker's connections ---- */

/* A wrapper bound to c that c does not point back to (its user pointer is
 * the broker's): the broker keeps it and unbinds it at c's CLOSE. */
static cymgpy_conn *bound_wrapper(cymgpy_state *st, cymg_conn *c) {
  cymgpy_conn *w = cymgpy_conn_new(st, NULL);
  if (w == NULL) return NULL;
  w->conn = c;
  w->id = cymg_conn_id(c);
  w->state = CYMGPY_OPEN;
  return w;
}

static void unbind_wrapper(cymgpy_conn *w) {
  if (w->conn != NULL) cymgpy_conn_remember(w, w->conn);
  w->conn = NULL;
  w->state = CYMGPY_CLOSED;
}

/* The broker object of a broker connection's event: fn_data, which the C
 * broker makes the connection's user pointer while fn runs. */
static cymgpy_mqtt_broker *event_owner(cymg_conn *c) {
  return cymg_conn_userdata(c);
}

/* Drops the wrapper of a listener that closed. */
static void listener_closed(cymgpy_mqtt_broker *self, cymg_conn *c) {
  Py_ssize_t n = PyList_GET_SIZE(self->listeners);
  for (Py_ssize_t i = 0; i < n; i++) {
    cymgpy_conn *w = (cymgpy_conn *) PyList_GET_ITEM(self->listeners, i);
    if (w->conn == c) {
      unbind_wrapper(w);
      if (PySequence_DelItem(self->listeners, i) < 0) PyErr_Clear();
      return;
    }
  }
}

/* The wrapper the handler sees for c (new reference), made at c's first event. */
static cymgpy_conn *conn_wrapper(cymgpy_mqtt_broker *self, cymg_conn *c) {
  Py_ssize_t n = PyList_GET_SIZE(self->listeners);
  for (Py_ssize_t i = 0; i < n; i++) {
    cymgpy_conn *w = (cymgpy_conn *) PyList_GET_ITEM(self->listeners, i);
    if (w->conn == c) return (cymgpy_conn *) Py_NewRef(w);
  }
  PyObject *key = PyLong_FromUnsignedLongLong(cymg_conn_id(c));
  if (key == NULL) return NULL;
  cymgpy_conn *w = (cymgpy_conn *) PyDict_GetItemWithError(self->conns, key);
  if (w != NULL && w->conn == c) {
    Py_DECREF(key);
    return (cymgpy_conn *) Py_NewRef(w);
  }
  w = PyErr_Occurred() ? NULL : bound_wrapper(cymgpy_broker_state(self), c);
  if (w != NULL && PyDict_SetItem(self->conns, key, (PyObject *) w) < 0) Py_CLEAR(w);
  Py_DECREF(key);
  return w;
}

static void conn_closed(cymgpy_mqtt_broker *self, cymg_conn *c) {
  PyObject *key = PyLong_FromUnsignedLongLong(cymg_conn_id(c));
  cymgpy_conn *w = key ? (cymgpy_conn *) PyDict_GetItemWithError(self->conns, key) : NULL;
  if (w != NULL) {
    unbind_wrapper(w);
    if (PyDict_DelItem(self->conns, key) < 0) PyErr_Clear();
  }
  Py_XDECREF(key);
  PyErr_Clear();
}

/* The handler's view of one event of a broker connection (listeners too). */
static void call_handler(cymgpy_mqtt_broker *self, cymg_conn *c, int ev, void *ev_data) {
  cymgpy_manager *m = self->mgr;
  cymgpy_conn *w = conn_wrapper(self, c);
  PyObject *data = w ? cymgpy_event_data(m->st, ev, ev_data) : NULL;
  PyObject *evo = data ? PyLong_FromLong(ev) : NULL;
  if (evo != NULL) {
    PyObject *handler = Py_NewRef(self->handler);
    PyObject *argv[3] = {(PyObject *) w, evo, data};
    PyObject *r = PyObject_Vectorcall(handler, argv, 3, NULL);
    Py_DECREF(handler);
    if (r == NULL) cymgpy_report_exception(m);
    Py_XDECREF(r);
  } else {
    cymgpy_report_exception(m); /* no memory for the call: say so, go on */
  }
  if (data != NULL) cymgpy_views_done(m->st, data);
  Py_XDECREF(evo);
  Py_XDECREF(data);
  Py_XDECREF(w);
}

/* opts.fn: every event of the broker's connections after the broker handled it. */
static void broker_event(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_POLL) return; /* every connection, every poll: not for logging */
  cymgpy_mqtt_broker *self = event_owner(c);
  if (self == NULL || self->mgr == NULL) return;
  bool listening = cymg_conn_is_listening(c);
  if (self->handler == NULL && !(listening && ev == CYMG_EV_CLOSE)) return;
  Py_INCREF(self);
  self->busy++;
  if (self->handler != NULL && !self->mgr->quiet) call_handler(self, c, ev, ev_data);
  if (ev == CYMG_EV_CLOSE) {
    if (listening) {
      listener_closed(self, c);
    } else {
      conn_closed(self, c);
    }
  }
  self->busy--;
  Py_DECREF(self);
}

/* ---- hooks ---- */

static PyObject *opt_bytes(cymg_str s, bool present) {
  if (!present) Py_RETURN_NONE;
  return PyBytes_FromStringAndSize(s.len ? s.buf : "", (Py_ssize_t) s.len);
}

static PyObject *client_info(cymgpy_mqtt_broker *self, const cymg_mqtt_client_info *who) {
  PyObject *info = PyStructSequence_New(cymgpy_broker_state(self)->mqtt_client_info_type);
  if (info == NULL) return NULL;
  PyObject *addr = who->conn ? cymgpy_addr_tuple(cymg_conn_remote(who->conn)) : Py_NewRef(Py_None);
  PyObject *v[] = {
      cymgpy_str(who->client_id.buf, who->client_id.len),
      who->has_username ? cymgpy_str(who->username.buf, who->username.len) : Py_NewRef(Py_None),
      opt_bytes(who->password, who->has_password),
      cymgpy_str(who->cert_subject.buf, who->cert_subject.len),
      addr,
      PyLong_FromLong(who->version),
  };
  int bad = 0;
  for (Py_ssize_t i = 0; i < (Py_ssize_t) (sizeof(v) / sizeof(v[0])); i++) {
    if (v[i] == NULL) bad = 1;
    PyStructSequence_SET_ITEM(info, i, v[i] ? v[i] : Py_NewRef(Py_None));
  }
  if (bad) Py_CLEAR(info);
  return info;
}

/* A hook's answer as a reason code: True 0, False `no`, an int 0 or
 * 0x80..0xFF as such; anything else (or an exception) refuses, reported. */
static int hook_code(cymgpy_mqtt_broker *self, PyObject *r, int no, const char *hook) {
  if (r == NULL) {
    cymgpy_report_exception(self->mgr);
    return REFUSE_CODE;
  }
  int code = REFUSE_CODE;
  if (PyBool_Check(r)) {
    code = r == Py_True ? 0 : no;
  } else if (PyLong_Check(r)) {
    long v = PyLong_AsLong(r);
    if (v == 0 || (v >= 0x80 && v <= 0xFF)) {
      code = (int) v;
    } else {
      PyErr_Clear();
      PyErr_Format(PyExc_ValueError,
                   "MqttBroker %s hook returned %R: expected True, False, 0 or a reason code "
                   "0x80..0xFF (refused with 0x87)",
                   hook, r);
      cymgpy_report_exception(self->mgr);
    }
  } else {
    PyErr_Format(PyExc_TypeError,
                 "MqttBroker %s hook returned %.100s: expected a bool or an int reason code "
                 "(refused with 0x87)",
                 hook, Py_TYPE(r)->tp_name);
    cymgpy_report_exception(self->mgr);
  }
  Py_DECREF(r);
  return code;
}

static int auth_hook(void *data, const cymg_mqtt_client_info *who) {
  cymgpy_mqtt_broker *self = data;
  if (self->mgr == NULL || self->mgr->quiet || self->auth == NULL) return REFUSE_CODE;
  Py_INCREF(self);
  self->busy++;
  PyObject *info = client_info(self, who);
  PyObject *r = info ? PyObject_CallOneArg(self->auth, info) : NULL;
  int code = hook_code(self, r, BAD_LOGIN_CODE, "auth");
  Py_XDECREF(info);
  self->busy--;
  Py_DECREF(self);
  return code;
}

static int acl_hook(void *data, const cymg_mqtt_client_info *who, int action, cymg_str topic,
                    int qos, bool retain) {
  cymgpy_mqtt_broker *self = data;
  if (self->mgr == NULL || self->mgr->quiet || self->acl == NULL) return REFUSE_CODE;
  Py_INCREF(self);
  self->busy++;
  PyObject *info = client_info(self, who);
  PyObject *r = NULL;
  if (info != NULL) {
    r = PyObject_CallFunction(self->acl, "OsNiO", info,
                              action == CYMG_MQTT_ACL_SUBSCRIBE ? "subscribe" : "publish",
                              cymgpy_str(topic.buf, topic.len), qos, retain ? Py_True : Py_False);
  }
  int code = hook_code(self, r, REFUSE_CODE, "acl");
  Py_XDECREF(info);
  self->busy--;
  Py_DECREF(self);
  return code;
}

/* ---- watch ---- */

static void watch_fn(void *data, const cymg_mqtt_msg *msg, const void *origin) {
  (void) origin;
  PyObject *entry = data; /* (broker, callback) */
  cymgpy_mqtt_broker *self = (cymgpy_mqtt_broker *) PyTuple_GET_ITEM(entry, 0);
  if (self->mgr == NULL || self->mgr->quiet) return;
  Py_INCREF(entry); /* the callback may unwatch itself */
  Py_INCREF(self);
  self->busy++;
  PyObject *view = cymgpy_mqtt_message_new(cymgpy_broker_state(self), msg);
  PyObject *r = view ? PyObject_CallOneArg(PyTuple_GET_ITEM(entry, 1), view) : NULL;
  if (r == NULL) cymgpy_report_exception(self->mgr);
  Py_XDECREF(r);
  if (view != NULL) {
    cymgpy_mqtt_message_done(view);
    Py_DECREF(view);
  }
  self->busy--;
  Py_DECREF(self);
  Py_DECREF(entry);
}

/* ---- life cycle ---- */

/* Frees the C broker and everything that hangs off it; the object stays,
 * closed. Safe to call twice. */
static void broker_close_c(cymgpy_mqtt_broker *self) {
  if (self->b == NULL) return;
  /* The bridges go with the broker: mark them before it frees them. */
  if (self->bridges != NULL) {
    while (PyList_GET_SIZE(self->bridges) > 0) {
      PyObject *br = Py_NewRef(PyList_GET_ITEM(self->bridges, 0));
      ((cymgpy_mqtt_bridge *) br)->br = NULL;
      cymgpy_bridge_detach((cymgpy_mqtt_bridge *) br);
      Py_DECREF(br);
    }
  }
  cymg_mqtt_broker *b = self->b;
  self->busy++; /* the CLOSE events of its connections run the handler */
  cymg_mqtt_broker_free(b);
  self->busy--;
  self->b = NULL;
  /* Its connections close at the next poll, with CLOSE still going to
   * broker_event and this object as the user pointer: by then it may be gone. */
  if (self->mgr != NULL && self->mgr->mgr != NULL) {
    for (cymg_conn *c = cymg_mgr_first(self->mgr->mgr); c != NULL; c = cymg_conn_next(c)) {
      if (cymg_conn_handler(c) == broker_event && cymg_conn_userdata(c) == self)
        cymg_conn_set_handler(c, NULL, NULL);
    }
  }
  if (self->listeners != NULL) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(self->listeners); i++)
      unbind_wrapper((cymgpy_conn *) PyList_GET_ITEM(self->listeners, i));
    if (PyList_SetSlice(self->listeners, 0, PY_SSIZE_T_MAX, NULL) < 0) PyErr_Clear();
  }
  if (self->conns != NULL) {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(self->conns, &pos, &k, &v)) unbind_wrapper((cymgpy_conn *) v);
    PyDict_Clear(self->conns);
  }
  if (self->watches != NULL) PyDict_Clear(self->watches);
  cymgpy_manager *m = self->mgr;
  self->mgr = NULL;
  if (m != NULL && m->brokers != NULL) {
    Py_ssize_t i = PySequence_Index(m->brokers, (PyObject *) self);
    if (i >= 0 && PySequence_DelItem(m->brokers, i) < 0) i = -1;
    if (i < 0) PyErr_Clear();
  }
  Py_XDECREF(m);
}

void cymgpy_brokers_close_all(cymgpy_manager *m) {
  while (m->brokers != NULL && PyList_GET_SIZE(m->brokers) > 0) {
    PyObject *b = Py_NewRef(PyList_GET_ITEM(m->brokers, PyList_GET_SIZE(m->brokers) - 1));
    Py_ssize_t before = PyList_GET_SIZE(m->brokers);
    broker_close_c((cymgpy_mqtt_broker *) b);
    if (PyList_GET_SIZE(m->brokers) == before && PySequence_DelItem(m->brokers, before - 1) < 0)
      PyErr_Clear(); /* never loop on one that did not leave the list */
    Py_DECREF(b);
  }
}

/* The open broker, or NULL with RuntimeError. */
cymg_mqtt_broker *cymgpy_broker_live(cymgpy_mqtt_broker *self) {
  if (self->b == NULL || self->mgr == NULL || self->mgr->mgr == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "the MQTT broker is closed");
    return NULL;
  }
  return self->b;
}

static int check_callable(const char *what, PyObject *fn) {
  if (fn == Py_None || PyCallable_Check(fn)) return 0;
  PyErr_Format(PyExc_TypeError, "%s must be callable or None, not %.100s", what,
               Py_TYPE(fn)->tp_name);
  return -1;
}

static int tls_scheme(const char *url) {
  const char *sep = strstr(url, "://");
  return sep != NULL && cymg_url_is_tls(cymg_str_n(url, (size_t) (sep - url)));
}

/* Listens on url (the call lock held); the listener Connection, or NULL. */
static PyObject *do_listen(cymgpy_mqtt_broker *self, const char *url, PyObject *tls) {
  cymg_mqtt_broker *b = cymgpy_broker_live(self);
  if (b == NULL) return NULL;
  cymgpy_manager *m = self->mgr;
  if (tls != Py_None && cymgpy_tls_opts_check(m->st, tls, "MqttBroker.listen(tls=)") < 0)
    return NULL;
  if (tls == Py_None && tls_scheme(url)) {
    return PyErr_Format(PyExc_ValueError,
                        "Failed to listen on '%s': a TLS listener needs "
                        "tls=TlsOpts(cert=..., key=...)",
                        url);
  }
  cymg_conn *c = NULL;
  int rc = cymg_mqtt_broker_listen(b, url, &c);
  if (rc < 0 || c == NULL) {
    const char *why = cymg_mgr_errmsg(m->mgr);
    return PyErr_Format(PyExc_RuntimeError, "Failed to listen on '%s': %s", url,
                        why[0] ? why : cymg_strerror(rc < 0 ? rc : CYMG_EINVAL));
  }
  cymgpy_conn *w = bound_wrapper(m->st, c);
  if (w == NULL || PyList_Append(self->listeners, (PyObject *) w) < 0) {
    cymg_close(c);
    Py_XDECREF(w);
    return NULL;
  }
  if (tls != Py_None) {
    PyObject *r = cymgpy_tls_apply(c, tls);
    if (r == NULL) {
      cymg_close(c);
      Py_DECREF(w);
      return NULL;
    }
    Py_DECREF(r);
  }
  return (PyObject *) w;
}

/* An int keyword in [0, max] into *out. */
static int limit_arg(PyObject *o, const char *what, unsigned long long max,
                     unsigned long long *out) {
  if (!PyLong_Check(o) || PyBool_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
    return -1;
  }
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (v == -1 && PyErr_Occurred()) return -1;
  if (overflow != 0 || v < 0 || (unsigned long long) v > max) {
    PyErr_Format(PyExc_ValueError, "%s must be 0..%llu, not %R", what, max, o);
    return -1;
  }
  *out = (unsigned long long) v;
  return 0;
}

/* The limit keywords of mqtt_broker(), in kwlist order after the hooks. */
static const struct {
  const char *name;
  unsigned long long max;
} limits[] = {
    {"max_connections", UINT32_MAX}, {"max_packet", 268435460ULL},
    {"max_subs", UINT32_MAX},        {"max_queued", UINT32_MAX},
    {"max_queued_bytes", INT64_MAX}, {"max_retained", UINT32_MAX},
    {"max_session_expiry", UINT32_MAX}, {"receive_max", 65535},
    {"topic_alias_max", 65535},      {"max_keepalive", 65535},
    {"max_qos", 2},
};
enum { N_LIMITS = sizeof(limits) / sizeof(limits[0]) };

static int fill_opts(PyObject **lim, const int flags[5], cymg_mqtt_broker_opts *o) {
  unsigned long long v[N_LIMITS];
  for (int i = 0; i < N_LIMITS; i++) {
    v[i] = i == N_LIMITS - 1 ? 2 : 0;
    if (lim[i] != NULL && limit_arg(lim[i], limits[i].name, limits[i].max, &v[i]) < 0) return -1;
  }
  if (v[1] != 0 && v[1] < 64) {
    PyErr_Format(PyExc_ValueError, "max_packet must be 0 (1 MiB) or at least 64, not %llu", v[1]);
    return -1;
  }
  o->max_connections = (uint32_t) v[0];
  o->max_packet = (uint32_t) v[1];
  o->max_subs = (uint32_t) v[2];
  o->max_queued = (uint32_t) v[3];
  o->max_queued_bytes = (uint64_t) v[4];
  o->max_retained = (uint32_t) v[5];
  o->max_session_expiry = (uint32_t) v[6];
  o->receive_max = (uint16_t) v[7];
  o->topic_alias_max = (uint16_t) v[8];
  o->max_keepalive = (uint16_t) v[9];
  o->max_qos = (uint8_t) v[10];
  o->has_max_qos = true;
  o->no_retain = !flags[0];
  o->no_wildcard = !flags[1];
  o->no_shared = !flags[2];
  o->no_sub_ids = !flags[3];
  o->disconnect_on_full = flags[4] != 0;
  return 0;
}

static PyObject *mqtt_broker(cymgpy_manager *m, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"url",        "tls",          "persist",        "auth",
                           "acl",        "handler",      "max_connections", "max_packet",
                           "max_subs",   "max_queued",   "max_queued_bytes", "max_retained",
                           "max_session_expiry", "receive_max", "topic_alias_max",
                           "max_keepalive", "max_qos",   "retain",         "wildcard",
                           "shared",     "sub_ids",      "disconnect_on_full", NULL};
  PyObject *url = Py_None, *tls = Py_None, *persist = Py_None, *auth = Py_None, *acl = Py_None,
           *handler = Py_None;
  PyObject *lim[N_LIMITS] = {NULL};
  int flags[5] = {1, 1, 1, 1, 0};
  if (!PyArg_ParseTupleAndKeywords(
          args, kwargs, "|O$OOOOOOOOOOOOOOOOppppp:mqtt_broker", kwlist, &url, &tls, &persist,
          &auth, &acl, &handler, &lim[0], &lim[1], &lim[2], &lim[3], &lim[4], &lim[5], &lim[6],
          &lim[7], &lim[8], &lim[9], &lim[10], &flags[0], &flags[1], &flags[2], &flags[3],
          &flags[4]))
    return NULL;
  if (check_callable("auth", auth) < 0 || check_callable("acl", acl) < 0 ||
      check_callable("handler", handler) < 0)
    return NULL;
  if (url != Py_None && !PyUnicode_Check(url))
    return PyErr_Format(PyExc_TypeError, "url must be a str or None, not %.100s",
                        Py_TYPE(url)->tp_name);
  if (tls != Py_None && cymgpy_tls_opts_check(m->st, tls, "mqtt_broker(tls=)") < 0) return NULL;
  if (tls != Py_None && url == Py_None)
    return PyErr_Format(PyExc_ValueError, "mqtt_broker(tls=) applies to url=, which is None");
  cymg_mqtt_broker_opts o;
  memset(&o, 0, sizeof(o));
  if (fill_opts(lim, flags, &o) < 0) return NULL;
  PyObject *path = NULL;
  if (persist != Py_None) {
    if (!PyUnicode_FSConverter(persist, &path)) return NULL;
    if (PyBytes_GET_SIZE(path) == 0 || strlen(PyBytes_AS_STRING(path)) !=
                                           (size_t) PyBytes_GET_SIZE(path)) {
      Py_DECREF(path);
      return PyErr_Format(PyExc_ValueError, "persist must be a non-empty path without NUL");
    }
    o.persist_path = PyBytes_AS_STRING(path);
  }
  if (m->mgr == NULL || m->state == CYMGPY_CLOSING) {
    Py_XDECREF(path);
    return PyErr_Format(PyExc_RuntimeError, "mqtt_broker: the manager is %s",
                        m->mgr ? "closing" : "closed");
  }
  if (m->brokers == NULL && (m->brokers = PyList_New(0)) == NULL) {
    Py_XDECREF(path);
    return NULL;
  }
  PyTypeObject *tp = m->st->mqtt_broker_type;
  cymgpy_mqtt_broker *self = (cymgpy_mqtt_broker *) tp->tp_alloc(tp, 0);
  if (self == NULL) {
    Py_XDECREF(path);
    return NULL;
  }
  self->watches = PyDict_New();
  self->listeners = PyList_New(0);
  self->conns = PyDict_New();
  self->bridges = PyList_New(0);
  if (!self->watches || !self->listeners || !self->conns || !self->bridges) goto fail;
  self->mgr = (cymgpy_manager *) Py_NewRef(m);
  if (auth != Py_None) {
    self->auth = Py_NewRef(auth);
    o.auth = auth_hook;
    o.auth_data = self;
  }
  if (acl != Py_None) {
    self->acl = Py_NewRef(acl);
    o.acl = acl_hook;
    o.acl_data = self;
  }
  if (handler != Py_None) self->handler = Py_NewRef(handler);
  o.fn = broker_event; /* always: a listener's CLOSE unbinds its wrapper */
  o.fn_data = self;
  int rc = cymg_mqtt_broker_new(m->mgr, &o, &self->b);
  Py_XDECREF(path);
  path = NULL;
  if (rc < 0) {
    self->b = NULL;
    const char *why = cymg_mgr_errmsg(m->mgr);
    if (rc == CYMG_EINVAL && !why[0]) {
      PyErr_SetString(PyExc_ValueError, "mqtt_broker: invalid options");
    } else if (rc == CYMG_ENOMEM) {
      PyErr_NoMemory();
    } else {
      PyErr_Format(PyExc_RuntimeError, "mqtt_broker: %s", why[0] ? why : cymg_strerror(rc));
    }
    goto fail;
  }
  if (PyList_Append(m->brokers, (PyObject *) self) < 0) goto fail;
  if (url != Py_None) {
    const char *u = PyUnicode_AsUTF8(url);
    PyObject *lsn = u ? do_listen(self, u, tls) : NULL;
    if (lsn == NULL) goto fail;
    Py_DECREF(lsn);
  }
  if (cymgpy_raise_pending(m) < 0) goto fail;
  return (PyObject *) self;
fail:
  Py_XDECREF(path);
  {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    broker_close_c(self);
    PyErr_Restore(type, value, tb);
  }
  Py_DECREF(self);
  return NULL;
}

PyObject *cymgpy_manager_mqtt_broker(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  cymgpy_lock(m);
  PyObject *r = mqtt_broker(m, args, kwargs);
  cymgpy_unlock(m);
  return r;
}

/* ---- methods ---- */

/* Runs fn under the manager's call lock (methods may come from any thread). */
#define LOCKED(name, ...)                                              \
  cymgpy_mqtt_broker *self = (cymgpy_mqtt_broker *) op;                \
  cymgpy_manager *m = self->mgr ? (cymgpy_manager *) Py_NewRef(self->mgr) : NULL; \
  if (m != NULL) cymgpy_lock(m);                                       \
  PyObject *r = name(self, __VA_ARGS__);                               \
  if (m != NULL) {                                                     \
    cymgpy_unlock(m);                                                  \
    Py_DECREF(m);                                                      \
  }                                                                    \
  return r

static PyObject *listen_impl(cymgpy_mqtt_broker *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"url", "tls", NULL};
  const char *url;
  PyObject *tls = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O:listen", kwlist, &url, &tls)) return NULL;
  PyObject *r = do_listen(self, url, tls);
  if (r != NULL && self->mgr != NULL && cymgpy_raise_pending(self->mgr) < 0) Py_CLEAR(r);
  return r;
}

static PyObject *b_listen(PyObject *op, PyObject *args, PyObject *kwargs) {
  LOCKED(listen_impl, args, kwargs);
}

static PyObject *publish_impl(cymgpy_mqtt_broker *self, PyObject *args, PyObject *kwargs) {
  cymgpy_pub_args a;
  if (cymgpy_pub_args_parse(args, kwargs, "OO|ipO:publish", "publish", &a) < 0) return NULL;
  cymg_mqtt_broker *b = cymgpy_broker_live(self);
  PyObject *r = NULL;
  if (b != NULL) {
    self->busy++; /* watch callbacks run inside */
    int rc = cymg_mqtt_broker_publish(b, a.topic, cymg_str_n(a.data.buf, (size_t) a.data.len),
                                      a.qos, a.retain, a.props.props, a.props.n, NULL);
    self->busy--;
    if (rc == CYMG_EINVAL) {
      PyErr_SetString(PyExc_ValueError,
                      "publish: invalid argument (topic, QoS or a property not allowed in "
                      "PUBLISH)");
    } else if (rc < 0) {
      cymgpy_raise_rc("publish", rc);
    } else if (cymgpy_raise_pending(self->mgr) == 0) {
      r = Py_NewRef(Py_None);
    }
  }
  cymgpy_pub_args_release(&a);
  return r;
}

static PyObject *b_publish(PyObject *op, PyObject *args, PyObject *kwargs) {
  LOCKED(publish_impl, args, kwargs);
}

static PyObject *watch_impl(cymgpy_mqtt_broker *self, PyObject *filter, PyObject *callback) {
  cymg_str f;
  if (cymgpy_str_arg(filter, "filter", &f) < 0) return NULL;
  if (!PyCallable_Check(callback))
    return PyErr_Format(PyExc_TypeError, "watch: callback must be callable, not %.100s",
                        Py_TYPE(callback)->tp_name);
  if (!cymg_mqtt_filter_valid(f))
    return PyErr_Format(PyExc_ValueError, "watch: invalid topic filter %R", filter);
  cymg_mqtt_broker *b = cymgpy_broker_live(self);
  if (b == NULL) return NULL;
  PyObject *entry = PyTuple_Pack(2, (PyObject *) self, callback);
  if (entry == NULL) return NULL;
  uint64_t id = 0;
  int rc = cymg_mqtt_broker_watch(b, f, watch_fn, entry, &id);
  if (rc < 0) {
    Py_DECREF(entry);
    if (rc == CYMG_EINVAL) return PyErr_Format(PyExc_ValueError, "watch: invalid filter %R", filter);
    return cymgpy_raise_rc("watch", rc);
  }
  PyObject *key = PyLong_FromUnsignedLongLong(id);
  if (key == NULL || PyDict_SetItem(self->watches, key, entry) < 0) {
    if (cymg_mqtt_broker_unwatch(b, id) < 0) PyErr_WriteUnraisable((PyObject *) self);
    Py_XDECREF(key);
    Py_DECREF(entry);
    return NULL;
  }
  Py_DECREF(entry); /* the dict holds it as long as the C side may call it */
  return key;
}

static PyObject *b_watch(PyObject *op, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"filter", "callback", NULL};
  PyObject *filter, *callback;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:watch", kwlist, &filter, &callback))
    return NULL;
  LOCKED(watch_impl, filter, callback);
}

static PyObject *unwatch_impl(cymgpy_mqtt_broker *self, PyObject *id, PyObject *unused) {
  (void) unused;
  unsigned long long n = PyLong_Check(id) ? PyLong_AsUnsignedLongLong(id) : 0;
  if (!PyLong_Check(id) || PyErr_Occurred()) {
    PyErr_Clear();
    return PyErr_Format(PyExc_TypeError, "unwatch: id must be an int returned by watch()");
  }
  cymg_mqtt_broker *b = cymgpy_broker_live(self);
  if (b == NULL) return NULL;
  if (cymg_mqtt_broker_unwatch(b, n) < 0)
    return PyErr_Format(PyExc_KeyError, "unwatch: no watch with id %llu", n);
  if (PyDict_DelItem(self->watches, id) < 0) PyErr_Clear();
  Py_RETURN_NONE;
}

static PyObject *b_unwatch(PyObject *op, PyObject *id) {
  LOCKED(unwatch_impl, id, NULL);
}

static int stat_item(PyObject *d, const char *k, unsigned long long v) {
  PyObject *o = PyLong_FromUnsignedLongLong(v);
  int rc = o ? PyDict_SetItemString(d, k, o) : -1;
  Py_XDECREF(o);
  return rc;
}

static PyObject *stats_impl(cymgpy_mqtt_broker *self, PyObject *unused, PyObject *unused2) {
  (void) unused;
  (void) unused2;
  cymg_mqtt_broker *b = cymgpy_broker_live(self);
  if (b == NULL) return NULL;
  cymg_mqtt_broker_stats s;
  memset(&s, 0, sizeof(s));
  cymg_mqtt_broker_get_stats(b, &s);
  PyObject *d = PyDict_New();
  if (d == NULL) return NULL;
  if (stat_item(d, "clients", s.clients) < 0 || stat_item(d, "sessions", s.sessions) < 0 ||
      stat_item(d, "subscriptions", s.subscriptions) < 0 ||
      stat_item(d, "retained", s.retained) < 0 || stat_item(d, "queued", s.queued) < 0 ||
      stat_item(d, "msgs_in", s.msgs_in) < 0 || stat_item(d, "msgs_out", s.msgs_out) < 0 ||
      stat_item(d, "bytes_in", s.bytes_in) < 0 || stat_item(d, "bytes_out", s.bytes_out) < 0 ||
      stat_item(d, "dropped", s.dropped) < 0)
    Py_CLEAR(d);
  return d;
}

static PyObject *b_stats(PyObject *op, PyObject *unused) {
  LOCKED(stats_impl, unused, NULL);
}

static PyObject *close_impl(cymgpy_mqtt_broker *self, PyObject *unused, PyObject *unused2) {
  (void) unused;
  (void) unused2;
  if (self->b == NULL) Py_RETURN_NONE;
  if (self->busy > 0) {
    PyErr_SetString(PyExc_RuntimeError,
                    "MqttBroker.close() cannot be called from the broker's own hooks, handler "
                    "or watch callbacks");
    return NULL;
  }
  cymgpy_manager *m = self->mgr;
  if (m != NULL && m->state == CYMGPY_CLOSING) Py_RETURN_NONE; /* Manager.close() does it */
  Py_XINCREF(m);
  broker_close_c(self);
  int pending = m != NULL ? cymgpy_raise_pending(m) : 0;
  Py_XDECREF(m);
  if (pending < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *b_close(PyObject *op, PyObject *unused) {
  LOCKED(close_impl, unused, NULL);
}

static PyObject *b_enter(PyObject *op, PyObject *unused) {
  (void) unused;
  return Py_NewRef(op);
}

static PyObject *b_exit(PyObject *op, PyObject *args) {
  (void) args;
  PyObject *r = b_close(op, NULL);
  if (r == NULL) return NULL;
  Py_DECREF(r);
  Py_RETURN_FALSE;
}

static PyObject *b_get_listeners(PyObject *op, void *closure) {
  (void) closure;
  cymgpy_mqtt_broker *self = (cymgpy_mqtt_broker *) op;
  return self->listeners ? PyList_AsTuple(self->listeners) : PyTuple_New(0);
}

static PyObject *b_get_closed(PyObject *op, void *closure) {
  (void) closure;
  return PyBool_FromLong(((cymgpy_mqtt_broker *) op)->b == NULL);
}

static PyObject *b_repr(PyObject *op) {
  cymgpy_mqtt_broker *self = (cymgpy_mqtt_broker *) op;
  if (self->b == NULL) return PyUnicode_FromString("<cymongoose.MqttBroker closed>");
  cymg_mqtt_broker_stats s;
  memset(&s, 0, sizeof(s));
  cymg_mqtt_broker_get_stats(self->b, &s);
  return PyUnicode_FromFormat("<cymongoose.MqttBroker %zd listeners, %zu clients, %zu sessions>",
                              PyList_GET_SIZE(self->listeners), s.clients, s.sessions);
}

static PyObject *b_bridge(PyObject *op, PyObject *args, PyObject *kwargs) {
  LOCKED(cymgpy_broker_bridge, args, kwargs);
}

static int b_traverse(PyObject *op, visitproc visit, void *arg) {
  cymgpy_mqtt_broker *self = (cymgpy_mqtt_broker *) op;
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(self->mgr);
  Py_VISIT(self->auth);
  Py_VISIT(self->acl);
  Py_VISIT(self->handler);
  Py_VISIT(self->watches);
  Py_VISIT(self->listeners);
  Py_VISIT(self->conns);
  Py_VISIT(self->bridges);
  return 0;
}

static int b_clear(PyObject *op) {
  cymgpy_mqtt_broker *self = (cymgpy_mqtt_broker *) op;
  if (self->b != NULL && self->busy == 0 && self->mgr != NULL && self->mgr->mgr != NULL &&
      self->mgr->state == CYMGPY_IDLE)
    broker_close_c(self);
  if (self->b == NULL) {
    Py_CLEAR(self->auth);
    Py_CLEAR(self->acl);
    Py_CLEAR(self->handler);
    Py_CLEAR(self->watches);
    Py_CLEAR(self->mgr);
  }
  return 0;
}

static void b_finalize(PyObject *op) {
  cymgpy_mqtt_broker *self = (cymgpy_mqtt_broker *) op;
  if (self->b == NULL || self->busy > 0 || self->mgr == NULL || self->mgr->state != CYMGPY_IDLE)
    return;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  broker_close_c(self);
  PyErr_Restore(type, value, tb);
}

static void b_dealloc(PyObject *op) {
  cymgpy_mqtt_broker *self = (cymgpy_mqtt_broker *) op;
  PyTypeObject *tp = Py_TYPE(op);
  if (PyObject_CallFinalizerFromDealloc(op) < 0) return;
  PyObject_GC_UnTrack(op);
  if (self->weakreflist != NULL) PyObject_ClearWeakRefs(op);
  broker_close_c(self); /* only reached closed or with its manager gone */
  b_clear(op);
  Py_CLEAR(self->listeners);
  Py_CLEAR(self->conns);
  Py_CLEAR(self->bridges);
  Py_CLEAR(self->auth);
  Py_CLEAR(self->acl);
  Py_CLEAR(self->handler);
  Py_CLEAR(self->watches);
  Py_CLEAR(self->mgr);
  tp->tp_free(op);
  Py_DECREF(tp);
}

static PyMethodDef b_methods[] = {
    {"listen", (PyCFunction) (void (*)(void)) b_listen, METH_VARARGS | METH_KEYWORDS,
     "listen(url, tls=None) -> Connection: another listener (mqtt://, mqtts://, ws://, wss://)."},
    {"publish", (PyCFunction) (void (*)(void)) b_publish, METH_VARARGS | METH_KEYWORDS,
     "publish(topic, message, qos=0, retain=False, properties=None): route a message as if a "
     "client had published it."},
    {"watch", (PyCFunction) (void (*)(void)) b_watch, METH_VARARGS | METH_KEYWORDS,
     "watch(filter, callback) -> int: callback(MqttMessage) for every routed message matching."},
    {"unwatch", b_unwatch, METH_O, "unwatch(id): end a watch (KeyError if unknown)."},
    {"bridge", (PyCFunction) (void (*)(void)) b_bridge, METH_VARARGS | METH_KEYWORDS,
     "bridge(url, topics, *, client_id='', username='', password='', version=5, keepalive=60, "
     "tls=None, backoff_min_ms=0, backoff_max_ms=0) -> MqttBridge"},
    {"stats", b_stats, METH_NOARGS, "stats() -> dict: the broker's counters."},
    {"close", b_close, METH_NOARGS, "close(): stop listening, close every client, free (idempotent)."},
    {"__enter__", b_enter, METH_NOARGS, NULL},
    {"__exit__", b_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef b_getset[] = {
    {"listeners", b_get_listeners, NULL, "Tuple of the live listener Connections.", NULL},
    {"closed", b_get_closed, NULL, "True once close() (or Manager.close()) ran.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef b_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cymgpy_mqtt_broker, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot b_slots[] = {
    {Py_tp_doc, "An MQTT 3.1.1 / 5.0 broker on a Manager's loop: Manager.mqtt_broker()."},
    {Py_tp_dealloc, b_dealloc},
    {Py_tp_finalize, b_finalize},
    {Py_tp_traverse, b_traverse},
    {Py_tp_clear, b_clear},
    {Py_tp_repr, b_repr},
    {Py_tp_methods, b_methods},
    {Py_tp_getset, b_getset},
    {Py_tp_members, b_members},
    {0, NULL},
};

static PyType_Spec broker_spec = {
    .name = "cymongoose.MqttBroker",
    .basicsize = sizeof(cymgpy_mqtt_broker),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = b_slots,
};

static PyStructSequence_Field info_fields[] = {
    {"client_id", "the client identifier (the assigned one when the client sent none)"},
    {"username", "the CONNECT user name, or None"},
    {"password", "the CONNECT password (bytes), or None"},
    {"cert_subject", "the TLS client certificate's subject; '' without one"},
    {"remote_addr", "(ip, port, is_ipv6) of the client"},
    {"version", "4 (MQTT 3.1.1) or 5"},
    {NULL, NULL},
};

static PyStructSequence_Desc info_desc = {
    "cymongoose.MqttClientInfo",
    "Who is connecting or acting, as the MqttBroker auth and acl hooks see it.",
    info_fields,
    6,
};

int cymgpy_mqtt_broker_types(PyObject *mod, cymgpy_state *st) {
  st->mqtt_broker_type = (PyTypeObject *) PyType_FromModuleAndSpec(mod, &broker_spec, NULL);
  if (st->mqtt_broker_type == NULL || PyModule_AddType(mod, st->mqtt_broker_type) < 0) return -1;
  st->mqtt_bridge_type = (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_mqtt_bridge_spec, NULL);
  if (st->mqtt_bridge_type == NULL || PyModule_AddType(mod, st->mqtt_bridge_type) < 0) return -1;
  st->mqtt_client_info_type = PyStructSequence_NewType(&info_desc);
  if (st->mqtt_client_info_type == NULL || PyModule_AddType(mod, st->mqtt_client_info_type) < 0)
    return -1;
  return 0;
}
