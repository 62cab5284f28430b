/* Internal header of the cymongoose._cymg extension: the object layouts and the
 * functions the per-type files share. Never installed.
 *
 * Ownership in one place:
 *  - A live C connection owns one strong reference to its Connection wrapper,
 *    stored as the connection's user pointer. It is dropped right after CLOSE has
 *    been delivered; the wrapper then has conn == NULL and raises on use.
 *  - A live C timer is owned by the Manager's `timers` set (the C timer's argument
 *    is a borrowed pointer to the Timer); the Timer owns a reference to the Manager
 *    until it ends.
 *  - The Manager reports the wrappers its C connections own in tp_traverse, so
 *    cycles through handlers and userdata are collectable. */
#ifndef CYMG_PY_H
#define CYMG_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cymg/cymg.h>

typedef struct {
  PyTypeObject *manager_type;
  PyTypeObject *connection_type;
  PyTypeObject *timer_type;
} cymgpy_state;

/* What the thread running poll() is doing. Only WAITING runs C code without the
 * GIL, so it is the state in which other threads must not touch the manager. */
enum { CYMGPY_IDLE = 0, CYMGPY_WAITING, CYMGPY_DISPATCHING, CYMGPY_CLOSING };

typedef struct {
  PyObject_HEAD
  cymg_mgr *mgr;         /* NULL once closed */
  cymgpy_state *st;      /* borrowed: the type keeps the module alive */
  PyObject *handler;     /* default event handler or NULL */
  PyObject *error_handler;
  PyObject *timers;      /* set of live Timers */
  PyObject *cancels;     /* list of Timers cancelled off the poll thread */
  PyObject *pending_exc; /* a non-Exception BaseException from a callback */
  PyObject *weakreflist;
  int64_t wakeup_id;
  unsigned long poll_thread;
  int state;
  int quiet; /* tearing down for the GC: release references, run no callbacks */
  int stop;  /* run(): set by its signal handlers */
} cymgpy_manager;

enum { CYMGPY_UNBOUND = 0, CYMGPY_OPEN, CYMGPY_CLOSED };

typedef struct {
  PyObject_HEAD
  cymg_conn *conn; /* NULL before the first event and after CLOSE */
  PyObject *handler;
  PyObject *userdata;
  PyObject *weakreflist;
  uint64_t id;
  int state;
} cymgpy_conn;

typedef struct {
  PyObject_HEAD
  cymgpy_manager *mgr; /* strong while active, NULL after */
  PyObject *callback;
  PyObject *weakreflist;
  cymg_timer_id id;
  uint64_t interval;
  int repeat;
  int active;
} cymgpy_timer;

extern PyModuleDef cymgpy_module;
extern PyType_Spec cymgpy_manager_spec;
extern PyType_Spec cymgpy_connection_spec;
extern PyType_Spec cymgpy_timer_spec;

/* ---- manager.c ---- */
/* The Manager behind a C connection (borrowed). */
cymgpy_manager *cymgpy_manager_of(cymg_conn *c);
/* Routes the current exception from a callback: Exceptions to error_handler (or
 * printed), other BaseExceptions stashed for poll() to re-raise. Clears it. */
void cymgpy_report_exception(cymgpy_manager *m);
/* Raises the stashed BaseException, if any. Returns -1 if it did, else 0. */
int cymgpy_raise_pending(cymgpy_manager *m);
/* 0 when the calling thread may use the manager's C state now; else -1 with
 * RuntimeError (poll() is waiting on another thread without the GIL). */
int cymgpy_check_thread(cymgpy_manager *m);
/* Raises RuntimeError (MemoryError for ENOMEM) describing rc. Returns NULL. */
PyObject *cymgpy_raise_rc(const char *what, int rc);

/* ---- connection.c ---- */
/* A fresh, unbound wrapper with the given per-connection handler (may be NULL). */
cymgpy_conn *cymgpy_conn_new(cymgpy_state *st, PyObject *handler);
/* The C event function of every connection made from Python. */
void cymgpy_conn_event(cymg_conn *c, int ev, void *ev_data);

/* ---- timer.c ---- */
PyObject *cymgpy_timer_add(cymgpy_manager *m, PyObject *args, PyObject *kwargs);
/* Applies cancellations queued by other threads (poll thread, GIL held). */
void cymgpy_timers_apply_cancels(cymgpy_manager *m);
/* The manager is gone: every Timer becomes inactive and drops its references. */
void cymgpy_timers_release_all(cymgpy_manager *m);

#endif
