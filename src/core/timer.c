/* Timers: a binary min-heap of entries. cymg_timer_add's timers live in the
 * slots of a slab; a handle is the slot number plus the slot's generation, so
 * a handle kept after its timer ended is detected instead of touching a reused
 * slot. A connection's protocol deadline is an entry inside the connection
 * (cymg__tnode_arm), which the heap points at directly: no slot, no handle,
 * nothing allocated per connection. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NO_SLOT UINT32_MAX

static cymg__timers *timers_of(const cymg_mgr *mgr) {
  return (cymg__timers *) &mgr->timers;
}

static bool before(const cymg__tnode *x, const cymg__tnode *y) {
  return x->deadline < y->deadline || (x->deadline == y->deadline && x->seq < y->seq);
}

static void heap_set(cymg__timers *t, uint32_t pos, cymg__tnode *n) {
  t->heap[pos] = n;
  n->heap_idx = (int32_t) pos;
}

static void sift_up(cymg__timers *t, uint32_t pos) {
  cymg__tnode *n = t->heap[pos];
  while (pos > 0) {
    uint32_t parent = (pos - 1) / 2;
    if (!before(n, t->heap[parent])) break;
    heap_set(t, pos, t->heap[parent]);
    pos = parent;
  }
  heap_set(t, pos, n);
}

static void sift_down(cymg__timers *t, uint32_t pos) {
  cymg__tnode *n = t->heap[pos];
  for (;;) {
    uint32_t l = 2 * pos + 1, r = l + 1, m = pos;
    cymg__tnode *best = n;
    if (l < t->heap_len && before(t->heap[l], best)) m = l, best = t->heap[l];
    if (r < t->heap_len && before(t->heap[r], best)) m = r, best = t->heap[r];
    if (m == pos) break;
    heap_set(t, pos, t->heap[m]);
    pos = m;
  }
  heap_set(t, pos, n);
}

/* After n's key changed in place. */
static void heap_fix(cymg__timers *t, uint32_t pos) {
  if (pos > 0 && before(t->heap[pos], t->heap[(pos - 1) / 2])) {
    sift_up(t, pos);
  } else {
    sift_down(t, pos);
  }
}

static void heap_remove(cymg__timers *t, cymg__tnode *n) {
  uint32_t pos = (uint32_t) n->heap_idx;
  cymg__tnode *last = t->heap[--t->heap_len];
  n->heap_idx = -1;
  if (last == n) return;
  heap_set(t, pos, last);
  heap_fix(t, pos);
}

/* Room for one more heap entry. */
static int heap_reserve(cymg__timers *t) {
  if (t->heap_len < t->heap_cap) return 0;
  if (t->heap_cap > (UINT32_MAX >> 2)) return CYMG_ENOMEM;
  uint32_t n = t->heap_cap ? t->heap_cap * 2 : 16;
  cymg__tnode **heap = realloc(t->heap, n * sizeof(*heap));
  if (heap == NULL) return CYMG_ENOMEM;
  t->heap = heap;
  t->heap_cap = n;
  return 0;
}

static void heap_insert(cymg__timers *t, cymg__tnode *n) {
  heap_set(t, t->heap_len++, n);
  sift_up(t, t->heap_len - 1);
}

int cymg__tnode_arm(cymg_mgr *mgr, cymg__tnode *n, uint64_t deadline) {
  cymg__timers *t = &mgr->timers;
  if (n->heap_idx < 0) {
    int rc = heap_reserve(t);
    if (rc < 0) return rc;
  }
  n->deadline = deadline;
  n->seq = ++t->seq;
  n->slot = CYMG__TNODE_CONN;
  if (n->heap_idx < 0) {
    heap_insert(t, n);
  } else {
    heap_fix(t, (uint32_t) n->heap_idx);
  }
  return 0;
}

void cymg__tnode_disarm(cymg_mgr *mgr, cymg__tnode *n) {
  if (n->heap_idx >= 0) heap_remove(&mgr->timers, n);
}

static void slot_release(cymg__timers *t, uint32_t slot) {
  cymg__timer *tm = &t->slots[slot];
  tm->in_use = tm->firing = tm->cancelled = false;
  tm->gen++;
  tm->next_free = t->free_head;
  t->free_head = slot;
  t->live--;
}

static cymg__timer *lookup(const cymg__timers *t, cymg_timer_id id, uint32_t *slot_out) {
  uint32_t slot = (uint32_t) (id & 0xffffffffu) - 1, gen = (uint32_t) (id >> 32);
  if (id == 0 || slot >= t->nslots) return NULL;
  cymg__timer *tm = &t->slots[slot];
  if (!tm->in_use || tm->gen != gen || tm->cancelled) return NULL;
  if (slot_out) *slot_out = slot;
  return tm;
}

static int grow(cymg__timers *t) {
  if (t->nslots > (UINT32_MAX >> 2)) return CYMG_ENOMEM;
  uint32_t n = t->nslots ? t->nslots * 2 : 16;
  cymg__timer *old = t->slots;
  cymg__timer *slots = realloc(t->slots, n * sizeof(*slots));
  if (slots == NULL) return CYMG_ENOMEM;
  t->slots = slots;
  /* The heap points at the slots' entries: re-point those that moved. */
  if (slots != old) {
    for (uint32_t i = 0; i < t->nslots; i++) {
      if (slots[i].node.heap_idx >= 0) t->heap[slots[i].node.heap_idx] = &slots[i].node;
    }
  }
  for (uint32_t i = n; i-- > t->nslots;) {
    memset(&slots[i], 0, sizeof(slots[i]));
    slots[i].node.heap_idx = -1;
    slots[i].node.slot = i;
    slots[i].gen = 1;
    slots[i].next_free = t->free_head;
    t->free_head = i;
  }
  t->nslots = n;
  return 0;
}

int cymg_timer_add(cymg_mgr *mgr, uint64_t interval_ms, unsigned flags, cymg_timer_fn fn,
                   void *arg, cymg_timer_id *out) {
  if (out) *out = 0;
  if (mgr == NULL || fn == NULL || (flags & ~3u) || interval_ms > (UINT64_MAX >> 2))
    return CYMG_EINVAL;
  cymg__timers *t = &mgr->timers;
  if (t->nslots == 0) t->free_head = NO_SLOT;
  if (t->free_head == NO_SLOT) {
    int rc = grow(t);
    if (rc < 0) return rc;
  }
  int rc = heap_reserve(t);
  if (rc < 0) return rc;
  uint32_t slot = t->free_head;
  cymg__timer *tm = &t->slots[slot];
  t->free_head = tm->next_free;
  t->live++;
  mgr->now = cymg__millis();
  tm->in_use = true;
  tm->firing = tm->cancelled = false;
  tm->repeat = (flags & CYMG_TIMER_REPEAT) != 0;
  /* A repeating timer of 0 ms would refire within one pass forever: run it once
   * per poll instead. */
  tm->interval = (tm->repeat && interval_ms == 0) ? 1 : interval_ms;
  tm->node.deadline = mgr->now + ((flags & CYMG_TIMER_RUN_NOW) ? 0 : interval_ms);
  tm->node.seq = ++t->seq;
  tm->fn = fn;
  tm->arg = arg;
  heap_insert(t, &tm->node);
  if (out) *out = ((uint64_t) tm->gen << 32) | (slot + 1);
  return 0;
}

int cymg_timer_cancel(cymg_mgr *mgr, cymg_timer_id id) {
  if (mgr == NULL) return CYMG_EINVAL;
  cymg__timers *t = &mgr->timers;
  uint32_t slot;
  cymg__timer *tm = lookup(t, id, &slot);
  if (tm == NULL) return CYMG_ENOTFOUND;
  if (tm->node.heap_idx >= 0) heap_remove(t, &tm->node);
  if (tm->firing) {
    tm->cancelled = true; /* released when its callback returns */
  } else {
    slot_release(t, slot);
  }
  return 0;
}

bool cymg_timer_active(const cymg_mgr *mgr, cymg_timer_id id) {
  return mgr != NULL && lookup(timers_of(mgr), id, NULL) != NULL;
}

size_t cymg_timer_count(const cymg_mgr *mgr) { return mgr ? mgr->timers.live : 0; }

int64_t cymg__timers_next(const cymg__timers *t, uint64_t now) {
  if (t->heap_len == 0) return -1;
  uint64_t d = t->heap[0]->deadline;
  if (d <= now) return 0;
  return (d - now) > INT32_MAX ? INT32_MAX : (int64_t) (d - now);
}

void cymg__timers_run(cymg_mgr *mgr) {
  cymg__timers *t = &mgr->timers;
  uint64_t now = mgr->now;
  /* Timers added or rescheduled during this pass get a larger seq and wait for
   * the next pass, so a pass does bounded work whatever the callbacks do. */
  uint64_t last_seq = t->seq;
  while (t->heap_len > 0) {
    cymg__tnode *n = t->heap[0];
    if (n->deadline > now || n->seq > last_seq) break;
    if (n->slot == CYMG__TNODE_CONN) {
      heap_remove(t, n);
      cymg__conn_deadline_fire((cymg_conn *) ((char *) n - offsetof(cymg_conn, deadline)));
      continue;
    }
    uint32_t slot = n->slot;
    cymg__timer *tm = &t->slots[slot];
    if (tm->repeat) {
      uint64_t next = n->deadline + tm->interval;
      if (next <= now) next = now + tm->interval - (now - n->deadline) % tm->interval;
      n->deadline = next;
      n->seq = ++t->seq;
      sift_down(t, 0);
    } else {
      heap_remove(t, n);
    }
    tm->firing = true;
    uint32_t gen = tm->gen;
    tm->fn(tm->arg);
    tm = &t->slots[slot]; /* the slab may have moved */
    if (tm->gen != gen) continue;
    tm->firing = false;
    if (!tm->repeat || tm->cancelled) {
      if (tm->node.heap_idx >= 0) heap_remove(t, &tm->node);
      slot_release(t, slot);
    }
  }
}

void cymg__timers_free(cymg__timers *t) {
  free(t->slots);
  free(t->heap);
  memset(t, 0, sizeof(*t));
}
