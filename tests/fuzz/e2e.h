/* Shared machinery of the end-to-end fuzz targets (fuzz_e2e_*.c): arbitrary bytes
 * go through a real connection of a real manager, so the whole path a peer's
 * bytes take (socket reads at any split, the protocol layer, the application
 * handler, replies, file pumps, close) is exercised, not a codec alone.
 *
 * Input layout (every target): 4 control bytes, then the payload.
 *   ctl[0] bits 0-1  configuration the target picks (listener, request kind...)
 *          bit  2    end with close() instead of shutdown(SHUT_WR): the peer
 *                    vanishes, the library's sends may fail (EPIPE/ECONNRESET)
 *          bit  3    non-reader: nothing the library writes is read until the
 *                    input is all written (its send buffer fills, pumps stall)
 *          bits 4-7  free for the target
 *   ctl[1..3]        cut points: the payload is written in up to four pieces,
 *                    piece i ending at len * ctl[i] / 256 (sorted), with manager
 *                    polls between them, so partial reads of every message
 *                    boundary are reachable.
 * The harness never sleeps: polls use timeout 0 and every loop is bounded.
 * After each input the connection must be gone (no live connections but the
 * harness's listeners) and nothing may leak (libFuzzer's leak check). */
#ifndef CYMG_FUZZ_E2E_H
#define CYMG_FUZZ_E2E_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): fuzz builds define NDEBUG. */
#define CHECK(c)                                                            \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                              \
    }                                                                       \
  } while (0)

#define E2E_CTL 4
#define E2E_CLOSE_HARD 0x04u
#define E2E_NO_READ 0x08u
/* Polls after the input is all written before the harness gives up waiting for
 * the library to close; then its side is closed and as many more are allowed.
 * A connection still open after that is a hang (see e2e_finish). */
#define E2E_MAX_POLLS 64
/* Bounded retries of a write the library does not take (its receive buffer is
 * at its limit and it stopped reading). */
#define E2E_MAX_STALLS 64

typedef struct e2e_in {
  uint8_t ctl;
  const uint8_t *p;
  size_t len;
  size_t cut[4]; /* piece ends, ascending; cut[3] == len */
} e2e_in;

/* Points in at payload p (len bytes) and places its cuts by the ratios r[0..2]. */
static inline void e2e_in_set(e2e_in *in, const uint8_t *p, size_t len, const uint8_t r[3]) {
  in->p = p;
  in->len = len;
  for (int i = 0; i < 3; i++) in->cut[i] = len * r[i] / 256;
  in->cut[3] = len;
  for (int i = 1; i < 3; i++) /* three values: an insertion sort is enough */
    for (int j = i; j > 0 && in->cut[j - 1] > in->cut[j]; j--) {
      size_t t = in->cut[j];
      in->cut[j] = in->cut[j - 1];
      in->cut[j - 1] = t;
    }
}

static inline int e2e_in_parse(const uint8_t *data, size_t size, e2e_in *in) {
  if (size < E2E_CTL) return -1;
  in->ctl = data[0];
  e2e_in_set(in, data + E2E_CTL, size - E2E_CTL, data + 1);
  return 0;
}

/* E2E_DEBUG=1: what the library wrote goes to stderr (for checking seeds). */
static int e2e_debug = -1;

/* With E2E_DEBUG=1, the events a handler sees go to stderr too. */
static inline void e2e_trace(int ev, void *ev_data) {
  if (e2e_debug < 0) e2e_debug = getenv("E2E_DEBUG") && getenv("E2E_DEBUG")[0] == '1';
  if (!e2e_debug || ev == CYMG_EV_POLL) return;
  const char *name = cymg_event_name(ev);
  fprintf(stderr, "\n[event %s%s%s]\n", name ? name : "?", ev == CYMG_EV_ERROR ? ": " : "",
          ev == CYMG_EV_ERROR ? (const char *) ev_data : "");
}

/* Reads and discards what the library wrote. Returns the bytes read, or -1
 * once the library closed its side. */
static inline ptrdiff_t e2e_drain(int fd) {
  char buf[65536];
  ptrdiff_t total = 0;
  if (e2e_debug < 0) e2e_debug = getenv("E2E_DEBUG") && getenv("E2E_DEBUG")[0] == '1';
  for (int i = 0; i < 64; i++) {
    ptrdiff_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0 && e2e_debug) fwrite(buf, 1, (size_t) n, stderr);
    if (n > 0) {
      total += n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return total;
    return -1; /* 0: end of stream; ECONNRESET and the like */
  }
  return total;
}

/* One poll without waiting; reads what came unless told not to. Returns
 * whether anything happened (ready descriptors or bytes for us). */
static inline bool e2e_poll(cymg_mgr *mgr, int fd, bool read) {
  int rc = cymg_mgr_poll(mgr, 0);
  CHECK(rc >= 0);
  ptrdiff_t got = read && fd >= 0 ? e2e_drain(fd) : 0;
  return rc > 0 || got != 0;
}

/* Writes the payload in its pieces, polling between them; stops early when the
 * library closed the connection. */
static inline void e2e_write(cymg_mgr *mgr, uint64_t id, int fd, const e2e_in *in) {
  bool read = !(in->ctl & E2E_NO_READ);
  size_t off = 0;
  for (int piece = 0; piece < 4; piece++) {
    int stalls = 0;
    while (off < in->cut[piece]) {
      ptrdiff_t n = send(fd, in->p + off, in->cut[piece] - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += (size_t) n;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (++stalls > E2E_MAX_STALLS) return;
        e2e_poll(mgr, fd, true); /* it may need our reads to go on reading */
      } else {
        return; /* EPIPE / ECONNRESET: the library closed */
      }
    }
    e2e_poll(mgr, fd, read);
    if (cymg_mgr_find(mgr, id) == NULL) return;
  }
  /* Let the answers finish before the end of input arrives: a server closes
   * on a half-close once its queue is empty, so later pipelined requests
   * would never be reached. Stops at the first poll where nothing happens. */
  for (int i = 0; read && i < E2E_MAX_POLLS && cymg_mgr_find(mgr, id); i++)
    if (!e2e_poll(mgr, fd, true)) break;
}

/* Ends the peer's side and waits, boundedly, for the library to close the
 * connection. A connection that is still open after the peer is gone
 * altogether is a hang: with E2E_HANG_ABORT=1 in the environment it aborts
 * (for hunting them), otherwise it is counted, closed by hand and reported at
 * exit, so that the fuzzer keeps going. */
static unsigned long e2e_hangs;
static inline void e2e_report(void) {
  if (e2e_hangs) fprintf(stderr, "e2e: %lu inputs left a connection open after the peer left\n", e2e_hangs);
}

static inline void e2e_finish(cymg_mgr *mgr, uint64_t id, int fd, const e2e_in *in) {
  if (in->ctl & E2E_CLOSE_HARD) {
    close(fd);
    fd = -1;
  } else {
    CHECK(shutdown(fd, SHUT_WR) == 0 || errno == ENOTCONN);
  }
  for (int i = 0; i < E2E_MAX_POLLS && cymg_mgr_find(mgr, id); i++) e2e_poll(mgr, fd, true);
  if (fd >= 0) {
    close(fd);
    for (int i = 0; i < E2E_MAX_POLLS && cymg_mgr_find(mgr, id); i++) e2e_poll(mgr, -1, false);
  }
  cymg_conn *c = cymg_mgr_find(mgr, id);
  if (c != NULL) {
    static int abort_on_hang = -1;
    if (abort_on_hang < 0) {
      const char *e = getenv("E2E_HANG_ABORT");
      abort_on_hang = e && *e == '1';
      atexit(e2e_report);
    }
    fprintf(stderr, "e2e: connection %llu still open after the peer left\n",
            (unsigned long long) id);
    CHECK(!abort_on_hang);
    e2e_hangs++;
    cymg_close(c);
    for (int i = 0; i < 4 && cymg_mgr_find(mgr, id); i++) e2e_poll(mgr, -1, false);
    CHECK(cymg_mgr_find(mgr, id) == NULL);
  }
}

/* A manager for the whole run: made once, freed at exit (so that LeakSanitizer
 * sees a clean end too). */
static cymg_mgr *e2e_mgr_new(void) {
  cymg_mgr *mgr = NULL;
  CHECK(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO) == 0);
  return mgr;
}

/* The library's end of a socketpair, adopted as a connection of listener lsn
 * as if accepted from 127.0.0.1:40000; the harness keeps *peer. Returns the
 * connection's id. */
static inline uint64_t e2e_adopt(cymg_conn *lsn, int *peer) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  cymg_addr rem = {{127, 0, 0, 1}, 40000, false};
  cymg_conn *c = cymg__conn_adopt(lsn, sv[0], &rem);
  CHECK(c != NULL);
  *peer = sv[1];
  return cymg_conn_id(c);
}

/* ---- the client targets: the harness is the server, over loopback TCP ---- */

/* A listening socket on 127.0.0.1 for the harness's side; *port gets its port. */
static inline int e2e_tcp_listener(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  CHECK(bind(fd, (struct sockaddr *) &a, len) == 0 && listen(fd, 16) == 0);
  CHECK(getsockname(fd, (struct sockaddr *) &a, &len) == 0);
  *port = ntohs(a.sin_port);
  return fd;
}

/* Accepts the library's connection, polling the manager (which completes the
 * connect) between tries. Returns the harness's socket, or -1 when the client
 * never arrived (it failed or closed first). */
static inline int e2e_tcp_accept(cymg_mgr *mgr, int lfd, uint64_t id) {
  for (int i = 0; i < E2E_MAX_POLLS; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return fd;
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    if (cymg_mgr_find(mgr, id) == NULL) return -1;
    e2e_poll(mgr, -1, false);
  }
  return -1;
}

#endif
