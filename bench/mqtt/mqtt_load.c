/* MQTT broker load generator for bench/mqtt/run.sh: one thread, epoll, raw
 * non-blocking sockets, packets encoded and checked with libcymg's codec
 * (cymg_mqtt_encode / cymg_mqtt_parse: a malformed packet from a broker is a
 * failure, not a guess).
 *
 *   mqtt_load run PORT [-q QOS] [-p PUBS] [-s SUBS] [-w WINDOW] [-t SECS]
 *                      [-z SIZE] [-V 4|5] [-P BROKER_PID]
 *   mqtt_load idle PORT N [-V 4|5] [-P BROKER_PID] [-H 1]
 *
 * run: PUBS publishers and SUBS subscribers on 127.0.0.1:PORT. Publisher i
 * publishes on "bench/i"; subscriber j subscribes to "bench/(j % PUBS)" with
 * QoS QOS, so each publisher's message goes to SUBS / PUBS subscribers (1 1:
 * one to one; 1 100: a fan-out of 100). Messages are SIZE (64) bytes and carry
 * their publisher and sequence number and a pattern, all checked on receipt.
 * The loop is closed end to end: a publisher keeps at most WINDOW messages in
 * flight, a message leaving the window once every subscriber of its topic has
 * received it (and, QoS 1, the broker has sent its PUBACK), so no broker is
 * flooded and a message lost stalls its window until it is declared lost
 * (LOSS_S after it was sent). Subscribers answer QoS 1 with PUBACK. Writes
 * are gathered per connection and made once per epoll round.
 *
 * Counts: deliveries (PUBLISH received by subscribers, first copies) during
 * the timed SECS; after the timed part the publishers stop and what is in
 * flight drains (LOSS_S at most), then lost = receipts never made, dups =
 * copies received twice (allowed for QoS 1: at least once; never for QoS 0),
 * errors = anything else wrong (bad payload, wrong topic, a sequence number
 * never sent). With -P the broker's user+system CPU over the timed part comes
 * from /proc/PID/stat; the generator's own from getrusage; "others" is the
 * machine's busy time less both, in % of one CPU. Prints one line of
 * key=value pairs; exit status 1 on a failure (lost or errors or, QoS 0,
 * dups).
 *
 * idle: N clients (client id "idle-I"), each CONNECT, CONNACK, SUBSCRIBE to
 * "idle/I" (QoS 0), SUBACK, at most 200 being set up at once, keep-alive
 * 300 s; with -P, prints the broker's VmRSS before the first connection and
 * 2 s after the last SUBACK (what a broker frees lazily, on a timer, is gone by
 * then) and the difference per client; then (with -H 1,
 * once its standard input is closed: a profiler looks meanwhile) closes them
 * all. Raises RLIMIT_NOFILE to its hard limit. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cymg/error.h>
#include <cymg/mqtt.h>

#define LOSS_S 5.0
#define RX_CAP (256 * 1024)
#define MAX_PAYLOAD 4096

enum { ROLE_PUB, ROLE_SUB, ROLE_IDLE };
enum { ST_CONNECTING, ST_CONNACK, ST_SUBACK, ST_READY, ST_DEAD };

typedef struct conn {
  int fd, role, index, state;
  uint8_t *rx;
  size_t rx_len, rx_cap;
  uint8_t *tx;
  size_t tx_len, tx_off, tx_cap;
  bool dirty, want_out;
  struct conn *next_dirty;
} conn;

/* One message of a publisher's window. */
typedef struct slot {
  uint64_t seq;
  double sent_at;
  uint32_t got;   /* subscribers that received it */
  bool acked;     /* QoS 0: at once; QoS 1: PUBACK seen */
  uint64_t *mask; /* which subscribers (their rank within the topic) */
} slot;

typedef struct pub {
  conn *c;
  uint64_t base, next; /* [base, next) in flight */
  uint32_t fanout;
  slot *slots; /* window entries, seq % window */
} pub;

static int qos, npubs = 1, nsubs = 1, window = 50, version = CYMG_MQTT_V311, epfd;
static size_t size = 64, mask_words;
static double secs = 2;
static pid_t broker_pid;
static bool running, timing, idle_mode, hold;
static pub *pubs;
static conn *dirty_list;
static int ready_count, dead_count;
static uint64_t delivered, delivered_timed, dups, errors, lost, published, acks;
static uint64_t lat_n;
static double lat_sum;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long self_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

/* utime + stime of pid in clock ticks; -1 when unreadable. */
static long proc_ticks(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (p == NULL) return -1;
  unsigned long ut = 0, st = 0;
  /* After ") ": state(3) ... utime is field 14, stime 15 of the line. */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -1;
  return (long)(ut + st);
}

/* Busy ticks of the whole machine (user nice system irq softirq steal). */
static long machine_busy_ticks(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return -1;
  unsigned long v[8] = {0};
  int n = fscanf(f, "cpu %lu %lu %lu %lu %lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                 &v[6], &v[7]);
  fclose(f);
  if (n != 8) return -1;
  return (long)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
}

/* VmRSS of pid in KiB; -1 when unreadable. */
static long proc_rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long kb = -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  fclose(f);
  return kb;
}

static void die(const char *what) {
  fprintf(stderr, "mqtt_load: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void fail(conn *c, const char *why) {
  fprintf(stderr, "mqtt_load: %s %d: %s\n",
          c->role == ROLE_PUB   ? "publisher"
          : c->role == ROLE_SUB ? "subscriber"
                                : "client",
          c->index, why);
  errors++;
  if (c->state != ST_DEAD) {
    c->state = ST_DEAD;
    dead_count++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
}

/* Room for n more bytes at the end of the send buffer. */
static uint8_t *tx_room(conn *c, size_t n) {
  if (c->tx_off > 0 && c->tx_off == c->tx_len) c->tx_off = c->tx_len = 0;
  if (c->tx_len + n > c->tx_cap) {
    if (c->tx_off > 0) {
      memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
      c->tx_len -= c->tx_off;
      c->tx_off = 0;
    }
    size_t cap = c->tx_cap ? c->tx_cap : 4096;
    while (c->tx_len + n > cap) cap *= 2;
    if (cap != c->tx_cap) {
      uint8_t *p = realloc(c->tx, cap);
      if (p == NULL) die("realloc");
      c->tx = p;
      c->tx_cap = cap;
    }
  }
  return c->tx + c->tx_len;
}

/* Encodes m into c's send buffer, to go out at the end of this round. */
static void queue(conn *c, const cymg_mqtt_msg *m) {
  if (c->state == ST_DEAD) return;
  size_t room = 128 + size;
  uint8_t *p = tx_room(c, room);
  int n = cymg_mqtt_encode(m, version, p, room);
  if (n > 0 && (size_t)n > room) { /* larger than guessed: once more with room */
    p = tx_room(c, (size_t)n);
    n = cymg_mqtt_encode(m, version, p, (size_t)n);
  }
  if (n < 0) {
    fail(c, "encode failed");
    return;
  }
  c->tx_len += (size_t)n;
  if (!c->dirty) {
    c->dirty = true;
    c->next_dirty = dirty_list;
    dirty_list = c;
  }
}

static void set_out(conn *c, bool on) {
  if (c->want_out == on || c->state == ST_DEAD) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl");
  c->want_out = on;
}

/* One send of what is queued; the rest waits for EPOLLOUT. */
static void flush(conn *c) {
  if (c->state == ST_DEAD || c->state == ST_CONNECTING) return;
  size_t n = c->tx_len - c->tx_off;
  if (n == 0) return;
  ssize_t w = send(c->fd, c->tx + c->tx_off, n, MSG_NOSIGNAL);
  if (w < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      w = 0;
    else {
      fail(c, strerror(errno));
      return;
    }
  }
  c->tx_off += (size_t)w;
  set_out(c, c->tx_off < c->tx_len);
}

static void flush_dirty(void) {
  while (dirty_list) {
    conn *c = dirty_list;
    dirty_list = c->next_dirty;
    c->dirty = false;
    if (!c->want_out) flush(c);
  }
}

static void send_connect(conn *c, const char *client_id) {
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_CONNECT;
  m.connect.client_id = cymg_str_n(client_id, strlen(client_id));
  m.connect.keepalive = idle_mode ? 300 : 60;
  m.connect.clean = true;
  queue(c, &m);
  c->state = ST_CONNACK;
}

static void send_subscribe(conn *c, const char *filter, int q) {
  uint8_t list[256];
  int n = cymg_mqtt_filter_encode(cymg_str_n(filter, strlen(filter)), q, list, sizeof(list), 0);
  if (n < 0 || (size_t)n > sizeof(list)) {
    fail(c, "bad filter");
    return;
  }
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_SUBSCRIBE;
  m.id = 1;
  m.filters = cymg_str_n((const char *)list, (size_t)n);
  queue(c, &m);
  c->state = ST_SUBACK;
}

/* ---- the messages ---- */

static void fill(uint8_t *buf, uint32_t pub_index, uint64_t seq) {
  memcpy(buf, &pub_index, 4);
  memcpy(buf + 4, &seq, 8);
  for (size_t i = 12; i < size; i++) buf[i] = (uint8_t)(i * 7 + seq);
}

static void publish_next(pub *p) {
  uint64_t seq = p->next++;
  slot *s = &p->slots[seq % (uint64_t)window];
  s->seq = seq;
  s->sent_at = now_s();
  s->got = 0;
  s->acked = qos == 0;
  memset(s->mask, 0, mask_words * sizeof(uint64_t));
  uint8_t payload[MAX_PAYLOAD];
  char topic[32];
  fill(payload, (uint32_t)p->c->index, seq);
  int tl = snprintf(topic, sizeof(topic), "bench/%d", p->c->index);
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_PUBLISH;
  m.topic = cymg_str_n(topic, (size_t)tl);
  m.data = cymg_str_n((const char *)payload, size);
  m.qos = (uint8_t)qos;
  m.id = qos ? (uint16_t)(seq % 65535 + 1) : 0;
  queue(p->c, &m);
  published++;
}

/* Slides p's window over the messages that are complete and refills it. */
static void advance(pub *p) {
  while (p->base < p->next) {
    slot *s = &p->slots[p->base % (uint64_t)window];
    if (s->got < p->fanout || !s->acked) break;
    double us = (now_s() - s->sent_at) * 1e6;
    lat_sum += us;
    lat_n++;
    p->base++;
  }
  while (running && p->next - p->base < (uint64_t)window && p->c->state == ST_READY)
    publish_next(p);
}

/* Declares lost what waited LOSS_S for its receipts (or every receipt still
 * missing when `all`), so a lost message does not stall its window forever. */
static void expire(pub *p, double now, bool all) {
  while (p->base < p->next) {
    slot *s = &p->slots[p->base % (uint64_t)window];
    if (s->got >= p->fanout && s->acked) {
      p->base++;
      continue;
    }
    if (!all && now - s->sent_at < LOSS_S) break;
    lost += p->fanout - s->got;
    if (!s->acked) {
      fprintf(stderr, "mqtt_load: publisher %d: message %llu never acknowledged\n", p->c->index,
              (unsigned long long)s->seq);
      errors++;
    }
    p->base++;
  }
  advance(p);
}

static void on_publish(conn *c, const cymg_mqtt_msg *m) {
  if (c->role != ROLE_SUB) {
    fail(c, "PUBLISH to a publisher");
    return;
  }
  if (m->qos > 0) {
    cymg_mqtt_msg a;
    memset(&a, 0, sizeof(a));
    a.cmd = CYMG_MQTT_CMD_PUBACK;
    a.id = m->id;
    queue(c, &a);
  }
  int pi = c->index % npubs;
  char topic[32];
  int tl = snprintf(topic, sizeof(topic), "bench/%d", pi);
  uint32_t from;
  uint64_t seq;
  if (m->topic.len != (size_t)tl || memcmp(m->topic.buf, topic, (size_t)tl) != 0 ||
      m->data.len != size) {
    fail(c, "wrong topic or size");
    return;
  }
  memcpy(&from, m->data.buf, 4);
  memcpy(&seq, m->data.buf + 4, 8);
  uint8_t want[MAX_PAYLOAD];
  fill(want, (uint32_t)pi, seq);
  if (from != (uint32_t)pi || memcmp(want, m->data.buf, size) != 0) {
    fail(c, "payload corrupted");
    return;
  }
  pub *p = &pubs[pi];
  if (seq >= p->next) {
    fail(c, "a message never sent");
    return;
  }
  if (seq < p->base) { /* complete already (or declared lost) */
    dups++;
    return;
  }
  slot *s = &p->slots[seq % (uint64_t)window];
  uint32_t rank = (uint32_t)(c->index / npubs);
  uint64_t bit = 1ull << (rank % 64);
  if (s->mask[rank / 64] & bit) {
    dups++;
    return;
  }
  s->mask[rank / 64] |= bit;
  s->got++;
  delivered++;
  if (timing) delivered_timed++;
  if (s->got == p->fanout && s->acked && seq == p->base) advance(p);
}

static void on_puback(conn *c, const cymg_mqtt_msg *m) {
  if (c->role != ROLE_PUB || qos == 0) {
    fail(c, "unexpected PUBACK");
    return;
  }
  pub *p = &pubs[c->index];
  uint64_t id0 = m->id - 1u, b = p->base % 65535;
  uint64_t seq = p->base + (id0 + 65535 - b) % 65535;
  if (m->id == 0 || seq >= p->next) {
    dups++; /* an id no longer in flight: a repeated PUBACK */
    return;
  }
  slot *s = &p->slots[seq % (uint64_t)window];
  if (s->acked) {
    dups++;
    return;
  }
  s->acked = true;
  acks++;
  if (m->ack >= 0x80) {
    fail(c, "PUBACK with an error code");
    return;
  }
  if (seq == p->base) advance(p);
}

static void on_packet(conn *c, const cymg_mqtt_msg *m) {
  switch (m->cmd) {
    case CYMG_MQTT_CMD_CONNACK:
      if (c->state != ST_CONNACK || m->ack != 0) {
        fail(c, "CONNACK refused or unexpected");
        return;
      }
      if (c->role == ROLE_PUB) {
        c->state = ST_READY;
        ready_count++;
      } else {
        char filter[32];
        if (c->role == ROLE_SUB)
          snprintf(filter, sizeof(filter), "bench/%d", c->index % npubs);
        else
          snprintf(filter, sizeof(filter), "idle/%d", c->index);
        send_subscribe(c, filter, c->role == ROLE_SUB ? qos : 0);
      }
      return;
    case CYMG_MQTT_CMD_SUBACK:
      if (c->state != ST_SUBACK || m->id != 1 || m->data.len != 1 ||
          (uint8_t)m->data.buf[0] >= 0x80) {
        fail(c, "SUBACK refused or unexpected");
        return;
      }
      c->state = ST_READY;
      ready_count++;
      return;
    case CYMG_MQTT_CMD_PUBLISH: on_publish(c, m); return;
    case CYMG_MQTT_CMD_PUBACK: on_puback(c, m); return;
    case CYMG_MQTT_CMD_PINGRESP: return;
    default: {
      char why[64];
      snprintf(why, sizeof(why), "unexpected %s", cymg_mqtt_cmd_name(m->cmd));
      fail(c, why);
    }
  }
}

/* One recv (level-triggered: what is left is reported again), then every
 * complete packet. */
static void on_readable(conn *c) {
  if (c->rx_len == c->rx_cap) {
    fail(c, "a packet larger than the receive buffer");
    return;
  }
  ssize_t r = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);
  if (r == 0) {
    if (running)
      fail(c, "the broker closed the connection");
    else if (c->state != ST_DEAD) {
      c->state = ST_DEAD;
      dead_count++;
      close(c->fd);
    }
    return;
  }
  if (r < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    fail(c, strerror(errno));
    return;
  }
  c->rx_len += (size_t)r;
  size_t ofs = 0;
  while (ofs < c->rx_len && c->state != ST_DEAD) {
    cymg_mqtt_msg m;
    cymg_mqtt_err e;
    int n = cymg_mqtt_parse(c->rx + ofs, c->rx_len - ofs, version, c->rx_cap, &m, &e);
    if (n == CYMG_EAGAIN) break;
    if (n < 0) {
      fail(c, e.why);
      return;
    }
    on_packet(c, &m);
    ofs += (size_t)n;
  }
  if (c->state == ST_DEAD) return;
  memmove(c->rx, c->rx + ofs, c->rx_len - ofs);
  c->rx_len -= ofs;
}

static void on_writable(conn *c) {
  if (c->state == ST_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      errno = err;
      fail(c, "connect failed");
      return;
    }
    char id[32];
    snprintf(id, sizeof(id), "%s-%d",
             c->role == ROLE_PUB   ? "pub"
             : c->role == ROLE_SUB ? "sub"
                                   : "idle",
             c->index);
    set_out(c, false);
    c->state = ST_CONNACK;
    send_connect(c, id); /* written at the end of this round */
    return;
  }
  flush(c);
}

static conn *open_conn(int port, int role, int index) {
  conn *c = calloc(1, sizeof(conn));
  if (c == NULL) die("calloc");
  c->role = role;
  c->index = index;
  c->rx_cap = role == ROLE_IDLE ? 512 : RX_CAP;
  c->rx = malloc(c->rx_cap);
  if (c->rx == NULL) die("malloc");
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) die("TCP_NODELAY");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
    die("connect");
  c->state = ST_CONNECTING;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
  c->want_out = true;
  return c;
}

/* One epoll round: events, then one write per connection with bytes queued. */
static void poll_once(int timeout_ms) {
  struct epoll_event evs[256];
  int n = epoll_wait(epfd, evs, 256, timeout_ms);
  if (n < 0 && errno != EINTR) die("epoll_wait");
  for (int i = 0; i < n; i++) {
    conn *c = evs[i].data.ptr;
    if (c->state == ST_DEAD) continue;
    if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c);
    if (c->state != ST_DEAD && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
  }
  flush_dirty();
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die("setrlimit");
  }
}

static int usage(void) {
  fprintf(stderr,
          "usage: mqtt_load run PORT [-q QOS] [-p PUBS] [-s SUBS] [-w WINDOW] [-t SECS] [-z SIZE] "
          "[-V 4|5] [-P PID]\n"
          "       mqtt_load idle PORT N [-V 4|5] [-P PID] [-H 1]\n");
  return 2;
}

/* Closes the connections still open and frees them all, and cs. */
static void close_all(conn **cs, int n) {
  for (int i = 0; i < n; i++) {
    if (cs[i] == NULL) continue;
    if (cs[i]->state != ST_DEAD) close(cs[i]->fd);
    free(cs[i]->rx);
    free(cs[i]->tx);
    free(cs[i]);
  }
  free(cs);
}

static void free_pubs(void) {
  for (int i = 0; i < npubs; i++) {
    for (int k = 0; pubs[i].slots && k < window; k++) free(pubs[i].slots[k].mask);
    free(pubs[i].slots);
  }
  free(pubs);
}

static int run_idle(int port, int n) {
  long rss0 = broker_pid ? proc_rss_kb(broker_pid) : -1;
  conn **cs = calloc((size_t)n, sizeof(conn *));
  if (cs == NULL) die("calloc");
  int opened = 0;
  double t_end = now_s() + 120;
  running = true;
  while (ready_count + dead_count < n && now_s() < t_end) {
    while (opened < n && opened - ready_count - dead_count < 200) {
      cs[opened] = open_conn(port, ROLE_IDLE, opened);
      opened++;
    }
    poll_once(100);
  }
  if (ready_count < n) {
    fprintf(stderr, "mqtt_load: only %d of %d idle clients set up\n", ready_count, n);
    close_all(cs, n);
    return 1;
  }
  /* Let the broker finish whatever it does after SUBACK (logging, timers). */
  double t_settle = now_s() + 2;
  while (now_s() < t_settle && dead_count == 0) poll_once(100);
  long rss1 = broker_pid ? proc_rss_kb(broker_pid) : -1;
  running = false;
  printf("idle=%d rss_before_kb=%ld rss_after_kb=%ld bytes_per_client=%ld failed=%d\n", ready_count,
         rss0, rss1, rss0 >= 0 && rss1 >= 0 ? (rss1 - rss0) * 1024 / n : -1, dead_count);
  fflush(stdout);
  if (hold) {
    char buf[256];
    while (read(0, buf, sizeof(buf)) > 0) continue;
  }
  int rc = dead_count ? 1 : 0;
  close_all(cs, n);
  return rc;
}

static int run_load(int port) {
  int total = npubs + nsubs;
  conn **cs = calloc((size_t)total, sizeof(conn *));
  pubs = calloc((size_t)npubs, sizeof(pub));
  if (cs == NULL || pubs == NULL) die("calloc");
  mask_words = (size_t)(nsubs / npubs + 64) / 64;
  running = true;
  /* Subscribers first, so every message has its audience from the start. */
  for (int j = 0; j < nsubs; j++) {
    cs[j] = open_conn(port, ROLE_SUB, j);
    pubs[j % npubs].fanout++;
  }
  double t_setup = now_s() + 30;
  while (ready_count + dead_count < nsubs && now_s() < t_setup) poll_once(100);
  for (int i = 0; i < npubs; i++) {
    pub *p = &pubs[i];
    p->c = cs[nsubs + i] = open_conn(port, ROLE_PUB, i);
    p->slots = calloc((size_t)window, sizeof(slot));
    if (p->slots == NULL) die("calloc");
    for (int k = 0; k < window; k++) {
      p->slots[k].mask = calloc(mask_words, sizeof(uint64_t));
      if (p->slots[k].mask == NULL) die("calloc");
    }
  }
  while (ready_count + dead_count < total && now_s() < t_setup) poll_once(100);
  if (ready_count < total || dead_count) {
    fprintf(stderr, "mqtt_load: only %d of %d clients set up\n", ready_count, total);
    close_all(cs, total);
    free_pubs();
    return 1;
  }
  /* A short warm-up, not counted, then the timed part. */
  for (int i = 0; i < npubs; i++) advance(&pubs[i]);
  double t_warm = now_s() + 0.2;
  while (now_s() < t_warm && !dead_count) poll_once(10);
  long b0 = broker_pid ? proc_ticks(broker_pid) : -1, m0 = machine_busy_ticks();
  long c0 = self_cpu_us();
  uint64_t pub0 = published;
  double t0 = now_s(), t1, last_expire = t0;
  timing = true;
  while (!dead_count) {
    poll_once(10);
    double t = now_s();
    if (t - last_expire > 0.5) {
      for (int i = 0; i < npubs; i++) expire(&pubs[i], t, false);
      last_expire = t;
    }
    if (t - t0 >= secs) break;
  }
  t1 = now_s();
  timing = false;
  long b1 = broker_pid ? proc_ticks(broker_pid) : -1, m1 = machine_busy_ticks();
  long c1 = self_cpu_us();
  uint64_t pub_timed = published - pub0;
  running = false;
  /* Drain: what is in flight either arrives or is declared lost. */
  double t_drain = now_s() + LOSS_S;
  for (;;) {
    bool empty = true;
    for (int i = 0; i < npubs; i++)
      if (pubs[i].base < pubs[i].next) empty = false;
    if (empty || dead_count || now_s() > t_drain) break;
    poll_once(10);
    for (int i = 0; i < npubs; i++) advance(&pubs[i]);
  }
  for (int i = 0; i < npubs; i++) expire(&pubs[i], now_s(), true);
  double el = t1 - t0;
  long hz = sysconf(_SC_CLK_TCK);
  double broker_s = b0 >= 0 && b1 >= 0 ? (double)(b1 - b0) / (double)hz : -1;
  double self_s = (double)(c1 - c0) / 1e6;
  double others =
      m0 >= 0 && m1 >= 0 ? ((double)(m1 - m0) / (double)hz - broker_s - self_s) / el : -1;
  if (others < 0 && m0 >= 0) others = 0;
  printf(
      "delivered=%llu seconds=%.3f msgs_per_s=%.0f published=%llu pub_per_s=%.0f "
      "broker_cpu_s=%.3f msgs_per_broker_cpu_s=%.0f load_cpu_pct=%.0f others_pct=%.0f "
      "latency_us=%.0f lost=%llu dups=%llu errors=%llu total_delivered=%llu qos=%d pubs=%d "
      "subs=%d window=%d version=%d\n",
      (unsigned long long)delivered_timed, el, (double)delivered_timed / el,
      (unsigned long long)pub_timed, (double)pub_timed / el, broker_s,
      broker_s > 0 ? (double)delivered_timed / broker_s : 0, self_s * 100 / el, others * 100,
      lat_n ? lat_sum / (double)lat_n : 0, (unsigned long long)lost, (unsigned long long)dups,
      (unsigned long long)errors, (unsigned long long)delivered, qos, npubs, nsubs, window,
      version);
  int rc = (lost || errors || (qos == 0 && dups)) ? 1 : 0;
  close_all(cs, total);
  free_pubs();
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  idle_mode = strcmp(argv[1], "idle") == 0;
  if (!idle_mode && strcmp(argv[1], "run") != 0) return usage();
  int port = atoi(argv[2]), n = 0, argi = 3;
  if (idle_mode) {
    if (argc < 4) return usage();
    n = atoi(argv[3]);
    argi = 4;
  }
  for (; argi + 1 < argc; argi += 2) {
    const char *o = argv[argi], *v = argv[argi + 1];
    if (strcmp(o, "-q") == 0)
      qos = atoi(v);
    else if (strcmp(o, "-p") == 0)
      npubs = atoi(v);
    else if (strcmp(o, "-s") == 0)
      nsubs = atoi(v);
    else if (strcmp(o, "-w") == 0)
      window = atoi(v);
    else if (strcmp(o, "-t") == 0)
      secs = atof(v);
    else if (strcmp(o, "-z") == 0)
      size = (size_t)atoi(v);
    else if (strcmp(o, "-V") == 0)
      version = atoi(v);
    else if (strcmp(o, "-P") == 0)
      broker_pid = (pid_t)atoi(v);
    else if (strcmp(o, "-H") == 0)
      hold = atoi(v) != 0;
    else
      return usage();
  }
  if (argi != argc || port <= 0 || port > 65535 || qos < 0 || qos > 1 || npubs < 1 ||
      nsubs < npubs || window < 1 || window > 60000 || secs <= 0 || size < 12 ||
      size > MAX_PAYLOAD || (version != CYMG_MQTT_V311 && version != CYMG_MQTT_V5) ||
      (idle_mode && n < 1))
    return usage();
  raise_nofile();
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  return idle_mode ? run_idle(port, n) : run_load(port);
}
