/* TCP ping-pong with libcymg on both ends, written the way an application would:
 * the server is the tcp_echo example's handler, the client reacts to READ.
 * Command lines and output match pingpong_epoll, so either client can drive
 * either server.
 *
 *   pingpong_cymg server PORT              echo until the one client leaves
 *   pingpong_cymg client PORT ROUNDS SECS  ping-pong until ROUNDS or SECS run out */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cymg/cymg.h>

#define MSG_SIZE 64

/* CPU time this process has used, user plus system, in microseconds. Unlike
 * round trips per second it barely moves when other work shares the CPUs, which
 * makes it the steadier way to compare two servers on a busy machine. */
static long cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* ---- server ---- */

static bool server_done;

static void server_fn(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_READ) {
    cymg_str data = cymg_conn_recv_data(c);
    if (cymg_send(c, data.buf, data.len) == 0) cymg_conn_consume(c, data.len);
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "server: %s\n", (const char *) ev_data);
  } else if (ev == CYMG_EV_CLOSE && !cymg_conn_is_listening(c)) {
    server_done = true; /* the client left: the experiment is over */
  }
}

static int run_server(int port) {
  cymg_mgr *mgr;
  cymg_conn *lsn;
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_EPOLL) != 0) return 1;
  if (cymg_listen(mgr, url, server_fn, NULL, &lsn) != 0) {
    fprintf(stderr, "server: %s\n", cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  printf("port %u\n", (unsigned) cymg_conn_local(lsn)->port);
  fflush(stdout);
  /* No timers are armed, so -1 blocks in the kernel exactly like the raw loop. */
  while (!server_done) cymg_mgr_poll(mgr, -1);
  cymg_mgr_free(mgr);
  printf("cpu_us=%ld\n", cpu_us());
  return 0;
}

/* ---- client ---- */

typedef struct {
  long rounds, done;
  double secs, start, elapsed;
  char msg[MSG_SIZE];
  bool finished, failed;
} client_state;

static void ping(cymg_conn *c, client_state *st) {
  /* The round number in the message makes a stale or misrouted echo visible. */
  memcpy(st->msg, &st->done, sizeof(st->done));
  if (cymg_send(c, st->msg, sizeof(st->msg)) != 0) {
    st->failed = true;
    cymg_close(c);
  }
}

static void client_fn(cymg_conn *c, int ev, void *ev_data) {
  client_state *st = cymg_conn_userdata(c);
  if (ev == CYMG_EV_CONNECT) {
    st->start = now_sec();
    ping(c, st);
  } else if (ev == CYMG_EV_READ) {
    cymg_str in = cymg_conn_recv_data(c);
    if (in.len < MSG_SIZE) return; /* the echo came in pieces: wait for the rest */
    if (memcmp(in.buf, st->msg, MSG_SIZE) != 0) {
      fprintf(stderr, "client: echo mismatch at round %ld\n", st->done);
      st->failed = true;
      cymg_close(c);
      return;
    }
    cymg_conn_consume(c, MSG_SIZE);
    st->done++;
    /* The clock is read every 64 rounds, as in the raw client. */
    bool timeup = (st->done & 63) == 0 && st->secs > 0 && now_sec() - st->start >= st->secs;
    if (st->done >= st->rounds || timeup) {
      st->elapsed = now_sec() - st->start;
      cymg_close(c);
    } else {
      ping(c, st);
    }
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "client: %s\n", (const char *) ev_data);
    st->failed = true;
  } else if (ev == CYMG_EV_CLOSE) {
    st->finished = true;
  }
}

static int run_client(int port, long rounds, double secs) {
  client_state st = {.rounds = rounds, .secs = secs};
  memset(st.msg, 'x', sizeof(st.msg));
  cymg_mgr *mgr;
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_EPOLL) != 0) return 1;
  if (cymg_connect(mgr, url, client_fn, &st, NULL) != 0) {
    fprintf(stderr, "client: %s\n", cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  while (!st.finished) cymg_mgr_poll(mgr, -1);
  cymg_mgr_free(mgr);
  if (st.failed) return 1;
  printf("rounds=%ld seconds=%.3f rt_per_s=%.0f cpu_us=%ld\n", st.done, st.elapsed,
         st.elapsed > 0 ? (double) st.done / st.elapsed : 0.0, cpu_us());
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "server") == 0) return run_server(atoi(argv[2]));
  if (argc == 5 && strcmp(argv[1], "client") == 0)
    return run_client(atoi(argv[2]), atol(argv[3]), atof(argv[4]));
  fprintf(stderr, "usage: %s server PORT | client PORT ROUNDS SECONDS\n", argv[0]);
  return 2;
}
