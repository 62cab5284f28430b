/* multipart/form-data: the iterator over whole bodies, and the incremental parser
 * behind uploads fed at every split point and byte by byte, which must see the
 * same parts and the same outcome as the iterator. Inputs are copied into
 * exactly-sized heap buffers so ASan catches any over-read. Then
 * cymg_http_upload() over loopback with curl -F and a raw socket.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include <dirent.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "http_test.h"
#include "cymg/error.h"
#include "http/static_internal.h"

#define MAXP 8
typedef struct parts {
  int rc; /* 0: closing delimiter reached; else the error */
  size_t n;
  char name[MAXP][64], filename[MAXP][64], headers[MAXP][256], body[MAXP][256];
  size_t body_len[MAXP];
  bool open; /* incremental: a part began and did not end */
} parts;

/* Long header blocks (limit tests) are compared by their first bytes. */
static void copy_str(char *dst, size_t cap, cymg_str s) {
  size_t n = s.len < cap ? s.len : cap - 1;
  memcpy(dst, s.buf, n);
  dst[n] = '\0';
}

static void iterate(const char *in, size_t n, const char *boundary, parts *r) {
  memset(r, 0, sizeof(*r));
  char *b = malloc(n ? n : 1);
  assert_non_null(b);
  memcpy(b, in, n);
  cymg_http_part part;
  int64_t ofs = 0;
  for (;;) {
    ofs = cymg_http_multipart_next(cymg_str_n(b, n), cymg_str_c(boundary), ofs, &part);
    if (ofs <= 0) break;
    assert_true(r->n < MAXP);
    copy_str(r->name[r->n], 64, part.name);
    copy_str(r->filename[r->n], 64, part.filename);
    copy_str(r->headers[r->n], 256, part.headers);
    assert_true(part.body.len <= 256);
    memcpy(r->body[r->n], part.body.buf, part.body.len);
    r->body_len[r->n] = part.body.len;
    r->n++;
  }
  r->rc = (int)ofs;
  free(b);
}

static int on_begin(void *ctx, const cymg_http_part *p) {
  parts *r = ctx;
  assert_false(r->open);
  assert_true(r->n < MAXP);
  assert_int_equal(p->body.len, 0);
  copy_str(r->name[r->n], 64, p->name);
  copy_str(r->filename[r->n], 64, p->filename);
  copy_str(r->headers[r->n], 256, p->headers);
  r->body_len[r->n] = 0;
  r->open = true;
  return 0;
}

static int on_data(void *ctx, const char *p, size_t n) {
  parts *r = ctx;
  assert_true(r->open && n > 0);
  assert_true(r->body_len[r->n] + n <= 256);
  memcpy(r->body[r->n] + r->body_len[r->n], p, n);
  r->body_len[r->n] += n;
  return 0;
}

static int on_end(void *ctx) {
  parts *r = ctx;
  assert_true(r->open);
  r->open = false;
  r->n++;
  return 0;
}

static const cymg__mp_cb cbs = {on_begin, on_data, on_end};

/* Feeds pieces ending at cuts[] (then the rest), each in its own heap buffer. */
static void incremental(const char *in, size_t n, const char *boundary, const size_t *cuts,
                        size_t ncuts, parts *r) {
  memset(r, 0, sizeof(*r));
  cymg__mp *mp = malloc(sizeof(*mp));
  assert_non_null(mp);
  assert_int_equal(cymg__mp_init(mp, cymg_str_c(boundary), &cbs, r), 0);
  size_t pos = 0;
  int rc = 0;
  for (size_t i = 0; i <= ncuts && rc == 0; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    char *b = malloc(to - pos + 1);
    assert_non_null(b);
    memcpy(b, in + pos, to - pos);
    rc = cymg__mp_feed(mp, b, to - pos);
    free(b);
    pos = to;
  }
  r->rc = cymg__mp_finish(mp);
  if (rc != 0) assert_int_equal(r->rc, rc);
  free(mp);
}

static void same(const parts *a, const parts *b, const char *how, size_t at) {
  bool ok = a->rc == b->rc && a->n == b->n;
  for (size_t i = 0; ok && i < a->n; i++) {
    ok = strcmp(a->name[i], b->name[i]) == 0 && strcmp(a->filename[i], b->filename[i]) == 0 &&
         strcmp(a->headers[i], b->headers[i]) == 0 && a->body_len[i] == b->body_len[i] &&
         memcmp(a->body[i], b->body[i], a->body_len[i]) == 0;
  }
  if (!ok) fail_msg("%s at %zu: rc %d/%d parts %zu/%zu", how, at, a->rc, b->rc, a->n, b->n);
}

/* Parses with the iterator, then incrementally whole, at every split, at every
 * pair of splits for short inputs, and byte by byte; all must agree. */
static void parse_all(const char *in, size_t n, const char *boundary, parts *r) {
  iterate(in, n, boundary, r);
  parts *x = malloc(sizeof(*x));
  assert_non_null(x);
  incremental(in, n, boundary, NULL, 0, x);
  same(r, x, "whole", 0);
  for (size_t c = 0; c <= n; c++) {
    incremental(in, n, boundary, &c, 1, x);
    same(r, x, "split", c);
  }
  if (n <= 160) {
    for (size_t c1 = 0; c1 <= n; c1++) {
      for (size_t c2 = c1; c2 <= n; c2++) {
        size_t cuts[2] = {c1, c2};
        incremental(in, n, boundary, cuts, 2, x);
        same(r, x, "two splits", c1 * 1000 + c2);
      }
    }
  }
  size_t *cuts = malloc((n + 1) * sizeof(*cuts));
  assert_non_null(cuts);
  for (size_t i = 0; i < n; i++) cuts[i] = i + 1;
  incremental(in, n, boundary, cuts, n, x);
  same(r, x, "bytes", 0);
  free(cuts);
  free(x);
}

#define PARSE(lit, bnd, r) parse_all(lit, sizeof(lit) - 1, bnd, r)

static void assert_part(const parts *r, size_t i, const char *name, const char *filename,
                        const char *body, size_t body_len) {
  assert_true(i < r->n);
  assert_string_equal(r->name[i], name);
  assert_string_equal(r->filename[i], filename);
  assert_int_equal(r->body_len[i], body_len);
  assert_memory_equal(r->body[i], body, body_len);
}

static void test_fields_and_files(void **state) {
  (void)state;
  parts r;
  PARSE(
      "--XyZ\r\n"
      "Content-Disposition: form-data; name=\"title\"\r\n"
      "\r\n"
      "Hello\r\n"
      "--XyZ\r\n"
      "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
      "Content-Type: text/plain\r\n"
      "\r\n"
      "line1\r\nline2\r\n\r\n"
      "--XyZ\r\n"
      "Content-Disposition: form-data; name=bin; filename=b.bin\r\n"
      "\r\n"
      "\x00\x01\r\x02\n\r\n-\r\n--\r\n--Xy\r\n--XyY\xff"
      "\r\n--XyZ--\r\n",
      "XyZ", &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 3);
  assert_part(&r, 0, "title", "", "Hello", 5);
  assert_string_equal(r.headers[0], "Content-Disposition: form-data; name=\"title\"\r\n");
  assert_part(&r, 1, "file", "a.txt", "line1\r\nline2\r\n", 14);
  assert_string_equal(r.headers[1],
                      "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
                      "Content-Type: text/plain\r\n");
  /* A binary body with CRs, LFs and near-delimiters is passed through exactly. */
  assert_part(&r, 2, "bin", "b.bin", "\x00\x01\r\x02\n\r\n-\r\n--\r\n--Xy\r\n--XyY\xff", 26);
}

static void test_empty_parts(void **state) {
  (void)state;
  parts r;
  /* No headers at all, an empty body, an empty filename (a browser's file input
   * with no file chosen). */
  PARSE(
      "--b\r\n\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n"
      "\r\n\r\n--b--",
      "b", &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 2);
  assert_part(&r, 0, "", "", "", 0);
  assert_string_equal(r.headers[0], "");
  assert_part(&r, 1, "f", "", "", 0);
  /* Only a closing delimiter: no parts. */
  PARSE("--b--\r\n", "b", &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 0);
  PARSE("--b--", "b", &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 0);
}

static void test_preamble_epilogue_padding(void **state) {
  (void)state;
  parts r;
  PARSE(
      "This is a preamble.\r\n--b \t\r\nContent-Disposition: form-data; name=a\r\n\r\n1"
      "\r\n--b\t\r\n\r\n2\r\n--b--junk after\r\n--b\r\nmore",
      "b", &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 2);
  assert_part(&r, 0, "a", "", "1", 1);
  assert_part(&r, 1, "", "", "2", 1);
  /* A preamble that is just a CRLF; a "--b" inside the preamble not at a line
   * start is not a delimiter. */
  PARSE("\r\n--b\r\n\r\nx\r\n--b--", "b", &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 1);
  PARSE("x--b\r\n--b\r\n\r\ny\r\n--b--", "b", &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 1);
  assert_part(&r, 0, "", "", "y", 1);
}

static void test_boundary_in_data(void **state) {
  (void)state;
  parts r;
  /* The boundary text not at a line start is data. */
  PARSE("--b\r\n\r\nsee --b and x--b--\r\n-b\r\n--b--", "b", &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 1);
  assert_part(&r, 0, "", "", "see --b and x--b--\r\n-b", 22);
  /* At a line start but continued: forbidden by RFC 2046, so malformed. */
  PARSE("--b\r\n\r\nx\r\n--bb\r\n--b--", "b", &r);
  assert_int_equal(r.rc, CYMG_EPARSE);
  assert_int_equal(r.n, 1);
  /* A long boundary with a partial match right before the real one. */
  PARSE("--boundary123\r\n\r\n\r\n--boundary12\r\n\r\n--boundary123--", "boundary123", &r);
  assert_int_equal(r.rc, 0);
  assert_part(&r, 0, "", "", "\r\n--boundary12\r\n", 16);
}

static void test_malformed(void **state) {
  (void)state;
  parts r;
  static const char *const bad[] = {
      "", /* no delimiter at all */
      "no delimiter here",
      "--b", /* delimiter line unfinished */
      "--b-",
      "--b\r",
      "--b\r\n",               /* no header block */
      "--b\r\n\r\n",           /* body without a delimiter */
      "--b\r\n\r\nabc\r\n--b", /* missing close */
      "--b\r\n\r\nabc\r\n--b\r\n",
      "--b\r\n\r\nabc\r\n--b-x",
      "--b\nContent-Type: x\n\nabc\n--b--", /* bare LF delimiter lines */
      "--b\r\n\r\nabc\n--b--\r\n",          /* bare LF before the close */
      "--bx\r\n\r\n\r\n--b--",              /* boundary continued on the first line */
      "--b x\r\n\r\n\r\n--b--",             /* junk after padding */
      "--b\r\nNoColon\r\n\r\n\r\n--b--",    /* malformed header line */
      "--b\r\n Folded: x\r\n\r\n\r\n--b--",
      "--b\r\nA : x\r\n\r\n\r\n--b--",
      "--b\r\nA: x\0y\r\n\r\n\r\n--b--",
      "--b\r\nA: x\rY\r\n\r\n\r\n--b--",
      "--b\r\nContent-Disposition: form-data; name=\"unterminated\r\n\r\n\r\n--b--",
      "--b\r\nContent-Disposition: form-data; filename=\"x\r\n\r\n\r\n--b--",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t n = strlen(bad[i]);
    if (i == 17) n = sizeof("--b\r\nA: x\0y\r\n\r\n\r\n--b--") - 1;
    parse_all(bad[i], n, "b", &r);
    if (r.rc != CYMG_EPARSE) fail_msg("input %zu: rc %d", i, r.rc);
    assert_true(r.n <= 1); /* a part may come before a missing close */
  }
}

static void test_limits(void **state) {
  (void)state;
  parts r;
  /* Too many header fields in one part. */
  cymg_buf b = {0};
  assert_true(cymg_buf_printf(&b, "--b\r\n") > 0);
  for (int i = 0; i < CYMG__MP_MAX_FIELDS + 1; i++)
    assert_true(cymg_buf_printf(&b, "X-%d: y\r\n", i) > 0);
  assert_true(cymg_buf_printf(&b, "\r\nz\r\n--b--") > 0);
  iterate(b.buf, b.len, "b", &r);
  assert_int_equal(r.rc, CYMG_EPARSE);
  parts x;
  incremental(b.buf, b.len, "b", NULL, 0, &x);
  same(&r, &x, "whole", 0);
  cymg_buf_free(&b);
  /* A header block at the limit is read, one byte more is not. */
  for (int extra = 0; extra < 2; extra++) {
    assert_true(cymg_buf_printf(&b, "--b\r\nX: ") > 0);
    size_t fill = CYMG__MP_MAX_HEAD - 7 + (size_t)extra; /* "X: " CRLF CRLF */
    for (size_t i = 0; i < fill; i++) assert_int_equal(cymg_buf_append(&b, "v", 1), 0);
    assert_true(cymg_buf_printf(&b, "\r\n\r\nz\r\n--b--") > 0);
    iterate(b.buf, b.len, "b", &r);
    assert_int_equal(r.rc, extra ? CYMG_EPARSE : 0);
    assert_int_equal(r.n, extra ? 0 : 1);
    size_t cuts[3] = {5, 100, b.len - 9};
    incremental(b.buf, b.len, "b", cuts, 3, &x);
    same(&r, &x, "limit", (size_t)extra);
    cymg_buf_free(&b);
  }
}

static void test_boundaries(void **state) {
  (void)state;
  cymg_http_part part;
  cymg_str body = cymg_str_c("--b\r\n\r\n\r\n--b--");
  assert_int_equal(cymg_http_multipart_next(body, cymg_str_c(""), 0, &part), CYMG_EPARSE);
  assert_int_equal(cymg_http_multipart_next(body, cymg_str_c("a b "), 0, &part), CYMG_EPARSE);
  assert_int_equal(cymg_http_multipart_next(body, cymg_str_c("a\"b"), 0, &part), CYMG_EPARSE);
  assert_int_equal(cymg_http_multipart_next(body, cymg_str_c("b"), -1, &part), CYMG_EPARSE);
  assert_int_equal(cymg_http_multipart_next(body, cymg_str_c("b"), 99, &part), CYMG_EPARSE);
  assert_int_equal(cymg_http_multipart_next(body, cymg_str_c("b"), 0, &part), 12);
  assert_int_equal(cymg_http_multipart_next(body, cymg_str_c("b"), 12, &part), 0);
  char b70[71], b71[72];
  memset(b70, 'x', 70);
  b70[70] = '\0';
  memset(b71, 'x', 71);
  b71[71] = '\0';
  assert_int_equal(cymg__mp_check_boundary(cymg_str_c(b70)), 0);
  assert_int_equal(cymg__mp_check_boundary(cymg_str_c(b71)), CYMG_EPARSE);
  assert_int_equal(cymg__mp_check_boundary(cymg_str_c("'()+_,-./:=? a")), 0);
  cymg__mp mp;
  assert_int_equal(cymg__mp_init(&mp, cymg_str_c(b71), &cbs, NULL), CYMG_EPARSE);
  assert_int_equal(cymg__mp_feed(&mp, "x", 1), CYMG_EPARSE);
  /* The longest boundary, split at every byte. */
  cymg_buf in = {0};
  assert_true(cymg_buf_printf(
                  &in, "--%s\r\nContent-Disposition: form-data; name=x\r\n\r\n\r\n--%.69s\r\n--%s--",
                  b70, b70, b70) > 0);
  parts r;
  parse_all(in.buf, in.len, b70, &r);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.body_len[0], 73);
  cymg_buf_free(&in);
}

static void test_from_message(void **state) {
  (void)state;
  static const char req[] =
      "POST /up HTTP/1.1\r\nHost: h\r\n"
      "Content-Type: multipart/form-data; boundary=\"--q r\"\r\n"
      "Content-Length: 51\r\n\r\n"
      "----q r\r\nContent-Disposition: form-data; name=k\r\n\r\nv\r\n----q r--";
  cymg_http_msg msg;
  cymg_http_header h[8];
  int n = cymg_http_parse_request(req, sizeof(req) - 1, &msg, h, 8, NULL);
  assert_true(n > 0);
  msg.body = cymg_str_n(req + n, sizeof(req) - 1 - (size_t)n);
  cymg_http_part part;
  int64_t ofs = cymg_http_next_multipart(&msg, 0, &part);
  assert_true(ofs > 0);
  assert_int_equal(part.name.len, 1);
  assert_memory_equal(part.name.buf, "k", 1);
  assert_int_equal(part.body.len, 1);
  assert_int_equal(cymg_http_next_multipart(&msg, ofs, &part), 0);
  /* Without a multipart Content-Type or a boundary there is nothing to parse. */
  h[1].value = cymg_str_c("multipart/form-data");
  assert_int_equal(cymg_http_next_multipart(&msg, 0, &part), CYMG_EPARSE);
  h[1].value = cymg_str_c("text/plain; boundary=x");
  assert_int_equal(cymg_http_next_multipart(&msg, 0, &part), CYMG_EPARSE);
  h[1].value = cymg_str_c("Multipart/Mixed; Boundary=--q");
  assert_int_equal(cymg_http_next_multipart(&msg, 0, &part), CYMG_EPARSE); /* no "--q" delim */
  h[1].name = cymg_str_c("X-Other");
  assert_int_equal(cymg_http_next_multipart(&msg, 0, &part), CYMG_EPARSE);
  assert_int_equal(cymg_http_next_multipart(NULL, 0, &part), CYMG_EPARSE);
  cymg_str bnd;
  assert_int_equal(cymg__mp_boundary(cymg_str_c(" multipart/form-data;boundary=abc "), &bnd), 0);
  assert_int_equal(bnd.len, 3);
}

static int stop_at_data(void *ctx, const char *p, size_t n) {
  (void)ctx;
  (void)p;
  (void)n;
  return CYMG_ELIMIT;
}

static void test_callback_error(void **state) {
  (void)state;
  static const cymg__mp_cb stop = {NULL, stop_at_data, NULL};
  cymg__mp mp;
  assert_int_equal(cymg__mp_init(&mp, cymg_str_c("b"), &stop, NULL), 0);
  assert_int_equal(cymg__mp_feed(&mp, "--b\r\n\r\n", 7), 0);
  assert_true(cymg__mp_in_part(&mp));
  assert_int_equal(cymg__mp_feed(&mp, "\r", 1), 0); /* held back: could start "\r\n--b" */
  assert_int_equal(cymg__mp_feed(&mp, "yz", 2), CYMG_ELIMIT);
  assert_int_equal(cymg__mp_feed(&mp, "\r\n--b--", 7), CYMG_ELIMIT); /* sticky */
  assert_int_equal(cymg__mp_finish(&mp), CYMG_ELIMIT);
}

/* ================================================= uploads over sockets ==== */

typedef struct fixture {
  cymg_mgr *mgr;
  cymg_conn *lsn;
  uint16_t port;
  char dir[256]; /* where uploads go */
  char src[300]; /* files curl sends */
  uint64_t max;
  int upload_rc, msgs, errors, closes, others;
  char last_error[256];
  bool bad_userdata;
} fixture;

static void srv_fn(cymg_conn *c, int ev, void *ev_data) {
  fixture *f = cymg_conn_userdata(c);
  /* The upload passes events on with the user's pointer in place. */
  if (f == NULL || f->mgr != cymg_conn_mgr(c)) {
    ((fixture *)cymg_mgr_userdata(cymg_conn_mgr(c)))->bad_userdata = true;
    return;
  }
  if (ev == CYMG_EV_HTTP_HDRS) {
    cymg_http_msg *m = ev_data;
    if (cymg_str_starts(m->uri, cymg_str_c("/upload"))) {
      f->upload_rc = cymg_http_upload(c, m, f->dir, f->max);
      if (f->upload_rc != 0 && f->upload_rc != CYMG_ELIMIT)
        cymg_http_reply(c, 415, NULL, "not an upload: %d\n", f->upload_rc);
    }
  } else if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *m = ev_data;
    f->msgs++;
    if (cymg_str_eq(m->uri, cymg_str_c("/upload/quiet"))) return; /* the helper answers */
    cymg_http_reply(c, 201, NULL, "stored %.*s\n", (int)m->uri.len, m->uri.buf);
  } else if (ev == CYMG_EV_ERROR) {
    f->errors++;
    snprintf(f->last_error, sizeof(f->last_error), "%s", (const char *)ev_data);
  } else if (ev == CYMG_EV_CLOSE) {
    f->closes++;
  } else if (ev == CYMG_EV_READ) {
    f->others++; /* body pieces must not reach the user */
  }
}

static int up_setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  const char *tmp = getenv("TMPDIR");
  snprintf(f->dir, sizeof(f->dir), "%s/cymg-upload-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->src, sizeof(f->src), "%s-src", f->dir);
  assert_int_equal(mkdir(f->src, 0755), 0);
  f->upload_rc = 1;
  assert_int_equal(cymg_mgr_new(&f->mgr, CYMG_BACKEND_AUTO), 0);
  cymg_mgr_set_userdata(f->mgr, f);
  assert_int_equal(cymg_http_listen(f->mgr, "http://127.0.0.1:0", srv_fn, f, &f->lsn), 0);
  f->port = cymg_conn_local(f->lsn)->port;
  *state = f;
  return 0;
}

static int up_teardown(void **state) {
  fixture *f = *state;
  for (cymg_conn *c = cymg_mgr_first(f->mgr); c; c = cymg_conn_next(c)) cymg_close(c);
  cymg_mgr_poll(f->mgr, 0);
  ASSERT_MGR_CLEAN(f->mgr);
  cymg_mgr_free(f->mgr);
  assert_false(f->bad_userdata);
  assert_int_equal(f->others, 0);
  char cmd[700];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", f->dir, f->src);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* Names in the upload folder, sorted, joined with ' ' (temporaries included). */
static void list_dir(const char *dir, char *out, size_t cap) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  char names[32][300];
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    assert_true(n < 32);
    snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
  size_t len = 0;
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    int k = snprintf(out + len, cap - len, "%s%s", i ? " " : "", names[i]);
    assert_true(k >= 0 && (size_t)k < cap - len);
    len += (size_t)k;
  }
}

static void expect_file(const char *dir, const char *name, const void *data, size_t len) {
  char path[600];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) fail_msg("missing %s", path);
  char *buf = malloc(len + 1);
  assert_int_equal(fread(buf, 1, len + 1, fp), len);
  fclose(fp);
  assert_memory_equal(buf, data, len);
  free(buf);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len) {
  char path[600];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  fclose(fp);
}

static int curl(fixture *f, char *out, size_t cap, const char *const *args) {
  return run_curl(f->mgr, out, cap, args);
}

static void test_upload_curl(void **state) {
  fixture *f = *state;
  /* Binary content with CRLFs and dashes, so a delimiter-like run is in it. */
  char bin[70000];
  for (size_t i = 0; i < sizeof(bin); i++) bin[i] = (char)(i * 7 + i / 251);
  memcpy(bin + 1000, "\r\n--\r\n------", 12);
  write_file(f->src, "b.bin", bin, sizeof(bin));
  write_file(f->src, "a.txt", "first file\n", 11);
  char url[128], a[400], b[400], out[4096];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/upload", f->port);
  snprintf(a, sizeof(a), "one=@%s/a.txt", f->src);
  snprintf(b, sizeof(b), "two=@%s/b.bin;filename=../../evil/b.bin", f->src);
  int rc = curl(f, out, sizeof(out),
                (const char *const[]){"-F", a, "-F", b, "-F", "field=value", url, NULL});
  if (rc == -1) {
    print_message("curl not installed: skipped\n");
    return;
  }
  assert_int_equal(rc, 0);
  assert_string_equal(out, "stored /upload\n");
  assert_int_equal(f->upload_rc, 0);
  assert_int_equal(f->msgs, 1);
  assert_int_equal(f->errors, 0);
  char names[2048];
  list_dir(f->dir, names, sizeof(names));
  assert_string_equal(names, "a.txt b.bin"); /* the path was dropped, no temporaries */
  expect_file(f->dir, "a.txt", "first file\n", 11);
  expect_file(f->dir, "b.bin", bin, sizeof(bin));
  /* Too large: 413, nothing left behind. Content-Length says so at once. */
  f->max = 50000;
  snprintf(a, sizeof(a), "big=@%s/b.bin", f->src);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/upload/big", f->port);
  assert_int_equal(
      curl(f, out, sizeof(out),
           (const char *const[]){"-F", a, "-o", "/dev/null", "-w", "%{http_code}", url, NULL}),
      0);
  assert_string_equal(out, "413");
  assert_int_equal(f->upload_rc, CYMG_ELIMIT);
  list_dir(f->dir, names, sizeof(names));
  assert_string_equal(names, "a.txt b.bin");
  /* Chunked, so only the running count can stop it: the file part is refused
   * partway and its temporary file deleted. */
  assert_int_equal(unlink(strcat(strcpy(out, f->dir), "/b.bin")), 0);
  f->errors = 0;
  rc = curl(f, out, sizeof(out),
            (const char *const[]){"-F", a, "-H", "Transfer-Encoding: chunked", "-o", "/dev/null",
                                  "-w", "%{http_code}", url, NULL});
  assert_true(rc == 0 || rc == 55 || rc == 56); /* the server closes while curl sends */
  if (rc == 0) assert_string_equal(out, "413");
  assert_int_equal(f->upload_rc, 0);
  assert_int_equal(f->errors, 1);
  assert_non_null(strstr(f->last_error, "limit"));
  list_dir(f->dir, names, sizeof(names));
  assert_string_equal(names, "a.txt");
  /* The handler does not answer: the helper does. */
  f->max = 0;
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/upload/quiet", f->port);
  snprintf(a, sizeof(a), "x=@%s/a.txt;filename=c.txt", f->src);
  snprintf(b, sizeof(b), "y=@%s/a.txt;filename=d.txt", f->src);
  assert_int_equal(curl(f, out, sizeof(out), (const char *const[]){"-F", a, "-F", b, url, NULL}),
                   0);
  assert_string_equal(out, "2 files saved\n");
  list_dir(f->dir, names, sizeof(names));
  assert_string_equal(names, "a.txt c.txt d.txt");
}

#define BODY_HEAD(b) \
  "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=" b "\r\n"

static char rbuf[1 << 16];

/* Sends a multipart request in pieces of `step` bytes, letting the server read
 * each one on its own, and reads the answer. */
static int send_upload(fixture *f, int fd, const char *boundary, const char *body, size_t step,
                       bool *closed) {
  char head[512];
  size_t blen = strlen(body);
  int hl =
      snprintf(head, sizeof(head), BODY_HEAD("%s") "Content-Length: %zu\r\n\r\n", boundary, blen);
  raw_send(f->mgr, fd, head, (size_t)hl);
  for (size_t off = 0; off < blen; off += step) {
    raw_send(f->mgr, fd, body + off, blen - off < step ? blen - off : step);
    for (int i = 0; i < 2; i++) cymg_mgr_poll(f->mgr, 1);
  }
  size_t len = raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, closed);
  int status = 0;
  assert_true(len > 12);
  sscanf(rbuf, "HTTP/1.1 %d", &status);
  return status;
}

static void test_upload_raw(void **state) {
  fixture *f = *state;
  static const char body[] =
      "preamble\r\n--XyZ\r\n"
      "Content-Disposition: form-data; name=\"f\"; filename=\"C:\\\\Users\\\\me\\\\s.txt\"\r\n"
      "\r\n"
      "split \r\n--Xy\r\n--X across\r\n-"
      "\r\n--XyZ\r\n"
      "Content-Disposition: form-data; name=\"e\"; filename=\"\"\r\n\r\n"
      "\r\n--XyZ--\r\n";
  /* One byte at a time: every delimiter is split at every position. */
  int fd = raw_connect(f->port);
  bool closed;
  assert_int_equal(send_upload(f, fd, "XyZ", body, 1, &closed), 201);
  assert_false(closed);
  assert_int_equal(f->upload_rc, 0);
  char names[1024];
  list_dir(f->dir, names, sizeof(names));
  assert_string_equal(names, "s.txt"); /* empty filename="" part skipped */
  expect_file(f->dir, "s.txt", "split \r\n--Xy\r\n--X across\r\n-", 27);
  /* Keep-alive: the connection is the user's again. */
  const char *get = "GET /after HTTP/1.1\r\nHost: t\r\n\r\n";
  raw_send(f->mgr, fd, get, strlen(get));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "stored /after"));
  assert_int_equal(f->msgs, 2);
  close(fd);

  /* Malformed (no closing delimiter): 400, the user hears why, no file. */
  static const char bad[] =
      "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t.txt\""
      "\r\n\r\ndata\r\n--XyZ";
  fd = raw_connect(f->port);
  assert_int_equal(send_upload(f, fd, "XyZ", bad, 7, &closed), 400);
  assert_true(raw_wait_closed(f->mgr, fd));
  close(fd);
  assert_int_equal(f->errors, 1);
  assert_non_null(strstr(f->last_error, "malformed"));
  list_dir(f->dir, names, sizeof(names));
  assert_string_equal(names, "s.txt");

  /* Unsafe names fail the whole upload, including files already written. */
  static const char *const unsafe[] = {"..", ".", "x/", ".profile", "a\\..", "tab\there"};
  for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
    char b2[512];
    snprintf(b2, sizeof(b2),
             "--b\r\nContent-Disposition: form-data; name=a; filename=ok.txt\r\n\r\nfine"
             "\r\n--b\r\nContent-Disposition: form-data; name=a; filename=\"%s\"\r\n\r\nbad"
             "\r\n--b--",
             unsafe[i]);
    fd = raw_connect(f->port);
    assert_int_equal(send_upload(f, fd, "b", b2, 4096, &closed), 400);
    close(fd);
    list_dir(f->dir, names, sizeof(names));
    assert_string_equal(names, "s.txt");
  }
  /* Not multipart: the helper refuses and leaves the request to the handler. */
  fd = raw_connect(f->port);
  const char *post =
      "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
      "Content-Length: 2\r\n\r\nhi";
  raw_send(f->mgr, fd, post, strlen(post));
  raw_read(f->mgr, fd, rbuf, sizeof(rbuf), 1, &closed);
  assert_non_null(strstr(rbuf, "HTTP/1.1 415"));
  assert_int_equal(f->upload_rc, CYMG_EPARSE);
  close(fd);
  /* An unusable folder. */
  strcat(f->dir, "/nope");
  fd = raw_connect(f->port);
  assert_int_equal(send_upload(f, fd, "b", "--b--", 5, &closed), 415);
  assert_int_equal(f->upload_rc, -ENOENT);
  f->dir[strlen(f->dir) - 5] = '\0';
  close(fd);
}

static void test_upload_args(void **state) {
  fixture *f = *state;
  (void)f;
  cymg_http_msg m;
  memset(&m, 0, sizeof(m));
  assert_int_equal(cymg_http_upload(NULL, &m, "/tmp", 0), CYMG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fields_and_files),
      cmocka_unit_test(test_empty_parts),
      cmocka_unit_test(test_preamble_epilogue_padding),
      cmocka_unit_test(test_boundary_in_data),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_boundaries),
      cmocka_unit_test(test_from_message),
      cmocka_unit_test(test_callback_error),
      cmocka_unit_test_setup_teardown(test_upload_curl, up_setup, up_teardown),
      cmocka_unit_test_setup_teardown(test_upload_raw, up_setup, up_teardown),
      cmocka_unit_test_setup_teardown(test_upload_args, up_setup, up_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
