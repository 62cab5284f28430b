/* The manager's static-file cache (src/http/static_cache.c) over loopback:
 * what it keeps open must never make a changed, deleted or replaced file go
 * out as it was, and what it holds is bounded. CYMG_TEST_BACKENDS: runs once
 * per I/O backend. */
#include <dirent.h>
#include <sys/stat.h>

#include "http_test.h"
#include "cymg/error.h"
#include "http/static_internal.h"
#include "internal.h"

typedef struct fixture {
  cymg_mgr *mgr;
  cymg_conn *lsn;
  uint16_t port;
  char base[256];
  char root[300];
  cymg_http_serve_opts opts;
  int fd; /* one keep-alive connection for every request */
} fixture;

static void srv_fn(cymg_conn *c, int ev, void *ev_data) {
  fixture *f = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_MSG) assert_int_equal(cymg_http_serve_dir(c, ev_data, &f->opts), 0);
}

static void path_of(char *out, size_t n, const char *dir, const char *name) {
  int k = snprintf(out, n, "%s/%s", dir, name);
  assert_true(k > 0 && (size_t)k < n);
}

static void put(const char *dir, const char *name, const char *data) {
  char p[512];
  path_of(p, sizeof(p), dir, name);
  FILE *fp = fopen(p, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, strlen(data), fp), strlen(data));
  assert_int_equal(fclose(fp), 0);
}

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  int n = 0;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  const char *tmp = getenv("TMPDIR");
  snprintf(f->base, sizeof(f->base), "%s/cymg-scache-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(f->base));
  path_of(f->root, sizeof(f->root), f->base, "root");
  assert_int_equal(mkdir(f->root, 0755), 0);
  put(f->root, "a.txt", "one");
  put(f->root, "app.js", "plain");
  f->opts.root_dir = f->root;
  f->mgr = new_mgr();
  assert_int_equal(cymg_http_listen(f->mgr, "http://127.0.0.1:0", srv_fn, f, &f->lsn), 0);
  f->port = cymg_conn_local(f->lsn)->port;
  f->fd = raw_connect(f->port);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  close(f->fd);
  close_all_and_free(f->mgr);
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->base);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

typedef struct resp {
  int status;
  char body[256];
  char etag[64];
  bool gzip, vary;
} resp;

/* One request on the keep-alive connection. */
static void get(fixture *f, const char *target, const char *extra, resp *r) {
  char req[512], buf[8192];
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", target, extra);
  raw_send(f->mgr, f->fd, req, strlen(req));
  bool closed = false;
  size_t len = raw_read(f->mgr, f->fd, buf, sizeof(buf), 1, &closed);
  assert_false(closed);
  cymg_http_header h[32];
  cymg_http_msg m;
  int hl = cymg_http_parse_response(buf, len, &m, h, 32, NULL);
  assert_true(hl > 0);
  memset(r, 0, sizeof(*r));
  r->status = m.status;
  size_t blen = len - (size_t)hl;
  assert_true(blen < sizeof(r->body));
  memcpy(r->body, buf + hl, blen);
  cymg_str *v = cymg_http_get_header(&m, "ETag");
  if (v) snprintf(r->etag, sizeof(r->etag), "%.*s", (int)v->len, v->buf);
  r->gzip = cymg_http_get_header(&m, "Content-Encoding") != NULL;
  r->vary = cymg_http_get_header(&m, "Vary") != NULL;
}

/* A hot file rewritten in place, shrunk, grown, deleted, or renamed over: every
 * answer right after is the file as it is now, with validators to match. */
static void test_changes_seen_at_once(void **state) {
  fixture *f = *state;
  resp r, s;
  get(f, "/a.txt", "", &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "one");
  get(f, "/a.txt", "", &r); /* now from the cache */
  assert_string_equal(r.body, "one");
  put(f->root, "a.txt", "grown to more"); /* same inode, truncated and rewritten */
  get(f, "/a.txt", "", &s);
  assert_int_equal(s.status, 200);
  assert_string_equal(s.body, "grown to more");
  assert_string_not_equal(s.etag, r.etag);
  put(f->root, "a.txt", "2");
  get(f, "/a.txt", "", &s);
  assert_string_equal(s.body, "2");
  /* Replaced by a rename: the old file has no name left. */
  put(f->root, "a.new", "renamed in");
  char from[512], to[512];
  path_of(from, sizeof(from), f->root, "a.new");
  path_of(to, sizeof(to), f->root, "a.txt");
  assert_int_equal(rename(from, to), 0);
  get(f, "/a.txt", "", &s);
  assert_int_equal(s.status, 200);
  assert_string_equal(s.body, "renamed in");
  /* Deleted. */
  assert_int_equal(unlink(to), 0);
  get(f, "/a.txt", "", &s);
  assert_int_equal(s.status, 404);
}

/* The root's path given to a new folder: a file only the new one has is found
 * at once (a failed lookup re-checks the root). */
static void test_root_replaced(void **state) {
  fixture *f = *state;
  resp r;
  get(f, "/a.txt", "", &r);
  assert_int_equal(r.status, 200);
  char old[400];
  path_of(old, sizeof(old), f->base, "root.old");
  assert_int_equal(rename(f->root, old), 0);
  assert_int_equal(mkdir(f->root, 0755), 0);
  put(f->root, "new.txt", "in the new root");
  get(f, "/new.txt", "", &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "in the new root");
}

/* The ".gz" sibling is looked for only for clients that take gzip, and one
 * found or missing is the same answer again from the cache. */
static void test_gzip_sibling(void **state) {
  fixture *f = *state;
  resp r;
  get(f, "/app.js", "Accept-Encoding: gzip\r\n", &r);
  assert_false(r.gzip);
  assert_false(r.vary);
  get(f, "/app.js", "Accept-Encoding: gzip\r\n", &r); /* the miss, cached */
  assert_false(r.gzip);
  put(f->root, "app.js.gz", "fake gz");
  /* A client without gzip never sees the sibling, cached or not. */
  get(f, "/app.js", "", &r);
  assert_false(r.gzip);
  assert_false(r.vary);
  assert_string_equal(r.body, "plain");
}

/* However many files are served, the cache holds a bounded number of
 * descriptors, and the manager gives them all back when freed. */
static void test_bounded(void **state) {
  fixture *f = *state;
  resp r;
  get(f, "/a.txt", "", &r); /* the server has accepted the connection */
  cymg__static_cache_free(f->mgr);
  int before = open_fds();
  if (before < 0) {
    print_message("no /proc/self/fd: skipped\n");
    return;
  }
  for (int i = 0; i < 3 * CYMG__SC_FILES; i++) {
    char name[32], target[40];
    snprintf(name, sizeof(name), "f%d.txt", i);
    put(f->root, name, name);
    snprintf(target, sizeof(target), "/%s", name);
    get(f, target, "Accept-Encoding: gzip\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, name);
  }
  int during = open_fds();
  /* The root, and at most CYMG__SC_FILES entries (files and missing siblings
   * alike); only open descriptors count. */
  assert_true(during - before <= 1 + CYMG__SC_FILES);
  assert_true(during - before >= 2); /* something is kept: the cache is on */
  /* What the manager frees at the end: every descriptor goes back. */
  cymg__static_cache_free(f->mgr);
  assert_int_equal(open_fds(), before);
  get(f, "/f0.txt", "", &r); /* and a new cache is made on demand */
  assert_string_equal(r.body, "f0.txt");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_changes_seen_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_root_replaced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gzip_sibling, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
  };
  /* CYMG_TEST_BACKENDS */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
