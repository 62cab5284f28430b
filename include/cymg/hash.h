/* Digests (MD5, SHA-1, SHA-256), HMAC, CRC-32 and hex coding.
 *
 * MD5 and SHA-1 are here for protocols that require them (WebSocket handshake,
 * HTTP digest, ETags); do not use them for new security designs. Digests and HMAC
 * are computed by OpenSSL, CRC-32 by zlib. All functions are thread-safe; a
 * cymg_hash handle must be used by one thread at a time. */
#ifndef CYMG_HASH_H
#define CYMG_HASH_H

#include "buf.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Algorithms for cymg_hash_new() / cymg_hmac_new(). */
enum { CYMG_HASH_MD5 = 1, CYMG_HASH_SHA1 = 2, CYMG_HASH_SHA256 = 3 };

/* Digest sizes in bytes. */
#define CYMG_MD5_LEN 16
#define CYMG_SHA1_LEN 20
#define CYMG_SHA256_LEN 32

/* One-shot digests of data into out. Return 0, or CYMG_ENOMEM / CYMG_ENOTSUP
 * (algorithm unavailable, e.g. MD5 under a FIPS-only OpenSSL configuration). */
CYMG_API CYMG_NODISCARD int cymg_md5(cymg_str data, uint8_t out[CYMG_MD5_LEN]);
CYMG_API CYMG_NODISCARD int cymg_sha1(cymg_str data, uint8_t out[CYMG_SHA1_LEN]);
CYMG_API CYMG_NODISCARD int cymg_sha256(cymg_str data, uint8_t out[CYMG_SHA256_LEN]);

/* One-shot HMAC-SHA-256 (RFC 2104) of data under key (any length, also empty).
 * Returns 0 or a negative error as above. */
CYMG_API CYMG_NODISCARD int cymg_hmac_sha256(cymg_str key, cymg_str data,
                                             uint8_t out[CYMG_SHA256_LEN]);

/* Digest length in bytes of a CYMG_HASH_* algorithm, or CYMG_EINVAL. */
CYMG_API int cymg_hash_len(int algo);

/* A streaming digest or HMAC computation. Opaque. */
typedef struct cymg_hash cymg_hash;

/* Starts a digest computation. Stores a new handle in *out (free it with
 * cymg_hash_free()) and returns 0; CYMG_EINVAL for an unknown algo; CYMG_ENOMEM;
 * CYMG_ENOTSUP when OpenSSL does not offer the algorithm. */
CYMG_API CYMG_NODISCARD int cymg_hash_new(cymg_hash **out, int algo);

/* Starts an HMAC computation with the given key (copied; any length). Then use
 * cymg_hash_update/final/free as for a digest. Returns as cymg_hash_new(). */
CYMG_API CYMG_NODISCARD int cymg_hmac_new(cymg_hash **out, int algo, cymg_str key);

/* Feeds bytes. Returns 0; CYMG_ESTATE after cymg_hash_final(); CYMG_ENOTSUP when
 * OpenSSL fails. */
CYMG_API CYMG_NODISCARD int cymg_hash_update(cymg_hash *h, cymg_str data);

/* Finishes the computation and writes the digest to out. Returns the digest length;
 * CYMG_ENOSPC when out_len is smaller (nothing is written and the computation can
 * still be finished with a larger buffer); CYMG_ESTATE when already finished. */
CYMG_API CYMG_NODISCARD int cymg_hash_final(cymg_hash *h, uint8_t *out, size_t out_len);

/* Frees the handle (NULL is ignored). Key material is wiped by OpenSSL. */
CYMG_API void cymg_hash_free(cymg_hash *h);

/* CRC-32 (ISO-HDLC, as in zlib, gzip and PNG) of data, continuing from initial:
 * pass 0 for a fresh CRC, or a previous result to chain, so that
 * crc32(crc32(0, a), b) == crc32(0, a + b). Inputs of any size. */
CYMG_API uint32_t cymg_crc32(uint32_t initial, cymg_str data);

/* Appends the lowercase hex form of in to out. Returns 0, or CYMG_ENOMEM with out
 * unchanged. */
CYMG_API CYMG_NODISCARD int cymg_hex_encode(cymg_str in, cymg_buf *out);

/* Appends the bytes spelled by hex text in (digits in either case, even length,
 * nothing else: no spaces, no prefix) to out. Returns 0; CYMG_EPARSE for malformed
 * input; CYMG_ENOMEM. On failure out is unchanged. */
CYMG_API CYMG_NODISCARD int cymg_hex_decode(cymg_str in, cymg_buf *out);

#ifdef __cplusplus
}
#endif
#endif
