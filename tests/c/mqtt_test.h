/* MQTT test helpers shared by test_mqtt.c and test_mqtt_broker.c: a recorder
 * of what an MQTT client connection saw, and short-hands to connect, subscribe
 * and publish. */
#ifndef CYMG_MQTT_TEST_H
#define CYMG_MQTT_TEST_H

#include "tls_test.h"

/* ---- what a connection saw ---- */

#define MAXMSG 16
typedef struct {
  bool opened, closed;
  int open_code, opens, errors;
  char err[256];
  int msgs;
  char topic[MAXMSG][64], data[MAXMSG][64];
  uint8_t qos[MAXMSG];
  bool retain[MAXMSG], dup[MAXMSG], userprop[MAXMSG];
  uint16_t id[MAXMSG];
  int cmds[16];
  bool take_session;
  cymg_mqtt_session *sess;
} rec;

static inline void copy_str(char *dst, size_t n, cymg_str s) {
  snprintf(dst, n, "%.*s", (int)s.len, s.buf);
}

static inline void record_msg(rec *r, const cymg_mqtt_msg *m) {
  if (r->msgs >= MAXMSG) return;
  int i = r->msgs++;
  copy_str(r->topic[i], sizeof(r->topic[i]), m->topic);
  copy_str(r->data[i], sizeof(r->data[i]), m->data);
  r->qos[i] = m->qos;
  r->retain[i] = m->retain;
  r->dup[i] = m->dup;
  r->id[i] = m->id;
  size_t ofs = 0;
  cymg_mqtt_prop p;
  while (cymg_mqtt_next_prop(m->props, &ofs, &p) == 1)
    if (p.id == CYMG_MQTT_PROP_USER_PROPERTY && p.key.len == 1 && p.key.buf[0] == 'k')
      r->userprop[i] = true;
}

static inline void rec_fn(cymg_conn *c, int ev, void *ev_data) {
  rec *r = cymg_conn_userdata(c);
  if (ev == CYMG_EV_MQTT_OPEN) {
    r->opened = true;
    r->opens++;
    r->open_code = *(const int *)ev_data;
  } else if (ev == CYMG_EV_MQTT_MSG) {
    record_msg(r, ev_data);
  } else if (ev == CYMG_EV_MQTT_CMD) {
    const cymg_mqtt_msg *m = ev_data;
    r->cmds[m->cmd & 15]++;
  } else if (ev == CYMG_EV_ERROR) {
    r->errors++;
    snprintf(r->err, sizeof(r->err), "%s", (const char *)ev_data);
  } else if (ev == CYMG_EV_CLOSE) {
    r->closed = true;
    if (r->take_session) assert_int_equal(cymg_mqtt_session_take(c, &r->sess), 0);
  }
}

static inline cymg_conn *client(cymg_mgr *mgr, const char *scheme, uint16_t port,
                                const cymg_mqtt_opts *o, rec *r) {
  char url[128];
  snprintf(url, sizeof(url), "%s://127.0.0.1:%u", scheme, port);
  cymg_conn *c = NULL;
  assert_int_equal(cymg_mqtt_connect(mgr, url, o, rec_fn, r, &c), 0);
  assert_true(cymg_conn_is_mqtt(c));
  return c;
}

static inline void wait_open(cymg_mgr *mgr, rec *r) {
  POLL_UNTIL(mgr, r->opened || r->closed);
  assert_true(r->opened);
  assert_int_equal(r->open_code, 0);
}

static inline int sub(cymg_conn *c, const char *filter, int qos) {
  int id = cymg_mqtt_sub(c, cymg_str_c(filter), qos, NULL, 0);
  assert_true(id > 0);
  return id;
}

static inline int pub(cymg_conn *c, const char *topic, const char *data, int qos, bool retain) {
  return cymg_mqtt_pub(c, cymg_str_c(topic), cymg_str_c(data), qos, retain, NULL, 0);
}

#endif
