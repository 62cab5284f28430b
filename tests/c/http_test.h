/* Helpers for HTTP integration tests: a raw-socket peer driven alongside the
 * manager's loop, and response counting with the library's own codec. */
#ifndef CYMG_HTTP_TEST_H
#define CYMG_HTTP_TEST_H

#include <arpa/inet.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cymg_test.h"

static inline int raw_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(port)};
  assert_int_equal(connect(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* Sends all of data, polling the manager while the socket is full. */
static inline void raw_send(cymg_mgr *mgr, int fd, const void *data, size_t len) {
  size_t off = 0;
  uint64_t start = cymg_mgr_now(mgr);
  while (off < len) {
    ssize_t n = send(fd, (const char *) data + off, len - off, MSG_NOSIGNAL);
    if (n > 0) off += (size_t) n;
    else cymg_mgr_poll(mgr, 1);
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("raw_send stuck");
  }
}

/* Number of complete responses at the front of buf (the codec frames them). */
static inline int count_responses(const char *buf, size_t len, bool *all_framed) {
  int n = 0;
  size_t off = 0;
  *all_framed = true;
  while (off < len) {
    cymg_http_header hdrs[64];
    cymg_http_msg m;
    int rc = cymg_http_parse_response(buf + off, len - off, &m, hdrs, 64, NULL);
    if (rc <= 0) break;
    int kind = cymg_http_body_kind(&m, true, cymg_str_n("GET", 3));
    size_t body = 0;
    if (kind == CYMG_HTTP_BODY_LENGTH) {
      body = (size_t) m.content_length;
      if (off + (size_t) rc + body > len) break;
    } else if (kind == CYMG_HTTP_BODY_CHUNKED) {
      cymg_http_chunked ck;
      cymg_http_chunked_init(&ck, 0);
      size_t dl, rest = len - off - (size_t) rc;
      char *copy = malloc(rest + 1);
      memcpy(copy, buf + off + (size_t) rc, rest);
      int used = cymg_http_chunked_decode(&ck, copy, rest, &dl);
      free(copy);
      if (used < 0 || !cymg_http_chunked_done(&ck)) break;
      body = (size_t) used;
    } else if (kind == CYMG_HTTP_BODY_CLOSE) {
      *all_framed = false;
      return n + 1;
    }
    if (m.status >= 200) n++;
    off += (size_t) rc + body;
  }
  return n;
}

/* Reads from fd while polling the manager, until `responses` complete responses
 * are in, or the peer closed (*closed), or the wait bound. Returns the length. */
static inline size_t raw_read(cymg_mgr *mgr, int fd, char *buf, size_t cap, int responses,
                              bool *closed) {
  size_t len = 0;
  bool framed;
  *closed = false;
  uint64_t start = cymg_mgr_now(mgr);
  for (;;) {
    if (responses > 0 && count_responses(buf, len, &framed) >= responses) break;
    cymg_mgr_poll(mgr, 2);
    ssize_t n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
    if (n > 0) {
      len += (size_t) n;
      buf[len] = '\0';
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      *closed = true;
      break;
    }
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("raw_read: timed out");
  }
  buf[len] = '\0';
  return len;
}

/* Reads until needle appears in what was read (or fails the test). */
static inline size_t raw_read_str(cymg_mgr *mgr, int fd, char *buf, size_t cap,
                                  const char *needle) {
  size_t len = 0;
  uint64_t start = cymg_mgr_now(mgr);
  buf[0] = '\0';
  while (strstr(buf, needle) == NULL) {
    cymg_mgr_poll(mgr, 2);
    ssize_t n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
    if (n > 0) {
      len += (size_t) n;
      buf[len] = '\0';
    } else if (n == 0 || errno != EAGAIN) {
      fail_msg("closed before '%s' arrived", needle);
    }
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("no '%s'", needle);
  }
  return len;
}

/* True when the server has closed fd (polling until it does or the bound). */
static inline bool raw_wait_closed(cymg_mgr *mgr, int fd) {
  char buf[65536];
  bool closed;
  raw_read(mgr, fd, buf, sizeof(buf), 0, &closed);
  return closed;
}

/* Runs curl -s with args, polling the manager meanwhile; out gets its stdout.
 * Returns curl's exit status, or -1 when curl is not installed. */
static inline int run_curl(cymg_mgr *mgr, char *out, size_t cap, const char *const *args) {
  if (access("/usr/bin/curl", X_OK) != 0) return -1;
  int p[2];
  assert_int_equal(pipe(p), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  char *argv[32];
  int n = 0;
  argv[n++] = (char *)"curl";
  argv[n++] = (char *)"-s";
  for (; *args; args++) argv[n++] = (char *)*args;
  argv[n] = NULL;
  pid_t pid;
  extern char **environ;
  assert_int_equal(posix_spawn(&pid, "/usr/bin/curl", &fa, NULL, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  size_t len = 0;
  uint64_t start = cymg_mgr_now(mgr);
  for (;;) {
    cymg_mgr_poll(mgr, 2);
    struct pollfd pfd = {p[0], POLLIN, 0};
    if (poll(&pfd, 1, 0) > 0) {
      ssize_t k = read(p[0], out + len, cap - len - 1);
      if (k <= 0) break;
      len += (size_t)k;
    }
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("curl timed out");
  }
  out[len] = '\0';
  close(p[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#endif
