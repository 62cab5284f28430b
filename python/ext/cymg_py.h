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

#include "pythread.h"

typedef struct {
  PyTypeObject *manager_type;
  PyTypeObject *connection_type;
  PyTypeObject *timer_type;
  PyTypeObject *http_message_type;
  PyTypeObject *ws_message_type;
  PyTypeObject *mqtt_message_type;
  PyTypeObject *rpc_type;
  PyTypeObject *rpc_req_type;
  PyTypeObject *tls_opts_type;
  PyTypeObject *mqtt_broker_type;
  PyTypeObject *mqtt_bridge_type;
  PyTypeObject *mqtt_client_info_type;
} cymgpy_state;

/* What the thread running poll() is doing. In WAITING it blocks in the OS
 * without the GIL and without the call lock, and calls from other threads run;
 * in DISPATCHING it runs handlers holding both (the prepare step counts as
 * DISPATCHING too). */
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
  /* Persistent MQTT client sessions between connections: a dict from
   * "url\0client_id" to a capsule holding a cymg_mqtt_session, or NULL. */
  PyObject *mqtt_sessions;
  PyObject *brokers;     /* list of the open MqttBrokers (mqtt_broker.c), or NULL */
  PyObject *weakreflist;
  int64_t wakeup_id;
  unsigned long poll_thread;
  PyThread_type_lock lock;    /* the call lock, see cymgpy_lock() */
  unsigned long lock_owner;   /* its holder (with the GIL: only read under it) */
  int lock_depth;             /* recursion of the holder, 0 when free */
  int kicked;                 /* this wait was already interrupted */
  int poll_events;            /* MG_EV_POLL on (Manager(poll_events=...)) */
  int state;
  int quiet; /* tearing down for the GC: release references, run no callbacks */
  int stop;  /* run(): set by its signal handlers */
} cymgpy_manager;

enum { CYMGPY_UNBOUND = 0, CYMGPY_OPEN, CYMGPY_CLOSED };

/* What has been written for the HTTP request being answered (bits of
 * cymgpy_conn.http_sent, cleared when the next request's head arrives). */
enum {
  CYMGPY_SENT_RAW = 1,     /* send()/http_basic_auth(): the user writes the protocol */
  CYMGPY_SENT_REPLY = 2,   /* a complete reply through reply()/serve_*()/a last chunk */
  CYMGPY_SENT_STREAM = 4,  /* a chunked reply started through http_chunk()/http_sse() */
  CYMGPY_SENT_DISCARD = 8, /* that reply answers HEAD: its body pieces are dropped */
};

typedef struct {
  PyObject_HEAD
  cymg_conn *conn; /* NULL before the first event and after CLOSE */
  PyObject *handler;
  PyObject *userdata;
  PyObject *weakreflist;
  /* ws_send() calls made on a client before its handshake completed: a list of
   * (op, bytes) sent at MG_EV_WS_OPEN, or NULL. */
  PyObject *ws_queue;
  size_t ws_queued; /* payload bytes in ws_queue */
  /* A persistent MQTT client's session key (see cymgpy_manager.mqtt_sessions),
   * or NULL: its session is kept there when it closes. */
  PyObject *mqtt_key;
  uint64_t id;
  int state;
  unsigned http_sent; /* CYMGPY_SENT_* */
  int ws_open;        /* MG_EV_WS_OPEN has been delivered */
  unsigned last_flags; /* CYMGPY_WAS_*: what a closed connection still reports */
} cymgpy_conn;

/* Flags a wrapper keeps from its C connection after MG_EV_CLOSE (checks.c). */
enum { CYMGPY_WAS_CLIENT = 1, CYMGPY_WAS_UDP = 2, CYMGPY_WAS_LISTENING = 4 };

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

/* A view of one cymg_http_msg, valid while its handler runs. */
typedef struct {
  PyObject_HEAD
  const cymg_http_msg *msg; /* NULL once stale */
  void *owned;              /* a copy() owns msg and what it points into; else NULL */
} cymgpy_http_message;

/* A view of one cymg_ws_msg, valid while its handler runs. */
typedef struct {
  PyObject_HEAD
  const cymg_ws_msg *msg; /* NULL once stale */
} cymgpy_ws_message;

/* A view of one cymg_mqtt_msg (MG_EV_MQTT_MSG / MG_EV_MQTT_CMD), valid while
 * its handler runs. */
typedef struct {
  PyObject_HEAD
  const cymg_mqtt_msg *msg; /* NULL once stale */
} cymgpy_mqtt_message;

extern PyModuleDef cymgpy_module;
extern PyType_Spec cymgpy_mqtt_message_spec;
extern PyType_Spec cymgpy_manager_spec;
extern PyType_Spec cymgpy_connection_spec;
extern PyType_Spec cymgpy_timer_spec;
extern PyType_Spec cymgpy_http_message_spec;
extern PyType_Spec cymgpy_ws_message_spec;
extern PyType_Spec cymgpy_rpc_spec;
extern PyType_Spec cymgpy_rpc_req_spec;
extern PyType_Spec cymgpy_tls_opts_spec;
/* utils.c: the module-level utility functions, added by module.c. */
extern PyMethodDef cymgpy_util_methods[];

/* ---- manager.c ---- */
/* The Manager behind a C connection (borrowed). */
cymgpy_manager *cymgpy_manager_of(cymg_conn *c);
/* Routes the current exception from a callback: Exceptions to error_handler (or
 * printed), other BaseExceptions stashed for poll() to re-raise. Clears it. */
void cymgpy_report_exception(cymgpy_manager *m);
/* Raises the stashed BaseException, if any. Returns -1 if it did, else 0. */
int cymgpy_raise_pending(cymgpy_manager *m);
/* The call lock, taken around every method that changes C state (recursive for
 * its holder; waiting for it releases the GIL). Such a method from another
 * thread thus runs only while the poll thread blocks in its wait (or no poll
 * runs), and unlocking interrupts that wait so the change is acted on now. */
void cymgpy_lock(cymgpy_manager *m);
void cymgpy_unlock(cymgpy_manager *m);
/* Unlocks without interrupting the wait: for calls that only read. */
void cymgpy_unlock_quiet(cymgpy_manager *m);
/* For Connection methods: the connection's manager, referenced and locked, or
 * NULL (nothing to lock, no error) when it is closed. changed: the call may have
 * changed C state (then a wait in progress is interrupted). */
cymgpy_manager *cymgpy_lock_conn(PyObject *conn);
void cymgpy_unlock_conn(cymgpy_manager *m, int changed);

/* Method wrappers running fn (a METH_O, METH_NOARGS or METH_VARARGS|KEYWORDS
 * implementation) under the call lock; named fn##_locked. */
#define CYMGPY_LOCKED_O(fn)                                            \
  static PyObject *fn##_locked(PyObject *self, PyObject *arg) {        \
    cymgpy_manager *m_ = cymgpy_lock_conn(self);                       \
    PyObject *r_ = fn(self, arg);                                      \
    cymgpy_unlock_conn(m_, 1);                                         \
    return r_;                                                         \
  }
#define CYMGPY_LOCKED_KW_(fn, changed)                                         \
  static PyObject *fn##_locked(PyObject *self, PyObject *args, PyObject *kw) { \
    cymgpy_manager *m_ = cymgpy_lock_conn(self);                               \
    PyObject *r_ = fn(self, args, kw);                                         \
    cymgpy_unlock_conn(m_, changed);                                           \
    return r_;                                                                 \
  }
#define CYMGPY_LOCKED_KW(fn) CYMGPY_LOCKED_KW_(fn, 1)
/* For methods that only read C state (recv_data, send_data). */
#define CYMGPY_LOCKED_KW_READ(fn) CYMGPY_LOCKED_KW_(fn, 0)
/* Raises RuntimeError (MemoryError for ENOMEM) describing rc. Returns NULL. */
PyObject *cymgpy_raise_rc(const char *what, int rc);

/* The C call that makes a connection: cymg_listen, cymg_connect, ... */
typedef int (*cymgpy_open_fn)(cymg_mgr *, const char *, cymg_event_fn, void *, cymg_conn **);
/* A Connection made by fn on url (the call lock held): checks handler and the
 * manager's state; failures raise RuntimeError("Failed to listen on / connect
 * to '<url>': <reason>"). */
PyObject *cymgpy_open(cymgpy_manager *m, int is_listen, const char *url, PyObject *handler,
                      cymgpy_open_fn fn);

/* ---- mqtt.c ---- */
/* Manager.mqtt_connect / mqtt_listen (they take the call lock themselves). */
PyObject *cymgpy_manager_mqtt_connect(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *cymgpy_manager_mqtt_listen(PyObject *self, PyObject *args, PyObject *kwargs);
#define CYMGPY_MANAGER_MQTT_METHODS                                                          \
  {"mqtt_connect", (PyCFunction) (void (*)(void)) cymgpy_manager_mqtt_connect,              \
   METH_VARARGS | METH_KEYWORDS,                                                            \
   "mqtt_connect(url, handler=None, client_id='', username='', password='', "              \
   "clean_session=True, keepalive=60, *, version=4, will_topic='', will_message=b'', "      \
   "will_qos=0, will_retain=False, will_properties=None, properties=None, "                 \
   "session_expiry=0) -> Connection: an MQTT client (mqtt://, mqtts://, ws://, wss://)."},  \
  {"mqtt_listen", (PyCFunction) (void (*)(void)) cymgpy_manager_mqtt_listen,                \
   METH_VARARGS | METH_KEYWORDS,                                                            \
   "mqtt_listen(url, handler=None) -> Connection: a parser-level MQTT listener (it "        \
   "answers nothing by itself but the QoS flow)."},
/* The Connection.mqtt_* methods (each under the call lock). */
PyObject *cymgpy_conn_mqtt_pub(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *cymgpy_conn_mqtt_sub(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *cymgpy_conn_mqtt_unsub(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *cymgpy_conn_mqtt_ping(PyObject *self, PyObject *unused);
PyObject *cymgpy_conn_mqtt_pong(PyObject *self, PyObject *unused);
PyObject *cymgpy_conn_mqtt_disconnect(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *cymgpy_conn_mqtt_connack(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *cymgpy_conn_mqtt_suback(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *cymgpy_conn_mqtt_unsuback(PyObject *self, PyObject *args, PyObject *kwargs);
#define CYMGPY_MQTT_KW_(name, fn, doc) \
  {name, (PyCFunction) (void (*)(void)) fn, METH_VARARGS | METH_KEYWORDS, doc},
#define CYMGPY_CONN_MQTT_METHODS                                                               \
  CYMGPY_MQTT_KW_("mqtt_pub", cymgpy_conn_mqtt_pub,                                            \
                  "mqtt_pub(topic, message, qos=0, retain=False, *, properties=None) -> int: " \
                  "PUBLISH; 0 for QoS 0, else the packet id.")                                 \
  CYMGPY_MQTT_KW_("mqtt_sub", cymgpy_conn_mqtt_sub,                                            \
                  "mqtt_sub(topic, qos=0, *, properties=None) -> int: SUBSCRIBE; packet id.")  \
  CYMGPY_MQTT_KW_("mqtt_unsub", cymgpy_conn_mqtt_unsub,                                        \
                  "mqtt_unsub(topic, *, properties=None) -> int: UNSUBSCRIBE; packet id.")     \
  {"mqtt_ping", cymgpy_conn_mqtt_ping, METH_NOARGS, "mqtt_ping(): PINGREQ."},                  \
  {"mqtt_pong", cymgpy_conn_mqtt_pong, METH_NOARGS, "mqtt_pong(): PINGRESP."},                 \
  {"mqtt_pingresp", cymgpy_conn_mqtt_pong, METH_NOARGS, "mqtt_pingresp(): PINGRESP."},         \
  CYMGPY_MQTT_KW_("mqtt_disconnect", cymgpy_conn_mqtt_disconnect,                              \
                  "mqtt_disconnect(reason=0, *, properties=None): DISCONNECT and nothing else.") \
  CYMGPY_MQTT_KW_("mqtt_connack", cymgpy_conn_mqtt_connack,                                    \
                  "mqtt_connack(code=0, session_present=False, *, properties=None): CONNACK.") \
  CYMGPY_MQTT_KW_("mqtt_suback", cymgpy_conn_mqtt_suback,                                      \
                  "mqtt_suback(packet_id, codes, *, properties=None): SUBACK, one code per "   \
                  "filter.")                                                                   \
  CYMGPY_MQTT_KW_("mqtt_unsuback", cymgpy_conn_mqtt_unsuback,                                  \
                  "mqtt_unsuback(packet_id, codes=(), *, properties=None): UNSUBACK.")
/* At CLOSE of a persistent MQTT client: keeps its session for the next
 * mqtt_connect() with the same URL and client id. */
void cymgpy_mqtt_keep_session(cymgpy_manager *m, cymg_conn *c, cymgpy_conn *w);
/* What a Python list of v5 property dicts became: the C array and the bytes
 * objects its strings point into. */
typedef struct {
  cymg_mqtt_prop *props;
  size_t n;
  PyObject *keep; /* list of bytes */
} cymgpy_props;
/* Converts a list of property dicts (None: none). Returns 0 or -1. */
int cymgpy_props_from(PyObject *obj, cymgpy_props *pb);
void cymgpy_props_release(cymgpy_props *pb);
/* A property block as a list of dicts. */
PyObject *cymgpy_props_to_list(cymg_str block);
/* A str argument's UTF-8 bytes (TypeError naming what otherwise). */
int cymgpy_str_arg(PyObject *o, const char *what, cymg_str *out);
/* ValueError unless qos is 0, 1 or 2. */
int cymgpy_qos_ok(int qos, const char *what);
/* The (topic, message, qos=0, retain=False, properties=None) of a PUBLISH call,
 * checked (TypeError / ValueError naming what); fmt is the PyArg format for
 * those five. Release with cymgpy_pub_args_release when it returned 0. */
typedef struct {
  cymg_str topic; /* points into the str argument */
  Py_buffer data;
  int qos, retain;
  cymgpy_props props;
} cymgpy_pub_args;
int cymgpy_pub_args_parse(PyObject *args, PyObject *kwargs, const char *fmt, const char *what,
                          cymgpy_pub_args *a);
void cymgpy_pub_args_release(cymgpy_pub_args *a);
/* A new view of msg; cymgpy_mqtt_message_done() makes it stale. */
PyObject *cymgpy_mqtt_message_new(cymgpy_state *st, const cymg_mqtt_msg *msg);
void cymgpy_mqtt_message_done(PyObject *view);

/* ---- connection.c ---- */
/* A fresh, unbound wrapper with the given per-connection handler (may be NULL). */
cymgpy_conn *cymgpy_conn_new(cymgpy_state *st, PyObject *handler);
/* The C event function of every connection made from Python. */
void cymgpy_conn_event(cymg_conn *c, int ev, void *ev_data);
/* An event's data as the handler gets it (views made stale by
 * cymgpy_views_done once it returned). */
PyObject *cymgpy_event_data(cymgpy_state *st, int ev, void *ev_data);
void cymgpy_views_done(cymgpy_state *st, PyObject *data);
/* (ip, port, is_ipv6), or None for an unset address. */
PyObject *cymgpy_addr_tuple(const cymg_addr *a);

/* ---- messages.c ---- */
/* A new view of msg; the caller makes it stale with cymgpy_http_message_done(). */
PyObject *cymgpy_http_message_new(cymgpy_state *st, const cymg_http_msg *msg);
/* The handler has returned: the view no longer reaches msg. */
void cymgpy_http_message_done(PyObject *view);
/* The C message behind a live view, or NULL with TypeError/RuntimeError set. */
const cymg_http_msg *cymgpy_http_message_get(cymgpy_state *st, PyObject *obj);
/* The same for a WebSocket message (MG_EV_WS_MSG / MG_EV_WS_CTL). */
PyObject *cymgpy_ws_message_new(cymgpy_state *st, const cymg_ws_msg *msg);
void cymgpy_ws_message_done(PyObject *view);

/* ---- utils.c ---- */
/* Bytes of a str (UTF-8) or a bytes-like object: fills view (release it with
 * PyBuffer_Release). what names the argument in the TypeError. Returns 0 or -1. */
int cymgpy_get_bytes(PyObject *obj, Py_buffer *view, const char *what);
/* A str from len bytes of UTF-8, invalid sequences replaced. */
PyObject *cymgpy_str(const char *buf, size_t len);

/* ---- checks.c ---- */
/* Validates a reply()/ws_upgrade() headers mapping (None: an empty list) before
 * anything is sent: names and values are converted with str(), names must be
 * tokens and neither may hold CR, LF or NUL (ValueError with the contract's
 * wording). Returns a new list of (name, value) str tuples, or NULL. */
PyObject *cymgpy_headers_check(PyObject *headers, const char *what);
/* The same, also taking a list or tuple of (name, value) pairs when pairs is
 * set: their order and repeats are kept (several Set-Cookie). */
PyObject *cymgpy_headers_check_as(PyObject *headers, const char *what, bool pairs);
/* Records the flags a closed wrapper keeps reporting; call before detaching. */
void cymgpy_conn_remember(cymgpy_conn *w, const cymg_conn *c);

/* ---- tls_opts.c ---- */
/* 0 if obj is a TlsOpts, else -1 with TypeError naming what. */
int cymgpy_tls_opts_check(cymgpy_state *st, PyObject *obj, const char *what);
/* cymg_tls_init(c) with the TlsOpts obj (checked): None, or NULL with
 * RuntimeError/MemoryError for misuse. Bad material raises nothing: it is
 * MG_EV_ERROR on c (on a listener, on each connection it accepts). */
PyObject *cymgpy_tls_apply(cymg_conn *c, PyObject *obj);

/* ---- mqtt_broker.c ---- */
/* Manager.mqtt_broker (takes the call lock itself). */
PyObject *cymgpy_manager_mqtt_broker(PyObject *self, PyObject *args, PyObject *kwargs);
/* Frees every broker of m (before the C manager goes). */
void cymgpy_brokers_close_all(cymgpy_manager *m);
/* Creates the MqttBroker, MqttBridge and MqttClientInfo types into st. */
int cymgpy_mqtt_broker_types(PyObject *mod, cymgpy_state *st);

/* ---- timer.c ---- */
PyObject *cymgpy_timer_add(cymgpy_manager *m, PyObject *args, PyObject *kwargs);
/* Applies cancellations queued by other threads (poll thread, GIL held). */
void cymgpy_timers_apply_cancels(cymgpy_manager *m);
/* The manager is gone: every Timer becomes inactive and drops its references. */
void cymgpy_timers_release_all(cymgpy_manager *m);

#endif
