/* What mqtt_broker.c (MqttBroker) and mqtt_bridge.c (MqttBridge) share. */
#ifndef CYMGPY_MQTT_BROKER_H
#define CYMGPY_MQTT_BROKER_H

#include "cymg_py.h"

typedef struct {
  PyObject_HEAD
  cymgpy_manager *mgr; /* strong while open, NULL once closed */
  cymg_mqtt_broker *b; /* NULL once closed */
  PyObject *auth, *acl, *handler; /* or NULL */
  PyObject *watches;   /* dict id -> (broker, callback): the tuple is the C data */
  PyObject *listeners; /* list of the listener Connections */
  PyObject *conns;     /* dict conn id -> Connection, for the handler */
  PyObject *bridges;   /* list of open MqttBridges */
  PyObject *weakreflist;
  int busy; /* Python callbacks running from inside broker code */
} cymgpy_mqtt_broker;

typedef struct {
  PyObject_HEAD
  cymgpy_mqtt_broker *broker; /* strong while open */
  cymg_mqtt_bridge *br;       /* NULL once closed (or freed with its broker) */
  PyObject *keep;             /* what the C options point into */
  cymg_mqtt_bridge_topic *topics;
  cymg_tls_opts tls;
  PyObject *url;
} cymgpy_mqtt_bridge;

/* The module state of an open broker's manager. */
cymgpy_state *cymgpy_broker_state(cymgpy_mqtt_broker *self);
/* The open C broker, or NULL with RuntimeError "closed". */
cymg_mqtt_broker *cymgpy_broker_live(cymgpy_mqtt_broker *self);
/* MqttBroker.bridge() (the call lock held). */
PyObject *cymgpy_broker_bridge(cymgpy_mqtt_broker *self, PyObject *args, PyObject *kwargs);
/* Drops a bridge from its broker's list (its C bridge already freed or taken). */
void cymgpy_bridge_detach(cymgpy_mqtt_bridge *br);
extern PyType_Spec cymgpy_mqtt_bridge_spec;

#endif
