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
