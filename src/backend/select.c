/* select(2) backend: the most portable fallback. An fd_set holds descriptors
 * below FD_SETSIZE only; writing a bit beyond it corrupts memory, so add()
 * refuses such a descriptor with an ERROR line and CYMG_ELIMIT instead (the
 * connection then fails with that reason, the others go on). Interest and the
 * handed-back pointer live in a table indexed by fd; the wait copies the two
 * master sets, as select overwrites its arguments. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "internal.h"

typedef struct {
  fd_set rd, wr;             /* masters: the interest of every descriptor */
  void *ptrs[FD_SETSIZE];    /* fd -> pointer handed back */
  unsigned char in[FD_SETSIZE]; /* fd -> 1 while registered */
  int maxfd;                 /* highest registered fd, -1 when none */
  int scan_from;             /* where the next wait starts its scan (fairness) */
} select_state;

static int sl_init(void **state) {
  select_state *s = calloc(1, sizeof(*s));
  if (s == NULL) return CYMG_ENOMEM;
  FD_ZERO(&s->rd);
  FD_ZERO(&s->wr);
  s->maxfd = -1;
  *state = s;
  return 0;
}

static void sl_free(void *state) { free(state); }

static void sl_set(select_state *s, int fd, unsigned interest) {
  if (interest & CYMG__IO_R) FD_SET(fd, &s->rd);
  else FD_CLR(fd, &s->rd);
  if (interest & CYMG__IO_W) FD_SET(fd, &s->wr);
  else FD_CLR(fd, &s->wr);
}

static int sl_add(void *state, int fd, unsigned interest, void *ptr) {
  select_state *s = state;
  if (fd < 0) return CYMG_EINVAL;
  if (fd >= FD_SETSIZE) {
    CYMG__ERR("select backend: descriptor %d is not below FD_SETSIZE (%d); refused "
              "(use the epoll or poll backend for more descriptors)",
              fd, FD_SETSIZE);
    return CYMG_ELIMIT;
  }
  if (s->in[fd]) return -EEXIST;
  s->in[fd] = 1;
  s->ptrs[fd] = ptr;
  sl_set(s, fd, interest);
  if (fd > s->maxfd) s->maxfd = fd;
  return 0;
}

static int sl_mod(void *state, int fd, unsigned interest, void *ptr) {
  select_state *s = state;
  if (fd < 0 || fd >= FD_SETSIZE || !s->in[fd]) return -ENOENT;
  s->ptrs[fd] = ptr;
  sl_set(s, fd, interest);
  return 0;
}

static int sl_del(void *state, int fd) {
  select_state *s = state;
  if (fd < 0 || fd >= FD_SETSIZE || !s->in[fd]) return -ENOENT;
  s->in[fd] = 0;
  s->ptrs[fd] = NULL;
  sl_set(s, fd, 0);
  while (s->maxfd >= 0 && !s->in[s->maxfd]) s->maxfd--;
  return 0;
}

static int sl_wait(void *state, cymg__ready *out, int max, int timeout_ms) {
  select_state *s = state;
  fd_set rd = s->rd, wr = s->wr;
  struct timeval tv, *tvp = NULL;
  if (timeout_ms >= 0) {
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    tvp = &tv;
  }
  int n = select(s->maxfd + 1, &rd, &wr, NULL, tvp);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  if (n == 0 || s->maxfd < 0) return 0;
  /* Level-triggered: what does not fit in `max` is reported by the next wait.
   * The scan starts where the last one stopped so that low descriptors cannot
   * starve high ones when more are ready than fit. */
  int k = 0, span = s->maxfd + 1, start = s->scan_from % span;
  for (int j = 0; j < span && k < max; j++) {
    int fd = (start + j) % span;
    if (!s->in[fd]) continue;
    unsigned e = (FD_ISSET(fd, &rd) ? CYMG__IO_R : 0) | (FD_ISSET(fd, &wr) ? CYMG__IO_W : 0);
    if (e == 0) continue;
    out[k].ptr = s->ptrs[fd];
    out[k].events = e;
    k++;
    s->scan_from = fd + 1;
  }
  return k;
}

const cymg__backend cymg__backend_select = {"select", sl_init, sl_free, sl_add,
                                            sl_mod,   sl_del,  sl_wait};
