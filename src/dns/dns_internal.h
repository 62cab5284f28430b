/* Resolver internals shared by resolver.c, conf.c and the connect path. */
#ifndef CYMG_DNS_INTERNAL_H
#define CYMG_DNS_INTERNAL_H

#include <sys/stat.h>
#include <time.h>

#include "cymg/dns.h"
#include "internal.h"

#define CYMG__DNS_MAX_SERVERS 3 /* resolv.conf(5): MAXNS */
#define CYMG__DNS_MAX_SEARCH 6

typedef struct cymg__resolv_conf {
  cymg_addr servers[CYMG__DNS_MAX_SERVERS];
  size_t nservers;
  char search[CYMG__DNS_MAX_SEARCH][CYMG_DNS_NAME_MAX];
  size_t nsearch;
  unsigned ndots, timeout_ms, attempts;
  bool rotate;
} cymg__resolv_conf;

/* Parses resolv.conf text (nameserver, search, domain, options ndots: timeout:
 * attempts: rotate). Unknown lines are ignored; defaults per resolv.conf(5). */
void cymg__resolv_conf_parse(const char *text, size_t len, cymg__resolv_conf *rc);

typedef struct cymg__hosts_entry {
  char *name; /* lower case */
  cymg_addr addr;
} cymg__hosts_entry;

typedef struct cymg__hosts {
  cymg__hosts_entry *v;
  size_t n;
  struct timespec mtime;
  off_t size;
  bool loaded;
} cymg__hosts;

/* Parses hosts-file text into h (replacing what it had). Returns 0 or CYMG_ENOMEM. */
int cymg__hosts_parse(const char *text, size_t len, cymg__hosts *h);
void cymg__hosts_free(cymg__hosts *h);
/* Up to max addresses of name (family CYMG_DNS_*); returns how many. */
size_t cymg__hosts_find(const cymg__hosts *h, const char *name, int family, cymg_addr *out,
                        size_t max);
/* Reads a whole small file (<= 1 MiB) into a malloc'd NUL-terminated buffer. */
char *cymg__read_small_file(const char *path, size_t *len, struct stat *st);

/* ---- the UDP socket pool (pool.c) ----
 * Queries share a few connected UDP sockets per server instead of opening one
 * per query. Each socket has its own random source port (chosen by the kernel
 * at connect), takes at most CYMG__DNS_SOCK_QUERIES queries or lives at most
 * CYMG__DNS_SOCK_AGE_MS before it is retired (closed once its last query is
 * answered or given up), and up to CYMG__DNS_ACTIVE per server take new queries
 * in turn, so an off-path attacker faces several ports that keep changing. Ids
 * are unique per socket; answers are matched by (socket, id), then the resolver
 * checks the question. */
#define CYMG__DNS_SOCKS 16
#define CYMG__DNS_ACTIVE 4
#define CYMG__DNS_SOCK_QUERIES 64
#define CYMG__DNS_SOCK_AGE_MS 10000
#define CYMG__DNS_BUCKETS 256

typedef struct cymg__dns_slot { /* a query waiting for its UDP answer */
  struct cymg__dns_slot *hnext;
  int sock; /* index in the pool; -1 when not waiting */
  uint16_t id;
} cymg__dns_slot;

typedef struct cymg__dns_sock {
  int fd; /* -1: a free entry */
  cymg_addr server;
  unsigned sent, waiting;
  uint64_t born;
  bool retired;
} cymg__dns_sock;

typedef struct cymg__dns_pool {
  cymg_mgr *mgr;
  cymg__dns_sock socks[CYMG__DNS_SOCKS];
  cymg__dns_slot *buckets[CYMG__DNS_BUCKETS]; /* waiting slots by id */
  size_t rr;
  int reading; /* the socket being read (not closed under its own loop), or -1 */
  uint8_t rnd[256];
  size_t rnd_left;
} cymg__dns_pool;

void cymg__dns_pool_init(cymg__dns_pool *p, cymg_mgr *mgr);
void cymg__dns_pool_free(cymg__dns_pool *p);
/* A 16-bit id from the CSPRNG (pooled). Returns 0 or a negative code. */
int cymg__dns_random_id(cymg__dns_pool *p, uint16_t *out);
/* Sends the query (its id, the first two bytes, is replaced by one unused on
 * the socket chosen; slot->id has it) to srv; slot then waits for the answer.
 * Returns 0, or a negative code (the slot may still wait: the timeout moves on). */
int cymg__dns_pool_send(cymg__dns_pool *p, cymg__dns_slot *slot, const cymg_addr *srv,
                        uint8_t *query, size_t len);
/* Stops slot waiting (no-op when it is not). */
void cymg__dns_pool_cancel(cymg__dns_pool *p, cymg__dns_slot *slot);
/* resolver.c: a datagram carrying slot's id arrived on its socket (msg, len;
 * slot still waits: the resolver cancels it if it takes the answer), or the
 * socket failed (msg NULL: ICMP refused; slot no longer waits). */
void cymg__dns_udp_answer(cymg__dns_slot *slot, const uint8_t *msg, size_t len);

/* Connect path: starts resolving host for client connection c, then RESOLVE and
 * connect to port. Errors arrive as ERROR then CLOSE. */
void cymg__dns_connect(cymg_conn *c, const char *host, uint16_t port);
/* Called as a connection is freed: drops its lookups and fallback addresses. */
void cymg__dns_conn_gone(cymg_conn *c);
/* A connect by name failed: tries the next address of the other family.
 * Returns true when a new attempt started (the failure is then not reported). */
bool cymg__dns_connect_failed(cymg_conn *c);
void cymg__dns_free(cymg_mgr *mgr);

#endif
