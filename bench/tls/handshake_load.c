/* A load generator for full TLS handshakes, one per request: wrk cannot be
 * used for that, as it keeps each connection's SSL object across reconnects
 * (SSL_clear) and so resumes the session (checked: 872 of 882 requests resumed
 * against hello_tls_cymg). Here every connection gets a fresh SSL from a
 * context with no client session cache, so every request costs the server a
 * full handshake with its certificate's signature.
 *
 *   handshake_load PORT CONNS SECS
 *
 * Keeps CONNS connections to 127.0.0.1:PORT busy for SECS seconds, each doing
 * connect, handshake, "GET / HTTP/1.1" with Connection: close, reading the
 * answer up to its "hello" body, then closing (the next starts at once). Prints
 * its result in wrk's words, which bench/lib.sh's wrk_result reads: requests,
 * requests/s, the 99th percentile latency, non-200 answers and errors. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { HANDSHAKE, WRITING, READING };

typedef struct {
  int fd;
  SSL *ssl;
  int state;
  uint64_t t0;
  size_t got;
  char buf[2048];
} conn;

static SSL_CTX *ctx;
static int ep, port;
static long done, non200, errors;
static uint64_t *lat;
static size_t nlat, cap_lat;
static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void want(conn *c, uint32_t events) {
  struct epoll_event e = {.events = events, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) != 0) perror("epoll_ctl");
}

/* A new connection in c (the previous one, if any, already ended). */
static void start(conn *c) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0 || (connect(c->fd, (struct sockaddr *) &a, sizeof(a)) != 0 && errno != EINPROGRESS)) {
    perror("connect");
    exit(1);
  }
  c->ssl = SSL_new(ctx);
  if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
    fprintf(stderr, "SSL_new failed\n");
    exit(1);
  }
  SSL_set_connect_state(c->ssl);
  c->state = HANDSHAKE;
  c->got = 0;
  c->t0 = now_us();
  struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) != 0) {
    perror("epoll_ctl");
    exit(1);
  }
}

static void finish(conn *c, int outcome) { /* 1 ok, 0 non-200, -1 error */
  if (outcome > 0) {
    done++;
    if (nlat == cap_lat) {
      cap_lat = cap_lat ? 2 * cap_lat : 65536;
      uint64_t *n = realloc(lat, cap_lat * sizeof(*lat));
      if (n == NULL) exit(1);
      lat = n;
    }
    lat[nlat++] = now_us() - c->t0;
  } else if (outcome == 0) {
    done++;
    non200++;
  } else {
    errors++;
  }
  SSL_free(c->ssl); /* no shutdown: the server closes after its answer anyway */
  close(c->fd);     /* also leaves the epoll set */
  start(c);
}

/* One step of c; returns when it waits for the socket. */
static void drive(conn *c) {
  for (;;) {
    int r;
    if (c->state == HANDSHAKE) {
      r = SSL_do_handshake(c->ssl);
      if (r == 1) {
        c->state = WRITING;
        continue;
      }
    } else if (c->state == WRITING) {
      r = SSL_write(c->ssl, req, (int) sizeof(req) - 1);
      if (r > 0) {
        c->state = READING;
        continue;
      }
    } else {
      r = SSL_read(c->ssl, c->buf + c->got, (int) (sizeof(c->buf) - 1 - c->got));
      if (r > 0) {
        c->got += (size_t) r;
        c->buf[c->got] = '\0';
        char *body = strstr(c->buf, "\r\n\r\n");
        if (body != NULL && strstr(body, "hello") != NULL) {
          finish(c, strncmp(c->buf, "HTTP/1.1 200", 12) == 0 ? 1 : 0);
          return;
        }
        if (c->got < sizeof(c->buf) - 1) continue;
        finish(c, 0);
        return;
      }
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
      want(c, EPOLLIN);
    } else if (e == SSL_ERROR_WANT_WRITE) {
      want(c, EPOLLOUT);
    } else {
      ERR_clear_error();
      finish(c, -1);
    }
    return;
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s PORT CONNS SECS\n", argv[0]);
    return 2;
  }
  port = atoi(argv[1]);
  int nconns = atoi(argv[2]), secs = atoi(argv[3]);
  if (port <= 0 || nconns <= 0 || secs <= 0) return 2;
  ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) return 1;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the benchmark's throwaway certificate */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if ((ep = epoll_create1(0)) < 0) return 1;
  conn *cs = calloc((size_t) nconns, sizeof(*cs));
  if (cs == NULL) return 1;
  uint64_t t_start = now_us(), t_end = t_start + (uint64_t) secs * 1000000u;
  for (int i = 0; i < nconns; i++) start(&cs[i]);
  struct epoll_event evs[256];
  while (now_us() < t_end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) drive(evs[i].data.ptr);
  }
  double el = (double) (now_us() - t_start) / 1e6;
  qsort(lat, nlat, sizeof(*lat), cmp_u64);
  uint64_t p99 = nlat ? lat[(nlat * 99) / 100 < nlat ? (nlat * 99) / 100 : nlat - 1] : 0;
  printf("Running %ds test @ https://127.0.0.1:%d/ (a full TLS handshake per request)\n", secs, port);
  printf("  %d connections\n", nconns);
  printf("  Latency Distribution\n     99%%   %lluus\n", (unsigned long long) p99);
  printf("  %ld requests in %.2fs, 0 read\n", done, el);
  if (non200) printf("  Non-2xx or 3xx responses: %ld\n", non200);
  if (errors) printf("  Socket errors: connect 0, read %ld, write 0, timeout 0\n", errors);
  printf("Requests/sec: %.2f\n", (double) done / el);
  return 0;
}
