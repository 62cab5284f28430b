/* The bridge (src/mqtt/bridge.c) between our broker and a real mosquitto
 * upstream (started here on free ports with its own config): both directions
 * with QoS 0/1/2 and retained messages, no loops with BOTH (5.0 and 3.1.1),
 * the upstream killed and restarted, TLS upstream, bad options, unreachable
 * and refusing upstreams. CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include "mqtt_cli_test.h"

static child mosq;
static uint16_t up_port, up_tls_port, up_auth_port;
static char conf[1200];

static void mosq_start(void) {
  char *argv[] = {"mosquitto", "-c", conf, NULL};
  child_start(&mosq, "/usr/sbin/mosquitto", argv);
  cymg_mgr *mgr = new_mgr();
  wait_port(mgr, up_port);
  wait_port(mgr, up_tls_port);
  wait_port(mgr, up_auth_port);
  cymg_mgr_free(mgr);
}

static void mosq_stop(int sig) {
  kill(mosq.pid, sig);
  kill(mosq.pid, SIGCONT); /* a stopped one (test_inflight_republished) must see it */
  int st;
  waitpid(mosq.pid, &st, 0);
  close(mosq.in);
  close(mosq.out);
}

static int setup(void **state) {
  if (tls_certs_setup(state) != 0) return -1;
  up_port = free_port();
  do up_tls_port = free_port();
  while (up_tls_port == up_port);
  do up_auth_port = free_port();
  while (up_auth_port == up_port || up_auth_port == up_tls_port);
  snprintf(conf, sizeof(conf), "%s/mosquitto-bridge-%d.conf", tls_dir, (int)getpid());
  FILE *f = fopen(conf, "w");
  if (f == NULL) return -1;
  /* No logging: nobody reads the pipe, and a full pipe would stall it. The
   * third listener refuses anonymous clients (CONNACK "not authorized"). */
  fprintf(f,
          "user root\npersistence false\nlog_dest none\nper_listener_settings true\n"
          "listener %u 127.0.0.1\nallow_anonymous true\n"
          "listener %u 127.0.0.1\nallow_anonymous true\ncertfile %s\nkeyfile %s\n"
          "listener %u 127.0.0.1\nallow_anonymous false\n",
          up_port, up_tls_port, cert("server-ec.crt"), cert("server-ec.key"), up_auth_port);
  fclose(f);
  mosq_start();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mosq_stop(SIGTERM);
  unlink(conf);
  return 0;
}

/* ---- log lines, to see failures reported ---- */

static char logged[1 << 14];
static size_t logged_len;
static void log_sink(int level, const char *line, size_t len, void *arg) {
  (void)level;
  (void)arg;
  if (logged_len + len + 2 > sizeof(logged)) logged_len = 0; /* keep the newest */
  memcpy(logged + logged_len, line, len);
  logged_len += len;
  logged[logged_len++] = '\n';
  logged[logged_len] = '\0';
}

static int count_logged(const char *needle) {
  int n = 0;
  for (const char *p = logged; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

/* ---- our broker with a bridge ---- */

typedef struct {
  cymg_mgr *mgr;
  cymg_mqtt_broker *b;
  uint16_t port;
  cymg_mqtt_bridge *br;
} local;

static void local_start(local *l) {
  l->mgr = new_mgr();
  assert_int_equal(cymg_mqtt_broker_new(l->mgr, NULL, &l->b), 0);
  cymg_conn *lsn = NULL;
  assert_int_equal(cymg_mqtt_broker_listen(l->b, "mqtt://127.0.0.1:0", &lsn), 0);
  l->port = cymg_conn_local(lsn)->port;
}

static void bridge_up(local *l, const char *scheme, uint16_t port, int version,
                      const cymg_mqtt_bridge_topic *t, size_t n) {
  char url[64];
  snprintf(url, sizeof(url), "%s://127.0.0.1:%u", scheme, port);
  cymg_tls_opts tls = {.ca = cymg_str_c(cert("ca.crt"))};
  cymg_mqtt_bridge_opts o = {.url = url,
                             .topics = t,
                             .num_topics = n,
                             .client = {.version = (uint8_t)version, .persistent = true},
                             .tls = &tls,
                             .backoff_min_ms = 50,
                             .backoff_max_ms = 400};
  assert_int_equal(cymg_mqtt_bridge_new(l->b, &o, &l->br), 0);
  POLL_UNTIL(l->mgr, cymg_mqtt_bridge_connected(l->br));
}

static void local_stop(local *l) {
  broker_free_settle(l->mgr, l->b); /* frees the bridge too */
  ASSERT_MGR_CLEAN(l->mgr);
  cymg_mgr_free(l->mgr);
}

/* A message through both brokers is the fence for "nothing else came": both
 * paths are FIFO, so anything extra would have arrived before it. */
static void fence(cymg_mgr *mgr, cli *from, cli *to, const char *topic) {
  cli_pub(from, topic, "fence", 1, false);
  wait_got(mgr, to, topic);
}

/* ---- tests ---- */

static void test_local_to_upstream(void **state) {
  (void)state;
  local l;
  local_start(&l);
  cymg_mqtt_bridge_topic t[] = {{"up/#", CYMG_MQTT_BRIDGE_OUT, 2},
                                {"cap/#", CYMG_MQTT_BRIDGE_OUT, 1}};
  bridge_up(&l, "mqtt", up_port, 0, t, 2);
  cli s, p;
  cli_open(l.mgr, &s, up_port, CYMG_MQTT_V5);
  cli_sub(l.mgr, &s, "#", 2);
  cli_open(l.mgr, &p, l.port, CYMG_MQTT_V311);
  cli_pub(&p, "up/q0", "zero", 0, false);
  cli_pub(&p, "up/q1", "one", 1, false);
  cli_pub(&p, "up/q2", "two", 2, false);
  cli_pub(&p, "cap/q2", "capped", 2, false); /* the pattern's QoS 1 is the most */
  cli_pub(&p, "not/bridged", "x", 1, false);
  assert_int_equal(cymg_mqtt_broker_publish(l.b, cymg_str_c("up/inproc"), cymg_str_c("ip"), 1,
                                            false, NULL, 0, NULL),
                   0);
  /* A QoS 2 message may be routed at PUBREL, after later ones: wait for each,
   * then a fence for what must not come. */
  const char *expect[] = {"up/q0", "up/q1", "up/q2", "cap/q2", "up/inproc"};
  for (size_t i = 0; i < 5; i++) wait_got(l.mgr, &s, expect[i]);
  fence(l.mgr, &p, &s, "up/fence");
  int at = -1;
  assert_int_equal(got(&s, "up/q0", &at), 1);
  assert_int_equal(s.r.qos[at], 0);
  assert_string_equal(s.r.data[at], "zero");
  assert_int_equal(got(&s, "up/q1", &at), 1);
  assert_int_equal(s.r.qos[at], 1);
  assert_int_equal(got(&s, "up/q2", &at), 1);
  assert_int_equal(s.r.qos[at], 2);
  assert_string_equal(s.r.data[at], "two");
  assert_int_equal(got(&s, "cap/q2", &at), 1);
  assert_int_equal(s.r.qos[at], 1);
  assert_int_equal(got(&s, "up/inproc", NULL), 1);
  assert_int_equal(got(&s, "not/bridged", NULL), 0);

  /* Retained: kept upstream, so a later subscriber there gets it. */
  cli_pub(&p, "up/ret", "kept", 1, true);
  wait_got(l.mgr, &s, "up/ret");
  cli s2;
  cli_open(l.mgr, &s2, up_port, CYMG_MQTT_V311);
  cli_sub(l.mgr, &s2, "up/ret", 1);
  wait_got(l.mgr, &s2, "up/ret");
  assert_true(s2.r.retain[0]);
  assert_string_equal(s2.r.data[0], "kept");
  /* An empty retained payload clears it upstream as well. */
  cli_pub(&p, "up/ret", "", 1, true);
  POLL_UNTIL(l.mgr, got(&s, "up/ret", NULL) == 2);
  cli s3;
  cli_open(l.mgr, &s3, up_port, CYMG_MQTT_V311);
  cli_sub(l.mgr, &s3, "up/#", 1);
  fence(l.mgr, &p, &s3, "up/fence2");
  assert_int_equal(got(&s3, "up/ret", NULL), 0);

  cli_close(l.mgr, &s);
  cli_close(l.mgr, &s2);
  cli_close(l.mgr, &s3);
  cli_close(l.mgr, &p);
  local_stop(&l);
}

static void test_upstream_to_local(void **state) {
  (void)state;
  local l;
  local_start(&l);
  /* The retained message exists upstream before the bridge subscribes. */
  cli m;
  cymg_mgr *mgr0 = l.mgr;
  cli_open(mgr0, &m, up_port, CYMG_MQTT_V311);
  cli_pub(&m, "down/old", "before", 1, true);
  cymg_mqtt_bridge_topic t[] = {{"down/#", CYMG_MQTT_BRIDGE_IN, 2},
                                {"low/#", CYMG_MQTT_BRIDGE_IN, 0}};
  cli loc;
  cli_open(l.mgr, &loc, l.port, CYMG_MQTT_V5);
  cli_sub(l.mgr, &loc, "#", 2);
  bridge_up(&l, "mqtt", up_port, 0, t, 2);
  wait_got(l.mgr, &loc, "down/old");
  int at = -1;
  assert_int_equal(got(&loc, "down/old", &at), 1);
  POLL_UNTIL(l.mgr, cli_acks(&m) >= 1);
  cli_pub(&m, "down/q0", "zero", 0, false);
  cli_pub(&m, "down/q1", "one", 1, false);
  cli_pub(&m, "down/q2", "two", 2, false);
  cli_pub(&m, "low/q2", "low", 2, false);
  cli_pub(&m, "elsewhere", "x", 2, false);
  const char *expect[] = {"down/q0", "down/q1", "down/q2", "low/q2"};
  for (size_t i = 0; i < 4; i++) wait_got(l.mgr, &loc, expect[i]);
  fence(l.mgr, &m, &loc, "down/fence");
  assert_int_equal(got(&loc, "down/q0", &at), 1);
  assert_int_equal(loc.r.qos[at], 0);
  assert_int_equal(got(&loc, "down/q1", &at), 1);
  assert_int_equal(loc.r.qos[at], 1);
  assert_int_equal(got(&loc, "down/q2", &at), 1);
  assert_int_equal(loc.r.qos[at], 2);
  assert_string_equal(loc.r.data[at], "two");
  assert_false(loc.r.retain[at]);
  assert_int_equal(got(&loc, "low/q2", &at), 1);
  assert_int_equal(loc.r.qos[at], 0);
  assert_int_equal(got(&loc, "elsewhere", NULL), 0);
  /* Retained upstream, before the bridge came and live (5.0
   * retain-as-published): retained here too, for a later local subscriber. */
  cli_pub(&m, "down/live", "kept", 1, true);
  wait_got(l.mgr, &loc, "down/live");
  cli late;
  cli_open(l.mgr, &late, l.port, CYMG_MQTT_V311);
  cli_sub(l.mgr, &late, "down/live", 1);
  cli_sub(l.mgr, &late, "down/old", 1);
  wait_got(l.mgr, &late, "down/live");
  wait_got(l.mgr, &late, "down/old");
  assert_true(late.r.retain[0] && late.r.retain[1]);
  cli_pub(&m, "down/old", "", 0, true); /* clean up the upstream's retained ones */
  cli_pub(&m, "down/live", "", 0, true);
  fence(l.mgr, &m, &loc, "down/fence2");
  cli_close(l.mgr, &late);
  cli_close(l.mgr, &m);
  cli_close(l.mgr, &loc);
  local_stop(&l);
}

/* BOTH ways on one pattern: a message from either side reaches the other
 * exactly once and never comes back. */
static void no_loop(int version) {
  local l;
  local_start(&l);
  cymg_mqtt_bridge_topic t[] = {{"loop/#", CYMG_MQTT_BRIDGE_BOTH, 1}};
  bridge_up(&l, "mqtt", up_port, version, t, 1);
  cli ls, us;
  cli_open(l.mgr, &ls, l.port, CYMG_MQTT_V5);
  cli_sub(l.mgr, &ls, "loop/#", 1);
  cli_open(l.mgr, &us, up_port, CYMG_MQTT_V5);
  cli_sub(l.mgr, &us, "loop/#", 1);

  cli_pub(&ls, "loop/a", "from-local", 1, false);
  wait_got(l.mgr, &us, "loop/a");
  /* Any echo of loop/a from upstream comes before this on the bridge. */
  cli_pub(&us, "loop/m1", "fence", 1, false);
  wait_got(l.mgr, &ls, "loop/m1");
  assert_int_equal(got(&ls, "loop/a", NULL), 1);
  assert_int_equal(got(&us, "loop/a", NULL), 1);

  cli_pub(&us, "loop/b", "from-upstream", 1, false);
  wait_got(l.mgr, &ls, "loop/b");
  /* Anything the bridge sent back up would go before this. */
  cli_pub(&ls, "loop/m2", "fence", 1, false);
  wait_got(l.mgr, &us, "loop/m2");
  assert_int_equal(got(&us, "loop/b", NULL), 1);
  assert_int_equal(got(&ls, "loop/b", NULL), 1);
  /* The same payload again from local is forwarded again (one echo
   * suppressed per forward, not forever). */
  cli_pub(&ls, "loop/a", "from-local", 1, false);
  POLL_UNTIL(l.mgr, got(&us, "loop/a", NULL) == 2);
  cli_pub(&us, "loop/m3", "fence", 1, false);
  wait_got(l.mgr, &ls, "loop/m3");
  assert_int_equal(got(&ls, "loop/a", NULL), 2);
  assert_int_equal(got(&us, "loop/m1", NULL), 1);
  assert_int_equal(got(&ls, "loop/m2", NULL), 1);
  cli_close(l.mgr, &ls);
  cli_close(l.mgr, &us);
  local_stop(&l);
}

static void test_no_loop_v5(void **state) {
  (void)state;
  no_loop(CYMG_MQTT_V5);
}

static void test_no_loop_v311(void **state) {
  (void)state;
  no_loop(CYMG_MQTT_V311);
}

/* The upstream dies (SIGKILL, no persistence: it forgets everything) while
 * QoS 1 messages are waiting; the bridge reconnects by itself and delivers
 * them. Retained, so the subscriber sees them whenever it subscribes. */
static void test_upstream_restart(void **state) {
  (void)state;
  local l;
  local_start(&l);
  cymg_mqtt_bridge_topic t[] = {{"rs/#", CYMG_MQTT_BRIDGE_BOTH, 1}};
  bridge_up(&l, "mqtt", up_port, 0, t, 1);
  cli p;
  cli_open(l.mgr, &p, l.port, CYMG_MQTT_V311);
  mosq_stop(SIGKILL);
  POLL_UNTIL(l.mgr, !cymg_mqtt_bridge_connected(l.br));
  logged_len = 0;
  cymg_log_set_sink(log_sink, NULL);
  /* More than the bridge's queue holds while the upstream is away: the
   * oldest are dropped (and said so), the newest kept. */
  for (int i = 0; i < 1000; i++)
    assert_int_equal(cymg_mqtt_broker_publish(l.b, cymg_str_c("rs/flood/x"), cymg_str_c("f"), 0,
                                              false, NULL, 0, NULL),
                     0);
  assert_int_equal(count_logged("oldest dropped"), 0);
  cli_pub(&p, "rs/1", "one", 1, true);
  cli_pub(&p, "rs/2", "two", 1, true);
  cli_pub(&p, "rs/3", "three", 1, true);
  POLL_UNTIL(l.mgr, cli_acks(&p) == 3);
  assert_int_equal(count_logged("oldest dropped"), 1); /* logged once, not per message */
  /* Retried while it is down, each failure reported. */
  POLL_UNTIL(l.mgr, count_logged("Connection refused") >= 2);
  mosq_start();
  POLL_UNTIL(l.mgr, cymg_mqtt_bridge_connected(l.br));
  cymg_log_set_sink(NULL, NULL);
  cli s;
  cli_open(l.mgr, &s, up_port, CYMG_MQTT_V311);
  cli_sub(l.mgr, &s, "rs/+", 1);
  POLL_UNTIL(l.mgr, got(&s, "rs/1", NULL) && got(&s, "rs/2", NULL) && got(&s, "rs/3", NULL));
  int at = -1;
  assert_int_equal(got(&s, "rs/2", &at), 1);
  assert_string_equal(s.r.data[at], "two");
  assert_int_equal(s.r.qos[at], 1);
  /* And the other way works again after the reconnect. */
  cli ls;
  cli_open(l.mgr, &ls, l.port, CYMG_MQTT_V311);
  cli_sub(l.mgr, &ls, "rs/back", 1);
  cli_pub(&s, "rs/back", "again", 1, false);
  wait_got(l.mgr, &ls, "rs/back");
  for (int i = 1; i <= 3; i++) {
    char topic[16];
    snprintf(topic, sizeof(topic), "rs/%d", i);
    cli_pub(&s, topic, "", 0, true);
  }
  fence(l.mgr, &s, &ls, "rs/back");
  cli_close(l.mgr, &s);
  cli_close(l.mgr, &ls);
  cli_close(l.mgr, &p);
  local_stop(&l);
}

/* A QoS 1 message in flight (sent, never acknowledged: the upstream is
 * stopped) when the upstream dies and comes back without our session: the
 * bridge publishes it again. (The client alone would drop it with the
 * session the CONNACK says is gone.) */
static void test_inflight_republished(void **state) {
  (void)state;
  local l;
  local_start(&l);
  cymg_mqtt_bridge_topic t[] = {{"fl/#", CYMG_MQTT_BRIDGE_OUT, 1}};
  bridge_up(&l, "mqtt", up_port, CYMG_MQTT_V311, t, 1);
  cli p;
  cli_open(l.mgr, &p, l.port, CYMG_MQTT_V5);
  assert_int_equal(kill(mosq.pid, SIGSTOP), 0);
  cli_pub(&p, "fl/1", "in flight", 1, true);
  POLL_UNTIL(l.mgr, cli_acks(&p) == 1);                 /* routed here, so handed to the bridge */
  for (int i = 0; i < 10; i++) cymg_mgr_poll(l.mgr, 5); /* let it reach the socket */
  mosq_stop(SIGKILL);
  POLL_UNTIL(l.mgr, !cymg_mqtt_bridge_connected(l.br));
  mosq_start();
  POLL_UNTIL(l.mgr, cymg_mqtt_bridge_connected(l.br));
  cli s;
  cli_open(l.mgr, &s, up_port, CYMG_MQTT_V311);
  cli_sub(l.mgr, &s, "fl/+", 1);
  wait_got(l.mgr, &s, "fl/1");
  assert_string_equal(s.r.data[0], "in flight");
  cli_pub(&s, "fl/1", "", 0, true);
  cli_close(l.mgr, &s);
  cli_close(l.mgr, &p);
  local_stop(&l);
}

static void test_tls_upstream(void **state) {
  (void)state;
  local l;
  local_start(&l);
  cymg_mqtt_bridge_topic t[] = {{"tls/#", CYMG_MQTT_BRIDGE_BOTH, 2}};
  bridge_up(&l, "mqtts", up_tls_port, 0, t, 1);
  cli s, ls;
  cli_open(l.mgr, &s, up_port, CYMG_MQTT_V5);
  cli_sub(l.mgr, &s, "tls/#", 2);
  cli_open(l.mgr, &ls, l.port, CYMG_MQTT_V5);
  cli_sub(l.mgr, &ls, "tls/#", 2);
  cli_pub(&ls, "tls/up", "secret", 2, false);
  wait_got(l.mgr, &s, "tls/up");
  assert_int_equal(s.r.qos[0], 2);
  cli_pub(&s, "tls/down", "secret2", 2, false);
  wait_got(l.mgr, &ls, "tls/down");
  cli_close(l.mgr, &s);
  cli_close(l.mgr, &ls);
  local_stop(&l);
  assert_tls_clean();
}

static void test_bad_options(void **state) {
  (void)state;
  local l;
  local_start(&l);
  cymg_mqtt_bridge_topic good = {"a/#", CYMG_MQTT_BRIDGE_BOTH, 1};
  cymg_mqtt_bridge_opts o = {.url = "mqtt://127.0.0.1:1", .topics = &good, .num_topics = 1};
  cymg_mqtt_bridge *br = (cymg_mqtt_bridge *)1;
  const char *bad_urls[] = {"http://127.0.0.1:1", "mqtt://", "not a url", "tcp://h:1"};
  for (size_t i = 0; i < 4; i++) {
    o.url = bad_urls[i];
    assert_int_equal(cymg_mqtt_bridge_new(l.b, &o, &br), CYMG_EINVAL);
    assert_null(br);
  }
  o.url = "mqtt://127.0.0.1:1";
  cymg_mqtt_bridge_topic bad[] = {
      {"a/#/b", CYMG_MQTT_BRIDGE_OUT, 0}, {"a", 0, 0}, {"a", 4, 0}, {"a", 1, 3}, {NULL, 1, 0}};
  for (size_t i = 0; i < 5; i++) {
    o.topics = &bad[i];
    assert_int_equal(cymg_mqtt_bridge_new(l.b, &o, &br), CYMG_EINVAL);
  }
  o.topics = &good;
  o.num_topics = 0;
  assert_int_equal(cymg_mqtt_bridge_new(l.b, &o, &br), CYMG_EINVAL);
  o.num_topics = 1;
  o.client.version = 3;
  assert_int_equal(cymg_mqtt_bridge_new(l.b, &o, &br), CYMG_EINVAL);
  o.client.version = 0;
  o.backoff_min_ms = 500;
  o.backoff_max_ms = 100;
  assert_int_equal(cymg_mqtt_bridge_new(l.b, &o, &br), CYMG_EINVAL);
  assert_int_equal(cymg_mqtt_bridge_new(l.b, NULL, &br), CYMG_EINVAL);
  assert_int_equal(cymg_mqtt_bridge_new(NULL, &o, &br), CYMG_EINVAL);
  assert_false(cymg_mqtt_bridge_connected(NULL));
  cymg_mqtt_bridge_free(NULL);
  local_stop(&l);
}

/* Nobody listening, then a broker that refuses us: each attempt reported,
 * and retried, until an upstream takes the bridge. */
static void test_unreachable_and_refused(void **state) {
  (void)state;
  local l;
  local_start(&l);
  logged_len = 0;
  cymg_log_set_sink(log_sink, NULL);
  uint16_t nobody = free_port();
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", nobody);
  cymg_mqtt_bridge_topic t = {"x/#", CYMG_MQTT_BRIDGE_BOTH, 1};
  cymg_mqtt_bridge_opts o = {
      .url = url, .topics = &t, .num_topics = 1, .backoff_min_ms = 20, .backoff_max_ms = 100};
  cymg_mqtt_bridge *br1 = NULL, *br2 = NULL;
  assert_int_equal(cymg_mqtt_bridge_new(l.b, &o, &br1), 0);
  POLL_UNTIL(l.mgr, count_logged(url) >= 3);
  assert_false(cymg_mqtt_bridge_connected(br1));
  cymg_mqtt_bridge_free(br1);

  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", up_auth_port);
  assert_int_equal(cymg_mqtt_bridge_new(l.b, &o, &br2), 0);
  POLL_UNTIL(l.mgr, count_logged("refused the connection") >= 3);
  assert_false(cymg_mqtt_bridge_connected(br2));
  /* 5.0 "not authorized" */
  assert_non_null(strstr(logged, "0x87"));
  cymg_log_set_sink(NULL, NULL);
  /* Left to the broker to free. */
  local_stop(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_local_to_upstream),
      cmocka_unit_test(test_upstream_to_local),
      cmocka_unit_test(test_no_loop_v5),
      cmocka_unit_test(test_no_loop_v311),
      cmocka_unit_test(test_upstream_restart),
      cmocka_unit_test(test_inflight_republished),
      cmocka_unit_test(test_tls_upstream),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_unreachable_and_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
