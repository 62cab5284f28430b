/* poll(2) backend: the portable fallback. Descriptors live in a dense pollfd array;
 * a table indexed by fd finds a descriptor's slot, so add/mod/del are O(1) and
 * removal swaps the last entry into the hole. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct {
  struct pollfd *pfds;
  void **ptrs;
  int n, cap;
  int *slot_of; /* fd -> index + 1, 0 when absent */
  int slot_cap;
} poll_state;

static int pl_init(void **state) {
  poll_state *s = calloc(1, sizeof(*s));
  if (s == NULL) return CYMG_ENOMEM;
  *state = s;
  return 0;
}

static void pl_free(void *state) {
  poll_state *s = state;
  free(s->pfds);
  free(s->ptrs);
  free(s->slot_of);
  free(s);
}

static short pl_events(unsigned interest) {
  return (short) (((interest & CYMG__IO_R) ? POLLIN : 0) | ((interest & CYMG__IO_W) ? POLLOUT : 0));
}

static int pl_add(void *state, int fd, unsigned interest, void *ptr) {
  poll_state *s = state;
  if (fd < 0) return CYMG_EINVAL;
  if (fd >= s->slot_cap) {
    int cap = s->slot_cap ? s->slot_cap : 64;
    while (cap <= fd) cap *= 2;
    int *p = realloc(s->slot_of, (size_t) cap * sizeof(*p));
    if (p == NULL) return CYMG_ENOMEM;
    memset(p + s->slot_cap, 0, (size_t) (cap - s->slot_cap) * sizeof(*p));
    s->slot_of = p;
    s->slot_cap = cap;
  }
  if (s->slot_of[fd]) return -EEXIST;
  if (s->n == s->cap) {
    int cap = s->cap ? s->cap * 2 : 64;
    struct pollfd *pf = realloc(s->pfds, (size_t) cap * sizeof(*pf));
    if (pf == NULL) return CYMG_ENOMEM;
    s->pfds = pf;
    void **pp = realloc(s->ptrs, (size_t) cap * sizeof(*pp));
    if (pp == NULL) return CYMG_ENOMEM;
    s->ptrs = pp;
    s->cap = cap;
  }
  s->pfds[s->n].fd = fd;
  s->pfds[s->n].events = pl_events(interest);
  s->pfds[s->n].revents = 0;
  s->ptrs[s->n] = ptr;
  s->slot_of[fd] = ++s->n;
  return 0;
}

static int pl_mod(void *state, int fd, unsigned interest, void *ptr) {
  poll_state *s = state;
  if (fd < 0 || fd >= s->slot_cap || !s->slot_of[fd]) return -ENOENT;
  int i = s->slot_of[fd] - 1;
  s->pfds[i].events = pl_events(interest);
  s->ptrs[i] = ptr;
  return 0;
}

static int pl_del(void *state, int fd) {
  poll_state *s = state;
  if (fd < 0 || fd >= s->slot_cap || !s->slot_of[fd]) return -ENOENT;
  int i = s->slot_of[fd] - 1, last = --s->n;
  if (i != last) {
    s->pfds[i] = s->pfds[last];
    s->ptrs[i] = s->ptrs[last];
    s->slot_of[s->pfds[i].fd] = i + 1;
  }
  s->slot_of[fd] = 0;
  return 0;
}

static int pl_wait(void *state, cymg__ready *out, int max, int timeout_ms) {
  poll_state *s = state;
  int n = poll(s->pfds, (nfds_t) s->n, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  int k = 0;
  for (int i = 0; i < s->n && k < n && k < max; i++) {
    short re = s->pfds[i].revents;
    if (re == 0) continue;
    out[k].ptr = s->ptrs[i];
    out[k].events = ((re & (POLLIN | POLLHUP)) ? CYMG__IO_R : 0) |
                    ((re & POLLOUT) ? CYMG__IO_W : 0) |
                    ((re & (POLLERR | POLLHUP | POLLNVAL)) ? CYMG__IO_ERR : 0);
    k++;
  }
  return k;
}

const cymg__backend cymg__backend_poll = {"poll", pl_init, pl_free, pl_add,
                                          pl_mod, pl_del,  pl_wait};
