/* End to end: arbitrary bytes from a peer through an accepted connection of an
 * HTTP listener into serve_dir over a small tree and a handler that echoes and
 * streams (see e2e.h for the input layout and what every iteration checks).
 *
 * ctl[0] bits 0-1 pick the listener:
 *   0  defaults: serve_dir over the tree
 *   1  small limits (1 KiB head, 8 fields, 4 KiB body): 413/431 paths
 *   2  serve_dir with a listing, page404, index_files, MIME overrides, extra
 *      headers
 *   3  defaults, with every reply saying Connection: close
 * Routes, on every listener (by the path's first segment):
 *   /echo     the body back in one reply          /chunk  the body back, chunked
 *   /stream   the body streamed (cymg_http_stream_body), its length answered
 *   /sse      two Server-Sent Events with the body as data, then the end
 *   /upload   cymg_http_upload into a scratch folder (emptied after each input)
 *   /form     multipart parts counted             /auth   credentials, a query var
 *   /file     serve_file of one file              /ws     WebSocket upgrade, echo
 *   anything else: serve_dir */
#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>

#include "cymg/cymg.h"
#include "e2e.h"

static cymg_mgr *mgr;
static cymg_conn *lsn[4];
static char root[256], updir[256], tmpdir[256], onefile[300], page404[300];

typedef struct cfg {
  int kind;
  cymg_http_serve_opts opts;
} cfg;
static cfg cfgs[4];

/* The streamed body under way (one connection at a time). */
static uint64_t streamed;
static bool streaming;

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  CHECK(n == 0 || fwrite(p, 1, n, f) == n);
  CHECK(fclose(f) == 0);
}

static void make_tree(void) {
  const char *t = getenv("TMPDIR");
  snprintf(tmpdir, sizeof(tmpdir), "%s/cymg-fuzz-XXXXXX", t && *t ? t : "/tmp");
  CHECK(mkdtemp(tmpdir) != NULL);
  snprintf(root, sizeof(root), "%s/www", tmpdir);
  snprintf(updir, sizeof(updir), "%s/up", tmpdir);
  CHECK(mkdir(root, 0755) == 0 && mkdir(updir, 0755) == 0);
  static const char html[] = "<!doctype html><title>t</title><p>index</p>\n";
  write_file(root, "index.html", html, sizeof(html) - 1);
  static const char a[] = "alpha alpha alpha alpha alpha alpha alpha alpha alpha alpha\n";
  write_file(root, "a.txt", a, sizeof(a) - 1);
  /* The bytes of a .gz sibling are sent as they are: any content will do. */
  static const uint8_t gz[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 'x', 'y', 'z'};
  write_file(root, "a.txt.gz", gz, sizeof(gz));
  write_file(root, "empty.txt", "", 0);
  write_file(root, "sp ace%20.js", "var x = 1;\n", 11);
  write_file(root, "404.html", "<p>not here</p>\n", 16);
  /* Larger than a socket buffer: the file pump runs over several writes. */
  size_t big_len = 300 * 1024;
  char *big = malloc(big_len);
  CHECK(big != NULL);
  for (size_t i = 0; i < big_len; i++) big[i] = (char) ('a' + i % 26);
  write_file(root, "big.bin", big, big_len);
  free(big);
  char sub[300];
  snprintf(sub, sizeof(sub), "%s/sub", root);
  CHECK(mkdir(sub, 0755) == 0);
  write_file(sub, "index.htm", "<p>sub</p>\n", 11);
  write_file(sub, "b.css", "p{}\n", 4);
  snprintf(sub, sizeof(sub), "%s/sub/list", root);
  CHECK(mkdir(sub, 0755) == 0);
  write_file(sub, "c.json", "{}\n", 3);
  write_file(sub, ".hidden", "h\n", 2);
  /* Symlinks: one inside the root, one leading out of it. */
  write_file(tmpdir, "outside.txt", "secret\n", 7);
  char link[300];
  snprintf(link, sizeof(link), "%s/in-link.txt", root);
  CHECK(symlink("a.txt", link) == 0);
  snprintf(link, sizeof(link), "%s/out-link.txt", root);
  CHECK(symlink("../outside.txt", link) == 0);
  snprintf(onefile, sizeof(onefile), "%s/a.txt", root);
  snprintf(page404, sizeof(page404), "%s/404.html", root);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void) st, (void) flag, (void) ftw;
  return remove(path);
}

static void empty_updir(void) {
  DIR *d = opendir(updir);
  CHECK(d != NULL);
  struct dirent *e;
  char path[600];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof(path), "%s/%s", updir, e->d_name);
    CHECK(unlink(path) == 0);
  }
  closedir(d);
}

static void at_exit(void) {
  cymg_mgr_free(mgr);
  if (tmpdir[0]) (void) nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool route(const cymg_http_msg *m, const char *name) {
  size_t n = strlen(name);
  return m->uri.len >= n && memcmp(m->uri.buf, name, n) == 0 &&
         (m->uri.len == n || m->uri.buf[n] == '/');
}

static const char *hdrs(const cfg *k) {
  return k->kind == 3 ? "Connection: close\r\nX-Fuzz: 1\r\n" : "X-Fuzz: 1\r\n";
}

/* What the layer promises about a whole message, checked on each one. */
static void check_msg(const cymg_http_msg *m) {
  CHECK(m->method.len > 0 && m->proto.len > 0 && m->head.len > 0);
  if (m->flags & CYMG_HTTP_F_STREAMED) {
    CHECK(m->body.len == 0);
    /* Ours (/stream) counted every piece; an upload's pieces went to it. */
    if (streaming && m->content_length >= 0) CHECK(streamed == (uint64_t) m->content_length);
  } else if (m->content_length >= 0) {
    CHECK(m->body.len == (uint64_t) m->content_length);
  }
  CHECK(!((m->flags & CYMG_HTTP_F_CHUNKED) && m->content_length >= 0));
}

static void on_msg(cymg_conn *c, cfg *k, cymg_http_msg *m) {
  check_msg(m);
  const char *h = hdrs(k);
  if (route(m, "/echo")) {
    (void) cymg_http_reply_data(c, 200, h, m->body.buf, m->body.len);
  } else if (route(m, "/chunk")) {
    size_t third = m->body.len / 3;
    if (cymg_http_reply_start(c, 200, h) == 0) {
      (void) cymg_http_chunk(c, m->body.buf, third);
      (void) cymg_http_chunk(c, m->body.buf + third, m->body.len - third);
      (void) cymg_http_printf_chunk(c, "[%zu]", m->body.len);
      (void) cymg_http_chunk(c, NULL, 0);
    }
  } else if (route(m, "/stream")) {
    (void) cymg_http_reply(c, 200, h, "%llu\n", (unsigned long long) streamed);
  } else if (route(m, "/sse")) {
    char data[256];
    size_t n = m->body.len < sizeof(data) - 1 ? m->body.len : sizeof(data) - 1;
    memcpy(data, m->body.buf, n);
    data[n] = '\0';
    if (cymg_http_reply_start(c, 200, "Content-Type: text/event-stream\r\n") == 0) {
      (void) cymg_http_sse(c, "tick", data);
      (void) cymg_http_sse(c, NULL, "line one\nline two\r\nthree");
      (void) cymg_http_chunk(c, NULL, 0);
    }
  } else if (route(m, "/form")) {
    int parts = 0;
    cymg_http_part p;
    for (int64_t ofs = 0; parts < 64 && (ofs = cymg_http_next_multipart(m, ofs, &p)) > 0;)
      parts++;
    (void) cymg_http_reply(c, 200, h, "%d parts\n", parts);
  } else if (route(m, "/auth")) {
    char user[64], pass[64], v[64];
    int rc = cymg_http_creds(m, user, sizeof(user), pass, sizeof(pass));
    int q = cymg_http_query_var(m, "q", v, sizeof(v));
    (void) cymg_http_reply(c, rc == 0 ? 200 : 401, h, "%d %d\n", rc, q);
  } else if (route(m, "/file")) {
    (void) cymg_http_serve_file(c, m, onefile, &k->opts);
  } else if (route(m, "/ws")) {
    (void) cymg_ws_upgrade(c, m, NULL);
  } else if (route(m, "/upload")) {
    /* Answered by the helper or in the MSG after it (it restored us). */
    (void) cymg_http_reply(c, 200, h, "uploaded\n");
  } else {
    (void) cymg_http_serve_dir(c, m, &k->opts);
  }
}

static void fn(cymg_conn *c, int ev, void *ev_data) {
  e2e_trace(ev, ev_data);
  cfg *k = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_HDRS) {
    cymg_http_msg *m = ev_data;
    streamed = 0;
    streaming = false;
    if (route(m, "/stream")) {
      streaming = cymg_http_stream_body(c) == 0;
    } else if (route(m, "/upload")) {
      (void) cymg_http_upload(c, m, updir, 64 * 1024);
    }
  } else if (ev == CYMG_EV_READ && streaming) {
    streamed += *(const size_t *) ev_data;
  } else if (ev == CYMG_EV_HTTP_MSG) {
    on_msg(c, k, ev_data);
    streaming = false;
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *wm = ev_data;
    (void) cymg_ws_send(c, wm->data.buf, wm->data.len, CYMG_WS_OPCODE(wm->flags));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (mgr == NULL) {
    mgr = e2e_mgr_new();
    make_tree();
    for (int i = 0; i < 4; i++) {
      cfgs[i].kind = i;
      cfgs[i].opts.root_dir = root;
      CHECK(cymg_http_listen(mgr, "http://127.0.0.1:0", fn, &cfgs[i], &lsn[i]) == 0);
    }
    CHECK(cymg_http_set_limits(lsn[1], 1024, 8, 4096) == 0);
    cfgs[2].opts.dir_listing = true;
    cfgs[2].opts.page404 = page404;
    cfgs[2].opts.index_files = "index.htm,default.html";
    cfgs[2].opts.mime_types = "txt=text/x-fuzz,json=application/x-fuzz";
    cfgs[2].opts.extra_headers = "X-Extra: 1\r\n";
    atexit(at_exit);
  }
  e2e_in in;
  if (e2e_in_parse(data, size, &in) < 0) return 0;
  int fd;
  uint64_t id = e2e_adopt(lsn[in.ctl & 3], &fd);
  e2e_write(mgr, id, fd, &in);
  e2e_finish(mgr, id, fd, &in);
  CHECK(cymg_mgr_count(mgr) == 4); /* the listeners alone */
  empty_updir();
  return 0;
}
