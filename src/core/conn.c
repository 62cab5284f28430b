/* Connections: life cycle, event delivery, the read and write paths, accessors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Bytes asked of the socket per read: large enough for bulk transfers, small
 * enough that an idle connection's buffer stays modest. */
#define CYMG__READ_CHUNK 16384
/* Reads per readiness report before other descriptors get their turn. */
#define CYMG__READS_PER_EVENT 4

cymg_conn *cymg__conn_new(cymg_mgr *mgr, int fd, unsigned flags, cymg_event_fn fn,
                          void *fn_data) {
  /* Not calloc, which glibc serves past its per-thread cache: in a connection
   * per request that cost more than the rest of the allocations. Nor malloc
   * and memset, which gcc turns back into calloc; a compound literal it
   * leaves alone. */
  cymg_conn *c = malloc(sizeof(*c));
  if (c == NULL) return NULL;
  *c = (cymg_conn){.mgr = mgr,
                   .id = cymg__mgr_next_id(mgr),
                   .fd = fd,
                   .flags = flags,
                   .fn = fn,
                   .fn_data = fn_data,
                   .recv_limit = mgr->recv_limit,
                   .send_limit = mgr->send_limit,
                   .wm_high = mgr->wm_high,
                   .wm_low = mgr->wm_low,
                   .stall_ms = mgr->stall_ms,
                   .tp = &cymg__transport_plain,
                   .deadline.heap_idx = -1};
  if (mgr->poll_events) cymg_conn_set_poll(c, true);
  cymg__mgr_link(mgr, c);
  return c;
}

void cymg__conn_free(cymg_conn *c) {
  cymg_mgr *mgr = c->mgr;
  if (c->flags & CYMG__F_PENDING) { /* rare: closed after deferring work */
    cymg_conn **pp = &mgr->pending;
    while (*pp && *pp != c) pp = &(*pp)->pending_next;
    if (*pp) *pp = c->pending_next;
  }
  cymg__dns_conn_gone(c);
  cymg__mgr_unlink(mgr, c);
  if (c->stall_timer) cymg_timer_cancel(mgr, c->stall_timer);
  cymg__tnode_disarm(mgr, &c->deadline);
  cymg__conn_undirty(c);
  if (c->flags & CYMG__F_WANT_POLL) mgr->npoll--;
  if (c->flags & CYMG__F_REGISTERED)
    mgr->be->del(mgr->be_state, c->fd);
  if (c->fd >= 0) c->tp->close(c);
  if (c->tp->free) c->tp->free(c);
  if (c->proto && c->proto->free_state && c->proto_state) c->proto->free_state(c->proto_state);
  cymg__iobuf_free(&c->recv);
  cymg__iobuf_free(&c->send);
  free(c->pending_err);
  free(c);
}

void cymg_call(cymg_conn *c, int ev, void *ev_data) {
  bool handled = c->proto && c->proto->on_event && c->proto->on_event(c, ev, ev_data);
  /* READ after the protocol's own handling when the manager asks for it (the
   * Python API reports every read, whatever the protocol made of it), unless
   * that handling ended the connection: ERROR is then its last word. Not
   * while a request body is streamed: its pieces, the protocol's own READ
   * events, are then what the program reads, and a second READ counting raw
   * bytes could not be told from them. */
  if (handled && ev == CYMG_EV_READ && c->mgr->read_events &&
      !(c->flags & (CYMG__F_CLOSING | CYMG__F_BODY_STREAM)))
    handled = false;
  if ((!handled || ev == CYMG_EV_CLOSE) && c->fn) c->fn(c, ev, ev_data);
}

bool cymg__conn_out_full(cymg_conn *c) {
  /* Only what waits in the send buffer counts: a pump (a file body) refills
   * it only once it is empty, so what it has not produced yet costs nothing. */
  if (c->flags & CYMG__F_OUT_FULL) {
    if (c->send.len <= c->wm_low) c->flags &= ~CYMG__F_OUT_FULL;
  } else if (c->send.len > c->wm_high) {
    c->flags |= CYMG__F_OUT_FULL;
  }
  return (c->flags & CYMG__F_OUT_FULL) != 0;
}

/* Whether reading may go on: not while the receive buffer is full, nor while
 * the peer leaves our output unread (each request read would only add to it),
 * nor while the protocol or the program holds it. */
static bool may_read(cymg_conn *c) {
  return !(c->flags & (CYMG__F_DRAINING | CYMG__F_READ_HELD | CYMG__F_READ_PAUSED)) && c->recv.len < c->recv_limit &&
         !cymg__conn_out_full(c);
}

static unsigned want_io(cymg_conn *c) {
  if (c->fd < 0 || (c->flags & CYMG__F_CLOSING)) return 0;
  if (c->flags & CYMG__F_CONNECTING) return CYMG__IO_W;
  unsigned want = 0;
  if (may_read(c)) want |= CYMG__IO_R;
  /* Output not yet tried is written at the next flush point without asking;
   * writability is asked for only once a write came up short. */
  if ((c->send.len > 0 && !(c->flags & CYMG__F_UNFLUSHED)) || c->pump) want |= CYMG__IO_W;
  return c->tp->want ? c->tp->want(c, want) : want;
}

/* Bytes a transport holds (TLS records already read from the socket) make no
 * readiness report: they are read at the next dispatch once reading may go on. */
static void transport_pending(cymg_conn *c) {
  if (c->tp->pending && c->fd >= 0 && !(c->flags & (CYMG__F_CLOSING | CYMG__F_CONNECTING)) &&
      may_read(c) && c->tp->pending(c))
    cymg__conn_defer(c, CYMG__P_READ);
}

/* ---- the send-stall deadline ----
 * Armed when output starts to wait on the peer, forgotten when none waits. A
 * byte taken by the peer only moves stall_at (cymg__conn_progress); the timer,
 * when it fires before that, re-arms itself for the rest. So a busy connection
 * costs no timer operation per write, and a connection with nothing pending
 * has no timer at all. */

static void stall_timer_fn(void *arg);

static void stall_arm(cymg_conn *c, uint64_t ms) {
  c->stall_timer = 0;
  if (cymg_timer_add(c->mgr, ms, CYMG_TIMER_ONCE, stall_timer_fn, c, &c->stall_timer) < 0) {
    /* Without its timer a stalled peer would hold the connection forever. */
    cymg__conn_fail_later(c, "send stall timer: out of memory");
  }
}

static void stall_disarm(cymg_conn *c) {
  c->stall_at = 0;
  if (c->stall_timer) cymg_timer_cancel(c->mgr, c->stall_timer);
  c->stall_timer = 0;
}

static bool output_waits(const cymg_conn *c) {
  return (c->send.len > 0 || c->pump) && c->fd >= 0 &&
         !(c->flags & (CYMG__F_CONNECTING | CYMG__F_CLOSING | CYMG__F_UDP | CYMG__F_LISTENING));
}

/* Brings the deadline in step with whether output is pending. Cheap when
 * nothing changed: two tests. */
static void stall_sync(cymg_conn *c) {
  bool waits = c->stall_ms && output_waits(c);
  if (waits == (c->stall_at != 0)) return;
  if (!waits) {
    stall_disarm(c);
    return;
  }
  /* Queued but not tried yet: that output waits on us, not on the peer, and
   * the flush point (right after the event, or the prepare step) comes back
   * here. A reply that leaves at once so costs no timer added and cancelled. */
  if (c->flags & CYMG__F_UNFLUSHED) return;
  c->stall_at = c->mgr->now + c->stall_ms;
  if (c->stall_timer == 0) stall_arm(c, c->stall_ms);
}

static void stall_timer_fn(void *arg) {
  cymg_conn *c = arg;
  c->stall_timer = 0;
  if (c->flags & CYMG__F_CLOSING) return;
  if (!c->stall_ms || !output_waits(c)) {
    c->stall_at = 0;
    return;
  }
  uint64_t now = c->mgr->now;
  if (c->stall_at == 0) c->stall_at = now + c->stall_ms; /* pending unnoticed: start now */
  if (now < c->stall_at) {
    stall_arm(c, c->stall_at - now);
    return;
  }
  cymg_error(c, "send stalled for %u ms", (unsigned) c->stall_ms);
}

/* The manager's list of connections with work for the next prepare step
 * (cymg_mgr_prepare): output to flush, interest to settle. Doubly linked so a
 * connection freed meanwhile leaves it in O(1). */
static void dirty_link(cymg_conn *c) {
  if (c->flags & CYMG__F_DIRTY) return;
  cymg_mgr *mgr = c->mgr;
  c->flags |= CYMG__F_DIRTY;
  c->dirty_prev = NULL;
  c->dirty_next = mgr->dirty;
  if (mgr->dirty) mgr->dirty->dirty_prev = c;
  mgr->dirty = c;
}

void cymg__conn_undirty(cymg_conn *c) {
  if (!(c->flags & CYMG__F_DIRTY)) return;
  c->flags &= ~CYMG__F_DIRTY;
  if (c->dirty_prev) c->dirty_prev->dirty_next = c->dirty_next;
  else c->mgr->dirty = c->dirty_next;
  if (c->dirty_next) c->dirty_next->dirty_prev = c->dirty_prev;
  c->dirty_next = c->dirty_prev = NULL;
}

/* Tells the backend what the connection wants now. A descriptor with no
 * interest is taken out of the backend altogether: epoll and poll report
 * hang-ups even with an empty interest set, which would spin the loop for a
 * connection that is full and waiting on its handler. Runs only in the prepare
 * step, so a failure is reported at the next dispatch, not here. */
static void apply_io(cymg_conn *c) {
  transport_pending(c);
  unsigned want = want_io(c);
  bool reg = (c->flags & CYMG__F_REGISTERED) != 0;
  if (want == c->interest && (reg || want == 0)) return;
  cymg_mgr *mgr = c->mgr;
  int rc = 0;
  if (want == 0) {
    if (reg) mgr->be->del(mgr->be_state, c->fd);
    c->flags &= ~CYMG__F_REGISTERED;
  } else if (reg) {
    rc = mgr->be->mod(mgr->be_state, c->fd, want, c);
  } else {
    rc = mgr->be->add(mgr->be_state, c->fd, want, c);
    if (rc == 0) c->flags |= CYMG__F_REGISTERED;
  }
  c->interest = want;
  if (rc < 0) cymg__conn_fail_later(c, "%s: %s", mgr->be->name, cymg_strerror(rc));
}

/* Interest changes are never made here but noted, and applied once per poll in
 * the prepare step: the blocking wait may then run while other threads (under
 * a binding's interpreter lock) call into connections, since nothing but the
 * prepare step touches the backend's registrations; and several changes within
 * one poll (a reply, a drain, a pump) cost one system call at most. */
void cymg__conn_update_io(cymg_conn *c) {
  stall_sync(c);
  transport_pending(c);
  unsigned want = want_io(c);
  if (want == c->interest && ((c->flags & CYMG__F_REGISTERED) || want == 0)) return;
  dirty_link(c);
}

void cymg__conn_defer(cymg_conn *c, unsigned what) {
  c->pending |= what;
  if (!(c->flags & CYMG__F_PENDING)) {
    c->flags |= CYMG__F_PENDING;
    c->pending_next = c->mgr->pending;
    c->mgr->pending = c;
  }
}

static void do_read(cymg_conn *c, bool force);

/* CONNECT, then whatever the transport starts on a connected socket (a TLS
 * client's handshake). */
static void connected(cymg_conn *c) {
  c->flags |= CYMG__F_CONNECTED;
  cymg_call(c, CYMG_EV_CONNECT, NULL);
  if (c->tp->connected && !(c->flags & CYMG__F_CLOSING)) c->tp->connected(c);
}

void cymg__conn_run_pending(cymg_conn *c) {
  unsigned what = c->pending;
  c->pending = 0;
  if (c->flags & CYMG__F_CLOSING) return;
  if (what & CYMG__P_ERROR) {
    cymg_error(c, "%s", c->pending_err ? c->pending_err : "error");
    return;
  }
  if (what & CYMG__P_CONNECT) connected(c);
  if ((what & CYMG__P_RESUME) && c->proto && c->proto->on_event && !(c->flags & CYMG__F_CLOSING))
    c->proto->on_event(c, CYMG__EV_RESUME, NULL);
  if ((what & CYMG__P_WRITE) && c->pending_written && !(c->flags & CYMG__F_CLOSING)) {
    size_t n = c->pending_written;
    c->pending_written = 0;
    cymg_call(c, CYMG_EV_WRITE, &n);
  }
  if ((what & CYMG__P_READ) && !(c->flags & CYMG__F_CLOSING)) {
    do_read(c, false);
    cymg__conn_update_io(c);
  }
  if ((c->flags & CYMG__F_DRAINING) && c->send.len == 0 && !c->pump) cymg_close(c);
}

/* Marks a deferred failure: reported as ERROR at the next dispatch, never inside
 * the caller's own call. */
void cymg__conn_fail_later(cymg_conn *c, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (c->pending_err == NULL) c->pending_err = strdup(msg);
  cymg__conn_defer(c, CYMG__P_ERROR);
}

static void on_eof(cymg_conn *c) {
  /* The peer will send no more. What we still owe it goes out first. */
  if (c->send.len > 0) {
    cymg_drain(c);
  } else {
    cymg_close(c);
  }
}

static void do_flush(cymg_conn *c);

/* Reports a failed recv/send: with the transport's own reason when it left
 * one (TLS: OpenSSL's), else the code's. */
static void io_failed(cymg_conn *c, const char *what, ptrdiff_t n) {
  if (c->pending_err) {
    cymg_error(c, "%s", c->pending_err);
  } else {
    cymg_error(c, "%s: %s", what, cymg_strerror((int) n));
  }
}

/* An idle connection keeps no empty buffers: a keep-alive connection waits
 * for its next request without its 16 KiB receive block or the send block of
 * its last reply (over TLS those were most of an idle connection's memory,
 * docs/tls.md). The next read or send allocates again, which costs far less
 * than the system calls around it. */
static void release_empty(cymg__iobuf *b) {
  if (b->len == 0 && b->buf != NULL) cymg__iobuf_free(b);
}

/* Where a connection without a receive buffer reads: the manager's block,
 * from which it keeps only what came, in a block of its size. Allocating the
 * full 16 KiB for each read of a short request was, with the free that
 * follows, the largest user-space cost of a connection that carries one
 * request: blocks that size bypass glibc's per-thread cache. NULL: read in
 * place (the connection has a buffer, or the scratch block found no memory,
 * and the usual reserve reports that). */
static char *scratch_for(cymg_conn *c) {
  if (c->recv.buf != NULL) return NULL;
  cymg_mgr *mgr = c->mgr;
  if (mgr->read_scratch == NULL) mgr->read_scratch = malloc(CYMG__READ_CHUNK);
  return mgr->read_scratch;
}

/* force: the backend reported an error or hang-up. One read then goes ahead
 * even while reading is paused, to learn what happened: the report repeats
 * until the socket is read or closed. */
static void do_read(cymg_conn *c, bool force) {
  for (int i = 0; i < CYMG__READS_PER_EVENT; i++) {
    if (c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) return;
    if (c->recv.len >= c->recv_limit) return; /* full: reading resumes on consume */
    /* Paused by backpressure (checked before every read: the handler of the
     * last one may have queued much): resumes when the output drains. */
    if (!(force && i == 0) && !may_read(c)) return;
    size_t want = CYMG__READ_CHUNK;
    if (want > c->recv_limit - c->recv.len) want = c->recv_limit - c->recv.len;
    char *dst = scratch_for(c);
    size_t room = want;
    if (dst == NULL) {
      if (cymg__iobuf_room(&c->recv) < want) {
        int rc = cymg__iobuf_reserve(&c->recv, want, c->recv_limit);
        if (rc < 0) {
          cymg_error(c, "receive buffer: %s", cymg_strerror(rc));
          return;
        }
      }
      room = cymg__iobuf_room(&c->recv);
      if (room > c->recv_limit - c->recv.len) room = c->recv_limit - c->recv.len;
      dst = cymg__iobuf_tail(&c->recv);
    }
    ptrdiff_t n = c->tp->recv(c, dst, room);
    if (n > 0) {
      size_t got = (size_t) n;
      if (dst == c->mgr->read_scratch) {
        int rc = cymg__iobuf_append(&c->recv, dst, got, c->recv_limit);
        if (rc < 0) {
          cymg_error(c, "receive buffer: %s", cymg_strerror(rc));
          return;
        }
      } else {
        c->recv.len += got;
      }
      /* Replies to everything this read brought (pipelined requests, a burst
       * of WebSocket messages) leave together, in one send after the event. */
      cymg_call(c, CYMG_EV_READ, &got);
      if (c->send.len > 0 && !(c->flags & CYMG__F_CLOSING)) do_flush(c);
      if (got < room) { /* the socket is drained */
        if (!(c->flags & CYMG__F_CLOSING)) release_empty(&c->recv);
        return;
      }
    } else if (n == 0) {
      on_eof(c);
      return;
    } else if (n == CYMG_EAGAIN) {
      c->flags &= ~CYMG__F_READABLE;
      release_empty(&c->recv);
      return;
    } else {
      io_failed(c, "recv", n);
      return;
    }
  }
}

/* One write attempt of the queued output (a short write stops it). quiet: from
 * the prepare step, where no event function may run: WRITE and a failure are
 * reported at the next dispatch, and the pump waits for the socket's next
 * writable report. */
static void flush_output(cymg_conn *c, bool quiet) {
  c->flags &= ~CYMG__F_UNFLUSHED;
  size_t written = 0;
  while (c->send.len > 0) {
    ptrdiff_t n = c->tp->send(c, cymg__iobuf_data(&c->send), c->send.len);
    if (n > 0) {
      cymg__iobuf_consume(&c->send, (size_t) n);
      written += (size_t) n;
      cymg__conn_progress(c);
    } else if (n == CYMG_EAGAIN || n == 0) {
      c->flags &= ~CYMG__F_WRITABLE;
      break;
    } else if (quiet) {
      cymg__conn_fail_later(c, "send: %s", cymg_strerror((int) n));
      return;
    } else {
      io_failed(c, "send", n);
      return;
    }
  }
  /* The socket took everything: it is writable, so a pump may go on now
   * rather than after a writable report asked for with two epoll_ctl. */
  if (written && c->send.len == 0) c->flags |= CYMG__F_WRITABLE;
  if (written && quiet) {
    c->pending_written += written;
    cymg__conn_defer(c, CYMG__P_WRITE);
  } else if (written) {
    cymg_call(c, CYMG_EV_WRITE, &written);
  }
  /* The queue is empty and the socket took all of it: let the pump refill. */
  if (!quiet && c->pump && c->send.len == 0 && (c->flags & CYMG__F_WRITABLE) &&
      !(c->flags & CYMG__F_CLOSING) && !c->pump(c))
    c->pump = NULL;
  if ((c->flags & CYMG__F_DRAINING) && c->send.len == 0 && !c->pump) cymg_close(c);
  /* A pump refills its buffer at once: that one stays. */
  if (written && !c->pump) release_empty(&c->send);
}

static void do_flush(cymg_conn *c) { flush_output(c, false); }

void cymg__conns_prepare(cymg_mgr *mgr) {
  /* Taken one at a time from the head: whatever the work re-adds (a drained
   * connection's close) is settled in this same pass. */
  while (mgr->dirty) {
    cymg_conn *c = mgr->dirty;
    cymg__conn_undirty(c);
    if (c->flags & CYMG__F_UNFLUSHED) {
      /* Not connected yet: finish_connect flushes it. */
      if (c->fd >= 0 && !(c->flags & (CYMG__F_CLOSING | CYMG__F_CONNECTING))) {
        flush_output(c, true);
        stall_sync(c); /* what the peer did not take starts its clock */
        cymg__conn_undirty(c); /* settled just below */
      } else {
        c->flags &= ~CYMG__F_UNFLUSHED;
      }
    }
    apply_io(c);
  }
}

void cymg__conn_set_pump(cymg_conn *c, bool (*pump)(cymg_conn *c)) {
  c->pump = pump;
  cymg__conn_update_io(c);
}

static void finish_connect(cymg_conn *c);

void cymg__conn_io(cymg_conn *c, unsigned events) {
  if (c->flags & CYMG__F_CLOSING) return;
  if (events & CYMG__IO_R) c->flags |= CYMG__F_READABLE;
  if (events & CYMG__IO_W) c->flags |= CYMG__F_WRITABLE;
  if (c->flags & CYMG__F_LISTENING) {
    if (c->flags & CYMG__F_UDP) {
      cymg__udp_read(c);
    } else {
      cymg__accept(c);
    }
  } else if (c->flags & CYMG__F_CONNECTING) {
    finish_connect(c);
  } else if (c->flags & CYMG__F_UDP) {
    if (events & CYMG__IO_W) cymg__udp_flush(c);
    if (events & (CYMG__IO_R | CYMG__IO_ERR)) cymg__udp_read(c);
  } else {
    if (c->tp->io) events = c->tp->io(c, events);
    /* Write first: a reply that leaves frees buffer space before we read more.
     * An error report may come without a writable one (a reset peer): the
     * pending output's send is what surfaces the error then. */
    if ((events & CYMG__IO_W) || ((events & CYMG__IO_ERR) && c->send.len > 0)) do_flush(c);
    if (events & (CYMG__IO_R | CYMG__IO_ERR)) do_read(c, (events & CYMG__IO_ERR) != 0);
  }
  cymg__conn_update_io(c);
}

static void finish_connect(cymg_conn *c) {
  int err = cymg__sock_error(c->fd);
  if (err != 0 && cymg__dns_connect_failed(c)) return;
  if (err != 0) {
    char a[64];
    cymg_addr_str(&c->rem, true, a, sizeof(a));
    cymg_error(c, "connect to %s: %s", a, cymg_strerror(-err));
    return;
  }
  c->flags &= ~CYMG__F_CONNECTING;
  cymg__sock_local(c);
  connected(c);
  if (!(c->flags & CYMG__F_CLOSING) && c->send.len > 0) do_flush(c);
}

/* ---- public: sending and closing ---- */

int cymg__conn_send(cymg_conn *c, const void *data, size_t len) {
  if (c->flags & CYMG__F_CLOSING) return CYMG_ECLOSED;
  if (c->flags & CYMG__F_UDP) return cymg__udp_send(c, data, len);
  if (c->flags & CYMG__F_LISTENING) return CYMG_ESTATE;
  if (len == 0) return 0;
  if (len > c->send_limit || c->send.len > c->send_limit - len) return CYMG_ELIMIT;
  /* Only queued: the write is made at the next flush point (after the READ or
   * CONNECT event being handled, else in the next poll's prepare step), one
   * write for everything queued by then. */
  int rc = cymg__iobuf_append(&c->send, data, len, 0);
  if (rc < 0) return rc;
  c->sent_total += len;
  if (!(c->flags & CYMG__F_UNFLUSHED)) {
    c->flags |= CYMG__F_UNFLUSHED;
    dirty_link(c);
  }
  return 0;
}

int cymg_send(cymg_conn *c, const void *data, size_t len) {
  if (c == NULL || (data == NULL && len > 0)) return CYMG_EINVAL;
  /* After drain nothing more is taken: what was queued is all that will go. */
  if (c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) return CYMG_ECLOSED;
  return cymg__conn_send(c, data, len);
}

int cymg_vprintf(cymg_conn *c, const char *fmt, va_list ap) {
  char small[512];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof(small), fmt, ap2);
  va_end(ap2);
  if (n < 0) return CYMG_EINVAL;
  if ((size_t) n < sizeof(small)) {
    int rc = cymg_send(c, small, (size_t) n);
    return rc < 0 ? rc : n;
  }
  char *big = malloc((size_t) n + 1);
  if (big == NULL) return CYMG_ENOMEM;
  vsnprintf(big, (size_t) n + 1, fmt, ap);
  int rc = cymg_send(c, big, (size_t) n);
  free(big);
  return rc < 0 ? rc : n;
}

int cymg_printf(cymg_conn *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = cymg_vprintf(c, fmt, ap);
  va_end(ap);
  return n;
}

void cymg_close(cymg_conn *c) {
  if (c == NULL || (c->flags & CYMG__F_CLOSING)) return;
  c->flags |= CYMG__F_CLOSING;
  cymg__wakeup_closing(c);
  /* Appended, so CLOSE events come in the order closes were asked for. */
  cymg_mgr *mgr = c->mgr;
  c->closing_next = NULL;
  if (mgr->closing) {
    mgr->closing_tail->closing_next = c;
  } else {
    mgr->closing = c;
  }
  mgr->closing_tail = c;
  cymg__conn_update_io(c);
}

void cymg_drain(cymg_conn *c) {
  if (c == NULL || (c->flags & CYMG__F_CLOSING)) return;
  c->flags |= CYMG__F_DRAINING;
  if (c->send.len == 0 && !c->pump && !(c->flags & CYMG__F_CONNECTING)) {
    cymg_close(c);
  } else {
    cymg__conn_update_io(c);
  }
}

void cymg_error(cymg_conn *c, const char *fmt, ...) {
  if (c == NULL || (c->flags & CYMG__F_CLOSING)) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  CYMG__DEBUG("conn %llu: %s", (unsigned long long) c->id, msg);
  cymg_call(c, CYMG_EV_ERROR, msg);
  cymg_close(c);
}

/* ---- public: accessors ---- */

uint64_t cymg_conn_id(const cymg_conn *c) { return c->id; }
cymg_mgr *cymg_conn_mgr(const cymg_conn *c) { return c->mgr; }
const cymg_addr *cymg_conn_local(const cymg_conn *c) { return &c->loc; }
const cymg_addr *cymg_conn_remote(const cymg_conn *c) { return &c->rem; }
bool cymg_conn_is_listening(const cymg_conn *c) { return c->flags & CYMG__F_LISTENING; }
bool cymg_conn_is_client(const cymg_conn *c) { return c->flags & CYMG__F_CLIENT; }
bool cymg_conn_is_udp(const cymg_conn *c) { return c->flags & CYMG__F_UDP; }
bool cymg_conn_is_tls(const cymg_conn *c) { return c->flags & CYMG__F_TLS; }
bool cymg_conn_is_connecting(const cymg_conn *c) { return c->flags & CYMG__F_CONNECTING; }
bool cymg_conn_is_closing(const cymg_conn *c) { return c->flags & CYMG__F_CLOSING; }
bool cymg_conn_is_draining(const cymg_conn *c) { return c->flags & CYMG__F_DRAINING; }
bool cymg_conn_is_readable(const cymg_conn *c) { return c->flags & CYMG__F_READABLE; }
bool cymg_conn_is_writable(const cymg_conn *c) { return c->flags & CYMG__F_WRITABLE; }
bool cymg_conn_is_full(const cymg_conn *c) { return c->recv.len >= c->recv_limit; }
size_t cymg_conn_recv_len(const cymg_conn *c) { return c->recv.len; }
size_t cymg_conn_send_len(const cymg_conn *c) { return c->send.len; }
size_t cymg_conn_recv_size(const cymg_conn *c) { return c->recv.size; }
size_t cymg_conn_send_size(const cymg_conn *c) { return c->send.size; }
int cymg_conn_fd(const cymg_conn *c) { return c->fd; }
void *cymg_conn_userdata(const cymg_conn *c) { return c->fn_data; }
void cymg_conn_set_userdata(cymg_conn *c, void *p) { c->fn_data = p; }
cymg_event_fn cymg_conn_handler(const cymg_conn *c) { return c->fn; }
const cymg_proto *cymg_conn_proto(const cymg_conn *c) { return c->proto; }
void *cymg_conn_proto_state(const cymg_conn *c) { return c->proto_state; }

cymg_str cymg_conn_recv_data(const cymg_conn *c) {
  return cymg_str_n(cymg__iobuf_data(&c->recv), c->recv.len);
}

cymg_str cymg_conn_send_data(const cymg_conn *c) {
  return cymg_str_n(cymg__iobuf_data(&c->send), c->send.len);
}

void cymg_conn_consume(cymg_conn *c, size_t n) {
  bool was_full = c->recv.len >= c->recv_limit;
  cymg__iobuf_consume(&c->recv, n);
  if (was_full) cymg__conn_update_io(c);
}

void cymg_conn_set_handler(cymg_conn *c, cymg_event_fn fn, void *fn_data) {
  c->fn = fn;
  c->fn_data = fn_data;
}

void cymg_conn_set_poll(cymg_conn *c, bool on) {
  bool was = (c->flags & CYMG__F_WANT_POLL) != 0;
  if (on == was) return;
  if (on) {
    c->flags |= CYMG__F_WANT_POLL;
    c->mgr->npoll++;
  } else {
    c->flags &= ~CYMG__F_WANT_POLL;
    c->mgr->npoll--;
  }
}

void cymg_conn_set_limits(cymg_conn *c, size_t recv_limit, size_t send_limit) {
  if (recv_limit) c->recv_limit = recv_limit;
  if (send_limit) c->send_limit = send_limit;
  cymg__conn_update_io(c);
}

int cymg_conn_set_watermarks(cymg_conn *c, size_t high, size_t low) {
  if (c == NULL || high == 0 || low > high) return CYMG_EINVAL;
  c->wm_high = high;
  c->wm_low = low;
  /* Settled again from the new marks: a connection paused under the old ones
   * may read at once. */
  c->flags &= ~CYMG__F_OUT_FULL;
  cymg__conn_update_io(c);
  return 0;
}

int cymg_conn_set_send_stall(cymg_conn *c, uint32_t ms) {
  if (c == NULL) return CYMG_EINVAL;
  c->stall_ms = ms;
  /* Counted afresh from now with the new value. */
  stall_disarm(c);
  stall_sync(c);
  return 0;
}

void cymg__conn_hold_read(cymg_conn *c, bool on) {
  bool held = (c->flags & CYMG__F_READ_HELD) != 0;
  if (on == held) return;
  c->flags ^= CYMG__F_READ_HELD;
  cymg__conn_update_io(c);
}

/* Its own flag, not the protocol's hold: HTTP lifts its hold between pipelined
 * requests, which must not undo the program's pause. Resuming goes through
 * cymg__conn_update_io, whose transport_pending() schedules the bytes a TLS
 * transport already holds, since the descriptor will not report them. */
int cymg_conn_pause_read(cymg_conn *c, bool paused) {
  if (c == NULL) return CYMG_EINVAL;
  if (c->flags & CYMG__F_LISTENING) return CYMG_ESTATE;
  bool was = (c->flags & CYMG__F_READ_PAUSED) != 0;
  if (paused == was) return 0;
  c->flags ^= CYMG__F_READ_PAUSED;
  cymg__conn_update_io(c);
  return 0;
}

bool cymg_conn_is_read_paused(const cymg_conn *c) {
  return c != NULL && (c->flags & CYMG__F_READ_PAUSED) != 0;
}

void cymg_conn_set_proto(cymg_conn *c, const cymg_proto *p, void *state) {
  if (c->proto && c->proto->free_state && c->proto_state && c->proto_state != state)
    c->proto->free_state(c->proto_state);
  if (c->proto != p || c->proto_state != state) cymg__tnode_disarm(c->mgr, &c->deadline);
  c->proto = p;
  c->proto_state = state;
}

int cymg__conn_deadline(cymg_conn *c, uint64_t at) {
  if (at == 0) {
    cymg__tnode_disarm(c->mgr, &c->deadline);
    return 0;
  }
  if (c->deadline.heap_idx >= 0 && c->deadline.deadline == at) return 0;
  return cymg__tnode_arm(c->mgr, &c->deadline, at);
}

void cymg__conn_deadline_fire(cymg_conn *c) {
  if (c->flags & CYMG__F_CLOSING) return;
  if (c->proto && c->proto->on_event) c->proto->on_event(c, CYMG__EV_DEADLINE, NULL);
}
