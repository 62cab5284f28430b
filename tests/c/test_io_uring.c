/* What is particular to the io_uring backend, through its table directly on
 * TCP loopback pairs: level-triggered reports from one-shot polls, no stale
 * pointer from a completion of a descriptor deleted (and its number reused)
 * meanwhile, and a closed descriptor's pending poll cancelled so the peer sees
 * the close at once. Skips when the build or the kernel has no io_uring. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cymg_test.h"
#include "internal.h"

#ifdef CYMG__HAVE_URING
static const cymg__backend *be = &cymg__backend_uring;

static int listener(void) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(l >= 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(l, (struct sockaddr *) &sin, sizeof(sin)), 0);
  assert_int_equal(listen(l, 64), 0);
  return l;
}

/* Connects the socket a to listener l; returns the accepted end. Both ends
 * non-blocking. */
static int connect_to(int l, int a) {
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  assert_int_equal(getsockname(l, (struct sockaddr *) &sin, &len), 0);
  assert_int_equal(connect(a, (struct sockaddr *) &sin, sizeof(sin)), 0);
  int b = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  assert_true(b >= 0);
  assert_int_equal(fcntl(a, F_SETFL, O_NONBLOCK), 0);
  return b;
}

/* A connected TCP pair on 127.0.0.1. */
static void tcp_pair(int l, int *a, int *b) {
  *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(*a >= 0);
  *b = connect_to(l, *a);
}

static void *start(void) {
  void *st = NULL;
  int rc = be->init(&st);
  if (rc < 0) {
    print_message("io_uring refused by the kernel (%s): skipped\n", cymg_strerror(rc));
    skip();
  }
  return st;
}

/* Entries reported for ptr among n. */
static int count(const cymg__ready *r, int n, void *ptr) {
  int k = 0;
  for (int i = 0; i < n; i++) k += r[i].ptr == ptr;
  return k;
}

static void test_level_triggered(void **state) {
  (void) state;
  void *st = start();
  int l = listener(), a, b;
  tcp_pair(l, &a, &b);
  char tag;
  cymg__ready r[8];
  assert_int_equal(be->add(st, a, CYMG__IO_R, &tag), 0);
  assert_int_equal(be->wait(st, r, 8, 0), 0); /* nothing to read yet */
  assert_int_equal(send(b, "xy", 2, 0), 2);
  int n = be->wait(st, r, 8, -1);
  assert_int_equal(n, 1);
  assert_ptr_equal(r[0].ptr, &tag);
  assert_true(r[0].events & CYMG__IO_R);
  /* Not drained: reported again at every wait, blocking or not. */
  for (int i = 0; i < 3; i++) {
    n = be->wait(st, r, 8, i == 0 ? 0 : 1000);
    assert_int_equal(n, 1);
    assert_true(r[0].events & CYMG__IO_R);
  }
  char buf[4];
  assert_int_equal(recv(a, buf, sizeof(buf), 0), 2);
  assert_int_equal(be->wait(st, r, 8, 0), 0);  /* drained: silent */
  assert_int_equal(be->wait(st, r, 8, 10), 0); /* the timeout honoured */
  /* Interest changed to write: reported writable, no longer readable. */
  assert_int_equal(be->mod(st, a, CYMG__IO_W, &tag), 0);
  n = be->wait(st, r, 8, -1);
  assert_int_equal(n, 1);
  assert_int_equal(r[0].events & (CYMG__IO_R | CYMG__IO_W), CYMG__IO_W);
  assert_int_equal(be->del(st, a), 0);
  assert_int_equal(be->del(st, a), -ENOENT);
  assert_int_equal(close(a), 0);
  assert_int_equal(close(b), 0);
  assert_int_equal(close(l), 0);
  be->free(st);
}

/* Two ready descriptors, room for one report: the other's completion stays in
 * the ring. It is deleted, closed and its number reused by a new descriptor
 * with another ptr before the next wait, which must report the new ptr only
 * when it is ready and never the old one. */
static void test_no_stale_completion(void **state) {
  (void) state;
  void *st = start();
  int l = listener();
  char tag1, tag2, tag3;
  for (int round = 0; round < 50; round++) {
    int a1, b1, a2, b2;
    tcp_pair(l, &a1, &b1);
    tcp_pair(l, &a2, &b2);
    assert_int_equal(be->add(st, a1, CYMG__IO_R, &tag1), 0);
    assert_int_equal(be->add(st, a2, CYMG__IO_R, &tag2), 0);
    assert_int_equal(send(b1, "1", 1, 0), 1);
    assert_int_equal(send(b2, "2", 1, 0), 1);
    cymg__ready r[8];
    int n = be->wait(st, r, 1, -1);
    assert_int_equal(n, 1);
    assert_true(r[0].ptr == &tag1 || r[0].ptr == &tag2);
    bool first_gone = r[0].ptr == &tag2; /* the unreported one goes */
    void *gone_ptr = first_gone ? (void *) &tag1 : (void *) &tag2;
    int gone = first_gone ? a1 : a2, gone_peer = first_gone ? b1 : b2;
    int kept = first_gone ? a2 : a1, kept_peer = first_gone ? b2 : b1;
    assert_int_equal(be->del(st, gone), 0);
    assert_int_equal(close(gone), 0);
    /* The lowest free number is the one just closed. */
    int fresh = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(fresh, gone);
    int fresh_peer = connect_to(l, fresh);
    assert_int_equal(be->add(st, fresh, CYMG__IO_R, &tag3), 0);
    /* Nothing to read on the new one yet: only the kept descriptor reports. */
    n = be->wait(st, r, 8, 0);
    assert_int_equal(count(r, n, gone_ptr), 0);
    assert_int_equal(count(r, n, &tag3), 0);
    assert_int_equal(send(fresh_peer, "3", 1, 0), 1);
    do {
      n = be->wait(st, r, 8, -1);
      assert_int_equal(count(r, n, gone_ptr), 0);
    } while (count(r, n, &tag3) == 0);
    assert_int_equal(be->del(st, fresh), 0);
    assert_int_equal(be->del(st, kept), 0);
    int fds[] = {fresh, fresh_peer, kept, kept_peer, gone_peer};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) assert_int_equal(close(fds[i]), 0);
  }
  assert_int_equal(close(l), 0);
  be->free(st);
}

/* Many descriptors deleted and closed while their polls are pending: each
 * peer sees the end of stream right after the next wait, since the poll that
 * held the socket open is cancelled. */
static void test_close_with_poll_pending(void **state) {
  (void) state;
  void *st = start();
  enum { N = 300 };
  int l = listener(), a[N], b[N];
  char tags[N];
  cymg__ready r[8];
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < N; i++) {
      tcp_pair(l, &a[i], &b[i]);
      assert_int_equal(be->add(st, a[i], CYMG__IO_R, &tags[i]), 0);
    }
    assert_int_equal(be->wait(st, r, 8, 0), 0); /* N polls armed, none ready */
    for (int i = 0; i < N; i++) {
      assert_int_equal(be->del(st, a[i]), 0);
      assert_int_equal(close(a[i]), 0);
    }
    assert_int_equal(be->wait(st, r, 8, 0), 0); /* the cancels leave, nothing reported */
    for (int i = 0; i < N; i++) {
      char c;
      assert_int_equal(recv(b[i], &c, 1, MSG_DONTWAIT), 0); /* FIN came: the socket is gone */
      assert_int_equal(close(b[i]), 0);
    }
  }
  assert_int_equal(close(l), 0);
  be->free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_level_triggered),
      cmocka_unit_test(test_no_stale_completion),
      cmocka_unit_test(test_close_with_poll_pending),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
int main(void) {
  printf("io_uring backend not built: nothing to test\n");
  return 0;
}
#endif
