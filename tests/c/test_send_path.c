/* The send path: cymg_send only queues; the prepare step (start of
 * cymg_mgr_wait) makes one write per connection; writability is asked only
 * after a short write; calls from other threads while the poll thread blocks,
 * serialised by a lock as a binding's interpreter lock would.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cymg_test.h"
#include "internal.h"

/* ---- a transport that counts the writes made through it ---- */

static int writes;
static ptrdiff_t counting_send(cymg_conn *c, const void *buf, size_t len) {
  writes++;
  return cymg__transport_plain.send(c, buf, len);
}
static ptrdiff_t counting_recv(cymg_conn *c, void *buf, size_t len) {
  return cymg__transport_plain.recv(c, buf, len);
}
static void counting_close(cymg_conn *c) { cymg__transport_plain.close(c); }
static const cymg__transport counting = {
    "counting", counting_recv, counting_send, counting_close, NULL, NULL, NULL, NULL, NULL, NULL};

typedef struct {
  cymg_buf got;
  size_t written_events, written_bytes;
  bool connected;
} rec;

static void rec_fn(cymg_conn *c, int ev, void *ev_data) {
  rec *r = cymg_conn_userdata(c);
  if (r == NULL) return;
  if (ev == CYMG_EV_CONNECT) r->connected = true;
  if (ev == CYMG_EV_WRITE) {
    r->written_events++;
    r->written_bytes += *(const size_t *) ev_data;
  }
  if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    assert_int_equal(cymg_buf_append(&r->got, d.buf, d.len), 0);
    cymg_conn_consume(c, d.len);
  }
}

static rec server_rec;
static void server_fn(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_ACCEPT) cymg_conn_set_userdata(c, &server_rec);
  rec_fn(c, ev, ev_data);
}

static void test_sends_queue_until_the_next_poll(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  memset(&server_rec, 0, sizeof(server_rec));
  cymg_conn *lsn, *c;
  char url[96];
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", server_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  rec cr = {0};
  assert_int_equal(cymg_connect(mgr, url, rec_fn, &cr, &c), 0);
  POLL_UNTIL(mgr, cr.connected);
  cymg_mgr_poll(mgr, 0); /* settles the interest the connect had */
  c->tp = &counting;
  writes = 0;
  /* Outside any event: queued only, visible in the send buffer. */
  for (int i = 0; i < 100; i++) assert_int_equal(cymg_send(c, "0123456789", 10), 0);
  assert_int_equal(writes, 0);
  assert_int_equal(cymg_conn_send_len(c), 1000);
  assert_memory_equal(cymg_conn_send_data(c).buf, "0123456789", 10);
  /* No writability asked for output that was never tried. */
  assert_false(c->interest & CYMG__IO_W);
  /* The prepare step writes it all in one system call, asking nothing more of
   * the backend; WRITE comes at the next dispatch. */
  cymg_mgr_prepare(mgr, 0);
  assert_int_equal(writes, 1);
  assert_int_equal(cymg_conn_send_len(c), 0);
  assert_false(c->interest & CYMG__IO_W);
  assert_int_equal(cr.written_events, 0);
  cymg_mgr_block(mgr, 0);
  cymg_mgr_dispatch(mgr);
  assert_int_equal(cr.written_events, 1);
  assert_int_equal(cr.written_bytes, 1000);
  POLL_UNTIL(mgr, server_rec.got.len == 1000);
  assert_int_equal(writes, 1);
  cymg_buf_free(&server_rec.got);
  cymg_buf_free(&cr.got);
  close_all_and_free(mgr);
}

/* A write that comes up short is the one case that asks for writability; the
 * rest then goes out as the socket drains. */
static void test_write_interest_only_after_a_short_write(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  memset(&server_rec, 0, sizeof(server_rec));
  cymg_conn *lsn, *c;
  char url[96];
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", server_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  rec cr = {0};
  assert_int_equal(cymg_connect(mgr, url, rec_fn, &cr, &c), 0);
  POLL_UNTIL(mgr, cr.connected);
  int small = 4096;
  assert_int_equal(setsockopt(cymg_conn_fd(c), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  size_t total = 8u << 20;
  char *big = malloc(total);
  assert_non_null(big);
  for (size_t i = 0; i < total; i++) big[i] = (char) (i * 7 + 3);
  assert_int_equal(cymg_send(c, big, total), 0);
  /* Server not polled in between: the socket cannot take 8 MiB at once. */
  cymg_mgr_prepare(mgr, 0);
  assert_true(cymg_conn_send_len(c) > 0);
  assert_true(c->interest & CYMG__IO_W);
  cymg_mgr_block(mgr, 0);
  cymg_mgr_dispatch(mgr);
  POLL_UNTIL(mgr, server_rec.got.len == total);
  assert_memory_equal(server_rec.got.buf, big, total);
  cymg_mgr_poll(mgr, 0);
  assert_false(c->interest & CYMG__IO_W);
  free(big);
  cymg_buf_free(&server_rec.got);
  cymg_buf_free(&cr.got);
  close_all_and_free(mgr);
}

/* Replies to everything one read brought leave in one write after the event. */
static void pipeline_fn(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_ACCEPT) c->tp = &counting;
  if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    for (size_t i = 0; i < d.len; i++) assert_int_equal(cymg_send(c, &d.buf[i], 1), 0);
    cymg_conn_consume(c, d.len);
    assert_int_equal(writes, 0); /* not yet: after the event */
  }
}

static void test_one_write_after_a_read_event(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn, *c;
  char url[96];
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", pipeline_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  rec cr = {0};
  assert_int_equal(cymg_connect(mgr, url, rec_fn, &cr, &c), 0);
  POLL_UNTIL(mgr, cr.connected && cymg_mgr_count(mgr) == 3);
  writes = 0;
  assert_int_equal(cymg_send(c, "abcdefgh", 8), 0);
  POLL_UNTIL(mgr, cr.got.len == 8);
  assert_memory_equal(cr.got.buf, "abcdefgh", 8);
  assert_int_equal(writes, 1); /* eight sends by the server, one write */
  cymg_buf_free(&cr.got);
  close_all_and_free(mgr);
}

/* UDP: one datagram per send, sent at once. */
static void test_udp_sends_at_once(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn, *c;
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", NULL, NULL, &lsn), 0);
  char a[64], url[96];
  assert_true(cymg_addr_str(cymg_conn_local(lsn), true, a, sizeof(a)) > 0);
  snprintf(url, sizeof(url), "udp://%s", a);
  assert_int_equal(cymg_connect(mgr, url, NULL, NULL, &c), 0);
  assert_int_equal(cymg_send(c, "one", 3), 0);
  assert_int_equal(cymg_send(c, "two", 3), 0);
  char buf[16];
  ssize_t n = recv(cymg_conn_fd(lsn), buf, sizeof(buf), 0); /* before any poll */
  assert_int_equal(n, 3);
  assert_memory_equal(buf, "one", 3);
  n = recv(cymg_conn_fd(lsn), buf, sizeof(buf), 0);
  assert_int_equal(n, 3);
  assert_memory_equal(buf, "two", 3);
  close_all_and_free(mgr);
}

/* ---- other threads, serialised with the poll thread by a lock held by the
 * latter everywhere but in cymg_mgr_block ---- */

#define NTHREADS 8
#define NMSGS 300

static pthread_mutex_t gil = PTHREAD_MUTEX_INITIALIZER;
static cymg_mgr *tmgr;
static char turl[96];
static volatile int workers_done;

/* Server connections collect what they get; each stream starts with its
 * sender's tag. */
typedef struct {
  cymg_buf got;
} srv_rec;
static srv_rec srv_recs[4 * NTHREADS];
static int nsrv;

static void collect_fn(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_ACCEPT) {
    assert_true(nsrv < 4 * NTHREADS);
    cymg_conn_set_userdata(c, &srv_recs[nsrv++]);
  } else if (ev == CYMG_EV_READ) {
    srv_rec *r = cymg_conn_userdata(c);
    cymg_str d = cymg_conn_recv_data(c);
    assert_int_equal(cymg_buf_append(&r->got, d.buf, d.len), 0);
    cymg_conn_consume(c, d.len);
  }
}

static void *worker(void *arg) {
  int k = (int) (intptr_t) arg;
  cymg_conn *c;
  pthread_mutex_lock(&gil);
  assert_int_equal(cymg_connect(tmgr, turl, NULL, NULL, &c), 0);
  uint64_t id = cymg_conn_id(c);
  pthread_mutex_unlock(&gil);
  for (int i = 0; i < NMSGS; i++) {
    char msg[32];
    int n = snprintf(msg, sizeof(msg), "%d:%d;", k, i);
    pthread_mutex_lock(&gil);
    cymg_conn *cc = cymg_mgr_find(tmgr, id);
    assert_non_null(cc);
    assert_int_equal(cymg_send(cc, msg, (size_t) n), 0);
    if (i % 100 == 50) { /* and more connections, each sending one message */
      cymg_conn *extra;
      char tag[32];
      int tn = snprintf(tag, sizeof(tag), "%d:x%d;", k, i);
      assert_int_equal(cymg_connect(tmgr, turl, NULL, NULL, &extra), 0);
      assert_int_equal(cymg_send(extra, tag, (size_t) tn), 0);
    }
    pthread_mutex_unlock(&gil);
    assert_int_equal(cymg_mgr_interrupt(tmgr), 0);
  }
  __atomic_add_fetch(&workers_done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static size_t expected_total(void) {
  size_t total = 0;
  char msg[32];
  for (int k = 0; k < NTHREADS; k++) {
    for (int i = 0; i < NMSGS; i++) {
      total += (size_t) snprintf(msg, sizeof(msg), "%d:%d;", k, i);
      if (i % 100 == 50) total += (size_t) snprintf(msg, sizeof(msg), "%d:x%d;", k, i);
    }
  }
  return total;
}

static size_t received_total(void) {
  size_t n = 0;
  for (int i = 0; i < nsrv; i++) n += srv_recs[i].got.len;
  return n;
}

static void test_calls_from_other_threads_while_blocking(void **state) {
  (void) state;
  tmgr = new_mgr();
  assert_true(cymg_wakeup_init(tmgr) > 0);
  memset(srv_recs, 0, sizeof(srv_recs));
  nsrv = 0;
  workers_done = 0;
  cymg_conn *lsn;
  assert_int_equal(cymg_listen(tmgr, "tcp://127.0.0.1:0", collect_fn, NULL, &lsn), 0);
  url_of(lsn, turl, sizeof(turl));
  pthread_t th[NTHREADS];
  for (int k = 0; k < NTHREADS; k++)
    assert_int_equal(pthread_create(&th[k], NULL, worker, (void *) (intptr_t) k), 0);
  size_t want = expected_total();
  uint64_t start = cymg_mgr_now(tmgr);
  pthread_mutex_lock(&gil);
  while (__atomic_load_n(&workers_done, __ATOMIC_SEQ_CST) < NTHREADS || received_total() < want) {
    int ms = cymg_mgr_prepare(tmgr, 1000);
    pthread_mutex_unlock(&gil);
    assert_true(cymg_mgr_block(tmgr, ms) >= 0);
    pthread_mutex_lock(&gil);
    cymg_mgr_dispatch(tmgr);
    if (cymg_mgr_now(tmgr) - start > CYMG_TEST_WAIT_MS) fail_msg("timed out: %zu", received_total());
  }
  pthread_mutex_unlock(&gil);
  for (int k = 0; k < NTHREADS; k++) pthread_join(th[k], NULL);
  assert_int_equal(received_total(), want);
  /* Each main connection's stream is its thread's messages in order. */
  int mains = 0;
  for (int s = 0; s < nsrv; s++) {
    cymg_buf *g = &srv_recs[s].got;
    int k = -1;
    if (g->len == 0 || sscanf(g->buf, "%d:", &k) != 1) fail_msg("empty stream");
    char first[32];
    int fn = snprintf(first, sizeof(first), "%d:0;", k);
    if (g->len < (size_t) fn || memcmp(g->buf, first, (size_t) fn) != 0) continue; /* extra */
    mains++;
    size_t off = 0;
    for (int i = 0; i < NMSGS; i++) {
      char msg[32];
      int n = snprintf(msg, sizeof(msg), "%d:%d;", k, i);
      assert_true(off + (size_t) n <= g->len);
      assert_memory_equal(g->buf + off, msg, (size_t) n);
      off += (size_t) n;
    }
    assert_int_equal(off, g->len);
  }
  assert_int_equal(mains, NTHREADS);
  assert_int_equal(nsrv, NTHREADS * 4);
  for (int s = 0; s < nsrv; s++) cymg_buf_free(&srv_recs[s].got);
  close_all_and_free(tmgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sends_queue_until_the_next_poll),
      cmocka_unit_test(test_write_interest_only_after_a_short_write),
      cmocka_unit_test(test_one_write_after_a_read_event),
      cmocka_unit_test(test_udp_sends_at_once),
      cmocka_unit_test(test_calls_from_other_threads_while_blocking),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
