/* Static files: serve_dir and serve_file, with the validators, conditional
 * requests and ranges of RFC 9110 (§8.8, §13, §14).
 *
 * Decisions:
 * - ETag: strong, from the file's size and its mtime in nanoseconds, the same
 *   assumption nginx makes: the bytes of a file do not change without its size
 *   or mtime changing. Strong, so If-Range works for resumed downloads. A ".gz"
 *   sibling has its own size and mtime, hence its own ETag.
 * - Last-Modified: the mtime in seconds as an IMF-fixdate.
 * - Preconditions in the order of §13.2.2; If-Modified-Since only without
 *   If-None-Match, and only for GET and HEAD. Range only for GET. */
#define _FILE_OFFSET_BITS 64 /* files above 2 GiB on 32-bit systems */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cymg/error.h"
#include "cymg/str.h"
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

int cymg__http_etag(char *out, size_t out_len, uint64_t size, int64_t mtime_sec,
                    long mtime_nsec) {
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

int cymg__http_preconditions(const cymg_http_msg *msg, cymg_str etag, int64_t mtime) {
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
  } else if (get_head && date_field(msg, "If-Modified-Since", &t) && mtime <= t) {
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

/* Is a weight ("q" parameter value) zero? "0", "0.", "0.0" up to "0.000". */
static bool qzero(cymg_str q) {
  if (q.len == 0 || q.buf[0] != '0') return false;
  if (q.len == 1) return true;
  if (q.buf[1] != '.' || q.len > 5) return false;
  for (size_t i = 2; i < q.len; i++) {
    if (q.buf[i] != '0') return false;
  }
  return true;
}

bool cymg__http_accepts_gzip(const cymg_http_msg *msg) {
  int gzip = -1, star = -1; /* -1 not listed, 0 refused (q=0), 1 accepted */
  for (size_t i = 0; i < msg->num_headers; i++) {
    if (!cymg_str_case_eq(msg->headers[i].name, cymg_str_c("Accept-Encoding"))) continue;
    cymg_str rest = msg->headers[i].value, item;
    while (cymg_str_split(&rest, ',', &item)) {
      cymg_str params = item, coding;
      cymg_str_split(&params, ';', &coding);
      coding = cymg_str_trim(coding);
      int ok = 1;
      cymg_str param;
      while (cymg_str_split(&params, ';', &param)) {
        param = cymg_str_trim(param);
        if (param.len >= 2 && (param.buf[0] == 'q' || param.buf[0] == 'Q') && param.buf[1] == '=')
          ok = !qzero(cymg_str_trim(cymg_str_n(param.buf + 2, param.len - 2)));
      }
      if (cymg_str_case_eq(coding, cymg_str_c("gzip")) ||
          cymg_str_case_eq(coding, cymg_str_c("x-gzip"))) {
        gzip = gzip == 1 ? 1 : ok;
      } else if (cymg_str_eq(coding, cymg_str_c("*"))) {
        star = ok;
      }
    }
  }
  return gzip == 1 || (gzip == -1 && star == 1);
}
