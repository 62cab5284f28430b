/* The MQTT client against a real mosquitto (started here on free ports with
 * its own config: plain TCP and TLS listeners), 3.1.1 and 5.0; the client
 * against our parser-level listener; bad input to both.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include "mqtt_test.h"

static child broker;
static uint16_t port_tcp, port_tls;
static char broker_dir[1100];

static int start_broker(void **state) {
  if (tls_certs_setup(state) != 0) return -1;
  snprintf(broker_dir, sizeof(broker_dir), "%s", tls_dir);
  port_tcp = free_port();
  port_tls = free_port();
  while (port_tls == port_tcp) port_tls = free_port();
  char conf[1200];
  snprintf(conf, sizeof(conf), "%s/mosquitto-%d.conf", broker_dir, (int)getpid());
  FILE *f = fopen(conf, "w");
  if (f == NULL) return -1;
  fprintf(f,
          "user root\npersistence false\nallow_anonymous true\nlog_dest stdout\n"
          "listener %u 127.0.0.1\n"
          "listener %u 127.0.0.1\ncertfile %s\nkeyfile %s\n",
          port_tcp, port_tls, cert("server-ec.crt"), cert("server-ec.key"));
  fclose(f);
  char *argv[] = {"mosquitto", "-c", conf, NULL};
  child_start(&broker, "/usr/sbin/mosquitto", argv);
  cymg_mgr *mgr = new_mgr();
  wait_port(mgr, port_tcp);
  wait_port(mgr, port_tls);
  cymg_mgr_free(mgr);
  return 0;
}

static int stop_broker(void **state) {
  (void)state;
  kill(broker.pid, SIGTERM);
  int st;
  waitpid(broker.pid, &st, 0);
  close(broker.in);
  close(broker.out);
  return 0;
}

/* ---- against mosquitto ---- */

static void pubsub_qos(int version, const char *scheme, uint16_t port) {
  cymg_mgr *mgr = new_mgr();
  rec r = {0};
  cymg_mqtt_opts o = {.version = (uint8_t)version};
  cymg_conn *c = client(mgr, scheme, port, &o, &r);
  if (strcmp(scheme, "mqtts") == 0) {
    cymg_tls_opts t = {.ca = cymg_str_c(cert("ca.crt"))};
    assert_int_equal(cymg_tls_init(c, &t), 0);
  }
  wait_open(mgr, &r);
  assert_int_equal(cymg_mqtt_version(c), version);
  char topic[64];
  snprintf(topic, sizeof(topic), "q/%d/%s/%s", version, scheme,
           getenv("CYMG_BACKEND") ? getenv("CYMG_BACKEND") : "");
  char filter[80];
  snprintf(filter, sizeof(filter), "%s/#", topic);
  sub(c, filter, 2);
  POLL_UNTIL(mgr, r.cmds[CYMG_MQTT_CMD_SUBACK] == 1);
  char t[100];
  snprintf(t, sizeof(t), "%s/x", topic);
  assert_int_equal(pub(c, t, "zero", 0, false), 0);
  int id1 = pub(c, t, "one", 1, false);
  int id2 = pub(c, t, "two", 2, false);
  assert_true(id1 > 0 && id2 > 0 && id1 != id2 && id2 <= 65535);
  assert_int_equal(cymg_mqtt_inflight(c), 2);
  /* the broker's QoS 2 to us ends with its PUBREL */
  POLL_UNTIL(mgr, r.msgs == 3 && cymg_mqtt_inflight(c) == 0 && r.cmds[CYMG_MQTT_CMD_PUBREL] == 1);
  assert_string_equal(r.data[0], "zero");
  assert_string_equal(r.data[1], "one");
  assert_string_equal(r.data[2], "two");
  assert_string_equal(r.topic[2], t);
  assert_int_equal(r.qos[0], 0);
  assert_int_equal(r.qos[1], 1);
  assert_int_equal(r.qos[2], 2);
  assert_int_equal(r.cmds[CYMG_MQTT_CMD_PUBACK], 1);
  assert_int_equal(r.cmds[CYMG_MQTT_CMD_PUBCOMP], 1);
  assert_int_equal(r.cmds[CYMG_MQTT_CMD_PUBLISH], 3);
  if (version == CYMG_MQTT_V5) {
    cymg_mqtt_prop up = {
        .id = CYMG_MQTT_PROP_USER_PROPERTY, .key = cymg_str_c("k"), .val = cymg_str_c("v")};
    assert_true(cymg_mqtt_pub(c, cymg_str_c(t), cymg_str_c("props"), 1, false, &up, 1) > 0);
    POLL_UNTIL(mgr, r.msgs == 4);
    assert_true(r.userprop[3]);
  } else {
    cymg_mqtt_prop up = {.id = CYMG_MQTT_PROP_USER_PROPERTY};
    assert_int_equal(cymg_mqtt_pub(c, cymg_str_c(t), cymg_str_c("p"), 1, false, &up, 1),
                     CYMG_EINVAL);
  }
  assert_int_equal(pub(c, "bad/#", "x", 0, false), CYMG_EINVAL);
  assert_int_equal(pub(c, t, "x", 3, false), CYMG_EINVAL);
  int uid = cymg_mqtt_unsub(c, cymg_str_c(filter), NULL, 0);
  assert_true(uid > 0);
  POLL_UNTIL(mgr, r.cmds[CYMG_MQTT_CMD_UNSUBACK] == 1);
  assert_int_equal(cymg_mqtt_ping(c), 0);
  POLL_UNTIL(mgr, r.cmds[CYMG_MQTT_CMD_PINGRESP] == 1);
  assert_int_equal(cymg_mqtt_disconnect(c, 0, NULL, 0), 0);
  POLL_UNTIL(mgr, r.closed); /* the broker closes after DISCONNECT */
  assert_int_equal(r.errors, 0);
  assert_int_equal(r.opens, 1);
  close_all_and_free(mgr);
}

static void test_qos_311(void **state) {
  (void)state;
  pubsub_qos(CYMG_MQTT_V311, "mqtt", port_tcp);
}
static void test_qos_v5(void **state) {
  (void)state;
  pubsub_qos(CYMG_MQTT_V5, "mqtt", port_tcp);
}
static void test_qos_tls(void **state) {
  (void)state;
  pubsub_qos(CYMG_MQTT_V311, "mqtts", port_tls);
  pubsub_qos(CYMG_MQTT_V5, "mqtts", port_tls);
}

static void test_retained_and_will(void **state) {
  (void)state;
  cymg_mgr *mgr = new_mgr();
  const char *be = getenv("CYMG_BACKEND") ? getenv("CYMG_BACKEND") : "x";
  char rt[64], wt[64];
  snprintf(rt, sizeof(rt), "ret/%s", be);
  snprintf(wt, sizeof(wt), "will/%s", be);
  rec a = {0}, b = {0}, w = {0};
  cymg_conn *ca = client(mgr, "mqtt", port_tcp, NULL, &a);
  wait_open(mgr, &a);
  assert_true(pub(ca, rt, "kept", 1, true) > 0);
  POLL_UNTIL(mgr, cymg_mqtt_inflight(ca) == 0);
  /* a will: abrupt close of w is seen by b */
  cymg_mqtt_opts wo = {.will_topic = cymg_str_c(wt),
                       .will_payload = cymg_str_c("gone"),
                       .will_qos = 1,
                       .version = CYMG_MQTT_V5};
  cymg_conn *cw = client(mgr, "mqtt", port_tcp, &wo, &w);
  wait_open(mgr, &w);
  cymg_mqtt_opts bo = {.version = CYMG_MQTT_V5};
  cymg_conn *cb = client(mgr, "mqtt", port_tcp, &bo, &b);
  wait_open(mgr, &b);
  sub(cb, rt, 1);
  POLL_UNTIL(mgr, b.msgs == 1);
  assert_string_equal(b.data[0], "kept");
  assert_true(b.retain[0]);
  sub(cb, wt, 1);
  POLL_UNTIL(mgr, b.cmds[CYMG_MQTT_CMD_SUBACK] == 2);
  cymg_close(cw); /* no DISCONNECT: the broker sends the will */
  POLL_UNTIL(mgr, b.msgs == 2);
  assert_string_equal(b.topic[1], wt);
  assert_string_equal(b.data[1], "gone");
  assert_int_equal(b.qos[1], 1);
  /* clear the retained message: an empty retained payload */
  assert_true(pub(ca, rt, "", 1, true) > 0);
  POLL_UNTIL(mgr, cymg_mqtt_inflight(ca) == 0);
  assert_int_equal(a.errors + b.errors + w.errors, 0);
  close_all_and_free(mgr);
}

static void test_keepalive(void **state) {
  (void)state;
  cymg_mgr *mgr = new_mgr();
  rec r = {0};
  cymg_mqtt_opts o = {.keepalive = 1};
  client(mgr, "mqtt", port_tcp, &o, &r);
  wait_open(mgr, &r);
  POLL_UNTIL(mgr, r.cmds[CYMG_MQTT_CMD_PINGRESP] >= 2); /* sent by the layer itself */
  assert_int_equal(r.errors, 0);
  close_all_and_free(mgr);
}

static void persistent_with(int version) {
  cymg_mgr *mgr = new_mgr();
  char id[64], t[100];
  snprintf(id, sizeof(id), "cymg-persist-%d-%s-%d", version,
           getenv("CYMG_BACKEND") ? getenv("CYMG_BACKEND") : "", (int)getpid());
  snprintf(t, sizeof(t), "sess/%s", id);
  rec p = {0}, q = {0};
  /* 5.0: clean start off is not enough, the session must also outlive the
   * connection (Session Expiry Interval) */
  cymg_mqtt_opts po = {.client_id = cymg_str_c(id),
                       .persistent = true,
                       .version = (uint8_t)version,
                       .session_expiry = version == CYMG_MQTT_V5 ? 60 : 0};
  cymg_conn *cp = client(mgr, "mqtt", port_tcp, &po, &p);
  wait_open(mgr, &p);
  sub(cp, t, 1);
  POLL_UNTIL(mgr, p.cmds[CYMG_MQTT_CMD_SUBACK] == 1);
  assert_int_equal(cymg_mqtt_disconnect(cp, 0, NULL, 0), 0);
  POLL_UNTIL(mgr, p.closed);
  /* published while the subscriber is away: queued by the broker */
  cymg_conn *cq = client(mgr, "mqtt", port_tcp, NULL, &q);
  wait_open(mgr, &q);
  assert_true(pub(cq, t, "queued", 1, false) > 0);
  POLL_UNTIL(mgr, cymg_mqtt_inflight(cq) == 0);
  rec p2 = {0};
  client(mgr, "mqtt", port_tcp, &po, &p2);
  POLL_UNTIL(mgr, p2.msgs == 1);
  assert_string_equal(p2.data[0], "queued");
  assert_int_equal(p2.cmds[CYMG_MQTT_CMD_SUBSCRIBE], 0);
  /* a clean session afterwards drops the subscription for good */
  close_all_and_free(mgr);
  mgr = new_mgr();
  rec p3 = {0};
  cymg_mqtt_opts clean = {.client_id = cymg_str_c(id), .version = (uint8_t)version};
  client(mgr, "mqtt", port_tcp, &clean, &p3);
  wait_open(mgr, &p3);
  close_all_and_free(mgr);
}

static void test_persistent_session(void **state) {
  (void)state;
  persistent_with(CYMG_MQTT_V311);
  persistent_with(CYMG_MQTT_V5);
}

/* ---- against our parser-level listener ---- */

typedef struct {
  rec r;
  int connects, subs, pings, publishes;
  bool session_present;
  char client_id[64], username[64], will_topic[64];
  uint8_t version, will_qos;
  uint16_t keepalive;
  int filters;
  uint8_t filter_qos[4];
  bool echo;
} server;

static void server_fn(cymg_conn *c, int ev, void *ev_data) {
  server *s = cymg_conn_userdata(c);
  if (cymg_conn_is_listening(c)) return;
  rec_fn(c, ev, ev_data);
  if (ev != CYMG_EV_MQTT_CMD) return;
  const cymg_mqtt_msg *m = ev_data;
  if (m->cmd == CYMG_MQTT_CMD_CONNECT) {
    s->connects++;
    copy_str(s->client_id, sizeof(s->client_id), m->connect.client_id);
    copy_str(s->username, sizeof(s->username), m->connect.username);
    copy_str(s->will_topic, sizeof(s->will_topic), m->connect.will_topic);
    s->version = m->version;
    s->will_qos = m->connect.will_qos;
    s->keepalive = m->connect.keepalive;
    assert_int_equal(cymg_mqtt_connack(c, s->session_present, 0, NULL, 0), 0);
  } else if (m->cmd == CYMG_MQTT_CMD_SUBSCRIBE) {
    s->subs++;
    size_t ofs = 0;
    cymg_str f;
    uint8_t opts, codes[4];
    size_t n = 0;
    while (cymg_mqtt_next_filter(m, &ofs, &f, &opts) == 1 && n < 4) {
      s->filter_qos[n] = opts & 3;
      codes[n++] = opts & 3;
    }
    s->filters = (int)n;
    assert_int_equal(cymg_mqtt_suback(c, m->id, codes, n, NULL, 0), 0);
  } else if (m->cmd == CYMG_MQTT_CMD_UNSUBSCRIBE) {
    uint8_t ok = 0;
    assert_int_equal(cymg_mqtt_unsuback(c, m->id, &ok, 1, NULL, 0), 0);
  } else if (m->cmd == CYMG_MQTT_CMD_PINGREQ) {
    s->pings++;
    assert_int_equal(cymg_mqtt_pingresp(c), 0);
  } else if (m->cmd == CYMG_MQTT_CMD_PUBLISH) {
    s->publishes++;
    if (s->echo) {
      int rc = cymg_mqtt_pub(c, m->topic, m->data, m->qos, false, NULL, 0);
      assert_true(m->qos ? rc > 0 : rc == 0);
    }
  }
}

static cymg_conn *our_listener(cymg_mgr *mgr, server *s, uint16_t *port) {
  cymg_conn *l = NULL;
  assert_int_equal(cymg_mqtt_listen(mgr, "mqtt://127.0.0.1:0", server_fn, s, &l), 0);
  assert_true(cymg_conn_is_mqtt(l));
  /* every send call on a listener does nothing */
  assert_int_equal(pub(l, "a", "b", 1, false), 0);
  assert_int_equal(cymg_mqtt_ping(l), 0);
  *port = cymg_conn_local(l)->port;
  return l;
}

static void listener_with(int version) {
  cymg_mgr *mgr = new_mgr();
  server s = {.echo = true};
  uint16_t port;
  our_listener(mgr, &s, &port);
  rec r = {0};
  cymg_mqtt_opts o = {.version = (uint8_t)version,
                      .username = cymg_str_c("user"),
                      .password = cymg_str_c("pw"),
                      .will_topic = cymg_str_c("w"),
                      .will_payload = cymg_str_c("x"),
                      .will_qos = 2,
                      .keepalive = 30};
  cymg_conn *c = client(mgr, "mqtt", port, &o, &r);
  wait_open(mgr, &r);
  assert_int_equal(s.connects, 1);
  assert_int_equal(s.version, version);
  assert_string_equal(s.username, "user");
  assert_string_equal(s.will_topic, "w");
  assert_int_equal(s.will_qos, 2);
  assert_int_equal(s.keepalive, 30);
  assert_int_equal(strncmp(s.client_id, "cymg-", 5), 0); /* a random id */
  assert_int_equal(strlen(s.client_id), 5 + 16);
  sub(c, "e/+", 1);
  POLL_UNTIL(mgr, r.cmds[CYMG_MQTT_CMD_SUBACK] == 1);
  assert_int_equal(s.filters, 1);
  assert_int_equal(s.filter_qos[0], 1);
  pub(c, "e/1", "a", 0, false);
  pub(c, "e/2", "b", 1, false);
  pub(c, "e/3", "c", 2, false);
  /* echoes come back with the same QoS; both QoS flows complete both ways */
  POLL_UNTIL(mgr,
             r.msgs == 3 && cymg_mqtt_inflight(c) == 0 && s.r.cmds[CYMG_MQTT_CMD_PUBCOMP] == 1);
  assert_int_equal(s.r.msgs, 3);
  assert_string_equal(r.data[2], "c");
  assert_int_equal(r.qos[2], 2);
  assert_int_equal(cymg_mqtt_unsub(c, cymg_str_c("e/+"), NULL, 0) > 0, 1);
  POLL_UNTIL(mgr, r.cmds[CYMG_MQTT_CMD_UNSUBACK] == 1);
  assert_int_equal(cymg_mqtt_ping(c), 0);
  POLL_UNTIL(mgr, r.cmds[CYMG_MQTT_CMD_PINGRESP] == 1);
  assert_int_equal(r.errors + s.r.errors, 0);
  close_all_and_free(mgr);
}

static void test_listener_311(void **state) {
  (void)state;
  listener_with(CYMG_MQTT_V311);
}
static void test_listener_v5(void **state) {
  (void)state;
  listener_with(CYMG_MQTT_V5);
}

/* Real clients against our listener: mosquitto_pub (3.1.1 and 5.0, TCP and
 * TLS) gets its CONNACK and PUBACK from the program's handler and the layer,
 * and exits 0 only when its QoS 1 message was acknowledged. */
static void listener_real_client(const char *version, bool tls) {
  cymg_mgr *mgr = new_mgr();
  server s = {0};
  cymg_conn *l = NULL;
  assert_int_equal(
      cymg_mqtt_listen(mgr, tls ? "mqtts://127.0.0.1:0" : "mqtt://127.0.0.1:0", server_fn, &s, &l),
      0);
  if (tls) {
    cymg_tls_opts so = {.cert = cymg_str_c(cert("server-ec.crt")),
                        .key = cymg_str_c(cert("server-ec.key"))};
    assert_int_equal(cymg_tls_init(l, &so), 0);
  }
  char port[16];
  snprintf(port, sizeof(port), "%u", cymg_conn_local(l)->port);
  char *argv[] = {"mosquitto_pub",
                  "-h",
                  "127.0.0.1",
                  "-p",
                  port,
                  "-V",
                  (char *)version,
                  "-t",
                  "from/real",
                  "-m",
                  "hello",
                  "-q",
                  "1",
                  "-i",
                  "realpub",
                  tls ? "--cafile" : NULL,
                  (char *)cert("ca.crt"),
                  NULL};
  child ch;
  child_start(&ch, "/usr/bin/mosquitto_pub", argv);
  POLL_UNTIL(mgr, s.r.msgs == 1 && s.r.cmds[CYMG_MQTT_CMD_DISCONNECT] == 1);
  assert_int_equal(child_end(mgr, &ch, false), 0);
  assert_string_equal(s.r.topic[0], "from/real");
  assert_string_equal(s.r.data[0], "hello");
  assert_int_equal(s.r.qos[0], 1);
  assert_string_equal(s.client_id, "realpub");
  assert_int_equal(s.version, strcmp(version, "mqttv5") == 0 ? 5 : 4);
  assert_int_equal(s.r.errors, 0);
  close_all_and_free(mgr);
}

static void test_listener_real_clients(void **state) {
  (void)state;
  listener_real_client("mqttv311", false);
  listener_real_client("mqttv5", false);
  listener_real_client("mqttv311", true);
  listener_real_client("mqttv5", true);
}

/* Sends nothing by itself: a client gets no CONNACK, and its keep-alive fails. */
static void test_listener_silent_keepalive_timeout(void **state) {
  (void)state;
  cymg_mgr *mgr = new_mgr();
  server s = {0};
  cymg_conn *l = NULL;
  assert_int_equal(cymg_mqtt_listen(mgr, "mqtt://127.0.0.1:0", rec_fn, &s.r, &l), 0);
  rec r = {0};
  cymg_mqtt_opts o = {.keepalive = 1};
  client(mgr, "mqtt", cymg_conn_local(l)->port, &o, &r);
  POLL_UNTIL(mgr, r.closed);
  assert_false(r.opened);
  assert_int_equal(r.errors, 1);
  assert_non_null(strstr(r.err, "keep-alive timeout"));
  assert_int_equal(s.r.cmds[CYMG_MQTT_CMD_CONNECT], 1);
  assert_true(s.r.cmds[CYMG_MQTT_CMD_PINGREQ] >= 1);
  close_all_and_free(mgr);
}

/* QoS 1 and 2 not acknowledged on one connection are resent with DUP on the
 * next, when the server says it kept the session. */
static void test_session_resend(void **state) {
  (void)state;
  cymg_mgr *mgr = new_mgr();
  server s = {0};
  uint16_t port;
  cymg_conn *l = our_listener(mgr, &s, &port);
  (void)l;
  cymg_conn *raw = NULL;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", NULL, NULL, &raw), 0);
  rec r = {.take_session = true};
  cymg_mqtt_opts o = {.persistent = true, .client_id = cymg_str_c("resend")};
  cymg_conn *c = client(mgr, "mqtt", cymg_conn_local(raw)->port, &o, &r);
  int id1 = pub(c, "s/1", "one", 1, false);
  int id2 = pub(c, "s/2", "two", 2, false);
  assert_true(id1 > 0 && id2 > 0);
  POLL_UNTIL(mgr, cymg_conn_send_len(c) == 0);
  cymg_close(c);
  POLL_UNTIL(mgr, r.closed);
  assert_non_null(r.sess);
  assert_int_equal(cymg_mqtt_session_pending(r.sess), 2);
  s.session_present = true;
  rec r2 = {0};
  o.session = r.sess;
  cymg_conn *c2 = client(mgr, "mqtt", port, &o, &r2);
  POLL_UNTIL(mgr, s.r.msgs == 2 && cymg_mqtt_inflight(c2) == 0);
  assert_true(s.r.dup[0] && s.r.dup[1]);
  assert_int_equal(s.r.id[0], id1);
  assert_int_equal(s.r.id[1], id2);
  assert_string_equal(s.r.data[1], "two");
  /* new ids never collide with ones in flight */
  int id3 = pub(c2, "s/3", "three", 1, false);
  assert_true(id3 > 0 && id3 != id1 && id3 != id2);
  POLL_UNTIL(mgr, s.r.msgs == 3);
  assert_false(s.r.dup[2]);
  close_all_and_free(mgr);
}

/* ---- over WebSocket, against a WebSocket server speaking MQTT with the codec ---- */

typedef struct {
  int connects, pubs, acks_sent;
  bool text_sent, protocol_ok;
} wsbroker;

static void wsb_fn(cymg_conn *c, int ev, void *ev_data) {
  wsbroker *b = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_MSG) {
    cymg_str proto;
    b->protocol_ok = cymg_ws_select_protocol(ev_data, "mqtt", &proto) == 0;
    assert_int_equal(cymg_ws_upgrade(c, ev_data, "Sec-WebSocket-Protocol: mqtt\r\n"), 0);
  } else if (ev == CYMG_EV_WS_MSG) {
    const cymg_ws_msg *wm = ev_data;
    /* what the client queued before the upgrade arrives in one message */
    for (size_t off = 0; off < wm->data.len;) {
      cymg_mqtt_msg m;
      int n = cymg_mqtt_parse(wm->data.buf + off, wm->data.len - off, 4, 0, &m, NULL);
      assert_true(n > 0);
      off += (size_t)n;
      if (m.cmd == CYMG_MQTT_CMD_CONNECT) {
        b->connects++;
        /* CONNACK and a PUBLISH, split across two messages mid-packet */
        static const uint8_t a[] = {0x20, 2, 0, 0, 0x30, 6, 0};
        static const uint8_t z[] = {1, 't', 'h', 'e', 'y'};
        assert_int_equal(cymg_ws_send(c, a, sizeof(a), CYMG_WS_OP_BINARY), 0);
        assert_int_equal(cymg_ws_send(c, z, sizeof(z), CYMG_WS_OP_BINARY), 0);
      } else if (m.cmd == CYMG_MQTT_CMD_PUBLISH) {
        b->pubs++;
        uint8_t ack[] = {0x40, 2, (uint8_t)(m.id >> 8), (uint8_t)m.id};
        assert_int_equal(cymg_ws_send(c, ack, sizeof(ack), CYMG_WS_OP_BINARY), 0);
        b->acks_sent++;
      } else if (m.cmd == CYMG_MQTT_CMD_PINGREQ) {
        b->text_sent = true;
        assert_int_equal(cymg_ws_send(c, "hi", 2, CYMG_WS_OP_TEXT), 0);
      }
    }
  }
}

static void over_websocket(bool tls) {
  cymg_mgr *mgr = new_mgr();
  wsbroker b = {0};
  cymg_conn *l = NULL;
  assert_int_equal(
      cymg_ws_listen(mgr, tls ? "wss://127.0.0.1:0" : "ws://127.0.0.1:0", wsb_fn, &b, &l), 0);
  if (tls) {
    cymg_tls_opts so = {.cert = cymg_str_c(cert("server-ec.crt")),
                        .key = cymg_str_c(cert("server-ec.key"))};
    assert_int_equal(cymg_tls_init(l, &so), 0);
  }
  char url[96];
  char a[64];
  assert_true(cymg_addr_str(cymg_conn_local(l), true, a, sizeof(a)) > 0);
  snprintf(url, sizeof(url), "%s://%s/mqtt", tls ? "wss" : "ws", a);
  rec r = {0};
  cymg_conn *c = NULL;
  assert_int_equal(cymg_mqtt_connect(mgr, url, NULL, rec_fn, &r, &c), 0);
  assert_true(cymg_conn_is_mqtt(c) && cymg_conn_is_ws(c));
  if (tls) {
    cymg_tls_opts co = {.ca = cymg_str_c(cert("ca.crt"))};
    assert_int_equal(cymg_tls_init(c, &co), 0);
  }
  int id = pub(c, "w/1", "early", 1, false); /* before the upgrade: waits for it */
  assert_true(id > 0);
  POLL_UNTIL(mgr, r.opened && r.msgs == 1 && b.acks_sent == 1 && cymg_mqtt_inflight(c) == 0);
  assert_true(b.protocol_ok);
  assert_int_equal(cymg_conn_is_tls(c), tls);
  assert_int_equal(r.open_code, 0);
  assert_string_equal(r.topic[0], "t");
  assert_string_equal(r.data[0], "hey");
  assert_int_equal(b.connects, 1);
  assert_int_equal(cymg_mqtt_ping(c), 0);
  POLL_UNTIL(mgr, r.closed);
  assert_true(b.text_sent);
  assert_int_equal(r.errors, 1);
  assert_non_null(strstr(r.err, "text WebSocket message"));
  close_all_and_free(mgr);
}

static void test_over_websocket(void **state) {
  (void)state;
  over_websocket(false);
  over_websocket(true);
}

/* ---- bad input ---- */

static const uint8_t connect311[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'a'};

static void test_listener_bad_input(void **state) {
  (void)state;
  struct {
    const char *what, *expect;
    uint8_t bytes[32];
    size_t len;
    bool after_connect;
  } t[] = {
      {"bad remaining length", "remaining length", {0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, 6, true},
      {"invalid UTF-8", "UTF-8", {0x30, 5, 0, 3, 'a', 0xc0, 0x80}, 7, true},
      {"wildcard in PUBLISH", "wildcard", {0x30, 5, 0, 3, 'a', '/', '#'}, 7, true},
      {"unknown type", "reserved packet type", {0x00, 0}, 2, true},
      {"CONNECT twice", "second CONNECT", {0}, 0, true},
      {"oversize", "larger than the maximum", {0x30, 0xff, 0xff, 0xff, 0x7f}, 5, true},
      {"PUBLISH before CONNECT", "first packet is not CONNECT", {0x30, 3, 0, 1, 't'}, 5, false},
  };
  cymg_mgr *mgr = new_mgr();
  server s = {0};
  uint16_t port;
  our_listener(mgr, &s, &port);
  /* a good client that must stay untouched */
  rec good = {0};
  cymg_conn *g = client(mgr, "mqtt", port, NULL, &good);
  wait_open(mgr, &good);
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    int before = s.r.errors;
    int fd = raw_connect(port);
    if (t[i].after_connect)
      assert_int_equal(write(fd, connect311, sizeof(connect311)), (ssize_t)sizeof(connect311));
    if (t[i].len)
      assert_int_equal(write(fd, t[i].bytes, t[i].len), (ssize_t)t[i].len);
    else
      assert_int_equal(write(fd, connect311, sizeof(connect311)), (ssize_t)sizeof(connect311));
    POLL_UNTIL(mgr, s.r.errors == before + 1);
    if (strstr(s.r.err, t[i].expect) == NULL) fail_msg("%s: got '%s'", t[i].what, s.r.err);
    /* the server ends the connection */
    char b[64];
    uint64_t start = cymg_mgr_now(mgr);
    for (;;) {
      cymg_mgr_poll(mgr, 10);
      ssize_t k = recv(fd, b, sizeof(b), MSG_DONTWAIT);
      if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;
      if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("%s: not closed", t[i].what);
    }
    close(fd);
    int pings = good.cmds[CYMG_MQTT_CMD_PINGRESP];
    assert_int_equal(cymg_mqtt_ping(g), 0);
    POLL_UNTIL(mgr, good.cmds[CYMG_MQTT_CMD_PINGRESP] == pings + 1);
  }
  assert_int_equal(good.errors, 0);
  close_all_and_free(mgr);
}

/* A "broker" that answers with bad bytes: the client fails with the reason. */
static const uint8_t *bad_reply;
static size_t bad_reply_len;

static void bad_broker_fn(cymg_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CYMG_EV_READ && !cymg_conn_is_listening(c)) {
    cymg_conn_consume(c, cymg_conn_recv_len(c));
    assert_int_equal(cymg_send(c, bad_reply, bad_reply_len), 0);
  }
}

static void test_client_bad_input(void **state) {
  (void)state;
  struct {
    const char *expect;
    uint8_t bytes[16];
    size_t len;
  } t[] = {
      {"first packet is not CONNACK", {0x30, 3, 0, 1, 't'}, 5},
      {"CONNACK reserved flags", {0x20, 2, 0x80, 0}, 4},
      {"remaining length", {0x20, 0xff, 0xff, 0xff, 0xff, 1}, 6},
      {"wildcard", {0x20, 2, 0, 0, 0x30, 4, 0, 2, 'a', '+'}, 10},
      {"not allowed in this direction", {0x20, 2, 0, 0, 0x82, 6, 0, 1, 0, 1, 'a', 0}, 12},
      {"second CONNACK", {0x20, 2, 0, 0, 0x20, 2, 0, 0}, 8},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    cymg_mgr *mgr = new_mgr();
    cymg_conn *l = NULL;
    bad_reply = t[i].bytes;
    bad_reply_len = t[i].len;
    assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", bad_broker_fn, NULL, &l), 0);
    rec r = {0};
    client(mgr, "mqtt", cymg_conn_local(l)->port, NULL, &r);
    POLL_UNTIL(mgr, r.closed);
    assert_int_equal(r.errors, 1);
    if (strstr(r.err, t[i].expect) == NULL) fail_msg("vector %zu: got '%s'", i, r.err);
    close_all_and_free(mgr);
  }
  /* a refused CONNACK: OPEN with the code, then the connection closes */
  cymg_mgr *mgr = new_mgr();
  cymg_conn *l = NULL;
  static const uint8_t refused[] = {0x20, 2, 0, 5};
  bad_reply = refused;
  bad_reply_len = sizeof(refused);
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", bad_broker_fn, NULL, &l), 0);
  rec r = {0};
  client(mgr, "mqtt", cymg_conn_local(l)->port, NULL, &r);
  POLL_UNTIL(mgr, r.closed);
  assert_true(r.opened);
  assert_int_equal(r.open_code, 5);
  close_all_and_free(mgr);
}

static void test_api_errors(void **state) {
  (void)state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *c = NULL;
  assert_int_equal(cymg_mqtt_connect(mgr, "http://127.0.0.1:1", NULL, rec_fn, NULL, &c),
                   CYMG_ESCHEME);
  assert_null(c);
  cymg_mqtt_opts bad = {.version = 3};
  assert_int_equal(cymg_mqtt_connect(mgr, "mqtt://127.0.0.1:1", &bad, rec_fn, NULL, &c),
                   CYMG_EINVAL);
  cymg_mqtt_opts badwill = {.will_topic = cymg_str_c("a/#")};
  assert_int_equal(cymg_mqtt_connect(mgr, "mqtt://127.0.0.1:1", &badwill, rec_fn, NULL, &c),
                   CYMG_EINVAL);
  cymg_conn *t = NULL;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", NULL, NULL, &t), 0);
  /* the inflight window: a silent peer, two unacknowledged messages at most */
  rec r = {0};
  cymg_mqtt_opts two = {.inflight = 2};
  cymg_conn *w = client(mgr, "mqtt", cymg_conn_local(t)->port, &two, &r);
  assert_true(pub(w, "a", "1", 1, false) > 0);
  assert_true(pub(w, "a", "2", 2, false) > 0);
  assert_int_equal(pub(w, "a", "3", 1, false), CYMG_ELIMIT);
  assert_int_equal(pub(w, "a", "4", 0, false), 0); /* QoS 0 is not windowed */
  assert_int_equal(cymg_mqtt_inflight(w), 2);
  cymg_close(w);
  assert_int_equal(pub(w, "a", "5", 0, false), CYMG_ECLOSED);
  assert_false(cymg_conn_is_mqtt(t));
  assert_int_equal(pub(t, "a", "b", 0, false), CYMG_ESTATE);
  cymg_mqtt_session *s = NULL;
  assert_int_equal(cymg_mqtt_session_take(t, &s), CYMG_ESTATE);
  cymg_mqtt_session_free(NULL);
  close_all_and_free(mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qos_311),
      cmocka_unit_test(test_qos_v5),
      cmocka_unit_test(test_qos_tls),
      cmocka_unit_test(test_retained_and_will),
      cmocka_unit_test(test_keepalive),
      cmocka_unit_test(test_persistent_session),
      cmocka_unit_test(test_listener_311),
      cmocka_unit_test(test_listener_v5),
      cmocka_unit_test(test_listener_real_clients),
      cmocka_unit_test(test_listener_silent_keepalive_timeout),
      cmocka_unit_test(test_session_resend),
      cmocka_unit_test(test_over_websocket),
      cmocka_unit_test(test_listener_bad_input),
      cmocka_unit_test(test_client_bad_input),
      cmocka_unit_test(test_api_errors),
  };
  return cmocka_run_group_tests(tests, start_broker, stop_broker);
}
