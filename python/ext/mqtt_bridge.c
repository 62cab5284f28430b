/* MqttBridge: MqttBroker.bridge() over cymg_mqtt_bridge_new. The bridge object
 * keeps what the C options point into (the bridge may read them later) and its
 * broker; it is in the broker's `bridges` list while open, and the broker's
 * close marks it closed before the C broker frees the C bridge. */
#include "mqtt_broker.h"

#include <string.h>

static const char *const direction_names[] = {NULL, "out", "in", "both"};

/* topics: a sequence of (filter, "in"|"out"|"both", qos). */
static int bridge_topics(cymgpy_mqtt_bridge *br, PyObject *topics, size_t *n_out) {
  PyObject *seq = PySequence_Fast(topics, "bridge: topics must be a list of (filter, direction, qos)");
  if (seq == NULL) return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n == 0) {
    Py_DECREF(seq);
    PyErr_SetString(PyExc_ValueError, "bridge: topics is empty");
    return -1;
  }
  br->topics = PyMem_Calloc((size_t) n, sizeof(cymg_mqtt_bridge_topic));
  if (br->topics == NULL) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
    PyObject *filter, *dir;
    int qos = 0;
    if (!PyTuple_Check(t) || !PyArg_ParseTuple(t, "UU|i", &filter, &dir, &qos)) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError, "bridge: topics[%zd] must be (filter, direction, qos), not %R",
                   i, t);
      goto fail;
    }
    cymg_str f;
    if (cymgpy_str_arg(filter, "filter", &f) < 0 || cymgpy_qos_ok(qos, "bridge topic qos") < 0)
      goto fail;
    if (!cymg_mqtt_filter_valid(f) || strlen(PyUnicode_AsUTF8(filter)) != f.len) {
      PyErr_Format(PyExc_ValueError, "bridge: invalid topic filter %R", filter);
      goto fail;
    }
    int d = 0;
    for (int k = 1; k <= 3; k++)
      if (PyUnicode_CompareWithASCIIString(dir, direction_names[k]) == 0) d = k;
    if (d == 0) {
      PyErr_Format(PyExc_ValueError, "bridge: direction must be 'in', 'out' or 'both', not %R",
                   dir);
      goto fail;
    }
    if (PyList_Append(br->keep, filter) < 0) goto fail;
    br->topics[i].filter = PyUnicode_AsUTF8(filter);
    br->topics[i].direction = d;
    br->topics[i].qos = qos;
  }
  Py_DECREF(seq);
  *n_out = (size_t) n;
  return 0;
fail:
  Py_DECREF(seq);
  return -1;
}

static cymg_str keep_str(PyObject *keep, PyObject *o) {
  if (o == NULL || PyList_Append(keep, o) < 0) return cymg_str_n(NULL, 0);
  Py_ssize_t n = 0;
  const char *s = PyUnicode_AsUTF8AndSize(o, &n);
  return cymg_str_n(s, s ? (size_t) n : 0);
}

PyObject *cymgpy_broker_bridge(cymgpy_mqtt_broker *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"url", "topics", "client_id", "username", "password", "version",
                           "keepalive", "tls", "backoff_min_ms", "backoff_max_ms", NULL};
  PyObject *url, *topics, *client_id = NULL, *username = NULL, *password = NULL, *tls = Py_None;
  int version = 5, keepalive = 60;
  unsigned int bmin = 0, bmax = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UO|$UUUiiOII:bridge", kwlist, &url, &topics,
                                   &client_id, &username, &password, &version, &keepalive, &tls,
                                   &bmin, &bmax))
    return NULL;
  if (version != 4 && version != 5)
    return PyErr_Format(PyExc_ValueError, "bridge: version must be 4 (3.1.1) or 5, not %d",
                        version);
  if (keepalive < 0 || keepalive > 65535)
    return PyErr_Format(PyExc_ValueError, "bridge: keepalive must be 0..65535, not %d", keepalive);
  if (bmax != 0 && bmin > bmax)
    return PyErr_Format(PyExc_ValueError, "bridge: backoff_min_ms is above backoff_max_ms");
  cymg_mqtt_broker *b = cymgpy_broker_live(self);
  if (b == NULL) return NULL;
  cymgpy_state *st = cymgpy_broker_state(self);
  if (tls != Py_None && cymgpy_tls_opts_check(st, tls, "bridge(tls=)") < 0) return NULL;
  PyTypeObject *tp = st->mqtt_bridge_type;
  cymgpy_mqtt_bridge *br = (cymgpy_mqtt_bridge *) tp->tp_alloc(tp, 0);
  if (br == NULL) return NULL;
  br->url = Py_NewRef(url);
  if ((br->keep = PyList_New(0)) == NULL) goto fail;
  cymg_mqtt_bridge_opts o;
  memset(&o, 0, sizeof(o));
  if (bridge_topics(br, topics, &o.num_topics) < 0) goto fail;
  o.topics = br->topics;
  o.url = PyUnicode_AsUTF8(url);
  if (o.url == NULL) goto fail;
  o.client.client_id = keep_str(br->keep, client_id);
  o.client.username = keep_str(br->keep, username);
  o.client.password = keep_str(br->keep, password);
  if (PyErr_Occurred()) goto fail;
  o.client.version = (uint8_t) version;
  o.client.keepalive = (uint16_t) keepalive;
  o.client.no_keepalive = keepalive == 0;
  o.backoff_min_ms = bmin;
  o.backoff_max_ms = bmax;
  if (tls != Py_None) {
    if (PyList_Append(br->keep, tls) < 0) goto fail;
    PyObject *ca = PyObject_GetAttrString(tls, "ca"), *cert = PyObject_GetAttrString(tls, "cert"),
             *key = PyObject_GetAttrString(tls, "key"), *name = PyObject_GetAttrString(tls, "name"),
             *skip = PyObject_GetAttrString(tls, "skip_verification");
    PyObject *parts[] = {ca, cert, key, name};
    cymg_str *dst[] = {&br->tls.ca, &br->tls.cert, &br->tls.key, &br->tls.name};
    int bad = skip == NULL;
    for (int i = 0; i < 4; i++) {
      if (parts[i] == NULL || !PyBytes_Check(parts[i]) || PyList_Append(br->keep, parts[i]) < 0) {
        bad = 1;
      } else {
        *dst[i] = cymg_str_n(PyBytes_AS_STRING(parts[i]), (size_t) PyBytes_GET_SIZE(parts[i]));
      }
      Py_XDECREF(parts[i]);
    }
    br->tls.skip_verification = skip != NULL && PyObject_IsTrue(skip) == 1;
    Py_XDECREF(skip);
    if (bad) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "bridge(tls=): bad TlsOpts");
      goto fail;
    }
    o.tls = &br->tls;
  }
  int rc = cymg_mqtt_bridge_new(b, &o, &br->br);
  if (rc < 0) {
    br->br = NULL;
    const char *why = cymg_mgr_errmsg(self->mgr->mgr);
    if (rc == CYMG_EINVAL) {
      PyErr_Format(PyExc_ValueError, "bridge: invalid options%s%s", why[0] ? ": " : "", why);
    } else {
      cymgpy_raise_rc("bridge", rc);
    }
    goto fail;
  }
  br->broker = (cymgpy_mqtt_broker *) Py_NewRef(self);
  if (PyList_Append(self->bridges, (PyObject *) br) < 0) {
    cymg_mqtt_bridge_free(br->br);
    br->br = NULL;
    goto fail;
  }
  return (PyObject *) br;
fail:
  Py_DECREF(br);
  return NULL;
}

void cymgpy_bridge_detach(cymgpy_mqtt_bridge *br) {
  cymgpy_mqtt_broker *b = br->broker;
  br->broker = NULL;
  if (b == NULL) return;
  if (b->bridges != NULL) {
    Py_ssize_t i = PySequence_Index(b->bridges, (PyObject *) br);
    if (i >= 0 && PySequence_DelItem(b->bridges, i) < 0) i = -1;
    if (i < 0) PyErr_Clear();
  }
  Py_DECREF(b);
}

static PyObject *br_close(PyObject *op, PyObject *unused) {
  (void) unused;
  cymgpy_mqtt_bridge *br = (cymgpy_mqtt_bridge *) op;
  if (br->broker == NULL) Py_RETURN_NONE;
  cymgpy_manager *m = br->broker->mgr ? (cymgpy_manager *) Py_NewRef(br->broker->mgr) : NULL;
  if (m != NULL) cymgpy_lock(m);
  if (br->br != NULL) {
    cymg_mqtt_bridge_free(br->br);
    br->br = NULL;
  }
  cymgpy_bridge_detach(br);
  if (m != NULL) {
    cymgpy_unlock(m);
    Py_DECREF(m);
  }
  Py_RETURN_NONE;
}

static PyObject *br_get_connected(PyObject *op, void *closure) {
  (void) closure;
  cymgpy_mqtt_bridge *br = (cymgpy_mqtt_bridge *) op;
  return PyBool_FromLong(br->br != NULL && cymg_mqtt_bridge_connected(br->br));
}

static PyObject *br_repr(PyObject *op) {
  cymgpy_mqtt_bridge *br = (cymgpy_mqtt_bridge *) op;
  if (br->br == NULL) return PyUnicode_FromFormat("<cymongoose.MqttBridge %R closed>", br->url);
  return PyUnicode_FromFormat("<cymongoose.MqttBridge %R %s>", br->url,
                              cymg_mqtt_bridge_connected(br->br) ? "connected" : "connecting");
}

static int br_traverse(PyObject *op, visitproc visit, void *arg) {
  cymgpy_mqtt_bridge *br = (cymgpy_mqtt_bridge *) op;
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(br->broker);
  Py_VISIT(br->keep);
  return 0;
}

/* An open bridge is in its broker's list and the broker closes it first
 * (b_clear), so only a closed one loses its references here. */
static int br_clear(PyObject *op) {
  cymgpy_mqtt_bridge *br = (cymgpy_mqtt_bridge *) op;
  if (br->br == NULL) Py_CLEAR(br->broker);
  return 0;
}

static void br_dealloc(PyObject *op) {
  cymgpy_mqtt_bridge *br = (cymgpy_mqtt_bridge *) op;
  PyTypeObject *tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  Py_CLEAR(br->keep);
  Py_CLEAR(br->url);
  Py_CLEAR(br->broker);
  PyMem_Free(br->topics);
  tp->tp_free(op);
  Py_DECREF(tp);
}

static PyMethodDef br_methods[] = {
    {"close", br_close, METH_NOARGS, "close(): disconnect from upstream and stop (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef br_getset[] = {
    {"connected", br_get_connected, NULL, "Whether the upstream accepted our CONNECT.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot br_slots[] = {
    {Py_tp_doc, "A bridge from an MqttBroker to an upstream broker: MqttBroker.bridge()."},
    {Py_tp_dealloc, br_dealloc},
    {Py_tp_traverse, br_traverse},
    {Py_tp_clear, br_clear},
    {Py_tp_repr, br_repr},
    {Py_tp_methods, br_methods},
    {Py_tp_getset, br_getset},
    {0, NULL},
};

PyType_Spec cymgpy_mqtt_bridge_spec = {
    .name = "cymongoose.MqttBridge",
    .basicsize = sizeof(cymgpy_mqtt_bridge),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = br_slots,
};
