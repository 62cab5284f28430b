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

#endif
