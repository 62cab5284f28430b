/* The resolver's UDP sockets: a few connected sockets per server, shared by
 * the queries in flight and replaced as they age (see dns_internal.h). They are
 * not connections: they register with the backend directly, under pointers
 * into the pool's array, so they never appear among the user's connections and
 * a query costs a send and (shared with the other answers of that wakeup) a
 * receive, with no socket, connect or backend call of its own. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cymg/rand.h"
#include "dns_internal.h"

void cymg__dns_pool_init(cymg__dns_pool *p, cymg_mgr *mgr) {
  memset(p, 0, sizeof(*p));
  p->mgr = mgr;
  p->reading = -1;
  for (int i = 0; i < CYMG__DNS_SOCKS; i++) p->socks[i].fd = -1;
}

int cymg__dns_random_id(cymg__dns_pool *p, uint16_t *out) {
  if (p->rnd_left < 2) {
    int rc = cymg_random_bytes(p->rnd, sizeof(p->rnd));
    if (rc < 0) return rc;
    p->rnd_left = sizeof(p->rnd);
  }
  p->rnd_left -= 2;
  *out = (uint16_t) ((p->rnd[p->rnd_left] << 8) | p->rnd[p->rnd_left + 1]);
  return 0;
}

static void sock_close(cymg__dns_pool *p, int i) {
  cymg__dns_sock *s = &p->socks[i];
  if (s->fd < 0) return;
  if (p->mgr->be->del(p->mgr->be_state, s->fd) < 0) {
    CYMG__DEBUG("dns: backend del of fd %d failed", s->fd);
  }
  close(s->fd);
  s->fd = -1;
  s->waiting = 0;
}

/* A retired socket goes when its last query does (not under its own read loop). */
static void maybe_close(cymg__dns_pool *p, int i) {
  cymg__dns_sock *s = &p->socks[i];
  if (s->fd >= 0 && s->retired && s->waiting == 0 && p->reading != i) sock_close(p, i);
}

static void unlink_slot(cymg__dns_pool *p, cymg__dns_slot *slot) {
  cymg__dns_slot **pp = &p->buckets[slot->id % CYMG__DNS_BUCKETS];
  while (*pp && *pp != slot) pp = &(*pp)->hnext;
  if (*pp) *pp = slot->hnext;
  slot->hnext = NULL;
  p->socks[slot->sock].waiting--;
  slot->sock = -1;
}

void cymg__dns_pool_cancel(cymg__dns_pool *p, cymg__dns_slot *slot) {
  if (slot->sock < 0) return;
  int i = slot->sock;
  unlink_slot(p, slot);
  maybe_close(p, i);
}

static bool addr_eq(const cymg_addr *a, const cymg_addr *b) {
  return a->is_ip6 == b->is_ip6 && a->port == b->port && memcmp(a->ip, b->ip, 16) == 0;
}

static bool usable(const cymg__dns_sock *s, const cymg_addr *srv, uint64_t now) {
  if (s->fd < 0 || s->retired || !addr_eq(&s->server, srv)) return false;
  return s->sent < CYMG__DNS_SOCK_QUERIES && now - s->born < CYMG__DNS_SOCK_AGE_MS;
}

/* The next of the server's active sockets in turn; a new one while fewer than
 * CYMG__DNS_ACTIVE are active. Returns an index or a negative code. */
static int pick(cymg__dns_pool *p, const cymg_addr *srv) {
  uint64_t now = cymg_millis();
  int active = 0, free_i = -1, fallback = -1;
  for (int i = 0; i < CYMG__DNS_SOCKS; i++) {
    cymg__dns_sock *s = &p->socks[i];
    if (s->fd < 0) {
      if (free_i < 0) free_i = i;
      continue;
    }
    if (!s->retired && !usable(s, srv, now) && addr_eq(&s->server, srv)) {
      s->retired = true; /* used up or too old: no new queries */
      maybe_close(p, i);
      if (s->fd < 0 && free_i < 0) free_i = i;
    }
    if (s->fd >= 0 && addr_eq(&s->server, srv)) {
      if (usable(s, srv, now)) active++;
      if (fallback < 0 || s->waiting < p->socks[fallback].waiting) fallback = i;
    }
  }
  if (active < CYMG__DNS_ACTIVE && free_i >= 0) {
    int fd = cymg__udp_connected_socket(srv);
    if (fd >= 0) {
      int rc = p->mgr->be->add(p->mgr->be_state, fd, CYMG__IO_R, &p->socks[free_i]);
      if (rc < 0) {
        close(fd);
        return rc;
      }
      cymg__dns_sock *s = &p->socks[free_i];
      memset(s, 0, sizeof(*s));
      s->fd = fd;
      s->server = *srv;
      s->born = now;
      p->mgr->dns_io = (char *) p->socks;
      p->mgr->dns_io_len = sizeof(p->socks);
      return free_i;
    }
    if (active == 0 && fallback < 0) return fd;
  }
  /* Round robin over the active ones. */
  for (int k = 0; k < CYMG__DNS_SOCKS; k++) {
    int i = (int) (p->rr++ % CYMG__DNS_SOCKS);
    if (usable(&p->socks[i], srv, now)) return i;
  }
  /* The pool is full of sockets still draining: share the least busy one
   * of this server rather than fail. */
  return fallback >= 0 ? fallback : CYMG_ENOMEM;
}

static bool id_taken(const cymg__dns_pool *p, int sock, uint16_t id) {
  for (const cymg__dns_slot *x = p->buckets[id % CYMG__DNS_BUCKETS]; x; x = x->hnext)
    if (x->sock == sock && x->id == id) return true;
  return false;
}

int cymg__dns_pool_send(cymg__dns_pool *p, cymg__dns_slot *slot, const cymg_addr *srv,
                        uint8_t *query, size_t len) {
  cymg__dns_pool_cancel(p, slot);
  int i = pick(p, srv);
  if (i < 0) return i;
  cymg__dns_sock *s = &p->socks[i];
  uint16_t id;
  do {
    int rc = cymg__dns_random_id(p, &id);
    if (rc < 0) return rc;
  } while (id_taken(p, i, id));
  query[0] = (uint8_t) (id >> 8);
  query[1] = (uint8_t) id;
  slot->id = id;
  slot->sock = i;
  cymg__dns_slot **b = &p->buckets[id % CYMG__DNS_BUCKETS];
  slot->hnext = *b;
  *b = slot;
  s->waiting++;
  s->sent++;
  if (send(s->fd, query, len, 0) < 0) return -errno; /* the slot waits: its timeout moves on */
  return 0;
}

/* Every query waiting on socket i fails (the server refused): each moves on. */
static void fail_all(cymg__dns_pool *p, int i) {
  p->socks[i].retired = true;
  for (size_t b = 0; b < CYMG__DNS_BUCKETS; b++) {
    for (cymg__dns_slot *x = p->buckets[b]; x;) {
      if (x->sock != i) {
        x = x->hnext;
        continue;
      }
      unlink_slot(p, x);
      cymg__dns_udp_answer(x, NULL, 0); /* may change any chain: start this one over */
      x = p->buckets[b];
    }
  }
}

void cymg__dns_io(cymg_mgr *mgr, void *ptr, unsigned events) {
  cymg__dns_pool *p = (cymg__dns_pool *) (mgr->dns_io - offsetof(cymg__dns_pool, socks));
  int i = (int) (((char *) ptr - mgr->dns_io) / (ptrdiff_t) sizeof(cymg__dns_sock));
  cymg__dns_sock *s = &p->socks[i];
  (void) events;
  if (s->fd < 0) return;
  uint8_t msg[4096]; /* no EDNS0: UDP answers are 512 bytes at most (RFC 1035 4.2.1) */
  p->reading = i;
  /* Every datagram queued now, not one per wakeup: a busy socket costs one
   * wait for many answers. Bounded so other sockets get their turn. */
  for (int k = 0; k < 64 && s->fd >= 0; k++) {
    ssize_t n = recv(s->fd, msg, sizeof(msg), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      CYMG__DEBUG("dns: recv: %s", strerror(errno));
      fail_all(p, i); /* ECONNREFUSED: ICMP port unreachable from the server */
      break;
    }
    if (n < 12) continue;
    uint16_t id = (uint16_t) ((msg[0] << 8) | msg[1]);
    for (cymg__dns_slot *x = p->buckets[id % CYMG__DNS_BUCKETS]; x; x = x->hnext) {
      if (x->sock == i && x->id == id) {
        cymg__dns_udp_answer(x, msg, (size_t) n);
        break; /* the chain may have changed under the call */
      }
    }
  }
  p->reading = -1;
  maybe_close(p, i);
}

void cymg__dns_pool_free(cymg__dns_pool *p) {
  for (int i = 0; i < CYMG__DNS_SOCKS; i++) sock_close(p, i);
  memset(p->buckets, 0, sizeof(p->buckets));
  if (p->mgr->dns_io == (char *) p->socks) {
    p->mgr->dns_io = NULL;
    p->mgr->dns_io_len = 0;
  }
}
