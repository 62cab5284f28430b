/* Manager: the event loop. poll() waits in C with the GIL released, then runs the
 * callbacks with it held; close() tears everything down; run() adds signal
 * handling. */
#include "cymg_py.h"

#include <limits.h>
#include <signal.h>
#include <string.h>

#include "pythread.h"
#include "structmember.h"

/* ---- helpers shared with the other types ---- */

cymgpy_manager *cymgpy_manager_of(cymg_conn *c) {
  return (cymgpy_manager *) cymg_mgr_userdata(cymg_conn_mgr(c));
}

PyObject *cymgpy_raise_rc(const char *what, int rc) {
  if (rc == CYMG_ENOMEM) return PyErr_NoMemory();
  return PyErr_Format(PyExc_RuntimeError, "%s: %s", what, cymg_strerror(rc));
}

/* The call lock: taken by every method that changes C state and by poll()
 * outside its blocking wait, so a call from another thread runs only while the
 * poll thread blocks (or no poll runs), never in the middle of a dispatch even
 * when a handler lets the GIL go, and a dispatch never runs while another
 * thread is inside a C call that may itself run handlers (OPEN from connect()).
 * Recursive for its owner, so handlers call methods freely. Waiting for it
 * releases the GIL. */
void cymgpy_lock(cymgpy_manager *m) {
  unsigned long me = PyThread_get_thread_ident();
  if (m->lock_depth > 0 && m->lock_owner == me) {
    m->lock_depth++;
    return;
  }
  if (!PyThread_acquire_lock(m->lock, NOWAIT_LOCK)) {
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(m->lock, WAIT_LOCK);
    Py_END_ALLOW_THREADS
  }
  m->lock_owner = me;
  m->lock_depth = 1;
}

static void release(cymgpy_manager *m) {
  m->lock_owner = 0;
  PyThread_release_lock(m->lock);
}

void cymgpy_unlock_quiet(cymgpy_manager *m) {
  if (--m->lock_depth == 0) release(m);
}

void cymgpy_unlock(cymgpy_manager *m) {
  if (--m->lock_depth > 0) return;
  /* A change made while the poll thread blocks takes effect in its next prepare
   * step: end the wait so that this comes now. One interrupt per wait. */
  if (m->state == CYMGPY_WAITING && !m->kicked && m->mgr != NULL) {
    m->kicked = 1;
    (void) cymg_mgr_interrupt(m->mgr); /* the channel exists from __init__ on */
  }
  release(m);
}

/* A Connection method's manager, locked and referenced; NULL (no error) when
 * the connection is closed, so the method reports that itself. */
cymgpy_manager *cymgpy_lock_conn(PyObject *conn) {
  cymg_conn *c = ((cymgpy_conn *) conn)->conn;
  if (c == NULL) return NULL;
  cymgpy_manager *m = cymgpy_manager_of(c);
  if (m == NULL) return NULL;
  Py_INCREF(m);
  cymgpy_lock(m);
  return m;
}

void cymgpy_unlock_conn(cymgpy_manager *m, int changed) {
  if (m == NULL) return;
  if (changed) {
    cymgpy_unlock(m);
  } else {
    cymgpy_unlock_quiet(m);
  }
  Py_DECREF(m);
}

static void print_exception(PyObject *type, PyObject *value, PyObject *tb) {
  PyErr_Display(type, value, tb);
}

/* Takes the current exception, normalised, with its traceback attached. */
static PyObject *fetch_exception(PyObject **type_out) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
  Py_XDECREF(tb);
  *type_out = type;
  return value;
}

/* KeyboardInterrupt and SystemExit must stop the loop, not be logged and lost. */
static void stash(cymgpy_manager *m, PyObject *value) {
  if (m->pending_exc == NULL) {
    Py_INCREF(value);
    m->pending_exc = value;
  }
}

void cymgpy_report_exception(cymgpy_manager *m) {
  PyObject *type;
  PyObject *value = fetch_exception(&type);
  if (value == NULL) {
    Py_XDECREF(type);
    return;
  }
  if (!PyErr_GivenExceptionMatches(type, PyExc_Exception)) {
    stash(m, value);
  } else if (m->error_handler != NULL) {
    PyObject *eh = m->error_handler;
    Py_INCREF(eh);
    PyObject *r = PyObject_CallOneArg(eh, value);
    Py_DECREF(eh);
    if (r != NULL) {
      Py_DECREF(r);
    } else {
      /* The error handler failed too: print that failure and carry on. */
      PyObject *type2;
      PyObject *value2 = fetch_exception(&type2);
      if (value2 != NULL && !PyErr_GivenExceptionMatches(type2, PyExc_Exception)) {
        stash(m, value2);
      } else if (value2 != NULL) {
        PySys_WriteStderr("cymongoose: exception in error_handler:\n");
        print_exception(type2, value2, PyException_GetTraceback(value2));
      }
      Py_XDECREF(type2);
      Py_XDECREF(value2);
    }
  } else {
    PyObject *tb = PyException_GetTraceback(value);
    print_exception(type, value, tb);
    Py_XDECREF(tb);
  }
  Py_XDECREF(type);
  Py_DECREF(value);
  PyErr_Clear();
}

int cymgpy_raise_pending(cymgpy_manager *m) {
  PyObject *exc = m->pending_exc;
  if (exc == NULL) return 0;
  m->pending_exc = NULL;
  PyObject *tb = PyException_GetTraceback(exc);
  PyObject *type = (PyObject *) Py_TYPE(exc);
  Py_INCREF(type);
  PyErr_Restore(type, exc, tb);
  return -1;
}

static int check_open(cymgpy_manager *m) {
  if (m->mgr == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "manager is closed");
    return -1;
  }
  if (m->state == CYMGPY_CLOSING) {
    PyErr_SetString(PyExc_RuntimeError, "manager is closing");
    return -1;
  }
  return 0;
}

/* ---- DNS: Manager(dns=...) and set_dns() ---- */

/* A str or None argument as a C string (NULL for None); -1 with TypeError. */
static int opt_str(const char *what, PyObject *o, const char **out) {
  *out = NULL;
  if (o == Py_None) return 0;
  Py_ssize_t n;
  if (!PyUnicode_Check(o) || (*out = PyUnicode_AsUTF8AndSize(o, &n)) == NULL) {
    if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError, "%s must be a str or None, not %.100s", what,
                   Py_TYPE(o)->tp_name);
    }
    return -1;
  }
  if ((size_t) n != strlen(*out)) {
    PyErr_Format(PyExc_ValueError, "%s contains a NUL character", what);
    return -1;
  }
  return 0;
}

/* Name servers ("udp://IP:PORT,...", None: resolv.conf's); ValueError if bad. */
static int apply_dns(cymg_mgr *mgr, PyObject *servers) {
  const char *list;
  if (opt_str("dns servers", servers, &list) < 0) return -1;
  if (cymg_mgr_set_dns(mgr, list) < 0) {
    PyErr_Format(PyExc_ValueError,
                 "bad DNS servers %R: expected \"udp://IP:PORT\" or a bare IP, comma-separated, "
                 "at most 3", servers);
    return -1;
  }
  return 0;
}

static int opt_uint(const char *what, PyObject *o, unsigned *out) {
  *out = 0;
  if (o == Py_None) return 0;
  long v = PyLong_Check(o) ? PyLong_AsLong(o) : -1;
  if (v <= 0 || v > 3600000) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "%s must be a positive int (at most 3600000) or None", what);
    return -1;
  }
  *out = (unsigned) v;
  return 0;
}

static PyObject *set_dns(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  static char *kwlist[] = {"servers", "timeout_ms", "attempts", "resolv_conf", "hosts_file", NULL};
  PyObject *servers, *t = Py_None, *a = Py_None, *rc_path = Py_None, *hosts = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$OOOO:set_dns", kwlist, &servers, &t, &a,
                                   &rc_path, &hosts))
    return NULL;
  unsigned timeout_ms, attempts;
  const char *rcp, *hp;
  if (check_open(m) < 0 || opt_uint("timeout_ms", t, &timeout_ms) < 0 ||
      opt_uint("attempts", a, &attempts) < 0 || opt_str("resolv_conf", rc_path, &rcp) < 0 ||
      opt_str("hosts_file", hosts, &hp) < 0 || apply_dns(m->mgr, servers) < 0)
    return NULL;
  cymg_mgr_set_dns_timeout(m->mgr, timeout_ms, attempts);
  if ((rcp && cymg_mgr_set_resolv_conf(m->mgr, rcp) < 0) ||
      (hp && cymg_mgr_set_hosts_file(m->mgr, hp) < 0))
    return PyErr_NoMemory();
  Py_RETURN_NONE;
}

static PyObject *manager_set_dns(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_lock((cymgpy_manager *) self);
  PyObject *r = set_dns(self, args, kwargs);
  cymgpy_unlock((cymgpy_manager *) self);
  return r;
}

static int check_callable(const char *what, PyObject *fn) {
  if (fn == Py_None || PyCallable_Check(fn)) return 0;
  PyErr_Format(PyExc_TypeError, "%s must be callable or None, not %.100s", what,
               Py_TYPE(fn)->tp_name);
  return -1;
}

/* ---- life cycle ---- */

static PyObject *manager_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
  (void) args;
  (void) kwargs;
  cymgpy_manager *m = (cymgpy_manager *) type->tp_alloc(type, 0);
  if (m == NULL) return NULL;
  m->lock = PyThread_allocate_lock();
  if (m->lock == NULL) {
    Py_DECREF(m);
    return PyErr_NoMemory();
  }
  return (PyObject *) m;
}

static int manager_init(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  static char *kwlist[] = {"handler", "enable_wakeup", "error_handler", "send_stall_ms",
                           "poll_events", "dns", NULL};
  PyObject *handler = Py_None, *error_handler = Py_None, *stall = Py_None, *dns = Py_None;
  int enable_wakeup = 0, poll_events = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OpO$OpO:Manager", kwlist, &handler,
                                   &enable_wakeup, &error_handler, &stall, &poll_events, &dns))
    return -1;
  /* Optional: the send-stall timeout of its connections (None: the library's
   * 60000 ms; 0: never). */
  unsigned long stall_ms = 0;
  if (stall != Py_None) {
    stall_ms = PyLong_AsUnsignedLong(stall);
    if (PyErr_Occurred() || stall_ms > UINT32_MAX) {
      PyErr_Clear();
      PyErr_SetString(PyExc_ValueError, "send_stall_ms must be an int from 0 to 2**32-1, or None");
      return -1;
    }
  }
  if (m->mgr != NULL || m->st != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "Manager is already initialised");
    return -1;
  }
  if (check_callable("handler", handler) < 0 || check_callable("error_handler", error_handler) < 0)
    return -1;
  PyObject *mod = PyType_GetModuleByDef(Py_TYPE(self), &cymgpy_module);
  if (mod == NULL) return -1;
  m->st = PyModule_GetState(mod);
  m->timers = PySet_New(NULL);
  m->cancels = PyList_New(0);
  if (m->timers == NULL || m->cancels == NULL) return -1;
  int rc = cymg_mgr_new(&m->mgr, CYMG_BACKEND_AUTO);
  const char *be = getenv("CYMG_BACKEND");
  if (rc == CYMG_EINVAL && be != NULL) {
    PyErr_Format(PyExc_ValueError,
                 "CYMG_BACKEND=%s names no backend (valid: io_uring, epoll, kqueue, poll, select)",
                 be);
    return -1;
  }
  if (rc < 0) {
    cymgpy_raise_rc("cannot create the event loop", rc);
    return -1;
  }
  cymg_mgr_set_userdata(m->mgr, m);
  if (stall != Py_None && cymg_mgr_set_send_stall(m->mgr, (uint32_t) stall_ms) < 0) {
    cymg_mgr_free(m->mgr);
    m->mgr = NULL;
    PyErr_SetString(PyExc_ValueError, "send_stall_ms refused");
    return -1;
  }
  if (dns != Py_None && apply_dns(m->mgr, dns) < 0) { /* name servers instead of resolv.conf's */
    cymg_mgr_free(m->mgr);
    m->mgr = NULL;
    return -1;
  }
  /* As the original: MG_EV_POLL to every connection with a handler at every
   * poll, MG_EV_READ to HTTP and WebSocket connections too. */
  m->poll_events = poll_events;
  cymg_mgr_set_poll_events(m->mgr, poll_events != 0);
  cymg_mgr_set_read_events(m->mgr, true);
  /* The wakeup channel is always made: calls from other threads interrupt the
   * wait through it. wakeup() itself stays off unless enabled. */
  int64_t id = cymg_wakeup_init(m->mgr);
  if (id < 0) {
    cymg_mgr_free(m->mgr);
    m->mgr = NULL;
    cymgpy_raise_rc(enable_wakeup ? "cannot enable wakeup" : "cannot create the event loop",
                    (int) id);
    return -1;
  }
  if (enable_wakeup) m->wakeup_id = id;
  if (handler != Py_None) m->handler = Py_NewRef(handler);
  if (error_handler != Py_None) m->error_handler = Py_NewRef(error_handler);
  return 0;
}

/* Frees the C manager: every connection gets CLOSE (through the normal event
 * function, so wrappers are released), timers end. */
static void free_c_manager(cymgpy_manager *m, int quiet) {
  m->state = CYMGPY_CLOSING;
  m->quiet = quiet;
  cymgpy_brokers_close_all(m); /* they hold connections and timers of m->mgr */
  cymg_mgr_free(m->mgr);
  m->mgr = NULL;
  m->wakeup_id = 0;
  m->state = CYMGPY_IDLE;
  cymgpy_timers_release_all(m);
}

static PyObject *close_refused(cymgpy_manager *m, int in_handler) {
  if (m->state == CYMGPY_CLOSING) {
    PyErr_SetString(PyExc_RuntimeError, "close() called while the manager is closing");
  } else if (!in_handler && m->poll_thread != PyThread_get_thread_ident()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "close() called while poll() is running on another thread; stop "
                    "polling first (e.g. signal the poll thread via wakeup())");
  } else {
    PyErr_SetString(PyExc_RuntimeError,
                    "close() cannot be called from inside an event handler or timer "
                    "callback; end the poll loop and close afterwards");
  }
  return NULL;
}

static PyObject *manager_close(PyObject *self, PyObject *unused) {
  (void) unused;
  cymgpy_manager *m = (cymgpy_manager *) self;
  if (m->mgr == NULL) Py_RETURN_NONE;
  if (m->state != CYMGPY_IDLE) return close_refused(m, 0);
  /* Waits for a call another thread is making (its handlers may be running on C
   * frames of this manager), then looks again. */
  cymgpy_lock(m);
  int in_handler = m->lock_depth > 1; /* inside a handler of a call made here */
  if (m->state != CYMGPY_IDLE || in_handler || m->mgr == NULL) {
    cymgpy_unlock(m);
    if (m->mgr == NULL) Py_RETURN_NONE;
    return close_refused(m, in_handler);
  }
  free_c_manager(m, 0);
  cymgpy_unlock(m);
  if (cymgpy_raise_pending(m) < 0) return NULL;
  Py_RETURN_NONE;
}

static void manager_finalize(PyObject *self) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  if (m->mgr == NULL || m->state != CYMGPY_IDLE) return;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  free_c_manager(m, 0);
  if (cymgpy_raise_pending(m) < 0) PyErr_WriteUnraisable(self);
  PyErr_Restore(type, value, tb);
}

static int manager_traverse(PyObject *self, visitproc visit, void *arg) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(m->handler);
  Py_VISIT(m->error_handler);
  Py_VISIT(m->timers);
  Py_VISIT(m->cancels);
  Py_VISIT(m->pending_exc);
  Py_VISIT(m->brokers);
  /* The references the C connections hold. The connection list only changes in
   * dispatch and in calls made with the GIL, so walking it here is safe even
   * while another thread waits in poll(). */
  if (m->mgr != NULL) {
    for (cymg_conn *c = cymg_mgr_first(m->mgr); c != NULL; c = cymg_conn_next(c)) {
      /* A broker's connections carry its own user pointer, not a wrapper. */
      cymgpy_conn *w = cymg_conn_handler(c) == cymgpy_conn_event ? cymg_conn_userdata(c) : NULL;
      if (w != NULL && w->conn == c) Py_VISIT(w);
    }
  }
  return 0;
}

static int manager_clear(PyObject *self) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  /* tp_finalize normally closed it; if not, release without running callbacks. */
  if (m->mgr != NULL && m->state == CYMGPY_IDLE) free_c_manager(m, 1);
  Py_CLEAR(m->handler);
  Py_CLEAR(m->error_handler);
  Py_CLEAR(m->timers);
  Py_CLEAR(m->cancels);
  Py_CLEAR(m->pending_exc);
  Py_CLEAR(m->mqtt_sessions);
  Py_CLEAR(m->brokers);
  return 0;
}

static void manager_dealloc(PyObject *self) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  PyTypeObject *tp = Py_TYPE(self);
  if (PyObject_CallFinalizerFromDealloc(self) < 0) return; /* resurrected */
  PyObject_GC_UnTrack(self);
  if (m->weakreflist != NULL) PyObject_ClearWeakRefs(self);
  manager_clear(self);
  if (m->lock != NULL) PyThread_free_lock(m->lock);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* ---- the loop ---- */

static PyObject *poll_once(cymgpy_manager *m, int timeout_ms) {
  if (check_open(m) < 0) return NULL;
  unsigned long me = PyThread_get_thread_ident();
  if (m->state != CYMGPY_IDLE || (m->lock_depth > 0 && m->lock_owner == me)) {
    if (m->state != CYMGPY_IDLE && m->poll_thread != me) {
      PyErr_SetString(PyExc_RuntimeError, "poll() is not reentrant: it is already running on "
                                          "another thread");
    } else {
      PyErr_SetString(PyExc_RuntimeError, "poll() is not reentrant: it cannot be called from "
                                          "inside an event handler or timer callback");
    }
    return NULL;
  }
  m->poll_thread = me;
  m->state = CYMGPY_DISPATCHING; /* claimed: a second poll() or close() is refused */
  cymgpy_lock(m);
  cymg_mgr *mgr = m->mgr;
  cymgpy_timers_apply_cancels(m);
  /* Output queued since the last poll (from here or other threads) leaves,
   * interest changes reach the backend; no handler runs in this step. */
  int wait_ms = cymg_mgr_prepare(mgr, timeout_ms);
  /* Blocking: other threads may now take the lock and call in. Released by
   * hand: unlocking as a caller would interrupts a wait in progress. */
  m->state = CYMGPY_WAITING;
  m->kicked = 0;
  m->lock_depth = 0;
  release(m);
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = cymg_mgr_block(mgr, wait_ms);
  Py_END_ALLOW_THREADS
  m->state = CYMGPY_DISPATCHING;
  cymgpy_lock(m); /* waits for a call another thread is making */
  cymgpy_timers_apply_cancels(m);
  /* mgr cannot have been freed meanwhile: close() refuses while the state
   * is not idle, and it was not from before the first lock. */
  cymg_mgr_dispatch(mgr);
  m->state = CYMGPY_IDLE;
  cymgpy_unlock(m);
  if (cymgpy_raise_pending(m) < 0) return NULL;
  if (rc < 0) return cymgpy_raise_rc("poll", rc);
  /* A signal that arrived during the wait runs its Python handler now. */
  if (PyErr_CheckSignals() < 0) return NULL;
  Py_RETURN_NONE;
}

static int parse_ms(PyObject *obj, const char *name, int *out) {
  if (!PyLong_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name, Py_TYPE(obj)->tp_name);
    return -1;
  }
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
  if (v == -1 && PyErr_Occurred()) return -1;
  if (overflow < 0 || v < 0) {
    PyErr_Format(PyExc_ValueError, "%s must be >= 0", name);
    return -1;
  }
  *out = (overflow > 0 || v > INT_MAX) ? INT_MAX : (int) v;
  return 0;
}

static PyObject *manager_poll(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"timeout_ms", NULL};
  PyObject *t = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:poll", kwlist, &t)) return NULL;
  int ms = 0;
  if (t != NULL && parse_ms(t, "timeout_ms", &ms) < 0) return NULL;
  return poll_once((cymgpy_manager *) self, ms);
}

static PyObject *request_stop(PyObject *self, PyObject *args) {
  (void) args;
  ((cymgpy_manager *) self)->stop = 1;
  Py_RETURN_NONE;
}

static PyMethodDef stop_def = {"_cymongoose_stop", request_stop, METH_VARARGS,
                               "Signal handler installed by Manager.run()."};

/* signal.signal(sig, handler); returns the previous handler or NULL. */
static PyObject *set_signal(PyObject *signal_mod, int sig, PyObject *handler) {
  if (handler == Py_None) { /* installed outside Python: the best we can do is default */
    handler = PyObject_GetAttrString(signal_mod, "SIG_DFL");
    if (handler == NULL) return NULL;
    PyObject *r = PyObject_CallMethod(signal_mod, "signal", "iO", sig, handler);
    Py_DECREF(handler);
    return r;
  }
  return PyObject_CallMethod(signal_mod, "signal", "iO", sig, handler);
}

static int in_main_thread(void) {
  PyObject *threading = PyImport_ImportModule("threading");
  if (threading == NULL) return -1;
  PyObject *main = PyObject_CallMethod(threading, "main_thread", NULL);
  PyObject *cur = main ? PyObject_CallMethod(threading, "current_thread", NULL) : NULL;
  int r = (main && cur) ? (main == cur) : -1;
  Py_XDECREF(main);
  Py_XDECREF(cur);
  Py_DECREF(threading);
  return r;
}

static PyObject *manager_run(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  static char *kwlist[] = {"poll_ms", NULL};
  PyObject *t = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:run", kwlist, &t)) return NULL;
  int ms = 100;
  if (t != NULL && parse_ms(t, "poll_ms", &ms) < 0) return NULL;
  if (check_open(m) < 0) return NULL;
  int main_thread = in_main_thread();
  if (main_thread < 0) return NULL;
  if (!main_thread) {
    PyErr_SetString(PyExc_RuntimeError,
                    "Manager.run() installs SIGINT/SIGTERM handlers and so must be called "
                    "from the main thread; in other threads loop over poll() instead");
    return NULL;
  }
  PyObject *signal_mod = PyImport_ImportModule("signal");
  if (signal_mod == NULL) return NULL;
  PyObject *stopper = PyCFunction_New(&stop_def, self);
  PyObject *old_int = NULL, *old_term = NULL, *result = NULL;
  if (stopper == NULL) goto done;
  old_int = set_signal(signal_mod, SIGINT, stopper);
  if (old_int == NULL) goto done;
  old_term = set_signal(signal_mod, SIGTERM, stopper);
  if (old_term == NULL) goto done;
  m->stop = 0;
  result = Py_None;
  while (!m->stop && m->mgr != NULL) {
    PyObject *r = poll_once(m, ms);
    if (r == NULL) {
      result = NULL;
      break;
    }
    Py_DECREF(r);
  }
done:;
  /* Restore the handlers and close, keeping the first error. */
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (old_term != NULL) {
    PyObject *r = set_signal(signal_mod, SIGTERM, old_term);
    if (r == NULL && type == NULL) PyErr_Fetch(&type, &value, &tb);
    Py_XDECREF(r);
    PyErr_Clear();
  }
  if (old_int != NULL) {
    PyObject *r = set_signal(signal_mod, SIGINT, old_int);
    if (r == NULL && type == NULL) PyErr_Fetch(&type, &value, &tb);
    Py_XDECREF(r);
    PyErr_Clear();
  }
  if (m->mgr != NULL && m->state == CYMGPY_IDLE) {
    PyObject *r = manager_close(self, NULL);
    if (r == NULL && type == NULL) PyErr_Fetch(&type, &value, &tb);
    Py_XDECREF(r);
    PyErr_Clear();
  }
  Py_XDECREF(old_int);
  Py_XDECREF(old_term);
  Py_XDECREF(stopper);
  Py_DECREF(signal_mod);
  if (type != NULL) {
    PyErr_Restore(type, value, tb);
    return NULL;
  }
  (void) result;
  Py_RETURN_NONE;
}

/* ---- listening and connecting ---- */

typedef cymgpy_open_fn open_fn;

static int scheme_is(const char *url, size_t slen, const char *name) {
  return strlen(name) == slen && PyOS_strnicmp(url, name, slen) == 0;
}

/* Every failure of listen()/connect()/ws_connect() is raised the same way, as
 * programs written for the package match it: RuntimeError("Failed to listen on
 * '<url>': <reason>") or "Failed to connect to '<url>': <reason>". The reason
 * drops libcymg's own "'<url>': " prefix so the URL is not shown twice. */
static PyObject *open_failed(int is_listen, const char *url, const char *why) {
  /* "'<url>': reason" (the URL libcymg saw may be the tcp:// form of http=False;
   * a URL never holds a space, so "': " ends it). */
  const char *end = why[0] == '\'' ? strstr(why, "': ") : NULL;
  if (end != NULL && memchr(why, ' ', (size_t) (end - why)) == NULL) {
    why = end + 3;
  } else if (strncmp(why, "listen ", 7) == 0 || strncmp(why, "connect ", 8) == 0) {
    /* "listen tcp://1.2.3.4:80: bind: ...": the address is in our prefix already. */
    const char *sp = strchr(why, ' '), *colon = strstr(sp, ": ");
    if (colon != NULL && memchr(sp + 1, ' ', (size_t) (colon - sp - 1)) == NULL) why = colon + 2;
  }
  return PyErr_Format(PyExc_RuntimeError, is_listen ? "Failed to listen on '%s': %s"
                                                    : "Failed to connect to '%s': %s",
                      url, why);
}

static PyObject *open_with(cymgpy_manager *m, int is_listen, const char *shown, const char *url,
                           PyObject *handler, open_fn fn, bool attach, PyObject *rewritten,
                           PyObject *tls);

/* tls=: None, or a TlsOpts (TypeError before anything is opened). */
static int check_tls_arg(cymgpy_manager *m, PyObject *tls, const char *what) {
  return tls == Py_None ? 0 : cymgpy_tls_opts_check(m->st, tls, what);
}

/* listen() and connect(). The scheme picks the protocol: http:// and https://
 * get the HTTP layer, ws:// and wss:// too on a listener (the handler upgrades
 * in MG_EV_HTTP_MSG) and the WebSocket client on connect; http=False uses
 * either address for raw TCP (tcp://, or tls:// for the TLS schemes); tcp://
 * with http=True gets HTTP attached. Every other scheme goes to
 * cymg_listen()/cymg_connect() as written: udp:// and sntp:// are UDP, the
 * schemes libcymg knows (mqtt://, tls://, ...) TCP with their default port and
 * transport, unknown ones fail there with the reason. tls= applies a TlsOpts
 * at once (a listener's accepted connections inherit it; a client uses it
 * instead of the defaults). */
static PyObject *open_conn(cymgpy_manager *m, PyObject *args, PyObject *kwargs, int is_listen) {
  static char *listen_kw[] = {"url", "handler", "http", "tls", "reuse_port", NULL};
  static char *connect_kw[] = {"url", "handler", "http", "tls", NULL};
  const char *url;
  PyObject *handler = Py_None, *http = Py_None, *tls = Py_None, *reuse = Py_False;
  /* reuse_port is the listener's alone: connect() does not take it. */
  if (is_listen ? !PyArg_ParseTupleAndKeywords(args, kwargs, "s|O$OOO:listen", listen_kw, &url,
                                               &handler, &http, &tls, &reuse)
                : !PyArg_ParseTupleAndKeywords(args, kwargs, "s|O$OO:connect", connect_kw, &url,
                                               &handler, &http, &tls))
    return NULL;
  if (check_callable("handler", handler) < 0) return NULL;
  if (!PyBool_Check(reuse)) {
    PyErr_Format(PyExc_TypeError, "listen(reuse_port=) takes a bool, not %.100s",
                 Py_TYPE(reuse)->tp_name);
    return NULL;
  }
  bool reuseport = reuse == Py_True;
  if (check_tls_arg(m, tls, is_listen ? "listen(tls=)" : "connect(tls=)") < 0) return NULL;
  if (m->mgr == NULL || m->state == CYMGPY_CLOSING)
    return open_failed(is_listen, url, m->mgr ? "the manager is closing" : "the manager is closed");
  if (check_open(m) < 0) return NULL;
  int want_http = -1;
  if (http != Py_None && (want_http = PyObject_IsTrue(http)) < 0) return NULL;
  const char *sep = strstr(url, "://");
  size_t slen = sep ? (size_t) (sep - url) : 0;
  PyObject *rewritten = NULL;
  /* reuse_port: SO_REUSEPORT before bind. The HTTP and WebSocket listeners are
   * then cymg_listen_reuseport() with HTTP attached, which is what
   * cymg_http_listen()/cymg_ws_listen() do without the option. */
  open_fn fn = !is_listen ? cymg_connect : reuseport ? cymg_listen_reuseport : cymg_listen;
  bool attach = false;
  bool secure = sep && cymg_url_is_tls(cymg_str_n(url, slen));
  bool is_http = sep && (scheme_is(url, slen, "http") || scheme_is(url, slen, "https"));
  bool is_ws = sep && (scheme_is(url, slen, "ws") || scheme_is(url, slen, "wss"));
  bool is_mqtt = sep && (scheme_is(url, slen, "mqtt") || scheme_is(url, slen, "mqtts"));
  if (reuseport && is_mqtt && want_http != 1) {
    /* An MQTT server keeps sessions and subscriptions in its process: clients
     * spread over several would not see each other's messages. */
    PyErr_Format(PyExc_ValueError,
                 "listen(reuse_port=True) does not apply to '%s': an MQTT listener's sessions "
                 "live in one process (reuse_port is for tcp, tls, udp, http, https, ws, wss)",
                 url);
    return NULL;
  }
  if (is_listen && want_http != 1 && is_mqtt) {
    fn = cymg_mqtt_listen; /* the parser-level listener, as mqtt_listen() */
  } else if (is_ws && want_http != 0) {
    fn = !is_listen ? cymg_ws_connect : reuseport ? cymg_listen_reuseport : cymg_ws_listen;
    attach = is_listen && reuseport;
  } else if ((is_http || is_ws) && want_http == 0) {
    /* http=False: the address is used for plain TCP (over TLS for https/wss). */
    rewritten = PyUnicode_FromFormat("%s%s", secure ? "tls" : "tcp", sep);
    if (rewritten == NULL) return NULL;
    const char *tcp = PyUnicode_AsUTF8(rewritten);
    if (tcp == NULL) {
      Py_DECREF(rewritten);
      return NULL;
    }
    return open_with(m, is_listen, url, tcp, handler, fn, false, rewritten, tls);
  } else if (is_http) {
    fn = !is_listen ? cymg_http_connect : reuseport ? cymg_listen_reuseport : cymg_http_listen;
    attach = is_listen && reuseport;
  } else if (want_http == 1) {
    if (!sep || !(scheme_is(url, slen, "tcp") || scheme_is(url, slen, "tls")))
      return open_failed(is_listen, url, "http=True needs a tcp://, tls://, http:// or https:// URL");
    attach = true;
  }
  return open_with(m, is_listen, url, url, handler, fn, attach, NULL, tls);
}

/* Makes the wrapper and the C connection on url; failures name `shown` (the
 * URL as the caller wrote it). Takes the reference to rewritten (the buffer url
 * may point into), if any. */
static PyObject *open_with(cymgpy_manager *m, int is_listen, const char *shown, const char *url,
                           PyObject *handler, open_fn fn, bool attach, PyObject *rewritten,
                           PyObject *tls) {
  cymgpy_conn *w = cymgpy_conn_new(m->st, handler == Py_None ? NULL : handler);
  if (w == NULL) {
    Py_XDECREF(rewritten);
    return NULL;
  }
  Py_INCREF(w); /* the C connection's reference, dropped after CLOSE */
  cymg_conn *c = NULL;
  int rc = fn(m->mgr, url, cymgpy_conn_event, w, &c);
  if (rc < 0) {
    Py_DECREF(w); /* no connection was left behind, so no event holds it */
    const char *why = cymg_mgr_errmsg(m->mgr);
    PyObject *r = open_failed(is_listen, shown, why[0] ? why : cymg_strerror(rc));
    Py_XDECREF(rewritten);
    Py_DECREF(w);
    return r;
  }
  Py_XDECREF(rewritten);
  if (w->state == CYMGPY_UNBOUND && c != NULL) { /* OPEN always binds; be safe */
    w->conn = c;
    w->id = cymg_conn_id(c);
    w->state = CYMGPY_OPEN;
  }
  if (attach && c != NULL && (rc = cymg_http_attach(c, is_listen)) < 0) {
    cymg_close(c); /* CLOSE at the next poll releases the wrapper's C reference */
    Py_DECREF(w);
    char why[128];
    snprintf(why, sizeof(why), "cannot attach HTTP: %s", cymg_strerror(rc));
    return open_failed(is_listen, shown, why);
  }
  if (tls != Py_None && c != NULL) {
    /* Before the first poll, so no byte moves without these options. */
    PyObject *r = cymgpy_tls_apply(c, tls);
    if (r == NULL) {
      cymg_close(c);
      Py_DECREF(w);
      return NULL;
    }
    Py_DECREF(r);
  }
  if (cymgpy_raise_pending(m) < 0) {
    Py_DECREF(w);
    return NULL;
  }
  return (PyObject *) w;
}

/* Under the call lock (see cymgpy_lock), like every method that changes C state. */
static PyObject *manager_listen(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_lock((cymgpy_manager *) self);
  PyObject *r = open_conn((cymgpy_manager *) self, args, kwargs, 1);
  cymgpy_unlock((cymgpy_manager *) self);
  return r;
}

static PyObject *manager_connect(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_lock((cymgpy_manager *) self);
  PyObject *r = open_conn((cymgpy_manager *) self, args, kwargs, 0);
  cymgpy_unlock((cymgpy_manager *) self);
  return r;
}

static PyObject *ws_connect(PyObject *self, PyObject *args, PyObject *kwargs);

static PyObject *manager_ws_connect(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_lock((cymgpy_manager *) self);
  PyObject *r = ws_connect(self, args, kwargs);
  cymgpy_unlock((cymgpy_manager *) self);
  return r;
}

static PyObject *ws_connect(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  static char *kwlist[] = {"url", "handler", "tls", NULL};
  const char *url;
  PyObject *handler = Py_None, *tls = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O$O:ws_connect", kwlist, &url, &handler, &tls))
    return NULL;
  if (check_callable("handler", handler) < 0) return NULL;
  if (check_tls_arg(m, tls, "ws_connect(tls=)") < 0) return NULL;
  if (m->mgr == NULL || m->state == CYMGPY_CLOSING)
    return open_failed(0, url, m->mgr ? "the manager is closing" : "the manager is closed");
  if (check_open(m) < 0) return NULL;
  const char *sep = strstr(url, "://");
  size_t slen = sep ? (size_t) (sep - url) : 0;
  if (!sep || !(scheme_is(url, slen, "ws") || scheme_is(url, slen, "wss")))
    return open_failed(0, url, "ws_connect needs a ws:// or wss:// URL");
  return open_with(m, 0, url, url, handler, cymg_ws_connect, false, NULL, tls);
}

/* sntp_connect(): sntp://HOST (UDP port 123) or udp://HOST:PORT, the SNTP
 * client layer attached; the first request goes out by itself at CONNECT. */
static PyObject *sntp_connect(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"url", "handler", NULL};
  const char *url;
  PyObject *handler = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O:sntp_connect", kwlist, &url, &handler))
    return NULL;
  return cymgpy_open((cymgpy_manager *) self, 0, url, handler, cymg_sntp_connect);
}

PyObject *cymgpy_open(cymgpy_manager *m, int is_listen, const char *url, PyObject *handler,
                      cymgpy_open_fn fn) {
  if (check_callable("handler", handler) < 0) return NULL;
  if (m->mgr == NULL || m->state == CYMGPY_CLOSING)
    return open_failed(is_listen, url, m->mgr ? "the manager is closing" : "the manager is closed");
  if (check_open(m) < 0) return NULL;
  return open_with(m, is_listen, url, url, handler, fn, false, NULL, Py_None);
}

/* Under the call lock, like listen() and connect(). */
static PyObject *manager_sntp_connect(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_lock((cymgpy_manager *) self);
  PyObject *r = sntp_connect(self, args, kwargs);
  cymgpy_unlock((cymgpy_manager *) self);
  return r;
}

/* ---- wakeup, timers, properties ---- */

static PyObject *manager_wakeup(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  static char *kwlist[] = {"connection_id", "data", NULL};
  PyObject *id_obj, *data = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:wakeup", kwlist, &id_obj, &data))
    return NULL;
  if (!PyLong_Check(id_obj)) {
    return PyErr_Format(PyExc_TypeError, "connection_id must be an int, not %.100s",
                        Py_TYPE(id_obj)->tp_name);
  }
  unsigned long long id = PyLong_AsUnsignedLongLong(id_obj);
  if (id == (unsigned long long) -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return PyErr_Format(PyExc_ValueError, "connection_id must be a non-negative 64-bit int");
  }
  if (data != NULL && PyUnicode_Check(data)) {
    return PyErr_Format(PyExc_TypeError, "wakeup data must be bytes, not str (encode it first)");
  }
  Py_buffer view = {0};
  if (data != NULL && PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
    PyErr_Clear();
    return PyErr_Format(PyExc_TypeError, "wakeup data must be bytes-like, not %.100s",
                        Py_TYPE(data)->tp_name);
  }
  PyObject *r = NULL;
  if (m->mgr == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "manager is closed");
  } else if (m->wakeup_id == 0 || m->state == CYMGPY_CLOSING) {
    r = Py_NewRef(Py_False); /* not enabled, or shutting down: nothing can be queued */
  } else {
    /* The GIL stays held: close() needs it, so the manager cannot be freed under
     * us, and cymg_wakeup() itself only takes a short internal lock. */
    int rc = cymg_wakeup(m->mgr, id, view.buf, (size_t) view.len);
    r = Py_NewRef(rc == 0 ? Py_True : Py_False);
  }
  if (data != NULL) PyBuffer_Release(&view);
  return r;
}

/* _interrupt(): from any thread, ends the poll's blocking wait in progress (or
 * the next one) with no event; False once closed. For AsyncManager's shutdown:
 * wakeup() to the channel's own id queues nothing, by design. */
static PyObject *manager_interrupt(PyObject *self, PyObject *unused) {
  (void) unused;
  cymgpy_manager *m = (cymgpy_manager *) self;
  if (m->mgr == NULL || m->state == CYMGPY_CLOSING) Py_RETURN_FALSE;
  return PyBool_FromLong(cymg_mgr_interrupt(m->mgr) == 0);
}

static PyObject *manager_timer_add(PyObject *self, PyObject *args, PyObject *kwargs) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  cymgpy_lock(m);
  PyObject *r = check_open(m) < 0 ? NULL : cymgpy_timer_add(m, args, kwargs);
  cymgpy_unlock(m);
  return r;
}

static PyObject *manager_enter(PyObject *self, PyObject *unused) {
  (void) unused;
  return Py_NewRef(self);
}

static PyObject *manager_exit(PyObject *self, PyObject *args) {
  (void) args;
  PyObject *r = manager_close(self, NULL);
  if (r == NULL) return NULL;
  Py_DECREF(r);
  Py_RETURN_FALSE;
}

static PyObject *manager_get_connections(PyObject *self, void *closure) {
  (void) closure;
  cymgpy_manager *m = (cymgpy_manager *) self;
  if (m->mgr == NULL) return PyTuple_New(0);
  PyObject *list = PyList_New(0);
  if (list == NULL) return NULL;
  for (cymg_conn *c = cymg_mgr_first(m->mgr); c != NULL; c = cymg_conn_next(c)) {
    cymgpy_conn *w = cymg_conn_handler(c) == cymgpy_conn_event ? cymg_conn_userdata(c) : NULL;
    if (w != NULL && w->conn == c && PyList_Append(list, (PyObject *) w) < 0) {
      Py_DECREF(list);
      return NULL;
    }
  }
  /* The C list is newest first; show them in the order they were made. */
  if (PyList_Reverse(list) < 0) {
    Py_DECREF(list);
    return NULL;
  }
  PyObject *t = PyList_AsTuple(list);
  Py_DECREF(list);
  return t;
}

static PyObject *manager_get_wakeup_id(PyObject *self, void *closure) {
  (void) closure;
  return PyLong_FromLongLong(((cymgpy_manager *) self)->wakeup_id);
}

static PyObject *manager_get_backend(PyObject *self, void *closure) {
  (void) closure;
  cymgpy_manager *m = (cymgpy_manager *) self;
  if (m->mgr == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "the manager is closed");
    return NULL;
  }
  return PyUnicode_FromString(cymg_mgr_backend(m->mgr));
}

static PyObject *manager_repr(PyObject *self) {
  cymgpy_manager *m = (cymgpy_manager *) self;
  if (m->mgr == NULL) return PyUnicode_FromString("<cymongoose.Manager closed>");
  return PyUnicode_FromFormat("<cymongoose.Manager %s, %zu connections>",
                              cymg_mgr_backend(m->mgr), cymg_mgr_count(m->mgr));
}

static PyMethodDef manager_methods[] = {
    {"poll", (PyCFunction) (void (*)(void)) manager_poll, METH_VARARGS | METH_KEYWORDS,
     "poll(timeout_ms=0): wait up to timeout_ms for I/O (GIL released), then run handlers."},
    {"run", (PyCFunction) (void (*)(void)) manager_run, METH_VARARGS | METH_KEYWORDS,
     "run(poll_ms=100): poll until SIGINT/SIGTERM (main thread only), then close()."},
    {"listen", (PyCFunction) (void (*)(void)) manager_listen, METH_VARARGS | METH_KEYWORDS,
     "listen(url, handler=None, *, http=None, tls=None, reuse_port=False) -> Connection"},
    {"connect", (PyCFunction) (void (*)(void)) manager_connect, METH_VARARGS | METH_KEYWORDS,
     "connect(url, handler=None, *, http=None) -> Connection"},
    {"ws_connect", (PyCFunction) (void (*)(void)) manager_ws_connect, METH_VARARGS | METH_KEYWORDS,
     "ws_connect(url, handler=None) -> Connection: a WebSocket client (ws://)."},
    {"sntp_connect", (PyCFunction) (void (*)(void)) manager_sntp_connect,
     METH_VARARGS | METH_KEYWORDS,
     "sntp_connect(url, handler=None) -> Connection: an SNTP client (sntp://HOST or udp://)."},
    CYMGPY_MANAGER_MQTT_METHODS
    {"mqtt_broker", (PyCFunction) (void (*)(void)) cymgpy_manager_mqtt_broker,
     METH_VARARGS | METH_KEYWORDS,
     "mqtt_broker(url=None, *, tls=None, persist=None, auth=None, acl=None, handler=None, "
     "limits...) -> MqttBroker: an MQTT 3.1.1/5.0 broker on this loop."},
    {"wakeup", (PyCFunction) (void (*)(void)) manager_wakeup, METH_VARARGS | METH_KEYWORDS,
     "wakeup(connection_id, data=b'') -> bool: thread-safe; MG_EV_WAKEUP with data."},
    {"timer_add", (PyCFunction) (void (*)(void)) manager_timer_add, METH_VARARGS | METH_KEYWORDS,
     "timer_add(milliseconds, callback, *, repeat=False, run_now=False) -> Timer"},
    {"set_dns", (PyCFunction) (void (*)(void)) manager_set_dns, METH_VARARGS | METH_KEYWORDS,
     "set_dns(servers, *, timeout_ms=None, attempts=None, resolv_conf=None, hosts_file=None)"},
    {"_interrupt", manager_interrupt, METH_NOARGS,
     "_interrupt() -> bool: end a poll's wait now, from any thread (no event)."},
    {"close", manager_close, METH_NOARGS, "close(): close every connection and free the loop."},
    {"__enter__", manager_enter, METH_NOARGS, NULL},
    {"__exit__", manager_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef manager_getset[] = {
    {"connections", manager_get_connections, NULL,
     "Snapshot tuple of the live connections (listeners included).", NULL},
    {"wakeup_id", manager_get_wakeup_id, NULL,
     "Id of the internal wakeup channel, or 0 when wakeup is not enabled.", NULL},
    {"backend", manager_get_backend, NULL,
     "Name of the I/O backend this manager runs on: 'io_uring', 'epoll', 'kqueue', 'poll' "
     "or 'select' (chosen by the CYMG_BACKEND environment variable, else the best that "
     "works here).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef manager_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cymgpy_manager, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot manager_slots[] = {
    {Py_tp_doc, "Manager(handler=None, enable_wakeup=False, error_handler=None, *, "
                "poll_events=True)\n\n"
                "The event loop: owns connections and timers, driven by poll()."},
    {Py_tp_new, manager_new},
    {Py_tp_init, manager_init},
    {Py_tp_finalize, manager_finalize},
    {Py_tp_dealloc, manager_dealloc},
    {Py_tp_traverse, manager_traverse},
    {Py_tp_clear, manager_clear},
    {Py_tp_repr, manager_repr},
    {Py_tp_methods, manager_methods},
    {Py_tp_getset, manager_getset},
    {Py_tp_members, manager_members},
    {0, NULL},
};

PyType_Spec cymgpy_manager_spec = {
    .name = "cymongoose.Manager",
    .basicsize = sizeof(cymgpy_manager),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = manager_slots,
};
