/* Rpc and RpcReq: the JSON-RPC 2.0 dispatcher with Python method handlers.
 *
 * Rpc owns a C dispatcher and one entry per registered method name holding the
 * handler; the C table's fn_data points at the entry, so the trampoline finds
 * both the handler and its Rpc. Adding a name again swaps the entry's handler.
 * process() runs the handlers synchronously, each with an RpcReq view that is
 * valid only during its call (like HttpMessage). The method table must not
 * change while a frame is being processed, so add() raises then.
 *
 * What programs written for the package rely on (spec "Rpc"): requests without
 * "jsonrpc" are accepted (the C dispatcher's CYMG_RPC_LENIENT), a handler that
 * raises is answered -32603 with str(exc) as the message, and a second answer
 * raises RuntimeError("... already sent ..."), the first one standing. */
#include "cymg_py.h"

#include <string.h>

#include "structmember.h"

typedef struct rpc_entry rpc_entry;

typedef struct {
  PyObject_HEAD
  cymg_rpc *rpc;
  rpc_entry *entries;      /* one per method name, newest first */
  PyObject *error_handler; /* or NULL: tracebacks are printed */
  PyObject *pending;       /* a BaseException (not Exception) from a handler */
  PyObject *weakreflist;
  int busy;                /* process() calls under way */
} cymgpy_rpc;

struct rpc_entry {
  rpc_entry *next;
  cymgpy_rpc *self; /* borrowed: the Rpc owns its entries */
  PyObject *fn;
  char name[];
};

typedef struct {
  PyObject_HEAD
  cymg_rpc_req *req; /* NULL once stale */
} cymgpy_rpc_req;

/* ---- RpcReq ---- */

static cymg_rpc_req *req_live(PyObject *self) {
  cymg_rpc_req *r = ((cymgpy_rpc_req *) self)->req;
  if (r == NULL) {
    PyErr_SetString(PyExc_RuntimeError,
                    "RpcReq used after its handler returned: answer inside the handler");
  }
  return r;
}

static PyObject *req_get_str(PyObject *self, cymg_str (*fn)(const cymg_rpc_req *)) {
  cymg_rpc_req *r = req_live(self);
  if (r == NULL) return NULL;
  cymg_str s = fn(r);
  return cymgpy_str(s.buf, s.len);
}

static PyObject *req_get_frame(PyObject *self, void *closure) {
  (void) closure;
  return req_get_str(self, cymg_rpc_req_frame);
}

static PyObject *req_get_method(PyObject *self, void *closure) {
  (void) closure;
  return req_get_str(self, cymg_rpc_req_method);
}

static PyObject *req_get_params(PyObject *self, void *closure) {
  (void) closure;
  cymg_rpc_req *r = req_live(self);
  if (r == NULL) return NULL;
  cymg_str s = cymg_rpc_req_params(r);
  if (s.len == 0) Py_RETURN_NONE;
  return cymgpy_str(s.buf, s.len);
}

static PyObject *req_get_id(PyObject *self, void *closure) {
  (void) closure;
  cymg_rpc_req *r = req_live(self);
  if (r == NULL) return NULL;
  cymg_str s = cymg_rpc_req_id(r);
  if (s.len == 0) Py_RETURN_NONE;
  return cymgpy_str(s.buf, s.len);
}

static PyObject *answer_rc(int rc) {
  if (rc == CYMG_ESTATE) {
    PyErr_SetString(PyExc_RuntimeError,
                    "response already sent: only the first ok()/err() of a request counts");
    return NULL;
  }
  if (rc == CYMG_EINVAL) {
    PyErr_SetString(PyExc_ValueError, "result_json must be one valid JSON value");
    return NULL;
  }
  if (rc < 0) return cymgpy_raise_rc("rpc", rc);
  Py_RETURN_NONE;
}

static PyObject *req_ok(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"result_json", NULL};
  PyObject *res;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:ok", kwlist, &res)) return NULL;
  Py_buffer v;
  if (cymgpy_get_bytes(res, &v, "result_json") < 0) return NULL;
  cymg_rpc_req *r = req_live(self);
  int rc = 0;
  if (r != NULL) {
    if (memchr(v.buf, '\0', (size_t) v.len) != NULL) {
      rc = CYMG_EINVAL; /* JSON text has no raw NUL */
    } else {
      rc = cymg_rpc_ok(r, "%.*s", (int) (v.len > INT32_MAX ? INT32_MAX : v.len),
                       (const char *) v.buf);
    }
  }
  PyBuffer_Release(&v);
  return r == NULL ? NULL : answer_rc(rc);
}

static PyObject *req_err(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"code", "message", NULL};
  int code;
  PyObject *msg_obj;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO:err", kwlist, &code, &msg_obj)) return NULL;
  Py_buffer v;
  if (cymgpy_get_bytes(msg_obj, &v, "message") < 0) return NULL;
  cymg_rpc_req *r = req_live(self);
  int rc = r ? cymg_rpc_err(r, code, "%.*s", (int) (v.len > INT32_MAX ? INT32_MAX : v.len),
                            (const char *) v.buf)
             : 0;
  PyBuffer_Release(&v);
  return r == NULL ? NULL : answer_rc(rc);
}

static int req_bool(PyObject *self) { return ((cymgpy_rpc_req *) self)->req != NULL; }

static void req_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(tp);
}

static PyMethodDef req_methods[] = {
    {"ok", (PyCFunction) (void (*)(void)) req_ok, METH_VARARGS | METH_KEYWORDS,
     "ok(result_json): answer with this JSON text as the result."},
    {"err", (PyCFunction) (void (*)(void)) req_err, METH_VARARGS | METH_KEYWORDS,
     "err(code, message): answer with an error object."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef req_getset[] = {
    {"frame", req_get_frame, NULL, "The whole request object (JSON text).", NULL},
    {"method", req_get_method, NULL, "The method name.", NULL},
    {"params", req_get_params, NULL, "Raw JSON of params, or None.", NULL},
    {"id", req_get_id, NULL, "Raw JSON of id, or None for a notification.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot req_slots[] = {
    {Py_tp_doc, "One JSON-RPC request, given to a method handler; valid during the call."},
    {Py_tp_dealloc, req_dealloc},
    {Py_nb_bool, req_bool},
    {Py_tp_methods, req_methods},
    {Py_tp_getset, req_getset},
    {0, NULL},
};

PyType_Spec cymgpy_rpc_req_spec = {
    .name = "cymongoose.RpcReq",
    .basicsize = sizeof(cymgpy_rpc_req),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = req_slots,
};

/* ---- Rpc ---- */

/* Reports an Exception from a handler: error_handler(exc) or the traceback.
 * KeyboardInterrupt and the like are kept for process() to raise. */
static void report(cymgpy_rpc *self) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
  if (value != NULL && !PyErr_GivenExceptionMatches(type, PyExc_Exception)) {
    if (self->pending == NULL) self->pending = Py_NewRef(value);
  } else if (value != NULL && self->error_handler != NULL) {
    PyObject *r = PyObject_CallOneArg(self->error_handler, value);
    if (r == NULL) PyErr_WriteUnraisable(self->error_handler);
    Py_XDECREF(r);
  } else if (value != NULL) {
    PyErr_Display(type, value, tb);
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
}

static void trampoline(cymg_rpc_req *req) {
  rpc_entry *e = cymg_rpc_req_fn_data(req);
  cymgpy_rpc *self = e->self;
  PyObject *fn = e->fn;
  if (fn == NULL) return; /* cleared by the GC: the dispatcher answers -32603 */
  cymgpy_state *st = PyType_GetModuleState(Py_TYPE(self));
  cymgpy_rpc_req *v = PyObject_New(cymgpy_rpc_req, st->rpc_req_type);
  if (v == NULL) {
    PyErr_Clear();
    cymg_rpc_err(req, CYMG_RPC_INTERNAL_ERROR, "Internal error: out of memory");
    return;
  }
  v->req = req;
  Py_INCREF(fn);
  PyObject *r = PyObject_CallOneArg(fn, (PyObject *) v);
  Py_DECREF(fn);
  v->req = NULL;
  Py_DECREF(v);
  if (r == NULL) {
    /* The peer gets str(exc) as the message, as the package always did; the
     * exception itself still goes to error_handler (or is printed). */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    Py_ssize_t n = 0;
    const char *s = text ? PyUnicode_AsUTF8AndSize(text, &n) : NULL;
    if (s == NULL) PyErr_Clear(); /* a broken __str__: the generic text below */
    PyErr_Restore(type, value, tb);
    report(self);
    /* CYMG_ESTATE when the handler had answered before raising: that answer
     * stands. On CYMG_ENOMEM the dispatcher's own -32603 "no response" follows.
     * Either way there is nothing more to do with rc. */
    int rc = s != NULL
                 ? cymg_rpc_err(req, CYMG_RPC_INTERNAL_ERROR, "%.*s",
                                (int) (n > INT32_MAX ? INT32_MAX : n), s)
                 : cymg_rpc_err(req, CYMG_RPC_INTERNAL_ERROR, "Internal error");
    (void) rc;
    Py_XDECREF(text);
  }
  Py_XDECREF(r);
}

static PyObject *rpc_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"error_handler", NULL};
  PyObject *eh = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$O:Rpc", kwlist, &eh)) return NULL;
  if (eh != Py_None && !PyCallable_Check(eh)) {
    return PyErr_Format(PyExc_TypeError, "error_handler must be callable or None, not %.100s",
                        Py_TYPE(eh)->tp_name);
  }
  cymgpy_rpc *self = (cymgpy_rpc *) type->tp_alloc(type, 0);
  if (self == NULL) return NULL;
  int rc = cymg_rpc_new(&self->rpc);
  /* Clients of the package send requests without "jsonrpc": accept them. */
  if (rc == 0) rc = cymg_rpc_set_flags(self->rpc, CYMG_RPC_LENIENT);
  if (rc < 0) {
    Py_DECREF(self);
    return cymgpy_raise_rc("Rpc", rc);
  }
  if (eh != Py_None) self->error_handler = Py_NewRef(eh);
  return (PyObject *) self;
}

static PyObject *rpc_add(PyObject *op, PyObject *args, PyObject *kwargs) {
  cymgpy_rpc *self = (cymgpy_rpc *) op;
  static char *kwlist[] = {"method", "fn", NULL};
  PyObject *name_obj, *fn;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UO:add", kwlist, &name_obj, &fn)) return NULL;
  if (!PyCallable_Check(fn)) {
    return PyErr_Format(PyExc_TypeError, "fn must be callable, not %.100s", Py_TYPE(fn)->tp_name);
  }
  Py_ssize_t n;
  const char *name = PyUnicode_AsUTF8AndSize(name_obj, &n);
  if (name == NULL) return NULL;
  if (n == 0 || strlen(name) != (size_t) n) {
    return PyErr_Format(PyExc_ValueError, "method must be a non-empty name without NUL");
  }
  if (self->busy) {
    return PyErr_Format(PyExc_RuntimeError, "add() cannot be called while process() runs");
  }
  for (rpc_entry *e = self->entries; e != NULL; e = e->next) {
    if (strcmp(e->name, name) == 0) { /* the C table already points here */
      Py_SETREF(e->fn, Py_NewRef(fn));
      Py_RETURN_NONE;
    }
  }
  rpc_entry *e = PyMem_Malloc(sizeof(*e) + (size_t) n + 1);
  if (e == NULL) return PyErr_NoMemory();
  memcpy(e->name, name, (size_t) n + 1);
  e->self = self;
  e->fn = Py_NewRef(fn);
  int rc = cymg_rpc_add(self->rpc, name, trampoline, e);
  if (rc < 0) {
    Py_DECREF(e->fn);
    PyMem_Free(e);
    return cymgpy_raise_rc("add", rc);
  }
  e->next = self->entries;
  self->entries = e;
  Py_RETURN_NONE;
}

static PyObject *rpc_process(PyObject *op, PyObject *args, PyObject *kwargs) {
  cymgpy_rpc *self = (cymgpy_rpc *) op;
  static char *kwlist[] = {"frame", NULL};
  PyObject *frame_obj;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:process", kwlist, &frame_obj)) return NULL;
  Py_buffer v;
  if (cymgpy_get_bytes(frame_obj, &v, "frame") < 0) return NULL;
  self->busy++;
  Py_INCREF(self);
  cymg_buf out;
  cymg_buf_init(&out);
  int rc = cymg_rpc_process(self->rpc, cymg_str_n(v.buf, (size_t) v.len), &out);
  self->busy--;
  PyBuffer_Release(&v);
  PyObject *r = NULL;
  if (self->pending != NULL) {
    PyObject *exc = self->pending;
    self->pending = NULL;
    PyErr_SetObject((PyObject *) Py_TYPE(exc), exc);
    Py_DECREF(exc);
  } else if (rc < 0) {
    cymgpy_raise_rc("process", rc);
  } else {
    r = cymgpy_str(out.buf, out.len);
  }
  cymg_buf_free(&out);
  Py_DECREF(self);
  return r;
}

static PyObject *rpc_get_methods(PyObject *op, void *closure) {
  (void) closure;
  cymgpy_rpc *self = (cymgpy_rpc *) op;
  size_t n = cymg_rpc_count(self->rpc);
  PyObject *list = PyList_New((Py_ssize_t) n);
  for (size_t i = 0; list != NULL && i < n; i++) {
    PyObject *s = PyUnicode_FromString(cymg_rpc_method(self->rpc, i));
    if (s == NULL) Py_CLEAR(list);
    else PyList_SET_ITEM(list, (Py_ssize_t) i, s);
  }
  return list;
}

static int rpc_traverse(PyObject *op, visitproc visit, void *arg) {
  cymgpy_rpc *self = (cymgpy_rpc *) op;
  Py_VISIT(Py_TYPE(op));
  for (rpc_entry *e = self->entries; e != NULL; e = e->next) Py_VISIT(e->fn);
  Py_VISIT(self->error_handler);
  Py_VISIT(self->pending);
  return 0;
}

static int rpc_clear(PyObject *op) {
  cymgpy_rpc *self = (cymgpy_rpc *) op;
  /* Handlers are dropped, entries stay until dealloc (the C table points at
   * them); a cleared entry answers -32603. */
  for (rpc_entry *e = self->entries; e != NULL; e = e->next) Py_CLEAR(e->fn);
  Py_CLEAR(self->error_handler);
  Py_CLEAR(self->pending);
  return 0;
}

static void rpc_dealloc(PyObject *op) {
  PyTypeObject *tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  if (((cymgpy_rpc *) op)->weakreflist != NULL) PyObject_ClearWeakRefs(op);
  rpc_clear(op);
  cymgpy_rpc *self = (cymgpy_rpc *) op;
  cymg_rpc_free(self->rpc);
  while (self->entries != NULL) {
    rpc_entry *e = self->entries;
    self->entries = e->next;
    PyMem_Free(e);
  }
  tp->tp_free(op);
  Py_DECREF(tp);
}

static PyMethodDef rpc_methods[] = {
    {"add", (PyCFunction) (void (*)(void)) rpc_add, METH_VARARGS | METH_KEYWORDS,
     "add(method, fn): fn(req) answers `method` (a name or a glob)."},
    {"process", (PyCFunction) (void (*)(void)) rpc_process, METH_VARARGS | METH_KEYWORDS,
     "process(frame) -> str: the response to a request or batch (\"\" for notifications)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef rpc_getset[] = {
    {"methods", rpc_get_methods, NULL, "Registered method names, in order.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef rpc_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cymgpy_rpc, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot rpc_slots[] = {
    {Py_tp_doc, "Rpc(*, error_handler=None)\n\nA JSON-RPC 2.0 dispatcher (requests without "
                "\"jsonrpc\" are accepted). A handler that raises gets error -32603 with "
                "str(exc) as the message; the exception goes to error_handler(exc) "
                "(default: the traceback is printed)."},
    {Py_tp_new, rpc_new},
    {Py_tp_dealloc, rpc_dealloc},
    {Py_tp_traverse, rpc_traverse},
    {Py_tp_clear, rpc_clear},
    {Py_tp_methods, rpc_methods},
    {Py_tp_getset, rpc_getset},
    {Py_tp_members, rpc_members},
    {0, NULL},
};

PyType_Spec cymgpy_rpc_spec = {
    .name = "cymongoose.Rpc",
    .basicsize = sizeof(cymgpy_rpc),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = rpc_slots,
};
