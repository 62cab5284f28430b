/* TlsOpts: the TLS settings a program hands to Connection.tls_init() or to
 * listen()/connect()/ws_connect(tls=...): PEM contents ca, cert, key and the
 * expected host name `name`, each stored as bytes (str is encoded as UTF-8,
 * None as b""), and skip_verification, a bool. The same conversion applies to
 * the constructor and to assignment, so a program can build it either way.
 * This file also turns one into a cymg_tls_opts and applies it (cymgpy_tls_*),
 * so the rules for tls_init's outcomes live in one place. */
/* Not GC-tracked: it only references bytes objects, which cannot form cycles. */
#include "cymg_py.h"

#include <stddef.h>

#include "structmember.h"

typedef struct {
  PyObject_HEAD
  PyObject *fields[4]; /* ca, cert, key, name: always bytes */
  int skip_verification;
} cymgpy_tls_opts;

enum { F_CA, F_CERT, F_KEY, F_NAME };
static const char *const field_names[] = {"ca", "cert", "key", "name"};

/* bytes for a field value: None -> b"", str -> UTF-8, bytes-like -> a copy. */
static PyObject *to_bytes(PyObject *v, const char *what) {
  if (v == NULL || v == Py_None) return PyBytes_FromStringAndSize("", 0);
  if (PyBytes_CheckExact(v)) return Py_NewRef(v);
  if (PyUnicode_Check(v)) return PyUnicode_AsUTF8String(v);
  if (PyObject_CheckBuffer(v)) return PyBytes_FromObject(v);
  return PyErr_Format(PyExc_TypeError, "TlsOpts.%s must be bytes, str or None, not %.100s", what,
                      Py_TYPE(v)->tp_name);
}

static PyObject *opts_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"ca", "cert", "key", "name", "skip_verification", NULL};
  PyObject *in[4] = {NULL, NULL, NULL, NULL};
  int skip = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOOOp:TlsOpts", kwlist, &in[F_CA],
                                   &in[F_CERT], &in[F_KEY], &in[F_NAME], &skip))
    return NULL;
  cymgpy_tls_opts *self = (cymgpy_tls_opts *) type->tp_alloc(type, 0);
  if (self == NULL) return NULL;
  for (int i = 0; i < 4; i++) {
    if ((self->fields[i] = to_bytes(in[i], field_names[i])) == NULL) {
      Py_DECREF(self);
      return NULL;
    }
  }
  self->skip_verification = skip;
  return (PyObject *) self;
}

static PyObject *get_field(PyObject *op, void *closure) {
  cymgpy_tls_opts *self = (cymgpy_tls_opts *) op;
  return Py_NewRef(self->fields[(int) (intptr_t) closure]);
}

static int set_field(PyObject *op, PyObject *value, void *closure) {
  cymgpy_tls_opts *self = (cymgpy_tls_opts *) op;
  int i = (int) (intptr_t) closure;
  if (value == NULL) {
    PyErr_Format(PyExc_AttributeError, "TlsOpts.%s cannot be deleted (set it to None)",
                 field_names[i]);
    return -1;
  }
  PyObject *b = to_bytes(value, field_names[i]);
  if (b == NULL) return -1;
  Py_SETREF(self->fields[i], b);
  return 0;
}

static PyObject *get_skip(PyObject *op, void *closure) {
  (void) closure;
  return PyBool_FromLong(((cymgpy_tls_opts *) op)->skip_verification);
}

static int set_skip(PyObject *op, PyObject *value, void *closure) {
  (void) closure;
  if (value == NULL) {
    PyErr_SetString(PyExc_AttributeError, "TlsOpts.skip_verification cannot be deleted");
    return -1;
  }
  int t = PyObject_IsTrue(value);
  if (t < 0) return -1;
  ((cymgpy_tls_opts *) op)->skip_verification = t;
  return 0;
}

static PyObject *opts_repr(PyObject *op) {
  cymgpy_tls_opts *self = (cymgpy_tls_opts *) op;
  /* The key is secret: only its size is shown. */
  return PyUnicode_FromFormat(
      "<cymongoose.TlsOpts ca=%zd bytes, cert=%zd bytes, key=%zd bytes, name=%R, "
      "skip_verification=%s>",
      PyBytes_GET_SIZE(self->fields[F_CA]), PyBytes_GET_SIZE(self->fields[F_CERT]),
      PyBytes_GET_SIZE(self->fields[F_KEY]), self->fields[F_NAME],
      self->skip_verification ? "True" : "False");
}

static void opts_dealloc(PyObject *op) {
  PyTypeObject *tp = Py_TYPE(op);
  cymgpy_tls_opts *self = (cymgpy_tls_opts *) op;
  for (int i = 0; i < 4; i++) Py_CLEAR(self->fields[i]);
  tp->tp_free(op);
  Py_DECREF(tp);
}

static PyGetSetDef opts_getset[] = {
    {"ca", get_field, set_field, "CA certificate(s), PEM (bytes; b\"\" when unset).",
     (void *) (intptr_t) F_CA},
    {"cert", get_field, set_field, "Own certificate chain, PEM (bytes).",
     (void *) (intptr_t) F_CERT},
    {"key", get_field, set_field, "Private key, PEM (bytes).", (void *) (intptr_t) F_KEY},
    {"name", get_field, set_field, "SNI / expected peer host name (bytes).",
     (void *) (intptr_t) F_NAME},
    {"skip_verification", get_skip, set_skip, "True turns peer verification off (clients).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot opts_slots[] = {
    {Py_tp_doc, "TlsOpts(ca=None, cert=None, key=None, name=None, skip_verification=False)\n\n"
                "TLS settings for Connection.tls_init(): PEM contents (not paths) and the peer "
                "name, stored as bytes (str is encoded as UTF-8, None as b\"\")."},
    {Py_tp_new, opts_new},
    {Py_tp_dealloc, opts_dealloc},
    {Py_tp_repr, opts_repr},
    {Py_tp_getset, opts_getset},
    {0, NULL},
};

PyType_Spec cymgpy_tls_opts_spec = {
    .name = "cymongoose.TlsOpts",
    .basicsize = sizeof(cymgpy_tls_opts),
    .flags = Py_TPFLAGS_DEFAULT, /* holds only bytes: no cycles, no GC */
    .slots = opts_slots,
};

/* ---- applying options to a connection ---- */

int cymgpy_tls_opts_check(cymgpy_state *st, PyObject *obj, const char *what) {
  if (Py_IS_TYPE(obj, st->tls_opts_type) || PyType_IsSubtype(Py_TYPE(obj), st->tls_opts_type))
    return 0;
  PyErr_Format(PyExc_TypeError, "%s expects a TlsOpts, not %.100s", what, Py_TYPE(obj)->tp_name);
  return -1;
}

static cymg_str field_str(PyObject *b) {
  return cymg_str_n(PyBytes_AS_STRING(b), (size_t) PyBytes_GET_SIZE(b));
}

/* Bad material (a truncated certificate, a key that does not match) is not the
 * caller's programming error but the program's data: libcymg reports it as
 * MG_EV_ERROR on the connection (on a listener: logged, and each accepted
 * connection fails its handshake), so CYMG_ETLS is no exception here. The other
 * failures are misuse (a closing connection, one TLS cannot go on) or memory. */
PyObject *cymgpy_tls_apply(cymg_conn *c, PyObject *obj) {
  const cymgpy_tls_opts *self = (const cymgpy_tls_opts *) obj;
  cymg_tls_opts o = {0};
  o.ca = field_str(self->fields[F_CA]);
  o.cert = field_str(self->fields[F_CERT]);
  o.key = field_str(self->fields[F_KEY]);
  o.name = field_str(self->fields[F_NAME]);
  o.skip_verification = self->skip_verification != 0;
  cymgpy_manager *m = cymgpy_manager_of(c);
  int rc = cymg_tls_init(c, &o); /* copies every string */
  if (rc == CYMG_ECLOSED) {
    PyErr_SetString(PyExc_RuntimeError, "tls_init: connection is closed");
    return NULL;
  }
  if (rc < 0 && rc != CYMG_ETLS) {
    if (rc == CYMG_ENOMEM) return PyErr_NoMemory();
    const char *why = cymg_mgr_errmsg(m->mgr);
    if (!why[0]) why = cymg_conn_is_udp(c) ? "TLS needs a TCP connection, not UDP" : cymg_strerror(rc);
    return PyErr_Format(PyExc_RuntimeError, "tls_init: %s", why);
  }
  /* The ERROR for bad material ran handlers, which may have raised SystemExit. */
  if (cymgpy_raise_pending(m) < 0) return NULL;
  Py_RETURN_NONE;
}
