/* Helpers shared by the cmocka tests. */
#ifndef CYMG_TEST_H
#define CYMG_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cymg/cymg.h"

/* Polls mgr until cond holds. The bound only keeps a broken test from hanging;
 * it is not a timing assertion, so it is generous. */
#define CYMG_TEST_WAIT_MS 20000
#define POLL_UNTIL(mgr, cond)                                                   \
  do {                                                                          \
    uint64_t poll_until_start_ = cymg_mgr_now(mgr);                             \
    while (!(cond)) {                                                           \
      assert_true(cymg_mgr_poll((mgr), 50) >= 0);                               \
      if (cymg_mgr_now(mgr) - poll_until_start_ > CYMG_TEST_WAIT_MS)            \
        fail_msg("timed out waiting for: %s", #cond);                           \
    }                                                                           \
  } while (0)

/* Frees a manager after checking that nothing is left alive but what the test
 * expects to clean up: every test ends with no live connections or timers. */
#define ASSERT_MGR_CLEAN(mgr)                                                   \
  do {                                                                          \
    assert_int_equal(cymg_mgr_count(mgr), 0);                                   \
    assert_int_equal(cymg_timer_count(mgr), 0);                                 \
  } while (0)

/* A manager on the backend the test runs with (CYMG_BACKEND). */
static inline cymg_mgr *new_mgr(void) {
  cymg_mgr *mgr = NULL;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  return mgr;
}

/* "tcp://ADDR:PORT" of a listener, to connect to it. */
static inline void url_of(const cymg_conn *lsn, char *url, size_t len) {
  char a[64];
  assert_true(cymg_addr_str(cymg_conn_local(lsn), true, a, sizeof(a)) > 0);
  snprintf(url, len, "tcp://%s", a);
}

/* Closes everything, lets CLOSE run, asserts nothing is left, frees. */
static inline void close_all_and_free(cymg_mgr *mgr) {
  for (cymg_conn *c = cymg_mgr_first(mgr); c; c = cymg_conn_next(c)) cymg_close(c);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

#endif
