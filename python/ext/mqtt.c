/* MQTT in the binding: Manager.mqtt_connect / mqtt_listen, the Connection.mqtt_*
 * calls and the MqttMessage view of MG_EV_MQTT_MSG / MG_EV_MQTT_CMD.
 *
 * Argument rules: wrong types raise TypeError and out-of-range values
 * ValueError before anything is queued. On a closed connection every call
 * raises RuntimeError("connection is closed"); on a listener each does nothing
 * (the C layer returns 0) and returns 0 or None. v5 properties go in and out as
 * lists of dicts {"id": n, "iv": int} or {"id": n, "val": str|bytes}, plus
 * "key" for a user property (0x26). */
#include "cymg_py.h"

#include <string.h>

/* ---- properties ---- */

void cymgpy_props_release(cymgpy_props *pb) {
  PyMem_Free(pb->props);
  Py_CLEAR(pb->keep);
  pb->props = NULL;
  pb->n = 0;
}

/* The bytes of a str (UTF-8) or bytes-like value, kept in pb->keep. */
static int prop_bytes(cymgpy_props *pb, PyObject *v, bool text, const char *what, cymg_str *out) {
  PyObject *b;
  if (PyUnicode_Check(v)) {
    b = PyUnicode_AsUTF8String(v);
  } else if (text) {
    PyErr_Format(PyExc_TypeError, "property %s must be a str, not %.100s", what,
                 Py_TYPE(v)->tp_name);
    return -1;
  } else if (PyObject_CheckBuffer(v)) {
    b = PyBytes_FromObject(v);
  } else {
    PyErr_Format(PyExc_TypeError, "property %s must be bytes-like or str, not %.100s", what,
                 Py_TYPE(v)->tp_name);
    return -1;
  }
  if (b == NULL) return -1;
  int rc = PyList_Append(pb->keep, b);
  Py_DECREF(b);
  if (rc < 0) return -1;
  *out = cymg_str_n(PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
  return 0;
}

int cymgpy_props_from(PyObject *obj, cymgpy_props *pb) {
  memset(pb, 0, sizeof(*pb));
  if (obj == NULL || obj == Py_None) return 0;
  PyObject *seq = PySequence_Fast(obj, "properties must be a list of dicts");
  if (seq == NULL) return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  pb->keep = PyList_New(0);
  pb->props = PyMem_Calloc(n ? (size_t)n : 1, sizeof(cymg_mqtt_prop));
  if (pb->keep == NULL || pb->props == NULL) {
    Py_DECREF(seq);
    cymgpy_props_release(pb);
    if (!PyErr_Occurred()) PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *d = PySequence_Fast_GET_ITEM(seq, i);
    cymg_mqtt_prop *p = &pb->props[i];
    if (!PyDict_Check(d)) {
      PyErr_Format(PyExc_TypeError, "each property must be a dict, not %.100s",
                   Py_TYPE(d)->tp_name);
      goto fail;
    }
    PyObject *id = PyDict_GetItemString(d, "id");
    if (id == NULL || !PyLong_Check(id)) {
      PyErr_SetString(PyExc_TypeError, "a property needs an int 'id'");
      goto fail;
    }
    long idv = PyLong_AsLong(id);
    if (idv == -1 && PyErr_Occurred()) goto fail;
    int type = (idv >= 1 && idv <= 255) ? cymg_mqtt_prop_type((uint8_t)idv) : -1;
    if (type < 0) {
      PyErr_Format(PyExc_ValueError, "unknown MQTT property id %ld", idv);
      goto fail;
    }
    p->id = (uint8_t)idv;
    PyObject *iv = PyDict_GetItemString(d, "iv"), *val = PyDict_GetItemString(d, "val");
    switch (type) {
      case CYMG_MQTT_PROP_TYPE_STRING_PAIR: {
        PyObject *key = PyDict_GetItemString(d, "key");
        if (key == NULL || val == NULL) {
          PyErr_Format(PyExc_TypeError, "property 0x%02lx (a user property) needs 'key' and 'val'",
                       idv);
          goto fail;
        }
        if (prop_bytes(pb, key, true, "key", &p->key) < 0) goto fail;
        if (prop_bytes(pb, val, true, "val", &p->val) < 0) goto fail;
        break;
      }
      case CYMG_MQTT_PROP_TYPE_STRING:
      case CYMG_MQTT_PROP_TYPE_BINARY_DATA:
        if (val == NULL) {
          PyErr_Format(PyExc_TypeError, "property 0x%02lx needs 'val'", idv);
          goto fail;
        }
        if (prop_bytes(pb, val, type == CYMG_MQTT_PROP_TYPE_STRING, "val", &p->val) < 0) goto fail;
        break;
      default: {
        if (iv == NULL || !PyLong_Check(iv)) {
          PyErr_Format(PyExc_TypeError, "property 0x%02lx needs an int 'iv'", idv);
          goto fail;
        }
        unsigned long long x = PyLong_AsUnsignedLongLong(iv);
        if ((x == (unsigned long long)-1 && PyErr_Occurred()) || x > UINT32_MAX) {
          PyErr_Clear();
          PyErr_Format(PyExc_ValueError, "property 0x%02lx: 'iv' out of range", idv);
          goto fail;
        }
        p->iv = (uint32_t)x;
      }
    }
    pb->n++;
  }
  Py_DECREF(seq);
  return 0;
fail:
  Py_DECREF(seq);
  cymgpy_props_release(pb);
  return -1;
}

PyObject *cymgpy_props_to_list(cymg_str block) {
  PyObject *list = PyList_New(0);
  if (list == NULL) return NULL;
  size_t ofs = 0;
  cymg_mqtt_prop p;
  int rc;
  while ((rc = cymg_mqtt_next_prop(block, &ofs, &p)) == 1) {
    int type = cymg_mqtt_prop_type(p.id);
    PyObject *d;
    if (type == CYMG_MQTT_PROP_TYPE_STRING_PAIR) {
      d = Py_BuildValue("{s:i,s:N,s:N}", "id", p.id, "key", cymgpy_str(p.key.buf, p.key.len), "val",
                        cymgpy_str(p.val.buf, p.val.len));
    } else if (type == CYMG_MQTT_PROP_TYPE_STRING) {
      d = Py_BuildValue("{s:i,s:N}", "id", p.id, "val", cymgpy_str(p.val.buf, p.val.len));
    } else if (type == CYMG_MQTT_PROP_TYPE_BINARY_DATA) {
      d = Py_BuildValue("{s:i,s:y#}", "id", p.id, "val", p.val.len ? p.val.buf : "",
                        (Py_ssize_t)p.val.len);
    } else {
      d = Py_BuildValue("{s:i,s:k}", "id", p.id, "iv", (unsigned long)p.iv);
    }
    if (d == NULL || PyList_Append(list, d) < 0) {
      Py_XDECREF(d);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(d);
  }
  /* The parser checked the block, so rc < 0 cannot happen on a live view;
   * were it to, the list ends there rather than raise from an accessor. */
  if (rc < 0) cymg_log(CYMG_LL_DEBUG, "MqttMessage.properties(): malformed block ignored");
  return list;
}

/* ---- MqttMessage ---- */

PyObject *cymgpy_mqtt_message_new(cymgpy_state *st, const cymg_mqtt_msg *msg) {
  cymgpy_mqtt_message *v = PyObject_New(cymgpy_mqtt_message, st->mqtt_message_type);
  if (v == NULL) return NULL;
  v->msg = msg;
  return (PyObject *)v;
}

void cymgpy_mqtt_message_done(PyObject *view) {
  ((cymgpy_mqtt_message *)view)->msg = NULL;
}

static const cymg_mqtt_msg *mlive(PyObject *self) {
  return ((cymgpy_mqtt_message *)self)->msg;
}

/* The getters: a field of the message by offset and kind; stale views give
 * the empty value of that kind. */
enum { F_STR, F_BYTES, F_U8, F_U16, F_BOOL };
typedef struct {
  size_t ofs;
  int kind;
} field;

static PyObject *get_field(PyObject *self, void *closure) {
  const field *f = closure;
  const cymg_mqtt_msg *m = mlive(self);
  const char *base = (const char *)m;
  switch (f->kind) {
    case F_STR: {
      if (m == NULL) return PyUnicode_FromStringAndSize("", 0);
      const cymg_str *s = (const cymg_str *)(base + f->ofs);
      return cymgpy_str(s->buf, s->len);
    }
    case F_BYTES: {
      if (m == NULL) return PyBytes_FromStringAndSize("", 0);
      const cymg_str *s = (const cymg_str *)(base + f->ofs);
      return PyBytes_FromStringAndSize(s->len ? s->buf : "", (Py_ssize_t)s->len);
    }
    case F_U8: return PyLong_FromLong(m ? *(const uint8_t *)(base + f->ofs) : 0);
    case F_U16: return PyLong_FromLong(m ? *(const uint16_t *)(base + f->ofs) : 0);
    default: return PyBool_FromLong(m ? *(const bool *)(base + f->ofs) : 0);
  }
}

#define FIELD(name, member, kind) \
  static const field f_##name = {offsetof(cymg_mqtt_msg, member), kind}
FIELD(topic, topic, F_STR);
FIELD(data, data, F_BYTES);
FIELD(text, data, F_STR);
FIELD(id, id, F_U16);
FIELD(cmd, cmd, F_U8);
FIELD(qos, qos, F_U8);
FIELD(ack, ack, F_U8);
FIELD(version, version, F_U8);
FIELD(dup, dup, F_BOOL);
FIELD(retain, retain, F_BOOL);
FIELD(session_present, session_present, F_BOOL);
FIELD(client_id, connect.client_id, F_STR);
FIELD(username, connect.username, F_STR);
FIELD(password, connect.password, F_STR);
FIELD(will_topic, connect.will_topic, F_STR);
FIELD(will_message, connect.will_payload, F_BYTES);
FIELD(keepalive, connect.keepalive, F_U16);
FIELD(will_qos, connect.will_qos, F_U8);
FIELD(will_retain, connect.will_retain, F_BOOL);
FIELD(clean_session, connect.clean, F_BOOL);
FIELD(raw, dgram, F_BYTES);

static PyObject *m_properties(PyObject *self, PyObject *unused) {
  (void)unused;
  const cymg_mqtt_msg *m = mlive(self);
  if (m == NULL) return PyList_New(0);
  return cymgpy_props_to_list(m->props);
}

static PyObject *m_will_properties(PyObject *self, PyObject *unused) {
  (void)unused;
  const cymg_mqtt_msg *m = mlive(self);
  if (m == NULL) return PyList_New(0);
  return cymgpy_props_to_list(m->connect.will_props);
}

/* topics(): SUBSCRIBE (filter, qos) / UNSUBSCRIBE (filter, 0) pairs; options
 * keeps the whole options byte (v5 no-local, retain flags) for SUBSCRIBE. */
static PyObject *filters(PyObject *self, int full) {
  const cymg_mqtt_msg *m = mlive(self);
  PyObject *list = PyList_New(0);
  if (m == NULL || list == NULL) return list;
  size_t ofs = 0;
  cymg_str f;
  uint8_t opts;
  while (cymg_mqtt_next_filter(m, &ofs, &f, &opts) == 1) {
    PyObject *t = Py_BuildValue("(Ni)", cymgpy_str(f.buf, f.len), full ? opts : (opts & 3));
    if (t == NULL || PyList_Append(list, t) < 0) {
      Py_XDECREF(t);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(t);
  }
  return list;
}

static PyObject *m_topics(PyObject *self, PyObject *unused) {
  (void)unused;
  return filters(self, 0);
}

static PyObject *m_subscriptions(PyObject *self, PyObject *unused) {
  (void)unused;
  return filters(self, 1);
}

/* SUBACK / UNSUBACK reason codes as a list of ints. */
static PyObject *m_codes(PyObject *self, PyObject *unused) {
  (void)unused;
  const cymg_mqtt_msg *m = mlive(self);
  PyObject *list = PyList_New(0);
  if (m == NULL || list == NULL) return list;
  if (m->cmd != CYMG_MQTT_CMD_SUBACK && m->cmd != CYMG_MQTT_CMD_UNSUBACK) return list;
  for (size_t i = 0; i < m->data.len; i++) {
    PyObject *v = PyLong_FromLong((unsigned char)m->data.buf[i]);
    if (v == NULL || PyList_Append(list, v) < 0) {
      Py_XDECREF(v);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(v);
  }
  return list;
}

static int m_bool(PyObject *self) {
  return mlive(self) != NULL;
}

static PyObject *m_repr(PyObject *self) {
  const cymg_mqtt_msg *m = mlive(self);
  if (m == NULL) return PyUnicode_FromString("<cymongoose.MqttMessage stale>");
  PyObject *topic = cymgpy_str(m->topic.buf, m->topic.len);
  if (topic == NULL) return NULL;
  PyObject *r = PyUnicode_FromFormat("<cymongoose.MqttMessage %s id=%d qos=%d topic=%R>",
                                     cymg_mqtt_cmd_name(m->cmd), (int)m->id, (int)m->qos, topic);
  Py_DECREF(topic);
  return r;
}

static void m_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(tp);
}

#define GET(name, doc) \
  { #name, get_field, NULL, doc, (void *)&f_##name }
static PyGetSetDef m_getset[] = {
    GET(topic, "PUBLISH topic; SUBSCRIBE/UNSUBSCRIBE: the first filter (str)."),
    GET(data, "PUBLISH payload (bytes); SUBACK/UNSUBACK: the codes."),
    GET(text, "The payload as str (UTF-8, invalid bytes replaced)."),
    GET(id, "Packet identifier; 0 when the packet has none."),
    GET(cmd, "Packet type (MQTT_CMD_*)."),
    GET(qos, "PUBLISH QoS; SUBSCRIBE: the first filter's."),
    GET(ack, "Return / reason code (CONNACK, PUBACK.., DISCONNECT, AUTH)."),
    GET(version, "Protocol level: 4 (3.1.1) or 5."),
    GET(dup, "PUBLISH DUP flag."),
    GET(retain, "PUBLISH RETAIN flag."),
    GET(session_present, "CONNACK session-present flag."),
    GET(client_id, "CONNECT client identifier."),
    GET(username, "CONNECT user name ('' when absent)."),
    GET(password, "CONNECT password as str ('' when absent)."),
    GET(will_topic, "CONNECT will topic ('' when no will)."),
    GET(will_message, "CONNECT will payload (bytes)."),
    GET(keepalive, "CONNECT keep-alive in seconds."),
    GET(will_qos, "CONNECT will QoS."),
    GET(will_retain, "CONNECT will RETAIN flag."),
    GET(clean_session, "CONNECT clean session / clean start flag."),
    GET(raw, "The whole packet as received (bytes)."),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef m_methods[] = {
    {"properties", m_properties, METH_NOARGS,
     "properties() -> list of dicts {'id', 'iv' | 'val' (+ 'key' for user properties)}."},
    {"will_properties", m_will_properties, METH_NOARGS, "will_properties(): CONNECT's will ones."},
    {"topics", m_topics, METH_NOARGS,
     "topics() -> [(filter, qos)] of a SUBSCRIBE ([(filter, 0)] of an UNSUBSCRIBE)."},
    {"subscriptions", m_subscriptions, METH_NOARGS,
     "subscriptions() -> [(filter, options)]: the whole v5 options byte."},
    {"codes", m_codes, METH_NOARGS, "codes() -> [int]: SUBACK / UNSUBACK reason codes."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot m_slots[] = {
    {Py_tp_doc,
     "The MQTT packet of an MG_EV_MQTT_MSG / MG_EV_MQTT_CMD event. Valid only while "
     "the handler runs; afterwards bool(msg) is False and its accessors give '', b'', "
     "0, False and []."},
    {Py_tp_dealloc, m_dealloc},
    {Py_tp_repr, m_repr},
    {Py_nb_bool, m_bool},
    {Py_tp_getset, m_getset},
    {Py_tp_methods, m_methods},
    {0, NULL},
};

PyType_Spec cymgpy_mqtt_message_spec = {
    .name = "cymongoose.MqttMessage",
    .basicsize = sizeof(cymgpy_mqtt_message),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = m_slots,
};

/* ---- Manager ---- */

/* The options of the mqtt_connect() call in progress, for mqtt_open below
 * (cymgpy_open's open function has no argument for them). Set and cleared
 * within one call, with the GIL and the call lock held. */
static const cymg_mqtt_opts *connect_opts;
static bool connect_took; /* cymg_mqtt_connect succeeded (it took opts.session) */

static int mqtt_open(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *data,
                     cymg_conn **out) {
  int rc = cymg_mqtt_connect(mgr, url, connect_opts, fn, data, out);
  connect_took = rc == 0;
  return rc;
}

int cymgpy_str_arg(PyObject *o, const char *what, cymg_str *out) {
  if (!PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what, Py_TYPE(o)->tp_name);
    return -1;
  }
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(o, &n);
  if (s == NULL) return -1;
  *out = cymg_str_n(s, (size_t)n);
  return 0;
}

int cymgpy_qos_ok(int qos, const char *what) {
  if (qos >= 0 && qos <= 2) return 0;
  PyErr_Format(PyExc_ValueError, "%s must be 0, 1 or 2, not %d", what, qos);
  return -1;
}

/* ---- sessions kept between connections ----
 * A client connecting with clean_session=False and a client id leaves its
 * session (QoS 1/2 messages not acknowledged, QoS 2 ids awaiting PUBREL, the
 * packet id counter) in the Manager when it closes; the next such connect to
 * the same URL with the same client id resumes it (resent with DUP when the
 * broker says it kept the session, dropped when it did not). A clean connect
 * discards it. At most MAX_KEPT sessions are kept, the oldest dropped. */

#define SESSION_CAPSULE "cymongoose.mqtt_session"
#define MAX_KEPT 1024
static char kept_taken; /* a capsule's pointer once its session was handed on */

static void session_capsule_free(PyObject *cap) {
  void *p = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
  if (p != &kept_taken) cymg_mqtt_session_free(p);
}

static PyObject *session_key(const char *url, cymg_str client_id) {
  PyObject *u = PyBytes_FromString(url);
  if (u == NULL) return NULL;
  PyObject *k = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(u) + 1 + (Py_ssize_t)client_id.len);
  if (k != NULL) {
    char *d = PyBytes_AS_STRING(k);
    memcpy(d, PyBytes_AS_STRING(u), (size_t)PyBytes_GET_SIZE(u));
    d[PyBytes_GET_SIZE(u)] = '\0';
    memcpy(d + PyBytes_GET_SIZE(u) + 1, client_id.buf, client_id.len);
  }
  Py_DECREF(u);
  return k;
}

/* Sets *key, and *kept when a session is kept for it and clean is false
 * (taken out of the Manager: the caller owns it); a clean connect drops it. */
static int session_lookup(cymgpy_manager *m, const char *url, cymg_str client_id, int clean,
                          PyObject **key, cymg_mqtt_session **kept) {
  *kept = NULL;
  if ((*key = session_key(url, client_id)) == NULL) return -1;
  if (m->mqtt_sessions == NULL) return 0;
  PyObject *cap = PyDict_GetItemWithError(m->mqtt_sessions, *key);
  if (cap == NULL) return PyErr_Occurred() ? -1 : 0;
  if (!clean) {
    cymg_mqtt_session *s = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
    if (s == NULL || PyCapsule_SetPointer(cap, &kept_taken) < 0) return -1;
    *kept = s;
  }
  return PyDict_DelItem(m->mqtt_sessions, *key);
}

/* Keeps s under key (the Manager owns it after; freed on failure). */
static int session_put(cymgpy_manager *m, PyObject *key, cymg_mqtt_session *s) {
  PyObject *cap = PyCapsule_New(s, SESSION_CAPSULE, session_capsule_free);
  if (cap == NULL) {
    cymg_mqtt_session_free(s);
    return -1;
  }
  int rc = 0;
  if (m->mqtt_sessions == NULL && (m->mqtt_sessions = PyDict_New()) == NULL) rc = -1;
  if (rc == 0 && PyDict_GET_SIZE(m->mqtt_sessions) >= MAX_KEPT) {
    Py_ssize_t pos = 0;
    PyObject *oldest, *v;
    if (PyDict_Next(m->mqtt_sessions, &pos, &oldest, &v)) {
      Py_INCREF(oldest);
      rc = PyDict_DelItem(m->mqtt_sessions, oldest);
      Py_DECREF(oldest);
    }
  }
  if (rc == 0) rc = PyDict_SetItem(m->mqtt_sessions, key, cap);
  Py_DECREF(cap);
  return rc;
}

void cymgpy_mqtt_keep_session(cymgpy_manager *m, cymg_conn *c, cymgpy_conn *w) {
  PyObject *key = w->mqtt_key;
  w->mqtt_key = NULL;
  if (m->quiet) { /* the Manager is being collected: nothing will connect again */
    Py_DECREF(key);
    return;
  }
  cymg_mqtt_session *s = NULL;
  int rc = cymg_mqtt_session_take(c, &s);
  if (rc < 0)
    cymgpy_raise_rc("MQTT session not kept", rc);
  else
    rc = session_put(m, key, s);
  Py_DECREF(key);
  if (rc < 0) cymgpy_report_exception(m); /* the session is lost: say so, the loop goes on */
}

static PyObject *mqtt_connect(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"url",
                           "handler",
                           "client_id",
                           "username",
                           "password",
                           "clean_session",
                           "keepalive",
                           "version",
                           "will_topic",
                           "will_message",
                           "will_qos",
                           "will_retain",
                           "will_properties",
                           "properties",
                           "session_expiry",
                           NULL};
  const char *url;
  PyObject *handler = Py_None, *client_id = NULL, *username = NULL, *password = NULL;
  PyObject *will_topic = NULL, *will_message = NULL, *will_props = Py_None, *props = Py_None;
  int clean = 1, will_retain = 0, keepalive = 60, version = 4, will_qos = 0;
  unsigned long long expiry = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|OUUUpi$iUOipOOK:mqtt_connect", kwlist, &url,
                                   &handler, &client_id, &username, &password, &clean, &keepalive,
                                   &version, &will_topic, &will_message, &will_qos, &will_retain,
                                   &will_props, &props, &expiry))
    return NULL;
  if (keepalive < 0 || keepalive > 65535)
    return PyErr_Format(PyExc_ValueError, "keepalive must be 0..65535 seconds, not %d", keepalive);
  if (version != 4 && version != 5)
    return PyErr_Format(PyExc_ValueError, "version must be 4 (MQTT 3.1.1) or 5, not %d", version);
  if (cymgpy_qos_ok(will_qos, "will_qos") < 0) return NULL;
  if (expiry > UINT32_MAX) return PyErr_Format(PyExc_ValueError, "session_expiry out of range");
  cymg_mqtt_opts o;
  memset(&o, 0, sizeof(o));
  if ((client_id && cymgpy_str_arg(client_id, "client_id", &o.client_id) < 0) ||
      (username && cymgpy_str_arg(username, "username", &o.username) < 0) ||
      (password && cymgpy_str_arg(password, "password", &o.password) < 0) ||
      (will_topic && cymgpy_str_arg(will_topic, "will_topic", &o.will_topic) < 0))
    return NULL;
  Py_buffer wm = {0};
  if (will_message != NULL && cymgpy_get_bytes(will_message, &wm, "will_message") < 0) return NULL;
  o.will_payload = cymg_str_n(wm.buf, (size_t)wm.len);
  o.keepalive = (uint16_t)keepalive;
  o.no_keepalive = keepalive == 0;
  o.version = (uint8_t)version;
  o.will_qos = (uint8_t)will_qos;
  o.will_retain = will_retain;
  o.persistent = !clean;
  o.session_expiry = (uint32_t)expiry;
  cymgpy_props pb, wpb;
  PyObject *r = NULL;
  if (cymgpy_props_from(props, &pb) < 0) goto out_wm;
  if (cymgpy_props_from(will_props, &wpb) < 0) goto out_pb;
  if (version != 5 && (pb.n || wpb.n)) {
    PyErr_SetString(PyExc_ValueError, "properties need MQTT 5 (version=5)");
    goto out;
  }
  o.props = pb.props;
  o.num_props = pb.n;
  o.will_props = wpb.props;
  o.num_will_props = wpb.n;
  PyObject *key = NULL;
  cymg_mqtt_session *kept = NULL;
  if (o.client_id.len &&
      session_lookup((cymgpy_manager *)self, url, o.client_id, clean, &key, &kept) < 0) {
    cymg_mqtt_session_free(kept);
    Py_XDECREF(key);
    goto out;
  }
  o.session = kept;
  connect_opts = &o;
  connect_took = false;
  r = cymgpy_open((cymgpy_manager *)self, 0, url, handler, mqtt_open);
  connect_opts = NULL;
  /* A connection made owns the session; otherwise it stays the Manager's. */
  if (kept != NULL && !connect_took && session_put((cymgpy_manager *)self, key, kept) < 0)
    Py_CLEAR(r);
  if (r != NULL && !clean && key != NULL) ((cymgpy_conn *)r)->mqtt_key = Py_NewRef(key);
  Py_XDECREF(key);
out:
  cymgpy_props_release(&wpb);
out_pb:
  cymgpy_props_release(&pb);
out_wm:
  if (will_message != NULL) PyBuffer_Release(&wm);
  return r;
}

PyObject *cymgpy_manager_mqtt_connect(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_lock((cymgpy_manager *)self);
  PyObject *r = mqtt_connect(self, args, kwargs);
  cymgpy_unlock((cymgpy_manager *)self);
  return r;
}

PyObject *cymgpy_manager_mqtt_listen(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"url", "handler", NULL};
  const char *url;
  PyObject *handler = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O:mqtt_listen", kwlist, &url, &handler))
    return NULL;
  cymgpy_lock((cymgpy_manager *)self);
  PyObject *r = cymgpy_open((cymgpy_manager *)self, 1, url, handler, cymg_mqtt_listen);
  cymgpy_unlock((cymgpy_manager *)self);
  return r;
}

/* ---- Connection ---- */

/* The C connection of a live wrapper, or NULL with RuntimeError "closed". */
static cymg_conn *conn_of(PyObject *self) {
  cymg_conn *c = ((cymgpy_conn *)self)->conn;
  if (c == NULL) PyErr_SetString(PyExc_RuntimeError, "connection is closed");
  return c;
}

/* Turns a C result into Python: an int (want_int) or None; errors raised. */
static PyObject *result(const char *what, int rc, bool want_int) {
  if (rc >= 0) {
    if (want_int) return PyLong_FromLong(rc);
    Py_RETURN_NONE;
  }
  switch (rc) {
    case CYMG_EINVAL:
      return PyErr_Format(PyExc_ValueError,
                          "%s: invalid argument (topic, filter, QoS or "
                          "property not allowed here)",
                          what);
    case CYMG_ECLOSED: return PyErr_Format(PyExc_RuntimeError, "%s: connection is closed", what);
    case CYMG_ESTATE: return PyErr_Format(PyExc_RuntimeError, "%s: not an MQTT connection", what);
    case CYMG_ELIMIT:
      return PyErr_Format(PyExc_RuntimeError,
                          "%s: limit reached (in-flight window or send "
                          "buffer full)",
                          what);
    default: return cymgpy_raise_rc(what, rc);
  }
}

/* properties= on a connection that is not v5 (listeners: nothing is sent). */
static int props_allowed(cymg_conn *c, const cymgpy_props *pb, const char *what) {
  if (pb->n == 0 || cymg_conn_is_listening(c) || cymg_mqtt_version(c) == CYMG_MQTT_V5) return 0;
  PyErr_Format(PyExc_ValueError, "%s: properties need an MQTT 5 connection", what);
  return -1;
}

int cymgpy_pub_args_parse(PyObject *args, PyObject *kwargs, const char *fmt, const char *what,
                          cymgpy_pub_args *a) {
  static char *kwlist[] = {"topic", "message", "qos", "retain", "properties", NULL};
  PyObject *topic, *message, *props = Py_None;
  memset(a, 0, sizeof(*a));
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &topic, &message, &a->qos,
                                   &a->retain, &props))
    return -1;
  if (cymgpy_str_arg(topic, "topic", &a->topic) < 0 || cymgpy_qos_ok(a->qos, "qos") < 0) return -1;
  if (!cymg_mqtt_topic_valid(a->topic)) {
    PyErr_Format(PyExc_ValueError, "%s: invalid topic name %R (non-empty, no '+' or '#')", what,
                 topic);
    return -1;
  }
  if (cymgpy_get_bytes(message, &a->data, "message") < 0) return -1;
  if (cymgpy_props_from(props, &a->props) < 0) {
    PyBuffer_Release(&a->data);
    return -1;
  }
  return 0;
}

void cymgpy_pub_args_release(cymgpy_pub_args *a) {
  cymgpy_props_release(&a->props);
  PyBuffer_Release(&a->data);
}

static PyObject *mqtt_pub(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_pub_args a;
  if (cymgpy_pub_args_parse(args, kwargs, "OO|ip$O:mqtt_pub", "mqtt_pub", &a) < 0) return NULL;
  PyObject *r = NULL;
  cymg_conn *c = conn_of(self);
  if (c != NULL && props_allowed(c, &a.props, "mqtt_pub") == 0) {
    r = result("mqtt_pub",
               cymg_mqtt_pub(c, a.topic, cymg_str_n(a.data.buf, (size_t)a.data.len), a.qos,
                             a.retain, a.props.props, a.props.n),
               true);
  }
  cymgpy_pub_args_release(&a);
  return r;
}

static PyObject *sub_unsub(PyObject *self, PyObject *args, PyObject *kwargs, bool sub) {
  static char *kwlist_s[] = {"topic", "qos", "properties", NULL};
  static char *kwlist_u[] = {"topic", "properties", NULL};
  PyObject *topic, *props = Py_None;
  int qos = 0;
  int ok =
      sub ? PyArg_ParseTupleAndKeywords(args, kwargs, "O|i$O:mqtt_sub", kwlist_s, &topic, &qos,
                                        &props)
          : PyArg_ParseTupleAndKeywords(args, kwargs, "O|$O:mqtt_unsub", kwlist_u, &topic, &props);
  if (!ok) return NULL;
  const char *what = sub ? "mqtt_sub" : "mqtt_unsub";
  cymg_str t;
  if (cymgpy_str_arg(topic, "topic", &t) < 0 || cymgpy_qos_ok(qos, "qos") < 0) return NULL;
  if (!cymg_mqtt_filter_valid(t))
    return PyErr_Format(PyExc_ValueError, "%s: invalid topic filter %R", what, topic);
  cymgpy_props pb;
  if (cymgpy_props_from(props, &pb) < 0) return NULL;
  PyObject *r = NULL;
  cymg_conn *c = conn_of(self);
  if (c != NULL && props_allowed(c, &pb, what) == 0) {
    int rc = sub ? cymg_mqtt_sub(c, t, qos, pb.props, pb.n) : cymg_mqtt_unsub(c, t, pb.props, pb.n);
    r = result(what, rc, true);
  }
  cymgpy_props_release(&pb);
  return r;
}

static PyObject *mqtt_sub(PyObject *self, PyObject *args, PyObject *kwargs) {
  return sub_unsub(self, args, kwargs, true);
}

static PyObject *mqtt_unsub(PyObject *self, PyObject *args, PyObject *kwargs) {
  return sub_unsub(self, args, kwargs, false);
}

static PyObject *mqtt_ping(PyObject *self, PyObject *unused) {
  (void)unused;
  cymg_conn *c = conn_of(self);
  return c == NULL ? NULL : result("mqtt_ping", cymg_mqtt_ping(c), false);
}

static PyObject *mqtt_pong(PyObject *self, PyObject *unused) {
  (void)unused;
  cymg_conn *c = conn_of(self);
  return c == NULL ? NULL : result("mqtt_pong", cymg_mqtt_pong(c), false);
}

/* The (code=0, *, properties=None) calls: DISCONNECT and CONNACK. */
static PyObject *code_call(PyObject *self, PyObject *args, PyObject *kwargs, bool connack) {
  static char *kwlist_d[] = {"reason", "properties", NULL};
  static char *kwlist_c[] = {"code", "session_present", "properties", NULL};
  int code = 0, present = 0;
  PyObject *props = Py_None;
  int ok = connack ? PyArg_ParseTupleAndKeywords(args, kwargs, "|ip$O:mqtt_connack", kwlist_c,
                                                 &code, &present, &props)
                   : PyArg_ParseTupleAndKeywords(args, kwargs, "|i$O:mqtt_disconnect", kwlist_d,
                                                 &code, &props);
  if (!ok) return NULL;
  const char *what = connack ? "mqtt_connack" : "mqtt_disconnect";
  if (code < 0 || code > 255)
    return PyErr_Format(PyExc_ValueError, "%s: the code must be 0..255, not %d", what, code);
  cymgpy_props pb;
  if (cymgpy_props_from(props, &pb) < 0) return NULL;
  PyObject *r = NULL;
  cymg_conn *c = conn_of(self);
  if (c != NULL && props_allowed(c, &pb, what) == 0) {
    int rc = connack ? cymg_mqtt_connack(c, present, (uint8_t)code, pb.props, pb.n)
                     : cymg_mqtt_disconnect(c, (uint8_t)code, pb.props, pb.n);
    r = result(what, rc, false);
  }
  cymgpy_props_release(&pb);
  return r;
}

static PyObject *mqtt_disconnect(PyObject *self, PyObject *args, PyObject *kwargs) {
  return code_call(self, args, kwargs, false);
}

static PyObject *mqtt_connack(PyObject *self, PyObject *args, PyObject *kwargs) {
  return code_call(self, args, kwargs, true);
}

/* SUBACK / UNSUBACK: packet id and a sequence of codes (ints 0..255). */
static PyObject *ack_call(PyObject *self, PyObject *args, PyObject *kwargs, bool suback) {
  static char *kwlist[] = {"packet_id", "codes", "properties", NULL};
  int id;
  PyObject *codes = NULL, *props = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                   suback ? "iO|$O:mqtt_suback" : "i|O$O:mqtt_unsuback", kwlist,
                                   &id, &codes, &props))
    return NULL;
  const char *what = suback ? "mqtt_suback" : "mqtt_unsuback";
  if (id < 1 || id > 65535)
    return PyErr_Format(PyExc_ValueError, "%s: packet_id must be 1..65535, not %d", what, id);
  uint8_t buf[256];
  size_t n = 0;
  if (codes != NULL) {
    PyObject *seq = PySequence_Fast(codes, "codes must be a sequence of ints");
    if (seq == NULL) return NULL;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    if ((size_t)len > sizeof(buf)) {
      Py_DECREF(seq);
      return PyErr_Format(PyExc_ValueError, "%s: at most %zu codes", what, sizeof(buf));
    }
    for (Py_ssize_t i = 0; i < len; i++) {
      long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
      if ((v == -1 && PyErr_Occurred()) || v < 0 || v > 255) {
        Py_DECREF(seq);
        if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_TypeError)) return NULL;
        PyErr_Clear();
        return PyErr_Format(PyExc_ValueError, "%s: each code must be an int 0..255", what);
      }
      buf[n++] = (uint8_t)v;
    }
    Py_DECREF(seq);
  }
  cymgpy_props pb;
  if (cymgpy_props_from(props, &pb) < 0) return NULL;
  PyObject *r = NULL;
  cymg_conn *c = conn_of(self);
  if (c != NULL && props_allowed(c, &pb, what) == 0) {
    int rc = suback ? cymg_mqtt_suback(c, (uint16_t)id, buf, n, pb.props, pb.n)
                    : cymg_mqtt_unsuback(c, (uint16_t)id, buf, n, pb.props, pb.n);
    r = result(what, rc, false);
  }
  cymgpy_props_release(&pb);
  return r;
}

static PyObject *mqtt_suback(PyObject *self, PyObject *args, PyObject *kwargs) {
  return ack_call(self, args, kwargs, true);
}

static PyObject *mqtt_unsuback(PyObject *self, PyObject *args, PyObject *kwargs) {
  return ack_call(self, args, kwargs, false);
}

/* The exported, locked entry points of the Connection method table. */
#define LOCKED_KW(name)                                                            \
  PyObject *cymgpy_conn_##name(PyObject *self, PyObject *args, PyObject *kwargs) { \
    cymgpy_manager *m_ = cymgpy_lock_conn(self);                                   \
    PyObject *r_ = name(self, args, kwargs);                                       \
    cymgpy_unlock_conn(m_, 1);                                                     \
    return r_;                                                                     \
  }
#define LOCKED_NOARGS(name)                                        \
  PyObject *cymgpy_conn_##name(PyObject *self, PyObject *unused) { \
    cymgpy_manager *m_ = cymgpy_lock_conn(self);                   \
    PyObject *r_ = name(self, unused);                             \
    cymgpy_unlock_conn(m_, 1);                                     \
    return r_;                                                     \
  }
LOCKED_KW(mqtt_pub)
LOCKED_KW(mqtt_sub)
LOCKED_KW(mqtt_unsub)
LOCKED_KW(mqtt_disconnect)
LOCKED_KW(mqtt_connack)
LOCKED_KW(mqtt_suback)
LOCKED_KW(mqtt_unsuback)
LOCKED_NOARGS(mqtt_ping)
LOCKED_NOARGS(mqtt_pong)
