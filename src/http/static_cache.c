/* The static-file cache of a manager: descriptors of served roots and of hot
 * files beneath them, so a keep-alive request for a small file costs fstat,
 * pread, send and the next recv instead of opening the root and the file and
 * closing both every time.
 *
 * Safety: an entry is only ever made from a descriptor that the lookup of
 * static.c opened (openat2 beneath the root, its checks passed). A hit is
 * fstat'ed before use: a file changed in place gets its new size and mtime (so
 * ETag and Content-Length describe the bytes read), a deleted one (no link
 * left) is dropped and looked up again. Every entry is looked up again by its
 * path once it is older than CYMG__SC_VALID_MS, so a file renamed over, a
 * symlink changed or a root replaced is seen within that time; what can be
 * served meanwhile is only ever the file that was inside the root when it was
 * checked. A root is re-checked (stat of its path against the descriptor's
 * identity) at the same age and when a lookup beneath it fails. */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/http_internal.h"
#include "http/static_internal.h"

#ifdef O_PATH
#define ROOT_FLAGS (O_PATH | O_DIRECTORY | O_CLOEXEC)
#else
#define ROOT_FLAGS (O_RDONLY | O_DIRECTORY | O_CLOEXEC)
#endif

typedef struct cymg__static_cache cymg__static_cache;

typedef struct sc_root {
  char *dir; /* as configured; NULL: a free slot */
  int fd;
  dev_t dev;
  ino_t ino;
  uint64_t checked, used;
} sc_root;

typedef struct sc_file {
  int root;   /* slot in roots; -1: a free entry */
  int fd;     /* -1: known not to be a regular file (a missing ".gz") */
  struct stat st;
  uint64_t checked, used;
  char rel[CYMG__SC_MAX_PATH + 1];
} sc_file;

struct cymg__static_cache {
  sc_root roots[CYMG__SC_ROOTS];
  sc_file files[CYMG__SC_FILES];
  uint64_t tick; /* use counter for least-recently-used eviction */
};

static void drop_file(sc_file *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  f->root = -1;
}

static void drop_root(cymg__static_cache *sc, int i) {
  for (size_t k = 0; k < CYMG__SC_FILES; k++) {
    if (sc->files[k].root == i) drop_file(&sc->files[k]);
  }
  if (sc->roots[i].fd >= 0) close(sc->roots[i].fd);
  free(sc->roots[i].dir);
  sc->roots[i].dir = NULL;
  sc->roots[i].fd = -1;
}

void cymg__static_cache_free(cymg_mgr *mgr) {
  cymg__static_cache *sc = mgr->static_cache;
  if (sc == NULL) return;
  for (int i = 0; i < CYMG__SC_ROOTS; i++) {
    if (sc->roots[i].dir) drop_root(sc, i);
  }
  free(sc);
  mgr->static_cache = NULL;
}

static cymg__static_cache *cache_of(cymg_mgr *mgr) {
  if (mgr->static_cache) return mgr->static_cache;
  cymg__static_cache *sc = calloc(1, sizeof(*sc));
  if (sc == NULL) return NULL; /* no cache: every lookup opens, as without one */
  for (int i = 0; i < CYMG__SC_ROOTS; i++) sc->roots[i].fd = -1;
  for (int i = 0; i < CYMG__SC_FILES; i++) sc->files[i].root = -1, sc->files[i].fd = -1;
  mgr->static_cache = sc;
  return sc;
}

/* The root's path still names the folder the descriptor is open on. */
static bool root_same(const sc_root *r) {
  struct stat st;
  return stat(r->dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == r->dev &&
         st.st_ino == r->ino;
}

int cymg__static_cache_root(cymg_mgr *mgr, const char *dir, int *slot) {
  cymg__static_cache *sc = cache_of(mgr);
  uint64_t now = mgr->now;
  *slot = -1;
  if (sc == NULL) return open(dir, ROOT_FLAGS);
  int victim = 0;
  for (int i = 0; i < CYMG__SC_ROOTS; i++) {
    sc_root *r = &sc->roots[i];
    if (r->dir == NULL) {
      if (sc->roots[victim].dir != NULL) victim = i;
      continue;
    }
    if (strcmp(r->dir, dir) != 0) {
      if (sc->roots[victim].dir != NULL && r->used < sc->roots[victim].used) victim = i;
      continue;
    }
    if (now - r->checked >= CYMG__SC_VALID_MS) {
      if (!root_same(r)) {
        drop_root(sc, i); /* renamed, replaced or gone: open the path again */
        victim = i;
        break;
      }
      r->checked = now;
    }
    r->used = ++sc->tick;
    *slot = i;
    return r->fd;
  }
  char *copy = strdup(dir);
  int fd = copy ? open(dir, ROOT_FLAGS) : -1;
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    int e = copy ? errno : ENOMEM;
    if (fd >= 0) close(fd);
    free(copy);
    errno = e;
    return -1;
  }
  if (sc->roots[victim].dir) drop_root(sc, victim);
  sc_root *r = &sc->roots[victim];
  *r = (sc_root){.dir = copy, .fd = fd, .dev = st.st_dev, .ino = st.st_ino, .checked = now,
                 .used = ++sc->tick};
  *slot = victim;
  return fd;
}

bool cymg__static_cache_root_stale(cymg_mgr *mgr, int slot) {
  cymg__static_cache *sc = mgr->static_cache;
  if (sc == NULL || slot < 0 || sc->roots[slot].dir == NULL) return false;
  if (root_same(&sc->roots[slot])) {
    sc->roots[slot].checked = mgr->now;
    return false;
  }
  drop_root(sc, slot);
  return true;
}

int cymg__static_cache_get(cymg_mgr *mgr, int slot, const char *rel, int *fd, struct stat *st) {
  cymg__static_cache *sc = mgr->static_cache;
  if (sc == NULL || slot < 0 || strlen(rel) > CYMG__SC_MAX_PATH) return CYMG__SC_MISS;
  for (size_t k = 0; k < CYMG__SC_FILES; k++) {
    sc_file *f = &sc->files[k];
    if (f->root != slot || strcmp(f->rel, rel) != 0) continue;
    if (mgr->now - f->checked >= CYMG__SC_VALID_MS) {
      drop_file(f); /* old enough to be looked up by its path again */
      return CYMG__SC_MISS;
    }
    if (f->fd < 0) {
      f->used = ++sc->tick;
      return CYMG__SC_ABSENT;
    }
    struct stat now;
    if (fstat(f->fd, &now) != 0 || now.st_nlink == 0 || !S_ISREG(now.st_mode)) {
      drop_file(f); /* deleted (or unreadable): whatever has the name now */
      return CYMG__SC_MISS;
    }
    f->st = now; /* changed in place: the validators follow the bytes */
    f->used = ++sc->tick;
    *fd = f->fd;
    *st = f->st;
    return CYMG__SC_HIT;
  }
  return CYMG__SC_MISS;
}

bool cymg__static_cache_put(cymg_mgr *mgr, int slot, const char *rel, int fd,
                            const struct stat *st) {
  cymg__static_cache *sc = mgr->static_cache;
  if (sc == NULL || slot < 0 || sc->roots[slot].dir == NULL || strlen(rel) > CYMG__SC_MAX_PATH)
    return false;
  sc_file *victim = NULL;
  for (size_t k = 0; k < CYMG__SC_FILES && victim == NULL; k++) {
    sc_file *f = &sc->files[k];
    if (f->root == slot && strcmp(f->rel, rel) == 0) victim = f; /* being replaced */
  }
  for (size_t k = 0; k < CYMG__SC_FILES && victim == NULL; k++) {
    if (sc->files[k].root < 0) victim = &sc->files[k];
  }
  if (victim == NULL) {
    victim = &sc->files[0]; /* full: the least recently used goes */
    for (size_t k = 1; k < CYMG__SC_FILES; k++) {
      if (sc->files[k].used < victim->used) victim = &sc->files[k];
    }
  }
  drop_file(victim);
  victim->root = slot;
  victim->fd = fd;
  if (st) victim->st = *st;
  victim->checked = mgr->now;
  victim->used = ++sc->tick;
  strcpy(victim->rel, rel); /* length checked above */
  return true;
}
