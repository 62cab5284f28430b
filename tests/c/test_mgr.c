/* The manager: backends, names, errors, iteration, handlers, POLL events,
 * running out of descriptors, logging. CYMG_TEST_BACKENDS: once per backend. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cymg_test.h"

static void test_backends(void **state) {
  (void) state;
  cymg_mgr *mgr = (cymg_mgr *) 1;
  assert_int_equal(cymg_mgr_new(&mgr, 99), CYMG_EINVAL);
  assert_null(mgr);
  assert_int_equal(cymg_mgr_new(NULL, 0), CYMG_EINVAL);
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_POLL), 0);
  assert_string_equal(cymg_mgr_backend(mgr), "poll");
  cymg_mgr_free(mgr);
#if defined(__linux__)
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_EPOLL), 0);
  assert_string_equal(cymg_mgr_backend(mgr), "epoll");
  cymg_mgr_free(mgr);
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_KQUEUE), CYMG_ENOTSUP);
#endif
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_SELECT), 0);
  assert_string_equal(cymg_mgr_backend(mgr), "select");
  cymg_mgr_free(mgr);
  /* AUTO follows CYMG_BACKEND, which ctest sets per run. */
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  const char *env = getenv("CYMG_BACKEND");
  char *saved = env ? strdup(env) : NULL;
  if (env) assert_string_equal(cymg_mgr_backend(mgr), env);
  cymg_mgr_free(mgr);
  /* A value naming no backend is an error, not a silent default; an empty one
   * is the same as none. */
  setenv("CYMG_BACKEND", "epol", 1);
  mgr = (cymg_mgr *) 1;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), CYMG_EINVAL);
  assert_null(mgr);
  setenv("CYMG_BACKEND", "select", 1);
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  assert_string_equal(cymg_mgr_backend(mgr), "select");
  cymg_mgr_free(mgr);
  setenv("CYMG_BACKEND", "", 1);
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  assert_non_null(cymg_mgr_backend(mgr));
  cymg_mgr_free(mgr);
  if (saved) setenv("CYMG_BACKEND", saved, 1);
  else unsetenv("CYMG_BACKEND");
  free(saved);
  cymg_mgr_free(NULL);
  /* A NULL manager is refused, never dereferenced. */
  assert_int_equal(cymg_mgr_poll(NULL, 0), CYMG_EINVAL);
  assert_int_equal(cymg_mgr_wait(NULL, 0), CYMG_EINVAL);
  cymg_mgr_dispatch(NULL);
  assert_null(cymg_mgr_find(NULL, 1));
  assert_int_equal(cymg_timer_cancel(NULL, 1), CYMG_EINVAL);
  assert_false(cymg_timer_active(NULL, 1));
  assert_int_equal(cymg_timer_count(NULL), 0);
  assert_int_equal(cymg_wakeup_init(NULL), CYMG_EINVAL);
  assert_int_equal(cymg_wakeup(NULL, 1, "x", 1), CYMG_EINVAL);
  assert_int_equal(cymg_listen(NULL, "tcp://127.0.0.1:0", NULL, NULL, NULL), CYMG_EINVAL);
  assert_int_equal(cymg_connect(NULL, "tcp://127.0.0.1:1", NULL, NULL, NULL), CYMG_EINVAL);
  assert_int_equal(cymg_send(NULL, "x", 1), CYMG_EINVAL);
  cymg_close(NULL);
  cymg_drain(NULL);
}

static void test_names_and_errors(void **state) {
  (void) state;
  assert_string_equal(cymg_event_name(CYMG_EV_ERROR), "CYMG_EV_ERROR");
  assert_string_equal(cymg_event_name(CYMG_EV_WAKEUP), "CYMG_EV_WAKEUP");
  assert_string_equal(cymg_event_name(CYMG_EV_USER), "CYMG_EV_USER");
  assert_null(cymg_event_name(77));
  assert_null(cymg_event_name(-1));
  assert_int_equal(CYMG_EV_WAKEUP, 19); /* the Python numbering */
  assert_int_equal(CYMG_EV_TLS_HS, 6);
  int codes[] = {CYMG_EBADURL, CYMG_ESCHEME, CYMG_ERESOLVE, CYMG_ELIMIT, CYMG_ECLOSED,
                 CYMG_EPARSE,  CYMG_ENOTFOUND, CYMG_ETYPE, CYMG_ESTATE, CYMG_EPROTO,
                 CYMG_ETLS,    CYMG_ENOCONN};
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    const char *s = cymg_strerror(codes[i]);
    assert_true(strlen(s) > 3);
    assert_string_not_equal(s, "unknown error");
    for (size_t j = 0; j < i; j++) assert_string_not_equal(s, cymg_strerror(codes[j]));
  }
  assert_string_equal(cymg_strerror(0), "success");
  assert_string_equal(cymg_strerror(-99999), "unknown error");
  assert_string_equal(cymg_strerror(CYMG_ENOMEM), strerror(ENOMEM));
  assert_string_equal(cymg_version(), CYMG_VERSION_STRING);
}

static int events_a, events_b, polls;
static void fn_a(cymg_conn *c, int ev, void *ev_data) {
  (void) c, (void) ev_data;
  if (ev == CYMG_EV_POLL) polls++;
  else events_a++;
}
static void fn_b(cymg_conn *c, int ev, void *ev_data) {
  (void) c, (void) ev_data;
  if (ev != CYMG_EV_POLL) events_b++;
}

static void test_iteration_and_handlers(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  int tag = 7;
  cymg_mgr_set_userdata(mgr, &tag);
  assert_ptr_equal(cymg_mgr_userdata(mgr), &tag);
  cymg_conn *a, *b;
  events_a = events_b = polls = 0;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", fn_a, &tag, &a), 0);
  assert_int_equal(events_a, 1); /* OPEN, inside listen */
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", fn_a, NULL, &b), 0);
  assert_true(cymg_conn_id(b) > cymg_conn_id(a));
  assert_ptr_equal(cymg_mgr_first(mgr), b); /* newest first */
  assert_ptr_equal(cymg_conn_next(b), a);
  assert_null(cymg_conn_next(a));
  assert_ptr_equal(cymg_mgr_find(mgr, cymg_conn_id(a)), a);
  assert_null(cymg_mgr_find(mgr, 12345));
  assert_int_equal(cymg_mgr_count(mgr), 2);
  assert_ptr_equal(cymg_conn_userdata(a), &tag);
  assert_ptr_equal(cymg_conn_mgr(a), mgr);
  assert_true(cymg_conn_fd(a) >= 0);
  /* POLL only for those who ask. */
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(polls, 0);
  cymg_conn_set_poll(a, true);
  cymg_mgr_poll(mgr, 0);
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(polls, 2);
  cymg_conn_set_poll(a, false);
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(polls, 2);
  /* Replacing the handler: the new one gets CLOSE. */
  cymg_conn_set_handler(a, fn_b, NULL);
  assert_ptr_equal(cymg_conn_handler(a), fn_b);
  cymg_conn_set_userdata(b, &tag);
  assert_ptr_equal(cymg_conn_userdata(b), &tag);
  int before = events_a;
  cymg_close(a);
  cymg_close(b);
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(events_b, 1);
  assert_int_equal(events_a, before + 1);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_poll_events_default(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  cymg_mgr_set_poll_events(mgr, true);
  polls = 0;
  cymg_conn *a;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", fn_a, NULL, &a), 0);
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(polls, 1);
  cymg_close(a);
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(polls, 1); /* not to a closing connection */
  cymg_mgr_free(mgr);
}

/* Free with live connections: each gets CLOSE. */
static int closes;
static void count_close(cymg_conn *c, int ev, void *ev_data) {
  (void) c, (void) ev_data;
  if (ev == CYMG_EV_CLOSE) closes++;
}
static void test_free_closes_all(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  closes = 0;
  cymg_conn *lsn;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", count_close, NULL, &lsn), 0);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", cymg_conn_local(lsn)->port);
  for (int i = 0; i < 10; i++) assert_int_equal(cymg_connect(mgr, url, count_close, NULL, NULL), 0);
  for (int i = 0; i < 20; i++) cymg_mgr_poll(mgr, 1);
  size_t n = cymg_mgr_count(mgr);
  assert_true(n >= 11);
  cymg_mgr_free(mgr);
  assert_int_equal(closes, (int) n);
}

/* Out of descriptors: the listener sheds connections instead of spinning, and
 * serves again once descriptors are free. */
static int accepted;
static void accept_count(cymg_conn *c, int ev, void *ev_data) {
  (void) c, (void) ev_data;
  if (ev == CYMG_EV_ACCEPT) accepted++;
}
static void test_emfile(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  cymg_conn *lsn;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", accept_count, NULL, &lsn), 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(cymg_conn_local(lsn)->port)};
  int clients[8];
  for (int i = 0; i < 8; i++) {
    clients[i] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(clients[i], (struct sockaddr *) &sin, sizeof(sin)), 0);
  }
  /* Use up every descriptor but a few. */
  struct rlimit old, rl;
  getrlimit(RLIMIT_NOFILE, &old);
  int hog[4096], nhog = 0;
  rl = old;
  rl.rlim_cur = 256;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
  for (;;) {
    int fd = dup(0);
    if (fd < 0) break;
    hog[nhog++] = fd;
  }
  accepted = 0;
  int log_level = cymg_log_get();
  cymg_log_set(CYMG_LL_NONE);
  int polls_done = 0;
  for (; polls_done < 20; polls_done++) cymg_mgr_poll(mgr, 10);
  cymg_log_set(log_level);
  assert_int_equal(accepted, 0);
  /* Shed: each client sees its connection closed rather than hanging. */
  for (int i = 0; i < 8; i++) {
    char b;
    struct timeval tv = {5, 0};
    setsockopt(clients[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_true(recv(clients[i], &b, 1, 0) <= 0);
    close(clients[i]);
  }
  while (nhog > 0) close(hog[--nhog]);
  setrlimit(RLIMIT_NOFILE, &old);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(connect(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
  POLL_UNTIL(mgr, accepted == 1);
  close(fd);
  cymg_mgr_free(mgr);
}

static char sunk[256];
static int sunk_level;
static void sink(int level, const char *line, size_t len, void *arg) {
  (void) arg;
  sunk_level = level;
  snprintf(sunk, sizeof(sunk), "%.*s", (int) len, line);
}
static void test_logging(void **state) {
  (void) state;
  int old = cymg_log_get();
  cymg_log_set_sink(sink, NULL);
  cymg_log_set(CYMG_LL_INFO);
  assert_int_equal(cymg_log_get(), CYMG_LL_INFO);
  sunk[0] = '\0';
  cymg_log(CYMG_LL_DEBUG, "hidden %d", 1);
  assert_string_equal(sunk, "");
  cymg_log(CYMG_LL_INFO, "shown %d", 2);
  assert_non_null(strstr(sunk, "shown 2"));
  assert_int_equal(sunk_level, CYMG_LL_INFO);
  cymg_log_set(99);
  assert_int_equal(cymg_log_get(), CYMG_LL_VERBOSE);
  cymg_log_set(-5);
  assert_int_equal(cymg_log_get(), CYMG_LL_NONE);
  cymg_log(CYMG_LL_ERROR, "not even errors");
  assert_null(strstr(sunk, "not even"));
  cymg_log_set_sink(NULL, NULL);
  cymg_log_set(old);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backends),         cmocka_unit_test(test_names_and_errors),
      cmocka_unit_test(test_iteration_and_handlers), cmocka_unit_test(test_poll_events_default),
      cmocka_unit_test(test_free_closes_all),  cmocka_unit_test(test_emfile),
      cmocka_unit_test(test_logging),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
