/* Sockets: listening, connecting, accepting, UDP datagrams, the plain transport. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* BSD/macOS: SO_NOSIGPIPE is set on each socket instead */
#endif

typedef union {
  struct sockaddr sa;
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  struct sockaddr_storage ss;
} sockaddr_any;

static socklen_t to_sockaddr(const cymg_addr *a, sockaddr_any *u) {
  memset(u, 0, sizeof(*u));
  if (a->is_ip6) {
    u->sin6.sin6_family = AF_INET6;
    u->sin6.sin6_port = htons(a->port);
    memcpy(&u->sin6.sin6_addr, a->ip, 16);
    return sizeof(u->sin6);
  }
  u->sin.sin_family = AF_INET;
  u->sin.sin_port = htons(a->port);
  memcpy(&u->sin.sin_addr, a->ip, 4);
  return sizeof(u->sin);
}

void cymg__sockaddr_to_addr(const void *sa, cymg_addr *a) {
  const sockaddr_any *u = sa;
  memset(a, 0, sizeof(*a));
  if (u->sa.sa_family == AF_INET6) {
    a->is_ip6 = true;
    memcpy(a->ip, &u->sin6.sin6_addr, 16);
    a->port = ntohs(u->sin6.sin6_port);
  } else if (u->sa.sa_family == AF_INET) {
    memcpy(a->ip, &u->sin.sin_addr, 4);
    a->port = ntohs(u->sin.sin_port);
  }
}

static int new_socket(bool ip6, bool udp) {
  int type = udp ? SOCK_DGRAM : SOCK_STREAM;
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  int fd = socket(ip6 ? AF_INET6 : AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
#else
  int fd = socket(ip6 ? AF_INET6 : AF_INET, type, 0);
  if (fd < 0) return -errno;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
  return fd;
}

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int cymg__sock_error(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

void cymg__sock_local(cymg_conn *c) {
  sockaddr_any u;
  socklen_t len = sizeof(u);
  if (getsockname(c->fd, &u.sa, &len) == 0) cymg__sockaddr_to_addr(&u, &c->loc);
}

int cymg__listen_addr(cymg_mgr *mgr, const cymg_addr *addr, bool udp, bool reuseport,
                      cymg_event_fn fn, void *fn_data, cymg_conn **out) {
  char a[64];
  cymg_addr_str(addr, true, a, sizeof(a));
  const char *scheme = udp ? "udp" : "tcp";
  int fd = new_socket(addr->is_ip6, udp);
  if (fd < 0) {
    cymg__mgr_errmsg(mgr, "listen %s://%s: socket: %s", scheme, a, cymg_strerror(fd));
    return fd;
  }
  int one = 1, rc = 0;
  if (!udp) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuseport) {
#ifdef SO_REUSEPORT
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) rc = -errno;
#else
    rc = CYMG_ENOTSUP;
#endif
  }
  sockaddr_any u;
  socklen_t sl = to_sockaddr(addr, &u);
  const char *what = "SO_REUSEPORT";
  if (rc == 0) {
    what = "bind";
    if (bind(fd, &u.sa, sl) < 0) rc = -errno;
  }
  if (rc == 0 && !udp) {
    what = "listen";
    set_nodelay(fd); /* Linux hands it down to accepted sockets */
    if (listen(fd, 1024) < 0) rc = -errno;
  }
  if (rc < 0) {
    cymg__mgr_errmsg(mgr, "listen %s://%s: %s: %s", scheme, a, what, cymg_strerror(rc));
    close(fd);
    return rc;
  }
  cymg_conn *c = cymg__conn_new(mgr, fd, CYMG__F_LISTENING | (udp ? CYMG__F_UDP : 0), fn, fn_data);
  if (c == NULL) {
    close(fd);
    cymg__mgr_errmsg(mgr, "listen %s://%s: out of memory", scheme, a);
    return CYMG_ENOMEM;
  }
  cymg__sock_local(c);
  cymg__conn_update_io(c);
  if (out) *out = c;
  cymg_call(c, CYMG_EV_OPEN, NULL);
  return 0;
}

void cymg__connect_addr(cymg_conn *c, const cymg_addr *addr) {
  char a[64];
  c->rem = *addr;
  cymg_addr_str(addr, true, a, sizeof(a));
  bool udp = (c->flags & CYMG__F_UDP) != 0;
  int fd = new_socket(addr->is_ip6, udp);
  if (fd < 0) {
    cymg__conn_fail_later(c, "connect to %s: socket: %s", a, cymg_strerror(fd));
    return;
  }
  c->fd = fd;
  if (!udp) set_nodelay(fd);
  sockaddr_any u;
  socklen_t sl = to_sockaddr(addr, &u);
  if (connect(fd, &u.sa, sl) == 0) {
    cymg__sock_local(c);
    cymg__conn_defer(c, CYMG__P_CONNECT);
    cymg__conn_update_io(c);
  } else if (errno == EINPROGRESS) {
    c->flags |= CYMG__F_CONNECTING;
    cymg__conn_update_io(c);
  } else if (!cymg__dns_connect_failed(c)) {
    cymg__conn_fail_later(c, "connect to %s: %s", a, strerror(errno));
  }
}

/* At EMFILE the pending connection cannot be accepted, and a level-triggered
 * listener would report it forever. Giving up the spare descriptor lets us accept
 * it and close it at once: the peer sees a reset rather than a hang, and the loop
 * moves on. */
static bool shed_connection(cymg_conn *lsn) {
  cymg_mgr *mgr = lsn->mgr;
  if (mgr->reserve_fd < 0) return false;
  close(mgr->reserve_fd);
  int fd = accept(lsn->fd, NULL, NULL);
  if (fd >= 0) close(fd);
  mgr->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  CYMG__ERR("accept: out of file descriptors, dropped a connection");
  return fd >= 0;
}

void cymg__accept(cymg_conn *lsn) {
  while (!(lsn->flags & CYMG__F_CLOSING)) {
    sockaddr_any u;
    socklen_t sl = sizeof(u);
#if defined(__linux__)
    int fd = accept4(lsn->fd, &u.sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int fd = accept(lsn->fd, &u.sa, &sl);
    if (fd >= 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      fcntl(fd, F_SETFD, FD_CLOEXEC);
#ifdef SO_NOSIGPIPE
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
      set_nodelay(fd);
    }
#endif
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if ((err == EMFILE || err == ENFILE) && shed_connection(lsn)) continue;
      if (err != EAGAIN && err != EWOULDBLOCK) CYMG__ERR("accept: %s", strerror(err));
      lsn->flags &= ~CYMG__F_READABLE;
      return;
    }
    cymg_addr rem;
    cymg__sockaddr_to_addr(&u, &rem);
    if (cymg__conn_adopt(lsn, fd, &rem) == NULL) {
      close(fd);
      CYMG__ERR("accept: out of memory, dropped a connection");
    }
  }
}

cymg_conn *cymg__conn_adopt(cymg_conn *lsn, int fd, const cymg_addr *rem) {
  cymg_conn *c = cymg__conn_new(lsn->mgr, fd, 0, lsn->fn, lsn->fn_data);
  if (c == NULL) return NULL;
  c->rem = *rem;
  if (memcmp(lsn->loc.ip, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == 0) {
    cymg__sock_local(c); /* wildcard listener: ask which address was used */
  } else {
    c->loc = lsn->loc;
  }
  c->recv_limit = lsn->recv_limit;
  c->send_limit = lsn->send_limit;
  c->wm_high = lsn->wm_high;
  c->wm_low = lsn->wm_low;
  c->stall_ms = lsn->stall_ms;
  if (lsn->proto && lsn->proto->accept) {
    c->proto = lsn->proto;
    c->proto_state = lsn->proto->accept(c, lsn);
  }
  if (lsn->flags & CYMG__F_WANT_POLL) cymg_conn_set_poll(c, true);
  if (lsn->flags & CYMG__F_TLS) cymg__tls_adopt(c, lsn);
  cymg__conn_update_io(c);
  cymg_call(c, CYMG_EV_OPEN, NULL);
  if (!(c->flags & CYMG__F_CLOSING)) cymg_call(c, CYMG_EV_ACCEPT, NULL);
  if ((c->flags & (CYMG__F_TLS | CYMG__F_CLOSING)) == CYMG__F_TLS) cymg__tls_accepted(c);
  return c;
}

/* ---- UDP: one datagram per READ; queued datagrams keep their boundaries ---- */

#define CYMG__MAX_DGRAM 65536
#define CYMG__DGRAMS_PER_EVENT 64

typedef struct {
  uint32_t len;
  cymg_addr to;
} dgram_hdr;

void cymg__udp_read(cymg_conn *c) {
  for (int i = 0; i < CYMG__DGRAMS_PER_EVENT; i++) {
    if (c->flags & CYMG__F_CLOSING) return;
    if (c->recv.len >= c->recv_limit) return;
    size_t room = c->recv_limit - c->recv.len;
    if (room > CYMG__MAX_DGRAM) room = CYMG__MAX_DGRAM;
    int rc = cymg__iobuf_reserve(&c->recv, room, c->recv_limit);
    if (rc < 0) {
      cymg_error(c, "receive buffer: %s", cymg_strerror(rc));
      return;
    }
    sockaddr_any u;
    socklen_t sl = sizeof(u);
    ptrdiff_t n = recvfrom(c->fd, cymg__iobuf_tail(&c->recv), room, 0, &u.sa, &sl);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        c->flags &= ~CYMG__F_READABLE;
      } else {
        cymg_error(c, "recv: %s", strerror(errno));
      }
      return;
    }
    if (c->flags & CYMG__F_LISTENING) cymg__sockaddr_to_addr(&u, &c->rem);
    size_t got = (size_t) n;
    c->recv.len += got;
    cymg_call(c, CYMG_EV_READ, &got);
  }
}

static ptrdiff_t udp_sendto(cymg_conn *c, const void *data, size_t len, const cymg_addr *to) {
  ptrdiff_t n;
  if (c->flags & CYMG__F_LISTENING) {
    sockaddr_any u;
    socklen_t sl = to_sockaddr(to, &u);
    n = sendto(c->fd, data, len, MSG_NOSIGNAL, &u.sa, sl);
  } else {
    n = send(c->fd, data, len, MSG_NOSIGNAL);
  }
  return n < 0 ? -errno : n;
}

int cymg__udp_send(cymg_conn *c, const void *data, size_t len) {
  if (len > CYMG__MAX_DGRAM) return -EMSGSIZE;
  if (c->fd < 0) return CYMG_ESTATE;
  if (c->send.len == 0) {
    ptrdiff_t n = udp_sendto(c, data, len, &c->rem);
    if (n >= 0) {
      c->pending_written += (size_t) n;
      cymg__conn_defer(c, CYMG__P_WRITE);
      return 0;
    }
    if (n != -EAGAIN && n != -EWOULDBLOCK) return (int) n;
  }
  dgram_hdr h = {(uint32_t) len, c->rem};
  if (c->send.len + sizeof(h) + len > c->send_limit) return CYMG_ELIMIT;
  int rc = cymg__iobuf_append(&c->send, &h, sizeof(h), 0);
  if (rc == 0) rc = cymg__iobuf_append(&c->send, data, len, 0);
  if (rc < 0) return rc;
  cymg__conn_update_io(c);
  return 0;
}

void cymg__udp_flush(cymg_conn *c) {
  size_t written = 0;
  while (c->send.len >= sizeof(dgram_hdr)) {
    dgram_hdr h;
    memcpy(&h, cymg__iobuf_data(&c->send), sizeof(h));
    ptrdiff_t n = udp_sendto(c, cymg__iobuf_data(&c->send) + sizeof(h), h.len, &h.to);
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
      c->flags &= ~CYMG__F_WRITABLE;
      break;
    }
    if (n < 0) CYMG__ERR("udp send: %s (datagram dropped)", cymg_strerror((int) n));
    else written += (size_t) n;
    cymg__iobuf_consume(&c->send, sizeof(h) + h.len);
  }
  if (written) cymg_call(c, CYMG_EV_WRITE, &written);
}

/* ---- the plain transport ---- */

static ptrdiff_t plain_recv(cymg_conn *c, void *buf, size_t len) {
  for (;;) {
    ptrdiff_t n = recv(c->fd, buf, len, 0);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? CYMG_EAGAIN : -errno;
  }
}

static ptrdiff_t plain_send(cymg_conn *c, const void *buf, size_t len) {
  for (;;) {
    ptrdiff_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? CYMG_EAGAIN : -errno;
  }
}

static void plain_close(cymg_conn *c) {
  close(c->fd);
  c->fd = -1;
}

const cymg__transport cymg__transport_plain = {
    "plain", plain_recv, plain_send, plain_close, NULL, NULL, NULL, NULL, NULL, NULL};
