/* What static.c and multipart.c share with their tests and fuzz targets: the
 * sans-I/O pieces of file serving (path normalisation, Range, conditionals,
 * dates) and the incremental multipart parser behind cymg_http_upload(). */
#ifndef CYMG_STATIC_INTERNAL_H
#define CYMG_STATIC_INTERNAL_H

#include "cymg/http.h"

/* Normalises the path of a request-target (msg->uri) for mapping onto a folder:
 * percent-decodes it, collapses "//", resolves "." and "..", and writes the
 * result, always starting with '/', NUL-terminated, to out. A result ending in
 * '/' means the input named a folder (it ended in '/', "." or ".."); "/" alone
 * is the root. Bytes >= 0x80 pass through (UTF-8 names).
 * Returns the length written; CYMG_EPARSE when uri does not start with '/' or
 * has a malformed %-escape; CYMG_EINVAL for what must never reach the file
 * system: a decoded NUL or other control byte, DEL, a backslash (raw or
 * encoded), an encoded '/', or a ".." above the root; CYMG_ENOSPC when out is
 * too small (uri.len + 1 bytes always suffice). On failure out holds "". */
CYMG_NODISCARD int cymg__http_normalize_path(cymg_str uri, char *out, size_t out_len);

/* ---- validators, conditionals, ranges (RFC 9110 §8.8, §13, §14) ---- */

/* Parses an HTTP-date in any of the three forms of RFC 9110 §5.6.7 (IMF-fixdate,
 * obsolete RFC 850 with a two-digit year read as 1970..2069, asctime) into
 * seconds since the epoch. Returns 0 or CYMG_EPARSE. */
CYMG_NODISCARD int cymg__http_parse_date(cymg_str s, int64_t *epoch);
/* Formats an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 characters and a
 * NUL). Returns 29, or CYMG_ERANGE for a time outside years 0..9999. */
CYMG_NODISCARD int cymg__http_format_date(int64_t epoch, char out[30]);

/* Writes the strong entity-tag (with its quotes) of a file of this size and
 * mtime. Returns its length, or CYMG_ENOSPC (48 bytes always suffice). */
CYMG_NODISCARD int cymg__http_etag(char *out, size_t out_len, uint64_t size, int64_t mtime_sec,
                                   long mtime_nsec);

/* Evaluates the preconditions of msg against a representation with this
 * entity-tag and Last-Modified time, in the order of RFC 9110 §13.2.2, at
 * wall-clock time now (seconds since the epoch). Returns 0 to answer
 * normally, 304 (GET/HEAD: not modified) or 412. */
int cymg__http_preconditions(const cymg_http_msg *msg, cymg_str etag, int64_t mtime, int64_t now);

/* If-Range (§13.1.5): true when a Range header may be honoured: no If-Range, or
 * one whose entity-tag matches etag strongly or whose date equals mtime. */
bool cymg__http_if_range(const cymg_http_msg *msg, cymg_str etag, int64_t mtime);

/* What a Range header asks of a representation of `size` bytes (§14.2). */
enum {
  CYMG__RANGE_NONE = 0, /* ignore it: absent, malformed, other unit, many ranges */
  CYMG__RANGE_ONE = 1,  /* one satisfiable range: *start, *len (206) */
  CYMG__RANGE_UNSAT = 2 /* not satisfiable (416) */
};
/* Parses a Range field value ("bytes=a-b", "bytes=a-", "bytes=-n"). A range set
 * with several ranges is served whole (allowed by §14.2), as is any range of
 * an empty representation. Returns a CYMG__RANGE_* value. */
CYMG_NODISCARD int cymg__http_parse_range(cymg_str value, uint64_t size, uint64_t *start,
                                          uint64_t *len);

/* True when the Accept-Encoding fields of msg accept gzip (gzip or x-gzip with
 * q > 0, or "*" with q > 0 when gzip is not listed). */
bool cymg__http_accepts_gzip(const cymg_http_msg *msg);

/* ---- the manager's cache of roots and hot files (static_cache.c) ---- */

#define CYMG__SC_ROOTS 4       /* served roots kept open */
#define CYMG__SC_FILES 64      /* files (and missing ".gz" siblings) kept open */
#define CYMG__SC_MAX_PATH 255  /* longer relative paths are not cached */
#define CYMG__SC_VALID_MS 1000 /* an entry is looked up by its path again after this */
enum { CYMG__SC_MISS = 0, CYMG__SC_HIT = 1, CYMG__SC_ABSENT = 2 };

struct stat;
/* A descriptor of the folder dir (O_PATH), owned by the cache (*slot >= 0)
 * or, when the cache could not be made, by the caller (*slot = -1). The path
 * is checked against the descriptor every CYMG__SC_VALID_MS. Returns the fd,
 * or -1 with errno. */
int cymg__static_cache_root(cymg_mgr *mgr, const char *dir, int *slot);
/* A lookup beneath root slot failed: true when the root's path no longer names
 * the folder it is open on (the slot is dropped: open the root again). */
bool cymg__static_cache_root_stale(cymg_mgr *mgr, int slot);
/* rel beneath root slot: CYMG__SC_HIT with *fd (the cache's: never closed by
 * the caller) and *st fresh from fstat; CYMG__SC_ABSENT when it is known not to
 * be a regular file; CYMG__SC_MISS when it must be looked up. */
int cymg__static_cache_get(cymg_mgr *mgr, int slot, const char *rel, int *fd, struct stat *st);
/* Keeps fd (a regular file opened beneath root slot, or -1: not there) as rel.
 * Returns true when the cache took fd; false leaves it to the caller. */
bool cymg__static_cache_put(cymg_mgr *mgr, int slot, const char *rel, int fd,
                            const struct stat *st);

/* ---- multipart ---- */

/* Longest boundary RFC 2046 §5.1.1 allows. */
#define CYMG__MP_MAX_BOUNDARY 70
/* Largest header block of one part (fields and the empty line). */
#define CYMG__MP_MAX_HEAD 8192
/* Most header fields in one part. */
#define CYMG__MP_MAX_FIELDS 16

/* Checks a boundary: 1..70 bchars (RFC 2046 §5.1.1), not ending in a space.
 * Returns 0 or CYMG_EPARSE. */
CYMG_NODISCARD int cymg__mp_check_boundary(cymg_str boundary);

/* Takes the boundary from a Content-Type value: "multipart/<any>; boundary=...".
 * Returns 0, or CYMG_EPARSE (not multipart, no or invalid boundary). */
CYMG_NODISCARD int cymg__mp_boundary(cymg_str content_type, cymg_str *boundary);

/* What the incremental parser reports. Each returns 0 to go on, or a negative
 * code that stops the parser (the code becomes its sticky error). */
typedef struct cymg__mp_cb {
  /* A part starts: name, filename and headers are set (views valid only during
   * the call), body is empty. */
  int (*begin)(void *ctx, const cymg_http_part *part);
  /* n more bytes of the current part's body (n > 0). */
  int (*data)(void *ctx, const char *p, size_t n);
  /* The current part's body is complete. */
  int (*end)(void *ctx);
} cymg__mp_cb;

/* Incremental multipart parser: the same grammar as cymg_http_multipart_next(),
 * fed the body in pieces split anywhere. A delimiter split across pieces is
 * recognised because at most its length minus one bytes are held back. */
typedef struct cymg__mp {
  const cymg__mp_cb *cb;
  void *ctx;
  char delim[4 + CYMG__MP_MAX_BOUNDARY]; /* CRLF "--" boundary */
  size_t dlen;
  char held[4 + CYMG__MP_MAX_BOUNDARY]; /* a possible start of a delimiter */
  size_t hold;
  size_t hlen; /* bytes in head */
  int err;     /* sticky error, 0 while fine */
  uint8_t state, after;
  char head[CYMG__MP_MAX_HEAD];
} cymg__mp;

/* Returns 0, or CYMG_EPARSE for an invalid boundary. */
CYMG_NODISCARD int cymg__mp_init(cymg__mp *mp, cymg_str boundary, const cymg__mp_cb *cb, void *ctx);
/* Feeds n bytes. Returns 0, CYMG_EPARSE, or a callback's code; errors stick. */
CYMG_NODISCARD int cymg__mp_feed(cymg__mp *mp, const char *p, size_t n);
/* The body has ended: 0 when the closing delimiter was seen, else CYMG_EPARSE
 * (or the sticky error). Bytes after the closing delimiter are ignored. */
CYMG_NODISCARD int cymg__mp_finish(cymg__mp *mp);
/* True while a part's body is being delivered (begin seen, end not yet). */
bool cymg__mp_in_part(const cymg__mp *mp);

#endif
