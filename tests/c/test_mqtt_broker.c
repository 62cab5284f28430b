/* The broker (cymg_mqtt_broker_*) against our MQTT client and the real
 * mosquitto_pub / mosquitto_sub, 3.1.1 and 5.0, over mqtt://, mqtts:// and
 * ws://; bad input from raw sockets leaving other clients untouched.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include "cymg/mqtt_broker.h"
#include "mqtt_test.h"

typedef struct {
  cymg_mgr *mgr;
  cymg_mqtt_broker *b;
  cymg_conn *lsn;
  uint16_t port;
} bk;

static void bk_start(bk *k, const cymg_mqtt_broker_opts *o) {
  k->mgr = new_mgr();
  assert_int_equal(cymg_mqtt_broker_new(k->mgr, o, &k->b), 0);
  assert_int_equal(cymg_mqtt_broker_listen(k->b, "mqtt://127.0.0.1:0", &k->lsn), 0);
  k->port = cymg_conn_local(k->lsn)->port;
}

static void bk_stop(bk *k) {
  cymg_mqtt_broker_free(k->b);
  close_all_and_free(k->mgr);
}

static cymg_conn *cl(bk *k, rec *r, int version, const char *id) {
  cymg_mqtt_opts o = {.version = (uint8_t)version, .client_id = cymg_str_c(id ? id : "")};
  memset(r, 0, sizeof(*r));
  cymg_conn *c = client(k->mgr, "mqtt", k->port, &o, r);
  wait_open(k->mgr, r);
  return c;
}

/* Subscribes and waits for the SUBACK. */
static void sub_wait(bk *k, cymg_conn *c, rec *r, const char *filter, int opts) {
  int before = r->cmds[CYMG_MQTT_CMD_SUBACK];
  sub(c, filter, opts);
  POLL_UNTIL(k->mgr, r->cmds[CYMG_MQTT_CMD_SUBACK] == before + 1);
}

static size_t stat_subs(const bk *k) {
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k->b, &st);
  return st.subscriptions;
}

static void routing_with(int version) {
  bk k;
  bk_start(&k, NULL);
  rec a, bsub, dsub;
  cymg_conn *pa = cl(&k, &a, version, "pub");
  cymg_conn *sb = cl(&k, &bsub, version, "subwild");
  cymg_conn *sd = cl(&k, &dsub, version, "subdollar");
  sub_wait(&k, sb, &bsub, "a/+/c", 1);
  sub_wait(&k, sb, &bsub, "x/#", 0);
  sub_wait(&k, sb, &bsub, "#", 0); /* overlapping: one copy per message */
  sub_wait(&k, sd, &dsub, "$SYS/#", 0);
  assert_int_equal(pub(pa, "a/b/c", "one", 1, false) > 0, true);
  assert_int_equal(pub(pa, "x", "two", 0, false), 0);
  assert_int_equal(pub(pa, "$SYS/t", "three", 0, false), 0);
  assert_int_equal(pub(pa, "zz", "four", 0, false), 0);
  POLL_UNTIL(k.mgr, bsub.msgs == 3 && dsub.msgs == 1);
  assert_string_equal(bsub.topic[0], "a/b/c");
  assert_string_equal(bsub.data[0], "one");
  assert_int_equal(bsub.qos[0], 1);
  assert_string_equal(bsub.topic[1], "x");
  assert_string_equal(bsub.topic[2], "zz"); /* "$SYS/t" not matched by "#" */
  assert_string_equal(dsub.topic[0], "$SYS/t");
  /* QoS 2 published, subscription granted 1: downgraded */
  assert_true(pub(pa, "a/q/c", "five", 2, false) > 0);
  POLL_UNTIL(k.mgr, bsub.msgs == 4);
  assert_int_equal(bsub.qos[3], 1);
  POLL_UNTIL(k.mgr, cymg_mqtt_inflight(pa) == 0);
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k.b, &st);
  assert_int_equal(st.clients, 3);
  assert_int_equal(st.subscriptions, 4);
  assert_int_equal(a.errors + bsub.errors + dsub.errors, 0);
  (void)sd;
  bk_stop(&k);
}

static void test_routing_311(void **state) {
  (void)state;
  routing_with(CYMG_MQTT_V311);
}
static void test_routing_v5(void **state) {
  (void)state;
  routing_with(CYMG_MQTT_V5);
}

static void test_retained(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  rec a, s1, s2;
  cymg_conn *pa = cl(&k, &a, 4, "p");
  assert_true(pub(pa, "r/1", "kept", 1, true) > 0);
  assert_true(pub(pa, "r/2", "gone", 1, true) > 0);
  POLL_UNTIL(k.mgr, cymg_mqtt_inflight(pa) == 0);
  assert_true(pub(pa, "r/2", "", 1, true) > 0); /* clears */
  POLL_UNTIL(k.mgr, cymg_mqtt_inflight(pa) == 0);
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k.b, &st);
  assert_int_equal(st.retained, 1);
  cymg_conn *c1 = cl(&k, &s1, 4, "s1");
  sub_wait(&k, c1, &s1, "r/#", 1);
  POLL_UNTIL(k.mgr, s1.msgs == 1);
  assert_string_equal(s1.topic[0], "r/1");
  assert_string_equal(s1.data[0], "kept");
  assert_true(s1.retain[0]);
  /* a live message to an existing subscriber has retain off (3.1.1) */
  assert_true(pub(pa, "r/1", "new", 0, true) >= 0);
  POLL_UNTIL(k.mgr, s1.msgs == 2);
  assert_false(s1.retain[1]);
  /* v5 retain handling 2: nothing on subscribe; retain-as-published keeps it */
  cymg_conn *c2 = cl(&k, &s2, 5, "s2");
  sub_wait(&k, c2, &s2, "r/#", 1 | 0x20 | 0x08);
  assert_true(pub(pa, "r/3", "live", 0, true) >= 0);
  POLL_UNTIL(k.mgr, s2.msgs == 1);
  assert_string_equal(s2.topic[0], "r/3");
  assert_true(s2.retain[0]);
  bk_stop(&k);
}

static void test_mosquitto_clients(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  char port[16];
  snprintf(port, sizeof(port), "%u", k.port);
  for (int v = 0; v < 2; v++) {
    char *ver = v ? "mqttv5" : "mqttv311";
    char *sargv[] = {"mosquitto_sub", "-h", "127.0.0.1", "-p",  port, "-V", ver, "-t",
                     "m/+",           "-q", "2",         "-C",  "2",  "-v", "-i", "msub",
                     NULL};
    child sc;
    child_start(&sc, "/usr/bin/mosquitto_sub", sargv);
    POLL_UNTIL(k.mgr, stat_subs(&k) == 1);
    char *pargv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", ver,  "-t",
                     "m/x",           "-m", "hello",     "-q", "2",  "-i", "mpub", NULL};
    child pc;
    child_start(&pc, "/usr/bin/mosquitto_pub", pargv);
    assert_int_equal(child_end(k.mgr, &pc, false), 0);
    assert_int_equal(cymg_mqtt_broker_publish(k.b, cymg_str_c("m/y"), cymg_str_c("inside"), 1,
                                              false, NULL, 0, NULL),
                     0);
    assert_true(child_wait_for(k.mgr, &sc, "m/x hello"));
    assert_true(child_wait_for(k.mgr, &sc, "m/y inside"));
    assert_int_equal(child_end(k.mgr, &sc, false), 0);
  }
  bk_stop(&k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_routing_311),
      cmocka_unit_test(test_routing_v5),
      cmocka_unit_test(test_retained),
      cmocka_unit_test(test_mosquitto_clients),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
