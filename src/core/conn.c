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
  cymg_conn *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  c->mgr = mgr;
  c->id = cymg__mgr_next_id(mgr);
  c->fd = fd;
  c->flags = flags;
  c->fn = fn;
  c->fn_data = fn_data;
  c->recv_limit = mgr->recv_limit;
  c->send_limit = mgr->send_limit;
  c->tp = &cymg__transport_plain;
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
  if (c->flags & CYMG__F_WANT_POLL) mgr->npoll--;
  if (c->flags & CYMG__F_REGISTERED) mgr->be->del(mgr->be_state, c->fd);
  if (c->fd >= 0) c->tp->close(c);
  if (c->proto && c->proto->free_state && c->proto_state) c->proto->free_state(c->proto_state);
  cymg__iobuf_free(&c->recv);
  cymg__iobuf_free(&c->send);
  free(c->pending_err);
  free(c);
}

void cymg_call(cymg_conn *c, int ev, void *ev_data) {
  bool handled = c->proto && c->proto->on_event && c->proto->on_event(c, ev, ev_data);
  if ((!handled || ev == CYMG_EV_CLOSE) && c->fn) c->fn(c, ev, ev_data);
}

static unsigned want_io(const cymg_conn *c) {
  if (c->fd < 0 || (c->flags & CYMG__F_CLOSING)) return 0;
  if (c->flags & CYMG__F_CONNECTING) return CYMG__IO_W;
  unsigned want = 0;
  if (!(c->flags & CYMG__F_DRAINING) && c->recv.len < c->recv_limit) want |= CYMG__IO_R;
  if (c->send.len > 0 || c->pump) want |= CYMG__IO_W;
  return want;
}

/* A descriptor with no interest is taken out of the backend altogether: epoll and
 * poll report hang-ups even with an empty interest set, which would spin the loop
 * for a connection that is full and waiting on its handler. */
void cymg__conn_update_io(cymg_conn *c) {
  /* Inside a READ event the interest is settled once, after the event's flush
   * (cymg__conn_io ends with this call): a reply, a drain, a file pump set up
   * by the handler would otherwise raise interest only to drop it again, two
   * epoll_ctl for nothing. */
  if (c->flags & CYMG__F_CORKED) return;
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
  if (rc < 0) cymg_error(c, "%s: %s", mgr->be->name, cymg_strerror(rc));
}

void cymg__conn_defer(cymg_conn *c, unsigned what) {
  c->pending |= what;
  if (!(c->flags & CYMG__F_PENDING)) {
    c->flags |= CYMG__F_PENDING;
    c->pending_next = c->mgr->pending;
    c->mgr->pending = c;
  }
}

void cymg__conn_run_pending(cymg_conn *c) {
  unsigned what = c->pending;
  c->pending = 0;
  if (c->flags & CYMG__F_CLOSING) return;
  if (what & CYMG__P_ERROR) {
    cymg_error(c, "%s", c->pending_err ? c->pending_err : "error");
    return;
  }
  if (what & CYMG__P_CONNECT) cymg_call(c, CYMG_EV_CONNECT, NULL);
  if ((what & CYMG__P_RESUME) && c->proto && c->proto->on_event && !(c->flags & CYMG__F_CLOSING))
    c->proto->on_event(c, CYMG__EV_RESUME, NULL);
  if ((what & CYMG__P_WRITE) && c->pending_written && !(c->flags & CYMG__F_CLOSING)) {
    size_t n = c->pending_written;
    c->pending_written = 0;
    cymg_call(c, CYMG_EV_WRITE, &n);
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

static void do_read(cymg_conn *c) {
  for (int i = 0; i < CYMG__READS_PER_EVENT; i++) {
    if (c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) return;
    if (c->recv.len >= c->recv_limit) return; /* full: reading resumes on consume */
    size_t want = CYMG__READ_CHUNK;
    if (want > c->recv_limit - c->recv.len) want = c->recv_limit - c->recv.len;
    if (cymg__iobuf_room(&c->recv) < want) {
      int rc = cymg__iobuf_reserve(&c->recv, want, c->recv_limit);
      if (rc < 0) {
        cymg_error(c, "receive buffer: %s", cymg_strerror(rc));
        return;
      }
    }
    size_t room = cymg__iobuf_room(&c->recv);
    if (room > c->recv_limit - c->recv.len) room = c->recv_limit - c->recv.len;
    ptrdiff_t n = c->tp->recv(c, cymg__iobuf_tail(&c->recv), room);
    if (n > 0) {
      size_t got = (size_t) n;
      c->recv.len += got;
      /* Replies to everything this read brought (pipelined requests, a burst
       * of WebSocket messages) leave together, in one send after the event. */
      c->flags |= CYMG__F_CORKED;
      cymg_call(c, CYMG_EV_READ, &got);
      c->flags &= ~CYMG__F_CORKED;
      if (c->send.len > 0 && !(c->flags & CYMG__F_CLOSING)) do_flush(c);
      if (got < room) return; /* the socket is drained */
    } else if (n == 0) {
      on_eof(c);
      return;
    } else if (n == CYMG_EAGAIN) {
      c->flags &= ~CYMG__F_READABLE;
      return;
    } else {
      cymg_error(c, "recv: %s", cymg_strerror((int) n));
      return;
    }
  }
}

static void do_flush(cymg_conn *c) {
  size_t written = 0;
  while (c->send.len > 0) {
    ptrdiff_t n = c->tp->send(c, cymg__iobuf_data(&c->send), c->send.len);
    if (n > 0) {
      cymg__iobuf_consume(&c->send, (size_t) n);
      written += (size_t) n;
    } else if (n == CYMG_EAGAIN || n == 0) {
      c->flags &= ~CYMG__F_WRITABLE;
      break;
    } else {
      cymg_error(c, "send: %s", cymg_strerror((int) n));
      return;
    }
  }
  if (written) cymg_call(c, CYMG_EV_WRITE, &written);
  /* The queue is empty and the socket took all of it: let the pump refill. */
  if (c->pump && c->send.len == 0 && (c->flags & CYMG__F_WRITABLE) &&
      !(c->flags & CYMG__F_CLOSING) && !c->pump(c))
    c->pump = NULL;
  if ((c->flags & CYMG__F_DRAINING) && c->send.len == 0 && !c->pump) cymg_close(c);
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
    /* Write first: a reply that leaves frees buffer space before we read more. */
    if (events & CYMG__IO_W) do_flush(c);
    if (events & (CYMG__IO_R | CYMG__IO_ERR)) do_read(c);
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
  cymg_call(c, CYMG_EV_CONNECT, NULL);
  if (!(c->flags & CYMG__F_CLOSING) && c->send.len > 0) do_flush(c);
}

/* ---- public: sending and closing ---- */

int cymg__conn_send(cymg_conn *c, const void *data, size_t len) {
  if (c->flags & CYMG__F_CLOSING) return CYMG_ECLOSED;
  if (c->flags & CYMG__F_UDP) return cymg__udp_send(c, data, len);
  if (c->flags & CYMG__F_LISTENING) return CYMG_ESTATE;
  if (len == 0) return 0;
  if (len > c->send_limit || c->send.len > c->send_limit - len) return CYMG_ELIMIT;
  c->sent_total += len;
  size_t sent = 0;
  if (c->send.len == 0 && c->fd >= 0 && !(c->flags & (CYMG__F_CONNECTING | CYMG__F_CORKED))) {
    ptrdiff_t n = c->tp->send(c, data, len);
    if (n > 0) {
      sent = (size_t) n;
      c->pending_written += sent;
      cymg__conn_defer(c, CYMG__P_WRITE);
    } else if (n != CYMG_EAGAIN && n != 0) {
      cymg__conn_fail_later(c, "send: %s", cymg_strerror((int) n));
      return (int) n;
    }
  }
  if (sent < len) {
    int rc = cymg__iobuf_append(&c->send, (const char *) data + sent, len - sent, 0);
    if (rc < 0) {
      if (sent) cymg__conn_fail_later(c, "send buffer: %s", cymg_strerror(rc));
      return rc;
    }
    cymg__conn_update_io(c);
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

void cymg_conn_set_proto(cymg_conn *c, const cymg_proto *p, void *state) {
  if (c->proto && c->proto->free_state && c->proto_state && c->proto_state != state)
    c->proto->free_state(c->proto_state);
  c->proto = p;
  c->proto_state = state;
}
