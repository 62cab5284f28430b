/* End to end over TLS: arbitrary bytes from a peer through an accepted
 * connection of an https:// listener (see e2e.h for the input layout and what
 * every iteration checks).
 *
 * ctl[0] bit 4 picks the mode:
 *   0  after a real handshake: the harness is an OpenSSL client on its end of
 *      the socketpair; the payload goes as application data (HTTP requests
 *      through the TLS transport's read, record and pending paths), its cut
 *      points splitting it into separate SSL_writes
 *   1  raw: the payload is written as it is, in place of a ClientHello
 *      (garbage, truncated or crafted handshakes against the server's
 *      handshake state machine and its error reporting)
 * ctl[0] bits 0-1 pick the listener's options: 0 EC certificate, 1 the same
 * with mutual TLS requested (the harness sends no certificate, so mode 0
 * fails its handshake), 2 small HTTP limits, 3 every reply with
 * Connection: close.
 * The certificate is made in memory at start-up (self-signed EC P-256). */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cymg/cymg.h"
#include "e2e.h"

#define MODE_RAW 0x10u

static cymg_mgr *mgr;
static cymg_conn *lsn[4];
static SSL_CTX *client_ctx;
static char *cert_pem, *key_pem;

static void fn(cymg_conn *c, int ev, void *ev_data) {
  e2e_trace(ev, ev_data);
  if (ev != CYMG_EV_HTTP_MSG) return;
  cymg_http_msg *m = ev_data;
  intptr_t kind = (intptr_t) cymg_conn_userdata(c);
  const char *hdrs = kind == 3 ? "Connection: close\r\n" : "";
  if (cymg_str_starts(m->uri, cymg_str_c("/chunk"))) {
    if (cymg_http_reply_start(c, 200, hdrs) == 0 && cymg_http_chunk(c, m->body.buf, m->body.len) == 0)
      cymg_http_chunk(c, NULL, 0);
  } else {
    cymg_http_reply_data(c, 200, hdrs, m->body.buf, m->body.len);
  }
}

static char *bio_text(BIO *b) {
  char *p;
  long n = BIO_get_mem_data(b, &p);
  CHECK(n > 0);
  char *s = malloc((size_t) n + 1);
  CHECK(s != NULL);
  memcpy(s, p, (size_t) n);
  s[n] = '\0';
  return s;
}

/* A self-signed EC certificate for localhost, as PEM text. */
static void make_cert(void) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  CHECK(k != NULL);
  X509 *x = X509_new();
  CHECK(x != NULL);
  CHECK(X509_set_version(x, 2) == 1);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
  X509_NAME *n = X509_get_subject_name(x);
  CHECK(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *) "localhost", -1,
                                   -1, 0) == 1);
  CHECK(X509_set_issuer_name(x, n) == 1);
  CHECK(X509_set_pubkey(x, k) == 1);
  CHECK(X509_sign(x, k, EVP_sha256()) > 0);
  BIO *b = BIO_new(BIO_s_mem());
  CHECK(b != NULL && PEM_write_bio_X509(b, x) == 1);
  cert_pem = bio_text(b);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  CHECK(b != NULL && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1);
  key_pem = bio_text(b);
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(k);
}

static void at_exit(void) {
  cymg_mgr_free(mgr);
  SSL_CTX_free(client_ctx);
  free(cert_pem);
  free(key_pem);
  size_t s, x;
  cymg_tls_counts(&s, &x);
  CHECK(s == 0 && x == 0);
}

static void setup(void) {
  mgr = e2e_mgr_new();
  make_cert();
  cymg_mgr_set_tls_handshake_timeout(mgr, 0); /* the harness bounds every wait */
  for (intptr_t i = 0; i < 4; i++) {
    CHECK(cymg_http_listen(mgr, "https://127.0.0.1:0", fn, (void *) i, &lsn[i]) == 0);
    cymg_tls_opts o = {0};
    o.cert = cymg_str_c(cert_pem);
    o.key = cymg_str_c(key_pem);
    if (i == 1) o.ca = cymg_str_c(cert_pem);
    CHECK(cymg_tls_init(lsn[i], &o) == 0);
  }
  CHECK(cymg_http_set_limits(lsn[2], 1024, 8, 4096) == 0);
  client_ctx = SSL_CTX_new(TLS_client_method());
  CHECK(client_ctx != NULL);
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_mode(client_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  atexit(at_exit);
}

/* Reads and drops what the server sent (decrypted). False once it is gone. */
static bool tls_drain(SSL *ssl) {
  char buf[16384];
  for (int i = 0; i < 64; i++) {
    int r = SSL_read(ssl, buf, sizeof(buf));
    if (r > 0) continue;
    int e = SSL_get_error(ssl, r);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
  }
  return true;
}

/* The payload as application data after a real handshake. */
static void run_tls(uint64_t id, int fd, const e2e_in *in) {
  SSL *ssl = SSL_new(client_ctx);
  CHECK(ssl != NULL && SSL_set_fd(ssl, fd) == 1);
  SSL_set_connect_state(ssl);
  bool up = false;
  for (int i = 0; i < E2E_MAX_POLLS && cymg_mgr_find(mgr, id); i++) {
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
      up = true;
      break;
    }
    int e = SSL_get_error(ssl, r);
    ERR_clear_error();
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) break;
    CHECK(cymg_mgr_poll(mgr, 0) >= 0);
  }
  size_t off = 0;
  for (int piece = 0; up && piece < 4; piece++) {
    int stalls = 0;
    while (off < in->cut[piece] && cymg_mgr_find(mgr, id)) {
      size_t n = 0;
      if (SSL_write_ex(ssl, in->p + off, in->cut[piece] - off, &n) == 1) {
        off += n;
        continue;
      }
      int e = SSL_get_error(ssl, 0);
      ERR_clear_error();
      if ((e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) || ++stalls > E2E_MAX_STALLS) {
        up = false;
        break;
      }
      CHECK(cymg_mgr_poll(mgr, 0) >= 0);
      if (!tls_drain(ssl)) up = false;
    }
    CHECK(cymg_mgr_poll(mgr, 0) >= 0);
    if (up && !(in->ctl & E2E_NO_READ) && !tls_drain(ssl)) up = false;
  }
  for (int i = 0; up && i < E2E_MAX_POLLS && cymg_mgr_find(mgr, id); i++) {
    CHECK(cymg_mgr_poll(mgr, 0) >= 0);
    if (!tls_drain(ssl)) break;
  }
  /* An orderly end (close_notify) unless the peer is to vanish. */
  if (up && !(in->ctl & E2E_CLOSE_HARD) && SSL_shutdown(ssl) < 0) ERR_clear_error();
  SSL_free(ssl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (mgr == NULL) setup();
  e2e_in in;
  if (e2e_in_parse(data, size, &in) < 0) return 0;
  int fd;
  uint64_t id = e2e_adopt(lsn[in.ctl & 3], &fd);
  if (in.ctl & MODE_RAW) {
    e2e_write(mgr, id, fd, &in);
  } else {
    run_tls(id, fd, &in);
  }
  e2e_finish(mgr, id, fd, &in);
  CHECK(cymg_mgr_count(mgr) == 4); /* the listeners alone */
  size_t s;
  cymg_tls_counts(&s, NULL);
  CHECK(s == 0); /* the connection's SSL went with it */
  return 0;
}
