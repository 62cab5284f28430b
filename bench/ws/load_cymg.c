/* WebSocket echo load client for bench/ws/run.sh, on libcymg: CONNS connections
 * to one server, each keeping WINDOW 64-byte binary messages in flight (a new
 * one is sent as soon as an echo comes back), for SECONDS seconds.
 *
 *   load_cymg URL CONNS WINDOW SECONDS [SIZE]
 *
 * Every echo is checked byte for byte (each message carries its connection
 * index and sequence number; a connection's echoes come back in order). Timing
 * starts once every connection is open and ends at the first poll after
 * SECONDS; messages counted are the echoes received in between. Prints
 * "msgs=N seconds=S msgs_per_s=R cpu_us=N conns=N window=N" (cpu_us: this
 * process, user + system, over the timed part). Exit status 1 on a connection
 * failure or a wrong echo. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cymg/cymg.h>

typedef struct peer {
  uint64_t index, sent, recvd;
  bool open;
} peer;

static size_t size = 64;
static int window = 1, opened, closed, failed;
static bool sending, running;
static uint64_t counted; /* echoes received while timing */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static long cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

/* Message number seq of connection index: both numbers, then a pattern. */
static void fill(uint8_t *buf, uint64_t index, uint64_t seq) {
  memcpy(buf, &index, 8);
  memcpy(buf + 8, &seq, 8);
  for (size_t i = 16; i < size; i++) buf[i] = (uint8_t) (i + seq);
}

static void send_one(cymg_conn *c, peer *p) {
  uint8_t buf[4096];
  fill(buf, p->index, p->sent++);
  if (cymg_ws_send(c, buf, size, CYMG_WS_OP_BINARY) != 0) {
    fprintf(stderr, "load_cymg: send failed\n");
    failed = 1;
  }
}

static void handler(cymg_conn *c, int ev, void *ev_data) {
  peer *p = cymg_conn_userdata(c);
  if (ev == CYMG_EV_WS_OPEN) {
    p->open = true;
    opened++;
    for (int i = 0; i < window; i++) send_one(c, p);
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    uint8_t want[4096];
    fill(want, p->index, p->recvd++);
    if (m->data.len != size || memcmp(m->data.buf, want, size) != 0) {
      fprintf(stderr, "load_cymg: connection %llu: wrong echo\n", (unsigned long long) p->index);
      failed = 1;
      running = false;
      return;
    }
    if (sending) counted++;
    if (running) send_one(c, p);
  } else if (ev == CYMG_EV_ERROR) {
    if (running) {
      fprintf(stderr, "load_cymg: %s\n", (const char *) ev_data);
      failed = 1;
    }
  } else if (ev == CYMG_EV_CLOSE) {
    closed++;
    if (running) failed = 1;
  }
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: %s URL CONNS WINDOW SECONDS [SIZE]\n", argv[0]);
    return 2;
  }
  int conns = atoi(argv[2]);
  window = atoi(argv[3]);
  double secs = atof(argv[4]);
  if (argc == 6) size = (size_t) atoi(argv[5]);
  if (conns < 1 || window < 1 || secs <= 0 || size < 16 || size > 4096) {
    fprintf(stderr, "load_cymg: bad arguments\n");
    return 2;
  }
  cymg_mgr *mgr;
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_EPOLL) != 0) return 1;
  peer *peers = calloc((size_t) conns, sizeof(peer));
  cymg_conn **cs = calloc((size_t) conns, sizeof(cymg_conn *));
  if (!peers || !cs) return 1;
  running = true;
  for (int i = 0; i < conns; i++) {
    peers[i].index = (uint64_t) i;
    if (cymg_ws_connect(mgr, argv[1], handler, &peers[i], &cs[i]) != 0) {
      fprintf(stderr, "load_cymg: %s\n", cymg_mgr_errmsg(mgr));
      return 1;
    }
  }
  double t_open = now_s() + 10, t0 = 0, t1 = 0;
  long cpu0 = 0, cpu1 = 0;
  while (opened < conns && !failed && now_s() < t_open) cymg_mgr_poll(mgr, 10);
  if (opened < conns || failed) {
    fprintf(stderr, "load_cymg: only %d of %d connections opened\n", opened, conns);
    return 1;
  }
  sending = true;
  t0 = now_s();
  cpu0 = cpu_us();
  while (!failed) {
    cymg_mgr_poll(mgr, 50);
    if (now_s() - t0 >= secs) break;
  }
  t1 = now_s();
  cpu1 = cpu_us();
  sending = false;
  running = false; /* no new messages; the ones in flight may still come back */
  uint64_t msgs = counted;
  for (int i = 0; i < conns; i++) cymg_ws_close(cs[i], CYMG_WS_CLOSE_NORMAL, NULL);
  double t_end = now_s() + 2;
  while (closed < conns && now_s() < t_end) cymg_mgr_poll(mgr, 10);
  cymg_mgr_free(mgr);
  free(peers);
  free(cs);
  printf("msgs=%llu seconds=%.3f msgs_per_s=%.0f cpu_us=%ld conns=%d window=%d\n",
         (unsigned long long) msgs, t1 - t0, msgs / (t1 - t0), cpu1 - cpu0, conns, window);
  return failed ? 1 : 0;
}
