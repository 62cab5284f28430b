/* kqueue(2) backend for the BSDs and macOS. Read and write interest are separate
 * filters, so mod adds or deletes each filter that changed. */
#include "internal.h"

#ifdef CYMG__HAVE_KQUEUE
#include <errno.h>
#include <stdlib.h>
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct {
  int kq;
  struct kevent evs[256];
  unsigned *interest_of; /* fd -> interest registered, to know which filters to drop */
  int cap;
} kq_state;

static int kq_init(void **state) {
  kq_state *s = calloc(1, sizeof(*s));
  if (s == NULL) return CYMG_ENOMEM;
  s->kq = kqueue();
  if (s->kq < 0) {
    int err = -errno;
    free(s);
    return err;
  }
  *state = s;
  return 0;
}

static void kq_free(void *state) {
  kq_state *s = state;
  close(s->kq);
  free(s->interest_of);
  free(s);
}

static int kq_track(kq_state *s, int fd) {
  if (fd < s->cap) return 0;
  int cap = s->cap ? s->cap : 64;
  while (cap <= fd) cap *= 2;
  unsigned *p = realloc(s->interest_of, (size_t) cap * sizeof(*p));
  if (p == NULL) return CYMG_ENOMEM;
  for (int i = s->cap; i < cap; i++) p[i] = 0;
  s->interest_of = p;
  s->cap = cap;
  return 0;
}

static int kq_apply(kq_state *s, int fd, unsigned old, unsigned now, void *ptr) {
  struct kevent ch[2];
  int n = 0;
  if ((now ^ old) & CYMG__IO_R)
    EV_SET(&ch[n++], fd, EVFILT_READ, (now & CYMG__IO_R) ? EV_ADD : EV_DELETE, 0, 0, ptr);
  if ((now ^ old) & CYMG__IO_W)
    EV_SET(&ch[n++], fd, EVFILT_WRITE, (now & CYMG__IO_W) ? EV_ADD : EV_DELETE, 0, 0, ptr);
  if (n && kevent(s->kq, ch, n, NULL, 0, NULL) < 0 ) return -errno;
  s->interest_of[fd] = now;
  return 0;
}

static int kq_add(void *state, int fd, unsigned interest, void *ptr) {
  kq_state *s = state;
  int rc = kq_track(s, fd);
  return rc < 0 ? rc : kq_apply(s, fd, 0, interest, ptr);
}

static int kq_mod(void *state, int fd, unsigned interest, void *ptr) {
  kq_state *s = state;
  int rc = kq_track(s, fd);
  return rc < 0 ? rc : kq_apply(s, fd, s->interest_of[fd], interest, ptr);
}

static int kq_del(void *state, int fd) {
  kq_state *s = state;
  int rc = kq_track(s, fd);
  return rc < 0 ? rc : kq_apply(s, fd, s->interest_of[fd], 0, NULL);
}

static int kq_wait(void *state, cymg__ready *out, int max, int timeout_ms) {
  kq_state *s = state;
  struct timespec ts, *tsp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (long) (timeout_ms % 1000) * 1000000L;
    tsp = &ts;
  }
  if (max > (int) (sizeof(s->evs) / sizeof(s->evs[0]))) max = sizeof(s->evs) / sizeof(s->evs[0]);
  int n = kevent(s->kq, NULL, 0, s->evs, max, tsp);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  /* A descriptor ready for both reading and writing comes as two events: merge. */
  int k = 0;
  for (int i = 0; i < n; i++) {
    unsigned ev = (s->evs[i].filter == EVFILT_READ ? CYMG__IO_R : CYMG__IO_W) |
                  ((s->evs[i].flags & EV_ERROR) ? CYMG__IO_ERR : 0);
    if ((s->evs[i].flags & EV_EOF) && s->evs[i].filter == EVFILT_READ) ev |= CYMG__IO_R;
    int j = 0;
    while (j < k && out[j].ptr != s->evs[i].udata) j++;
    if (j == k) {
      out[k].ptr = s->evs[i].udata;
      out[k++].events = ev;
    } else {
      out[j].events |= ev;
    }
  }
  return k;
}

const cymg__backend cymg__backend_kqueue = {"kqueue", kq_init, kq_free, kq_add,
                                            kq_mod,   kq_del,  kq_wait};
#endif
