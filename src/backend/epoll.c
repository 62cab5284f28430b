/* epoll(7) backend, level-triggered: the loop keeps interest in step with its
 * buffers, so a descriptor is only reported while there is work it can do. */
#include "internal.h"

#ifdef CYMG__HAVE_EPOLL
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

typedef struct {
  int epfd;
  struct epoll_event evs[256];
} epoll_state;

static int ep_init(void **state) {
  epoll_state *s = calloc(1, sizeof(*s));
  if (s == NULL) return CYMG_ENOMEM;
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (s->epfd < 0) {
    int err = -errno;
    free(s);
    return err;
  }
  *state = s;
  return 0;
}

static void ep_free(void *state) {
  epoll_state *s = state;
  close(s->epfd);
  free(s);
}

static int ep_ctl(void *state, int op, int fd, unsigned interest, void *ptr) {
  epoll_state *s = state;
  struct epoll_event ev = {0};
  ev.events = ((interest & CYMG__IO_R) ? EPOLLIN | EPOLLRDHUP : 0) |
              ((interest & CYMG__IO_W) ? EPOLLOUT : 0);
  ev.data.ptr = ptr;
  return epoll_ctl(s->epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

static int ep_add(void *state, int fd, unsigned interest, void *ptr) {
  return ep_ctl(state, EPOLL_CTL_ADD, fd, interest, ptr);
}

static int ep_mod(void *state, int fd, unsigned interest, void *ptr) {
  return ep_ctl(state, EPOLL_CTL_MOD, fd, interest, ptr);
}

static int ep_del(void *state, int fd) {
  return ep_ctl(state, EPOLL_CTL_DEL, fd, 0, NULL);
}

static int ep_wait(void *state, cymg__ready *out, int max, int timeout_ms) {
  epoll_state *s = state;
  if (max > (int) (sizeof(s->evs) / sizeof(s->evs[0]))) max = sizeof(s->evs) / sizeof(s->evs[0]);
  int n = epoll_wait(s->epfd, s->evs, max, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    uint32_t e = s->evs[i].events;
    out[i].ptr = s->evs[i].data.ptr;
    out[i].events = ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) ? CYMG__IO_R : 0) |
                    ((e & EPOLLOUT) ? CYMG__IO_W : 0) |
                    ((e & (EPOLLERR | EPOLLHUP)) ? CYMG__IO_ERR : 0);
  }
  return n;
}

const cymg__backend cymg__backend_epoll = {"epoll", ep_init, ep_free, ep_add,
                                           ep_mod,  ep_del,  ep_wait};
#endif
