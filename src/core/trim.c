/* Giving freed memory back to the system.
 *
 * Connection buffers (16 KiB and up per connection) come from the malloc
 * heap. glibc returns heap memory to the system only from the top of the heap
 * and in whole free chunks above M_TRIM_THRESHOLD, so after a burst of
 * connections the freed buffers, fragmented by what stayed allocated between
 * them, kept the resident set at its peak: 28 MB before 10,000 connections,
 * 118 MB after they had all closed (docs/design.md has the numbers).
 * malloc_trim(0) hands every free page back (madvise).
 *
 * It is not free: about 12 to 24 ms for a half-freed 80 MB heap (one madvise
 * per run of free pages), 0.2 ms when the freed memory is contiguous, 10 us
 * when there is nothing to give back. So it runs only when a wait of the
 * manager found nothing ready (the loop is idle), only once connections have
 * freed at least CYMG__TRIM_MIN_FREED bytes since the last trim, and at most
 * once per CYMG__TRIM_INTERVAL_MS per manager: never per connection, and a
 * busy server reuses its freed memory instead. */
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "internal.h"

#define CYMG__TRIM_MIN_FREED (1u << 20)
#define CYMG__TRIM_INTERVAL_MS 1000

void cymg__trim_note_free(cymg_mgr *mgr, size_t bytes) {
  mgr->trim_freed = bytes > SIZE_MAX - mgr->trim_freed ? SIZE_MAX : mgr->trim_freed + bytes;
}

void cymg__trim_idle(cymg_mgr *mgr) {
  if (mgr->trim_freed < CYMG__TRIM_MIN_FREED) return;
  uint64_t now = cymg__millis(); /* mgr->now is from before the wait */
  if (mgr->trim_at != 0 && now - mgr->trim_at < CYMG__TRIM_INTERVAL_MS) return;
  mgr->trim_freed = 0;
  mgr->trim_at = now ? now : 1;
#if defined(__GLIBC__)
  /* The result only says whether anything was released. */
  (void) malloc_trim(0);
#endif
}
