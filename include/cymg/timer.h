/* Timers on a manager's monotonic millisecond clock. */
#ifndef CYMG_TIMER_H
#define CYMG_TIMER_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A timer handle: an id that stays safe to use after the timer has ended (its
 * calls then return CYMG_ENOTFOUND / false). 0 is never a valid handle. */
typedef uint64_t cymg_timer_id;

typedef void (*cymg_timer_fn)(void *arg);

enum {
  CYMG_TIMER_ONCE = 0,    /* fire once, interval_ms from now */
  CYMG_TIMER_REPEAT = 1,  /* fire every interval_ms until cancelled */
  CYMG_TIMER_RUN_NOW = 2, /* also fire at the next poll */
};

/* Adds a timer that calls fn(arg) on the manager's thread. flags: CYMG_TIMER_*
 * or-ed. A repeating timer is rescheduled from its deadline, not from when it ran,
 * so it does not drift; missed periods are skipped, not bunched. Timers due in
 * the same poll run in deadline order, ties in creation order.
 * Returns 0 and sets *out (may be NULL), or CYMG_EINVAL / CYMG_ENOMEM. */
CYMG_API int cymg_timer_add(cymg_mgr *mgr, uint64_t interval_ms, unsigned flags,
                            cymg_timer_fn fn, void *arg, cymg_timer_id *out);

/* Cancels a timer (also from inside its own callback). Returns 0, or
 * CYMG_ENOTFOUND when it had already ended. Manager thread only. */
CYMG_API int cymg_timer_cancel(cymg_mgr *mgr, cymg_timer_id t);

/* Whether the timer is still scheduled. */
CYMG_API bool cymg_timer_active(const cymg_mgr *mgr, cymg_timer_id t);

/* Number of live timers. */
CYMG_API size_t cymg_timer_count(const cymg_mgr *mgr);

#ifdef __cplusplus
}
#endif
#endif
