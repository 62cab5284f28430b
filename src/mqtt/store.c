/* The broker's persistence log: an append-only file of framed records.
 *
 * File:   "CYMGMQST" | u32 LE format version | record...
 * Record: u32 LE body length | u32 LE CRC-32C of the body | body
 * Body:   type byte | varint field mask | the fields present, in mask order
 *         (strings: varint length + bytes; numbers: varints; bytes: one byte;
 *         booleans are mask bits only). A zero or empty field is left out.
 *
 * Durability: put only queues in memory; sync writes the queue and
 * fdatasync()s. The broker syncs before sending the acknowledgements that
 * depend on the records (group commit), so a crash loses only records that
 * nobody was told about, and those can only be the file's tail: a tail that
 * does not frame or check is cut off at open. Anything bad followed by a
 * good record is damage, not a torn write, and refuses to load.
 * See docs/mqtt-store-bridge.md. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "mqtt/broker_internal.h"

#define ST_MAGIC "CYMGMQST"
#define ST_MAGIC_LEN 8
#define ST_VERSION 1u
#define ST_HDR_LEN 12
#define ST_FRAME 8
/* Largest body: an MQTT packet is at most 256 MiB, plus the other fields. */
#define ST_MAX_BODY ((size_t) 300 << 20)
/* put writes the queue out (without syncing) once it holds this much, so
 * memory stays bounded however long the broker goes between syncs. */
#define ST_QUEUE_MAX ((size_t) 4 << 20)
#define ST_QUEUE_HARD ((size_t) 64 << 20)
#define ST_COMPACT_SLACK ((uint64_t) 1 << 20)

enum {
  F_CLIENT = 1u << 0,
  F_TOPIC = 1u << 1,
  F_PAYLOAD = 1u << 2,
  F_PROPS = 1u << 3,
  F_SEQ = 1u << 4,
  F_TIME = 1u << 5,
  F_NUM = 1u << 6,
  F_ID = 1u << 7,
  F_QOS = 1u << 8,
  F_OPTS = 1u << 9,
  F_VERSION = 1u << 10,
  F_RETAIN = 1u << 11,
  F_RELEASED = 1u << 12,
  F_ALL = (1u << 13) - 1
};

struct cymg__mqtt_store {
  char *path, *tmp_path;
  int fd;       /* the log in use */
  int out_fd;   /* where writes go: fd, or the temporary file while compacting */
  uint64_t size;      /* bytes of out_fd known good (header + whole records) */
  uint64_t base_size; /* size after the last open or compaction */
  char *q;            /* queued records, not written yet */
  size_t qlen, qcap;
  bool dirty;   /* records put since the last successful sync */
  int broken;   /* a sticky error: after a failed fdatasync nothing is trusted */
  int dump_err; /* the first put error during a compaction's dump */
};

/* ---- CRC-32C (Castagnoli), four bits at a time ---- */

static const uint32_t crc_tab[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3,
    0x61c69362, 0x7198540d, 0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9,
    0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75};

static uint32_t crc32c(const void *p, size_t n) {
  const unsigned char *s = p;
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= s[i];
    c = (c >> 4) ^ crc_tab[c & 15];
    c = (c >> 4) ^ crc_tab[c & 15];
  }
  return c ^ 0xffffffffu;
}

static void put_u32le(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char) v;
  p[1] = (unsigned char) (v >> 8);
  p[2] = (unsigned char) (v >> 16);
  p[3] = (unsigned char) (v >> 24);
}

static uint32_t get_u32le(const unsigned char *p) {
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) CYMG_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- I/O ---- */

/* Writes all n bytes at off, through EINTR and short writes. */
static int write_all(int fd, const void *p, size_t n, uint64_t off) {
  const char *s = p;
  while (n > 0) {
    ssize_t w = pwrite(fd, s, n, (off_t) off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (w == 0) return -EIO;
    s += w;
    n -= (size_t) w;
    off += (uint64_t) w;
  }
  return 0;
}

static int sync_dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash == NULL ? strdup(".")
              : slash == path ? strdup("/")
                              : strndup(path, (size_t) (slash - path));
  if (dir == NULL) return CYMG_ENOMEM;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (dfd < 0) return -errno;
  int rc = fsync(dfd) == 0 ? 0 : -errno;
  if (close(dfd) != 0 && rc == 0) rc = -errno;
  return rc;
}

/* Writes the queue to out_fd at size. On failure the file is cut back to its
 * good size and the queue kept, so a later sync can retry. */
static int flush_queue(cymg__mqtt_store *st) {
  if (st->qlen == 0) return 0;
  int rc = write_all(st->out_fd, st->q, st->qlen, st->size);
  if (rc != 0) {
    if (ftruncate(st->out_fd, (off_t) st->size) != 0 && st->out_fd == st->fd) st->broken = rc;
    return rc;
  }
  st->size += st->qlen;
  st->qlen = 0;
  return 0;
}

/* ---- record encoding ---- */

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static unsigned char *put_varint(unsigned char *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (unsigned char) (v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char) v;
  return p;
}

static unsigned rec_mask(const cymg__mqtt_rec *r) {
  unsigned m = 0;
  if (r->client_id.len) m |= F_CLIENT;
  if (r->topic.len) m |= F_TOPIC;
  if (r->payload.len) m |= F_PAYLOAD;
  if (r->props.len) m |= F_PROPS;
  if (r->seq) m |= F_SEQ;
  if (r->time) m |= F_TIME;
  if (r->num) m |= F_NUM;
  if (r->id) m |= F_ID;
  if (r->qos) m |= F_QOS;
  if (r->opts) m |= F_OPTS;
  if (r->version) m |= F_VERSION;
  if (r->retain) m |= F_RETAIN;
  if (r->released) m |= F_RELEASED;
  return m;
}

static int put_rec(cymg__mqtt_store *st, const cymg__mqtt_rec *r) {
  if (r->type < CYMG__ST_RETAIN || r->type > CYMG__ST_QOS2_IN_DEL) return CYMG_EINVAL;
  if (st->qlen >= ST_QUEUE_MAX) {
    /* Written early, synced with the rest later. If writing fails the
     * records stay queued for the sync to retry, up to a hard bound. */
    int rc = flush_queue(st);
    if (rc != 0 && st->qlen >= ST_QUEUE_HARD) return rc;
    if (rc == 0 && st->qcap > ST_QUEUE_MAX * 2) {
      free(st->q);
      st->q = NULL;
      st->qcap = 0;
    }
  }
  const cymg_str *strs[4] = {&r->client_id, &r->topic, &r->payload, &r->props};
  unsigned m = rec_mask(r);
  size_t body = 1 + varint_len(m);
  for (int i = 0; i < 4; i++) {
    if (strs[i]->len > ST_MAX_BODY) return CYMG_EINVAL;
    if (m & (1u << i)) body += varint_len(strs[i]->len) + strs[i]->len;
  }
  if (m & F_SEQ) body += varint_len(r->seq);
  if (m & F_TIME) body += varint_len(r->time);
  if (m & F_NUM) body += varint_len(r->num);
  if (m & F_ID) body += varint_len(r->id);
  body += (size_t) !!(m & F_QOS) + !!(m & F_OPTS) + !!(m & F_VERSION);
  if (body > ST_MAX_BODY) return CYMG_EINVAL;

  size_t need = ST_FRAME + body;
  if (st->qcap - st->qlen < need) {
    size_t cap = st->qcap ? st->qcap : 4096;
    while (cap - st->qlen < need) cap *= 2;
    char *nq = realloc(st->q, cap);
    if (nq == NULL) return CYMG_ENOMEM;
    st->q = nq;
    st->qcap = cap;
  }
  unsigned char *start = (unsigned char *) st->q + st->qlen, *p = start + ST_FRAME;
  *p++ = r->type;
  p = put_varint(p, m);
  for (int i = 0; i < 4; i++) {
    if (!(m & (1u << i))) continue;
    p = put_varint(p, strs[i]->len);
    memcpy(p, strs[i]->buf, strs[i]->len);
    p += strs[i]->len;
  }
  if (m & F_SEQ) p = put_varint(p, r->seq);
  if (m & F_TIME) p = put_varint(p, r->time);
  if (m & F_NUM) p = put_varint(p, r->num);
  if (m & F_ID) p = put_varint(p, r->id);
  if (m & F_QOS) *p++ = r->qos;
  if (m & F_OPTS) *p++ = r->opts;
  if (m & F_VERSION) *p++ = r->version;
  put_u32le(start, (uint32_t) body);
  put_u32le(start + 4, crc32c(start + ST_FRAME, body));
  st->qlen += need;
  st->dirty = true;
  return 0;
}

int cymg__mqtt_store_put(cymg__mqtt_store *st, const cymg__mqtt_rec *r) {
  if (st == NULL || r == NULL) return CYMG_EINVAL;
  int rc = put_rec(st, r);
  /* The dump callback returns nothing: its first failure fails the compaction. */
  if (rc != 0 && st->out_fd != st->fd && st->dump_err == 0) st->dump_err = rc;
  return rc;
}

/* ---- record decoding ---- */

static bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t max,
                       uint64_t *out) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (*p >= end) return false;
    unsigned char c = *(*p)++;
    if (shift == 63 && c > 1) return false;
    v |= (uint64_t) (c & 0x7f) << shift;
    if (!(c & 0x80)) {
      if (v > max) return false;
      *out = v;
      return true;
    }
  }
  return false;
}

static bool decode_body(const unsigned char *p, size_t n, cymg__mqtt_rec *r) {
  const unsigned char *end = p + n;
  memset(r, 0, sizeof(*r));
  if (n < 2) return false;
  r->type = *p++;
  if (r->type < CYMG__ST_RETAIN || r->type > CYMG__ST_QOS2_IN_DEL) return false;
  uint64_t m, v;
  if (!get_varint(&p, end, F_ALL, &m)) return false;
  cymg_str *strs[4] = {&r->client_id, &r->topic, &r->payload, &r->props};
  for (int i = 0; i < 4; i++) {
    if (!(m & (1u << i))) continue;
    if (!get_varint(&p, end, (uint64_t) (end - p), &v)) return false;
    if (v > (uint64_t) (end - p)) return false;
    *strs[i] = cymg_str_n(p, (size_t) v);
    p += v;
  }
  if ((m & F_SEQ) && !get_varint(&p, end, UINT64_MAX, &r->seq)) return false;
  if ((m & F_TIME) && !get_varint(&p, end, UINT64_MAX, &r->time)) return false;
  if (m & F_NUM) {
    if (!get_varint(&p, end, UINT32_MAX, &v)) return false;
    r->num = (uint32_t) v;
  }
  if (m & F_ID) {
    if (!get_varint(&p, end, UINT16_MAX, &v)) return false;
    r->id = (uint16_t) v;
  }
  uint8_t *bytes[3] = {&r->qos, &r->opts, &r->version};
  for (int i = 0; i < 3; i++) {
    if (!(m & (F_QOS << i))) continue;
    if (p >= end) return false;
    *bytes[i] = *p++;
  }
  r->retain = (m & F_RETAIN) != 0;
  r->released = (m & F_RELEASED) != 0;
  return p == end;
}

/* Whether a whole record with a good CRC starts at off. */
static bool frame_ok(const unsigned char *map, uint64_t fsize, uint64_t off, uint32_t *len) {
  if (fsize - off < ST_FRAME) return false;
  uint32_t n = get_u32le(map + off);
  if (n < 2 || n > ST_MAX_BODY || fsize - off - ST_FRAME < n) return false;
  if (crc32c(map + off + ST_FRAME, n) != get_u32le(map + off + 4)) return false;
  *len = n;
  return true;
}

/* After a bad frame at off: whether a good record starts anywhere after it.
 * Then the bad one is damage inside the file; otherwise a torn tail. Costly,
 * but only ever run on a damaged file. */
static bool good_record_after(const unsigned char *map, uint64_t fsize, uint64_t off) {
  uint32_t len;
  for (uint64_t p = off + 1; p + ST_FRAME + 2 <= fsize; p++) {
    unsigned char type = map[p + ST_FRAME];
    if (type < CYMG__ST_RETAIN || type > CYMG__ST_QOS2_IN_DEL) continue;
    if (frame_ok(map, fsize, p, &len)) return true;
  }
  return false;
}

/* Replays the records of map[0..fsize); sets *good to the end of the last
 * good one. */
static int replay(const char *path, const unsigned char *map, uint64_t fsize,
                  cymg__mqtt_store_fn fn, void *data, uint64_t *good, char *err, size_t errlen) {
  uint64_t off = ST_HDR_LEN;
  uint64_t count = 0;
  while (off < fsize) {
    uint32_t len;
    if (!frame_ok(map, fsize, off, &len)) {
      if (good_record_after(map, fsize, off)) {
        set_err(err, errlen,
                "%s: record %" PRIu64 " at byte %" PRIu64
                " is damaged (bad length or checksum) and good records follow it",
                path, count + 1, off);
        return CYMG_EPARSE;
      }
      break; /* torn tail */
    }
    cymg__mqtt_rec r;
    if (!decode_body(map + off + ST_FRAME, len, &r)) {
      set_err(err, errlen, "%s: record %" PRIu64 " at byte %" PRIu64 " has a bad encoding",
              path, count + 1, off);
      return CYMG_EPARSE;
    }
    if (fn != NULL) fn(data, &r);
    off += ST_FRAME + len;
    count++;
  }
  *good = off < fsize ? off : fsize;
  return 0;
}

/* ---- open / sync / compact / close ---- */

static void header(unsigned char h[ST_HDR_LEN]) {
  memcpy(h, ST_MAGIC, ST_MAGIC_LEN);
  put_u32le(h + ST_MAGIC_LEN, ST_VERSION);
}

static void store_free(cymg__mqtt_store *st) {
  if (st == NULL) return;
  if (st->fd >= 0 && close(st->fd) != 0)
    CYMG__ERR("mqtt store %s: close: %s", st->path, strerror(errno));
  free(st->q);
  free(st->path);
  free(st->tmp_path);
  free(st);
}

/* Loads an opened log: checks the header, replays, cuts a torn tail. */
static int load(cymg__mqtt_store *st, cymg__mqtt_store_fn fn, void *data, char *err,
                size_t errlen) {
  struct stat sb;
  if (fstat(st->fd, &sb) != 0) {
    int rc = -errno;
    set_err(err, errlen, "%s: %s", st->path, strerror(-rc));
    return rc;
  }
  uint64_t fsize = (uint64_t) sb.st_size;
  unsigned char h[ST_HDR_LEN];
  header(h);
  if (fsize < ST_HDR_LEN) {
    /* Empty, or a crash while it was being created: a new log. Anything else
     * this short is not ours. */
    unsigned char buf[ST_HDR_LEN];
    ssize_t n = fsize == 0 ? 0 : pread(st->fd, buf, (size_t) fsize, 0);
    if (n < 0) {
      int rc = -errno;
      set_err(err, errlen, "%s: %s", st->path, strerror(-rc));
      return rc;
    }
    if ((uint64_t) n != fsize || memcmp(buf, h, (size_t) fsize) != 0) {
      set_err(err, errlen, "%s: not an MQTT persistence file (bad header)", st->path);
      return CYMG_EPARSE;
    }
    if (fsize > 0) CYMG__ERR("mqtt store %s: warning: torn header rewritten", st->path);
    int rc = write_all(st->fd, h, sizeof(h), 0);
    if (rc == 0 && fdatasync(st->fd) != 0) rc = -errno;
    if (rc == 0) rc = sync_dir_of(st->path);
    if (rc != 0) {
      set_err(err, errlen, "%s: cannot write the header: %s", st->path, cymg_strerror(rc));
      return rc;
    }
    st->size = st->base_size = ST_HDR_LEN;
    return 0;
  }
  if (fsize > SIZE_MAX) {
    set_err(err, errlen, "%s: too large to load", st->path);
    return CYMG_ERANGE;
  }
  void *map = mmap(NULL, (size_t) fsize, PROT_READ, MAP_PRIVATE, st->fd, 0);
  if (map == MAP_FAILED) {
    int rc = -errno;
    set_err(err, errlen, "%s: mmap: %s", st->path, strerror(-rc));
    return rc;
  }
  int rc = 0;
  uint64_t good = fsize;
  if (memcmp(map, h, ST_MAGIC_LEN) != 0) {
    set_err(err, errlen, "%s: not an MQTT persistence file (bad magic)", st->path);
    rc = CYMG_EPARSE;
  } else if (get_u32le((const unsigned char *) map + ST_MAGIC_LEN) != ST_VERSION) {
    set_err(err, errlen, "%s: persistence format version %u, this build reads %u", st->path,
            get_u32le((const unsigned char *) map + ST_MAGIC_LEN), ST_VERSION);
    rc = CYMG_EPARSE;
  } else {
    rc = replay(st->path, map, fsize, fn, data, &good, err, errlen);
  }
  if (munmap(map, (size_t) fsize) != 0 && rc == 0) {
    rc = -errno;
    set_err(err, errlen, "%s: munmap: %s", st->path, strerror(-rc));
  }
  if (rc != 0) return rc;
  if (good < fsize) {
    CYMG__ERR("mqtt store %s: warning: torn or corrupt tail of %" PRIu64
              " bytes at byte %" PRIu64 " cut off (never acknowledged)",
              st->path, fsize - good, good);
    if (ftruncate(st->fd, (off_t) good) != 0 || fdatasync(st->fd) != 0) {
      rc = -errno;
      set_err(err, errlen, "%s: cannot cut the torn tail: %s", st->path, strerror(-rc));
      return rc;
    }
  }
  st->size = st->base_size = good;
  return 0;
}

int cymg__mqtt_store_open(const char *path, cymg__mqtt_store_fn fn, void *data,
                          cymg__mqtt_store **out, char *err, size_t errlen) {
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (path == NULL || *path == '\0' || out == NULL) {
    set_err(err, errlen, "no persistence file path");
    return CYMG_EINVAL;
  }
  *out = NULL;
  cymg__mqtt_store *st = calloc(1, sizeof(*st));
  size_t plen = strlen(path);
  if (st != NULL) {
    st->fd = st->out_fd = -1;
    st->path = strdup(path);
    st->tmp_path = malloc(plen + sizeof(".tmp"));
  }
  if (st == NULL || st->path == NULL || st->tmp_path == NULL) {
    store_free(st);
    set_err(err, errlen, "out of memory");
    return CYMG_ENOMEM;
  }
  memcpy(st->tmp_path, path, plen);
  memcpy(st->tmp_path + plen, ".tmp", sizeof(".tmp"));

  int rc = 0;
  st->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (st->fd < 0) {
    rc = -errno;
    set_err(err, errlen, "%s: %s", path, strerror(-rc));
  } else if (flock(st->fd, LOCK_EX | LOCK_NB) != 0) {
    rc = -errno;
    set_err(err, errlen, "%s: %s", path,
            rc == -EWOULDBLOCK ? "in use by another process" : strerror(-rc));
  } else if (unlink(st->tmp_path) != 0 && errno != ENOENT) {
    /* A compaction that crashed before its rename leaves this; the log
     * itself is whole either way. */
    rc = -errno;
    set_err(err, errlen, "%s: cannot remove a stale %s: %s", path, st->tmp_path, strerror(-rc));
  } else {
    st->out_fd = st->fd;
    rc = load(st, fn, data, err, errlen);
  }
  if (rc != 0) {
    store_free(st);
    return rc;
  }
  *out = st;
  return 0;
}

bool cymg__mqtt_store_dirty(const cymg__mqtt_store *st) {
  return st != NULL && st->dirty;
}

int cymg__mqtt_store_sync(cymg__mqtt_store *st) {
  if (st == NULL) return CYMG_EINVAL;
  if (st->broken) return st->broken;
  if (!st->dirty) return 0;
  int rc = flush_queue(st);
  if (rc != 0) return rc;
  if (fdatasync(st->fd) != 0) {
    /* After a failed fdatasync the kernel may have dropped the dirty pages:
     * what is on disk is unknown, so the log is not trusted again. */
    st->broken = -errno;
    CYMG__ERR("mqtt store %s: fdatasync: %s; persistence stopped", st->path, strerror(errno));
    return st->broken;
  }
  st->dirty = false;
  return 0;
}

bool cymg__mqtt_store_wants_compact(const cymg__mqtt_store *st) {
  return st != NULL && !st->broken && st->size > 2 * st->base_size + ST_COMPACT_SLACK;
}

int cymg__mqtt_store_compact(cymg__mqtt_store *st, void (*dump)(void *data), void *data) {
  if (st == NULL || dump == NULL || st->out_fd != st->fd) return CYMG_EINVAL;
  /* What is queued goes to the old log first: if the compaction fails, the
   * old log must still hold everything. */
  int rc = cymg__mqtt_store_sync(st);
  if (rc != 0) return rc;
  int tfd = open(st->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (tfd < 0) return -errno;
  uint64_t old_size = st->size;
  unsigned char h[ST_HDR_LEN];
  header(h);
  rc = write_all(tfd, h, sizeof(h), 0);
  if (rc == 0 && flock(tfd, LOCK_EX | LOCK_NB) != 0) rc = -errno;
  if (rc == 0) {
    st->out_fd = tfd;
    st->size = ST_HDR_LEN;
    st->dump_err = 0;
    dump(data);
    rc = st->dump_err ? st->dump_err : flush_queue(st);
    st->out_fd = st->fd;
  }
  if (rc == 0 && fsync(tfd) != 0) rc = -errno;
  if (rc == 0 && rename(st->tmp_path, st->path) != 0) rc = -errno;
  if (rc != 0) {
    st->qlen = 0; /* the dump's records; the old log is still complete */
    st->size = old_size;
    st->dirty = false;
    if (close(tfd) != 0) CYMG__ERR("mqtt store %s: close: %s", st->tmp_path, strerror(errno));
    if (unlink(st->tmp_path) != 0)
      CYMG__ERR("mqtt store %s: unlink: %s", st->tmp_path, strerror(errno));
    CYMG__ERR("mqtt store %s: compaction failed: %s", st->path, cymg_strerror(rc));
    return rc;
  }
  /* Renamed: the new file is the log from here on, whatever follows. */
  uint64_t new_size = st->size;
  if (close(st->fd) != 0) CYMG__ERR("mqtt store %s: close: %s", st->path, strerror(errno));
  st->fd = st->out_fd = tfd;
  st->base_size = new_size;
  st->dirty = false;
  rc = sync_dir_of(st->path);
  if (rc != 0) {
    st->broken = rc;
    CYMG__ERR("mqtt store %s: directory fsync: %s; persistence stopped", st->path,
              cymg_strerror(rc));
  }
  return rc;
}

void cymg__mqtt_store_close(cymg__mqtt_store *st) {
  if (st == NULL) return;
  int rc = cymg__mqtt_store_sync(st);
  if (rc != 0)
    CYMG__ERR("mqtt store %s: final sync failed: %s; %zu bytes of records lost", st->path,
              cymg_strerror(rc), st->qlen);
  store_free(st);
}
