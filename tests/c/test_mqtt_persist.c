/* The broker's persistence file end to end: retained messages and a persistent
 * session's subscriptions and queued QoS 1 messages survive a restart (free,
 * then new on the same file), and a broker process SIGKILLed right after it
 * acknowledged a QoS 1 publish still has the message when it comes back.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include <sys/prctl.h>

#include "mqtt_cli_test.h"
#include "store_test.h"

static cymg_mqtt_broker *broker_on(cymg_mgr *mgr, uint16_t port, uint16_t *bound) {
  cymg_mqtt_broker_opts o = {.persist_path = path};
  cymg_mqtt_broker *b = NULL;
  int rc = cymg_mqtt_broker_new(mgr, &o, &b);
  if (rc != 0) fail_msg("broker_new: %s: %s", cymg_strerror(rc), cymg_mgr_errmsg(mgr));
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", port);
  cymg_conn *lsn = NULL;
  assert_int_equal(cymg_mqtt_broker_listen(b, url, &lsn), 0);
  if (bound) *bound = cymg_conn_local(lsn)->port;
  return b;
}

static void restart(int version) {
  cymg_mgr *mgr = new_mgr();
  uint16_t port;
  cymg_mqtt_broker *b = broker_on(mgr, 0, &port);
  cli a, p;
  cli_open_persistent(mgr, &a, port, version, "keeper");
  cli_sub(mgr, &a, "p/#", 1);
  cli_sub(mgr, &a, "other/+", 0);
  cli_close(mgr, &a);
  cli_open(mgr, &p, port, CYMG_MQTT_V5);
  cli_pub(&p, "p/r", "retained", 1, true);
  cli_pub(&p, "p/q1", "one", 1, false);
  cli_pub(&p, "p/q2", "two", 1, false);
  cli_pub(&p, "keep/gone", "x", 1, true);
  cli_pub(&p, "keep/gone", "", 1, true); /* cleared: must stay cleared */
  POLL_UNTIL(mgr, cli_acks(&p) == 5);
  cli_close(mgr, &p);
  broker_free_settle(mgr, b);

  b = broker_on(mgr, 0, &port);
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(b, &st);
  assert_int_equal(st.retained, 1);
  assert_true(st.sessions >= 1);
  assert_int_equal(st.subscriptions, 2);
  assert_int_equal(st.queued, 3); /* p/r, p/q1, p/q2 for the offline session */
  cli_open_persistent(mgr, &a, port, version, "keeper");
  assert_true(a.session_present);
  POLL_UNTIL(mgr, got(&a, "p/q1", NULL) && got(&a, "p/q2", NULL) && got(&a, "p/r", NULL));
  int at = -1;
  assert_int_equal(got(&a, "p/q2", &at), 1);
  assert_string_equal(a.r.data[at], "two");
  assert_int_equal(a.r.qos[at], 1);
  /* The subscription itself came back: a new message is routed to it. */
  cli_open(mgr, &p, port, CYMG_MQTT_V311);
  cli_pub(&p, "p/new", "after", 1, false);
  wait_got(mgr, &a, "p/new");
  /* Retained: there, and the cleared one not. */
  cli n;
  cli_open(mgr, &n, port, CYMG_MQTT_V5);
  cli_sub(mgr, &n, "keep/gone", 1);
  cli_sub(mgr, &n, "p/r", 1);
  wait_got(mgr, &n, "p/r");
  assert_true(n.r.retain[0]);
  assert_string_equal(n.r.data[0], "retained");
  assert_int_equal(got(&n, "keep/gone", NULL), 0);
  cli_close(mgr, &n);
  cli_close(mgr, &p);
  cli_close(mgr, &a);
  /* Delivered ones are gone from the file too: a third start queues nothing. */
  broker_free_settle(mgr, b);
  b = broker_on(mgr, 0, &port);
  cymg_mqtt_broker_get_stats(b, &st);
  assert_int_equal(st.queued, 0);
  assert_int_equal(st.retained, 1);
  broker_free_settle(mgr, b);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_restart_v5(void **state) {
  (void)state;
  restart(CYMG_MQTT_V5);
}

static void test_restart_v311(void **state) {
  (void)state;
  restart(CYMG_MQTT_V311);
}

/* Churn grows the log past the compaction threshold: the broker rewrites it
 * from its live state, and a restart finds that state (the newest retained
 * payload), not the history. */
static void test_compaction(void **state) {
  (void)state;
  cymg_mgr *mgr = new_mgr();
  uint16_t port;
  cymg_mqtt_broker *b = broker_on(mgr, 0, &port);
  cli p;
  cli_open(mgr, &p, port, CYMG_MQTT_V311);
  static char pay[4097];
  int n = 0;
  for (int batch = 0; batch < 12; batch++) {
    for (int i = 0; i < 40; i++, n++) {
      memset(pay, 'a' + n % 26, sizeof(pay) - 1);
      snprintf(pay, 16, "%06d", n);
      pay[6] = '-';
      cli_pub(&p, "c/x", pay, 1, true);
    }
    POLL_UNTIL(mgr, cli_acks(&p) == n);
  }
  /* 480 x 4 KiB went through: without compaction the file would hold them. */
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_true(sb.st_size < 1200 * 1024);
  cli_close(mgr, &p);
  broker_free_settle(mgr, b);

  b = broker_on(mgr, 0, &port);
  cli s;
  cli_open(mgr, &s, port, CYMG_MQTT_V311);
  cli_sub(mgr, &s, "c/x", 1);
  wait_got(mgr, &s, "c/x");
  assert_int_equal(strncmp(s.r.data[0], "000479-", 7), 0);
  cli_close(mgr, &s);
  broker_free_settle(mgr, b);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* A second broker on a file in use is refused with a message. */
static void test_file_in_use(void **state) {
  (void)state;
  cymg_mgr *mgr = new_mgr();
  cymg_mqtt_broker *b = broker_on(mgr, 0, NULL), *b2 = NULL;
  cymg_mqtt_broker_opts o = {.persist_path = path};
  assert_true(cymg_mqtt_broker_new(mgr, &o, &b2) < 0);
  assert_null(b2);
  assert_non_null(strstr(cymg_mgr_errmsg(mgr), "in use"));
  broker_free_settle(mgr, b);
  /* And a file that is not ours. */
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("definitely not a log\n", f);
  fclose(f);
  assert_int_equal(cymg_mqtt_broker_new(mgr, &o, &b2), CYMG_EPARSE);
  assert_non_null(strstr(cymg_mgr_errmsg(mgr), "not an MQTT persistence file"));
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* A broker in a child process, killed with SIGKILL the moment its PUBACK has
 * arrived: the acknowledged messages (retained, and queued for an offline
 * persistent session) are there after a restart. */
static pid_t child_pid; /* a broker child still running, for teardown */

static pid_t spawn_broker(uint16_t port) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
    cymg_mgr *mgr = NULL;
    if (cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO) != 0) _exit(2);
    cymg_mqtt_broker_opts o = {.persist_path = path};
    cymg_mqtt_broker *b = NULL;
    if (cymg_mqtt_broker_new(mgr, &o, &b) != 0) _exit(3);
    char url[64];
    snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", port);
    if (cymg_mqtt_broker_listen(b, url, NULL) != 0) _exit(4);
    for (;;)
      if (cymg_mgr_poll(mgr, 1000) < 0) _exit(5);
  }
  child_pid = pid;
  return pid;
}

static void kill_broker(pid_t pid) {
  assert_int_equal(kill(pid, SIGKILL), 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st));
  child_pid = 0;
}

/* A failed assertion leaves no broker child behind holding the port. */
static int persist_teardown(void **state) {
  if (child_pid > 0) {
    kill(child_pid, SIGKILL);
    waitpid(child_pid, NULL, 0);
    child_pid = 0;
  }
  return store_dir_teardown(state);
}

static void test_sigkill_after_ack(void **state) {
  (void)state;
  uint16_t port = free_port();
  pid_t pid = spawn_broker(port);
  cymg_mgr *mgr = new_mgr();
  wait_port(mgr, port);
  cli s, p;
  cli_open_persistent(mgr, &s, port, CYMG_MQTT_V5, "offline");
  cli_sub(mgr, &s, "k/#", 1);
  cli_close(mgr, &s);
  cli_open(mgr, &p, port, CYMG_MQTT_V311);
  cli_pub(&p, "k/ret", "kept", 1, true);
  cli_pub(&p, "k/q", "queued", 1, false);
  POLL_UNTIL(mgr, cli_acks(&p) == 2);
  kill_broker(pid); /* no shutdown, no flush: only what was synced */
  cli_close(mgr, &p);
  wait_port_closed(mgr, port);

  pid = spawn_broker(port);
  wait_port(mgr, port);
  cli_open_persistent(mgr, &s, port, CYMG_MQTT_V5, "offline");
  assert_true(s.session_present);
  POLL_UNTIL(mgr, got(&s, "k/q", NULL) && got(&s, "k/ret", NULL));
  cli n;
  cli_open(mgr, &n, port, CYMG_MQTT_V311);
  cli_sub(mgr, &n, "k/ret", 1);
  wait_got(mgr, &n, "k/ret");
  assert_true(n.r.retain[0]);
  assert_string_equal(n.r.data[0], "kept");
  cli_close(mgr, &n);
  cli_close(mgr, &s);
  kill_broker(pid);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_restart_v5, store_dir_setup, store_dir_teardown),
      cmocka_unit_test_setup_teardown(test_restart_v311, store_dir_setup, store_dir_teardown),
      cmocka_unit_test_setup_teardown(test_compaction, store_dir_setup, store_dir_teardown),
      cmocka_unit_test_setup_teardown(test_file_in_use, store_dir_setup, store_dir_teardown),
      cmocka_unit_test_setup_teardown(test_sigkill_after_ack, store_dir_setup, persist_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
