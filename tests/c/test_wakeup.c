/* Wakeup: many threads, nothing lost, order kept per thread; refusals are
 * reported, never silent. CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

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

/* Counts the wakeups delivered to a connection, whatever their payload. */
static void count_fn(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_WAKEUP) (*(uint64_t *) cymg_conn_userdata(c))++;
}

static void test_refusals(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  uint64_t delivered = 0;
  cymg_conn *c;
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", count_fn, &delivered, &c), 0);
  uint64_t id = cymg_conn_id(c);
  /* Not initialised: refused, not dropped. */
  assert_int_equal(cymg_wakeup(mgr, id, "x", 1), CYMG_ESTATE);
  assert_true(cymg_wakeup_init(mgr) > 0);
  assert_int_equal(cymg_wakeup(mgr, id, NULL, 1), CYMG_EINVAL);
  cymg_wakeup_set_limit(mgr, 16);
  assert_int_equal(cymg_wakeup(mgr, id, "01234567", 8), 0);
  assert_int_equal(cymg_wakeup(mgr, id, "01234567", 8), 0);
  assert_int_equal(cymg_wakeup(mgr, id, "x", 1), CYMG_ELIMIT); /* queue full */
  POLL_UNTIL(mgr, delivered == 2);
  assert_int_equal(cymg_wakeup(mgr, id, "01234567", 8), 0); /* room again */
  cymg_close(c);
  cymg_mgr_free(mgr); /* frees what is still queued */
}

/* An id with no live connection is refused at the call, not dropped later:
 * never used, the wakeup channel's own, closed but not yet freed (its CLOSE
 * still to come), and freed. */
static void test_missing_and_closed(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  int64_t wid = cymg_wakeup_init(mgr);
  assert_true(wid > 0);
  sink_state s = {0};
  cymg_conn *a, *b;
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", sink_fn, &s, &a), 0);
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", sink_fn, &s, &b), 0);
  uint64_t ida = cymg_conn_id(a), idb = cymg_conn_id(b);
  char msg[8] = {0};
  assert_int_equal(cymg_wakeup(mgr, idb + 1000, msg, 8), CYMG_ENOCONN);
  assert_int_equal(cymg_wakeup(mgr, 0, msg, 8), CYMG_ENOCONN);
  assert_int_equal(cymg_wakeup(mgr, (uint64_t) wid, msg, 8), CYMG_ENOCONN);
  cymg_close(a);
  assert_non_null(cymg_mgr_find(mgr, ida)); /* closing, not yet freed */
  assert_int_equal(cymg_wakeup(mgr, ida, msg, 8), CYMG_ECLOSED);
  assert_int_equal(cymg_wakeup(mgr, idb, msg, 8), 0); /* the other one is fine */
  cymg_mgr_poll(mgr, 0);
  assert_null(cymg_mgr_find(mgr, ida));
  assert_int_equal(cymg_wakeup(mgr, ida, msg, 8), CYMG_ENOCONN);
  POLL_UNTIL(mgr, s.total == 1);
  assert_int_equal(cymg_wakeup_orphans(mgr), 0); /* refused, so nothing orphaned */
  assert_string_equal(cymg_strerror(CYMG_ENOCONN), "no such connection");
  cymg_close(b);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* Other threads aim at connections that the manager thread opens and closes
 * meanwhile (the id table grows and shrinks under them). Every call is either
 * refused or accounted for: delivered, or an orphan of a close in between. */
#define CHURN_SPAN 48 /* producers aim at the newest ids */
#define CHURN_ROUNDS 400
#define CHURN_THREADS 4

typedef struct {
  cymg_mgr *mgr;
  _Atomic uint64_t *newest;
  atomic_bool *stop;
  atomic_int *started;
  uint64_t calls, accepted, refused, full, other;
  uint32_t seed;
} churner;

static void *churn_produce(void *arg) {
  churner *p = arg;
  char msg[8] = {0};
  while (!atomic_load(p->stop)) {
    p->seed = p->seed * 1103515245u + 12345u;
    uint64_t id = atomic_load(p->newest) - (p->seed >> 8) % CHURN_SPAN;
    int rc = cymg_wakeup(p->mgr, id, msg, sizeof(msg));
    p->calls++;
    if (rc == 0) p->accepted++;
    else if (rc == CYMG_ENOCONN || rc == CYMG_ECLOSED) p->refused++;
    else if (rc == CYMG_ELIMIT) p->full++; /* the manager thread fell behind */
    else p->other++;
    if (p->calls == 1) atomic_fetch_add(p->started, 1);
    if (p->calls % 16 == 0) sched_yield(); /* two cores: let the manager churn */
  }
  return NULL;
}

static void test_churn(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  assert_true(cymg_wakeup_init(mgr) > 0);
  uint64_t delivered = 0;
  cymg_conn *live[CHURN_SPAN / 2] = {0};
  for (size_t k = 0; k < CHURN_SPAN / 2; k++)
    assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", count_fn, &delivered, &live[k]), 0);
  _Atomic uint64_t newest = cymg_conn_id(live[CHURN_SPAN / 2 - 1]);
  atomic_bool stop = false;
  atomic_int started = 0;
  cymg_wakeup_set_limit(mgr, 1u << 20); /* bounds the queue if this thread lags */
  churner ps[CHURN_THREADS];
  pthread_t th[CHURN_THREADS];
  for (int i = 0; i < CHURN_THREADS; i++) {
    ps[i] = (churner){mgr, &newest, &stop, &started, 0, 0, 0, 0, 0, (uint32_t) i + 1};
    assert_int_equal(pthread_create(&th[i], NULL, churn_produce, &ps[i]), 0);
  }
  while (atomic_load(&started) < CHURN_THREADS) sched_yield(); /* all of them at work */
  /* Replaces the oldest connection with a new one, round after round, while
   * the producers run: half the ids they aim at are live, the rest closed
   * (some not yet freed) or freed. */
  for (size_t rounds = 0, k = 0; rounds < CHURN_ROUNDS; k = (k + 1) % (CHURN_SPAN / 2), rounds++) {
    cymg_close(live[k]);
    assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", count_fn, &delivered, &live[k]), 0);
    atomic_store(&newest, cymg_conn_id(live[k]));
    if (rounds % 2) cymg_mgr_poll(mgr, 0); /* every other close is freed at once */
  }
  atomic_store(&stop, true);
  uint64_t accepted = 0, refused = 0;
  for (int i = 0; i < CHURN_THREADS; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(ps[i].other, 0);
    assert_int_equal(ps[i].accepted + ps[i].refused + ps[i].full, ps[i].calls);
    accepted += ps[i].accepted;
    refused += ps[i].refused;
  }
  POLL_UNTIL(mgr, delivered + cymg_wakeup_orphans(mgr) == accepted);
  print_message("churn: %d rounds, %llu accepted (%llu orphans), %llu refused\n", CHURN_ROUNDS,
                (unsigned long long) accepted, (unsigned long long) cymg_wakeup_orphans(mgr),
                (unsigned long long) refused);
  for (size_t k = 0; k < CHURN_SPAN / 2; k++) cymg_close(live[k]);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
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
      cmocka_unit_test(test_missing_and_closed),
      cmocka_unit_test(test_churn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
