/* DNS: a sans-I/O codec (RFC 1035 queries and answers) and an asynchronous stub
 * resolver that runs on a manager's loop. */
#ifndef CYMG_DNS_H
#define CYMG_DNS_H

#include "common.h"
#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Codec ---------------------------------------------------------------------
 * Pure functions: no allocation, no I/O, every read bounds-checked. */
enum { CYMG_DNS_A = 1, CYMG_DNS_CNAME = 5, CYMG_DNS_SOA = 6, CYMG_DNS_AAAA = 28 };
enum {
  CYMG_DNS_NOERROR = 0,
  CYMG_DNS_FORMERR = 1,
  CYMG_DNS_SERVFAIL = 2,
  CYMG_DNS_NXDOMAIN = 3,
  CYMG_DNS_NOTIMP = 4,
  CYMG_DNS_REFUSED = 5
};
#define CYMG_DNS_NAME_MAX 256 /* presentation form with its NUL (RFC 1035: 255 octets) */
#define CYMG_DNS_MAX_ADDRS 16
#define CYMG_DNS_MAX_CNAMES 8

/* A parsed answer to a one-question query. */
typedef struct cymg_dns_answer {
  uint16_t id;
  uint8_t rcode;   /* CYMG_DNS_NOERROR, ... */
  bool tc;         /* truncated: ask again over TCP */
  uint16_t qtype;  /* the question echoed by the server */
  char qname[CYMG_DNS_NAME_MAX];
  char canon[CYMG_DNS_NAME_MAX]; /* the name at the end of the CNAME chain */
  size_t naddrs;
  cymg_addr addrs[CYMG_DNS_MAX_ADDRS]; /* records of qtype owned by canon (port 0) */
  uint32_t ttls[CYMG_DNS_MAX_ADDRS];
  size_t ncnames;
  char cnames[CYMG_DNS_MAX_CNAMES][CYMG_DNS_NAME_MAX]; /* the chain's targets, in order */
  uint32_t cname_ttls[CYMG_DNS_MAX_CNAMES];
  uint32_t neg_ttl; /* RFC 2308: min(SOA TTL, SOA MINIMUM) from the authority section, or 0 */
  bool has_soa;
} cymg_dns_answer;

/* Writes a recursive query (RD set, class IN) for name and qtype into buf.
 * name may end with one dot. Returns bytes written, CYMG_EINVAL for a bad name
 * (empty label, label > 63, name > 255 octets) or CYMG_ENOSPC. Thread-safe. */
CYMG_API int cymg_dns_build_query(uint8_t *buf, size_t buf_len, uint16_t id, const char *name,
                                  uint16_t qtype);

/* Decodes the possibly compressed name at msg[ofs] into dst (dotted, no final
 * dot, "" for the root). Pointers must point backwards (so loops cannot form) and
 * stay inside msg. Returns the bytes the name occupies at ofs, or CYMG_EPARSE /
 * CYMG_ENOSPC. Thread-safe. */
CYMG_API int cymg_dns_decode_name(const uint8_t *msg, size_t len, size_t ofs, char *dst,
                                  size_t dst_len);

/* Parses a whole response (QR set, exactly one question) into out: the CNAME
 * chain from the question's name, the addresses of the question's type owned by
 * its end, and the negative TTL. Returns the bytes consumed (len unless trailing
 * bytes follow) or CYMG_EPARSE. Thread-safe. */
CYMG_API int cymg_dns_parse_answer(const uint8_t *msg, size_t len, cymg_dns_answer *out);

/* ---- Resolver --------------------------------------------------------------------
 * One per manager, created on first use: /etc/hosts (re-read when it changes),
 * then a cache (TTL-honouring, negative entries per RFC 2308, 1024 entries), then
 * the name servers of resolv.conf or cymg_mgr_set_dns(). Manager thread only. */
enum { CYMG_DNS_ANY = 0, CYMG_DNS_IPV4 = 4, CYMG_DNS_IPV6 = 6 };

typedef struct cymg_dns_result {
  const char *name;  /* as asked */
  int status;        /* 0, CYMG_ENOTFOUND, CYMG_ETIMEDOUT, CYMG_EPROTO, ... */
  const char *error; /* readable reason when status < 0 ("x.invalid: name not found") */
  size_t naddrs;     /* preferred family first */
  const cymg_addr *addrs;
  const uint32_t *ttls; /* remaining seconds per address (0 from the hosts file) */
  size_t ncnames;
  const char (*cnames)[CYMG_DNS_NAME_MAX]; /* the CNAME chain's targets, in order */
  bool from_cache;
  /* Remaining seconds of each CNAME link (cname_ttls[i] belongs to the record
   * whose target is cnames[i]); NULL when ncnames is 0. */
  const uint32_t *cname_ttls;
} cymg_dns_result;

/* Called once per lookup from the loop (never inside cymg_dns_lookup); the result
 * and its arrays are valid during the call only. */
typedef void (*cymg_dns_fn)(cymg_mgr *mgr, const cymg_dns_result *res, void *arg);

/* Starts resolving name. family: CYMG_DNS_ANY (A and AAAA in parallel, IPv6
 * first), CYMG_DNS_IPV4 or CYMG_DNS_IPV6 (that type only). *out_id (may be NULL)
 * names the lookup for cymg_dns_cancel. Returns 0 or CYMG_EINVAL / CYMG_ENOMEM. */
CYMG_API int cymg_dns_lookup(cymg_mgr *mgr, const char *name, int family, cymg_dns_fn fn,
                             void *arg, uint64_t *out_id);
/* Forgets a lookup: its function is not called. Unknown ids are ignored. */
CYMG_API void cymg_dns_cancel(cymg_mgr *mgr, uint64_t id);

/* Name servers to use instead of resolv.conf's: a comma-separated list of
 * "udp://IP:PORT" (port 53 if absent); NULL goes back to resolv.conf. Returns 0
 * or CYMG_EBADURL (nothing changed). */
CYMG_API int cymg_mgr_set_dns(cymg_mgr *mgr, const char *servers);
/* The resolv.conf to read (NULL = /etc/resolv.conf). The string is copied. */
CYMG_API int cymg_mgr_set_resolv_conf(cymg_mgr *mgr, const char *path);
/* Per-attempt timeout (ms) and attempts per server, overriding resolv.conf's
 * (0 keeps it). */
CYMG_API void cymg_mgr_set_dns_timeout(cymg_mgr *mgr, unsigned timeout_ms, unsigned attempts);
/* Address family that connects by name prefer (CYMG_DNS_*; ANY = IPv6 then IPv4). */
CYMG_API void cymg_mgr_set_dns_family(cymg_mgr *mgr, int family);
/* Empties the cache. */
CYMG_API void cymg_mgr_dns_flush(cymg_mgr *mgr);

/* Resolves url's host (a URL or a bare name; port from the URL or the scheme's
 * default) for connection c without touching its socket: on success sets its
 * remote address and fires CYMG_EV_RESOLVE; on failure ERROR (the reason) then
 * CLOSE. Works on listeners too. Returns 0 or CYMG_EBADURL / CYMG_ENOMEM /
 * CYMG_ECLOSED. */
CYMG_API int cymg_conn_resolve(cymg_conn *c, const char *url);
/* Stops a resolve in progress on c (no later RESOLVE or ERROR from it). */
CYMG_API void cymg_conn_resolve_cancel(cymg_conn *c);

#ifdef __cplusplus
}
#endif
#endif
