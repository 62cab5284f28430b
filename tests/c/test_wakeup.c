/* Wakeup: many threads, nothing lost, order kept per thread; refusals are
 * reported, never silent. CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include <pthread.h>

#include "cymg_test.h"

#define NTHREADS 8
#define PER_THREAD 10000

typedef struct {
  uint32_t next[NTHREADS];
  uint64_t total;
  bool out_of_order;
} sink_state;

static void sink_fn(cymg_conn *c, int ev, void *ev_data) {
  sink_state *s = cymg_conn_userdata(c);
  if (ev != CYMG_EV_WAKEUP) return;
  const cymg_str *p = ev_data;
  assert_int_equal(p->len, 8);
  uint32_t th, seq;
  memcpy(&th, p->buf, 4);
  memcpy(&seq, p->buf + 4, 4);
  assert_true(th < NTHREADS);
  if (seq != s->next[th]) s->out_of_order = true;
  s->next[th] = seq + 1;
  s->total++;
}

typedef struct {
  cymg_mgr *mgr;
  uint64_t conn_id;
  uint32_t th;
  int failures;
} producer;

static void *produce(void *arg) {
  producer *p = arg;
  for (uint32_t seq = 0; seq < PER_THREAD; seq++) {
    char msg[8];
    memcpy(msg, &p->th, 4);
    memcpy(msg + 4, &seq, 4);
    if (cymg_wakeup(p->mgr, p->conn_id, msg, sizeof(msg)) != 0) p->failures++;
  }
  return NULL;
}

static void test_stress(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  int64_t wid = cymg_wakeup_init(mgr);
  assert_true(wid > 0);
  assert_int_equal(cymg_wakeup_init(mgr), wid); /* idempotent */
  sink_state s = {0};
  cymg_conn *c;
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", sink_fn, &s, &c), 0);
  pthread_t th[NTHREADS];
  producer ps[NTHREADS];
  for (uint32_t i = 0; i < NTHREADS; i++) {
    ps[i] = (producer){mgr, cymg_conn_id(c), i, 0};
    pthread_create(&th[i], NULL, produce, &ps[i]);
  }
  POLL_UNTIL(mgr, s.total == (uint64_t) NTHREADS * PER_THREAD);
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(ps[i].failures, 0);
    assert_int_equal(s.next[i], PER_THREAD);
  }
  assert_false(s.out_of_order);
  assert_int_equal(cymg_wakeup_orphans(mgr), 0);
  cymg_close(c);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_refusals(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  /* Not initialised: refused, not dropped. */
  assert_int_equal(cymg_wakeup(mgr, 1, "x", 1), CYMG_ESTATE);
  assert_true(cymg_wakeup_init(mgr) > 0);
  assert_int_equal(cymg_wakeup(mgr, 1, NULL, 1), CYMG_EINVAL);
  cymg_wakeup_set_limit(mgr, 10);
  assert_int_equal(cymg_wakeup(mgr, 1, "0123456789", 10), 0);
  assert_int_equal(cymg_wakeup(mgr, 1, "x", 1), CYMG_ELIMIT); /* queue full */
  /* No such connection by delivery time: counted as an orphan. */
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(cymg_wakeup_orphans(mgr), 1);
  assert_int_equal(cymg_wakeup(mgr, 1, "x", 1), 0); /* room again */
  cymg_mgr_free(mgr); /* frees what is still queued */
}

static void test_zero_length_and_closing(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  assert_true(cymg_wakeup_init(mgr) > 0);
  sink_state s = {0};
  cymg_conn *c;
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", sink_fn, &s, &c), 0);
  char msg[8] = {0};
  assert_int_equal(cymg_wakeup(mgr, cymg_conn_id(c), msg, 8), 0);
  cymg_close(c); /* closing before delivery: the payload is an orphan */
  cymg_mgr_poll(mgr, 0);
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(s.total, 0);
  assert_int_equal(cymg_wakeup_orphans(mgr), 1);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stress),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_zero_length_and_closing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
