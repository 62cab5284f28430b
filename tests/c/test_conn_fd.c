/* Closing a connection whose descriptor may outlive it. epoll forgets a
 * registration only when the last descriptor of its open file is closed, so
 * the loop removes every descriptor before closing it: the program may have
 * dup'ed one it was handed, and a child of fork() (or of vfork/posix_spawn,
 * before its exec) holds a copy of each. Otherwise the kernel keeps reporting
 * the file under the freed connection's pointer. Each test looks at the
 * backend's own report, right after the peer made the file readable.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include <poll.h>
#include <sys/wait.h>

#include "http_test.h"
#include "internal.h"

static cymg_conn *accepted;

static void srv_fn(cymg_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CYMG_EV_ACCEPT) accepted = c;
}

typedef struct pair {
  cymg_mgr *mgr;
  cymg_conn *lsn;
  int peer; /* the client's socket, outside the manager */
} pair;

static void open_pair(pair *p) {
  p->mgr = new_mgr();
  accepted = NULL;
  assert_int_equal(cymg_listen(p->mgr, "tcp://127.0.0.1:0", srv_fn, NULL, &p->lsn), 0);
  p->peer = raw_connect(cymg_conn_local(p->lsn)->port);
  POLL_UNTIL(p->mgr, accepted != NULL);
  POLL_UNTIL(p->mgr, (accepted->flags & CYMG__F_REGISTERED) != 0);
}

/* Closes the accepted connection and lets the loop free it. */
static uintptr_t close_accepted(pair *p) {
  uintptr_t gone = (uintptr_t)accepted;
  cymg_close(accepted);
  accepted = NULL;
  POLL_UNTIL(p->mgr, cymg_mgr_count(p->mgr) == 1);
  return gone;
}

/* The backend, asked directly, reports nothing under the freed pointer. */
static void assert_no_report_for(pair *p, uintptr_t gone) {
  cymg__ready ready[16];
  int n = p->mgr->be->wait(p->mgr->be_state, ready, 16, 0);
  assert_true(n >= 0);
  for (int i = 0; i < n; i++) {
    if ((uintptr_t)ready[i].ptr == gone) fail_msg("a report for a freed connection");
  }
}

static void close_pair(pair *p) {
  close(p->peer);
  close_all_and_free(p->mgr);
}

/* The program took the descriptor and dup'ed it: the copy works after the
 * connection is gone, and the loop hears nothing of it. */
static void test_dup_after_handout(void **state) {
  (void)state;
  pair p;
  open_pair(&p);
  int fd = cymg_conn_fd(accepted);
  assert_true(fd >= 0);
  int copy = dup(fd);
  assert_true(copy >= 0);
  uintptr_t gone = close_accepted(&p);
  assert_int_equal(send(p.peer, "x", 1, 0), 1);
  struct pollfd pf = {.fd = copy, .events = POLLIN};
  assert_int_equal(poll(&pf, 1, CYMG_TEST_WAIT_MS), 1); /* readable now */
  assert_no_report_for(&p, gone);
  char c = 0;
  assert_int_equal(recv(copy, &c, 1, 0), 1);
  assert_int_equal(c, 'x');
  assert_int_equal(send(copy, "y", 1, 0), 1);
  pf = (struct pollfd){.fd = p.peer, .events = POLLIN};
  assert_int_equal(poll(&pf, 1, CYMG_TEST_WAIT_MS), 1);
  assert_int_equal(recv(p.peer, &c, 1, 0), 1);
  assert_int_equal(c, 'y');
  assert_int_equal(close(copy), 0);
  /* The loop goes on as usual. */
  assert_true(cymg_mgr_poll(p.mgr, 0) >= 0);
  close_pair(&p);
}

/* A child made by fork() holds the descriptor (never handed out) while the
 * parent closes the connection. */
static void test_fork_keeps_removal(void **state) {
  (void)state;
  pair p;
  open_pair(&p);
  int fd = accepted->fd; /* the library's own descriptor, never handed out */
  int go[2], ready[2];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(ready), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Holds the socket until told; says when the peer's byte is there. */
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    char b;
    int ok = poll(&pf, 1, CYMG_TEST_WAIT_MS) == 1 && write(ready[1], "r", 1) == 1 &&
             read(go[0], &b, 1) >= 0;
    _exit(ok ? 0 : 1);
  }
  close(go[0]);
  close(ready[1]);
  uintptr_t gone = close_accepted(&p);
  assert_int_equal(send(p.peer, "x", 1, 0), 1);
  char b;
  assert_int_equal(read(ready[0], &b, 1), 1); /* the child saw it readable */
  assert_no_report_for(&p, gone);
  assert_int_equal(write(go[1], "g", 1), 1);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(go[1]);
  close(ready[0]);
  close_pair(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dup_after_handout),
      cmocka_unit_test(test_fork_keeps_removal),
  };
  /* CYMG_TEST_BACKENDS */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
