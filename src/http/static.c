/* Static files: serve_dir and serve_file, with the validators, conditional
 * requests and ranges of RFC 9110 (§8.8, §13, §14).
 *
 * Decisions:
 * - ETag: strong, from the file's size and its mtime in nanoseconds, the same
 *   assumption nginx makes: the bytes of a file do not change without its size
 *   or mtime changing. Strong, so If-Range works for resumed downloads. A ".gz"
 *   sibling has its own size and mtime, hence its own ETag.
 * - Last-Modified: the mtime in seconds as an IMF-fixdate.
 * - Preconditions in the order of §13.2.2 (If-Match, If-Unmodified-Since,
 *   If-None-Match, If-Modified-Since); If-Modified-Since only without
 *   If-None-Match, only for GET and HEAD, and only when its date is not
 *   later than the server's clock (§13.1.3: such a date is invalid). Range only for GET; one range
 *   gives 206, several give the whole file (200), none satisfiable 416.
 * - serve_dir answers GET and HEAD only (405 with Allow). serve_file answers
 *   any method with the file (a handler may send a page after a POST); Range
 *   and 304 still apply to GET/HEAD only, 412 to all.
 * - What a request may not reach is answered 404, never 403, so probing tells
 *   nothing: "..", encoded dots, encoded '/' or '\', NUL and control bytes
 *   (see cymg__http_normalize_path), symlinks whose real path leaves
 *   realpath(root), hidden names (any segment starting with '.', except
 *   ".well-known" of RFC 8615), and anything but regular files and folders.
 *   A malformed %-escape is 400. A folder without an index file and with
 *   listings off is 403 (its existence is no secret: /dir gives 301).
 * - Lookups start from a descriptor of the root kept open by the manager's
 *   static cache (static_cache.c; it also keeps hot regular files open: a
 *   small file costs fstat, pread, send and the next recv). On Linux 5.6+
 *   each file is opened with
 *   openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): the kernel refuses any
 *   walk leaving the root in the same step as the open, so no symlink can be
 *   swapped in between a check and the open. A walk it refuses (EXDEV: an
 *   absolute link, or ".." above the root on the way) is resolved with
 *   realpath and, when it ends inside, opened beneath the root again with no
 *   symlink allowed, so absolute links into the root keep working. What is
 *   sent or listed is the descriptor that was checked (fstat, fdopendir).
 * - Without openat2 (other systems, older kernels: ENOSYS, or EPERM from a
 *   seccomp filter) the real path is checked, then opened: two steps, so
 *   there a symlink swapped in between by someone who can write inside the
 *   root would be followed.
 * - Folders: "/dir" redirects (301) to "/dir/" built from the normalised path
 *   (a raw "//host/dir" must not become an off-site Location); then index
 *   files in order; then the listing (names sorted, folders first, hidden
 *   names and escaping symlinks left out, HTML-escaped, percent-encoded in
 *   links, sizes in bytes, IMF-fixdate times, "../" except at the root).
 * - Precompressed files: "<file>.gz" is looked for only when the client
 *   accepts gzip (q > 0, named or by "*", and not below an explicit identity
 *   weight); when it exists, that client gets the .gz bytes with
 *   Content-Encoding: gzip, the original's Content-Type and Vary:
 *   Accept-Encoding. Other clients get the file without the look (and without
 *   Vary): a shared cache keeping that answer serves a correct one to all. Accept-Encoding
 *   is read as a §5.6.1 list: empty elements and OWS are skipped; a weight
 *   that is not a qvalue of §12.4.2 (more than three decimals, above 1,
 *   not a number) makes its element not acceptable.
 * - Extra headers from the options go on every answer, errors included. */
#define _FILE_OFFSET_BITS 64 /* files above 2 GiB on 32-bit systems */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
/* openat2(2) (Linux 5.6) keeps a whole lookup beneath a folder, symlinks
 * included, in the same step as the open: nothing can be swapped in between a
 * check and the open because there is no separate check. Debian 12's glibc
 * has no wrapper for it, hence syscall(). */
#if defined(__linux__)
#include <sys/syscall.h>
#if defined(SYS_openat2) && defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define CYMG__OPENAT2 1
#endif
#endif
#endif
#ifndef CYMG__OPENAT2
#define CYMG__OPENAT2 0
#endif

#include "cymg/buf.h"
#include "cymg/error.h"
#include "cymg/str.h"
#include "cymg/url.h"
#include "http/http_internal.h"
#include "http/static_internal.h"

/* ------------------------------------------------------------ dates ---- */

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const long_wdays[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar: count in
 * 400-year eras (146097 days each) of years that start on March 1, so the leap
 * day falls at the end of a year. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static bool num(const char *p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return false;
    v = v * 10 + (p[i] - '0');
  }
  *out = v;
  return true;
}

static int month_of(const char *p) {
  for (int i = 0; i < 12; i++) {
    if (memcmp(p, months[i], 3) == 0) return i + 1;
  }
  return 0;
}

/* "HH:MM:SS" */
static bool clock_of(const char *p, int *secs) {
  int h, m, s;
  if (!num(p, 2, &h) || p[2] != ':' || !num(p + 3, 2, &m) || p[5] != ':' || !num(p + 6, 2, &s))
    return false;
  if (h > 23 || m > 59 || s > 60) return false;
  *secs = h * 3600 + m * 60 + (s == 60 ? 59 : s); /* a leap second is its second 59 */
  return true;
}

static bool valid_day(int y, int m, int d) {
  static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (d < 1 || d > mdays[m - 1]) return false;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m != 2 || d <= 28 || leap;
}

int cymg__http_parse_date(cymg_str s, int64_t *epoch) {
  const char *p = s.buf;
  size_t n = s.len;
  int y = 0, m = 0, d = 0, secs = 0;
  if (n == 29 && p[3] == ',') {
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (p[4] != ' ' || !num(p + 5, 2, &d) || p[7] != ' ' || !(m = month_of(p + 8)) ||
        p[11] != ' ' || !num(p + 12, 4, &y) || p[16] != ' ' || !clock_of(p + 17, &secs) ||
        memcmp(p + 25, " GMT", 4) != 0)
      return CYMG_EPARSE;
  } else if (n == 24 && p[3] == ' ') {
    /* asctime: "Sun Nov  6 08:49:37 1994" */
    if (!(m = month_of(p + 4)) || p[7] != ' ' || p[10] != ' ' || !clock_of(p + 11, &secs) ||
        p[19] != ' ' || !num(p + 20, 4, &y))
      return CYMG_EPARSE;
    if (p[8] == ' ' ? !num(p + 9, 1, &d) : !num(p + 8, 2, &d)) return CYMG_EPARSE;
  } else {
    /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
    const char *comma = memchr(p, ',', n < 10 ? n : 10);
    if (comma == NULL || (size_t)(comma - p) + 24 != n) return CYMG_EPARSE;
    bool known = false;
    for (int i = 0; i < 7; i++) {
      known |= strlen(long_wdays[i]) == (size_t)(comma - p) &&
               memcmp(p, long_wdays[i], (size_t)(comma - p)) == 0;
    }
    const char *q = comma + 1;
    if (!known || q[0] != ' ' || !num(q + 1, 2, &d) || q[3] != '-' || !(m = month_of(q + 4)) ||
        q[7] != '-' || !num(q + 8, 2, &y) || q[10] != ' ' || !clock_of(q + 11, &secs) ||
        memcmp(q + 19, " GMT", 4) != 0)
      return CYMG_EPARSE;
    /* §5.6.7 reads a year more than 50 years ahead as the past; a fixed
     * window keeps this pure: 70..99 are 19xx, 00..69 are 20xx. */
    y += y >= 70 ? 1900 : 2000;
  }
  if (!valid_day(y, m, d)) return CYMG_EPARSE;
  *epoch = days_from_civil(y, m, d) * 86400 + secs;
  return 0;
}

int cymg__http_format_date(int64_t epoch, char out[30]) {
  /* Years 0..9999 are what the 4-digit year field can show. */
  if (epoch < -62167219200LL || epoch > 253402300799LL) return CYMG_ERANGE;
  time_t t = (time_t)epoch;
  struct tm tm;
  if ((int64_t)t != epoch || gmtime_r(&t, &tm) == NULL) return CYMG_ERANGE;
  /* Names from our own tables: strftime's %a and %b follow the locale. Fields
   * are written digit by digit: every width is fixed by the format. */
  int year = tm.tm_year + 1900;
  memcpy(out, wdays[tm.tm_wday], 3);
  memcpy(out + 3, ", 00 ", 5);
  out[5] = (char)('0' + tm.tm_mday / 10);
  out[6] = (char)('0' + tm.tm_mday % 10);
  memcpy(out + 8, months[tm.tm_mon], 3);
  out[11] = ' ';
  for (int i = 0; i < 4; i++, year /= 10) out[15 - i] = (char)('0' + year % 10);
  const int hms[3] = {tm.tm_hour, tm.tm_min, tm.tm_sec};
  for (int i = 0; i < 3; i++) {
    out[16 + 3 * i] = i ? ':' : ' ';
    out[17 + 3 * i] = (char)('0' + hms[i] / 10);
    out[18 + 3 * i] = (char)('0' + hms[i] % 10);
  }
  memcpy(out + 25, " GMT", 5);
  return 29;
}

/* ---------------------------------------------- validators, conditions ---- */

int cymg__http_etag(char *out, size_t out_len, uint64_t size, int64_t mtime_sec, long mtime_nsec) {
  int n = snprintf(out, out_len, "\"%" PRIx64 "-%" PRIx64 "-%lx\"", size, (uint64_t)mtime_sec,
                   (unsigned long)mtime_nsec);
  if (n < 0 || (size_t)n >= out_len) {
    if (out_len) out[0] = '\0';
    return CYMG_ENOSPC;
  }
  return n;
}

static bool method_is(const cymg_http_msg *msg, const char *m) {
  return cymg_str_eq(msg->method, cymg_str_c(m));
}

/* Looks etag up in the entity-tag lists of every `name` field of msg (the
 * fields of a list may be repeated, §5.3). *present tells whether the field
 * was sent. "*" matches any current representation. Weak comparison ignores
 * "W/"; strong comparison needs both tags strong. A malformed list matches
 * nothing from the malformed element on. */
static bool etag_match(const cymg_http_msg *msg, const char *name, cymg_str etag, bool weak,
                       bool *present) {
  *present = false;
  bool ours_weak = etag.len >= 2 && etag.buf[0] == 'W' && etag.buf[1] == '/';
  cymg_str opaque = ours_weak ? cymg_str_n(etag.buf + 2, etag.len - 2) : etag;
  for (size_t i = 0; i < msg->num_headers; i++) {
    if (!cymg_str_case_eq(msg->headers[i].name, cymg_str_c(name))) continue;
    *present = true;
    const char *p = msg->headers[i].value.buf, *e = p + msg->headers[i].value.len;
    while (p < e) {
      while (p < e && (*p == ' ' || *p == '\t' || *p == ',')) p++;
      if (p == e) break;
      if (*p == '*') return true;
      bool w = e - p >= 2 && p[0] == 'W' && p[1] == '/';
      if (w) p += 2;
      if (p == e || *p != '"') break;
      const char *q = memchr(p + 1, '"', (size_t)(e - p - 1));
      if (q == NULL) break;
      cymg_str tag = cymg_str_n(p, (size_t)(q - p + 1));
      if (cymg_str_eq(tag, opaque) && (weak || (!w && !ours_weak))) return true;
      p = q + 1;
      while (p < e && (*p == ' ' || *p == '\t')) p++;
      if (p < e && *p != ',') break;
    }
  }
  return false;
}

/* The date of a field that must hold exactly one HTTP-date; false when the
 * field is absent, repeated or invalid (then it is ignored, §13.1.3-4). */
static bool date_field(const cymg_http_msg *msg, const char *name, int64_t *t) {
  const cymg_str *v = NULL;
  for (size_t i = 0; i < msg->num_headers; i++) {
    if (!cymg_str_case_eq(msg->headers[i].name, cymg_str_c(name))) continue;
    if (v != NULL) return false;
    v = &msg->headers[i].value;
  }
  return v != NULL && cymg__http_parse_date(*v, t) == 0;
}

int cymg__http_preconditions(const cymg_http_msg *msg, cymg_str etag, int64_t mtime, int64_t now) {
  bool get_head = method_is(msg, "GET") || method_is(msg, "HEAD");
  bool present;
  int64_t t;
  /* Steps 1 and 2: the client's copy must still be current. */
  bool match = etag_match(msg, "If-Match", etag, false, &present);
  if (present) {
    if (!match) return 412;
  } else if (date_field(msg, "If-Unmodified-Since", &t) && mtime > t) {
    return 412;
  }
  /* Steps 3 and 4: the client already has this representation. */
  match = etag_match(msg, "If-None-Match", etag, true, &present);
  if (present) {
    if (match) return get_head ? 304 : 412;
  } else if (get_head && date_field(msg, "If-Modified-Since", &t) && t <= now && mtime <= t) {
    /* §13.1.3: a date later than our clock is invalid, so it is ignored. A
     * client that sent one (a skewed clock, a forged header) would otherwise
     * keep a stale copy until that date. */
    return 304;
  }
  return 0;
}

bool cymg__http_if_range(const cymg_http_msg *msg, cymg_str etag, int64_t mtime) {
  cymg_str *v = cymg_http_get_header(msg, "If-Range");
  if (v == NULL) return true;
  cymg_str s = cymg_str_trim(*v);
  if (s.len > 0 && (s.buf[0] == '"' || cymg_str_starts(s, cymg_str_c("W/")))) {
    /* Weak tags never match here: If-Range needs a strong comparison. */
    bool ours_weak = etag.len >= 2 && etag.buf[0] == 'W';
    return !ours_weak && s.buf[0] == '"' && cymg_str_eq(s, etag);
  }
  int64_t t;
  return cymg__http_parse_date(s, &t) == 0 && t == mtime;
}

/* ----------------------------------------------------------- ranges ---- */

/* Reads decimal digits, saturating at UINT64_MAX: a huge first-pos is simply
 * beyond the end, a huge last-pos or suffix means "to the end". */
static const char *digits_sat(const char *p, const char *e, uint64_t *v) {
  *v = 0;
  const char *s = p;
  for (; p < e && *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned)(*p - '0');
    *v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
  }
  return p > s ? p : NULL;
}

int cymg__http_parse_range(cymg_str value, uint64_t size, uint64_t *start, uint64_t *len) {
  cymg_str v = cymg_str_trim(value);
  if (v.len < 6 || !cymg_str_case_starts(v, cymg_str_c("bytes="))) return CYMG__RANGE_NONE;
  const char *p = v.buf + 6, *e = v.buf + v.len;
  int count = 0;
  uint64_t a = 0, b = 0;
  while (p < e) {
    /* Empty list elements are allowed and skipped (§5.6.1.2). */
    while (p < e && (*p == ' ' || *p == '\t' || *p == ',')) p++;
    if (p == e) break;
    uint64_t first = 0, last = UINT64_MAX;
    bool suffix = *p == '-';
    if (!suffix && (p = digits_sat(p, e, &first)) == NULL) return CYMG__RANGE_NONE;
    if (p == e || *p != '-') return CYMG__RANGE_NONE;
    p++;
    if (p < e && *p >= '0' && *p <= '9') {
      p = digits_sat(p, e, &last);
    } else if (suffix) {
      return CYMG__RANGE_NONE; /* "-" alone */
    }
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    if (p < e && *p != ',') return CYMG__RANGE_NONE;
    if (!suffix && last < first) return CYMG__RANGE_NONE; /* invalid: ignore the field */
    if (++count > 1) continue; /* validate the rest, serve the whole file */
    if (suffix) {
      if (last == 0) {
        a = 1, b = 0; /* "-0": nothing selected */
      } else {
        a = last >= size ? 0 : size - last;
        b = size ? size - 1 : 0;
      }
    } else {
      a = first;
      b = last >= size ? size - 1 : last;
    }
  }
  if (count != 1 || size == 0) return CYMG__RANGE_NONE;
  if (a >= size || b < a) return CYMG__RANGE_UNSAT;
  *start = a;
  *len = b - a + 1;
  return CYMG__RANGE_ONE;
}

/* ------------------------------------------------------ content coding ---- */

/* A weight (§12.4.2) in thousandths: qvalue = ( "0" [ "." 0*3DIGIT ] ) /
 * ( "1" [ "." 0*3("0") ] ). Returns 0..1000, or -1 when q is not a qvalue
 * ("1.5", "0.0001", "abc", "", ".5"). */
static int qvalue(cymg_str q) {
  if (q.len == 0 || (q.buf[0] != '0' && q.buf[0] != '1')) return -1;
  if (q.len > 5 || (q.len > 1 && q.buf[1] != '.')) return -1;
  int w = q.buf[0] == '1' ? 1000 : 0, scale = 100;
  for (size_t i = 2; i < q.len; i++, scale /= 10) {
    if (q.buf[i] < '0' || q.buf[i] > '9') return -1;
    w += (q.buf[i] - '0') * scale;
  }
  return w <= 1000 ? w : -1;
}

/* The weight of one Accept-Encoding element's parameters (what follows the
 * coding): 1000 without a "q", else its qvalue. A malformed weight counts as
 * 0: RFC 9110 gives no recovery for it, and reading "q=1.5" or "q=abc" as
 * "not acceptable" never sends a coding the client did not validly ask for
 * (the plain file is always a correct answer). */
static int weight_of(cymg_str params) {
  int w = 1000;
  cymg_str param;
  while (cymg_str_split(&params, ';', &param)) {
    param = cymg_str_trim(param);
    const char *eq = param.len ? memchr(param.buf, '=', param.len) : NULL;
    if (eq == NULL) continue; /* empty or bare parameters: no weight */
    cymg_str name = cymg_str_trim(cymg_str_n(param.buf, (size_t)(eq - param.buf)));
    if (!cymg_str_case_eq(name, cymg_str_c("q"))) continue;
    int q = qvalue(cymg_str_trim(cymg_str_n(eq + 1, param.len - (size_t)(eq - param.buf) - 1)));
    w = q < 0 ? 0 : q;
  }
  return w;
}

bool cymg__http_accepts_gzip(const cymg_http_msg *msg) {
  /* Weights in thousandths, -1 while the coding is not listed. A coding
   * listed twice keeps its best weight. */
  int gzip = -1, star = -1, identity = -1;
  for (size_t i = 0; i < msg->num_headers; i++) {
    if (!cymg_str_case_eq(msg->headers[i].name, cymg_str_c("Accept-Encoding"))) continue;
    cymg_str rest = msg->headers[i].value, item;
    while (cymg_str_split(&rest, ',', &item)) {
      /* §5.6.1.2: empty elements (",gzip", "gzip,,", ", ;q=0") are skipped,
       * and so is an element with parameters but no coding. */
      cymg_str params = cymg_str_trim(item), coding;
      if (!cymg_str_split(&params, ';', &coding)) continue;
      coding = cymg_str_trim(coding);
      if (coding.len == 0) continue;
      int w = weight_of(params);
      int *slot = NULL;
      if (cymg_str_case_eq(coding, cymg_str_c("gzip")) ||
          cymg_str_case_eq(coding, cymg_str_c("x-gzip"))) {
        slot = &gzip; /* x-gzip: the same coding, §8.4.1.3 */
      } else if (cymg_str_eq(coding, cymg_str_c("*"))) {
        slot = &star;
      } else if (cymg_str_case_eq(coding, cymg_str_c("identity"))) {
        slot = &identity;
      }
      if (slot != NULL && w > *slot) *slot = w;
    }
  }
  /* "*" stands for gzip only when gzip is not named (§12.5.3). Without the
   * header, or with gzip not covered, the plain file goes out. An identity
   * the client explicitly prefers wins over gzip; an equal weight keeps the
   * smaller gzip bytes. */
  int g = gzip >= 0 ? gzip : star;
  return g > 0 && g >= identity;
}

/* ----------------------------------------------------------- replies ---- */

static const cymg_http_serve_opts no_opts;

/* Header lines: the caller's first, then the options' extra headers. On
 * allocation failure the buffer is freed and NULL returned. */
static const char *finish_headers(cymg_buf *h, const cymg_http_serve_opts *o) {
  if (o->extra_headers != NULL && cymg_buf_printf(h, "%s", o->extra_headers) < 0) {
    cymg_buf_free(h);
    return NULL;
  }
  if (h->buf == NULL && cymg_buf_reserve(h, 1) != 0) return NULL;
  return h->buf;
}

/* A short text reply ("404 Not Found") with optional header lines. */
static int reply_text(cymg_conn *c, const cymg_http_serve_opts *o, int status, const char *lines) {
  cymg_buf h = {0};
  if (cymg_buf_printf(&h, "Content-Type: text/plain; charset=utf-8\r\n%s", lines ? lines : "") < 0)
    return CYMG_ENOMEM;
  const char *hdrs = finish_headers(&h, o);
  if (hdrs == NULL) return CYMG_ENOMEM;
  int rc = cymg_http_reply(c, status, hdrs, "%d %s\n", status, cymg_http_status_reason(status));
  cymg_buf_free(&h);
  return rc;
}

/* Keeps fd (just opened) when it is a regular file: fstat on the descriptor,
 * so what is checked is what is sent. Returns fd, or -1 with errno (EISDIR /
 * ENODEV for other types) after closing it. */
static int regular(int fd, struct stat *st) {
  if (fd < 0) return -1;
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    int e = S_ISDIR(st->st_mode) ? EISDIR : ENODEV;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* Opens a file by its path for reading. Non-blocking, so a FIFO planted in the
 * tree cannot stall the loop. Returns the fd, or -1 with errno. */
static int open_regular(const char *path, struct stat *st) {
  return regular(open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), st);
}

static int reply_404(cymg_conn *c, const cymg_http_serve_opts *o) {
  struct stat st;
  int fd = o->page404 ? open_regular(o->page404, &st) : -1;
  if (fd < 0) return reply_text(c, o, 404, NULL);
  cymg_buf h = {0};
  cymg_str mime = cymg_http_mime_type(o->page404, o->mime_types);
  const char *hdrs = NULL;
  if (cymg_buf_printf(&h, "Content-Type: %.*s\r\n", (int)mime.len, mime.buf) >= 0)
    hdrs = finish_headers(&h, o);
  if (hdrs == NULL) {
    close(fd);
    return CYMG_ENOMEM;
  }
  int rc = cymg__http_reply_file(c, 404, hdrs, fd, 0, (uint64_t)st.st_size);
  cymg_buf_free(&h);
  return rc;
}

/* What is being sent: an open file, the name its MIME type comes from, and
 * whether it is the gzip sibling of that name. */
typedef struct source {
  int fd;
  struct stat st;
  const char *name;
  bool gzip, vary;
  bool borrowed; /* fd is the manager's cache's: never closed here */
} source;

/* Answers with src (whose fd this takes over): preconditions, then Range. */
static int reply_source(cymg_conn *c, const cymg_http_msg *msg, const cymg_http_serve_opts *o,
                        source *src) {
  uint64_t size = (uint64_t)src->st.st_size;
  int64_t mtime = (int64_t)src->st.st_mtim.tv_sec;
  char etag[48], date[30];
  int el = cymg__http_etag(etag, sizeof(etag), size, mtime, src->st.st_mtim.tv_nsec);
  bool have_date = cymg__http_format_date(mtime, date) > 0;
  cymg_buf h = {0};
  int rc = CYMG_ENOMEM;
  /* Validators and Vary go on every answer about this representation, 304
   * included (§15.4.5). */
  if (cymg_buf_printf(&h, "ETag: %s\r\n", el > 0 ? etag : "") < 0 ||
      (have_date && cymg_buf_printf(&h, "Last-Modified: %s\r\n", date) < 0) ||
      (src->vary && cymg_buf_printf(&h, "Vary: Accept-Encoding\r\n") < 0))
    goto out;
  int pre = cymg__http_preconditions(msg, cymg_str_n(etag, el > 0 ? (size_t)el : 0), mtime,
                                     (int64_t)time(NULL));
  if (pre == 304) {
    const char *hdrs = finish_headers(&h, o);
    rc = hdrs ? cymg_http_reply_data(c, 304, hdrs, NULL, 0) : CYMG_ENOMEM;
    goto out;
  }
  if (pre == 412) {
    rc = reply_text(c, o, 412, h.buf);
    goto out;
  }
  cymg_str mime = cymg_http_mime_type(src->name, o->mime_types);
  if (cymg_buf_printf(&h, "Content-Type: %.*s\r\nAccept-Ranges: bytes\r\n%s", (int)mime.len,
                      mime.buf, src->gzip ? "Content-Encoding: gzip\r\n" : "") < 0)
    goto out;
  uint64_t start = 0, len = size;
  int status = 200;
  cymg_str *range = cymg_http_get_header(msg, "Range");
  if (range != NULL && cymg_str_eq(msg->method, cymg_str_c("GET")) &&
      cymg__http_if_range(msg, cymg_str_n(etag, el > 0 ? (size_t)el : 0), mtime)) {
    int r = cymg__http_parse_range(*range, size, &start, &len);
    if (r == CYMG__RANGE_UNSAT) {
      cymg_buf e = {0};
      rc = cymg_buf_printf(&e, "Content-Range: bytes */%" PRIu64 "\r\n", size) < 0
               ? CYMG_ENOMEM
               : reply_text(c, o, 416, e.buf);
      cymg_buf_free(&e);
      goto out;
    }
    if (r == CYMG__RANGE_ONE) {
      status = 206;
      if (cymg_buf_printf(&h, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", start,
                          start + len - 1, size) < 0)
        goto out;
    }
  }
  const char *hdrs = finish_headers(&h, o);
  if (hdrs == NULL) goto out;
  rc = cymg__http_reply_file_ex(c, status, hdrs, src->fd, start, len, src->borrowed);
  src->fd = -1; /* the layer owns it now (or the cache still does), whatever happened */
out:
  if (src->fd >= 0 && !src->borrowed) close(src->fd);
  src->fd = -1;
  cymg_buf_free(&h);
  return rc;
}

/* ------------------------------------------------ lookups in the root ---- */

/* Flags to look at a file without reading it (no FIFO or device opened). */
#ifdef O_PATH
#define PROBE_FLAGS O_PATH
#else
#define PROBE_FLAGS (O_RDONLY | O_NONBLOCK)
#endif

/* The served folder, for one call: a descriptor every lookup starts from. The
 * descriptor is the manager's cache's (slot >= 0), checked against the path
 * every CYMG__SC_VALID_MS and whenever a lookup fails, so a root renamed or
 * replaced between requests is soon simply the new root. */
typedef struct root {
  cymg_mgr *mgr;
  const char *dir; /* as configured */
  int fd;          /* O_PATH descriptor of dir; -1 without openat2 */
  int slot;        /* the cache's slot owning fd; -1: fd is this call's */
  bool beneath;    /* lookups go through openat2, confined by the kernel */
  char *real;      /* realpath(dir), made only when a lookup needs it */
  size_t len;
} root;

/* Returns 0, or -1 with errno when dir cannot be opened as a folder. */
static int root_init(root *r, const char *dir, cymg_mgr *mgr) {
  memset(r, 0, sizeof(*r));
  r->mgr = mgr;
  r->dir = dir;
  r->fd = -1;
  r->slot = -1;
#if CYMG__OPENAT2
  r->fd = cymg__static_cache_root(mgr, dir, &r->slot);
  if (r->fd < 0) return -1;
  r->beneath = true;
  return 0;
#else
  struct stat st;
  if (stat(dir, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
#endif
}

static void root_free(root *r) {
  if (r->fd >= 0 && r->slot < 0) close(r->fd);
  free(r->real);
}

static int root_real(root *r) {
  if (r->real == NULL && (r->real = realpath(r->dir, NULL)) == NULL) return -1;
  r->len = strlen(r->real);
  return 0;
}

/* a + b + c, NUL-terminated; NULL when out of memory. */
static char *join(const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
  char *p = malloc(la + lb + lc + 1);
  if (p == NULL) return NULL;
  memcpy(p, a, la);
  memcpy(p + la, b, lb);
  if (c) memcpy(p + la + lb, c, lc);
  p[la + lb + lc] = '\0';
  return p;
}

/* The real path of root/rel (every symlink resolved), when it is the root or
 * inside it; NULL otherwise (errno ENOENT, or ENOMEM). */
static char *real_inside(root *r, const char *rel) {
  if (root_real(r) != 0) return NULL;
  char *full = join(r->real, "/", rel);
  if (full == NULL) return NULL;
  char *real = realpath(full, NULL);
  int e = errno;
  free(full);
  if (real == NULL) {
    errno = e == ENOMEM ? ENOMEM : ENOENT;
    return NULL;
  }
  if (strncmp(real, r->real, r->len) != 0 ||
      !(real[r->len] == '\0' || real[r->len] == '/' || r->len == 1)) {
    free(real);
    errno = ENOENT;
    return NULL;
  }
  return real;
}

#if CYMG__OPENAT2
static int openat2_retry(int dirfd, const char *rel, int flags, uint64_t resolve) {
  struct open_how how = {.flags = (uint64_t)flags, .resolve = resolve};
  long fd;
  /* EAGAIN: a rename elsewhere raced a ".." in the walk; the kernel asks for
   * a retry rather than risk an escape. */
  int tries = 0;
  do {
    fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
  } while (fd < 0 && errno == EAGAIN && ++tries < 4);
  return (int)fd;
}

/* The kernel refused a walk that left the root (EXDEV): an absolute symlink,
 * or ".." above the root, on the way. Such a link may still end inside (an
 * absolute link to a file of the root), as the realpath check allowed before
 * openat2. Resolve it, and open what it names beneath the root again, now with
 * no symlink allowed, so a link swapped in since the resolution is refused. */
static int open_resolved(root *r, const char *rel, int flags) {
  char *real = real_inside(r, rel);
  if (real == NULL) return -1;
  const char *rest = real + r->len;
  while (*rest == '/') rest++;
  int fd = openat2_retry(r->fd, *rest ? rest : ".", flags,
                         RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
  free(real);
  if (fd < 0 && (errno == ELOOP || errno == EXDEV)) errno = ENOENT;
  return fd;
}
#endif

/* Opens root/rel (rel relative, "." for the root itself) with flags. Anything
 * whose lookup leaves the root fails with ENOENT, as if it did not exist.
 * Returns the fd, or -1 with errno. */
static int root_open(root *r, const char *rel, int flags) {
  flags |= O_CLOEXEC;
#ifdef O_PATH
  /* openat2 refuses O_PATH with flags open(2) would ignore (EINVAL). */
  if (!(flags & O_PATH)) flags |= O_NOCTTY;
#else
  flags |= O_NOCTTY;
#endif
#if CYMG__OPENAT2
  if (r->beneath) {
    int fd = openat2_retry(r->fd, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
    if (fd >= 0) return fd;
    if (errno == EXDEV) return open_resolved(r, rel, flags);
    /* ENOSYS: a kernel before 5.6; EPERM: a seccomp filter of its time
     * (containers) refusing system calls it does not know. */
    if (errno != ENOSYS && errno != EPERM) return -1;
    r->beneath = false;
  }
#endif
  /* Without openat2: check where the path leads, then open it. A symlink
   * swapped in between the two steps would be followed. */
  char *real = real_inside(r, rel);
  if (real == NULL) return -1;
  free(real);
  char *full = join(r->real, "/", rel);
  if (full == NULL) return -1;
  int fd = open(full, flags);
  int e = errno;
  free(full);
  errno = e;
  return fd;
}

/* Opens rel beneath r with flags, through the manager's cache when the file
 * is a regular one and r has a cached root: *st is filled for any fd returned,
 * *borrowed tells whether the fd is the cache's. A lookup that fails under a
 * root whose path now names another folder is tried once more from the new
 * root. absent_ok caches a miss too (the ".gz" probe). Returns the fd, or -1
 * with errno. */
static int root_lookup(root *r, const char *rel, struct stat *st, bool *borrowed,
                       bool absent_ok) {
  *borrowed = false;
  int fd = -1;
  int hit = r->slot >= 0 ? cymg__static_cache_get(r->mgr, r->slot, rel, &fd, st) : CYMG__SC_MISS;
  if (hit == CYMG__SC_HIT) {
    *borrowed = true;
    return fd;
  }
  if (hit == CYMG__SC_ABSENT) {
    errno = ENOENT;
    return -1;
  }
  fd = root_open(r, rel, O_RDONLY | O_NONBLOCK);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR) && r->slot >= 0 &&
      cymg__static_cache_root_stale(r->mgr, r->slot)) {
    /* The root was renamed or replaced: look again from what its path names. */
    r->fd = cymg__static_cache_root(r->mgr, r->dir, &r->slot);
    if (r->fd < 0) {
      errno = ENOENT;
      return -1;
    }
    fd = root_open(r, rel, O_RDONLY | O_NONBLOCK);
  }
  if (fd < 0) {
    int e = errno;
    if (absent_ok && e != ENOMEM && r->slot >= 0)
      (void)cymg__static_cache_put(r->mgr, r->slot, rel, -1, NULL);
    errno = e;
    return -1;
  }
  if (fstat(fd, st) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (S_ISREG(st->st_mode) && r->slot >= 0 &&
      cymg__static_cache_put(r->mgr, r->slot, rel, fd, st))
    *borrowed = true;
  return fd;
}

/* When the client takes gzip, looks for "<path>.gz" (beneath r, or by path
 * when r is NULL) and, when it is a regular file, marks src as varying on
 * Accept-Encoding and makes src the sibling (its old fd closed). src->fd may
 * be -1: only a sibling will do then. A client that does not take gzip gets
 * the file without a look for the sibling (no system call spent on it) and
 * without Vary: what a shared cache keeps from that answer is still a correct
 * answer for any client. Returns 0, or CYMG_ENOMEM. */
static int add_sibling(const cymg_http_msg *msg, root *r, const char *path, source *src) {
  if (!cymg__http_accepts_gzip(msg)) return 0;
  size_t n = strlen(path);
  char *gz = malloc(n + 4);
  if (gz == NULL) return CYMG_ENOMEM;
  memcpy(gz, path, n);
  memcpy(gz + n, ".gz", 4);
  struct stat st;
  bool borrowed = false;
  int fd = r ? root_lookup(r, gz, &st, &borrowed, true)
             : open(gz, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  free(gz);
  if (fd >= 0 && (r == NULL || !borrowed)) {
    if (r == NULL && fstat(fd, &st) != 0) st.st_mode = 0;
    if (!S_ISREG(st.st_mode)) {
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) return 0;
  src->vary = true;
  if (src->fd >= 0 && !src->borrowed) close(src->fd);
  src->fd = fd;
  src->st = st;
  src->gzip = true;
  src->borrowed = borrowed;
  return 0;
}

int cymg_http_serve_file(cymg_conn *c, const cymg_http_msg *msg, const char *path,
                         const cymg_http_serve_opts *opts) {
  const cymg_http_serve_opts *o = opts ? opts : &no_opts;
  if (c == NULL || msg == NULL || path == NULL) return CYMG_EINVAL;
  source src = {.fd = -1, .name = path};
  src.fd = open_regular(path, &src.st);
  if (add_sibling(msg, NULL, path, &src) != 0) {
    if (src.fd >= 0 && !src.borrowed) close(src.fd);
    return reply_text(c, o, 500, NULL);
  }
  int rc = src.fd >= 0 ? reply_source(c, msg, o, &src) : reply_404(c, o);
  return cymg__http_reply_failed(c, rc, "serve_file"); /* never a request left hanging */
}

/* ---------------------------------------------------------- serve_dir ---- */

/* Hidden files (a segment starting with '.') are never served: they are where
 * .git, .env and .htpasswd live. ".well-known" (RFC 8615) is the exception. */
static bool hidden(const char *npath) {
  for (const char *p = npath; (p = strchr(p, '/')) != NULL;) {
    p++;
    size_t len = strcspn(p, "/");
    if (*p == '.' && !(len == 11 && memcmp(p, ".well-known", 11) == 0)) return true;
  }
  return false;
}

/* Appends a path percent-encoded except for unreserved bytes and '/'. */
static int encode_path(cymg_buf *b, const char *path) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
    bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("-._~/", *p) != NULL;
    char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
    if (cymg_buf_append(b, keep ? (const char *)p : e, keep ? 1 : 3) != 0) return CYMG_ENOMEM;
  }
  return 0;
}

typedef struct entry {
  char *name;
  bool dir;
  uint64_t size;
  int64_t mtime;
} entry;

static int entry_cmp(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->dir != y->dir) return x->dir ? -1 : 1; /* folders first */
  return strcmp(x->name, y->name);
}

static int html_escape(cymg_buf *b, const char *s) {
  for (; *s; s++) {
    const char *r = NULL;
    switch (*s) {
      case '&': r = "&amp;"; break;
      case '<': r = "&lt;"; break;
      case '>': r = "&gt;"; break;
      case '"': r = "&quot;"; break;
      case '\'': r = "&#39;"; break;
      default: break;
    }
    if (cymg_buf_append(b, r ? r : s, r ? strlen(r) : 1) != 0) return CYMG_ENOMEM;
  }
  return 0;
}

/* Stats the target of symlink `name` in the folder npath, when following it
 * stays inside the root. */
static bool link_inside(root *r, const char *npath, const char *name, struct stat *st) {
  char *rel = join(npath + 1, name, NULL);
  int fd = rel ? root_open(r, rel, PROBE_FLAGS) : -1;
  free(rel);
  if (fd < 0) return false;
  bool ok = fstat(fd, st) == 0;
  close(fd);
  return ok;
}

/* Writes the listing of the folder open as dfd (which this takes over; shown
 * as npath) into b. What a request could not get is left out: hidden names,
 * symlinks leading out of the root, entries that cannot be stat'ed. */
static int listing(int dfd, const char *npath, root *r, cymg_buf *b) {
  DIR *d = fdopendir(dfd);
  if (d == NULL) {
    int e = errno;
    close(dfd);
    return -e;
  }
  entry *ents = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue; /* ".", ".." and hidden names */
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISLNK(st.st_mode) && !link_inside(r, npath, de->d_name, &st)) continue;
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 32;
      entry *ne = realloc(ents, nc * sizeof(*ne));
      if (ne == NULL) goto nomem;
      ents = ne;
      cap = nc;
    }
    ents[n].name = strdup(de->d_name);
    if (ents[n].name == NULL) goto nomem;
    ents[n].dir = S_ISDIR(st.st_mode);
    ents[n].size = (uint64_t)st.st_size;
    ents[n].mtime = (int64_t)st.st_mtim.tv_sec;
    n++;
  }
  if (n > 1) qsort(ents, n, sizeof(*ents), entry_cmp);
  if (cymg_buf_printf(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ") <
          0 ||
      html_escape(b, npath) != 0 ||
      cymg_buf_printf(b, "</title></head>\n<body><h1>Index of ") < 0 ||
      html_escape(b, npath) != 0 ||
      cymg_buf_printf(b, "</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n") <
          0)
    goto nomem;
  if (strcmp(npath, "/") != 0 &&
      cymg_buf_printf(b, "<tr><td><a href=\"../\">../</a></td><td>-</td><td></td></tr>\n") < 0)
    goto nomem;
  for (size_t i = 0; i < n; i++) {
    char date[30];
    /* A time outside years 0..9999 has no IMF-fixdate: the cell stays empty. */
    if (cymg__http_format_date(ents[i].mtime, date) < 0) date[0] = '\0';
    /* Percent-encoding every reserved byte keeps a name such as "a:b" or
     * "#x" a relative link to itself. */
    if (cymg_buf_printf(b, "<tr><td><a href=\"") < 0 ||
        cymg_url_encode(cymg_str_c(ents[i].name), b) != 0 ||
        cymg_buf_printf(b, "%s\">", ents[i].dir ? "/" : "") < 0 ||
        html_escape(b, ents[i].name) != 0 ||
        cymg_buf_printf(b, "%s</a></td><td>", ents[i].dir ? "/" : "") < 0 ||
        (ents[i].dir ? cymg_buf_printf(b, "-") : cymg_buf_printf(b, "%" PRIu64, ents[i].size)) <
            0 ||
        cymg_buf_printf(b, "</td><td>%s</td></tr>\n", date) < 0)
      goto nomem;
  }
  if (cymg_buf_printf(b, "</table>\n</body></html>\n") < 0) goto nomem;
  goto out;
nomem:
  rc = CYMG_ENOMEM;
out:
  for (size_t i = 0; i < n; i++) free(ents[i].name);
  free(ents);
  closedir(d);
  return rc;
}

/* Opens root/rel as a regular file to send, with its ".gz" sibling. Returns 0
 * (src ready), CYMG_ENOMEM, or -1 when there is nothing to send. */
static int open_source(const cymg_http_msg *msg, root *r, const char *rel, source *src) {
  memset(src, 0, sizeof(*src));
  src->name = rel;
  src->fd = root_lookup(r, rel, &src->st, &src->borrowed, false);
  if (src->fd >= 0 && !S_ISREG(src->st.st_mode)) {
    close(src->fd); /* never the cache's: it keeps regular files only */
    src->fd = -1;
    errno = ENOENT;
  }
  if (src->fd < 0) return errno == ENOMEM ? CYMG_ENOMEM : -1;
  if (add_sibling(msg, r, rel, src) != 0) {
    if (!src->borrowed) close(src->fd);
    return CYMG_ENOMEM;
  }
  return 0;
}

/* The folder npath, open as dfd (which this takes over): redirect to the slash
 * form, else index files, else a listing. */
static int serve_folder(cymg_conn *c, const cymg_http_msg *msg, const cymg_http_serve_opts *o,
                        root *r, const char *npath, int dfd) {
  int rc;
  if (npath[strlen(npath) - 1] != '/') {
    close(dfd);
    /* Relative links in the folder's pages resolve against the slash form. The
     * target is built from the normalised path, never the raw one: "//host/x"
     * would otherwise redirect off-site. */
    cymg_buf h = {0};
    if (cymg_buf_printf(&h, "Location: ") < 0 || encode_path(&h, npath) != 0 ||
        cymg_buf_printf(&h, "/%s%.*s\r\n", msg->query.len ? "?" : "", (int)msg->query.len,
                        msg->query.buf) < 0) {
      cymg_buf_free(&h);
      return CYMG_ENOMEM;
    }
    rc = reply_text(c, o, 301, h.buf);
    cymg_buf_free(&h);
    return rc;
  }
  const char *list = o->index_files ? o->index_files : "index.html,index.htm";
  cymg_str rest = cymg_str_c(list), item;
  while (cymg_str_split(&rest, ',', &item)) {
    item = cymg_str_trim(item);
    if (item.len == 0 || memchr(item.buf, '/', item.len) != NULL) continue;
    char *name = cymg_str_dup(item);
    char *rel = name ? join(npath + 1, name, NULL) : NULL; /* npath ends in '/' */
    source src;
    bool found = rel && open_source(msg, r, rel, &src) == 0;
    rc = found ? reply_source(c, msg, o, &src) : 0;
    free(rel);
    free(name);
    if (found) {
      close(dfd);
      return rc;
    }
  }
  if (!o->dir_listing) {
    close(dfd);
    return reply_text(c, o, 403, NULL);
  }
  cymg_buf body = {0};
  rc = listing(dfd, npath, r, &body);
  if (rc == 0) {
    cymg_buf h = {0};
    const char *hdrs = NULL;
    if (cymg_buf_printf(&h, "Content-Type: text/html; charset=utf-8\r\n") >= 0)
      hdrs = finish_headers(&h, o);
    rc = hdrs ? cymg_http_reply_data(c, 200, hdrs, body.buf, body.len) : CYMG_ENOMEM;
    cymg_buf_free(&h);
  } else {
    rc = reply_text(c, o, rc == CYMG_ENOMEM ? 500 : 403, NULL);
  }
  cymg_buf_free(&body);
  return rc;
}

/* Serves npath (normalised, not hidden) from the root. */
static int serve_path(cymg_conn *c, const cymg_http_msg *msg, const cymg_http_serve_opts *o,
                      root *r, const char *npath, size_t n) {
  /* One lookup decides: a folder, a file, or nothing to show. The descriptor
   * is what gets sent or listed, so nothing is looked up twice. */
  const char *rel = n > 1 ? npath + 1 : ".";
  source src = {.fd = -1, .name = rel};
  int fd = root_lookup(r, rel, &src.st, &src.borrowed, false);
  if (fd < 0) return errno == ENOMEM ? reply_text(c, o, 500, NULL) : reply_404(c, o);
  src.fd = fd;
  if (S_ISDIR(src.st.st_mode)) return serve_folder(c, msg, o, r, npath, fd);
  /* "/file/" names a folder: not this file. FIFOs, devices, sockets: never. */
  if (npath[n - 1] == '/' || !S_ISREG(src.st.st_mode)) {
    if (!src.borrowed) close(fd);
    return reply_404(c, o);
  }
  if (add_sibling(msg, r, rel, &src) != 0) {
    if (!src.borrowed) close(src.fd);
    return reply_text(c, o, 500, NULL);
  }
  return reply_source(c, msg, o, &src);
}

int cymg_http_serve_dir(cymg_conn *c, const cymg_http_msg *msg, const cymg_http_serve_opts *opts) {
  if (c == NULL || msg == NULL || opts == NULL || opts->root_dir == NULL) return CYMG_EINVAL;
  const cymg_http_serve_opts *o = opts;
  if (!cymg_str_eq(msg->method, cymg_str_c("GET")) && !cymg_str_eq(msg->method, cymg_str_c("HEAD")))
    return reply_text(c, o, 405, "Allow: GET, HEAD\r\n");
  char *npath = malloc(msg->uri.len + 1);
  if (npath == NULL) return reply_text(c, o, 500, NULL);
  int n = cymg__http_normalize_path(msg->uri, npath, msg->uri.len + 1);
  root r;
  int rc;
  if (n == CYMG_EPARSE) {
    rc = reply_text(c, o, 400, NULL);
  } else if (n < 0 || hidden(npath)) {
    rc = reply_404(c, o); /* refused paths look like missing ones */
  } else if (root_init(&r, o->root_dir, c->mgr) != 0) {
    rc = reply_text(c, o, 500, NULL); /* a misconfigured root should be seen */
  } else {
    rc = serve_path(c, msg, o, &r, npath, (size_t)n);
    root_free(&r);
  }
  free(npath);
  return cymg__http_reply_failed(c, rc, "serve_dir"); /* never a request left hanging */
}
