/* The manager: backend choice, the poll loop (wait, then dispatch), the connection
 * list and the id table. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define CYMG__DEFAULT_RECV_LIMIT (1u << 20)
#define CYMG__DEFAULT_SEND_LIMIT (64u << 20)
/* Output backpressure: a connection stops reading with more than 1 MiB unsent
 * and resumes at 256 KiB. Above what the kernel buffers, 1 MiB keeps a fast
 * link busy for a while; the gap between the marks keeps a connection from
 * flipping its interest on every write. */
#define CYMG__DEFAULT_WM_HIGH (1u << 20)
#define CYMG__DEFAULT_WM_LOW (256u << 10)
#define CYMG__DEFAULT_STALL_MS 60000u

uint64_t cymg__millis(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

void cymg__mgr_errmsg(cymg_mgr *mgr, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(mgr->errmsg, sizeof(mgr->errmsg), fmt, ap);
  va_end(ap);
  CYMG__DEBUG("%s", mgr->errmsg);
}

uint64_t cymg__mgr_next_id(cymg_mgr *mgr) { return ++mgr->next_id; }

/* Every backend the library knows, in the order AUTO tries them: the first one
 * built in whose init succeeds runs (io_uring can be compiled in and still be
 * refused by the kernel, a sysctl or a seccomp filter). NULL: not on this OS or
 * not built. io_uring comes after epoll for now: it polls readiness through
 * the ring, with no measured gain over epoll yet, and a killed process's
 * listener outlives it briefly (docs/design.md); CYMG_BACKEND=io_uring picks
 * it. */
static const struct {
  int id;
  const char *name;
  const cymg__backend *be;
} backends[] = {
    {CYMG_BACKEND_EPOLL, "epoll",
#ifdef CYMG__HAVE_EPOLL
     &cymg__backend_epoll},
#else
     NULL},
#endif
    {CYMG_BACKEND_KQUEUE, "kqueue",
#ifdef CYMG__HAVE_KQUEUE
     &cymg__backend_kqueue},
#else
     NULL},
#endif
    {CYMG_BACKEND_IO_URING, "io_uring",
#ifdef CYMG__HAVE_URING
     &cymg__backend_uring},
#else
     NULL},
#endif
    {CYMG_BACKEND_POLL, "poll", &cymg__backend_poll},
    {CYMG_BACKEND_SELECT, "select", &cymg__backend_select},
};
#define CYMG__NBACKENDS (sizeof(backends) / sizeof(backends[0]))

/* The backend `which` names, with CYMG_BACKEND read for AUTO: sets *idx to its
 * row, or to -1 for AUTO left to choose. CYMG_EINVAL for a number or a
 * CYMG_BACKEND value that names none (logged with the valid names). */
static int backend_row(int which, int *idx) {
  *idx = -1;
  if (which == CYMG_BACKEND_AUTO) {
    const char *env = getenv("CYMG_BACKEND");
    if (env == NULL || *env == '\0') return 0;
    for (size_t i = 0; i < CYMG__NBACKENDS; i++)
      if (strcmp(env, backends[i].name) == 0) {
        *idx = (int) i;
        return 0;
      }
    CYMG__ERR("CYMG_BACKEND=%s names no backend; valid: io_uring, epoll, kqueue, poll, select",
              env);
    return CYMG_EINVAL;
  }
  for (size_t i = 0; i < CYMG__NBACKENDS; i++)
    if (backends[i].id == which) {
      *idx = (int) i;
      return 0;
    }
  return CYMG_EINVAL;
}

/* Picks and starts the backend: *be and *state set, 0; or a negative code
 * (CYMG_ENOTSUP for one this OS or build lacks, the init's code for one that
 * would not start). AUTO takes the first row that starts and says at DEBUG
 * level which one and why the ones before it did not. */
static int start_backend(int which, const cymg__backend **be, void **state) {
  int idx, rc = backend_row(which, &idx);
  if (rc < 0) return rc;
  if (idx >= 0) {
    *be = backends[idx].be;
    if (*be == NULL) return CYMG_ENOTSUP;
    return (*be)->init(state);
  }
  for (size_t i = 0; i < CYMG__NBACKENDS; i++) {
    if (backends[i].be == NULL) continue;
    rc = backends[i].be->init(state);
    if (rc == 0) {
      *be = backends[i].be;
      CYMG__DEBUG("backend %s", backends[i].name);
      return 0;
    }
    CYMG__DEBUG("backend %s unavailable (%s), trying the next", backends[i].name,
                cymg_strerror(rc));
  }
  return rc;
}

/* sendfile(2) has no MSG_NOSIGNAL: on a socket whose peer is gone it raises
 * SIGPIPE, whose default action ends the process, so one client closing in the
 * middle of a download would kill every program serving files. A program that
 * chose its own disposition (a handler, or SIG_IGN) keeps it; only the default
 * is replaced, once, as servers such as nginx do for the same reason. */
static void ignore_default_sigpipe(void) {
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
      !(old.sa_flags & SA_SIGINFO)) {
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, NULL) != 0) CYMG__ERR("cannot ignore SIGPIPE: %s", strerror(errno));
  }
}

int cymg_mgr_new(cymg_mgr **out, int backend) {
  if (out == NULL) return CYMG_EINVAL;
  *out = NULL;
  cymg_mgr *mgr = calloc(1, sizeof(*mgr));
  if (mgr == NULL) return CYMG_ENOMEM;
  mgr->ready_cap = 256;
  mgr->ready = calloc((size_t) mgr->ready_cap, sizeof(*mgr->ready));
  mgr->idtab_size = 64;
  mgr->idtab = calloc(mgr->idtab_size, sizeof(*mgr->idtab));
  int rc = (mgr->ready && mgr->idtab) ? start_backend(backend, &mgr->be, &mgr->be_state)
                                      : CYMG_ENOMEM;
  if (rc < 0) {
    free(mgr->ready);
    free(mgr->idtab);
    free(mgr);
    return rc;
  }
  mgr->recv_limit = CYMG__DEFAULT_RECV_LIMIT;
  mgr->send_limit = CYMG__DEFAULT_SEND_LIMIT;
  mgr->wm_high = CYMG__DEFAULT_WM_HIGH;
  mgr->wm_low = CYMG__DEFAULT_WM_LOW;
  mgr->stall_ms = CYMG__DEFAULT_STALL_MS;
  mgr->tls_hs_ms = 10000;
  mgr->wk.rfd = mgr->wk.wfd = -1;
  mgr->wk.limit = 64u << 20;
  pthread_mutex_init(&mgr->wk.lock, NULL);
  mgr->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  mgr->now = cymg__millis();
  ignore_default_sigpipe();
  *out = mgr;
  return 0;
}

void cymg_mgr_set_limits(cymg_mgr *mgr, size_t recv_limit, size_t send_limit) {
  if (recv_limit) mgr->recv_limit = recv_limit;
  if (send_limit) mgr->send_limit = send_limit;
}

int cymg_mgr_set_watermarks(cymg_mgr *mgr, size_t high, size_t low) {
  if (mgr == NULL || high == 0 || low > high) return CYMG_EINVAL;
  mgr->wm_high = high;
  mgr->wm_low = low;
  return 0;
}

int cymg_mgr_set_send_stall(cymg_mgr *mgr, uint32_t ms) {
  if (mgr == NULL) return CYMG_EINVAL;
  mgr->stall_ms = ms;
  return 0;
}

void cymg_mgr_set_poll_events(cymg_mgr *mgr, bool on) { mgr->poll_events = on; }

void cymg_mgr_set_read_events(cymg_mgr *mgr, bool on) { mgr->read_events = on; }

int cymg_mgr_set_hosts_file(cymg_mgr *mgr, const char *path) {
  char *copy = NULL;
  if (path && (copy = strdup(path)) == NULL) return CYMG_ENOMEM;
  free(mgr->hosts_file);
  mgr->hosts_file = copy;
  return 0;
}

/* Frees every connection whose close was requested; each gets CLOSE first. */
static void reap_closing(cymg_mgr *mgr) {
  while (mgr->closing) {
    cymg_conn *c = mgr->closing;
    mgr->closing = c->closing_next;
    cymg_call(c, CYMG_EV_CLOSE, NULL);
    cymg__conn_free(c);
  }
}

void cymg_mgr_free(cymg_mgr *mgr) {
  if (mgr == NULL) return;
  cymg__dns_free(mgr);
  for (cymg_conn *c = mgr->conns; c; c = c->next) cymg_close(c);
  reap_closing(mgr);
  /* Connections opened by CLOSE handlers during teardown are closed too. */
  while (mgr->conns) {
    for (cymg_conn *c = mgr->conns; c; c = c->next) cymg_close(c);
    reap_closing(mgr);
  }
  cymg__tls_mgr_free(mgr);
  cymg__static_cache_free(mgr);
  cymg__timers_free(&mgr->timers);
  cymg__wakeup_free(mgr);
  pthread_mutex_destroy(&mgr->wk.lock);
  mgr->be->free(mgr->be_state);
  if (mgr->reserve_fd >= 0) close(mgr->reserve_fd);
  free(mgr->ready);
  free(mgr->idtab);
  free(mgr->hosts_file);
  free(mgr->read_scratch);
  free(mgr);
}

int cymg_mgr_prepare(cymg_mgr *mgr, int timeout_ms) {
  if (mgr == NULL) return 0;
  mgr->now = cymg__millis();
  /* Queued output leaves now, and the backend learns every interest change
   * made since the last poll, connections opened meanwhile included. */
  cymg__conns_prepare(mgr);
  /* Deferred work and closes are due now: don't sleep on them. Most often
   * that is the WRITE report of output just flushed above: asking the backend
   * with a zero timeout then costs a system call that finds nothing, so block()
   * skips it once (the caller's own zero timeout is always honoured). */
  bool due = mgr->pending || mgr->closing;
  mgr->skip_wait = due && timeout_ms != 0 && !mgr->skipped;
  if (due) timeout_ms = 0;
  int64_t next = cymg__timers_next(&mgr->timers, mgr->now);
  if (next >= 0 && (timeout_ms < 0 || next < timeout_ms)) timeout_ms = (int) next;
  return timeout_ms;
}

int cymg_mgr_block(cymg_mgr *mgr, int timeout_ms) {
  if (mgr == NULL) return CYMG_EINVAL;
  /* Only the backend's wait and the ready list: nothing a call made meanwhile
   * from another thread (under the caller's lock) may touch. */
  if (mgr->skip_wait && timeout_ms == 0) {
    mgr->skip_wait = false;
    mgr->skipped = true;
    mgr->nready = 0;
    mgr->waited = true;
    return 0;
  }
  mgr->skipped = false;
  int n = mgr->be->wait(mgr->be_state, mgr->ready, mgr->ready_cap, timeout_ms);
  if (n == 0) cymg__trim_idle(mgr); /* nothing to do: a moment to give memory back */
  mgr->nready = n > 0 ? n : 0;
  mgr->waited = true;
  return n;
}

int cymg_mgr_wait(cymg_mgr *mgr, int timeout_ms) {
  if (mgr == NULL) return CYMG_EINVAL;
  return cymg_mgr_block(mgr, cymg_mgr_prepare(mgr, timeout_ms));
}

void cymg_mgr_dispatch(cymg_mgr *mgr) {
  if (mgr == NULL) return;
  mgr->now = cymg__millis();
  /* Ready descriptors. A connection closed earlier in this pass is still
   * allocated (freed only below), so its pointer stays valid to test. */
  for (int i = 0; i < mgr->nready; i++) {
    void *ptr = mgr->ready[i].ptr;
    if (ptr == &mgr->wk) {
      cymg__wakeup_deliver(mgr);
    } else if ((uintptr_t) ptr - (uintptr_t) mgr->dns_io < mgr->dns_io_len) {
      cymg__dns_io(mgr, ptr, mgr->ready[i].events);
    } else {
      cymg__conn_io(ptr, mgr->ready[i].events);
    }
  }
  mgr->nready = 0;
  mgr->waited = false;
  /* Deferred events; handlers may defer more, which then run in this pass too. */
  while (mgr->pending) {
    cymg_conn *c = mgr->pending;
    mgr->pending = c->pending_next;
    c->flags &= ~CYMG__F_PENDING;
    cymg__conn_run_pending(c);
  }
  cymg__timers_run(mgr);
  if (mgr->npoll) {
    uint64_t now = mgr->now;
    for (cymg_conn *c = mgr->conns; c; c = c->next) {
      if ((c->flags & (CYMG__F_WANT_POLL | CYMG__F_CLOSING)) == CYMG__F_WANT_POLL)
        cymg_call(c, CYMG_EV_POLL, &now);
    }
  }
  reap_closing(mgr);
}

int cymg_mgr_poll(cymg_mgr *mgr, int timeout_ms) {
  if (mgr == NULL) return CYMG_EINVAL;
  int n = cymg_mgr_wait(mgr, timeout_ms);
  cymg_mgr_dispatch(mgr);
  return n;
}

const char *cymg_mgr_backend(const cymg_mgr *mgr) { return mgr->be->name; }
const char *cymg_mgr_errmsg(const cymg_mgr *mgr) { return mgr->errmsg; }
uint64_t cymg_mgr_now(const cymg_mgr *mgr) { return mgr->now; }
/* The user's connections only: the resolver's TCP queries are hidden. */
static cymg_conn *skip_hidden(cymg_conn *c) {
  while (c && (c->flags & CYMG__F_HIDDEN)) c = c->next;
  return c;
}
cymg_conn *cymg_mgr_first(cymg_mgr *mgr) { return skip_hidden(mgr->conns); }
cymg_conn *cymg_conn_next(cymg_conn *c) { return skip_hidden(c->next); }
size_t cymg_mgr_count(const cymg_mgr *mgr) { return mgr->nconns - mgr->nhidden; }
void cymg_mgr_set_userdata(cymg_mgr *mgr, void *p) { mgr->userdata = p; }
void *cymg_mgr_userdata(const cymg_mgr *mgr) { return mgr->userdata; }

/* ---- the id table: ids are sequential, so the low bits hash them well ---- */

static void idtab_insert(cymg_mgr *mgr, cymg_conn *c) {
  if (mgr->nconns >= mgr->idtab_size) {
    size_t size = mgr->idtab_size * 2;
    cymg_conn **tab = calloc(size, sizeof(*tab));
    if (tab) { /* on ENOMEM keep the smaller table: chains only get longer */
      for (size_t i = 0; i < mgr->idtab_size; i++) {
        for (cymg_conn *p = mgr->idtab[i], *nx; p; p = nx) {
          nx = p->id_next;
          p->id_next = tab[p->id & (size - 1)];
          tab[p->id & (size - 1)] = p;
        }
      }
      free(mgr->idtab);
      mgr->idtab = tab;
      mgr->idtab_size = size;
    }
  }
  cymg_conn **slot = &mgr->idtab[c->id & (mgr->idtab_size - 1)];
  c->id_next = *slot;
  *slot = c;
}

static void idtab_remove(cymg_mgr *mgr, cymg_conn *c) {
  cymg_conn **pp = &mgr->idtab[c->id & (mgr->idtab_size - 1)];
  while (*pp && *pp != c) pp = &(*pp)->id_next;
  if (*pp) *pp = c->id_next;
}

cymg_conn *cymg_mgr_find(cymg_mgr *mgr, uint64_t id) {
  if (mgr == NULL) return NULL;
  cymg_conn *c = mgr->idtab[id & (mgr->idtab_size - 1)];
  while (c && c->id != id) c = c->id_next;
  return c;
}

void cymg__mgr_link(cymg_mgr *mgr, cymg_conn *c) {
  c->next = mgr->conns;
  if (mgr->conns) mgr->conns->prev = c;
  mgr->conns = c;
  bool locked = cymg__wakeup_lock(mgr); /* cymg_wakeup() reads the table */
  idtab_insert(mgr, c);
  cymg__wakeup_unlock(mgr, locked);
  mgr->nconns++;
}

void cymg__mgr_unlink(cymg_mgr *mgr, cymg_conn *c) {
  if (c->prev) c->prev->next = c->next;
  else mgr->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  bool locked = cymg__wakeup_lock(mgr);
  idtab_remove(mgr, c);
  cymg__wakeup_unlock(mgr, locked);
  mgr->nconns--;
  if (c->flags & CYMG__F_HIDDEN) mgr->nhidden--;
  /* Unlinked only to be freed (cymg__conn_free), buffers included. */
  cymg__trim_note_free(mgr, sizeof(*c) + c->recv.size + c->send.size);
}

/* ---- event names ---- */

static const char *const ev_names[] = {
    "CYMG_EV_ERROR",     "CYMG_EV_OPEN",     "CYMG_EV_POLL",      "CYMG_EV_RESOLVE",
    "CYMG_EV_CONNECT",   "CYMG_EV_ACCEPT",   "CYMG_EV_TLS_HS",    "CYMG_EV_READ",
    "CYMG_EV_WRITE",     "CYMG_EV_CLOSE",    "CYMG_EV_HTTP_HDRS", "CYMG_EV_HTTP_MSG",
    "CYMG_EV_WS_OPEN",   "CYMG_EV_WS_MSG",   "CYMG_EV_WS_CTL",    "CYMG_EV_MQTT_CMD",
    "CYMG_EV_MQTT_MSG",  "CYMG_EV_MQTT_OPEN", "CYMG_EV_SNTP_TIME", "CYMG_EV_WAKEUP",
};

const char *cymg_event_name(int ev) {
  if (ev >= 0 && ev < (int) (sizeof(ev_names) / sizeof(ev_names[0]))) return ev_names[ev];
  if (ev == CYMG_EV_USER) return "CYMG_EV_USER";
  return NULL;
}
