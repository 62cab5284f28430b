/* Built without TLS (CYMG_TLS=OFF): the TLS calls exist and refuse. TLS
 * scheme URLs are refused before they get here (src/net/addr.c). */
#if !CYMG_TLS
#include "internal.h"

int cymg__tls_mark(cymg_conn *c, const char *host, uint16_t port) {
  (void) c;
  (void) host;
  (void) port;
  return CYMG_ENOTSUP;
}
void cymg__tls_adopt(cymg_conn *c, cymg_conn *lsn) {
  (void) lsn;
  cymg__conn_fail_later(c, "TLS: not built in");
}
void cymg__tls_accepted(cymg_conn *c) { (void) c; }
void cymg__tls_mgr_free(cymg_mgr *mgr) { (void) mgr; }

int cymg_tls_init(cymg_conn *c, const cymg_tls_opts *opts) {
  (void) opts;
  if (c) cymg__mgr_errmsg(c->mgr, "TLS: built without TLS (CYMG_TLS=OFF)");
  return CYMG_ENOTSUP;
}
void cymg_tls_free(cymg_conn *c) { (void) c; }
void cymg_mgr_set_tls_handshake_timeout(cymg_mgr *mgr, uint32_t ms) {
  if (mgr) mgr->tls_hs_ms = ms;
}
static cymg_str empty(void) { return cymg_str_n("", 0); }
cymg_str cymg_tls_version(const cymg_conn *c) { (void) c; return empty(); }
cymg_str cymg_tls_cipher(const cymg_conn *c) { (void) c; return empty(); }
cymg_str cymg_tls_alpn(const cymg_conn *c) { (void) c; return empty(); }
bool cymg_tls_resumed(const cymg_conn *c) { (void) c; return false; }
cymg_str cymg_tls_peer_subject(const cymg_conn *c) { (void) c; return empty(); }
void cymg_tls_counts(size_t *ssl, size_t *ctx) {
  if (ssl) *ssl = 0;
  if (ctx) *ctx = 0;
}
#endif
