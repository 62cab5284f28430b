/* multipart/form-data (RFC 7578) over the multipart grammar of RFC 2046 §5.1.1:
 * a sans-I/O iterator over a whole body, and an incremental parser for bodies
 * that arrive in pieces. Both read a part's header fields with the HTTP field
 * parser, so header rules are the same as for message heads.
 *
 * Grammar decisions, shared by both parsers so they agree on every input:
 * - The first delimiter is "--boundary" at the very start of the body or after
 *   a CRLF (anything before it is preamble and ignored); every later one is
 *   CRLF "--boundary". A delimiter line may carry transport padding (blanks)
 *   before its CRLF; the closing one is "--boundary--", and what follows it
 *   (epilogue) is ignored.
 * - CRLF is required on delimiter lines: a bare LF there is malformed. The part
 *   body is exactly the bytes up to the CRLF of the next delimiter.
 * - A delimiter followed by anything but "--", padding or CRLF is malformed:
 *   RFC 2046 forbids the boundary as the start of a line inside a part.
 * - Content-Disposition is read for name and filename (quoted or token values;
 *   backslash escapes are left as sent). filename* is ignored: RFC 7578 §4.2
 *   says senders must not use it. A part without Content-Disposition is
 *   returned with empty name and filename. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cymg/error.h"
#include "cymg/rand.h"
#include "cymg/str.h"
#include "http/http_internal.h"
#include "http/static_internal.h"

/* bchars of RFC 2046 §5.1.1 */
static bool is_bchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return c != '\0' && strchr("'()+_,-./:=? ", c) != NULL;
}

int cymg__mp_check_boundary(cymg_str b) {
  if (b.len == 0 || b.len > CYMG__MP_MAX_BOUNDARY || b.buf[b.len - 1] == ' ') return CYMG_EPARSE;
  for (size_t i = 0; i < b.len; i++) {
    if (!is_bchar((unsigned char)b.buf[i])) return CYMG_EPARSE;
  }
  return 0;
}

int cymg__mp_boundary(cymg_str ct, cymg_str *boundary) {
  ct = cymg_str_trim(ct);
  if (!cymg_str_case_starts(ct, cymg_str_c("multipart/"))) return CYMG_EPARSE;
  if (cymg_http_header_var(ct, "boundary", boundary) != 0) return CYMG_EPARSE;
  return cymg__mp_check_boundary(*boundary);
}

/* Reads a part's header block from p[0..n): returns its length (fields plus the
 * empty line), CYMG_EAGAIN when incomplete, CYMG_EPARSE when malformed. Fills
 * name, filename and headers (the field lines without the empty line). */
static int part_head(const char *p, size_t n, cymg_http_part *part) {
  cymg_http_header hdrs[CYMG__MP_MAX_FIELDS];
  size_t nh = 0;
  if (n > CYMG__MP_MAX_HEAD) n = CYMG__MP_MAX_HEAD;
  int rc = cymg_http_parse_fields(p, n, hdrs, CYMG__MP_MAX_FIELDS, &nh, NULL);
  if (rc == CYMG_EAGAIN) return n == CYMG__MP_MAX_HEAD ? CYMG_EPARSE : CYMG_EAGAIN;
  if (rc < 0) return CYMG_EPARSE;
  memset(part, 0, sizeof(*part));
  size_t hl = (size_t)rc;
  hl -= (hl >= 2 && p[hl - 2] == '\r') ? 2 : 1; /* drop the empty line */
  part->headers = cymg_str_n(p, hl);
  part->name = part->filename = cymg_str_n(p, 0);
  for (size_t i = 0; i < nh; i++) {
    if (!cymg_str_case_eq(hdrs[i].name, cymg_str_c("Content-Disposition"))) continue;
    cymg_str v;
    int r = cymg_http_header_var(hdrs[i].value, "name", &v);
    if (r == CYMG_EPARSE) return CYMG_EPARSE;
    if (r == 0) part->name = v;
    r = cymg_http_header_var(hdrs[i].value, "filename", &v);
    if (r == CYMG_EPARSE) return CYMG_EPARSE;
    if (r == 0) part->filename = v;
    break;
  }
  return rc;
}

/* First occurrence of d (dl bytes, starting with '\r') in p[0..n), or -1. */
static ptrdiff_t find_delim(const char *p, size_t n, const char *d, size_t dl) {
  size_t i = 0;
  while (n - i >= dl) {
    const char *cr = memchr(p + i, '\r', n - i - dl + 1);
    if (cr == NULL) return -1;
    i = (size_t)(cr - p);
    if (memcmp(cr, d, dl) == 0) return (ptrdiff_t)i;
    i++;
  }
  return -1;
}

/* ---- iterator ---- */

int64_t cymg_http_multipart_next(cymg_str body, cymg_str boundary, int64_t ofs,
                                 cymg_http_part *part) {
  if (part != NULL) memset(part, 0, sizeof(*part));
  if (cymg__mp_check_boundary(boundary) != 0 || ofs < 0 || (uint64_t)ofs > body.len || part == NULL)
    return CYMG_EPARSE;
  char d[4 + CYMG__MP_MAX_BOUNDARY];
  size_t dl = 4 + boundary.len;
  memcpy(d, "\r\n--", 4);
  memcpy(d + 4, boundary.buf, boundary.len);
  const char *b = body.buf;
  size_t len = body.len, p = (size_t)ofs;
  if (ofs == 0) {
    /* The first delimiter may open the body without a CRLF in front. */
    if (len >= dl - 2 && memcmp(b, d + 2, dl - 2) == 0) {
      p = dl - 2;
    } else {
      ptrdiff_t q = find_delim(b, len, d, dl);
      if (q < 0) return CYMG_EPARSE;
      p = (size_t)q + dl;
    }
  }
  /* p is just after a delimiter: the close, or padding and CRLF. */
  if (len - p >= 2 && b[p] == '-' && b[p + 1] == '-') return 0;
  while (p < len && (b[p] == ' ' || b[p] == '\t')) p++;
  if (len - p < 2 || b[p] != '\r' || b[p + 1] != '\n') return CYMG_EPARSE;
  p += 2;
  int hl = part_head(b + p, len - p, part);
  if (hl < 0) return CYMG_EPARSE;
  p += (size_t)hl;
  ptrdiff_t q = find_delim(b + p, len - p, d, dl);
  if (q < 0) return CYMG_EPARSE;
  part->body = cymg_str_n(b + p, (size_t)q);
  return (int64_t)(p + (size_t)q + dl);
}

int64_t cymg_http_next_multipart(const cymg_http_msg *msg, int64_t ofs, cymg_http_part *part) {
  if (part != NULL) memset(part, 0, sizeof(*part));
  cymg_str *ct = msg ? cymg_http_get_header(msg, "Content-Type") : NULL, boundary;
  if (ct == NULL || cymg__mp_boundary(*ct, &boundary) != 0) return CYMG_EPARSE;
  return cymg_http_multipart_next(msg->body, boundary, ofs, part);
}

/* ---- incremental parser ---- */

enum { MP_PREAMBLE, MP_AFTER_DELIM, MP_HEAD, MP_BODY, MP_DONE };
/* Positions on a delimiter line (mp->after). */
enum { AD_START, AD_DASH, AD_PAD, AD_CR };

int cymg__mp_init(cymg__mp *mp, cymg_str boundary, const cymg__mp_cb *cb, void *ctx) {
  memset(mp, 0, sizeof(*mp));
  mp->cb = cb;
  mp->ctx = ctx;
  if (cymg__mp_check_boundary(boundary) != 0) return mp->err = CYMG_EPARSE;
  memcpy(mp->delim, "\r\n--", 4);
  memcpy(mp->delim + 4, boundary.buf, boundary.len);
  mp->dlen = 4 + boundary.len;
  /* The stream reads as if a CRLF came before it, so a delimiter opening the
   * body is found like any other. */
  memcpy(mp->held, "\r\n", 2);
  mp->hold = 2;
  mp->state = MP_PREAMBLE;
  return 0;
}

bool cymg__mp_in_part(const cymg__mp *mp) {
  return mp->state == MP_BODY;
}

/* Hands body bytes on; preamble bytes are dropped. */
static int emit(cymg__mp *mp, const char *p, size_t n) {
  if (n == 0 || mp->state != MP_BODY || mp->cb == NULL || mp->cb->data == NULL) return 0;
  return mp->cb->data(mp->ctx, p, n);
}

/* Looks for the delimiter in held bytes followed by p[0..n). Returns 1 when found
 * (*used: bytes of p up to and including it), 0 when p is used up (a possible
 * delimiter start is held back), or a callback's error. */
static int scan(cymg__mp *mp, const char *p, size_t n, size_t *used) {
  const size_t dl = mp->dlen;
  int rc;
  if (mp->hold > 0) {
    /* A delimiter starting in the held bytes needs at most dl more bytes of p
     * to be decided; look at that much through a small window. */
    char win[2 * sizeof(mp->delim)];
    size_t k = mp->hold, m = n < dl ? n : dl, t = k + m;
    memcpy(win, mp->held, k);
    memcpy(win + k, p, m);
    for (size_t i = 0; i < k; i++) {
      size_t l = t - i < dl ? t - i : dl;
      if (memcmp(win + i, mp->delim, l) != 0) continue;
      if ((rc = emit(mp, win, i)) != 0) return rc;
      if (l == dl) {
        mp->hold = 0;
        *used = i + dl - k;
        return 1;
      }
      /* Still a possible delimiter when p ran out (then m == n). */
      memmove(mp->held, win + i, t - i);
      mp->hold = t - i;
      *used = n;
      return 0;
    }
    if ((rc = emit(mp, win, k)) != 0) return rc;
    mp->hold = 0;
  }
  ptrdiff_t q = find_delim(p, n, mp->delim, dl);
  if (q >= 0) {
    if ((rc = emit(mp, p, (size_t)q)) != 0) return rc;
    *used = (size_t)q + dl;
    return 1;
  }
  /* Hold back the longest tail of p that could begin a delimiter. */
  size_t s = n >= dl ? n - dl + 1 : 0;
  for (; s < n; s++) {
    if (p[s] == '\r' && memcmp(p + s, mp->delim, n - s) == 0) break;
  }
  if ((rc = emit(mp, p, s)) != 0) return rc;
  memcpy(mp->held, p + s, n - s);
  mp->hold = n - s;
  *used = n;
  return 0;
}

/* One byte of a delimiter line: the close "--", or padding then CRLF. */
static int after_delim(cymg__mp *mp, char c) {
  switch (mp->after) {
    case AD_START:
      if (c == '-') return mp->after = AD_DASH, 0;
      /* fall through */
    case AD_PAD:
      if (c == ' ' || c == '\t') return mp->after = AD_PAD, 0;
      if (c == '\r') return mp->after = AD_CR, 0;
      return CYMG_EPARSE;
    case AD_DASH:
      if (c != '-') return CYMG_EPARSE;
      mp->state = MP_DONE;
      return 0;
    default: /* AD_CR */
      if (c != '\n') return CYMG_EPARSE;
      mp->state = MP_HEAD;
      mp->hlen = 0;
      return 0;
  }
}

/* Adds bytes to the header block; once it is complete, starts the part. */
static int head_bytes(cymg__mp *mp, const char *p, size_t n, size_t *used) {
  size_t old = mp->hlen, take = sizeof(mp->head) - old;
  if (take > n) take = n;
  memcpy(mp->head + old, p, take);
  mp->hlen += take;
  *used = take;
  /* The block can only end on a line end; don't re-parse for every byte. */
  if (memchr(p, '\n', take) == NULL && mp->hlen < sizeof(mp->head)) return 0;
  cymg_http_part part;
  int hl = part_head(mp->head, mp->hlen, &part);
  if (hl == CYMG_EAGAIN) return 0;
  if (hl < 0) return CYMG_EPARSE;
  *used = (size_t)hl - old; /* what follows the block is body */
  mp->state = MP_BODY;
  mp->hold = 0;
  if (mp->cb != NULL && mp->cb->begin != NULL) return mp->cb->begin(mp->ctx, &part);
  return 0;
}

int cymg__mp_feed(cymg__mp *mp, const char *p, size_t n) {
  while (mp->err == 0 && n > 0 && mp->state != MP_DONE) {
    size_t used = 0;
    int rc = 0;
    switch (mp->state) {
      case MP_PREAMBLE:
      case MP_BODY:
        rc = scan(mp, p, n, &used);
        if (rc == 1) {
          bool was_part = mp->state == MP_BODY;
          mp->state = MP_AFTER_DELIM;
          mp->after = AD_START;
          rc = was_part && mp->cb && mp->cb->end ? mp->cb->end(mp->ctx) : 0;
        }
        break;
      case MP_AFTER_DELIM:
        rc = after_delim(mp, p[0]);
        used = 1;
        break;
      default: /* MP_HEAD */ rc = head_bytes(mp, p, n, &used); break;
    }
    if (rc < 0) mp->err = rc;
    p += used;
    n -= used;
  }
  return mp->err;
}

int cymg__mp_finish(cymg__mp *mp) {
  if (mp->err == 0 && mp->state != MP_DONE) mp->err = CYMG_EPARSE;
  return mp->err;
}

/* ---- streaming upload ---- */

/* A file being written: its temporary name and the name it will get. */
typedef struct upfile {
  char *tmp, *final;
} upfile;

typedef struct upload {
  cymg_event_fn fn; /* the user's event function and pointer, to restore */
  void *fn_data;
  cymg_conn *c;
  char *dir;
  uint64_t max, total;
  int fd; /* the part being written, or -1 */
  upfile *files;
  size_t nfiles, cap;
  bool failed;
  cymg__mp mp;
} upload;

/* The last path component of a client's file name, if it is safe to create in
 * the upload folder (RFC 7578 §4.2: never use the client's directories). */
static int safe_name(cymg_str fn, char *out, size_t cap) {
  size_t start = 0;
  for (size_t i = 0; i < fn.len; i++) {
    if (fn.buf[i] == '/' || fn.buf[i] == '\\') start = i + 1;
  }
  cymg_str b = cymg_str_n(fn.buf + start, fn.len - start);
  /* Hidden names are refused too: they could replace a .htaccess-like file and
   * would collide with the temporary files. */
  if (b.len == 0 || b.len > 255 || b.len >= cap || b.buf[0] == '.') return CYMG_EINVAL;
  for (size_t i = 0; i < b.len; i++) {
    unsigned char ch = (unsigned char)b.buf[i];
    if (ch < 0x20 || ch == 0x7f) return CYMG_EINVAL;
  }
  memcpy(out, b.buf, b.len);
  out[b.len] = '\0';
  return 0;
}

/* Deletes every temporary file not yet renamed. */
static void discard_files(upload *u) {
  if (u->fd >= 0) close(u->fd);
  u->fd = -1;
  for (size_t i = 0; i < u->nfiles; i++) {
    if (u->files[i].tmp != NULL) unlink(u->files[i].tmp);
    free(u->files[i].tmp);
    free(u->files[i].final);
  }
  free(u->files);
  u->files = NULL;
  u->nfiles = u->cap = 0;
}

static char *path_in(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (p != NULL) {
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
  }
  return p;
}

static int part_begin(void *ctx, const cymg_http_part *part) {
  upload *u = ctx;
  if (part->filename.len == 0) return 0; /* a field, or an empty file input */
  char name[256];
  if (safe_name(part->filename, name, sizeof(name)) != 0) return CYMG_EINVAL;
  if (u->nfiles == u->cap) {
    size_t nc = u->cap ? u->cap * 2 : 4;
    upfile *nf = realloc(u->files, nc * sizeof(*nf));
    if (nf == NULL) return CYMG_ENOMEM;
    u->files = nf;
    u->cap = nc;
  }
  upfile *f = &u->files[u->nfiles];
  f->final = path_in(u->dir, name);
  f->tmp = NULL;
  if (f->final == NULL) return CYMG_ENOMEM;
  u->nfiles++;
  /* A random hidden name: not served by serve_dir, not guessable, and O_EXCL
   * never follows a planted symlink. */
  for (int attempt = 0; attempt < 4 && u->fd < 0; attempt++) {
    char rnd[17], tmp[48];
    if (cymg_random_str(rnd, 16) != 0) return CYMG_ENOMEM;
    snprintf(tmp, sizeof(tmp), ".cymg-upload-%s", rnd);
    free(f->tmp);
    f->tmp = path_in(u->dir, tmp);
    if (f->tmp == NULL) return CYMG_ENOMEM;
    u->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (u->fd < 0 && errno != EEXIST) {
      int e = errno;
      free(f->tmp);
      f->tmp = NULL;
      return -e;
    }
  }
  return u->fd >= 0 ? 0 : -EEXIST;
}

static int part_data(void *ctx, const char *p, size_t n) {
  upload *u = ctx;
  while (u->fd >= 0 && n > 0) {
    ssize_t w = write(u->fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int part_end(void *ctx) {
  upload *u = ctx;
  if (u->fd < 0) return 0;
  int rc = close(u->fd); /* NFS and quotas report write errors here */
  u->fd = -1;
  return rc == 0 ? 0 : -errno;
}

static const cymg__mp_cb upload_cb = {part_begin, part_data, part_end};

static void upload_fn(cymg_conn *c, int ev, void *ev_data);

/* Passes an event to the user's function as if it were still installed. A
 * handler it installs meanwhile becomes the one restored at the end. */
static void forward(upload *u, cymg_conn *c, int ev, void *ev_data) {
  cymg_conn_set_handler(c, u->fn, u->fn_data);
  if (u->fn != NULL) u->fn(c, ev, ev_data);
  u->fn = cymg_conn_handler(c);
  u->fn_data = cymg_conn_userdata(c);
  cymg_conn_set_handler(c, upload_fn, u);
}

/* Gives the connection back to the user and frees the upload. */
static void finish(upload *u, cymg_conn *c) {
  discard_files(u);
  cymg_conn_set_handler(c, u->fn, u->fn_data);
  free(u->dir);
  free(u);
}

static int status_of(int err) {
  if (err == CYMG_EPARSE || err == CYMG_EINVAL) return 400;
  if (err == CYMG_ELIMIT) return 413;
  if (err == -ENOSPC || err == -EDQUOT) return 507;
  return 500;
}

/* Answers with an error, tells the user why, and closes once the answer is
 * out: the rest of the body is not read. */
static void fail(upload *u, cymg_conn *c, int err, const char *why) {
  u->failed = true;
  discard_files(u);
  int status = status_of(err);
  cymg_http_reply(c, status, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n",
                  "%d %s: %s\n", status, cymg_http_status_reason(status), why);
  char msg[160];
  snprintf(msg, sizeof(msg), "upload: %s (%s)", why, cymg_strerror(err));
  forward(u, c, CYMG_EV_ERROR, msg);
  cymg_drain(c);
}

/* Has the current request been answered, or an answer started? */
static bool answered(cymg_conn *c) {
  cymg__http *h = cymg__http_of(c);
  return h == NULL || h->replied || c->sent_total != h->sent_mark || h->resp_chunked ||
         h->file_fd >= 0 || cymg_conn_is_closing(c) || cymg_conn_is_draining(c);
}

static void upload_fn(cymg_conn *c, int ev, void *ev_data) {
  upload *u = cymg_conn_userdata(c);
  if (ev == CYMG_EV_READ) {
    size_t n = *(const size_t *)ev_data;
    if (u->failed) return;
    u->total += n;
    if (u->max != 0 && u->total > u->max) {
      fail(u, c, CYMG_ELIMIT, "body larger than the upload limit");
      return;
    }
    int rc = cymg__mp_feed(&u->mp, cymg_conn_recv_data(c).buf, n);
    if (rc < 0) fail(u, c, rc, rc == CYMG_EPARSE ? "malformed multipart body" : "cannot save");
  } else if (ev == CYMG_EV_HTTP_MSG) {
    if (u->failed) return;
    if (cymg__mp_finish(&u->mp) != 0) {
      fail(u, c, CYMG_EPARSE, "malformed multipart body");
      return;
    }
    size_t saved = 0;
    for (; saved < u->nfiles; saved++) {
      upfile *f = &u->files[saved];
      if (rename(f->tmp, f->final) != 0) {
        fail(u, c, -errno, "cannot save");
        return;
      }
      free(f->tmp);
      f->tmp = NULL;
    }
    finish(u, c);
    cymg_event_fn fn = cymg_conn_handler(c);
    if (fn != NULL) fn(c, ev, ev_data);
    if (!answered(c)) {
      cymg_http_reply(c, 200, "Content-Type: text/plain; charset=utf-8\r\n", "%zu file%s saved\n",
                      saved, saved == 1 ? "" : "s");
    }
  } else if (ev == CYMG_EV_CLOSE) {
    cymg_event_fn fn = u->fn;
    finish(u, c);
    if (fn != NULL) fn(c, ev, ev_data);
  } else {
    forward(u, c, ev, ev_data);
  }
}

int cymg_http_upload(cymg_conn *c, const cymg_http_msg *msg, const char *dir, uint64_t max_size) {
  if (c == NULL || msg == NULL || dir == NULL) return CYMG_EINVAL;
  cymg_str *ct = cymg_http_get_header(msg, "Content-Type"), boundary;
  if (ct == NULL || !cymg_str_case_starts(cymg_str_trim(*ct), cymg_str_c("multipart/form-data")) ||
      cymg__mp_boundary(*ct, &boundary) != 0)
    return CYMG_EPARSE;
  struct stat st;
  if (stat(dir, &st) != 0) return -errno;
  if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
  if (max_size != 0 && msg->content_length > 0 && (uint64_t)msg->content_length > max_size) {
    /* Refused from the head alone: the server then skips the body. */
    cymg_http_reply(c, 413, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n",
                    "413 Content Too Large: body larger than the upload limit\n");
    return CYMG_ELIMIT;
  }
  upload *u = calloc(1, sizeof(*u));
  if (u == NULL) return CYMG_ENOMEM;
  u->dir = cymg_str_dup(cymg_str_c(dir));
  if (u->dir == NULL) {
    free(u);
    return CYMG_ENOMEM;
  }
  /* Before the body is switched to streaming, so a refusal leaves c as it was
   * (cymg__mp_boundary accepted the boundary: this is not expected to fail). */
  int rc = cymg__mp_init(&u->mp, boundary, &upload_cb, u);
  if (rc == 0) rc = cymg_http_stream_body(c);
  if (rc != 0) {
    free(u->dir);
    free(u);
    return rc;
  }
  u->c = c;
  u->fd = -1;
  u->max = max_size;
  u->fn = cymg_conn_handler(c);
  u->fn_data = cymg_conn_userdata(c);
  cymg_conn_set_handler(c, upload_fn, u);
  return 0;
}
