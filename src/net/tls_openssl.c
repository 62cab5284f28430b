/* TLS through OpenSSL: the one file that calls it for TLS. A transport under
 * the connection (internal.h): the handshake runs from the loop's readiness
 * reports, records go through the connection's own receive and send buffers.
 * The design is in docs/tls.md. */
#if CYMG_TLS
#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal.h"

/* ---- leak counters ---- */

static atomic_size_t n_ssl, n_ctx;

void cymg_tls_counts(size_t *ssl, size_t *ctx) {
  if (ssl) *ssl = atomic_load(&n_ssl);
  if (ctx) *ctx = atomic_load(&n_ctx);
}

static SSL_CTX *ctx_new(bool server) {
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx) atomic_fetch_add(&n_ctx, 1);
  return ctx;
}

static void ctx_free(SSL_CTX *ctx) {
  if (ctx == NULL) return;
  SSL_CTX_free(ctx);
  atomic_fetch_sub(&n_ctx, 1);
}

/* ---- OpenSSL's reasons ---- */

/* The reason of the error queue's last entry ("certificate verify failed"),
 * with the verification result when that was the cause; clears the queue. */
static void ssl_reason(SSL *ssl, int ret, int err, char *out, size_t len) {
  unsigned long e = 0, last;
  while ((last = ERR_get_error()) != 0) e = last;
  if (e != 0) {
    const char *r = ERR_reason_error_string(e);
    char tmp[256];
    if (r == NULL) {
      ERR_error_string_n(e, tmp, sizeof(tmp));
      r = tmp;
    }
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK) {
      snprintf(out, len, "%s: %s", r, X509_verify_cert_error_string(v));
    } else {
      snprintf(out, len, "%s", r);
    }
  } else if (err == SSL_ERROR_SYSCALL && errno != 0 && ret < 0) {
    snprintf(out, len, "%s", strerror(errno));
  } else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
    snprintf(out, len, "connection closed by the peer");
  } else {
    snprintf(out, len, "TLS error %d", err);
  }
}

/* SSL_get_error reads the thread's error queue, so it must hold nothing from
 * before the call. Peeking is cheaper than clearing all its slots, and on the
 * data path (two calls per keep-alive request) the queue is nearly always
 * empty: every failure here empties it in ssl_reason. */
static void err_fresh(void) {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

/* The reason of a failed material load, for cymg_mgr_errmsg. */
static int material_error(cymg_mgr *mgr, const char *what) {
  char r[256];
  ssl_reason(NULL, 0, SSL_ERROR_SSL, r, sizeof(r));
  cymg__mgr_errmsg(mgr, "%s: %s", what, r);
  return CYMG_ETLS;
}

/* ---- contexts: one per set of options, shared by the connections using them ---- */

typedef struct tls_ctx {
  SSL_CTX *ctx;
  unsigned refs;
  bool server, has_cert, skip;
  char *name;                    /* client: name to send and verify (NULL: URL's host) */
  unsigned char *alpn;           /* wire format; NULL: the default for the protocol */
  size_t alpn_len;
  uint64_t fp;                   /* client: what the session cache key depends on */
  struct tls_ctx **sni;          /* server: more certificates, by name */
  size_t nsni;
} tls_ctx;

static void tctx_unref(tls_ctx *t) {
  if (t == NULL || --t->refs > 0) return;
  for (size_t i = 0; i < t->nsni; i++) tctx_unref(t->sni[i]);
  free(t->sni);
  ctx_free(t->ctx);
  free(t->name);
  free(t->alpn);
  free(t);
}

/* PEM text (it has "-----BEGIN") or a file path, as a memory BIO. */
static BIO *material_bio(cymg_mgr *mgr, cymg_str s, const char *what) {
  if (cymg_str_find(s, cymg_str_c("-----BEGIN")).buf != NULL) {
    if (s.len > INT32_MAX) return NULL;
    BIO *b = BIO_new_mem_buf(s.buf, (int) s.len);
    if (b == NULL) cymg__mgr_errmsg(mgr, "%s: out of memory", what);
    return b;
  }
  char path[4096];
  if (s.len >= sizeof(path) || memchr(s.buf, '\0', s.len)) {
    cymg__mgr_errmsg(mgr, "%s: neither PEM text nor a file path", what);
    return NULL;
  }
  memcpy(path, s.buf, s.len);
  path[s.len] = '\0';
  BIO *b = BIO_new_file(path, "r");
  if (b == NULL) {
    ERR_clear_error();
    cymg__mgr_errmsg(mgr, "%s: cannot read '%s': %s", what, path, strerror(errno));
  }
  return b;
}

static int pass_cb(char *buf, int size, int rwflag, void *u) {
  (void) rwflag;
  const cymg_str *pw = u;
  if (pw == NULL || pw->len == 0 || pw->len > (size_t) size) return 0;
  memcpy(buf, pw->buf, pw->len);
  return (int) pw->len;
}

/* The certificate chain (leaf first) and its key into ctx. */
static int load_cert(cymg_mgr *mgr, SSL_CTX *ctx, cymg_str cert, cymg_str key, cymg_str pw) {
  BIO *b = material_bio(mgr, cert, "certificate");
  if (b == NULL) return CYMG_ETLS;
  X509 *leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
  int rc = 0;
  if (leaf == NULL || SSL_CTX_use_certificate(ctx, leaf) != 1) {
    rc = material_error(mgr, "certificate");
  } else {
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
      if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
        X509_free(x);
        rc = material_error(mgr, "certificate chain");
        break;
      }
    }
    /* The end of the PEM shows as "no start line": not an error. */
    unsigned long e = ERR_peek_last_error();
    if (rc == 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
      ERR_clear_error();
  }
  BIO_free(b);
  if (rc < 0) {
    X509_free(leaf);
    return rc;
  }
  b = material_bio(mgr, key.len ? key : cert, "key");
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, pass_cb, &pw) : NULL;
  BIO_free(b);
  if (b == NULL) {
    rc = CYMG_ETLS;
  } else if (k == NULL) {
    rc = material_error(mgr, "key");
  } else if (X509_check_private_key(leaf, k) != 1 || SSL_CTX_use_PrivateKey(ctx, k) != 1 ||
             SSL_CTX_check_private_key(ctx) != 1) {
    /* Checked against the leaf first: a key of the other type would else be
     * "no certificate assigned" rather than the mismatch it is. */
    rc = material_error(mgr, "key");
  }
  EVP_PKEY_free(k);
  X509_free(leaf);
  return rc;
}

/* Trusted CAs into ctx's store; on a server also the names it asks clients for. */
static int load_ca(cymg_mgr *mgr, SSL_CTX *ctx, cymg_str ca, bool server) {
  BIO *b = material_bio(mgr, ca, "CA");
  if (b == NULL) return CYMG_ETLS;
  X509_STORE *st = SSL_CTX_get_cert_store(ctx);
  X509 *x;
  int n = 0, rc = 0;
  while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    if (X509_STORE_add_cert(st, x) != 1 || (server && SSL_CTX_add_client_CA(ctx, x) != 1)) {
      X509_free(x);
      rc = material_error(mgr, "CA");
      break;
    }
    X509_free(x);
    n++;
  }
  BIO_free(b);
  if (rc == 0 && n == 0) return material_error(mgr, "CA");
  ERR_clear_error();
  return rc;
}

/* "h2,http/1.1" into ALPN's wire format. */
static int alpn_wire(cymg_mgr *mgr, cymg_str list, unsigned char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  if (list.len == 0) return 0;
  unsigned char *w = malloc(list.len + 1);
  if (w == NULL) return CYMG_ENOMEM;
  size_t n = 0, i = 0;
  while (i <= list.len) {
    size_t j = i;
    while (j < list.len && list.buf[j] != ',') j++;
    size_t l = j - i;
    if (l == 0 || l > 255) {
      free(w);
      cymg__mgr_errmsg(mgr, "ALPN: bad protocol list '%.*s'", (int) list.len, list.buf);
      return CYMG_EINVAL;
    }
    w[n++] = (unsigned char) l;
    memcpy(w + n, list.buf + i, l);
    n += l;
    i = j + 1;
  }
  *out = w;
  *out_len = n;
  return 0;
}

static const unsigned char alpn_http[] = "\x08http/1.1";

static bool is_http(const cymg_conn *c) {
  return c->proto && (strcmp(c->proto->name, "http") == 0 || strcmp(c->proto->name, "websocket") == 0);
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  tls_ctx *t = arg;
  cymg_conn *c = SSL_get_app_data(ssl);
  const unsigned char *ours = t->alpn;
  size_t ours_len = t->alpn_len;
  if (ours == NULL && c && is_http(c)) {
    ours = alpn_http;
    ours_len = sizeof(alpn_http) - 1;
  }
  if (ours == NULL) return SSL_TLSEXT_ERR_NOACK;
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, ours, (unsigned) ours_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* SNI: the first extra certificate whose names match what the client asked
 * for; else the default. */
static int sni_select(SSL *ssl, int *alert, void *arg) {
  (void) alert;
  tls_ctx *t = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == NULL) return SSL_TLSEXT_ERR_OK;
  for (size_t i = 0; i < t->nsni; i++) {
    X509 *x = SSL_CTX_get0_certificate(t->sni[i]->ctx);
    if (x && X509_check_host(x, name, 0, 0, NULL) == 1) {
      if (SSL_set_SSL_CTX(ssl, t->sni[i]->ctx) == NULL) return SSL_TLSEXT_ERR_ALERT_FATAL;
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

static int new_session(SSL *ssl, SSL_SESSION *sess);

/* The settings every context gets, whatever its options. */
static int ctx_common(cymg_mgr *mgr, SSL_CTX *ctx, const cymg_tls_opts *o, bool server) {
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  /* Renegotiation would let a write want a read; TLS 1.3 has none anyway. */
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  /* One read(2) takes what the socket has (a whole request's record) rather
   * than a 5-byte header, then the body: a keep-alive request costs one
   * read instead of three. RELEASE_BUFFERS still frees the buffer once it is
   * empty; what it holds is seen by tls_pending. */
  SSL_CTX_set_read_ahead(ctx, 1);
  /* Kernel TLS where the kernel has it (files then go by SSL_sendfile);
   * OpenSSL falls back to its own records silently where it does not. */
  if (server) SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
  int minv = o->min_version == CYMG_TLS_DEFAULT ? TLS1_2_VERSION : o->min_version;
  if (minv != TLS1_2_VERSION && minv != TLS1_3_VERSION) {
    cymg__mgr_errmsg(mgr, "TLS: unsupported minimum version 0x%04x", (unsigned) minv);
    return CYMG_EINVAL;
  }
  if (SSL_CTX_set_min_proto_version(ctx, minv) != 1) return material_error(mgr, "min version");
  if (o->ciphers.len) {
    char buf[1024];
    if (o->ciphers.len >= sizeof(buf)) {
      cymg__mgr_errmsg(mgr, "TLS: cipher list too long");
      return CYMG_EINVAL;
    }
    memcpy(buf, o->ciphers.buf, o->ciphers.len);
    buf[o->ciphers.len] = '\0';
    if (SSL_CTX_set_cipher_list(ctx, buf) != 1) return material_error(mgr, "ciphers");
  }
  if (server) {
    static const unsigned char sid[] = "cymg";
    if (SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1) != 1)
      return material_error(mgr, "session id");
    /* Resumption is by tickets (stateless, TLS 1.2 and 1.3): a server-side
     * cache would only hold up to 20,480 TLS 1.2 sessions, lock and sweep. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* One TLS 1.3 ticket per handshake, not OpenSSL's two: clients keep one
     * session per server (ours does), and each ticket is an encryption and a
     * record more for every full handshake. */
    if (SSL_CTX_set_num_tickets(ctx, 1) != 1) return material_error(mgr, "tickets");
  } else {
    /* Sessions go to the manager's cache (host:port), not OpenSSL's. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
  }
  return 0;
}

static uint64_t fnv(uint64_t h, cymg_str s) {
  for (size_t i = 0; i < s.len; i++) h = (h ^ (unsigned char) s.buf[i]) * 1099511628211ull;
  return (h ^ 0xff) * 1099511628211ull;
}

/* A server context for one certificate of opts (cert/key given as c/k/pw). */
static int server_ctx(cymg_mgr *mgr, const cymg_tls_opts *o, cymg_str c, cymg_str k,
                      cymg_str pw, tls_ctx **out) {
  tls_ctx *t = calloc(1, sizeof(*t));
  if (t == NULL) return CYMG_ENOMEM;
  t->refs = 1;
  t->server = true;
  *out = t;
  if ((t->ctx = ctx_new(true)) == NULL) return material_error(mgr, "SSL_CTX_new");
  int rc = ctx_common(mgr, t->ctx, o, true);
  if (rc == 0 && c.len) {
    rc = load_cert(mgr, t->ctx, c, k, pw);
    t->has_cert = rc == 0;
  }
  if (rc == 0 && o->ca.len) {
    rc = load_ca(mgr, t->ctx, o->ca, true);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  if (rc == 0) rc = alpn_wire(mgr, o->alpn, &t->alpn, &t->alpn_len);
  if (rc == 0) SSL_CTX_set_alpn_select_cb(t->ctx, alpn_select, t);
  return rc;
}

static int make_ctx(cymg_mgr *mgr, const cymg_tls_opts *o, bool server, tls_ctx **out) {
  *out = NULL;
  int rc;
  if (server) {
    rc = server_ctx(mgr, o, o->cert, o->key, o->key_password, out);
    tls_ctx *t = *out;
    if (rc == 0 && o->sni_count) {
      if (o->sni_certs == NULL) return CYMG_EINVAL;
      t->sni = calloc(o->sni_count, sizeof(*t->sni));
      if (t->sni == NULL) return CYMG_ENOMEM;
      for (size_t i = 0; i < o->sni_count && rc == 0; i++) {
        const cymg_tls_cert *sc = &o->sni_certs[i];
        rc = server_ctx(mgr, o, sc->cert, sc->key, sc->key_password, &t->sni[t->nsni]);
        if (t->sni[t->nsni]) t->nsni++;
        if (rc == 0 && !t->sni[t->nsni - 1]->has_cert) {
          cymg__mgr_errmsg(mgr, "SNI certificate %zu: no certificate", i);
          rc = CYMG_ETLS;
        }
      }
      if (rc == 0) {
        SSL_CTX_set_tlsext_servername_callback(t->ctx, sni_select);
        SSL_CTX_set_tlsext_servername_arg(t->ctx, t);
      }
    }
    return rc;
  }
  tls_ctx *t = calloc(1, sizeof(*t));
  if (t == NULL) return CYMG_ENOMEM;
  t->refs = 1;
  *out = t;
  if ((t->ctx = ctx_new(false)) == NULL) return material_error(mgr, "SSL_CTX_new");
  rc = ctx_common(mgr, t->ctx, o, false);
  t->skip = o->skip_verification;
  if (rc == 0) SSL_CTX_set_verify(t->ctx, t->skip ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
  if (rc == 0 && o->ca.len) {
    rc = load_ca(mgr, t->ctx, o->ca, false);
  } else if (rc == 0 && SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
    rc = material_error(mgr, "system trust store");
  }
  if (rc == 0 && o->cert.len) {
    rc = load_cert(mgr, t->ctx, o->cert, o->key, o->key_password);
    t->has_cert = rc == 0;
  }
  if (rc == 0) rc = alpn_wire(mgr, o->alpn, &t->alpn, &t->alpn_len);
  if (rc == 0 && o->name.len) {
    t->name = malloc(o->name.len + 1);
    if (t->name == NULL) return CYMG_ENOMEM;
    memcpy(t->name, o->name.buf, o->name.len);
    t->name[o->name.len] = '\0';
  }
  uint64_t h = 1469598103934665603ull;
  h = fnv(h, o->ca);
  h = fnv(h, o->cert);
  h = fnv(h, o->name);
  h = fnv(h, cymg_str_c(t->skip ? "skip" : "verify"));
  t->fp = h;
  return rc;
}

/* ---- the manager's part: default client context, client session cache ---- */

#define SESS_SLOTS 64

typedef struct cymg__tls_mgr {
  tls_ctx *client_default;
  struct {
    char key[300];
    SSL_SESSION *sess;
  } cache[SESS_SLOTS];
  unsigned next_slot;
} cymg__tls_mgr;

static cymg__tls_mgr *tls_mgr(cymg_mgr *mgr) {
  if (mgr->tls == NULL) mgr->tls = calloc(1, sizeof(*mgr->tls));
  return mgr->tls;
}

void cymg__tls_mgr_free(cymg_mgr *mgr) {
  cymg__tls_mgr *m = mgr->tls;
  if (m == NULL) return;
  tctx_unref(m->client_default);
  for (size_t i = 0; i < SESS_SLOTS; i++) SSL_SESSION_free(m->cache[i].sess);
  free(m);
  mgr->tls = NULL;
}

void cymg_mgr_set_tls_handshake_timeout(cymg_mgr *mgr, uint32_t ms) {
  if (mgr) mgr->tls_hs_ms = ms;
}

/* ---- per connection ---- */

typedef struct cymg__tls {
  tls_ctx *ctx;   /* NULL: no options yet (a listener's, a client's defaults) */
  char *err;      /* material failure given to a listener: its connections fail with it */
  SSL *ssl;
  char *host;     /* client: the URL's host (SNI, verification) */
  uint16_t port;
  bool scheme;    /* made for a TLS scheme: stays TLS through cymg_tls_free */
  bool hs_done, fatal, read_wants_write, write_wants_read, peer_closed;
  /* The last SSL_read wanted bytes from the socket: what OpenSSL still holds
   * (SSL_has_pending) is the start of a record, and the socket's readiness
   * brings the rest. */
  bool rx_starved;
  unsigned hs_want; /* CYMG__IO_* the handshake waits for */
  cymg_timer_id timer;
  char *subject;
  char *sess_key; /* client: its session cache key (servers keep none: every
                   * idle connection's bytes count, docs/tls.md) */
} cymg__tls;

static const cymg__transport tls_transport;

static cymg__tls *tls_of(const cymg_conn *c) {
  return c && c->tp == &tls_transport ? c->tp_state : NULL;
}

static int new_session(SSL *ssl, SSL_SESSION *sess) {
  cymg_conn *c = SSL_get_app_data(ssl);
  cymg__tls *t = tls_of(c);
  if (t == NULL || t->sess_key == NULL) return 0;
  cymg__tls_mgr *m = tls_mgr(c->mgr);
  if (m == NULL) return 0;
  size_t slot = SESS_SLOTS;
  for (size_t i = 0; i < SESS_SLOTS; i++)
    if (m->cache[i].sess && strcmp(m->cache[i].key, t->sess_key) == 0) slot = i;
  if (slot == SESS_SLOTS) slot = m->next_slot++ % SESS_SLOTS;
  SSL_SESSION_free(m->cache[slot].sess);
  m->cache[slot].sess = sess;
  snprintf(m->cache[slot].key, sizeof(m->cache[slot].key), "%s", t->sess_key);
  return 1; /* the cache keeps the reference */
}

static SSL_SESSION *cached_session(cymg_mgr *mgr, const char *key) {
  cymg__tls_mgr *m = mgr->tls;
  if (m == NULL) return NULL;
  for (size_t i = 0; i < SESS_SLOTS; i++)
    if (m->cache[i].sess && strcmp(m->cache[i].key, key) == 0) return m->cache[i].sess;
  return NULL;
}

static void hs_timer_fn(void *arg) {
  cymg_conn *c = arg;
  cymg__tls *t = tls_of(c);
  if (t == NULL) return;
  t->timer = 0;
  if (!t->hs_done) cymg_error(c, "TLS handshake timed out after %u ms", (unsigned) c->mgr->tls_hs_ms);
}

static void timer_start(cymg_conn *c, cymg__tls *t) {
  if (t->timer || c->mgr->tls_hs_ms == 0) return;
  if (cymg_timer_add(c->mgr, c->mgr->tls_hs_ms, CYMG_TIMER_ONCE, hs_timer_fn, c, &t->timer) < 0) {
    t->timer = 0;
    cymg__conn_fail_later(c, "TLS handshake timer: out of memory");
  }
}

static void timer_stop(cymg_conn *c, cymg__tls *t) {
  if (t->timer) cymg_timer_cancel(c->mgr, t->timer);
  t->timer = 0;
}

static void fail(cymg_conn *c, cymg__tls *t, const char *what, int ret, int err) {
  char r[300];
  ssl_reason(t->ssl, ret, err, r, sizeof(r));
  t->fatal = true;
  cymg__conn_fail_later(c, "TLS%s: %s", what, r);
}

static void ssl_drop(cymg__tls *t) {
  if (t->ssl == NULL) return;
  SSL_free(t->ssl);
  t->ssl = NULL;
  atomic_fetch_sub(&n_ssl, 1);
}

static void state_free(cymg_conn *c, cymg__tls *t) {
  timer_stop(c, t);
  ssl_drop(t);
  tctx_unref(t->ctx);
  free(t->err);
  free(t->host);
  free(t->subject);
  free(t->sess_key);
  free(t);
}

/* Makes t->ssl for the connection's side; false after a failure was noted. */
static bool ssl_make(cymg_conn *c, cymg__tls *t) {
  bool client = (c->flags & CYMG__F_CLIENT) != 0;
  if (client && t->ctx == NULL) {
    cymg__tls_mgr *m = tls_mgr(c->mgr);
    cymg_tls_opts none = {0};
    if (m && m->client_default == NULL && make_ctx(c->mgr, &none, false, &m->client_default) < 0) {
      tctx_unref(m->client_default);
      m->client_default = NULL;
      cymg__conn_fail_later(c, "TLS: %s", c->mgr->errmsg);
      return false;
    }
    if (m == NULL) {
      cymg__conn_fail_later(c, "TLS: out of memory");
      return false;
    }
    t->ctx = m->client_default;
    t->ctx->refs++;
  }
  if (t->ctx == NULL || (!client && !t->ctx->has_cert)) {
    cymg__conn_fail_later(c, "TLS: %s", t->err ? t->err : "no certificate");
    return false;
  }
  t->ssl = SSL_new(t->ctx->ctx);
  if (t->ssl == NULL) {
    fail(c, t, "", 0, SSL_ERROR_SSL);
    return false;
  }
  atomic_fetch_add(&n_ssl, 1);
  SSL_set_app_data(t->ssl, c);
  if (SSL_set_fd(t->ssl, c->fd) != 1) {
    fail(c, t, "", 0, SSL_ERROR_SSL);
    return false;
  }
  if (!client) {
    SSL_set_accept_state(t->ssl);
    return true;
  }
  SSL_set_connect_state(t->ssl);
  const char *name = t->ctx->name ? t->ctx->name : t->host;
  char ipname[64];
  if ((name == NULL || name[0] == '\0') && cymg_addr_str(&c->rem, false, ipname, sizeof(ipname)) > 0) {
    /* A tcp:// connection turned TLS without a name: the address connected
     * to is what the certificate must name, never nothing. */
    name = ipname;
  }
  if (name && name[0]) {
    unsigned char ip[16];
    bool literal = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    int ok = 1;
    if (!literal) ok = SSL_set_tlsext_host_name(t->ssl, name);
    if (ok == 1 && !t->ctx->skip) {
      ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name)
                   : SSL_set1_host(t->ssl, name);
    }
    if (ok != 1) {
      fail(c, t, "", 0, SSL_ERROR_SSL);
      return false;
    }
    char key[sizeof(((cymg__tls_mgr *) 0)->cache[0].key)];
    snprintf(key, sizeof(key), "%s:%u/%016llx", name, (unsigned) t->port,
             (unsigned long long) t->ctx->fp);
    if ((t->sess_key = strdup(key)) == NULL) {
      cymg__conn_fail_later(c, "TLS: out of memory");
      return false;
    }
    SSL_SESSION *s = cached_session(c->mgr, t->sess_key);
    if (s && SSL_set_session(t->ssl, s) != 1) ERR_clear_error(); /* a full handshake then */
  }
  const unsigned char *alpn = t->ctx->alpn;
  size_t alpn_len = t->ctx->alpn_len;
  if (alpn == NULL && is_http(c)) {
    alpn = alpn_http;
    alpn_len = sizeof(alpn_http) - 1;
  }
  if (alpn && SSL_set_alpn_protos(t->ssl, alpn, (unsigned) alpn_len) != 0) {
    fail(c, t, "", 0, SSL_ERROR_SSL);
    return false;
  }
  return true;
}

static void note_peer(cymg__tls *t) {
  X509 *peer = SSL_get1_peer_certificate(t->ssl);
  if (peer == NULL) return;
  BIO *b = BIO_new(BIO_s_mem());
  if (b && X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
    char *p;
    long n = BIO_get_mem_data(b, &p);
    if (n >= 0 && (t->subject = malloc((size_t) n + 1)) != NULL) {
      memcpy(t->subject, p, (size_t) n);
      t->subject[n] = '\0';
    }
  }
  BIO_free(b);
  X509_free(peer);
}

/* A server turned TLS (STARTTLS) whose receive buffer still holds bytes once
 * the handler that called cymg_tls_init returned: they came in the clear
 * after the command. They are refused rather than fed to OpenSSL: a peer must
 * wait for the answer to STARTTLS, and plain text injected there must never
 * count as protected (RFC 3207 section 4.2). True when it failed c. */
static bool early_bytes(cymg_conn *c, cymg__tls *t) {
  if (t->hs_done || t->ssl || (c->flags & CYMG__F_CLIENT) || c->recv.len == 0) return false;
  t->fatal = true;
  cymg__conn_fail_later(c, "TLS: %zu bytes arrived in the clear before the handshake "
                           "(a peer must wait for the answer to STARTTLS)", c->recv.len);
  return true;
}

/* One step of the handshake: true once it completed (and TLS_HS was delivered). */
static bool handshake(cymg_conn *c, cymg__tls *t) {
  if (early_bytes(c, t)) return false;
  if (t->ssl == NULL && !ssl_make(c, t)) {
    t->fatal = true; /* its reason is on the way */
    return false;
  }
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->hs_done = true;
    t->hs_want = 0;
    timer_stop(c, t);
    note_peer(t);
    CYMG__DEBUG("conn %llu: TLS %s %s%s", (unsigned long long) c->id, SSL_get_version(t->ssl),
                SSL_get_cipher_name(t->ssl), SSL_session_reused(t->ssl) ? " (resumed)" : "");
    cymg_call(c, CYMG_EV_TLS_HS, NULL);
    return true;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    t->hs_want = CYMG__IO_R;
  } else if (e == SSL_ERROR_WANT_WRITE) {
    t->hs_want = CYMG__IO_W;
  } else {
    fail(c, t, " handshake", r, e);
  }
  return false;
}

static unsigned tls_io(cymg_conn *c, unsigned events) {
  cymg__tls *t = c->tp_state;
  if (t->fatal) return 0;
  /* Once the handshake is done, queued output leaves and what came with its
   * last flight is read. */
  if (!t->hs_done) return handshake(c, t) && !(c->flags & CYMG__F_CLOSING) ? CYMG__IO_R | CYMG__IO_W : 0;
  if (t->read_wants_write && (events & CYMG__IO_W)) {
    t->read_wants_write = false;
    events |= CYMG__IO_R;
  }
  if (t->write_wants_read && (events & CYMG__IO_R)) {
    t->write_wants_read = false;
    events |= CYMG__IO_W;
  }
  return events;
}

static unsigned tls_want(const cymg_conn *c, unsigned want) {
  const cymg__tls *t = c->tp_state;
  if (t->fatal) return 0;
  if (!t->hs_done) {
    /* A server waits for the ClientHello; a client's handshake starts at
     * CONNECT. Output queued meanwhile waits for the handshake. */
    if (t->ssl == NULL) return (c->flags & CYMG__F_CLIENT) ? 0 : CYMG__IO_R;
    return t->hs_want ? t->hs_want : CYMG__IO_R;
  }
  if (t->read_wants_write) want |= CYMG__IO_W;
  if (t->write_wants_read) want = (want & ~(unsigned) CYMG__IO_W) | CYMG__IO_R;
  return want;
}

static bool tls_pending(const cymg_conn *c) {
  const cymg__tls *t = c->tp_state;
  /* Bytes left from before a STARTTLS: a read (tls_recv) refuses them, as no
   * readiness report would come for bytes already read. */
  if (!t->hs_done && !t->fatal && !t->ssl && !(c->flags & CYMG__F_CLIENT) && c->recv.len > 0)
    return true;
  /* SSL_has_pending is also true for an incomplete record (read-ahead takes
   * what the socket has): a read then only wants the socket, whose readiness
   * shows the rest, and deferring one would spin the dispatch pass. */
  return t->hs_done && !t->fatal && t->ssl &&
         (t->peer_closed || (!t->rx_starved && SSL_has_pending(t->ssl)));
}

/* Reads records until OpenSSL holds nothing more, wants more from the socket
 * or buf is full. What stays inside OpenSSL (buf full, or a whole record
 * read ahead) is reported by tls_pending, as readiness would not show it. */
static ptrdiff_t tls_recv(cymg_conn *c, void *buf, size_t len) {
  cymg__tls *t = c->tp_state;
  if (t->fatal) return CYMG_ETLS;
  if (!t->hs_done) return early_bytes(c, t) ? CYMG_ETLS : CYMG_EAGAIN;
  size_t total = 0;
  while (total < len) {
    size_t n = 0;
    err_fresh();
    int r = SSL_read_ex(t->ssl, (char *) buf + total, len - total, &n);
    if (r == 1) {
      total += n;
      t->rx_starved = false;
      /* Nothing left inside OpenSSL: the socket's (level-triggered)
       * readiness shows whatever else comes, so no read(2) is spent to
       * learn that it would block. */
      if (!SSL_has_pending(t->ssl)) break;
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
      t->rx_starved = true;
      break;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      t->read_wants_write = true;
      break;
    }
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: an orderly end */
      /* After the bytes, as a pending end: the peer may keep the socket open
       * waiting for ours, so no readiness report would bring it. */
      t->peer_closed = true;
      if (total) break;
      return 0;
    }
    fail(c, t, "", r, e);
    if (total) break; /* the bytes first; the failure at the next read */
    return CYMG_ETLS;
  }
  return total ? (ptrdiff_t) total : CYMG_EAGAIN;
}

static ptrdiff_t tls_send(cymg_conn *c, const void *buf, size_t len) {
  cymg__tls *t = c->tp_state;
  if (t->fatal) return CYMG_ETLS;
  if (!t->hs_done) return CYMG_EAGAIN;
  size_t n = 0;
  err_fresh();
  int r = SSL_write_ex(t->ssl, buf, len, &n);
  if (r == 1) return (ptrdiff_t) n;
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_WRITE) return CYMG_EAGAIN;
  if (e == SSL_ERROR_WANT_READ) {
    t->write_wants_read = true;
    return CYMG_EAGAIN;
  }
  fail(c, t, "", r, e);
  return CYMG_ETLS;
}

/* close_notify when the session is sound (a non-blocking, one-shot attempt:
 * the descriptor closes right after), then the SSL and the socket. */
static void tls_close(cymg_conn *c) {
  cymg__tls *t = c->tp_state;
  if (t->ssl && t->hs_done && !t->fatal) {
    ERR_clear_error();
    if (SSL_shutdown(t->ssl) < 0) {
      CYMG__DEBUG("conn %llu: TLS close_notify not sent", (unsigned long long) c->id);
      ERR_clear_error();
    }
  }
  ssl_drop(t);
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

static void tls_free_state(cymg_conn *c) {
  state_free(c, c->tp_state);
  c->tp_state = NULL;
}

/* A client's handshake starts once the socket is connected. */
static void tls_connected(cymg_conn *c) {
  cymg__tls *t = c->tp_state;
  if (t->ssl || t->fatal) return;
  timer_start(c, t);
  if (handshake(c, t) && !(c->flags & CYMG__F_CLOSING)) cymg__conn_io(c, CYMG__IO_R | CYMG__IO_W);
  cymg__conn_update_io(c);
}

/* With kernel TLS on the socket (OpenSSL turns it on after the handshake when
 * the kernel has the "tls" module and the cipher suits it), file bytes go
 * from the page cache into the kernel's records: no read into user space, no
 * encryption here. Else CYMG_ENOTSUP, and the file goes through SSL_write. */
static ptrdiff_t tls_sendfile(cymg_conn *c, int fd, uint64_t off, size_t len) {
  cymg__tls *t = c->tp_state;
  if (t->fatal || !t->hs_done || !BIO_get_ktls_send(SSL_get_wbio(t->ssl))) return CYMG_ENOTSUP;
  ERR_clear_error();
  ossl_ssize_t n = SSL_sendfile(t->ssl, fd, (off_t) off, len, 0);
  if (n >= 0) return (ptrdiff_t) n;
  int e = SSL_get_error(t->ssl, (int) n);
  if (e == SSL_ERROR_WANT_WRITE) return CYMG_EAGAIN;
  fail(c, t, " sendfile", (int) n, e);
  return CYMG_ETLS;
}

static const cymg__transport tls_transport = {
    "tls",   tls_recv, tls_send,    tls_close,     tls_free_state,
    tls_io,  tls_want, tls_pending, tls_connected, tls_sendfile};

/* Puts the TLS transport under c, with fresh state. */
static cymg__tls *attach(cymg_conn *c) {
  if (c->tp == &tls_transport) return c->tp_state;
  cymg__tls *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  c->tp = &tls_transport;
  c->tp_state = t;
  c->flags |= CYMG__F_TLS;
  return t;
}

int cymg__tls_mark(cymg_conn *c, const char *host, uint16_t port) {
  cymg__tls *t = attach(c);
  if (t == NULL) return CYMG_ENOMEM;
  t->scheme = true;
  t->port = port;
  if (host && host[0] && t->host == NULL && (t->host = strdup(host)) == NULL) return CYMG_ENOMEM;
  return 0;
}

void cymg__tls_adopt(cymg_conn *c, cymg_conn *lsn) {
  cymg__tls *l = tls_of(lsn), *t = attach(c);
  if (t == NULL) {
    /* TLS was asked for: never plain text instead. */
    c->flags |= CYMG__F_TLS;
    cymg__conn_fail_later(c, "TLS: out of memory");
    return;
  }
  t->scheme = true;
  if (l && l->ctx) {
    t->ctx = l->ctx;
    t->ctx->refs++;
  }
  if (l && l->err && (t->err = strdup(l->err)) == NULL) cymg__conn_fail_later(c, "TLS: out of memory");
}

void cymg__tls_accepted(cymg_conn *c) {
  cymg__tls *t = tls_of(c);
  if (t == NULL || t->ssl) return; /* NULL: attach failed, its failure is on the way */
  if (t->ctx == NULL || !t->ctx->has_cert) {
    cymg__conn_fail_later(c, "TLS: %s", t->err ? t->err : "no certificate");
    t->fatal = true;
    cymg__conn_update_io(c);
    return;
  }
  timer_start(c, t);
}

/* ---- public ---- */

int cymg_tls_init(cymg_conn *c, const cymg_tls_opts *opts) {
  if (c == NULL) return CYMG_EINVAL;
  if (c->flags & CYMG__F_UDP) {
    cymg__mgr_errmsg(c->mgr, "TLS needs a TCP connection, not UDP");
    return CYMG_EINVAL;
  }
  if (c->flags & CYMG__F_CLOSING) return CYMG_ECLOSED;
  cymg__tls *t = tls_of(c);
  if (t && t->ssl) {
    cymg__mgr_errmsg(c->mgr, "TLS: the handshake has started; options cannot change");
    return CYMG_ESTATE;
  }
  cymg_tls_opts none = {0};
  const cymg_tls_opts *o = opts ? opts : &none;
  bool listener = (c->flags & CYMG__F_LISTENING) != 0;
  bool server = !(c->flags & CYMG__F_CLIENT);
  tls_ctx *ctx = NULL;
  cymg_mgr *mgr = c->mgr;
  mgr->errmsg[0] = '\0';
  int rc = make_ctx(mgr, o, server, &ctx);
  if (rc == CYMG_ENOMEM && mgr->errmsg[0] == '\0') cymg__mgr_errmsg(mgr, "TLS: out of memory");
  if (t == NULL && (t = attach(c)) == NULL) {
    tctx_unref(ctx);
    cymg__mgr_errmsg(mgr, "TLS: out of memory");
    return CYMG_ENOMEM;
  }
  tctx_unref(t->ctx);
  t->ctx = NULL;
  free(t->err);
  t->err = NULL;
  t->fatal = false;
  if (rc < 0) {
    tctx_unref(ctx);
    char msg[300];
    snprintf(msg, sizeof(msg), "%s", mgr->errmsg);
    if (listener) {
      CYMG__ERR("listener %llu: TLS: %s", (unsigned long long) c->id, msg);
      t->err = strdup(msg);
    } else {
      t->fatal = true;
      cymg__conn_fail_later(c, "TLS: %s", msg);
    }
    cymg__conn_update_io(c);
    return rc == CYMG_ENOMEM || rc == CYMG_EINVAL ? rc : CYMG_ETLS;
  }
  t->ctx = ctx;
  if (!listener && !t->hs_done) {
    /* An established connection (a plain one, turned TLS) starts now: a
     * client with its ClientHello, a server waiting for one. */
    bool established = (c->flags & CYMG__F_CLIENT) ? (c->flags & CYMG__F_CONNECTED) != 0
                                                   : c->fd >= 0;
    if (established) timer_start(c, t);
    /* Done in one step cannot be: the server has to answer first. */
    if (established && (c->flags & CYMG__F_CLIENT) && handshake(c, t))
      CYMG__DEBUG("conn %llu: TLS handshake done at once", (unsigned long long) c->id);
  }
  cymg__conn_update_io(c);
  return 0;
}

void cymg_tls_free(cymg_conn *c) {
  cymg__tls *t = tls_of(c);
  if (t == NULL) return;
  if (t->ssl) {
    /* TLS cannot be taken back mid-stream. */
    cymg_close(c);
    return;
  }
  if (t->scheme) {
    /* A TLS scheme stays TLS: only the options go. */
    tctx_unref(t->ctx);
    t->ctx = NULL;
    free(t->err);
    t->err = NULL;
    t->fatal = false;
    return;
  }
  state_free(c, t);
  c->tp = &cymg__transport_plain;
  c->tp_state = NULL;
  c->flags &= ~CYMG__F_TLS;
  cymg__conn_update_io(c);
}

static cymg_str view(const char *s) { return s ? cymg_str_c(s) : cymg_str_n("", 0); }

cymg_str cymg_tls_version(const cymg_conn *c) {
  const cymg__tls *t = tls_of(c);
  return view(t && t->hs_done && t->ssl ? SSL_get_version(t->ssl) : NULL);
}

cymg_str cymg_tls_cipher(const cymg_conn *c) {
  const cymg__tls *t = tls_of(c);
  return view(t && t->hs_done && t->ssl ? SSL_get_cipher_name(t->ssl) : NULL);
}

cymg_str cymg_tls_alpn(const cymg_conn *c) {
  const cymg__tls *t = tls_of(c);
  if (t == NULL || !t->hs_done || t->ssl == NULL) return view(NULL);
  const unsigned char *p = NULL;
  unsigned n = 0;
  SSL_get0_alpn_selected(t->ssl, &p, &n);
  return p ? cymg_str_n((const char *) p, n) : view(NULL);
}

bool cymg_tls_resumed(const cymg_conn *c) {
  const cymg__tls *t = tls_of(c);
  return t && t->hs_done && t->ssl && SSL_session_reused(t->ssl);
}

cymg_str cymg_tls_peer_subject(const cymg_conn *c) {
  const cymg__tls *t = tls_of(c);
  return view(t && t->hs_done ? t->subject : NULL);
}

#endif /* CYMG_TLS */
