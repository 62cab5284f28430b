/* The cymongoose._cymg module: definition, multi-phase init, module state, the
 * constants and the logging/event-name functions (the utilities are in utils.c). */
#include "cymg_py.h"

#include <string.h>

/* The Python constants are the C numbers; keep them from drifting apart. */
_Static_assert(CYMG_EV_ERROR == 0 && CYMG_EV_READ == 7 && CYMG_EV_CLOSE == 9 &&
                   CYMG_EV_WAKEUP == 19 && CYMG_EV_USER == 100,
               "event numbers are part of the Python API");
_Static_assert(CYMG_WS_OP_TEXT == 1 && CYMG_WS_OP_BINARY == 2 && CYMG_WS_OP_PING == 9 &&
                   CYMG_WS_OP_PONG == 10,
               "WebSocket opcodes are part of the Python API");
_Static_assert(CYMG_LL_NONE == 0 && CYMG_LL_VERBOSE == 4, "log levels are part of the Python API");

static const struct {
  const char *name;
  long value;
} constants[] = {
    {"MG_EV_ERROR", CYMG_EV_ERROR},
    {"MG_EV_OPEN", CYMG_EV_OPEN},
    {"MG_EV_POLL", CYMG_EV_POLL},
    {"MG_EV_RESOLVE", CYMG_EV_RESOLVE},
    {"MG_EV_CONNECT", CYMG_EV_CONNECT},
    {"MG_EV_ACCEPT", CYMG_EV_ACCEPT},
    {"MG_EV_TLS_HS", CYMG_EV_TLS_HS},
    {"MG_EV_READ", CYMG_EV_READ},
    {"MG_EV_WRITE", CYMG_EV_WRITE},
    {"MG_EV_CLOSE", CYMG_EV_CLOSE},
    {"MG_EV_HTTP_HDRS", CYMG_EV_HTTP_HDRS},
    {"MG_EV_HTTP_MSG", CYMG_EV_HTTP_MSG},
    {"MG_EV_WS_OPEN", CYMG_EV_WS_OPEN},
    {"MG_EV_WS_MSG", CYMG_EV_WS_MSG},
    {"MG_EV_WS_CTL", CYMG_EV_WS_CTL},
    {"MG_EV_MQTT_CMD", CYMG_EV_MQTT_CMD},
    {"MG_EV_MQTT_MSG", CYMG_EV_MQTT_MSG},
    {"MG_EV_MQTT_OPEN", CYMG_EV_MQTT_OPEN},
    {"MG_EV_SNTP_TIME", CYMG_EV_SNTP_TIME},
    {"MG_EV_WAKEUP", CYMG_EV_WAKEUP},
    {"MG_EV_USER", CYMG_EV_USER},
    /* RFC 6455 opcodes */
    {"WEBSOCKET_OP_TEXT", CYMG_WS_OP_TEXT},
    {"WEBSOCKET_OP_BINARY", CYMG_WS_OP_BINARY},
    {"WEBSOCKET_OP_PING", CYMG_WS_OP_PING},
    {"WEBSOCKET_OP_PONG", CYMG_WS_OP_PONG},
    {"MG_LL_NONE", CYMG_LL_NONE},
    {"MG_LL_ERROR", CYMG_LL_ERROR},
    {"MG_LL_INFO", CYMG_LL_INFO},
    {"MG_LL_DEBUG", CYMG_LL_DEBUG},
    {"MG_LL_VERBOSE", CYMG_LL_VERBOSE},
    /* MQTT v5 property value types, in the order the API lists them */
    {"MQTT_PROP_TYPE_BYTE", 0},
    {"MQTT_PROP_TYPE_STRING", 1},
    {"MQTT_PROP_TYPE_STRING_PAIR", 2},
    {"MQTT_PROP_TYPE_BINARY_DATA", 3},
    {"MQTT_PROP_TYPE_VARIABLE_INT", 4},
    {"MQTT_PROP_TYPE_INT", 5},
    {"MQTT_PROP_TYPE_SHORT", 6},
    /* MQTT packet types (MqttMessage.cmd) */
    {"MQTT_CMD_CONNECT", CYMG_MQTT_CMD_CONNECT},
    {"MQTT_CMD_CONNACK", CYMG_MQTT_CMD_CONNACK},
    {"MQTT_CMD_PUBLISH", CYMG_MQTT_CMD_PUBLISH},
    {"MQTT_CMD_PUBACK", CYMG_MQTT_CMD_PUBACK},
    {"MQTT_CMD_PUBREC", CYMG_MQTT_CMD_PUBREC},
    {"MQTT_CMD_PUBREL", CYMG_MQTT_CMD_PUBREL},
    {"MQTT_CMD_PUBCOMP", CYMG_MQTT_CMD_PUBCOMP},
    {"MQTT_CMD_SUBSCRIBE", CYMG_MQTT_CMD_SUBSCRIBE},
    {"MQTT_CMD_SUBACK", CYMG_MQTT_CMD_SUBACK},
    {"MQTT_CMD_UNSUBSCRIBE", CYMG_MQTT_CMD_UNSUBSCRIBE},
    {"MQTT_CMD_UNSUBACK", CYMG_MQTT_CMD_UNSUBACK},
    {"MQTT_CMD_PINGREQ", CYMG_MQTT_CMD_PINGREQ},
    {"MQTT_CMD_PINGRESP", CYMG_MQTT_CMD_PINGRESP},
    {"MQTT_CMD_DISCONNECT", CYMG_MQTT_CMD_DISCONNECT},
    {"MQTT_CMD_AUTH", CYMG_MQTT_CMD_AUTH},
};
_Static_assert(CYMG_MQTT_PROP_TYPE_BYTE == 0 && CYMG_MQTT_PROP_TYPE_SHORT == 6,
               "MQTT_PROP_TYPE_* are the C numbers");

/* ---- module functions ---- */

static PyObject *event_name(PyObject *mod, PyObject *arg) {
  (void) mod;
  if (!PyLong_Check(arg)) {
    return PyErr_Format(PyExc_TypeError, "event_name() expects an int, not %.100s",
                        Py_TYPE(arg)->tp_name);
  }
  int overflow = 0;
  long long ev = PyLong_AsLongLongAndOverflow(arg, &overflow);
  if (ev == -1 && PyErr_Occurred()) return NULL;
  if (overflow == 0 && ev > CYMG_EV_USER && ev <= INT32_MAX)
    return PyUnicode_FromFormat("MG_EV_USER+%lld", ev - CYMG_EV_USER);
  const char *name = (overflow == 0 && ev >= INT32_MIN && ev <= INT32_MAX)
                         ? cymg_event_name((int) ev)
                         : NULL;
  /* The C names carry the library prefix; Python keeps the MG_ names. */
  if (name != NULL && strncmp(name, "CY", 2) == 0) return PyUnicode_FromString(name + 2);
  if (name != NULL) return PyUnicode_FromString(name);
  return PyUnicode_FromFormat("MG_EV_UNKNOWN(%S)", arg);
}

static PyObject *log_set(PyObject *mod, PyObject *arg) {
  (void) mod;
  if (!PyLong_Check(arg)) {
    return PyErr_Format(PyExc_TypeError, "log_set() expects an int level (MG_LL_*), not %.100s",
                        Py_TYPE(arg)->tp_name);
  }
  long level = PyLong_AsLong(arg);
  if (level == -1 && PyErr_Occurred()) return NULL;
  if (level < CYMG_LL_NONE || level > CYMG_LL_VERBOSE) {
    return PyErr_Format(PyExc_ValueError, "log level must be MG_LL_NONE..MG_LL_VERBOSE (0..4), not %ld",
                        level);
  }
  cymg_log_set((int) level);
  Py_RETURN_NONE;
}

static PyObject *log_get(PyObject *mod, PyObject *unused) {
  (void) mod;
  (void) unused;
  return PyLong_FromLong(cymg_log_get());
}

static PyMethodDef module_methods[] = {
    {"event_name", event_name, METH_O,
     "event_name(ev) -> str: 'MG_EV_READ', 'MG_EV_USER+3' or 'MG_EV_UNKNOWN(77)'."},
    {"log_set", log_set, METH_O, "log_set(level): set the library's log level (MG_LL_*)."},
    {"log_get", log_get, METH_NOARGS, "log_get() -> int: the library's log level."},
    {NULL, NULL, 0, NULL},
};

/* ---- module state and init ---- */

static int module_exec(PyObject *mod) {
  cymgpy_state *st = PyModule_GetState(mod);
  st->manager_type = (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_manager_spec, NULL);
  if (st->manager_type == NULL || PyModule_AddType(mod, st->manager_type) < 0) return -1;
  st->connection_type =
      (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_connection_spec, NULL);
  if (st->connection_type == NULL || PyModule_AddType(mod, st->connection_type) < 0) return -1;
  st->timer_type = (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_timer_spec, NULL);
  if (st->timer_type == NULL || PyModule_AddType(mod, st->timer_type) < 0) return -1;
  st->http_message_type =
      (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_http_message_spec, NULL);
  if (st->http_message_type == NULL || PyModule_AddType(mod, st->http_message_type) < 0)
    return -1;
  st->ws_message_type =
      (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_ws_message_spec, NULL);
  if (st->ws_message_type == NULL || PyModule_AddType(mod, st->ws_message_type) < 0) return -1;
  st->mqtt_message_type =
      (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_mqtt_message_spec, NULL);
  if (st->mqtt_message_type == NULL || PyModule_AddType(mod, st->mqtt_message_type) < 0)
    return -1;
  st->rpc_type = (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_rpc_spec, NULL);
  if (st->rpc_type == NULL || PyModule_AddType(mod, st->rpc_type) < 0) return -1;
  st->rpc_req_type = (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_rpc_req_spec, NULL);
  if (st->rpc_req_type == NULL || PyModule_AddType(mod, st->rpc_req_type) < 0) return -1;
  st->tls_opts_type = (PyTypeObject *) PyType_FromModuleAndSpec(mod, &cymgpy_tls_opts_spec, NULL);
  if (st->tls_opts_type == NULL || PyModule_AddType(mod, st->tls_opts_type) < 0) return -1;
  if (cymgpy_mqtt_broker_types(mod, st) < 0) return -1;
  if (PyModule_AddFunctions(mod, cymgpy_util_methods) < 0) return -1;
  for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
    if (PyModule_AddIntConstant(mod, constants[i].name, constants[i].value) < 0) return -1;
  }
  if (PyModule_AddStringConstant(mod, "__version__", cymg_version()) < 0) return -1;
  return 0;
}

static int module_traverse(PyObject *mod, visitproc visit, void *arg) {
  cymgpy_state *st = PyModule_GetState(mod);
  if (st == NULL) return 0;
  Py_VISIT(st->manager_type);
  Py_VISIT(st->connection_type);
  Py_VISIT(st->timer_type);
  Py_VISIT(st->http_message_type);
  Py_VISIT(st->ws_message_type);
  Py_VISIT(st->mqtt_message_type);
  Py_VISIT(st->rpc_type);
  Py_VISIT(st->rpc_req_type);
  Py_VISIT(st->tls_opts_type);
  Py_VISIT(st->mqtt_broker_type);
  Py_VISIT(st->mqtt_bridge_type);
  Py_VISIT(st->mqtt_client_info_type);
  return 0;
}

static int module_clear(PyObject *mod) {
  cymgpy_state *st = PyModule_GetState(mod);
  if (st == NULL) return 0;
  Py_CLEAR(st->manager_type);
  Py_CLEAR(st->connection_type);
  Py_CLEAR(st->timer_type);
  Py_CLEAR(st->http_message_type);
  Py_CLEAR(st->ws_message_type);
  Py_CLEAR(st->mqtt_message_type);
  Py_CLEAR(st->rpc_type);
  Py_CLEAR(st->rpc_req_type);
  Py_CLEAR(st->tls_opts_type);
  Py_CLEAR(st->mqtt_broker_type);
  Py_CLEAR(st->mqtt_bridge_type);
  Py_CLEAR(st->mqtt_client_info_type);
  return 0;
}

static void module_free(void *mod) { module_clear(mod); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *) module_exec},
    {0, NULL},
};

PyModuleDef cymgpy_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cymongoose._cymg",
    .m_doc = "libcymg bindings: the event loop (Manager), connections, timers, HTTP, "
             "WebSocket, MQTT and utilities.",
    .m_size = sizeof(cymgpy_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__cymg(void);
PyMODINIT_FUNC PyInit__cymg(void) { return PyModuleDef_Init(&cymgpy_module); }
