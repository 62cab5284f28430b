/* resolv.conf(5) and hosts(5) parsing: text in, structures out (the resolver
 * decides when to read the files). */
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns_internal.h"

char *cymg__read_small_file(const char *path, size_t *len, struct stat *st) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  char *buf = NULL;
  if (fstat(fd, st) == 0 && st->st_size >= 0 && st->st_size <= (1 << 20) &&
      (buf = malloc((size_t) st->st_size + 1)) != NULL) {
    size_t got = 0;
    while (got < (size_t) st->st_size) {
      ssize_t n = read(fd, buf + got, (size_t) st->st_size - got);
      if (n <= 0) break;
      got += (size_t) n;
    }
    buf[got] = '\0';
    *len = got;
  }
  close(fd);
  return buf;
}

/* Next line of text as [*ls, *le) with comments (# or ;) cut; false at the end. */
static bool next_line(const char **p, const char *end, const char **ls, const char **le) {
  if (*p >= end) return false;
  *ls = *p;
  const char *nl = memchr(*p, '\n', (size_t) (end - *p));
  *le = nl ? nl : end;
  *p = nl ? nl + 1 : end;
  for (const char *q = *ls; q < *le; q++) {
    if (*q == '#' || *q == ';') {
      *le = q;
      break;
    }
  }
  return true;
}

/* Next whitespace-separated word of [*p, end) copied into w; false when none. */
static bool next_word(const char **p, const char *end, char *w, size_t wlen) {
  while (*p < end && isspace((unsigned char) **p)) (*p)++;
  if (*p >= end) return false;
  size_t n = 0;
  while (*p < end && !isspace((unsigned char) **p)) {
    if (n + 1 < wlen) w[n++] = **p;
    (*p)++;
  }
  w[n] = '\0';
  return true;
}

static bool parse_ip(const char *s, cymg_addr *a) {
  memset(a, 0, sizeof(*a));
  char tmp[64];
  size_t n = strcspn(s, "%"); /* a zone ("fe80::1%eth0") is dropped */
  if (n >= sizeof(tmp)) return false;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  if (inet_pton(AF_INET, tmp, a->ip) == 1) return true;
  if (inet_pton(AF_INET6, tmp, a->ip) == 1) return (a->is_ip6 = true);
  return false;
}

void cymg__resolv_conf_parse(const char *text, size_t len, cymg__resolv_conf *rc) {
  memset(rc, 0, sizeof(*rc));
  rc->ndots = 1;
  rc->timeout_ms = 5000;
  rc->attempts = 2;
  const char *p = text, *end = text + len, *ls, *le;
  char w[CYMG_DNS_NAME_MAX];
  while (next_line(&p, end, &ls, &le)) {
    if (!next_word(&ls, le, w, sizeof(w))) continue;
    if (strcmp(w, "nameserver") == 0) {
      cymg_addr a;
      if (next_word(&ls, le, w, sizeof(w)) && parse_ip(w, &a) &&
          rc->nservers < CYMG__DNS_MAX_SERVERS) {
        a.port = 53;
        rc->servers[rc->nservers++] = a;
      }
    } else if (strcmp(w, "search") == 0 || strcmp(w, "domain") == 0) {
      rc->nsearch = 0; /* the last search or domain line wins */
      while (next_word(&ls, le, w, sizeof(w)) && rc->nsearch < CYMG__DNS_MAX_SEARCH) {
        size_t n = strlen(w);
        if (n > 0 && w[n - 1] == '.') w[--n] = '\0';
        if (n > 0) memcpy(rc->search[rc->nsearch++], w, n + 1);
      }
    } else if (strcmp(w, "options") == 0) {
      while (next_word(&ls, le, w, sizeof(w))) {
        unsigned long v;
        if (strncmp(w, "ndots:", 6) == 0) {
          v = strtoul(w + 6, NULL, 10);
          rc->ndots = v > 15 ? 15 : (unsigned) v;
        } else if (strncmp(w, "timeout:", 8) == 0) {
          v = strtoul(w + 8, NULL, 10);
          rc->timeout_ms = (unsigned) (v < 1 ? 1 : v > 30 ? 30 : v) * 1000;
        } else if (strncmp(w, "attempts:", 9) == 0) {
          v = strtoul(w + 9, NULL, 10);
          rc->attempts = v < 1 ? 1 : v > 5 ? 5 : (unsigned) v;
        } else if (strcmp(w, "rotate") == 0) {
          rc->rotate = true;
        }
      }
    }
  }
}

void cymg__hosts_free(cymg__hosts *h) {
  for (size_t i = 0; i < h->n; i++) free(h->v[i].name);
  free(h->v);
  h->v = NULL;
  h->n = 0;
}

int cymg__hosts_parse(const char *text, size_t len, cymg__hosts *h) {
  cymg__hosts_free(h);
  size_t cap = 0;
  const char *p = text, *end = text + len, *ls, *le;
  char w[CYMG_DNS_NAME_MAX];
  while (next_line(&p, end, &ls, &le)) {
    cymg_addr a;
    if (!next_word(&ls, le, w, sizeof(w)) || !parse_ip(w, &a)) continue;
    while (next_word(&ls, le, w, sizeof(w))) {
      if (h->n == cap) {
        size_t ncap = cap ? cap * 2 : 16;
        cymg__hosts_entry *nv = realloc(h->v, ncap * sizeof(*nv));
        if (nv == NULL) return CYMG_ENOMEM;
        h->v = nv;
        cap = ncap;
      }
      for (char *q = w; *q; q++) *q = (char) tolower((unsigned char) *q);
      size_t n = strlen(w);
      if (n > 0 && w[n - 1] == '.') w[n - 1] = '\0';
      if ((h->v[h->n].name = strdup(w)) == NULL) return CYMG_ENOMEM;
      h->v[h->n++].addr = a;
    }
  }
  return 0;
}

size_t cymg__hosts_find(const cymg__hosts *h, const char *name, int family, cymg_addr *out,
                        size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < h->n && n < max; i++) {
    if (strcasecmp(h->v[i].name, name) != 0) continue;
    const cymg_addr *a = &h->v[i].addr;
    if ((family == CYMG_DNS_IPV4 && a->is_ip6) || (family == CYMG_DNS_IPV6 && !a->is_ip6))
      continue;
    out[n++] = *a;
  }
  return n;
}
