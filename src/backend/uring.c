/* io_uring(7) backend: readiness through one-shot IORING_OP_POLL_ADD requests.
 *
 * The contract is level-triggered, a one-shot poll is not: a descriptor whose
 * poll completed is armed again at the next wait while its interest remains, and
 * a poll armed on a ready descriptor completes at once, so a descriptor is
 * reported at every wait while it is ready, as epoll would.
 *
 * Registrations live in a table indexed by fd. add/mod only note the wanted
 * interest and put the fd on a dirty list; wait turns the dirty list into SQEs
 * while every fd on it is still the one registered (an fd number resolves at
 * submission, and the core closes a descriptor right after del and may reuse its
 * number before the next wait). Each armed poll carries (sequence << 32 | fd) as
 * user_data and the slot keeps the sequence of its one armed poll: a completion
 * whose sequence is not the slot's armed one (cancelled, replaced, or for a
 * descriptor deleted since) is dropped, so a stale ptr is never handed back.
 *
 * del cancels an armed poll by user_data (not by fd, so it stays right after
 * the close): a pending poll holds a reference to the open file, and without
 * the cancel a closed socket would stay open in the kernel, with no FIN sent,
 * until it next became ready. The cancel is queued and leaves with the next
 * wait's submission; that one io_uring_enter also waits for completions. */
#include "internal.h"

#ifdef CYMG__HAVE_URING
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define UR_ENTRIES 256u
#define UR_CQ_ENTRIES 4096u
#define UR_IGNORE UINT64_MAX /* user_data of requests whose completion means nothing */

enum { UR_USED = 1, UR_ARMED = 2, UR_DIRTY = 4 };

typedef struct {
  void *ptr;
  uint32_t seq;      /* sequence of the armed poll; bumped at every arm and del */
  unsigned interest; /* CYMG__IO_* wanted */
  unsigned armed;    /* CYMG__IO_* of the armed poll */
  unsigned flags;    /* UR_* */
} ur_slot;

typedef struct {
  struct io_uring ring;
  unsigned skip_flags; /* IOSQE_CQE_SKIP_SUCCESS when the kernel has it */
  ur_slot *slots;
  int nslots;
  int *dirty; /* fds whose poll needs arming or changing; nslots long */
  int ndirty;
} ur_state;

/* An SQE, submitting what is queued first when the ring is full: nothing is
 * ever dropped. NULL only when the kernel refuses the submission. */
static struct io_uring_sqe *ur_sqe(ur_state *s, int *err) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
  while (sqe == NULL) {
    int rc = io_uring_submit(&s->ring);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      *err = rc;
      return NULL;
    }
    sqe = io_uring_get_sqe(&s->ring);
    if (sqe == NULL && rc <= 0) {
      /* The kernel took nothing (completions backed up, -EBUSY): reap
       * nothing here, the next wait does; report rather than spin. */
      *err = rc < 0 ? rc : -EBUSY;
      return NULL;
    }
  }
  return sqe;
}

static int ur_init(void **state) {
  ur_state *s = calloc(1, sizeof(*s));
  if (s == NULL) return CYMG_ENOMEM;
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  p.cq_entries = UR_CQ_ENTRIES;
  int rc = io_uring_queue_init_params(UR_ENTRIES, &s->ring, &p);
  if (rc == -EINVAL) { /* a kernel older than 5.19 lacks the last two flags */
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = UR_CQ_ENTRIES;
    rc = io_uring_queue_init_params(UR_ENTRIES, &s->ring, &p);
  }
  if (rc < 0) { /* ENOSYS, EPERM (io_uring_disabled, seccomp), ENOMEM... */
    free(s);
    return rc;
  }
  /* One io_uring_enter per wait needs the timeout as an argument (EXT_ARG),
   * and completions must never be lost when the CQ ring is full (NODROP). */
  rc = 0;
  if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) rc = CYMG_ENOTSUP;
  struct io_uring_probe *probe = rc == 0 ? io_uring_get_probe_ring(&s->ring) : NULL;
  if (rc == 0 && probe == NULL) rc = CYMG_ENOTSUP;
  if (probe) {
    if (!io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) ||
        !io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE))
      rc = CYMG_ENOTSUP;
    io_uring_free_probe(probe);
  }
  if (rc < 0) {
    io_uring_queue_exit(&s->ring);
    free(s);
    return rc;
  }
  if (p.features & IORING_FEAT_CQE_SKIP) s->skip_flags = IOSQE_CQE_SKIP_SUCCESS;
  *state = s;
  return 0;
}

static void ur_free(void *state) {
  ur_state *s = state;
  io_uring_queue_exit(&s->ring); /* cancels every request still pending */
  free(s->slots);
  free(s->dirty);
  free(s);
}

/* The slot table and the dirty list grow together: an fd is on the dirty list at
 * most once, so a list as long as the table never needs to grow when a
 * completion asks for its re-arm. */
static int ur_grow(ur_state *s, int fd) {
  if (fd < s->nslots) return 0;
  int n = s->nslots ? s->nslots : 64;
  while (n <= fd) {
    if (n > (1 << 29)) return CYMG_ENOMEM;
    n *= 2;
  }
  int *d = realloc(s->dirty, (size_t) n * sizeof(*d));
  if (d == NULL) return CYMG_ENOMEM;
  s->dirty = d;
  ur_slot *p = realloc(s->slots, (size_t) n * sizeof(*p));
  if (p == NULL) return CYMG_ENOMEM;
  memset(p + s->nslots, 0, (size_t) (n - s->nslots) * sizeof(*p));
  s->slots = p;
  s->nslots = n;
  return 0;
}

static void ur_mark_dirty(ur_state *s, int fd) {
  ur_slot *sl = &s->slots[fd];
  if (sl->flags & UR_DIRTY) return;
  s->dirty[s->ndirty++] = fd;
  sl->flags |= UR_DIRTY;
}

static int ur_add(void *state, int fd, unsigned interest, void *ptr) {
  ur_state *s = state;
  if (fd < 0) return CYMG_EINVAL;
  int rc = ur_grow(s, fd);
  if (rc < 0) return rc;
  ur_slot *sl = &s->slots[fd];
  if (sl->flags & UR_USED) return -EEXIST;
  ur_mark_dirty(s, fd);
  sl->flags |= UR_USED;
  sl->ptr = ptr;
  sl->interest = interest & (CYMG__IO_R | CYMG__IO_W);
  return 0;
}

static int ur_mod(void *state, int fd, unsigned interest, void *ptr) {
  ur_state *s = state;
  if (fd < 0 || fd >= s->nslots || !(s->slots[fd].flags & UR_USED)) return -ENOENT;
  ur_slot *sl = &s->slots[fd];
  ur_mark_dirty(s, fd);
  sl->ptr = ptr;
  sl->interest = interest & (CYMG__IO_R | CYMG__IO_W);
  return 0;
}

/* Queues the cancel of fd's armed poll; its -ECANCELED completion is stale. */
static int ur_disarm(ur_state *s, int fd) {
  ur_slot *sl = &s->slots[fd];
  if (!(sl->flags & UR_ARMED)) return 0;
  int err = 0;
  struct io_uring_sqe *sqe = ur_sqe(s, &err);
  if (sqe == NULL) return err;
  io_uring_prep_poll_remove(sqe, ((uint64_t) sl->seq << 32) | (uint32_t) fd);
  io_uring_sqe_set_data64(sqe, UR_IGNORE);
  sqe->flags |= (uint8_t) s->skip_flags;
  sl->flags &= ~(unsigned) UR_ARMED;
  sl->seq++;
  return 0;
}

static int ur_del(void *state, int fd) {
  ur_state *s = state;
  if (fd < 0 || fd >= s->nslots || !(s->slots[fd].flags & UR_USED)) return -ENOENT;
  ur_slot *sl = &s->slots[fd];
  int rc = ur_disarm(s, fd);
  sl->flags &= ~(unsigned) UR_USED;
  sl->ptr = NULL;
  sl->interest = 0;
  sl->seq++; /* even a poll whose cancel could not be queued is stale now */
  return rc;
}

static unsigned ur_poll_mask(unsigned interest) {
  return ((interest & CYMG__IO_R) ? POLLIN | POLLRDHUP : 0) | ((interest & CYMG__IO_W) ? POLLOUT : 0);
}

/* Brings every dirty fd's armed poll in line with its interest. An fd whose
 * SQE cannot be had stays dirty for the next wait. */
static int ur_arm_dirty(ur_state *s) {
  int i = 0, rc = 0;
  for (; i < s->ndirty; i++) {
    int fd = s->dirty[i];
    ur_slot *sl = &s->slots[fd];
    if (!(sl->flags & UR_USED)) {
      sl->flags &= ~(unsigned) UR_DIRTY;
      continue;
    }
    if ((sl->flags & UR_ARMED) && sl->armed != sl->interest) {
      rc = ur_disarm(s, fd);
      if (rc < 0) break;
    }
    if (!(sl->flags & UR_ARMED) && sl->interest != 0) {
      struct io_uring_sqe *sqe = ur_sqe(s, &rc);
      if (sqe == NULL) break;
      sl->seq++;
      io_uring_prep_poll_add(sqe, fd, ur_poll_mask(sl->interest));
      io_uring_sqe_set_data64(sqe, ((uint64_t) sl->seq << 32) | (uint32_t) fd);
      sl->armed = sl->interest;
      sl->flags |= UR_ARMED;
    }
    sl->flags &= ~(unsigned) UR_DIRTY;
  }
  if (i > 0 && i < s->ndirty) /* dirty is NULL before the first add */
    memmove(s->dirty, s->dirty + i, (size_t) (s->ndirty - i) * sizeof(*s->dirty));
  s->ndirty -= i;
  return rc;
}

/* Turns ready completions into reports, up to max; the rest stay in the CQ
 * ring for the next wait. */
static int ur_reap(ur_state *s, cymg__ready *out, int max) {
  int n = 0;
  struct io_uring_cqe *cqe;
  while (n < max && io_uring_peek_cqe(&s->ring, &cqe) == 0) {
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&s->ring, cqe);
    if (ud == UR_IGNORE) continue;
    int fd = (int) (uint32_t) ud;
    if (fd < 0 || fd >= s->nslots) continue;
    ur_slot *sl = &s->slots[fd];
    if (!(sl->flags & UR_ARMED) || sl->seq != (uint32_t) (ud >> 32)) continue; /* stale */
    sl->flags &= ~(unsigned) UR_ARMED;
    if (sl->interest != 0) ur_mark_dirty(s, fd); /* level-triggered: armed again next wait */
    unsigned ev;
    if (res < 0) {
      ev = CYMG__IO_ERR | sl->interest; /* the poll itself failed: let I/O find out why */
    } else {
      unsigned e = (unsigned) res;
      ev = ((e & (POLLIN | POLLRDHUP | POLLHUP)) ? CYMG__IO_R : 0) |
           ((e & POLLOUT) ? CYMG__IO_W : 0) | ((e & (POLLERR | POLLHUP | POLLNVAL)) ? CYMG__IO_ERR : 0);
    }
    out[n].ptr = sl->ptr;
    out[n].events = ev;
    n++;
  }
  return n;
}

static int ur_wait(void *state, cymg__ready *out, int max, int timeout_ms) {
  ur_state *s = state;
  int rc = ur_arm_dirty(s);
  if (rc < 0) return rc;
  /* Completions already waiting: only submit (none at all when nothing is
   * queued), don't sleep. */
  if (io_uring_cq_ready(&s->ring) > 0) timeout_ms = 0;
  if (timeout_ms == 0) {
    rc = io_uring_sq_ready(&s->ring) > 0 ? io_uring_submit(&s->ring) : 0;
  } else if (timeout_ms < 0) {
    rc = io_uring_submit_and_wait(&s->ring, 1);
  } else {
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (long long) (timeout_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe = NULL;
    rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) return rc;
  return ur_reap(s, out, max);
}

const cymg__backend cymg__backend_uring = {"io_uring", ur_init, ur_free, ur_add,
                                           ur_mod,     ur_del,  ur_wait};
#endif
