/* The broker's persistence log (src/mqtt/store.c): round trips, torn tails at
 * every byte, damage inside the file, foreign files, compaction, and a writer
 * SIGKILLed mid-stream. Files live in a fresh directory under /tmp. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cymg_test.h"
#include "mqtt/broker_internal.h"

static char dir[64], path[128];

/* What the store logged (the torn-tail warning). */
static char logged[4096];
static void log_sink(int level, const char *line, size_t len, void *arg) {
  (void) level;
  (void) arg;
  snprintf(logged, sizeof(logged), "%.*s", (int) len, line);
}

static int setup(void **state) {
  (void) state;
  snprintf(dir, sizeof(dir), "/tmp/cymg-store-XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(path, sizeof(path), "%s/broker.db", dir);
  return 0;
}

static int teardown(void **state) {
  (void) state;
  char p[160];
  unlink(path);
  snprintf(p, sizeof(p), "%s.tmp", path);
  unlink(p);
  return rmdir(dir);
}

/* Records as loaded, deep-copied so they outlive the callback. */
typedef struct {
  cymg__mqtt_rec r[600];
  char *bufs[600][4];
  size_t n;
} loaded;

static char *dup_view(cymg_str s, cymg_str *into) {
  char *p = malloc(s.len + 1);
  assert_non_null(p);
  if (s.len) memcpy(p, s.buf, s.len);
  *into = cymg_str_n(p, s.len);
  return p;
}

static void on_rec(void *data, const cymg__mqtt_rec *r) {
  loaded *l = data;
  assert_true(l->n < 600);
  cymg__mqtt_rec *c = &l->r[l->n];
  *c = *r;
  l->bufs[l->n][0] = dup_view(r->client_id, &c->client_id);
  l->bufs[l->n][1] = dup_view(r->topic, &c->topic);
  l->bufs[l->n][2] = dup_view(r->payload, &c->payload);
  l->bufs[l->n][3] = dup_view(r->props, &c->props);
  l->n++;
}

static void loaded_free(loaded *l) {
  for (size_t i = 0; i < l->n; i++)
    for (int j = 0; j < 4; j++) free(l->bufs[i][j]);
  l->n = 0;
}

static void assert_str(cymg_str a, cymg_str b) {
  assert_int_equal(a.len, b.len);
  if (a.len) assert_memory_equal(a.buf, b.buf, a.len);
}

static void assert_rec(const cymg__mqtt_rec *a, const cymg__mqtt_rec *b) {
  assert_int_equal(a->type, b->type);
  assert_str(a->client_id, b->client_id);
  assert_str(a->topic, b->topic);
  assert_str(a->payload, b->payload);
  assert_str(a->props, b->props);
  assert_true(a->seq == b->seq);
  assert_true(a->time == b->time);
  assert_int_equal(a->num, b->num);
  assert_int_equal(a->id, b->id);
  assert_int_equal(a->qos, b->qos);
  assert_int_equal(a->opts, b->opts);
  assert_int_equal(a->version, b->version);
  assert_int_equal(a->retain, b->retain);
  assert_int_equal(a->released, b->released);
}

/* One record of every type, with extreme values where a field allows. */
static const char binary[] = {'\0', '\xff', '\x80', 'x', '\0'};
static const cymg__mqtt_rec samples[] = {
    {.type = CYMG__ST_RETAIN, .topic = {"a/b", 3}, .payload = {binary, sizeof(binary)},
     .props = {"\x01\x01", 2}, .qos = 2, .time = UINT64_MAX},
    {.type = CYMG__ST_RETAIN, .topic = {"empty/payload", 13}, .qos = 0},
    {.type = CYMG__ST_RETAIN_DEL, .topic = {"a/b", 3}},
    {.type = CYMG__ST_SESSION, .client_id = {"c1", 2}, .num = UINT32_MAX, .version = 5,
     .time = 1764640000},
    {.type = CYMG__ST_SESSION, .client_id = {"c2", 2}, .num = 0, .version = 4},
    {.type = CYMG__ST_SUB, .client_id = {"c1", 2}, .topic = {"s/+/#", 5}, .opts = 0x2d,
     .num = 268435455},
    {.type = CYMG__ST_UNSUB, .client_id = {"c1", 2}, .topic = {"s/+/#", 5}},
    {.type = CYMG__ST_MSG, .client_id = {"c1", 2}, .seq = UINT64_MAX, .topic = {"t", 1},
     .payload = {"hello", 5}, .props = {"\x23\x00\x05", 3}, .qos = 1, .retain = true,
     .time = 42, .id = 65535, .released = false},
    {.type = CYMG__ST_MSG, .client_id = {"c1", 2}, .seq = 1, .topic = {"t", 1}, .qos = 2,
     .id = 7, .released = true},
    {.type = CYMG__ST_MSG_DEL, .client_id = {"c1", 2}, .seq = 1},
    {.type = CYMG__ST_QOS2_IN, .client_id = {"c2", 2}, .id = 1},
    {.type = CYMG__ST_QOS2_IN_DEL, .client_id = {"c2", 2}, .id = 1},
    {.type = CYMG__ST_SESSION_DEL, .client_id = {"c2", 2}},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static cymg__mqtt_store *open_ok(loaded *l) {
  cymg__mqtt_store *st = NULL;
  char err[256];
  int rc = cymg__mqtt_store_open(path, on_rec, l, &st, err, sizeof(err));
  if (rc != 0) fail_msg("open: %s (%s)", err, cymg_strerror(rc));
  assert_non_null(st);
  return st;
}

static off_t file_size(const char *p) {
  struct stat sb;
  assert_int_equal(stat(p, &sb), 0);
  return sb.st_size;
}

static void write_samples(size_t n) {
  loaded l = {0};
  cymg__mqtt_store *st = open_ok(&l);
  assert_int_equal(l.n, 0);
  for (size_t i = 0; i < n; i++) assert_int_equal(cymg__mqtt_store_put(st, &samples[i]), 0);
  assert_int_equal(cymg__mqtt_store_dirty(st), n > 0);
  assert_int_equal(cymg__mqtt_store_sync(st), 0);
  assert_false(cymg__mqtt_store_dirty(st));
  cymg__mqtt_store_close(st);
}

static void test_round_trip(void **state) {
  (void) state;
  write_samples(NSAMPLES);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  loaded l = {0};
  cymg__mqtt_store *st = open_ok(&l);
  assert_int_equal(l.n, NSAMPLES);
  for (size_t i = 0; i < NSAMPLES; i++) assert_rec(&l.r[i], &samples[i]);
  loaded_free(&l);
  /* Appends after a reopen come after the old records. */
  assert_int_equal(cymg__mqtt_store_put(st, &samples[0]), 0);
  cymg__mqtt_store_close(st); /* close syncs */
  st = open_ok(&l);
  assert_int_equal(l.n, NSAMPLES + 1);
  assert_rec(&l.r[NSAMPLES], &samples[0]);
  loaded_free(&l);
  cymg__mqtt_store_close(st);
}

/* More than the in-memory bound between two syncs: written early, all there. */
static void test_big_batch(void **state) {
  (void) state;
  loaded l = {0};
  cymg__mqtt_store *st = open_ok(&l);
  static char pay[64 << 10];
  memset(pay, 'b', sizeof(pay));
  cymg__mqtt_rec r = {.type = CYMG__ST_RETAIN, .topic = {"big", 3},
                      .payload = {pay, sizeof(pay)}};
  for (int i = 0; i < 100; i++) assert_int_equal(cymg__mqtt_store_put(st, &r), 0);
  assert_true(file_size(path) > (4 << 20)); /* the queue went out before the sync */
  assert_true(cymg__mqtt_store_dirty(st));
  assert_int_equal(cymg__mqtt_store_sync(st), 0);
  cymg__mqtt_store_close(st);
  st = open_ok(&l);
  assert_int_equal(l.n, 100);
  assert_rec(&l.r[99], &r);
  loaded_free(&l);
  cymg__mqtt_store_close(st);
}

static void test_bad_put(void **state) {
  (void) state;
  loaded l = {0};
  cymg__mqtt_store *st = open_ok(&l);
  cymg__mqtt_rec r = {.type = 0};
  assert_int_equal(cymg__mqtt_store_put(st, &r), CYMG_EINVAL);
  r.type = CYMG__ST_QOS2_IN_DEL + 1;
  assert_int_equal(cymg__mqtt_store_put(st, &r), CYMG_EINVAL);
  r.type = CYMG__ST_RETAIN;
  r.payload = cymg_str_n("x", (size_t) 1 << 30); /* never read: refused by length */
  assert_int_equal(cymg__mqtt_store_put(st, &r), CYMG_EINVAL);
  assert_false(cymg__mqtt_store_dirty(st));
  assert_int_equal(cymg__mqtt_store_put(NULL, &samples[0]), CYMG_EINVAL);
  cymg__mqtt_store_close(st);
  cymg__mqtt_store_close(NULL);
}

static void test_locked(void **state) {
  (void) state;
  loaded l = {0};
  cymg__mqtt_store *st = open_ok(&l), *st2 = NULL;
  char err[256];
  int rc = cymg__mqtt_store_open(path, NULL, NULL, &st2, err, sizeof(err));
  assert_true(rc < 0);
  assert_null(st2);
  assert_non_null(strstr(err, "in use"));
  cymg__mqtt_store_close(st);
}

/* Truncating the file anywhere inside the last record is a crash mid-write:
 * every earlier record comes back, the torn one does not, and the file is cut
 * so the next append frames correctly. */
static void test_torn_tail_every_offset(void **state) {
  (void) state;
  write_samples(NSAMPLES - 1);
  off_t before = file_size(path);
  loaded l = {0};
  cymg__mqtt_store *st = open_ok(&l);
  loaded_free(&l);
  assert_int_equal(cymg__mqtt_store_put(st, &samples[7]), 0); /* the largest */
  cymg__mqtt_store_close(st);
  off_t full = file_size(path);
  assert_true(full > before);
  char *copy = malloc((size_t) full);
  assert_non_null(copy);
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(read(fd, copy, (size_t) full), full);
  assert_int_equal(close(fd), 0);

  cymg_log_set_sink(log_sink, NULL);
  for (off_t len = before; len < full; len++) {
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, copy, (size_t) len), len);
    assert_int_equal(close(fd), 0);
    logged[0] = '\0';
    st = open_ok(&l);
    if (len > before) assert_non_null(strstr(logged, "torn or corrupt tail"));
    else assert_null(strstr(logged, "torn"));
    assert_int_equal(l.n, NSAMPLES - 1);
    for (size_t i = 0; i < l.n; i++) assert_rec(&l.r[i], &samples[i]);
    loaded_free(&l);
    assert_int_equal(file_size(path), before);
    /* And the log goes on working after the cut. */
    assert_int_equal(cymg__mqtt_store_put(st, &samples[2]), 0);
    cymg__mqtt_store_close(st);
    st = open_ok(&l);
    assert_int_equal(l.n, NSAMPLES);
    assert_rec(&l.r[NSAMPLES - 1], &samples[2]);
    loaded_free(&l);
    cymg__mqtt_store_close(st);
  }
  cymg_log_set_sink(NULL, NULL);
  /* Garbage (zeros, as a crash can leave past the end) is a torn tail too. */
  fd = open(path, O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  char zeros[100] = {0};
  assert_int_equal(write(fd, zeros, sizeof(zeros)), sizeof(zeros));
  assert_int_equal(close(fd), 0);
  st = open_ok(&l);
  assert_int_equal(l.n, NSAMPLES);
  loaded_free(&l);
  cymg__mqtt_store_close(st);
  free(copy);
}

static void flip_bit(off_t at, int bit) {
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  unsigned char c;
  assert_int_equal(pread(fd, &c, 1, at), 1);
  c ^= (unsigned char) (1u << bit);
  assert_int_equal(pwrite(fd, &c, 1, at), 1);
  assert_int_equal(close(fd), 0);
}

/* A bit flipped in any record but the last, in its frame or its body, is
 * damage: refused with CYMG_EPARSE, the file left alone. */
static void test_flipped_bit_in_middle(void **state) {
  (void) state;
  write_samples(NSAMPLES);
  off_t full = file_size(path);
  /* Every byte of the first half of the records (the header is 12 bytes). */
  for (off_t at = 12; at < full / 2; at++) {
    flip_bit(at, (int) (at % 8));
    cymg__mqtt_store *st = NULL;
    char err[256] = "";
    loaded l = {0};
    int rc = cymg__mqtt_store_open(path, on_rec, &l, &st, err, sizeof(err));
    loaded_free(&l);
    if (rc != CYMG_EPARSE) fail_msg("bit at byte %ld: rc %d (%s)", (long) at, rc, err);
    assert_null(st);
    assert_non_null(strstr(err, "record"));
    assert_int_equal(file_size(path), full);
    flip_bit(at, (int) (at % 8));
  }
  loaded l = {0};
  cymg__mqtt_store_close(open_ok(&l));
  assert_int_equal(l.n, NSAMPLES);
  loaded_free(&l);
}

static void write_file(const void *p, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, p, n), (ssize_t) n);
  assert_int_equal(close(fd), 0);
}

static void expect_eparse(const char *what) {
  cymg__mqtt_store *st = NULL;
  char err[256] = "";
  assert_int_equal(cymg__mqtt_store_open(path, NULL, NULL, &st, err, sizeof(err)), CYMG_EPARSE);
  assert_null(st);
  assert_non_null(strstr(err, what));
}

static void test_not_a_store(void **state) {
  (void) state;
  const char text[] = "retained messages, but in a text file\n";
  write_file(text, sizeof(text) - 1);
  expect_eparse("not an MQTT persistence file");
  write_file("hi", 2);
  expect_eparse("not an MQTT persistence file");
  write_file("CYMGMQST\x02\0\0\0", 12);
  expect_eparse("version 2");
  /* A header cut short by a crash at creation is a new, empty log. */
  write_file("CYMGM", 5);
  loaded l = {0};
  cymg__mqtt_store_close(open_ok(&l));
  assert_int_equal(l.n, 0);
  assert_int_equal(file_size(path), 12);
  /* A directory, or a path in a missing directory: errno. */
  cymg__mqtt_store *st = NULL;
  char err[256];
  assert_int_equal(cymg__mqtt_store_open(dir, NULL, NULL, &st, err, sizeof(err)), -EISDIR);
  char missing[200];
  snprintf(missing, sizeof(missing), "%s/nope/x.db", dir);
  assert_int_equal(cymg__mqtt_store_open(missing, NULL, NULL, &st, err, sizeof(err)), -ENOENT);
  assert_non_null(strstr(err, "nope"));
  assert_int_equal(cymg__mqtt_store_open(NULL, NULL, NULL, &st, err, sizeof(err)), CYMG_EINVAL);
}

/* The live state a compaction dumps. */
static cymg__mqtt_store *dump_st;
static size_t dump_n;
static void dump(void *data) {
  (void) data;
  for (size_t i = 0; i < dump_n; i++)
    assert_int_equal(cymg__mqtt_store_put(dump_st, &samples[i]), 0);
}

static void test_compact(void **state) {
  (void) state;
  loaded l = {0};
  cymg__mqtt_store *st = open_ok(&l);
  /* Churn: the same retained topic set and cleared, until it is worth it. */
  cymg__mqtt_rec set = {.type = CYMG__ST_RETAIN, .topic = {"churn", 5}, .qos = 1};
  cymg__mqtt_rec del = {.type = CYMG__ST_RETAIN_DEL, .topic = {"churn", 5}};
  char big[4096];
  memset(big, 'p', sizeof(big));
  set.payload = cymg_str_n(big, sizeof(big));
  size_t puts = 0;
  while (!cymg__mqtt_store_wants_compact(st)) {
    assert_int_equal(cymg__mqtt_store_put(st, &set), 0);
    assert_int_equal(cymg__mqtt_store_put(st, &del), 0);
    assert_int_equal(cymg__mqtt_store_sync(st), 0);
    puts++;
    assert_true(puts < 10000);
  }
  /* Over 2x the size at open plus 1 MiB. */
  assert_true(file_size(path) > 2 * 12 + (1 << 20));
  assert_int_equal(cymg__mqtt_store_put(st, &samples[0]), 0); /* queued, not synced */
  dump_st = st;
  dump_n = 4;
  assert_int_equal(cymg__mqtt_store_compact(st, dump, NULL), 0);
  assert_false(cymg__mqtt_store_wants_compact(st));
  assert_false(cymg__mqtt_store_dirty(st));
  assert_true(file_size(path) < 1000);
  char tmp[160];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  assert_int_equal(access(tmp, F_OK), -1);
  /* Appends go to the new file. */
  assert_int_equal(cymg__mqtt_store_put(st, &samples[5]), 0);
  cymg__mqtt_store_close(st);
  st = open_ok(&l);
  assert_int_equal(l.n, 5);
  for (size_t i = 0; i < 4; i++) assert_rec(&l.r[i], &samples[i]);
  assert_rec(&l.r[4], &samples[5]);
  loaded_free(&l);
  cymg__mqtt_store_close(st);
}

/* A compaction that crashed before its rename leaves a temporary file; the
 * log is whole and the leftover is removed, never read. */
static void test_stale_temp(void **state) {
  (void) state;
  write_samples(3);
  char tmp[160];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "CYMGMQST\x01\0\0\0garbage", 19), 19);
  assert_int_equal(close(fd), 0);
  loaded l = {0};
  cymg__mqtt_store *st = open_ok(&l);
  assert_int_equal(l.n, 3);
  loaded_free(&l);
  assert_int_equal(access(tmp, F_OK), -1);
  cymg__mqtt_store_close(st);
}

/* A dump that fails (a put refused) leaves the old log in use, whole. */
static void bad_dump(void *data) {
  (void) data;
  cymg__mqtt_rec r = {.type = 99};
  assert_int_equal(cymg__mqtt_store_put(dump_st, &samples[0]), 0);
  assert_int_equal(cymg__mqtt_store_put(dump_st, &r), CYMG_EINVAL);
}

static void test_compact_failure(void **state) {
  (void) state;
  write_samples(3);
  loaded l = {0};
  cymg__mqtt_store *st = open_ok(&l);
  loaded_free(&l);
  dump_st = st;
  assert_int_equal(cymg__mqtt_store_compact(st, bad_dump, NULL), CYMG_EINVAL);
  assert_int_equal(cymg__mqtt_store_put(st, &samples[3]), 0);
  cymg__mqtt_store_close(st);
  st = open_ok(&l);
  assert_int_equal(l.n, 4);
  for (size_t i = 0; i < 4; i++) assert_rec(&l.r[i], &samples[i]);
  loaded_free(&l);
  cymg__mqtt_store_close(st);
}

/* Crash safety for real: a child puts and syncs numbered records, telling the
 * parent through a pipe after each sync, and is SIGKILLed while it goes on.
 * Every record it reported synced is in the file, in order; at most the
 * records after it are extra, never damaged ones. */
typedef struct {
  uint64_t n;
  bool ordered;
} counted;

static void on_count(void *data, const cymg__mqtt_rec *r) {
  counted *c = data;
  c->n++;
  if (r->type != CYMG__ST_MSG || r->seq != c->n || r->payload.len != 1 + r->seq % 300)
    c->ordered = false;
}

static void test_sigkill_mid_stream(void **state) {
  (void) state;
  write_samples(0);
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(pfd[0]);
    cymg__mqtt_store *st = NULL;
    if (cymg__mqtt_store_open(path, NULL, NULL, &st, NULL, 0) != 0) _exit(2);
    char pay[300];
    memset(pay, 'q', sizeof(pay));
    for (uint64_t seq = 1;; seq++) {
      cymg__mqtt_rec r = {.type = CYMG__ST_MSG, .client_id = {"crash", 5}, .seq = seq,
                          .topic = {"t/x", 3}, .payload = {pay, 1 + seq % sizeof(pay)},
                          .qos = 1};
      if (cymg__mqtt_store_put(st, &r) != 0) _exit(3);
      if (seq % 3 == 0) { /* a batch of three, as a group commit would */
        if (cymg__mqtt_store_sync(st) != 0) _exit(4);
        if (write(pfd[1], &seq, sizeof(seq)) != sizeof(seq)) _exit(5);
      }
    }
  }
  close(pfd[1]);
  uint64_t synced = 0, v;
  while (synced < 600 && read(pfd[0], &v, sizeof(v)) == sizeof(v)) synced = v;
  assert_int_equal(kill(pid, SIGKILL), 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  /* The child may have synced more after the last value we read. */
  while (read(pfd[0], &v, sizeof(v)) == sizeof(v)) synced = v;
  close(pfd[0]);
  assert_true(synced >= 600);

  cymg__mqtt_store *st = NULL;
  char err[256];
  counted c = {0, true};
  assert_int_equal(cymg__mqtt_store_open(path, on_count, &c, &st, err, sizeof(err)), 0);
  assert_true(c.ordered);
  assert_true(c.n >= synced);
  cymg__mqtt_store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_big_batch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_put, setup, teardown),
      cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flipped_bit_in_middle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_a_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compact, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stale_temp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compact_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sigkill_mid_stream, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
