/* Timers: one-shot, repeat, run-now, cancel (also from inside a callback), order,
 * stale handles, and poll waking for a deadline. */
#include "cymg_test.h"

typedef struct {
  cymg_mgr *mgr;
  int fired;
  int order[32];
  int norder;
  int tag;
  cymg_timer_id self;
  int *log;
  int *nlog;
} tctx;

static void count_fn(void *arg) {
  tctx *t = arg;
  t->fired++;
  if (t->log) t->log[(*t->nlog)++] = t->tag;
}

static void self_cancel_fn(void *arg) {
  tctx *t = arg;
  t->fired++;
  if (t->fired == 3) assert_int_equal(cymg_timer_cancel(t->mgr, t->self), 0);
}

static void test_one_shot(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  tctx t = {0};
  cymg_timer_id id;
  assert_int_equal(cymg_timer_add(mgr, 20, CYMG_TIMER_ONCE, count_fn, &t, &id), 0);
  assert_true(cymg_timer_active(mgr, id));
  assert_int_equal(cymg_timer_count(mgr), 1);
  /* An infinite wait must still wake for the deadline. */
  while (t.fired == 0) cymg_mgr_poll(mgr, -1);
  assert_int_equal(t.fired, 1);
  assert_false(cymg_timer_active(mgr, id));
  assert_int_equal(cymg_timer_cancel(mgr, id), CYMG_ENOTFOUND);
  for (int i = 0; i < 5; i++) cymg_mgr_poll(mgr, 5);
  assert_int_equal(t.fired, 1);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_repeat_and_cancel(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  tctx t = {0};
  cymg_timer_id id;
  assert_int_equal(cymg_timer_add(mgr, 2, CYMG_TIMER_REPEAT, count_fn, &t, &id), 0);
  POLL_UNTIL(mgr, t.fired >= 5);
  assert_true(cymg_timer_active(mgr, id));
  assert_int_equal(cymg_timer_cancel(mgr, id), 0);
  int at_cancel = t.fired;
  for (int i = 0; i < 5; i++) cymg_mgr_poll(mgr, 5);
  assert_int_equal(t.fired, at_cancel);
  assert_false(cymg_timer_active(mgr, id));
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_run_now(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  tctx t = {0};
  assert_int_equal(
      cymg_timer_add(mgr, 100000, CYMG_TIMER_REPEAT | CYMG_TIMER_RUN_NOW, count_fn, &t, NULL), 0);
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(t.fired, 1); /* at once, then only after 100 s */
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(t.fired, 1);
  assert_int_equal(cymg_timer_count(mgr), 1);
  cymg_mgr_free(mgr); /* live timers are released by free */
}

static void test_cancel_inside_callback(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  tctx t = {.mgr = mgr};
  assert_int_equal(cymg_timer_add(mgr, 1, CYMG_TIMER_REPEAT, self_cancel_fn, &t, &t.self), 0);
  POLL_UNTIL(mgr, t.fired >= 3);
  for (int i = 0; i < 5; i++) cymg_mgr_poll(mgr, 3);
  assert_int_equal(t.fired, 3);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* Deadlines order firing; equal deadlines fire in creation order. */
static void test_order(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  int log[16], nlog = 0;
  tctx ts[6];
  uint64_t delays[6] = {30, 10, 20, 10, 0, 30};
  for (int i = 0; i < 6; i++) {
    ts[i] = (tctx){.tag = i, .log = log, .nlog = &nlog};
    assert_int_equal(cymg_timer_add(mgr, delays[i], CYMG_TIMER_ONCE, count_fn, &ts[i], NULL), 0);
  }
  POLL_UNTIL(mgr, nlog == 6);
  int want[6] = {4, 1, 3, 2, 0, 5};
  assert_memory_equal(log, want, sizeof(want));
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* Many timers, cancelled in a scattered order: the heap stays consistent. */
static void test_many_cancel(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  enum { N = 2000 };
  static cymg_timer_id ids[N];
  static tctx ts[N];
  int log[N], nlog = 0;
  for (int i = 0; i < N; i++) {
    ts[i] = (tctx){.tag = i, .log = log, .nlog = &nlog};
    assert_int_equal(cymg_timer_add(mgr, (uint64_t) (i % 17), 0, count_fn, &ts[i], &ids[i]), 0);
  }
  for (int i = 0; i < N; i += 3) assert_int_equal(cymg_timer_cancel(mgr, ids[i]), 0);
  POLL_UNTIL(mgr, cymg_timer_count(mgr) == 0);
  int expect = N - (N + 2) / 3;
  assert_int_equal(nlog, expect);
  for (int i = 0; i < N; i++) assert_int_equal(ts[i].fired, i % 3 == 0 ? 0 : 1);
  /* A stale handle whose slot was reused does not reach the new timer. */
  cymg_timer_id fresh;
  tctx f = {0};
  assert_int_equal(cymg_timer_add(mgr, 1000, 0, count_fn, &f, &fresh), 0);
  assert_int_equal(cymg_timer_cancel(mgr, ids[1]), CYMG_ENOTFOUND);
  assert_true(cymg_timer_active(mgr, fresh));
  assert_int_equal(cymg_timer_cancel(mgr, fresh), 0);
  assert_int_equal(cymg_timer_cancel(mgr, 0), CYMG_ENOTFOUND);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_bad_args(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_timer_id id = 99;
  assert_int_equal(cymg_timer_add(mgr, 1, 0, NULL, NULL, &id), CYMG_EINVAL);
  assert_int_equal(id, 0);
  assert_int_equal(cymg_timer_add(mgr, 1, 8, count_fn, NULL, NULL), CYMG_EINVAL);
  assert_int_equal(cymg_timer_add(NULL, 1, 0, count_fn, NULL, NULL), CYMG_EINVAL);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_shot),          cmocka_unit_test(test_repeat_and_cancel),
      cmocka_unit_test(test_run_now),           cmocka_unit_test(test_cancel_inside_callback),
      cmocka_unit_test(test_order),             cmocka_unit_test(test_many_cancel),
      cmocka_unit_test(test_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
