/* Timer: a Python callback on the manager's timer heap.
 *
 * The heap belongs to the poll thread, and that thread reads it inside
 * cymg_mgr_wait() without the GIL. So cancel() touches the heap only when no
 * poll is waiting (no poll at all, or we are the poll thread inside dispatch);
 * otherwise it marks the Timer inactive at once (the trampoline checks that
 * before calling) and queues the C cancel for the start of the next dispatch. */
#include "cymg_py.h"

#include "pythread.h"
#include "structmember.h"

/* The Timer is finished: out of the manager's set, and its reference to the
 * manager dropped (the caller keeps t alive). */
static void finish(cymgpy_timer *t) {
  t->active = 0;
  cymgpy_manager *m = t->mgr;
  if (m == NULL) return;
  t->mgr = NULL;
  if (m->timers != NULL && PySet_Discard(m->timers, (PyObject *) t) < 0) PyErr_Clear();
  Py_DECREF(m);
}

static void trampoline(void *arg) {
  cymgpy_timer *t = arg;
  Py_INCREF(t);
  cymgpy_manager *m = t->mgr;
  if (t->active && m != NULL && !m->quiet && t->callback != NULL) {
    Py_INCREF(m);
    PyObject *cb = Py_NewRef(t->callback);
    PyObject *r = PyObject_CallNoArgs(cb);
    if (r == NULL) cymgpy_report_exception(m);
    Py_XDECREF(r);
    Py_DECREF(cb);
    Py_DECREF(m);
  }
  /* A one-shot timer ends when it has fired: C releases it after we return. */
  if (!t->repeat) finish(t);
  Py_DECREF(t);
}

PyObject *cymgpy_timer_add(cymgpy_manager *m, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"milliseconds", "callback", "repeat", "run_now", NULL};
  PyObject *ms_obj, *callback;
  int repeat = 0, run_now = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$pp:timer_add", kwlist, &ms_obj, &callback,
                                   &repeat, &run_now))
    return NULL;
  if (!PyLong_Check(ms_obj)) {
    return PyErr_Format(PyExc_TypeError, "milliseconds must be an int, not %.100s",
                        Py_TYPE(ms_obj)->tp_name);
  }
  int overflow = 0;
  long long ms = PyLong_AsLongLongAndOverflow(ms_obj, &overflow);
  if (ms == -1 && PyErr_Occurred()) return NULL;
  if (overflow < 0 || ms < 0) return PyErr_Format(PyExc_ValueError, "milliseconds must be >= 0");
  if (overflow > 0 || (unsigned long long) ms > (UINT64_MAX >> 2))
    return PyErr_Format(PyExc_ValueError, "milliseconds is too large");
  if (!PyCallable_Check(callback)) {
    return PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
                        Py_TYPE(callback)->tp_name);
  }
  PyTypeObject *tp = m->st->timer_type;
  cymgpy_timer *t = (cymgpy_timer *) tp->tp_alloc(tp, 0);
  if (t == NULL) return NULL;
  t->callback = Py_NewRef(callback);
  t->interval = (uint64_t) ms;
  t->repeat = repeat;
  if (PySet_Add(m->timers, (PyObject *) t) < 0) {
    Py_DECREF(t);
    return NULL;
  }
  unsigned flags = (repeat ? CYMG_TIMER_REPEAT : CYMG_TIMER_ONCE) | (run_now ? CYMG_TIMER_RUN_NOW : 0);
  int rc = cymg_timer_add(m->mgr, (uint64_t) ms, flags, trampoline, t, &t->id);
  if (rc < 0) {
    if (PySet_Discard(m->timers, (PyObject *) t) < 0) PyErr_Clear();
    Py_DECREF(t);
    return cymgpy_raise_rc("timer_add", rc);
  }
  t->mgr = (cymgpy_manager *) Py_NewRef((PyObject *) m);
  t->active = 1;
  return (PyObject *) t;
}

void cymgpy_timers_apply_cancels(cymgpy_manager *m) {
  if (m->cancels == NULL || PyList_GET_SIZE(m->cancels) == 0) return;
  PyObject *list = m->cancels;
  m->cancels = PyList_New(0);
  if (m->cancels == NULL) { /* keep the old list; retry next time */
    PyErr_Clear();
    m->cancels = list;
    return;
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
    cymgpy_timer *t = (cymgpy_timer *) PyList_GET_ITEM(list, i);
    if (t->mgr == m) {
      cymg_timer_cancel(m->mgr, t->id);
      finish(t);
    }
  }
  Py_DECREF(list);
}

void cymgpy_timers_release_all(cymgpy_manager *m) {
  if (m->cancels != NULL) {
    PyObject *old = m->cancels;
    m->cancels = PyList_New(0);
    if (m->cancels == NULL) PyErr_Clear();
    Py_DECREF(old);
  }
  if (m->timers == NULL) return;
  PyObject *snapshot = PySequence_List(m->timers);
  if (snapshot == NULL) {
    PyErr_Clear();
    return;
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(snapshot); i++)
    finish((cymgpy_timer *) PyList_GET_ITEM(snapshot, i));
  Py_DECREF(snapshot);
  PySet_Clear(m->timers);
}

/* ---- methods and properties ---- */

static PyObject *timer_cancel(PyObject *self, PyObject *unused) {
  (void) unused;
  cymgpy_timer *t = (cymgpy_timer *) self;
  cymgpy_manager *m = t->mgr;
  if (!t->active || m == NULL) Py_RETURN_NONE;
  t->active = 0; /* the trampoline will not call it again, whatever happens next */
  int direct = m->mgr != NULL &&
               (m->state == CYMGPY_IDLE ||
                (m->state == CYMGPY_DISPATCHING && m->poll_thread == PyThread_get_thread_ident()));
  if (direct) {
    cymg_timer_cancel(m->mgr, t->id);
    finish(t);
  } else if (m->cancels != NULL && PyList_Append(m->cancels, self) < 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *timer_get_active(PyObject *self, void *closure) {
  (void) closure;
  return PyBool_FromLong(((cymgpy_timer *) self)->active);
}

static PyObject *timer_repr(PyObject *self) {
  cymgpy_timer *t = (cymgpy_timer *) self;
  return PyUnicode_FromFormat("<cymongoose.Timer %llu ms%s %s>", (unsigned long long) t->interval,
                              t->repeat ? " repeat" : "", t->active ? "active" : "inactive");
}

static int timer_traverse(PyObject *self, visitproc visit, void *arg) {
  cymgpy_timer *t = (cymgpy_timer *) self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(t->mgr);
  Py_VISIT(t->callback);
  return 0;
}

static int timer_clear(PyObject *self) {
  cymgpy_timer *t = (cymgpy_timer *) self;
  Py_CLEAR(t->mgr);
  Py_CLEAR(t->callback);
  return 0;
}

static void timer_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (((cymgpy_timer *) self)->weakreflist != NULL) PyObject_ClearWeakRefs(self);
  timer_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyMethodDef timer_methods[] = {
    {"cancel", timer_cancel, METH_NOARGS,
     "cancel(): stop the timer. Thread-safe; takes effect at the next poll."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef timer_getset[] = {
    {"active", timer_get_active, NULL, "True until the timer is cancelled or has finished.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef timer_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cymgpy_timer, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot timer_slots[] = {
    {Py_tp_doc, "A timer returned by Manager.timer_add()."},
    {Py_tp_dealloc, timer_dealloc},
    {Py_tp_traverse, timer_traverse},
    {Py_tp_clear, timer_clear},
    {Py_tp_repr, timer_repr},
    {Py_tp_methods, timer_methods},
    {Py_tp_getset, timer_getset},
    {Py_tp_members, timer_members},
    {0, NULL},
};

PyType_Spec cymgpy_timer_spec = {
    .name = "cymongoose.Timer",
    .basicsize = sizeof(cymgpy_timer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = timer_slots,
};
