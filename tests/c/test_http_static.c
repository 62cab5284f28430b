/* Static files: serve_dir and serve_file over
 * loopback against a folder made for the test, with a raw-socket client and
 * with curl. CYMG_TEST_BACKENDS: runs once per I/O backend. On Linux the
 * file tests run twice: with openat2(2), then in a child whose seccomp filter
 * answers openat2 with ENOSYS, as a kernel before 5.6 would, so the realpath
 * fallback passes the same tests. */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#ifdef __linux__
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "http_test.h"
#include "cymg/error.h"
#include "http/static_internal.h"


typedef struct fixture {
  cymg_mgr *mgr;
  cymg_conn *lsn;
  uint16_t port;
  char base[256]; /* temp folder holding root/ and outside/ */
  char root[300];
  char file[320]; /* what /file serves with serve_file */
  cymg_http_serve_opts opts;
  bool have_big; /* the file system took a sparse 5 GiB file */
} fixture;

static void srv_fn(cymg_conn *c, int ev, void *ev_data) {
  fixture *f = cymg_conn_userdata(c);
  if (ev != CYMG_EV_HTTP_MSG) return;
  cymg_http_msg *m = ev_data;
  if (cymg_str_eq(m->uri, cymg_str_c("/file"))) {
    assert_int_equal(cymg_http_serve_file(c, m, f->file, &f->opts), 0);
  } else if (cymg_str_eq(m->uri, cymg_str_c("/nofile"))) {
    assert_int_equal(cymg_http_serve_file(c, m, "/nonexistent/x.txt", NULL), 0);
  } else {
    assert_int_equal(cymg_http_serve_dir(c, m, &f->opts), 0);
  }
}

static void put(const char *dir, const char *name, const char *data, size_t len) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  fclose(fp);
}
#define PUT(dir, name, lit) put(dir, name, lit, sizeof(lit) - 1)

static void sub(char *out, size_t n, const char *a, const char *b) {
  int k = snprintf(out, n, "%s/%s", a, b);
  assert_true(k > 0 && (size_t)k < n);
}

static void link_at(const char *dir, const char *name, const char *target) {
  char p[512];
  sub(p, sizeof(p), dir, name);
  assert_int_equal(symlink(target, p), 0);
}

/* More symlinks, for test_symlinks: the kernel refuses any walk that leaves the
 * root (EXDEV), so those whose real path ends inside must still be served. */
static void links(fixture *f) {
  char out[400], abs[400], p[400];
  sub(out, sizeof(out), f->base, "outside");
  /* Inside, and ending inside: a chain, ".." within the root, a folder. */
  link_at(f->root, "chain.txt", "inlink.txt");
  sub(p, sizeof(p), f->root, "sub");
  link_at(p, "up.txt", "../hello.txt");
  link_at(p, "rootlink", "..");
  link_at(f->root, "insub", "sub");
  /* Absolute, and ending inside: refused by the kernel's walk, then served
   * by resolving it and opening the result beneath the root again. */
  sub(abs, sizeof(abs), f->root, "hello.txt");
  link_at(f->root, "abs.txt", abs);
  /* Out and back in: the real path is what counts, as before openat2. */
  PUT(out, "back-target.txt", "unused");
  link_at(out, "back.txt", "../root/hello.txt");
  link_at(f->root, "outback.txt", "../outside/back.txt");
  /* Leaving: a chain whose last hop escapes, ".." above the root from a
   * folder, absolute ones to a file and to a folder outside. */
  link_at(f->root, "hop1.txt", "sub/hop2.txt");
  link_at(p, "hop2.txt", "../../outside/secret.txt");
  link_at(p, "updir", "../..");
  sub(abs, sizeof(abs), out, "secret.txt");
  link_at(f->root, "abssecret.txt", abs);
  link_at(f->root, "absdir", out);
  link_at(f->root, "passwd", "/etc/passwd");
  /* A .gz sibling and an index file leading out are not used. */
  PUT(f->root, "leak.txt", "plain leak\n");
  link_at(f->root, "leak.txt.gz", "../outside/secret.txt");
  sub(p, sizeof(p), f->root, "escindex");
  assert_int_equal(mkdir(p, 0755), 0);
  link_at(p, "index.html", "../../outside/secret.txt");
}

#define BIG_SIZE (5ULL << 30)
#define BIG_MARK_AT ((4ULL << 30) + 100) /* "MARK" sits just past 4 GiB */

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  const char *tmp = getenv("TMPDIR");
  snprintf(f->base, sizeof(f->base), "%s/cymg-static-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(f->base));
  char p[400], q[400];
  sub(f->root, sizeof(f->root), f->base, "root");
  assert_int_equal(mkdir(f->root, 0755), 0);
  sub(p, sizeof(p), f->base, "outside");
  assert_int_equal(mkdir(p, 0755), 0);
  PUT(p, "secret.txt", "TOP SECRET\n");
  PUT(p, "404.html", "<h1>custom not found</h1>\n");
  PUT(f->root, "hello.txt", "Hello, world\n");
  PUT(f->root, "index.html", "<p>home</p>\n");
  PUT(f->root, "app.js", "console.log('plain');\n");
  PUT(f->root, "app.js.gz", "\x1f\x8b\x08 fake gzip bytes");
  PUT(f->root, "data.foo", "foo data");
  PUT(f->root, ".hidden", "hidden");
  sub(p, sizeof(p), f->root, ".well-known");
  assert_int_equal(mkdir(p, 0755), 0);
  PUT(p, "acme.txt", "token");
  sub(p, sizeof(p), f->root, "sub");
  assert_int_equal(mkdir(p, 0755), 0);
  PUT(p, "a b&<c>.txt", "odd name");
  PUT(p, "x.css", "body{}");
  PUT(p, ".secret", "no");
  sub(q, sizeof(q), p, "inner");
  assert_int_equal(mkdir(q, 0755), 0);
  PUT(q, "deep.txt", "deep");
  sub(p, sizeof(p), f->root, "withindex");
  assert_int_equal(mkdir(p, 0755), 0);
  PUT(p, "index.htm", "<p>htm index</p>");
  /* Symlinks: two leading out of the root, one staying inside. */
  sub(p, sizeof(p), f->root, "escape.txt");
  assert_int_equal(symlink("../outside/secret.txt", p), 0);
  sub(p, sizeof(p), f->root, "escdir");
  assert_int_equal(symlink("../outside", p), 0);
  sub(p, sizeof(p), f->root, "inlink.txt");
  assert_int_equal(symlink("hello.txt", p), 0);
  sub(p, sizeof(p), f->root, "fifo");
  assert_int_equal(mkfifo(p, 0644), 0);
  links(f);
  /* A sparse file above 4 GiB, where the file system allows one. */
  sub(p, sizeof(p), f->root, "big.bin");
  int fd = open(p, O_CREAT | O_WRONLY, 0644);
  assert_true(fd >= 0);
  f->have_big =
      ftruncate(fd, (off_t)BIG_SIZE) == 0 && pwrite(fd, "MARK", 4, (off_t)BIG_MARK_AT) == 4;
  close(fd);
  if (!f->have_big) unlink(p);
  sub(f->file, sizeof(f->file), f->root, "hello.txt");
  f->opts.root_dir = f->root;
  assert_int_equal(cymg_mgr_new(&f->mgr, CYMG_BACKEND_AUTO), 0);
  assert_int_equal(cymg_http_listen(f->mgr, "http://127.0.0.1:0", srv_fn, f, &f->lsn), 0);
  f->port = cymg_conn_local(f->lsn)->port;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  for (cymg_conn *c = cymg_mgr_first(f->mgr); c; c = cymg_conn_next(c)) cymg_close(c);
  cymg_mgr_poll(f->mgr, 0);
  ASSERT_MGR_CLEAN(f->mgr);
  cymg_mgr_free(f->mgr);
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->base);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* One parsed response, copied out of the read buffer. */
typedef struct resp {
  int status;
  char head[8192];
  char *body; /* malloc'd, NUL-terminated */
  size_t body_len;
  bool closed;
} resp;

static char rbuf[1 << 20];

/* The value of header `name` in r (first one), or NULL. */
static const char *hdr(resp *r, const char *name, char *out, size_t cap) {
  cymg_http_header h[64];
  cymg_http_msg m;
  if (cymg_http_parse_response(r->head, strlen(r->head), &m, h, 64, NULL) <= 0) return NULL;
  cymg_str *v = cymg_http_get_header(&m, name);
  if (v == NULL) return NULL;
  snprintf(out, cap, "%.*s", (int)v->len, v->buf);
  return out;
}

/* Sends req on fd and reads one response; HEAD responses have no body. */
static void exchange(fixture *f, int fd, const char *req, resp *r) {
  memset(r, 0, sizeof(*r));
  raw_send(f->mgr, fd, req, strlen(req));
  bool head = strncmp(req, "HEAD ", 5) == 0;
  size_t len = head ? raw_read_str(f->mgr, fd, rbuf, sizeof(rbuf), "\r\n\r\n")
                    : raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &r->closed);
  cymg_http_header h[64];
  cymg_http_msg m;
  int hl = cymg_http_parse_response(rbuf, len, &m, h, 64, NULL);
  if (hl <= 0) fail_msg("no response to %s: %.*s", req, (int)len, rbuf);
  assert_true((size_t)hl < sizeof(r->head));
  memcpy(r->head, rbuf, (size_t)hl);
  r->status = m.status;
  r->body_len = head ? 0 : len - (size_t)hl;
  if (!head && m.content_length >= 0) assert_int_equal(r->body_len, m.content_length);
  r->body = malloc(r->body_len + 1);
  memcpy(r->body, rbuf + hl, r->body_len);
  r->body[r->body_len] = '\0';
}

/* One request on a fresh connection. */
static void get(fixture *f, const char *req, resp *r) {
  int fd = raw_connect(f->port);
  exchange(f, fd, req, r);
  close(fd);
}

static void done(resp *r) {
  free(r->body);
  r->body = NULL;
}

#define REQ(method, target, extra) method " " target " HTTP/1.1\r\nHost: t\r\n" extra "\r\n"

static void expect_hdr(resp *r, const char *name, const char *want) {
  char v[1024];
  const char *got = hdr(r, name, v, sizeof(v));
  if (want == NULL) {
    if (got != NULL) fail_msg("%s: unexpected '%s'", name, got);
  } else if (got == NULL || strcmp(got, want) != 0) {
    fail_msg("%s: got '%s', want '%s'", name, got ? got : "(none)", want);
  }
}

static void test_get_and_head(void **state) {
  fixture *f = *state;
  resp r;
  get(f, REQ("GET", "/hello.txt", ""), &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "Hello, world\n");
  expect_hdr(&r, "Content-Type", "text/plain; charset=utf-8");
  expect_hdr(&r, "Content-Length", "13");
  expect_hdr(&r, "Accept-Ranges", "bytes");
  expect_hdr(&r, "Vary", NULL); /* no .gz sibling */
  char etag[64], lm[64];
  assert_non_null(hdr(&r, "ETag", etag, sizeof(etag)));
  assert_true(etag[0] == '"');
  assert_non_null(hdr(&r, "Last-Modified", lm, sizeof(lm)));
  struct stat st;
  assert_int_equal(stat(f->file, &st), 0);
  char want[30];
  assert_int_equal(cymg__http_format_date(st.st_mtim.tv_sec, want), 29);
  assert_string_equal(lm, want);
  done(&r);
  get(f, REQ("HEAD", "/hello.txt", ""), &r);
  assert_int_equal(r.status, 200);
  expect_hdr(&r, "Content-Length", "13");
  expect_hdr(&r, "ETag", etag);
  done(&r);
  /* A symlink inside the root is followed. */
  get(f, REQ("GET", "/inlink.txt", ""), &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "Hello, world\n");
  done(&r);
  get(f, REQ("GET", "/.well-known/acme.txt", ""), &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "token");
  done(&r);
  get(f, REQ("POST", "/hello.txt", "Content-Length: 0\r\n"), &r);
  assert_int_equal(r.status, 405);
  expect_hdr(&r, "Allow", "GET, HEAD");
  done(&r);
}

static void test_conditional(void **state) {
  fixture *f = *state;
  resp r;
  char etag[64], lm[64], req[512];
  get(f, REQ("GET", "/hello.txt", ""), &r);
  hdr(&r, "ETag", etag, sizeof(etag));
  hdr(&r, "Last-Modified", lm, sizeof(lm));
  done(&r);
  snprintf(req, sizeof(req), REQ("GET", "/hello.txt", "If-None-Match: \"zz\", %s\r\n"), etag);
  get(f, req, &r);
  assert_int_equal(r.status, 304);
  assert_int_equal(r.body_len, 0);
  expect_hdr(&r, "ETag", etag);
  done(&r);
  snprintf(req, sizeof(req), REQ("GET", "/hello.txt", "If-None-Match: W/%s\r\n"), etag);
  get(f, req, &r);
  assert_int_equal(r.status, 304);
  done(&r);
  snprintf(req, sizeof(req), REQ("HEAD", "/hello.txt", "If-Modified-Since: %s\r\n"), lm);
  get(f, req, &r);
  assert_int_equal(r.status, 304);
  done(&r);
  get(f, REQ("GET", "/hello.txt", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n"), &r);
  assert_int_equal(r.status, 200);
  done(&r);
  /* A date later than the server's clock is invalid and ignored (§13.1.3),
   * though the file is older than it: the whole file, not 304. */
  char future[30];
  assert_int_equal(cymg__http_format_date((int64_t)time(NULL) + 86400, future), 29);
  snprintf(req, sizeof(req), REQ("GET", "/hello.txt", "If-Modified-Since: %s\r\n"), future);
  get(f, req, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "Hello, world\n");
  done(&r);
  get(f, REQ("GET", "/hello.txt", "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n"), &r);
  assert_int_equal(r.status, 200);
  done(&r);
  /* If-None-Match decides alone when present (§13.2.2). */
  snprintf(req, sizeof(req),
           REQ("GET", "/hello.txt", "If-None-Match: \"other\"\r\nIf-Modified-Since: %s\r\n"), lm);
  get(f, req, &r);
  assert_int_equal(r.status, 200);
  done(&r);
  get(f, REQ("GET", "/hello.txt", "If-Match: \"nope\"\r\n"), &r);
  assert_int_equal(r.status, 412);
  done(&r);
}

static void test_ranges(void **state) {
  fixture *f = *state;
  resp r;
  char etag[64], req[512];
  get(f, REQ("GET", "/hello.txt", "Range: bytes=0-4\r\n"), &r);
  assert_int_equal(r.status, 206);
  assert_string_equal(r.body, "Hello");
  expect_hdr(&r, "Content-Range", "bytes 0-4/13");
  hdr(&r, "ETag", etag, sizeof(etag));
  done(&r);
  get(f, REQ("GET", "/hello.txt", "Range: bytes=-6\r\n"), &r);
  assert_int_equal(r.status, 206);
  assert_string_equal(r.body, "world\n");
  expect_hdr(&r, "Content-Range", "bytes 7-12/13");
  done(&r);
  get(f, REQ("GET", "/hello.txt", "Range: bytes=7-\r\n"), &r);
  assert_int_equal(r.status, 206);
  assert_string_equal(r.body, "world\n");
  done(&r);
  get(f, REQ("GET", "/hello.txt", "Range: bytes=13-\r\n"), &r);
  assert_int_equal(r.status, 416);
  expect_hdr(&r, "Content-Range", "bytes */13");
  done(&r);
  get(f, REQ("GET", "/hello.txt", "Range: bytes=0-1,3-4\r\n"), &r);
  assert_int_equal(r.status, 200); /* several ranges: the whole file */
  assert_string_equal(r.body, "Hello, world\n");
  done(&r);
  get(f, REQ("HEAD", "/hello.txt", "Range: bytes=0-1\r\n"), &r);
  assert_int_equal(r.status, 200); /* Range is for GET only */
  done(&r);
  snprintf(req, sizeof(req), REQ("GET", "/hello.txt", "Range: bytes=0-1\r\nIf-Range: %s\r\n"),
           etag);
  get(f, req, &r);
  assert_int_equal(r.status, 206);
  assert_string_equal(r.body, "He");
  done(&r);
  get(f, REQ("GET", "/hello.txt", "Range: bytes=0-1\r\nIf-Range: \"stale\"\r\n"), &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "Hello, world\n");
  done(&r);
}

static void test_big_file(void **state) {
  fixture *f = *state;
  if (!f->have_big) {
    print_message("sparse 5 GiB file refused by the file system: skipped\n");
    return;
  }
  resp r;
  get(f, REQ("HEAD", "/big.bin", ""), &r);
  assert_int_equal(r.status, 200);
  expect_hdr(&r, "Content-Length", "5368709120");
  done(&r);
  get(f, REQ("GET", "/big.bin", "Range: bytes=4294967390-4294967405\r\n"), &r);
  assert_int_equal(r.status, 206);
  expect_hdr(&r, "Content-Range", "bytes 4294967390-4294967405/5368709120");
  assert_int_equal(r.body_len, 16);
  /* Zeros (a hole), the mark 4 GiB + 100 bytes in, zeros. */
  assert_memory_equal(r.body, "\0\0\0\0\0\0MARK\0\0\0\0\0\0", 16);
  done(&r);
  get(f, REQ("GET", "/big.bin", "Range: bytes=-3\r\n"), &r);
  assert_int_equal(r.status, 206);
  expect_hdr(&r, "Content-Range", "bytes 5368709117-5368709119/5368709120");
  assert_memory_equal(r.body, "\0\0\0", 3);
  done(&r);
  get(f, REQ("GET", "/big.bin", "Range: bytes=5368709120-\r\n"), &r);
  assert_int_equal(r.status, 416);
  expect_hdr(&r, "Content-Range", "bytes */5368709120");
  done(&r);
}

static void test_traversal(void **state) {
  fixture *f = *state;
  static const char *const targets[] = {
      "/../outside/secret.txt",
      "/../../../../etc/passwd",
      "/%2e%2e/outside/secret.txt",
      "/%2E%2E/%2e%2e/etc/passwd",
      "/%2E./outside/secret.txt",
      "/..%2foutside%2fsecret.txt",
      "/%2foutside/secret.txt",
      "/sub%2f..%2f..%2foutside/secret.txt",
      "/..%5coutside%5csecret.txt",
      "/sub/%5c..%5c..%5coutside",
      "/hello.txt%00.html",
      "/sub/../../outside/secret.txt",
      "/sub/inner/../../../outside/secret.txt",
      "//etc/passwd",
      "/escape.txt",
      "/escdir/secret.txt",
      "/escdir/",
      "/.hidden",
      "/sub/.secret",
      "/%2ehidden",
      "/fifo",
      "/missing.txt",
  };
  for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
    char req[512];
    snprintf(req, sizeof(req), REQ("GET", "%s", ""), targets[i]);
    resp r;
    get(f, req, &r);
    if (r.status != 404) fail_msg("%s: status %d", targets[i], r.status);
    assert_null(strstr(r.body, "SECRET"));
    assert_null(strstr(r.body, "root:"));
    done(&r);
  }
  /* A malformed escape is a bad request. */
  resp r;
  get(f, REQ("GET", "/a%zz", ""), &r);
  assert_int_equal(r.status, 400);
  done(&r);
}

static void test_folders(void **state) {
  fixture *f = *state;
  resp r;
  get(f, REQ("GET", "/sub", ""), &r);
  assert_int_equal(r.status, 301);
  expect_hdr(&r, "Location", "/sub/");
  done(&r);
  get(f, REQ("GET", "/sub/inner?x=1&y", ""), &r);
  assert_int_equal(r.status, 301);
  expect_hdr(&r, "Location", "/sub/inner/?x=1&y");
  done(&r);
  /* The redirect is built from the normalised path: never off-site. */
  get(f, REQ("GET", "//sub", ""), &r);
  assert_int_equal(r.status, 301);
  expect_hdr(&r, "Location", "/sub/");
  done(&r);
  get(f, REQ("GET", "/", ""), &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "<p>home</p>\n");
  expect_hdr(&r, "Content-Type", "text/html; charset=utf-8");
  done(&r);
  get(f, REQ("GET", "/withindex/", ""), &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "<p>htm index</p>");
  done(&r);
  get(f, REQ("GET", "/sub/", ""), &r);
  assert_int_equal(r.status, 403); /* no index, no listing */
  done(&r);
  f->opts.dir_listing = true;
  get(f, REQ("GET", "/sub/", ""), &r);
  assert_int_equal(r.status, 200);
  expect_hdr(&r, "Content-Type", "text/html; charset=utf-8");
  assert_non_null(strstr(r.body, "Index of /sub/"));
  assert_non_null(strstr(r.body, "<a href=\"../\">../</a>"));
  assert_non_null(strstr(r.body, "<a href=\"inner/\">inner/</a>"));
  assert_non_null(strstr(r.body, "<a href=\"a%20b%26%3Cc%3E.txt\">a b&amp;&lt;c&gt;.txt</a>"));
  assert_non_null(strstr(r.body, "<td>8</td>")); /* size of "odd name" */
  assert_non_null(strstr(r.body, "x.css"));
  assert_null(strstr(r.body, ".secret"));
  /* Sorted: folders first, then names. */
  char *a = strstr(r.body, "inner/"), *b = strstr(r.body, "a%20b"), *c = strstr(r.body, "x.css");
  assert_true(a < b && b < c);
  done(&r);
  get(f, REQ("GET", "/", ""), &r); /* an index still wins over the listing */
  assert_string_equal(r.body, "<p>home</p>\n");
  done(&r);
  f->opts.index_files = "nothing.html";
  get(f, REQ("GET", "/", ""), &r);
  assert_int_equal(r.status, 200);
  assert_null(strstr(r.body, "../"));    /* the root has no parent link */
  assert_null(strstr(r.body, "escdir")); /* links leading out are not listed */
  assert_null(strstr(r.body, "escape.txt"));
  assert_non_null(strstr(r.body, "inlink.txt")); /* those staying inside are */
  done(&r);
}

static void test_symlinks(void **state) {
  fixture *f = *state;
  static const char *const good[] = {
      "/inlink.txt", "/chain.txt",   "/sub/up.txt",         "/sub/rootlink/hello.txt",
      "/abs.txt",    "/outback.txt", "/insub/../hello.txt", "/insub/inner/../../hello.txt",
  };
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    char req[512];
    snprintf(req, sizeof(req), REQ("GET", "%s", ""), good[i]);
    resp r;
    get(f, req, &r);
    if (r.status != 200 || strcmp(r.body, "Hello, world\n") != 0)
      fail_msg("%s: status %d, body '%s'", good[i], r.status, r.body);
    done(&r);
  }
  static const char *const bad[] = {
      "/escape.txt",     "/escdir/secret.txt",
      "/escdir/",        "/hop1.txt",
      "/sub/hop2.txt",   "/sub/updir/outside/secret.txt",
      "/sub/updir/",     "/sub/rootlink/escape.txt",
      "/abssecret.txt",  "/absdir/secret.txt",
      "/absdir/",        "/passwd",
      "/insub/hop2.txt", "/sub/rootlink/sub/updir/outside/secret.txt",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char req[512];
    snprintf(req, sizeof(req), REQ("GET", "%s", ""), bad[i]);
    resp r;
    get(f, req, &r);
    if (r.status != 404) fail_msg("%s: status %d", bad[i], r.status);
    assert_null(strstr(r.body, "SECRET"));
    assert_null(strstr(r.body, "root:"));
    done(&r);
  }
  resp r;
  /* A folder reached through a link inside: redirect, then its listing. */
  get(f, REQ("GET", "/insub", ""), &r);
  assert_int_equal(r.status, 301);
  expect_hdr(&r, "Location", "/insub/");
  done(&r);
  f->opts.dir_listing = true;
  get(f, REQ("GET", "/insub/", ""), &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "x.css"));
  assert_non_null(strstr(r.body, "up.txt"));
  assert_non_null(strstr(r.body, "rootlink/")); /* a link to a folder lists as one */
  assert_null(strstr(r.body, "hop2.txt"));
  assert_null(strstr(r.body, "updir"));
  done(&r);
  /* The index leads out: not used, and the folder is listed instead. */
  get(f, REQ("GET", "/escindex/", ""), &r);
  assert_int_equal(r.status, 200);
  assert_null(strstr(r.body, "SECRET"));
  assert_null(strstr(r.body, "index.html"));
  done(&r);
  f->opts.dir_listing = false;
  get(f, REQ("GET", "/escindex/", ""), &r);
  assert_int_equal(r.status, 403);
  done(&r);
  /* A .gz sibling leading out: the plain file, and no sign of a sibling. */
  get(f, REQ("GET", "/leak.txt", "Accept-Encoding: gzip\r\n"), &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "plain leak\n");
  expect_hdr(&r, "Content-Encoding", NULL);
  expect_hdr(&r, "Vary", NULL);
  done(&r);
  /* A file named as a folder. */
  get(f, REQ("GET", "/hello.txt/", ""), &r);
  assert_int_equal(r.status, 404);
  done(&r);
  get(f, REQ("GET", "/abs.txt/", ""), &r);
  assert_int_equal(r.status, 404);
  done(&r);
  /* A root that is not a folder is a configuration error, not a 404. */
  f->opts.root_dir = f->file;
  get(f, REQ("GET", "/hello.txt", ""), &r);
  assert_int_equal(r.status, 500);
  done(&r);
  f->opts.root_dir = f->root;
}

/* Swaps "swap.txt" between a link inside and one leading out, atomically
 * (rename), until told to stop. */
typedef struct swapper {
  char dir[300];
  atomic_bool stop;
  unsigned long swaps;
} swapper;

static void *swap_links(void *arg) {
  swapper *w = arg;
  char tmp[400], dst[400];
  sub(tmp, sizeof(tmp), w->dir, "swap.tmp");
  sub(dst, sizeof(dst), w->dir, "swap.txt");
  while (!atomic_load(&w->stop)) {
    const char *target = w->swaps % 2 ? "../outside/secret.txt" : "hello.txt";
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, dst) != 0) break;
    w->swaps++;
  }
  return NULL;
}

/* The check and the open are one step: however a link is swapped while
 * requests arrive, a file outside the root never goes out. (The realpath
 * fallback has a window between the two steps, so this is not run there.) */
static void test_symlink_swap(void **state) {
  fixture *f = *state;
#if defined(__linux__) && defined(SYS_openat2)
  errno = 0;
  syscall(SYS_openat2, AT_FDCWD, ".", NULL, 0); /* EINVAL or EFAULT when it exists */
  if (errno == ENOSYS || errno == EPERM) {
    print_message("no openat2 here: the realpath fallback has the window, skipped\n");
    return;
  }
#else
  print_message("no openat2 here: the realpath fallback has the window, skipped\n");
  return;
#endif
  swapper w = {.stop = false};
  snprintf(w.dir, sizeof(w.dir), "%s", f->root);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, swap_links, &w), 0);
  int fd = raw_connect(f->port);
  int ok = 0, missing = 0, leaked = -1, odd = 0;
  for (int i = 0; i < 2000 && leaked < 0 && odd == 0; i++) {
    resp r;
    exchange(f, fd, REQ("GET", "/swap.txt", ""), &r);
    if (strstr(r.body, "SECRET")) leaked = i;
    if (r.status == 200)
      ok++;
    else if (r.status == 404)
      missing++;
    else
      odd = r.status;
    done(&r);
  }
  close(fd);
  /* The thread stops before any assertion can leave this function. */
  atomic_store(&w.stop, true);
  assert_int_equal(pthread_join(t, NULL), 0);
  if (leaked >= 0) fail_msg("request %d got the file outside the root", leaked);
  if (odd) fail_msg("status %d", odd);
  assert_true(w.swaps > 2);
  print_message("swap: %d served, %d refused, %lu swaps\n", ok, missing, w.swaps);
}

static void test_gzip(void **state) {
  fixture *f = *state;
  resp r;
  get(f, REQ("GET", "/app.js", "Accept-Encoding: br, gzip;q=0.8\r\n"), &r);
  assert_int_equal(r.status, 200);
  expect_hdr(&r, "Content-Encoding", "gzip");
  expect_hdr(&r, "Content-Type", "text/javascript; charset=utf-8");
  expect_hdr(&r, "Vary", "Accept-Encoding");
  assert_memory_equal(r.body, "\x1f\x8b\x08 fake gzip bytes", 19);
  char gz_etag[64], etag[64];
  hdr(&r, "ETag", gz_etag, sizeof(gz_etag));
  done(&r);
  /* A client that takes no gzip gets the file with no look for the sibling,
   * hence no Vary: a shared cache keeping this answer gives every client a
   * correct one. */
  get(f, REQ("GET", "/app.js", ""), &r);
  assert_int_equal(r.status, 200);
  expect_hdr(&r, "Content-Encoding", NULL);
  expect_hdr(&r, "Vary", NULL);
  assert_string_equal(r.body, "console.log('plain');\n");
  hdr(&r, "ETag", etag, sizeof(etag));
  assert_string_not_equal(etag, gz_etag);
  done(&r);
  get(f, REQ("GET", "/app.js", "Accept-Encoding: gzip;q=0\r\n"), &r);
  expect_hdr(&r, "Content-Encoding", NULL);
  done(&r);
  /* The .gz file itself is an ordinary file. */
  get(f, REQ("GET", "/app.js.gz", "Accept-Encoding: gzip\r\n"), &r);
  expect_hdr(&r, "Content-Type", "application/gzip");
  expect_hdr(&r, "Content-Encoding", NULL);
  done(&r);
}

/* Accept-Encoding in the list forms of RFC 9110 §5.6.1 and the weights of
 * §12.4.2, through the server: empty elements once read an unset slice and
 * crashed it (",gzip"). Each value goes to a file with a .gz sibling, one
 * without (the sibling probe reads the header too) and serve_file. */
static void test_accept_encoding_lists(void **state) {
  fixture *f = *state;
  static const struct {
    const char *value;
    bool gzip;
  } cases[] = {
      /* Empty elements and OWS. */
      {",gzip", true},
      {",", false},
      {", ;q=0", false},
      {"gzip,,", true},
      {" , , gzip , ", true},
      {";q=1, gzip", true}, /* an element with no coding is skipped */
      {",;,", false},
      {"", false},
      {" \t ", false},
      {"gzip ; q=0.5", true},
      {"gzip\t;\tq=1", true},
      {"br ;q=1 , gzip ;q=0.8", true},
      {"gzip;;q=1", true},
      /* Weights: at most three decimals, 0..1. */
      {"gzip;q=0", false},
      {"gzip;q=0.000", false},
      {"gzip;q=0.001", true},
      {"gzip;q=1", true},
      {"gzip;q=1.000", true},
      {"gzip;q=0.", false},
      {"gzip;Q=0.5", true},
      /* Malformed weights make their element not acceptable. */
      {"gzip;q=1.5", false},
      {"gzip;q=1.001", false},
      {"gzip;q=0.0001", false},
      {"gzip;q=abc", false},
      {"gzip;q=", false},
      {"gzip;q=-1", false},
      {"*;q=2", false},
      {"gzip;q=abc, gzip;q=0.5", true}, /* listed twice: the best weight */
      /* Coding names are case-insensitive; x-gzip is gzip. */
      {"GZip", true},
      {"X-GZIP", true},
      {"gzipx", false},
      /* "*" and identity. */
      {"*", true},
      {"*;q=0", false},
      {"gzip;q=0, *", false},
      {"identity", false},
      {"identity;q=0, gzip", true},
      {"gzip;q=0.5, identity", false}, /* identity preferred */
      {"gzip, identity;q=0.5", true},
      {"IDENTITY;q=0.000, *", true},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *targets[] = {"/app.js", "/hello.txt", "/file"};
    for (size_t t = 0; t < 3; t++) {
      char req[512];
      snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nAccept-Encoding:%s\r\n\r\n",
               targets[t], cases[i].value);
      resp r;
      get(f, req, &r);
      if (r.status != 200) fail_msg("'%s' %s: status %d", cases[i].value, targets[t], r.status);
      bool gz = t == 0 && cases[i].gzip;
      expect_hdr(&r, "Content-Encoding", gz ? "gzip" : NULL);
      if (t == 0)
        assert_string_equal(r.body, gz ? "\x1f\x8b\x08 fake gzip bytes" : "console.log('plain');\n");
      done(&r);
    }
  }
  /* The same values as repeated fields of one request: the lists join. */
  resp r;
  get(f, REQ("GET", "/app.js", "Accept-Encoding: ,\r\nAccept-Encoding: , gzip;q=0.1\r\n"), &r);
  expect_hdr(&r, "Content-Encoding", "gzip");
  done(&r);
}

static void test_options(void **state) {
  fixture *f = *state;
  resp r;
  char p404[400];
  sub(p404, sizeof(p404), f->base, "outside/404.html");
  f->opts.page404 = p404;
  f->opts.extra_headers = "X-Served-By: cymg\r\nCache-Control: max-age=60\r\n";
  f->opts.mime_types = "foo=application/x-foo,txt=text/x-mine";
  get(f, REQ("GET", "/nope", ""), &r);
  assert_int_equal(r.status, 404);
  assert_string_equal(r.body, "<h1>custom not found</h1>\n");
  expect_hdr(&r, "Content-Type", "text/html; charset=utf-8");
  expect_hdr(&r, "X-Served-By", "cymg");
  done(&r);
  get(f, REQ("GET", "/../outside/secret.txt", ""), &r);
  assert_int_equal(r.status, 404);
  assert_string_equal(r.body, "<h1>custom not found</h1>\n");
  done(&r);
  get(f, REQ("GET", "/data.foo", ""), &r);
  expect_hdr(&r, "Content-Type", "application/x-foo");
  expect_hdr(&r, "X-Served-By", "cymg");
  expect_hdr(&r, "Cache-Control", "max-age=60");
  done(&r);
  get(f, REQ("GET", "/hello.txt", ""), &r);
  expect_hdr(&r, "Content-Type", "text/x-mine");
  done(&r);
  get(f, REQ("GET", "/file", ""), &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "Hello, world\n");
  expect_hdr(&r, "Content-Type", "text/x-mine");
  done(&r);
  get(f, REQ("GET", "/file", "Range: bytes=1-2\r\n"), &r);
  assert_int_equal(r.status, 206);
  assert_string_equal(r.body, "el");
  done(&r);
  get(f, REQ("GET", "/nofile", ""), &r);
  assert_int_equal(r.status, 404);
  done(&r);
}

static void test_keepalive(void **state) {
  fixture *f = *state;
  int fd = raw_connect(f->port);
  resp r;
  exchange(f, fd, REQ("GET", "/hello.txt", ""), &r);
  assert_int_equal(r.status, 200);
  assert_false(r.closed);
  done(&r);
  exchange(f, fd, REQ("GET", "/sub/x.css", ""), &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "body{}");
  expect_hdr(&r, "Content-Type", "text/css; charset=utf-8");
  done(&r);
  exchange(f, fd, REQ("GET", "/missing", ""), &r);
  assert_int_equal(r.status, 404);
  done(&r);
  exchange(f, fd, REQ("GET", "/hello.txt", "Range: bytes=0-0\r\n"), &r);
  assert_int_equal(r.status, 206);
  done(&r);
  close(fd);
}

/* ---- with curl ---- */

static int curl(fixture *f, char *out, size_t cap, const char *const *args) {
  return run_curl(f->mgr, out, cap, args);
}

static void test_curl(void **state) {
  fixture *f = *state;
  char url[512], out[65536];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", f->port);
  char u[600];
  snprintf(u, sizeof(u), "%s/hello.txt", url);
  int rc = curl(f, out, sizeof(out), (const char *const[]){u, NULL});
  if (rc == -1) {
    print_message("curl not installed: skipped\n");
    return;
  }
  assert_int_equal(rc, 0);
  assert_string_equal(out, "Hello, world\n");
  assert_int_equal(curl(f, out, sizeof(out), (const char *const[]){"-r", "7-11", u, NULL}), 0);
  assert_string_equal(out, "world");
  /* Both files on one connection: curl reuses it (one connect, then none). */
  snprintf(u, sizeof(u), "%s/{hello.txt,sub/x.css}", url);
  assert_int_equal(curl(f, out, sizeof(out), (const char *const[]){u, NULL}), 0);
  assert_string_equal(out, "Hello, world\nbody{}");
  assert_int_equal(curl(f, out, sizeof(out),
                        (const char *const[]){"-o", "/dev/null", "-w", "%{num_connects}", u, NULL}),
                   0);
  assert_string_equal(out, "10");
  /* -z sends If-Modified-Since with the file's own date: 304, no body. */
  snprintf(u, sizeof(u), "%s/hello.txt", url);
  assert_int_equal(curl(f, out, sizeof(out),
                        (const char *const[]){"-z", f->file, "-w", "%{http_code}", u, NULL}),
                   0);
  assert_string_equal(out, "304");
  static const char *const bad[] = {"/../outside/secret.txt", "/%2e%2e/outside/secret.txt",
                                    "/sub/../../outside/secret.txt", "/escape.txt",
                                    "/..%2foutside/secret.txt"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(u, sizeof(u), "%s%s", url, bad[i]);
    assert_int_equal(curl(f, out, sizeof(out),
                          (const char *const[]){"--path-as-is", "-w", "%{http_code}", u, NULL}),
                     0);
    if (strstr(out, "404") == NULL || strstr(out, "SECRET")) fail_msg("%s: %s", bad[i], out);
  }
  snprintf(u, sizeof(u), "%s/sub", url);
  assert_int_equal(
      curl(f, out, sizeof(out),
           (const char *const[]){"-L", "-w", "%{http_code} %{url_effective}", u, NULL}),
      0);
  assert_non_null(strstr(out, "403 "));
  assert_non_null(strstr(out, "/sub/"));
}

/* The tests that serve files, run again without openat2. */
static const struct CMUnitTest file_tests[] = {
    cmocka_unit_test_setup_teardown(test_get_and_head, setup, teardown),
    cmocka_unit_test_setup_teardown(test_conditional, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
    cmocka_unit_test_setup_teardown(test_traversal, setup, teardown),
    cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
    cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
    cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_accept_encoding_lists, setup, teardown),
    cmocka_unit_test_setup_teardown(test_options, setup, teardown),
    cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
};

/* Runs file_tests in a child where openat2 fails with ENOSYS. Returns the
 * number of failures (0 when the fallback cannot be forced here). */
static int run_without_openat2(void) {
#if defined(__linux__) && defined(SYS_openat2)
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The filter compares the native system call number only: this process
     * makes no calls through another ABI. */
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
      printf("seccomp unavailable (%s): realpath fallback not tested\n", strerror(errno));
      _exit(0);
    }
    errno = 0;
    if (syscall(SYS_openat2, AT_FDCWD, ".", NULL, 0) != -1 || errno != ENOSYS) _exit(99);
    _exit(cmocka_run_group_tests_name("static files without openat2", file_tests, NULL, NULL));
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st)) return 1;
  if (WEXITSTATUS(st) == 99) fprintf(stderr, "openat2 was not refused in the child\n");
  return WEXITSTATUS(st);
#else
  return 0; /* the realpath checks are the only ones here, tested above */
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_get_and_head, setup, teardown),
      cmocka_unit_test_setup_teardown(test_conditional, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_big_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_traversal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
      cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_symlink_swap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_accept_encoding_lists, setup, teardown),
      cmocka_unit_test_setup_teardown(test_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
      cmocka_unit_test_setup_teardown(test_curl, setup, teardown),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  return failed + run_without_openat2();
}
