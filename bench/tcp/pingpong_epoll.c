/* TCP ping-pong with a minimal hand-written epoll loop: the baseline libcymg is
 * measured against. No library, level-triggered, TCP_NODELAY, one recv and one send
 * per message when the kernel allows it. Anything this program does per round trip
 * is a cost any event loop must pay too; whatever libcymg adds on top is overhead.
 *
 *   pingpong_epoll server PORT              echo until the one client leaves
 *   pingpong_epoll client PORT ROUNDS SECS  ping-pong until ROUNDS or SECS run out
 *
 * PORT 0 lets the server pick one; it prints "port N" as its first line so the
 * driver script can find it. The client prints one line of key=value results. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG_SIZE 64

static void die(const char *what) {
  perror(what);
  exit(1);
}

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

static void set_nodelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) die("TCP_NODELAY");
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t) port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sin;
}

static void ep_set(int ep, int op, int fd, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.fd = fd};
  if (epoll_ctl(ep, op, fd, &ev) < 0) die("epoll_ctl");
}

/* The echo server. Whatever one recv returns goes back with one send. The
 * pending buffer only exists for a short write, which never happens with one
 * 64-byte message in flight but keeps the loop correct rather than lucky: while
 * it holds bytes the server waits for EPOLLOUT and reads nothing. */
static int run_server(int port) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in sin = loopback(port);
  if (bind(lfd, (struct sockaddr *) &sin, sizeof(sin)) < 0) die("bind");
  if (listen(lfd, 16) < 0) die("listen");
  socklen_t sl = sizeof(sin);
  if (getsockname(lfd, (struct sockaddr *) &sin, &sl) < 0) die("getsockname");
  printf("port %d\n", ntohs(sin.sin_port));
  fflush(stdout);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  ep_set(ep, EPOLL_CTL_ADD, lfd, EPOLLIN);

  static char buf[16384]; /* same read size as libcymg, so neither gets an edge */
  static char pending[sizeof(buf)];
  size_t npending = 0;
  int cfd = -1;
  for (;;) {
    struct epoll_event evs[8];
    int n = epoll_wait(ep, evs, 8, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s < 0) continue; /* spurious wakeup or aborted connect */
        if (cfd >= 0) { /* one client is the whole experiment */
          close(s);
          continue;
        }
        cfd = s;
        set_nodelay(cfd);
        ep_set(ep, EPOLL_CTL_ADD, cfd, EPOLLIN);
        continue;
      }
      if (npending > 0) { /* interest is EPOLLOUT only: finish the reply first */
        ssize_t w = send(cfd, pending, npending, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) goto done;
        if (w > 0) {
          memmove(pending, pending + w, npending - (size_t) w);
          npending -= (size_t) w;
        }
        if (npending == 0) ep_set(ep, EPOLL_CTL_MOD, cfd, EPOLLIN);
        continue;
      }
      ssize_t r = recv(cfd, buf, sizeof(buf), 0);
      if (r == 0) goto done;
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        goto done;
      }
      size_t got = (size_t) r, sent = 0;
      ssize_t w = send(cfd, buf, got, MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN && errno != EINTR) goto done;
      if (w > 0) sent = (size_t) w;
      if (sent < got) { /* a short write: park the rest and stop reading */
        memcpy(pending, buf + sent, got - sent);
        npending = got - sent;
        ep_set(ep, EPOLL_CTL_MOD, cfd, EPOLLOUT);
      }
    }
  }
done:
  if (cfd >= 0) close(cfd);
  close(lfd);
  close(ep);
  printf("cpu_us=%ld\n", cpu_us());
  return 0;
}

/* The client keeps exactly one message in flight: send 64 bytes, wait for all 64
 * to come back (checking them), repeat. Time runs from the first send to the
 * last reply, so connection setup is not counted. */
static int run_client(int port, long rounds, double secs) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in sin = loopback(port);
  /* A blocking connect keeps the setup simple; the measured loop is non-blocking. */
  if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0) die("connect");
  set_nodelay(fd);
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  ep_set(ep, EPOLL_CTL_ADD, fd, EPOLLIN);

  char msg[MSG_SIZE], reply[MSG_SIZE];
  memset(msg, 'x', sizeof(msg));
  long done = 0;
  double start = now_sec(), elapsed = 0;
  while (done < rounds) {
    /* The round number in the message makes a stale or misrouted echo visible. */
    memcpy(msg, &done, sizeof(done));
    /* One small message into an empty socket buffer is never cut short. */
    if (send(fd, msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t) sizeof(msg)) die("send");
    size_t got = 0;
    while (got < sizeof(reply)) {
      struct epoll_event ev;
      int n = epoll_wait(ep, &ev, 1, -1);
      if (n < 0 && errno != EINTR) die("epoll_wait");
      if (n <= 0) continue;
      ssize_t r = recv(fd, reply + got, sizeof(reply) - got, 0);
      if (r == 0) {
        fprintf(stderr, "client: server closed the connection\n");
        return 1;
      }
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        die("recv");
      }
      got += (size_t) r;
    }
    if (memcmp(msg, reply, sizeof(msg)) != 0) {
      fprintf(stderr, "client: echo mismatch at round %ld\n", done);
      return 1;
    }
    done++;
    /* The clock is read every 64 rounds: often enough for a deadline in seconds,
     * rare enough to stay out of the measurement. */
    if ((done & 63) == 0 && secs > 0 && now_sec() - start >= secs) break;
  }
  elapsed = now_sec() - start;
  printf("rounds=%ld seconds=%.3f rt_per_s=%.0f cpu_us=%ld\n", done, elapsed,
         elapsed > 0 ? (double) done / elapsed : 0.0, cpu_us());
  close(fd);
  close(ep);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "server") == 0) return run_server(atoi(argv[2]));
  if (argc == 5 && strcmp(argv[1], "client") == 0)
    return run_client(atoi(argv[2]), atol(argv[3]), atof(argv[4]));
  fprintf(stderr, "usage: %s server PORT | client PORT ROUNDS SECONDS\n", argv[0]);
  return 2;
}
