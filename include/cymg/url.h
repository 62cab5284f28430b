/* URLs (the RFC 3986 subset network URLs use), percent-encoding, and form/query
 * variables (application/x-www-form-urlencoded).
 *
 * Nothing here keeps state; all functions are thread-safe. Parsed parts are views
 * into the caller's input and are valid as long as it is. */
#ifndef CYMG_URL_H
#define CYMG_URL_H

#include "buf.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The parts of  scheme://user:pass@host:port/path?query#fragment .
 * A part that is absent has buf == NULL; a part that is present but empty (as the
 * password in "u:@h" or the query in "/p?") has buf != NULL and len 0. Separators
 * are not included ("?", "#", "@", ":", "//"). Nothing is percent-decoded. */
typedef struct cymg_url {
  cymg_str scheme;   /* as written (compare with cymg_str_case_eq); absent if none */
  cymg_str user;     /* userinfo before the first ':' */
  cymg_str pass;     /* userinfo after the first ':' */
  cymg_str host;     /* reg-name, IPv4 text, or IPv6 text without the brackets */
  cymg_str port;     /* the digits as written */
  cymg_str path;     /* from the '/' on, up to '?' or '#'; absent when empty */
  cymg_str query;    /* after '?', up to '#' */
  cymg_str fragment; /* after '#' */
  uint16_t port_num; /* the port, or the scheme's default when absent or empty */
  bool is_ip6;       /* host was a bracketed IPv6 literal */
} cymg_url;

/* Parses url into *out (which is fully overwritten on success, untouched on error).
 * Returns 0 or CYMG_EBADURL.
 *
 * Accepted: an optional "scheme://" (scheme = ALPHA *(ALPHA / DIGIT / + - .));
 * without one the input is read as an authority, so "example.com:8080/x",
 * "[::1]:80" and ":8080" parse with an absent scheme and port_num 0 when no port
 * is given. "mailto:x"-style URLs without "//" are therefore host:port forms and
 * fail unless what follows the ':' is a port. The host may be empty
 * ("tcp://:1234" means any address to a listener); it may be a bracketed IPv6
 * address, validated with inet_pton, with an optional RFC 6874 zone written
 * "%25zone" (e.g. "[fe80::1%25eth0]"): host then is "fe80::1%25eth0" as written,
 * and cymg_url_split_zone() separates the two. IPvFuture ("[v1.x]") is refused.
 * Other hosts may hold unreserved, sub-delim and %XX characters only (no raw
 * UTF-8: use punycode). At most one '@'. The port is 0..65535 in decimal; an
 * empty port ("h:") means the default. Refused anywhere: bytes 0x00-0x20 and
 * 0x7f (controls and space), and malformed %XX escapes in userinfo and host. */
CYMG_API CYMG_NODISCARD int cymg_url_parse(cymg_str url, cymg_url *out);

/* Default port of a scheme (ASCII case-insensitive): http 80, https 443, ws 80,
 * wss 443, mqtt 1883, mqtts 8883, sntp 123; 0 for any other (udp, tcp, ...). */
CYMG_API uint16_t cymg_url_default_port(cymg_str scheme);

/* True for schemes that imply TLS: https, wss, mqtts, tls (ASCII case-insensitive). */
CYMG_API bool cymg_url_is_tls(cymg_str scheme);

/* Bits of cymg_url_scheme_flags(). */
enum {
  CYMG_URL_KNOWN = 1, /* a scheme of libcymg's table */
  CYMG_URL_UDP = 2,   /* carried over UDP (udp, sntp); otherwise TCP */
  CYMG_URL_TLS = 4    /* implies TLS (https, wss, mqtts, tls) */
};

/* What libcymg knows of a scheme (ASCII case-insensitive): CYMG_URL_KNOWN, with
 * CYMG_URL_UDP and CYMG_URL_TLS as they apply, for tcp, udp, http, https, ws,
 * wss, mqtt, mqtts, sntp and tls; 0 for any other scheme or an empty one. The
 * same table gives cymg_url_default_port(). Thread-safe. */
CYMG_API unsigned cymg_url_scheme_flags(cymg_str scheme);

/* The request-target part of url: everything from the first '/', '?' or '#' after
 * the authority, e.g. "/a?b#c" of "http://h:1/a?b#c". Returns "/" (static storage)
 * when there is none. The result begins with '?' or '#' for URLs such as
 * "http://h?x=1"; an HTTP client must then put a '/' in front. Does not validate:
 * works on anything cymg_url_parse accepts and does not crash on what it refuses. */
CYMG_API cymg_str cymg_url_uri(cymg_str url);

/* Splits an IPv6 host as stored by cymg_url_parse into the address and the zone
 * ("fe80::1%25eth0" -> "fe80::1", "eth0"). Returns 1 when there was a zone, 0 when
 * not (then *zone is {NULL, 0} and *addr is host). The zone may still hold %XX
 * escapes; decode it with cymg_url_decode() if needed. */
CYMG_API int cymg_url_split_zone(cymg_str host, cymg_str *addr, cymg_str *zone);

/* Appends in to out percent-encoded: A-Z a-z 0-9 - . _ ~ are kept, every other byte
 * becomes %XX with uppercase hex. Returns 0, or CYMG_ENOMEM with out unchanged. */
CYMG_API CYMG_NODISCARD int cymg_url_encode(cymg_str in, cymg_buf *out);

/* Appends in to out with %XX escapes decoded (hex in either case) and, when
 * plus_is_space, '+' turned into a space (for form data; never for paths). A '%'
 * not followed by two hex digits ("%", "%1", "%G1") makes it return CYMG_EPARSE;
 * out is then unchanged. Decoded bytes may include NUL. Returns 0 or CYMG_EPARSE /
 * CYMG_ENOMEM. */
CYMG_API CYMG_NODISCARD int cymg_url_decode(cymg_str in, cymg_buf *out, bool plus_is_space);

/* Like cymg_url_decode() into a fixed buffer: writes the decoded bytes and a NUL to
 * dst. Returns the decoded length; CYMG_ENOSPC when dst_len cannot hold it and the
 * NUL; CYMG_EPARSE for a bad escape; CYMG_ERANGE when the length exceeds INT_MAX;
 * CYMG_EINVAL for a NULL dst. On failure dst holds "" when dst_len > 0. */
CYMG_API CYMG_NODISCARD int cymg_url_decode_to(cymg_str in, char *dst, size_t dst_len,
                                               bool plus_is_space);

/* Form and query variables: finds name in buf, which looks like "a=1&b=x%20y"
 * (a query string without its '?', or a form body), decodes the value ('+' is a
 * space) into dst and NUL-terminates it. Pairs are separated by '&'. Each key is
 * percent-decoded before it is compared, exactly and case-sensitively, with name,
 * so "ab=1" never matches "a"; the first matching pair wins. "name=" and a bare
 * "name" give an empty value. Returns the decoded length; CYMG_ENOTFOUND when no
 * pair matches; CYMG_ENOSPC when dst_len is too small for the value and its NUL
 * (nothing is truncated silently); CYMG_EPARSE for a bad %-escape in the value;
 * CYMG_EINVAL for NULL name or dst. Whenever dst_len > 0, dst holds "" after a
 * failure. */
CYMG_API CYMG_NODISCARD int cymg_http_var(cymg_str buf, const char *name, char *dst,
                                          size_t dst_len);

/* Like cymg_http_var() but appends the decoded value to out (growing it). Returns
 * the decoded length, or CYMG_ENOTFOUND / CYMG_EPARSE / CYMG_ENOMEM / CYMG_ERANGE
 * (value longer than INT_MAX) / CYMG_EINVAL, with out unchanged on failure. */
CYMG_API CYMG_NODISCARD int cymg_http_var_buf(cymg_str buf, const char *name, cymg_buf *out);

#ifdef __cplusplus
}
#endif
#endif
