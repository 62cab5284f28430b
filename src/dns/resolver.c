/* The stub resolver on a manager's loop. A lookup asks one query per address
 * type (AAAA and A in parallel for CYMG_DNS_ANY); each query walks the search
 * list and, per name, the servers and attempts of resolv.conf. Attempts go out
 * on the pool's connected UDP sockets (pool.c: random source ports that keep
 * changing, the kernel dropping datagrams from any other address) with a random
 * id from the CSPRNG; an answer must also echo our question. Truncated answers are asked again over
 * TCP. Results feed a per-manager cache; identical lookups in flight share one
 * set of queries. Nothing here blocks: the only file reads are resolv.conf and
 * the hosts file, re-read at most once a second when their mtime changes. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cymg/rand.h"
#include "cymg/timer.h"
#include "dns_internal.h"

#define CACHE_MAX 1024
#define MAX_CANDS (CYMG__DNS_MAX_SEARCH + 1)
#define MAX_TTL 86400u /* RFC 2308 5: a day at most, positive or negative */
#define QBUF 300

enum { W_API, W_CONNECT, W_RESOLVE };
enum { S_OK, S_NXDOMAIN, S_NODATA, S_TIMEOUT, S_SERVFAIL, S_NOSERVERS, S_ERROR };

typedef struct waiter {
  struct waiter *next;
  uint64_t id, conn_id;
  int kind;
  uint16_t port;
  cymg_dns_fn fn;
  void *arg;
} waiter;

struct lookup;
typedef struct sub {
  struct lookup *lk;
  uint16_t qtype;
  bool done, tcp, from_cache, servfail_seen;
  int state;        /* S_* once done */
  uint8_t rcode;
  size_t cand;      /* index into lk->cands */
  unsigned tries;   /* attempts for the current name */
  size_t first_server;
  uint16_t qid;
  cymg__dns_slot slot; /* waiting on the UDP pool */
  cymg_conn *conn;     /* the TCP attempt */
  cymg_timer_id timer;
  uint8_t query[QBUF];
  size_t qlen;
  cymg_dns_answer *ans;
} sub;

typedef struct lookup {
  struct lookup *next;
  struct cymg__dns *d;
  char name[CYMG_DNS_NAME_MAX]; /* lower case, no final dot */
  int family;
  waiter *waiters;
  sub subs[2];
  int nsubs;
  char cands[MAX_CANDS][CYMG_DNS_NAME_MAX];
  size_t ncands;
  cymg_timer_id fin_timer;
  /* Set for answers known at once (hosts file, literal, .invalid). */
  cymg_addr fixed[CYMG_DNS_MAX_ADDRS];
  size_t nfixed;
  int fixed_state;
  bool is_fixed;
} lookup;

typedef struct centry {
  uint32_t hash;
  uint16_t qtype;
  int state;
  uint64_t expires, stamp, born;
  char name[CYMG_DNS_NAME_MAX];
  size_t naddrs, ncnames;
  cymg_addr addrs[CYMG_DNS_MAX_ADDRS];
  uint32_t ttls[CYMG_DNS_MAX_ADDRS], cname_ttls[CYMG_DNS_MAX_CNAMES]; /* as received */
  char cnames[CYMG_DNS_MAX_CNAMES][CYMG_DNS_NAME_MAX];
} centry;

typedef struct fallback {
  struct fallback *next;
  uint64_t conn_id;
  size_t n, i;
  cymg_addr addrs[CYMG_DNS_MAX_ADDRS];
} fallback;

typedef struct cymg__dns {
  cymg_mgr *mgr;
  lookup *lookups;
  fallback *fallbacks;
  size_t nwaiting; /* connection waiters: a free with none costs nothing */
  uint64_t next_id, stamp;
  centry *cache[CACHE_MAX];
  size_t ncache;
  cymg__resolv_conf conf;
  bool conf_loaded, servers_set;
  cymg_addr set_servers[CYMG__DNS_MAX_SERVERS];
  size_t nset_servers;
  char *resolv_path;
  struct timespec conf_mtime;
  uint64_t conf_checked, hosts_checked;
  cymg__hosts hosts;
  char *hosts_path_seen;
  unsigned timeout_ms, attempts;
  int family;
  size_t rr;
  lookup *spare; /* freed lookups kept for reuse (answers allocated), via next */
  size_t nspare;
  cymg__dns_pool pool;
} cymg__dns;

#define MAX_SPARE 32

static cymg__dns *get_dns(cymg_mgr *mgr) {
  if (mgr->dns == NULL) {
    cymg__dns *d = calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    d->mgr = mgr;
    d->next_id = 1;
    cymg__dns_pool_init(&d->pool, mgr);
    mgr->dns = d;
  }
  return mgr->dns;
}

static bool same_mtime(const struct timespec *a, const struct stat *st) {
  return a->tv_sec == st->st_mtim.tv_sec && a->tv_nsec == st->st_mtim.tv_nsec;
}

/* resolv.conf: read at first use, then again when its mtime changes (checked
 * at most once a second, so a cached lookup costs no system call). */
static void refresh_conf(cymg__dns *d) {
  uint64_t now = cymg_millis();
  if (d->conf_loaded && now - d->conf_checked < 1000) return;
  d->conf_checked = now;
  const char *path = d->resolv_path ? d->resolv_path : "/etc/resolv.conf";
  struct stat st;
  if (d->conf_loaded) {
    if (stat(path, &st) != 0) st.st_mtim = (struct timespec){0, 0};
    if (same_mtime(&d->conf_mtime, &st)) return;
  }
  size_t len = 0;
  char *text = cymg__read_small_file(path, &len, &st);
  cymg__resolv_conf_parse(text ? text : "", text ? len : 0, &d->conf);
  d->conf_mtime = text ? st.st_mtim : (struct timespec){0, 0};
  free(text);
  d->conf_loaded = true;
}

static void refresh_hosts(cymg__dns *d) {
  const char *path = d->mgr->hosts_file ? d->mgr->hosts_file : "/etc/hosts";
  uint64_t now = cymg_millis();
  bool same_path = d->hosts_path_seen && strcmp(d->hosts_path_seen, path) == 0;
  if (same_path && d->hosts.loaded && now - d->hosts_checked < 1000) return;
  d->hosts_checked = now;
  struct stat st;
  if (same_path && d->hosts.loaded && stat(path, &st) == 0 && same_mtime(&d->hosts.mtime, &st) &&
      st.st_size == d->hosts.size)
    return;
  free(d->hosts_path_seen);
  d->hosts_path_seen = strdup(path);
  size_t len = 0;
  char *text = cymg__read_small_file(path, &len, &st);
  if (cymg__hosts_parse(text ? text : "", text ? len : 0, &d->hosts) < 0) {
    CYMG__ERR("hosts file %s: out of memory", path);
  }
  d->hosts.mtime = text ? st.st_mtim : (struct timespec){0, 0};
  d->hosts.size = text ? st.st_size : -1;
  d->hosts.loaded = true;
  free(text);
}

static const cymg_addr *servers(cymg__dns *d, size_t *n) {
  if (d->servers_set) {
    *n = d->nset_servers;
    return d->set_servers;
  }
  *n = d->conf.nservers;
  return d->conf.servers;
}

static unsigned attempts(cymg__dns *d) { return d->attempts ? d->attempts : d->conf.attempts; }
static unsigned timeout_ms(cymg__dns *d) {
  return d->timeout_ms ? d->timeout_ms : d->conf.timeout_ms;
}

/* ---- cache ---- */
static uint32_t name_hash(const char *s, uint16_t qtype) {
  uint32_t h = 2166136261u ^ qtype;
  for (; *s; s++) h = (h ^ (uint8_t) tolower((unsigned char) *s)) * 16777619u;
  return h;
}

static centry *cache_find(cymg__dns *d, const char *name, uint16_t qtype) {
  uint32_t h = name_hash(name, qtype);
  uint64_t now = cymg_millis();
  for (size_t i = 0; i < d->ncache; i++) {
    centry *e = d->cache[i];
    if (e->hash != h || e->qtype != qtype || strcmp(e->name, name) != 0) continue;
    if (e->expires > now) return e;
    free(e); /* expired: take it out */
    d->cache[i] = d->cache[--d->ncache];
    return NULL;
  }
  return NULL;
}

static void cache_put(cymg__dns *d, const char *name, const sub *s) {
  uint32_t ttl = 0;
  const cymg_dns_answer *a = s->ans;
  if (s->state == S_OK) {
    ttl = MAX_TTL;
    for (size_t i = 0; i < a->naddrs; i++) ttl = a->ttls[i] < ttl ? a->ttls[i] : ttl;
    for (size_t i = 0; i < a->ncnames; i++) ttl = a->cname_ttls[i] < ttl ? a->cname_ttls[i] : ttl;
  } else if ((s->state == S_NXDOMAIN || s->state == S_NODATA) && a && a->has_soa) {
    ttl = a->neg_ttl < MAX_TTL ? a->neg_ttl : MAX_TTL; /* RFC 2308 5 */
  }
  if (ttl == 0) return; /* TTL 0: use once, never cache (RFC 1035 3.2.1) */
  centry *e = NULL;
  uint32_t h = name_hash(name, s->qtype);
  for (size_t i = 0; i < d->ncache && !e; i++)
    if (d->cache[i]->hash == h && d->cache[i]->qtype == s->qtype &&
        strcmp(d->cache[i]->name, name) == 0)
      e = d->cache[i];
  if (e == NULL && d->ncache == CACHE_MAX) { /* full: the oldest entry goes */
    size_t old = 0;
    for (size_t i = 1; i < d->ncache; i++)
      if (d->cache[i]->stamp < d->cache[old]->stamp) old = i;
    e = d->cache[old];
  } else if (e == NULL) {
    if ((e = malloc(sizeof(*e))) == NULL) return;
    d->cache[d->ncache++] = e;
  }
  memset(e, 0, offsetof(centry, addrs));
  e->hash = h;
  e->qtype = s->qtype;
  e->state = s->state;
  e->born = cymg_millis();
  e->expires = e->born + (uint64_t) ttl * 1000;
  e->stamp = ++d->stamp;
  snprintf(e->name, sizeof(e->name), "%s", name);
  if (s->state == S_OK) {
    e->naddrs = a->naddrs;
    memcpy(e->addrs, a->addrs, a->naddrs * sizeof(cymg_addr));
    memcpy(e->ttls, a->ttls, a->naddrs * sizeof(e->ttls[0]));
    memcpy(e->cname_ttls, a->cname_ttls, a->ncnames * sizeof(e->cname_ttls[0]));
    e->ncnames = a->ncnames;
    memcpy(e->cnames, a->cnames, a->ncnames * sizeof(e->cnames[0]));
  }
}

/* ---- queries ---- */
static void sub_send(sub *s);
static void sub_finish(sub *s, int state);
static void lookup_finish(lookup *lk);

static void noop_fn(cymg_conn *c, int ev, void *ev_data) {
  (void) c, (void) ev, (void) ev_data;
}

void cymg__dns_sub_fn(cymg_conn *c, int ev, void *ev_data);

static void sub_stop_io(sub *s) {
  cymg__dns_pool_cancel(&s->lk->d->pool, &s->slot);
  if (s->conn) {
    cymg_conn_set_handler(s->conn, noop_fn, NULL);
    cymg_close(s->conn);
    s->conn = NULL;
  }
  if (s->timer) {
    cymg_timer_cancel(s->lk->d->mgr, s->timer);
    s->timer = 0;
  }
}

/* The current attempt failed or timed out: the next server, or the next try. */
static void sub_next_attempt(sub *s, int why) {
  sub_stop_io(s);
  size_t ns;
  servers(s->lk->d, &ns);
  s->tries++;
  if (s->tries >= attempts(s->lk->d) * (unsigned) ns) {
    /* Every server failed this name (SERVFAIL, REFUSED): like res_search, the
     * next name of the search list still gets its chance; a timeout ends it. */
    if (why == S_SERVFAIL && s->cand + 1 < s->lk->ncands) {
      s->servfail_seen = true;
      s->cand++;
      s->tries = 0;
      s->tcp = false;
      sub_send(s);
      return;
    }
    sub_finish(s, why);
    return;
  }
  sub_send(s);
}

static void sub_answer(sub *s, const uint8_t *msg, size_t len) {
  cymg_dns_answer *a = s->ans;
  if (len < 2 || (uint16_t) ((msg[0] << 8) | msg[1]) != s->qid) return; /* not ours */
  int rc = cymg_dns_parse_answer(msg, len, a);
  const char *want = s->lk->cands[s->cand];
  if (rc < 0) {
    /* Our id but unparsable (a compression loop, a short record): this server
     * is broken; count the attempt and move on. */
    CYMG__DEBUG("dns: malformed answer for %s", want);
    sub_next_attempt(s, S_SERVFAIL);
    return;
  }
  if (a->qtype != s->qtype || strcasecmp(a->qname, want) != 0) return; /* not our question */
  if (a->tc && !s->tcp) { /* the same server again, over TCP (RFC 7766) */
    sub_stop_io(s);
    s->tcp = true;
    sub_send(s);
    return;
  }
  switch (a->rcode) {
    case CYMG_DNS_NOERROR: sub_finish(s, a->naddrs ? S_OK : S_NODATA); return;
    case CYMG_DNS_NXDOMAIN:
      sub_stop_io(s);
      if (s->cand + 1 < s->lk->ncands) { /* the next name of the search list */
        s->cand++;
        s->tries = 0;
        s->tcp = false;
        sub_send(s);
      } else {
        sub_finish(s, S_NXDOMAIN);
      }
      return;
    default: sub_next_attempt(s, S_SERVFAIL); return; /* SERVFAIL, REFUSED, ...: next server */
  }
}

void cymg__dns_udp_answer(cymg__dns_slot *slot, const uint8_t *msg, size_t len) {
  sub *s = (sub *) (void *) ((char *) slot - offsetof(sub, slot));
  if (msg == NULL) {
    sub_next_attempt(s, S_SERVFAIL); /* refused (ICMP port unreachable): the next server */
  } else {
    sub_answer(s, msg, len);
  }
}

/* The TCP attempt's connection (a hidden one: not among the user's). */
void cymg__dns_sub_fn(cymg_conn *c, int ev, void *ev_data) {
  sub *s = cymg_conn_userdata(c);
  (void) ev_data;
  if (s == NULL || s->conn != c) return;
  if (ev == CYMG_EV_READ) {
    cymg_str in = cymg_conn_recv_data(c);
    if (in.len < 2) return;
    size_t need = ((size_t) (uint8_t) in.buf[0] << 8) | (uint8_t) in.buf[1];
    if (in.len < need + 2) return;
    sub_answer(s, (const uint8_t *) in.buf + 2, need);
    if (s->conn == c) sub_next_attempt(s, S_SERVFAIL); /* TCP answer not ours: give up on it */
  } else if (ev == CYMG_EV_ERROR || ev == CYMG_EV_CLOSE) {
    /* Refused (ICMP port unreachable), reset, or the TCP peer left early. */
    cymg_conn_set_handler(c, noop_fn, NULL);
    s->conn = NULL;
    sub_next_attempt(s, S_SERVFAIL);
  }
}

static void sub_timeout(void *arg) {
  sub *s = arg;
  s->timer = 0;
  sub_next_attempt(s, S_TIMEOUT);
}

static void sub_send(sub *s) {
  cymg__dns *d = s->lk->d;
  size_t ns;
  const cymg_addr *sv = servers(d, &ns);
  if (ns == 0) {
    sub_finish(s, S_NOSERVERS);
    return;
  }
  if (cymg__dns_random_id(&d->pool, &s->qid) < 0) {
    sub_finish(s, S_ERROR);
    return;
  }
  int n = cymg_dns_build_query(s->query, sizeof(s->query), s->qid, s->lk->cands[s->cand], s->qtype);
  if (n < 0) {
    sub_finish(s, S_NXDOMAIN); /* a name no server can hold */
    return;
  }
  s->qlen = (size_t) n;
  const cymg_addr *srv = &sv[(s->first_server + s->tries) % ns];
  if (cymg_timer_add(d->mgr, timeout_ms(d), CYMG_TIMER_ONCE, sub_timeout, s, &s->timer) < 0) {
    sub_finish(s, S_ERROR);
    return;
  }
  int rc;
  if (!s->tcp) {
    rc = cymg__dns_pool_send(&d->pool, &s->slot, srv, s->query, s->qlen);
    s->qid = s->slot.id;
  } else {
    cymg_conn *c = cymg__conn_new(d->mgr, -1, CYMG__F_CLIENT | CYMG__F_HIDDEN, cymg__dns_sub_fn, s);
    if (c == NULL) {
      sub_finish(s, S_ERROR);
      return;
    }
    d->mgr->nhidden++;
    s->conn = c;
    cymg__connect_addr(c, srv);
    if (c->fd < 0) return; /* the failure arrives as ERROR: next attempt */
    uint8_t framed[QBUF + 2] = {(uint8_t) (s->qlen >> 8), (uint8_t) s->qlen};
    memcpy(framed + 2, s->query, s->qlen);
    rc = cymg_send(c, framed, s->qlen + 2);
  }
  if (rc < 0) CYMG__DEBUG("dns: send: %s", cymg_strerror(rc)); /* the timeout moves on */
}

static void fin_timer_fn(void *arg) {
  lookup *lk = arg;
  lk->fin_timer = 0;
  lookup_finish(lk);
}

/* Finishing is always deferred to a timer of its own, so that no lookup is freed
 * under the socket handler or the call that reached this point. */
static void schedule_finish(lookup *lk) {
  if (lk->fin_timer) return;
  if (cymg_timer_add(lk->d->mgr, 0, CYMG_TIMER_ONCE, fin_timer_fn, lk, &lk->fin_timer) < 0) {
    CYMG__ERR("dns: cannot schedule a timer; lookup of %s dropped", lk->name);
  }
}

static void sub_finish(sub *s, int state) {
  sub_stop_io(s);
  s->done = true;
  s->state = state;
  if (!s->from_cache && s->ans) cache_put(s->lk->d, s->lk->name, s);
  lookup *lk = s->lk;
  for (int i = 0; i < lk->nsubs; i++)
    if (!lk->subs[i].done) return;
  schedule_finish(lk);
}

static void lookup_unlink(lookup *lk) {
  lookup **pp = &lk->d->lookups;
  while (*pp && *pp != lk) pp = &(*pp)->next;
  if (*pp) *pp = lk->next;
}

static void lookup_free(lookup *lk) {
  cymg__dns *d = lk->d;
  for (int i = 0; i < lk->nsubs; i++) sub_stop_io(&lk->subs[i]);
  if (lk->fin_timer) cymg_timer_cancel(d->mgr, lk->fin_timer);
  while (lk->waiters) {
    waiter *w = lk->waiters;
    lk->waiters = w->next;
    if (w->kind != W_API) d->nwaiting--;
    free(w);
  }
  if (d->nspare < MAX_SPARE) { /* kept, answers and all: a busy resolver allocates nothing */
    lk->next = d->spare;
    d->spare = lk;
    d->nspare++;
    return;
  }
  for (int i = 0; i < 2; i++) free(lk->subs[i].ans);
  free(lk);
}

/* A zeroed lookup, from the spares if there is one (its answers kept). */
static lookup *lookup_new(cymg__dns *d) {
  lookup *lk = d->spare;
  if (lk == NULL) return calloc(1, sizeof(*lk));
  d->spare = lk->next;
  d->nspare--;
  cymg_dns_answer *ans[2] = {lk->subs[0].ans, lk->subs[1].ans};
  memset(lk, 0, sizeof(*lk));
  lk->subs[0].ans = ans[0];
  lk->subs[1].ans = ans[1];
  return lk;
}

static void set_fallback(cymg__dns *d, uint64_t conn_id, const cymg_addr *addrs, size_t n,
                         uint16_t port) {
  fallback *f = NULL;
  for (fallback *x = d->fallbacks; x && !f; x = x->next)
    if (x->conn_id == conn_id) f = x;
  if (f == NULL) {
    if (n < 2 || (f = calloc(1, sizeof(*f))) == NULL) return;
    f->conn_id = conn_id;
    f->next = d->fallbacks;
    d->fallbacks = f;
    d->nwaiting++;
  }
  /* RFC 8305 4: after the first address, the first one of the other family,
   * then the rest in order. */
  f->n = 0;
  f->i = 1;
  for (size_t i = 0; i < n && f->n < CYMG_DNS_MAX_ADDRS; i++) f->addrs[f->n++] = addrs[i];
  for (size_t i = 1; i < f->n; i++) {
    if (f->addrs[i].is_ip6 != f->addrs[0].is_ip6) {
      cymg_addr t = f->addrs[i];
      memmove(&f->addrs[2], &f->addrs[1], (i - 1) * sizeof(cymg_addr));
      f->addrs[1] = t;
      break;
    }
  }
  for (size_t i = 0; i < f->n; i++) f->addrs[i].port = port;
}

static void deliver(cymg__dns *d, waiter *w, const cymg_dns_result *r) {
  if (w->kind == W_API) {
    w->fn(d->mgr, r, w->arg);
    return;
  }
  cymg_conn *c = cymg_mgr_find(d->mgr, w->conn_id);
  if (c == NULL || (c->flags & CYMG__F_CLOSING)) return;
  if (r->status < 0) {
    cymg_error(c, "%s", r->error);
    return;
  }
  c->rem = r->addrs[0];
  c->rem.port = w->port;
  if (w->kind == W_CONNECT) set_fallback(d, c->id, r->addrs, r->naddrs, w->port);
  cymg_call(c, CYMG_EV_RESOLVE, NULL);
  if (w->kind == W_CONNECT && !(c->flags & CYMG__F_CLOSING)) {
    cymg_addr a = c->rem;
    cymg__connect_addr(c, &a);
  }
}

static void lookup_finish(lookup *lk) {
  cymg__dns *d = lk->d;
  lookup_unlink(lk);
  cymg_addr addrs[2 * CYMG_DNS_MAX_ADDRS];
  uint32_t ttls[2 * CYMG_DNS_MAX_ADDRS];
  size_t n = 0, ncn = 0;
  const char(*cn)[CYMG_DNS_NAME_MAX] = NULL;
  const uint32_t *cn_ttls = NULL;
  char err[CYMG_DNS_NAME_MAX + 96];
  int status = 0, worst = S_OK;
  bool cached = true;
  uint64_t now = cymg_millis();
  if (lk->is_fixed) {
    memcpy(addrs, lk->fixed, lk->nfixed * sizeof(cymg_addr));
    memset(ttls, 0, sizeof(ttls));
    n = lk->nfixed;
    worst = lk->fixed_state;
    cached = false;
  }
  for (int i = 0; i < lk->nsubs; i++) {
    sub *s = &lk->subs[i];
    cached = cached && s->from_cache;
    if (s->state == S_OK && s->ans) {
      for (size_t k = 0; k < s->ans->naddrs && n < 2 * CYMG_DNS_MAX_ADDRS; k++) {
        addrs[n] = s->ans->addrs[k];
        ttls[n++] = s->ans->ttls[k];
      }
      if (cn == NULL && s->ans->ncnames) {
        cn = (const char(*)[CYMG_DNS_NAME_MAX]) s->ans->cnames;
        cn_ttls = s->ans->cname_ttls;
        ncn = s->ans->ncnames;
      }
    } else if (s->state == S_NXDOMAIN || worst == S_NXDOMAIN) {
      worst = S_NXDOMAIN; /* the name does not exist: whatever the other type got */
    } else if (s->state > worst) {
      worst = s->state;
    }
  }
  (void) now;
  if (n == 0) {
    const char *why;
    switch (worst) {
      case S_TIMEOUT:
        snprintf(err, sizeof(err), "%s: DNS timeout after %u attempts", lk->name,
                 lk->subs[0].tries);
        status = CYMG_ETIMEDOUT;
        break;
      case S_SERVFAIL: why = "server failure"; status = CYMG_EPROTO; goto fmt;
      case S_NOSERVERS: why = "no name servers configured"; status = CYMG_ERESOLVE; goto fmt;
      case S_ERROR: why = "resolver error"; status = CYMG_ERESOLVE; goto fmt;
      case S_NODATA: why = "no address records"; status = CYMG_ENOTFOUND; goto fmt;
      default:
        why = "name not found";
        status = CYMG_ENOTFOUND;
      fmt:
        snprintf(err, sizeof(err), "%s: %s", lk->name, why);
    }
  }
  cymg_dns_result r = {lk->name, status, status ? err : NULL, n, addrs, ttls, ncn, cn, cached,
                       cn_ttls};
  /* The waiters are taken off first: a function may start new lookups. */
  waiter *ws = lk->waiters;
  lk->waiters = NULL;
  while (ws) {
    waiter *w = ws;
    ws = w->next;
    if (w->kind != W_API) d->nwaiting--;
    deliver(d, w, &r);
    free(w);
  }
  lookup_free(lk);
}

static bool is_invalid_tld(const char *name) {
  size_t n = strlen(name);
  return strcasecmp(name, "invalid") == 0 ||
         (n > 8 && strcasecmp(name + n - 8, ".invalid") == 0); /* RFC 6761 6.4 */
}

static void make_candidates(cymg__dns *d, lookup *lk, bool absolute) {
  size_t dots = 0;
  for (const char *p = lk->name; *p; p++) dots += *p == '.';
  bool first = absolute || dots >= d->conf.ndots;
  if (first) snprintf(lk->cands[lk->ncands++], CYMG_DNS_NAME_MAX, "%s", lk->name);
  if (!absolute) {
    for (size_t i = 0; i < d->conf.nsearch && lk->ncands < MAX_CANDS; i++) {
      int m = snprintf(lk->cands[lk->ncands], CYMG_DNS_NAME_MAX, "%s.%s", lk->name,
                       d->conf.search[i]);
      if (m > 0 && m < CYMG_DNS_NAME_MAX) lk->ncands++;
    }
  }
  if (!first && lk->ncands < MAX_CANDS)
    snprintf(lk->cands[lk->ncands++], CYMG_DNS_NAME_MAX, "%s", lk->name);
}

/* Finds or starts the lookup for name/family and adds a waiter to it. */
static int add_lookup(cymg_mgr *mgr, const char *name, int family, waiter *w) {
  cymg__dns *d = get_dns(mgr);
  if (d == NULL) return CYMG_ENOMEM;
  char key[CYMG_DNS_NAME_MAX];
  size_t n = strlen(name);
  bool absolute = n > 0 && name[n - 1] == '.';
  if (absolute) n--;
  if (n == 0 || n >= sizeof(key)) return CYMG_EINVAL;
  for (size_t i = 0; i < n; i++) key[i] = (char) tolower((unsigned char) name[i]);
  key[n] = '\0';
  w->id = d->next_id++;
  if (w->kind != W_API) d->nwaiting++;
  for (lookup *lk = d->lookups; lk; lk = lk->next) {
    if (lk->family == family && !lk->is_fixed && strcmp(lk->name, key) == 0) {
      w->next = lk->waiters; /* the same question in flight: share it */
      lk->waiters = w;
      return 0;
    }
  }
  lookup *lk = lookup_new(d);
  if (lk == NULL) {
    if (w->kind != W_API) d->nwaiting--;
    return CYMG_ENOMEM;
  }
  lk->d = d;
  lk->family = family;
  memcpy(lk->name, key, n + 1);
  lk->waiters = w;
  lk->next = d->lookups;
  d->lookups = lk;

  cymg_addr lit;
  refresh_hosts(d);
  if (inet_pton(AF_INET, key, lit.ip) == 1 || (inet_pton(AF_INET6, key, lit.ip) == 1)) {
    memset(&lit, 0, sizeof(lit));
    if (inet_pton(AF_INET, key, lit.ip) != 1) lit.is_ip6 = inet_pton(AF_INET6, key, lit.ip) == 1;
    lk->is_fixed = true;
    lk->fixed[lk->nfixed++] = lit;
  } else if (strcmp(key, "localhost") == 0 || (n > 10 && strcmp(key + n - 10, ".localhost") == 0)) {
    lk->is_fixed = true; /* RFC 6761 6.3 */
    memset(&lit, 0, sizeof(lit));
    if (family != CYMG_DNS_IPV4) {
      lit.is_ip6 = true;
      lit.ip[15] = 1;
      lk->fixed[lk->nfixed++] = lit;
      memset(&lit, 0, sizeof(lit));
    }
    if (family != CYMG_DNS_IPV6) {
      lit.ip[0] = 127;
      lit.ip[3] = 1;
      lk->fixed[lk->nfixed++] = lit;
    }
    if (family == CYMG_DNS_ANY) { /* 127.0.0.1 first: what most servers listen on */
      cymg_addr t = lk->fixed[0];
      lk->fixed[0] = lk->fixed[1];
      lk->fixed[1] = t;
    }
  } else if (is_invalid_tld(key)) {
    lk->is_fixed = true;
    lk->fixed_state = S_NXDOMAIN;
  } else if ((lk->nfixed = cymg__hosts_find(&d->hosts, key, family, lk->fixed,
                                            CYMG_DNS_MAX_ADDRS)) > 0) {
    lk->is_fixed = true;
  }
  if (lk->is_fixed) {
    schedule_finish(lk);
    return 0;
  }
  refresh_conf(d);
  make_candidates(d, lk, absolute);
  uint16_t types[2];
  int nt = 0;
  if (family != CYMG_DNS_IPV4) types[nt++] = CYMG_DNS_AAAA;
  if (family != CYMG_DNS_IPV6) types[nt++] = CYMG_DNS_A;
  if (family == CYMG_DNS_ANY && d->family == CYMG_DNS_IPV4) { /* preferred family first */
    types[0] = CYMG_DNS_A;
    types[1] = CYMG_DNS_AAAA;
  }
  lk->nsubs = nt;
  size_t ns;
  servers(d, &ns);
  size_t first = (d->conf.rotate && ns) ? d->rr++ % ns : 0;
  for (int i = 0; i < nt; i++) {
    sub *s = &lk->subs[i];
    s->lk = lk;
    s->qtype = types[i];
    s->first_server = first;
    s->slot.sock = -1;
    if (s->ans == NULL && (s->ans = malloc(sizeof(*s->ans))) == NULL) {
      s->done = true;
      s->state = S_ERROR;
      continue;
    }
    centry *e = cache_find(d, key, types[i]);
    if (e) { /* each TTL less the time spent in the cache */
      memset(s->ans, 0, sizeof(*s->ans));
      uint32_t age = (uint32_t) ((cymg_millis() - e->born) / 1000);
      s->ans->naddrs = e->naddrs;
      memcpy(s->ans->addrs, e->addrs, e->naddrs * sizeof(cymg_addr));
      for (size_t k = 0; k < e->naddrs; k++) s->ans->ttls[k] = e->ttls[k] - age;
      for (size_t k = 0; k < e->ncnames; k++) s->ans->cname_ttls[k] = e->cname_ttls[k] - age;
      s->ans->ncnames = e->ncnames;
      memcpy(s->ans->cnames, e->cnames, e->ncnames * sizeof(e->cnames[0]));
      s->from_cache = true;
      s->done = true;
      s->state = e->state;
    }
  }
  bool all = true;
  for (int i = 0; i < nt; i++) all = all && lk->subs[i].done;
  if (all) {
    schedule_finish(lk);
    return 0;
  }
  for (int i = 0; i < nt; i++)
    if (!lk->subs[i].done) sub_send(&lk->subs[i]);
  return 0;
}

/* ---- public ---- */
int cymg_dns_lookup(cymg_mgr *mgr, const char *name, int family, cymg_dns_fn fn, void *arg,
                    uint64_t *out_id) {
  if (out_id) *out_id = 0;
  if (mgr == NULL || name == NULL || fn == NULL ||
      (family != CYMG_DNS_ANY && family != CYMG_DNS_IPV4 && family != CYMG_DNS_IPV6))
    return CYMG_EINVAL;
  waiter *w = calloc(1, sizeof(*w));
  if (w == NULL) return CYMG_ENOMEM;
  w->kind = W_API;
  w->fn = fn;
  w->arg = arg;
  int rc = add_lookup(mgr, name, family, w);
  if (rc < 0) {
    free(w);
    return rc;
  }
  if (out_id) *out_id = w->id;
  return 0;
}

/* Removes the waiters matching (id, or conn_id when id is 0); a lookup left with
 * none is stopped. */
static void drop_waiters(cymg__dns *d, uint64_t id, uint64_t conn_id) {
  for (lookup **pp = &d->lookups; *pp;) {
    lookup *lk = *pp;
    for (waiter **wp = &lk->waiters; *wp;) {
      waiter *w = *wp;
      if (id ? w->id == id : (w->kind != W_API && w->conn_id == conn_id)) {
        *wp = w->next;
        if (w->kind != W_API) d->nwaiting--;
        free(w);
      } else {
        wp = &w->next;
      }
    }
    if (lk->waiters == NULL) {
      *pp = lk->next;
      lookup_free(lk);
    } else {
      pp = &lk->next;
    }
  }
}

void cymg_dns_cancel(cymg_mgr *mgr, uint64_t id) {
  if (mgr && mgr->dns && id) drop_waiters(mgr->dns, id, 0);
}

static int parse_server(const char *s, size_t len, cymg_addr *a) {
  char buf[128];
  if (len >= sizeof(buf)) return CYMG_EBADURL;
  memcpy(buf, s, len);
  buf[len] = '\0';
  cymg_url u;
  if (strstr(buf, "://") == NULL) { /* a bare address: "127.0.0.1" */
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, buf, a->ip) == 1 || (inet_pton(AF_INET6, buf, a->ip) == 1 && (a->is_ip6 = true))) {
      a->port = 53;
      return 0;
    }
    return CYMG_EBADURL;
  }
  if (cymg_url_parse(cymg_str_c(buf), &u) < 0 || !cymg_str_case_eq(u.scheme, cymg_str_c("udp")))
    return CYMG_EBADURL;
  char host[64];
  cymg_str h = u.host;
  if (h.len == 0 || h.len >= sizeof(host)) return CYMG_EBADURL;
  memcpy(host, h.buf, h.len);
  host[h.len] = '\0';
  memset(a, 0, sizeof(*a));
  if (inet_pton(AF_INET, host, a->ip) != 1) {
    if (inet_pton(AF_INET6, host, a->ip) != 1) return CYMG_EBADURL;
    a->is_ip6 = true;
  }
  a->port = u.port_num ? u.port_num : 53;
  return 0;
}

int cymg_mgr_set_dns(cymg_mgr *mgr, const char *list) {
  if (mgr == NULL) return CYMG_EINVAL;
  cymg__dns *d = get_dns(mgr);
  if (d == NULL) return CYMG_ENOMEM;
  if (list == NULL) {
    d->servers_set = false;
    return 0;
  }
  cymg_addr sv[CYMG__DNS_MAX_SERVERS];
  size_t n = 0;
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == ',') p++;
    if (!*p) break;
    size_t len = strcspn(p, ", ");
    if (n == CYMG__DNS_MAX_SERVERS || parse_server(p, len, &sv[n]) < 0) return CYMG_EBADURL;
    n++;
    p += len;
  }
  if (n == 0) return CYMG_EBADURL;
  memcpy(d->set_servers, sv, sizeof(sv));
  d->nset_servers = n;
  d->servers_set = true;
  return 0;
}

int cymg_mgr_set_resolv_conf(cymg_mgr *mgr, const char *path) {
  if (mgr == NULL) return CYMG_EINVAL;
  cymg__dns *d = get_dns(mgr);
  char *copy = NULL;
  if (d == NULL || (path && (copy = strdup(path)) == NULL)) return CYMG_ENOMEM;
  free(d->resolv_path);
  d->resolv_path = copy;
  d->conf_loaded = false;
  return 0;
}

void cymg_mgr_set_dns_timeout(cymg_mgr *mgr, unsigned timeout_ms, unsigned attempts_) {
  cymg__dns *d = mgr ? get_dns(mgr) : NULL;
  if (d == NULL) return;
  if (timeout_ms) d->timeout_ms = timeout_ms;
  if (attempts_) d->attempts = attempts_;
}

void cymg_mgr_set_dns_family(cymg_mgr *mgr, int family) {
  cymg__dns *d = mgr ? get_dns(mgr) : NULL;
  if (d && (family == CYMG_DNS_ANY || family == CYMG_DNS_IPV4 || family == CYMG_DNS_IPV6))
    d->family = family;
}

void cymg_mgr_dns_flush(cymg_mgr *mgr) {
  cymg__dns *d = mgr ? mgr->dns : NULL;
  if (d == NULL) return;
  for (size_t i = 0; i < d->ncache; i++) free(d->cache[i]);
  d->ncache = 0;
}

static int start_conn_lookup(cymg_conn *c, const char *host, uint16_t port, int kind) {
  waiter *w = calloc(1, sizeof(*w));
  if (w == NULL) return CYMG_ENOMEM;
  w->kind = kind;
  w->conn_id = c->id;
  w->port = port;
  cymg__dns *d = get_dns(c->mgr);
  int family = d ? d->family : CYMG_DNS_ANY;
  int rc = add_lookup(c->mgr, host, family, w);
  if (rc < 0) free(w);
  return rc;
}

void cymg__dns_connect(cymg_conn *c, const char *host, uint16_t port) {
  int rc = start_conn_lookup(c, host, port, W_CONNECT);
  if (rc < 0) cymg__conn_fail_later(c, "%s: %s", host, cymg_strerror(rc));
}

int cymg_conn_resolve(cymg_conn *c, const char *url) {
  if (c == NULL || url == NULL) return CYMG_EINVAL;
  if (c->flags & CYMG__F_CLOSING) return CYMG_ECLOSED;
  char host[CYMG_DNS_NAME_MAX];
  uint16_t port = 0;
  if (strstr(url, "://")) {
    cymg_url u;
    if (cymg_url_parse(cymg_str_c(url), &u) < 0 || u.host.len == 0 || u.host.len >= sizeof(host))
      return CYMG_EBADURL;
    memcpy(host, u.host.buf, u.host.len);
    host[u.host.len] = '\0';
    port = u.port_num;
  } else {
    size_t n = strlen(url);
    if (n == 0 || n >= sizeof(host)) return CYMG_EBADURL;
    memcpy(host, url, n + 1);
  }
  cymg_conn_resolve_cancel(c);
  return start_conn_lookup(c, host, port, W_RESOLVE);
}

void cymg_conn_resolve_cancel(cymg_conn *c) {
  if (c && c->mgr->dns && c->mgr->dns->nwaiting) drop_waiters(c->mgr->dns, 0, c->id);
}

void cymg__dns_conn_gone(cymg_conn *c) {
  cymg__dns *d = c->mgr->dns;
  if (d == NULL || d->nwaiting == 0) return;
  drop_waiters(d, 0, c->id);
  for (fallback **fp = &d->fallbacks; *fp; fp = &(*fp)->next) {
    if ((*fp)->conn_id == c->id) {
      fallback *f = *fp;
      *fp = f->next;
      d->nwaiting--;
      free(f);
      break;
    }
  }
}

bool cymg__dns_connect_failed(cymg_conn *c) {
  cymg__dns *d = c->mgr->dns;
  if (d == NULL || d->nwaiting == 0) return false;
  fallback *f = d->fallbacks;
  while (f && f->conn_id != c->id) f = f->next;
  if (f == NULL || f->i >= f->n) return false;
  /* The socket that failed goes; the next address gets a new one. */
  if (c->flags & CYMG__F_REGISTERED) c->mgr->be->del(c->mgr->be_state, c->fd);
  c->flags &= ~(CYMG__F_REGISTERED | CYMG__F_CONNECTING);
  c->interest = 0;
  if (c->fd >= 0) c->tp->close(c);
  c->fd = -1;
  cymg_addr next = f->addrs[f->i++];
  char a[64];
  cymg_addr_str(&next, true, a, sizeof(a));
  CYMG__DEBUG("connect: trying the next address %s", a);
  cymg__connect_addr(c, &next);
  return true;
}

void cymg__dns_free(cymg_mgr *mgr) {
  cymg__dns *d = mgr->dns;
  if (d == NULL) return;
  while (d->lookups) {
    lookup *lk = d->lookups;
    d->lookups = lk->next;
    lookup_free(lk);
  }
  while (d->fallbacks) {
    fallback *f = d->fallbacks;
    d->fallbacks = f->next;
    free(f);
  }
  d->nspare = MAX_SPARE; /* lookups freed from here on are not kept */
  while (d->spare) {
    lookup *lk = d->spare;
    d->spare = lk->next;
    for (int i = 0; i < 2; i++) free(lk->subs[i].ans);
    free(lk);
  }
  cymg__dns_pool_free(&d->pool);
  cymg_mgr_dns_flush(mgr);
  cymg__hosts_free(&d->hosts);
  free(d->hosts_path_seen);
  free(d->resolv_path);
  free(d);
  mgr->dns = NULL;
}
