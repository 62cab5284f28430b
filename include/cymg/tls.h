/* TLS through OpenSSL: a transport under the connection, so every protocol
 * (HTTP, WebSocket, plain TCP, later MQTT) runs over it without knowing.
 *
 * Listeners of the TLS schemes (https://, wss://, tls://, mqtts://) take their
 * options once, with cymg_tls_init() on the listener (at once after
 * cymg_listen, or in the listener's own handler before the first ACCEPT);
 * accepted connections inherit them, so a TLS listener never sends plain text
 * because a handler forgot a call. A handler may still call cymg_tls_init() on
 * an accepted connection during CYMG_EV_ACCEPT to give it other options; one
 * that has no certificate by the end of ACCEPT fails with ERROR "no
 * certificate".
 *
 * Clients of the TLS schemes start TLS after CONNECT with SNI and host-name
 * verification set to the URL's host and peer verification on against the
 * system trust store, unless the handler called cymg_tls_init() (before or
 * during CYMG_EV_CONNECT) with other options. cymg_tls_init() on any other
 * connection (a plain tcp:// one, say) starts TLS on it from that point: as a
 * client when the connection is one, else as a server.
 *
 * The handshake runs in the loop; CYMG_EV_TLS_HS fires when it completes.
 * Data sent before that is kept and goes out after it. Any failure is
 * CYMG_EV_ERROR with OpenSSL's reason, then CYMG_EV_CLOSE.
 *
 * Calls belong to the manager's thread.
 */
#ifndef CYMG_TLS_H
#define CYMG_TLS_H

#include "common.h"
#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol versions for cymg_tls_opts.min_version. */
enum { CYMG_TLS_DEFAULT = 0, CYMG_TLS_1_2 = 0x0303, CYMG_TLS_1_3 = 0x0304 };

/* One certificate and its key. cert is a PEM chain (leaf first, then
 * intermediates); key is PEM in any of RSA or EC, PKCS#1, SEC1 or PKCS#8,
 * encrypted or not. Each field is either PEM text (it contains "-----BEGIN")
 * or the path of a file holding it. */
typedef struct cymg_tls_cert {
  cymg_str cert;
  cymg_str key;
  cymg_str key_password; /* for an encrypted key; empty: none */
} cymg_tls_cert;

/* Options of cymg_tls_init. Every string is copied; a zeroed struct is valid
 * (a verifying client against the system trust store, TLS 1.2 or later).
 * Strings are PEM text or a file path, as for cymg_tls_cert. */
typedef struct cymg_tls_opts {
  /* Trusted CA certificates (PEM, several allowed). A client verifies the
   * server against them, else against the system store (/etc/ssl/certs). A
   * server given a CA requests a client certificate and requires one that
   * verifies against it (mutual TLS). */
  cymg_str ca;
  /* This side's certificate and key: required on a server, optional on a
   * client (sent when a server asks). */
  cymg_str cert;
  cymg_str key;
  cymg_str key_password;
  /* More certificates for a server, chosen by the SNI name the client sends
   * (each matched against its certificate's DNS names, wildcards included);
   * cert/key above are the default when none matches. */
  const cymg_tls_cert *sni_certs;
  size_t sni_count;
  /* Client: the name sent as SNI and checked against the server's
   * certificate (a DNS name or an IP address). Empty: the URL's host. */
  cymg_str name;
  /* ALPN protocols, comma-separated ("h2,http/1.1"). Empty: "http/1.1" on
   * HTTP and WebSocket connections, none otherwise. */
  cymg_str alpn;
  /* Cipher list for TLS 1.2 (OpenSSL syntax). Empty: OpenSSL's defaults. */
  cymg_str ciphers;
  int min_version; /* CYMG_TLS_*; DEFAULT means TLS 1.2 */
  /* Client: skip both the chain and the host-name checks. */
  bool skip_verification;
} cymg_tls_opts;

/* Starts TLS on c with opts (NULL: defaults), or, on a listener, sets the
 * options its accepted connections inherit. Material is loaded and checked at
 * once: a truncated certificate, a key that does not match it, a file that
 * cannot be read give CYMG_ETLS with the reason in cymg_mgr_errmsg(), and c
 * (unless a listener) then fails with ERROR carrying that reason; a listener
 * logs it at ERROR and keeps listening, each connection it accepts failing its
 * handshake with that reason. Calling it again replaces the options (on a
 * connection: only before its handshake starts). Returns 0, CYMG_ETLS,
 * CYMG_ECLOSED (c closing), CYMG_EINVAL, or CYMG_ENOMEM. */
CYMG_API int cymg_tls_init(cymg_conn *c, const cymg_tls_opts *opts);

/* Drops c's TLS options and, before its handshake started, its TLS state, so
 * that cymg_tls_init() can be called again. On a connection whose handshake
 * has started, it closes the connection (TLS cannot be taken back mid-stream). */
CYMG_API void cymg_tls_free(cymg_conn *c);

/* The handshake timeout for new TLS connections of mgr, in ms (default 10000;
 * 0: none). */
CYMG_API void cymg_mgr_set_tls_handshake_timeout(cymg_mgr *mgr, uint32_t ms);

/* After the handshake: the negotiated protocol version ("TLSv1.3"), cipher,
 * ALPN protocol (empty if none), whether the session was resumed, and the
 * peer certificate's subject as a one-line RFC 2253 string (empty if the peer
 * sent none). Empty views / false before the handshake or on a plain
 * connection. The views stay valid until the connection closes. */
CYMG_API cymg_str cymg_tls_version(const cymg_conn *c);
CYMG_API cymg_str cymg_tls_cipher(const cymg_conn *c);
CYMG_API cymg_str cymg_tls_alpn(const cymg_conn *c);
CYMG_API bool cymg_tls_resumed(const cymg_conn *c);
CYMG_API cymg_str cymg_tls_peer_subject(const cymg_conn *c);

/* Counts of live OpenSSL SSL and SSL_CTX objects made by this library, over
 * all managers: tests check them for leaks. Thread-safe. */
CYMG_API void cymg_tls_counts(size_t *ssl, size_t *ctx);

#ifdef __cplusplus
}
#endif
#endif
