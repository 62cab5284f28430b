/* Wakeup: the one call other threads may make. Payloads go on a mutex-guarded
 * FIFO; an eventfd (a pipe where there is none) wakes the poll. The descriptor is
 * signalled only when the queue goes from empty to non-empty, so a burst of
 * wakeups costs one write and one read. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

#include "internal.h"

int64_t cymg_wakeup_init(cymg_mgr *mgr) {
  if (mgr == NULL) return CYMG_EINVAL;
  cymg__wakeup *wk = &mgr->wk;
  if (wk->ready) return (int64_t) wk->id;
#if defined(__linux__)
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return -errno;
  wk->rfd = wk->wfd = fd;
#else
  int fds[2];
  if (pipe(fds) < 0) return -errno;
  for (int i = 0; i < 2; i++) {
    fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    fcntl(fds[i], F_SETFD, FD_CLOEXEC);
  }
  wk->rfd = fds[0];
  wk->wfd = fds[1];
#endif
  int rc = mgr->be->add(mgr->be_state, wk->rfd, CYMG__IO_R, wk);
  if (rc < 0) {
    close(wk->rfd);
    if (wk->wfd != wk->rfd) close(wk->wfd);
    wk->rfd = wk->wfd = -1;
    return rc;
  }
  wk->id = cymg__mgr_next_id(mgr);
  pthread_mutex_lock(&wk->lock);
  wk->ready = true;
  pthread_mutex_unlock(&wk->lock);
  return (int64_t) wk->id;
}

void cymg_wakeup_set_limit(cymg_mgr *mgr, size_t bytes) {
  pthread_mutex_lock(&mgr->wk.lock);
  mgr->wk.limit = bytes;
  pthread_mutex_unlock(&mgr->wk.lock);
}

uint64_t cymg_wakeup_orphans(const cymg_mgr *mgr) { return mgr->wk.orphans; }

/* Only the manager thread writes wk->ready, so it reads it without the lock.
 * Before wakeup_init no other thread looks; wakeup_init publishes everything
 * written so far by setting ready under the lock. */
bool cymg__wakeup_lock(cymg_mgr *mgr) {
  if (!mgr->wk.ready) return false;
  pthread_mutex_lock(&mgr->wk.lock);
  return true;
}

void cymg__wakeup_unlock(cymg_mgr *mgr, bool locked) {
  if (locked) pthread_mutex_unlock(&mgr->wk.lock);
}

void cymg__wakeup_closing(cymg_conn *c) {
  bool locked = cymg__wakeup_lock(c->mgr);
  c->wk_closed = true;
  cymg__wakeup_unlock(c->mgr, locked);
}

static void signal_fd(int fd) {
  uint64_t one = 1;
  /* EAGAIN means the descriptor is already readable: the poll will wake. */
  while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

int cymg_wakeup(cymg_mgr *mgr, uint64_t conn_id, const void *data, size_t len) {
  if (mgr == NULL || (data == NULL && len > 0)) return CYMG_EINVAL;
  if (len > SIZE_MAX - sizeof(cymg__wk_item)) return CYMG_ELIMIT;
  cymg__wk_item *it = malloc(sizeof(*it) + len);
  if (it == NULL) return CYMG_ENOMEM;
  it->next = NULL;
  it->conn_id = conn_id;
  it->len = len;
  if (len) memcpy(it->data, data, len);
  cymg__wakeup *wk = &mgr->wk;
  pthread_mutex_lock(&wk->lock);
  int rc = 0;
  /* The id table and the closing marks change only under this lock (see
   * cymg__wakeup_lock), so this lookup is safe from any thread. A payload for
   * a connection that closes after this is still counted as an orphan when
   * it is delivered. */
  cymg_conn *c = wk->ready ? cymg_mgr_find(mgr, conn_id) : NULL;
  if (!wk->ready) {
    rc = CYMG_ESTATE;
  } else if (c == NULL) {
    rc = CYMG_ENOCONN;
  } else if (c->wk_closed) {
    rc = CYMG_ECLOSED;
  } else if (len > wk->limit || wk->queued > wk->limit - len) {
    rc = CYMG_ELIMIT;
  }
  bool was_empty = wk->head == NULL;
  if (rc == 0) {
    if (wk->tail) wk->tail->next = it;
    else wk->head = it;
    wk->tail = it;
    wk->queued += len;
  }
  int fd = wk->wfd;
  pthread_mutex_unlock(&wk->lock);
  if (rc < 0) {
    free(it);
    return rc;
  }
  if (was_empty) signal_fd(fd);
  return 0;
}

void cymg__wakeup_deliver(cymg_mgr *mgr) {
  cymg__wakeup *wk = &mgr->wk;
  char drain[64];
  /* Drain first, then take the queue: a payload pushed in between is either in
   * what we take or has signalled the descriptor again. */
  while (read(wk->rfd, drain, sizeof(drain)) > 0) {
  }
  pthread_mutex_lock(&wk->lock);
  cymg__wk_item *it = wk->head;
  wk->head = wk->tail = NULL;
  wk->queued = 0;
  pthread_mutex_unlock(&wk->lock);
  while (it) {
    cymg__wk_item *next = it->next;
    cymg_conn *c = cymg_mgr_find(mgr, it->conn_id);
    if (c && !(c->flags & CYMG__F_CLOSING)) {
      cymg_str payload = {it->data, it->len};
      cymg_call(c, CYMG_EV_WAKEUP, &payload);
    } else {
      wk->orphans++;
      CYMG__DEBUG("wakeup for connection %llu: gone, payload discarded",
                  (unsigned long long) it->conn_id);
    }
    free(it);
    it = next;
  }
}

void cymg__wakeup_free(cymg_mgr *mgr) {
  cymg__wakeup *wk = &mgr->wk;
  if (wk->rfd >= 0) {
    mgr->be->del(mgr->be_state, wk->rfd);
    close(wk->rfd);
    if (wk->wfd != wk->rfd) close(wk->wfd);
  }
  for (cymg__wk_item *it = wk->head, *next; it; it = next) {
    next = it->next;
    free(it);
  }
  wk->head = wk->tail = NULL;
  wk->rfd = wk->wfd = -1;
  wk->ready = false;
}

int cymg_mgr_interrupt(cymg_mgr *mgr) {
  if (mgr == NULL) return CYMG_EINVAL;
  cymg__wakeup *wk = &mgr->wk;
  pthread_mutex_lock(&wk->lock);
  int fd = wk->ready ? wk->wfd : -1;
  pthread_mutex_unlock(&wk->lock);
  if (fd < 0) return CYMG_ESTATE;
  /* The descriptor wakes the wait; delivery finds no payload and moves on. */
  signal_fd(fd);
  return 0;
}
