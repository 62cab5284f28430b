/* Short-hands over mqtt_test.h for the bridge and persistence tests: a client
 * connection with its recorder, connected and waited for in one call, and
 * questions about what it got. */
#ifndef CYMG_MQTT_CLI_TEST_H
#define CYMG_MQTT_CLI_TEST_H

#include "mqtt_test.h"

#include "cymg/mqtt_broker.h"

typedef struct {
  rec r; /* first: rec_fn finds it through the user pointer */
  cymg_conn *c;
  bool session_present;
} cli;

static inline void cli_fn(cymg_conn *c, int ev, void *ev_data) {
  cli *k = cymg_conn_userdata(c);
  if (ev == CYMG_EV_MQTT_CMD && ((const cymg_mqtt_msg *)ev_data)->cmd == CYMG_MQTT_CMD_CONNACK)
    k->session_present = ((const cymg_mqtt_msg *)ev_data)->session_present;
  rec_fn(c, ev, ev_data);
  if (ev == CYMG_EV_CLOSE) k->c = NULL;
}

/* Connects k to port (our broker or mosquitto) and waits for an accepting
 * CONNACK. */
static inline void cli_connect(cymg_mgr *mgr, cli *k, uint16_t port, const cymg_mqtt_opts *o) {
  memset(k, 0, sizeof(*k));
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", port);
  assert_int_equal(cymg_mqtt_connect(mgr, url, o, cli_fn, k, &k->c), 0);
  wait_open(mgr, &k->r);
}

static inline void cli_open(cymg_mgr *mgr, cli *k, uint16_t port, int version) {
  cymg_mqtt_opts o = {.version = (uint8_t)version};
  cli_connect(mgr, k, port, &o);
}

/* A client with a persistent session under a fixed id. */
static inline void cli_open_persistent(cymg_mgr *mgr, cli *k, uint16_t port, int version,
                                       const char *id) {
  cymg_mqtt_opts o = {.version = (uint8_t)version,
                      .persistent = true,
                      .client_id = cymg_str_c(id),
                      .session_expiry = version == CYMG_MQTT_V5 ? 3600 : 0};
  cli_connect(mgr, k, port, &o);
}

/* Subscribes and waits for the SUBACK. */
static inline void cli_sub(cymg_mgr *mgr, cli *k, const char *filter, int qos) {
  int before = k->r.cmds[CYMG_MQTT_CMD_SUBACK];
  assert_true(sub(k->c, filter, qos) > 0);
  POLL_UNTIL(mgr, k->r.cmds[CYMG_MQTT_CMD_SUBACK] > before);
}

static inline void cli_pub(cli *k, const char *topic, const char *data, int qos, bool retain) {
  assert_true(pub(k->c, topic, data, qos, retain) >= 0);
}

/* QoS 1 and 2 flows the client saw completed. */
static inline int cli_acks(const cli *k) {
  return k->r.cmds[CYMG_MQTT_CMD_PUBACK] + k->r.cmds[CYMG_MQTT_CMD_PUBCOMP];
}

/* How many messages on topic k got; the index of the first in *at. */
static inline int got(const cli *k, const char *topic, int *at) {
  int n = 0;
  for (int i = 0; i < k->r.msgs; i++)
    if (strcmp(k->r.topic[i], topic) == 0 && n++ == 0 && at) *at = i;
  return n;
}

static inline void wait_got(cymg_mgr *mgr, const cli *k, const char *topic) {
  POLL_UNTIL(mgr, got(k, topic, NULL) > 0);
}

static inline void cli_close(cymg_mgr *mgr, cli *k) {
  if (k->c) cymg_close(k->c);
  POLL_UNTIL(mgr, k->r.closed);
}

/* Frees a broker (its bridges with it) and lets the closes run. */
static inline void broker_free_settle(cymg_mgr *mgr, cymg_mqtt_broker *b) {
  cymg_mqtt_broker_free(b);
  for (int i = 0; i < 20 && cymg_mgr_count(mgr) > 0; i++) cymg_mgr_poll(mgr, 10);
}

#endif
