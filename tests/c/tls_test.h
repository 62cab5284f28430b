/* Helpers for the TLS tests: the throwaway certificates (tests/data/mkcerts.sh,
 * made once into the test's working folder), echo and capture handlers, and
 * outside peers (openssl, curl) run alongside the manager's loop. */
#ifndef CYMG_TLS_TEST_H
#define CYMG_TLS_TEST_H

#include <signal.h>
#include <sys/stat.h>

#include "http_test.h"

static char tls_dir[1024];

/* Makes the material (once per folder) and remembers where it is. */
static inline int tls_certs_setup(void **state) {
  (void) state;
  char cwd[512];
  if (getcwd(cwd, sizeof(cwd)) == NULL) return -1;
  snprintf(tls_dir, sizeof(tls_dir), "%s/tls-certs", cwd);
  char cmd[2048];
  snprintf(cmd, sizeof(cmd), "sh %s/mkcerts.sh %s", CYMG_TEST_DATA_DIR, tls_dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* The path of one file of the material (static storage, several in turn). */
static inline const char *cert(const char *name) {
  static char bufs[8][1200];
  static int i;
  char *b = bufs[i++ % 8];
  snprintf(b, 1200, "%s/%s", tls_dir, name);
  return b;
}

/* What a TLS test connection saw. */
typedef struct {
  char got[1 << 16];
  size_t len;
  bool hs, closed, opened;
  int errors;
  char err[512];
  char version[32], alpn[32], subject[256];
  bool resumed;
} peer;

static inline void peer_note_hs(cymg_conn *c, peer *p) {
  p->hs = true;
  cymg_str v = cymg_tls_version(c), a = cymg_tls_alpn(c), s = cymg_tls_peer_subject(c);
  snprintf(p->version, sizeof(p->version), "%.*s", (int) v.len, v.buf);
  snprintf(p->alpn, sizeof(p->alpn), "%.*s", (int) a.len, a.buf);
  snprintf(p->subject, sizeof(p->subject), "%.*s", (int) s.len, s.buf);
  p->resumed = cymg_tls_resumed(c);
}

static inline void peer_note_err(peer *p, const char *msg) {
  p->errors++;
  snprintf(p->err, sizeof(p->err), "%s", msg);
}

/* No SSL or SSL_CTX outlives its manager. */
static inline void assert_tls_clean(void) {
  size_t ssl = 99, ctx = 99;
  cymg_tls_counts(&ssl, &ctx);
  assert_int_equal(ssl, 0);
  assert_int_equal(ctx, 0);
}

/* A port nobody listens on just now (for outside servers). */
static inline uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
  socklen_t sl = sizeof(sin);
  assert_int_equal(getsockname(fd, (struct sockaddr *) &sin, &sl), 0);
  close(fd);
  return ntohs(sin.sin_port);
}

/* A child process with its stdin and stdout (stderr joined) on pipes. */
typedef struct {
  pid_t pid;
  int in, out;
  char buf[1 << 16];
  size_t len;
} child;

static inline void child_start(child *ch, const char *path, char *const argv[]) {
  int pi[2], po[2];
  assert_int_equal(pipe(pi), 0);
  assert_int_equal(pipe(po), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pi[0], 0);
  posix_spawn_file_actions_adddup2(&fa, po[1], 1);
  posix_spawn_file_actions_adddup2(&fa, po[1], 2);
  posix_spawn_file_actions_addclose(&fa, pi[1]);
  posix_spawn_file_actions_addclose(&fa, po[0]);
  extern char **environ;
  assert_int_equal(posix_spawn(&ch->pid, path, &fa, NULL, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(pi[0]);
  close(po[1]);
  ch->in = pi[1];
  ch->out = po[0];
  ch->len = 0;
  fcntl(ch->out, F_SETFL, fcntl(ch->out, F_GETFL) | O_NONBLOCK);
}

/* Collects output while polling; true once it has needle (or the child ended
 * and the output ran out, then false). */
static inline bool child_wait_for(cymg_mgr *mgr, child *ch, const char *needle) {
  uint64_t start = cymg_mgr_now(mgr);
  for (;;) {
    ch->buf[ch->len] = '\0';
    if (needle && strstr(ch->buf, needle)) return true;
    cymg_mgr_poll(mgr, 2);
    ssize_t k = read(ch->out, ch->buf + ch->len, sizeof(ch->buf) - ch->len - 1);
    if (k > 0) ch->len += (size_t) k;
    if (k == 0) {
      ch->buf[ch->len] = '\0';
      return needle ? strstr(ch->buf, needle) != NULL : true;
    }
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("child timed out: %s", ch->buf);
  }
}

/* Ends the child (closing its stdin first) and returns its exit status. */
static inline int child_end(cymg_mgr *mgr, child *ch, bool kill_it) {
  if (ch->in >= 0) close(ch->in);
  ch->in = -1;
  if (kill_it) kill(ch->pid, SIGTERM);
  (void) child_wait_for(mgr, ch, NULL);
  close(ch->out);
  int st;
  assert_int_equal(waitpid(ch->pid, &st, 0), ch->pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Waits until something accepts TCP connections on port (an outside server
 * starting up). */
static inline void wait_port(cymg_mgr *mgr, uint16_t port) {
  uint64_t start = cymg_mgr_now(mgr);
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                              .sin_port = htons(port)};
    int rc = connect(fd, (struct sockaddr *) &sin, sizeof(sin));
    close(fd);
    if (rc == 0) return;
    cymg_mgr_poll(mgr, 20);
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("port %u never opened", port);
  }
}

/* Waits until nothing listens on port any more. A killed server's listening
 * socket can outlive the process for a moment: with io_uring, a pending poll
 * holds the socket and the kernel cancels it from a worker after the exit, so
 * a connect made meanwhile lands in a backlog that is reset right after. */
static inline void wait_port_closed(cymg_mgr *mgr, uint16_t port) {
  uint64_t start = cymg_mgr_now(mgr);
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                              .sin_port = htons(port)};
    int rc = connect(fd, (struct sockaddr *) &sin, sizeof(sin));
    int err = errno;
    close(fd);
    if (rc < 0 && err == ECONNREFUSED) return;
    cymg_mgr_poll(mgr, 5);
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("port %u still open", port);
  }
}

#endif
