/* Addresses: the core's URL form, name lookup without DNS (literals, localhost,
 * the hosts file), formatting, and the public listen/connect entry points. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cymg/str.h"
#include "cymg/url.h"
#include "dns/dns_internal.h"

int cymg_addr_str(const cymg_addr *a, bool with_port, char *dst, size_t dst_len) {
  char ip[INET6_ADDRSTRLEN];
  inet_ntop(a->is_ip6 ? AF_INET6 : AF_INET, a->ip, ip, sizeof(ip));
  int n;
  if (!with_port) {
    n = snprintf(dst, dst_len, "%s", ip);
  } else if (a->is_ip6) {
    n = snprintf(dst, dst_len, "[%s]:%u", ip, (unsigned) a->port);
  } else {
    n = snprintf(dst, dst_len, "%s:%u", ip, (unsigned) a->port);
  }
  return (n < 0 || (size_t) n >= dst_len) ? CYMG_ENOSPC : n;
}

/* Looks name up in a hosts file (RFC 952 format: address, then names). The first
 * line naming it wins. Returns 0 or CYMG_ERESOLVE. */
int cymg__hosts_lookup(const char *path, const char *name, cymg_addr *addr) {
  FILE *fp = fopen(path ? path : "/etc/hosts", "r");
  if (fp == NULL) return CYMG_ERESOLVE;
  char line[512];
  int rc = CYMG_ERESOLVE;
  while (rc != 0 && fgets(line, sizeof(line), fp)) {
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *save = NULL, *ip = strtok_r(line, " \t\r\n", &save), *tok;
    if (ip == NULL) continue;
    while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
      if (strcasecmp(tok, name) != 0) continue;
      cymg_addr a = {0};
      if (inet_pton(AF_INET, ip, a.ip) == 1 ||
          (inet_pton(AF_INET6, ip, a.ip) == 1 && (a.is_ip6 = true))) {
        a.port = addr->port;
        *addr = a;
        rc = 0;
      }
      break;
    }
  }
  fclose(fp);
  return rc;
}

int cymg__resolve_url(cymg_mgr *mgr, const char *url, cymg_url *u, cymg_addr *addr,
                      char *host, size_t host_len) {
  memset(addr, 0, sizeof(*addr));
  host[0] = '\0';
  if (url == NULL || cymg_url_parse(cymg_str_c(url), u) < 0 || u->scheme.buf == NULL) {
    cymg__mgr_errmsg(mgr, "'%s': malformed URL (expected scheme://host:port)", url ? url : "");
    return CYMG_EBADURL;
  }
  cymg_str h = u->host;
  if (h.buf != NULL) cymg_url_split_zone(u->host, &h, &(cymg_str){0});
  if (h.len >= host_len) {
    cymg__mgr_errmsg(mgr, "'%s': host name too long", url);
    return CYMG_EBADURL;
  }
  memcpy(host, h.buf ? h.buf : "", h.len);
  host[h.len] = '\0';
  addr->port = u->port_num;
  if (h.len == 0) return 0; /* "tcp://:8000": every IPv4 address */
  if (u->is_ip6) {
    addr->is_ip6 = true;
    return inet_pton(AF_INET6, host, addr->ip) == 1 ? 0 : CYMG_EBADURL;
  }
  if (inet_pton(AF_INET, host, addr->ip) == 1) return 0;
  if (strcasecmp(host, "localhost") == 0) { /* RFC 6761: always loopback */
    addr->ip[0] = 127;
    addr->ip[3] = 1;
    return 0;
  }
  if (cymg__hosts_lookup(mgr->hosts_file, host, addr) == 0) return 0;
  cymg__mgr_errmsg(mgr, "'%s': cannot resolve host '%s'", url, host);
  return CYMG_ERESOLVE;
}

/* Resolves url for listen/connect. scheme NULL: any scheme of the URL table
 * (cymg_url_scheme_flags) on its own transport: udp:// and sntp:// over UDP,
 * the rest (tcp, http, ws, mqtt) as plain TCP with the scheme's default port
 * until a protocol layer is asked for, and the TLS ones (tls, https, wss) over
 * TLS; otherwise the URL must have that scheme or its TLS form ("http" takes
 * "https" too, "ws" "wss"): a protocol entry point. *tls says whether TLS goes
 * under it (mqtts:// is TLS on 8883; cymg_mqtt_connect/listen put MQTT on top).
 * Unknown schemes are always refused. */
static int sock_url(cymg_mgr *mgr, const char *url, const char *scheme, bool *udp, bool *tls,
                    cymg_addr *addr, char *host, size_t host_len) {
  cymg_url u;
  int rc = cymg__resolve_url(mgr, url, &u, addr, host, host_len);
  if (rc == CYMG_EBADURL) return rc;
  unsigned flags = cymg_url_scheme_flags(u.scheme);
  *udp = (flags & CYMG_URL_UDP) != 0;
  *tls = (flags & CYMG_URL_TLS) != 0;
#if !CYMG_TLS
  if (*tls) {
    cymg__mgr_errmsg(mgr, "'%s': built without TLS (CYMG_TLS=OFF)", url);
    return CYMG_ENOTSUP;
  }
#endif
  bool ok;
  if (scheme) {
    /* The TLS form of a protocol's scheme is the same name with an "s". */
    cymg_str plain = u.scheme;
    if (*tls && plain.len > 1) plain.len--;
    ok = cymg_str_case_eq(plain, cymg_str_c(scheme)) &&
         (!*tls || u.scheme.buf[plain.len] == 's' || u.scheme.buf[plain.len] == 'S');
  } else {
    ok = (flags & CYMG_URL_KNOWN) != 0;
  }
  if (ok) return rc;
  *udp = *tls = false;
  cymg__mgr_errmsg(mgr, "'%s': unsupported scheme '%.*s'%s%s", url, (int) u.scheme.len,
                   u.scheme.buf, scheme ? ", expected " : "", scheme ? scheme : "");
  return CYMG_ESCHEME;
}

int cymg__listen_url(cymg_mgr *mgr, const char *url, const char *scheme, bool reuseport,
                     cymg_event_fn fn, void *fn_data, cymg_conn **out) {
  if (out) *out = NULL;
  if (mgr == NULL) return CYMG_EINVAL;
  mgr->errmsg[0] = '\0';
  bool udp, tls;
  cymg_addr addr;
  char host[256];
  int rc = sock_url(mgr, url, scheme, &udp, &tls, &addr, host, sizeof(host));
  if (rc < 0) return rc;
  cymg_conn *c;
  rc = cymg__listen_addr(mgr, &addr, udp, reuseport, fn, fn_data, &c);
  if (rc == 0 && tls && (rc = cymg__tls_mark(c, NULL, 0)) < 0) {
    /* Never a plain listener where TLS was asked for. */
    cymg__mgr_errmsg(mgr, "listen '%s': TLS: %s", url, cymg_strerror(rc));
    cymg_close(c);
    return rc;
  }
  if (rc == 0 && out) *out = c;
  return rc;
}

int cymg_listen(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                cymg_conn **out) {
  return cymg__listen_url(mgr, url, NULL, false, fn, fn_data, out);
}

int cymg_listen_reuseport(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                          cymg_conn **out) {
  return cymg__listen_url(mgr, url, NULL, true, fn, fn_data, out);
}

int cymg__connect_url(cymg_mgr *mgr, const char *url, const char *scheme, cymg_event_fn fn,
                      void *fn_data, cymg_conn **out) {
  if (out) *out = NULL;
  if (mgr == NULL) return CYMG_EINVAL;
  mgr->errmsg[0] = '\0';
  bool udp, tls;
  cymg_addr addr;
  char host[256];
  int rc = sock_url(mgr, url, scheme, &udp, &tls, &addr, host, sizeof(host));
  if (rc == 0 && host[0] == '\0') {
    cymg__mgr_errmsg(mgr, "'%s': a host is needed to connect", url);
    rc = CYMG_EBADURL;
  } else if (rc == 0 && addr.port == 0) {
    cymg__mgr_errmsg(mgr, "'%s': a port is needed to connect", url);
    rc = CYMG_EBADURL;
  }
  if (rc < 0 && rc != CYMG_ERESOLVE) return rc;
  cymg_conn *c = cymg__conn_new(mgr, -1, CYMG__F_CLIENT | (udp ? CYMG__F_UDP : 0), fn, fn_data);
  if (c == NULL) {
    cymg__mgr_errmsg(mgr, "connect '%s': out of memory", url);
    return CYMG_ENOMEM;
  }
  if (tls) {
    int trc = cymg__tls_mark(c, host, addr.port);
    if (trc < 0) {
      cymg__mgr_errmsg(mgr, "connect '%s': TLS: %s", url, cymg_strerror(trc));
      cymg_close(c);
      return trc;
    }
  }
  if (out) *out = c;
  cymg_call(c, CYMG_EV_OPEN, NULL);
  if (c->flags & CYMG__F_CLOSING) return 0;
  if (rc == CYMG_ERESOLVE) {
    /* Not a literal, localhost or in the hosts file: ask DNS (src/dns/). RESOLVE
     * and the connect follow from the loop; a failure is ERROR then CLOSE. */
    mgr->errmsg[0] = '\0';
    cymg__dns_connect(c, host, addr.port);
    return 0;
  }
  cymg_call(c, CYMG_EV_RESOLVE, NULL);
  if (!(c->flags & CYMG__F_CLOSING)) cymg__connect_addr(c, &addr);
  return 0;
}

int cymg_connect(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                 cymg_conn **out) {
  return cymg__connect_url(mgr, url, NULL, fn, fn_data, out);
}
