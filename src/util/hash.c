/* Digests and HMAC through OpenSSL's EVP interfaces, CRC-32 through zlib, hex. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>
#include <zlib.h>

#include "cymg/error.h"
#include "cymg/hash.h"

/* EVP_MAC is the non-deprecated HMAC interface; it arrived in OpenSSL 3.0. */
#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "libcymg needs OpenSSL 3.0 or later"
#endif

struct cymg_hash {
  EVP_MD_CTX *md;   /* plain digest, or NULL */
  EVP_MAC_CTX *mac; /* HMAC, or NULL */
  int len;          /* digest length */
  bool done;        /* final() was called: EVP contexts must be re-initialised */
};

/* The EVP "get" functions return static objects: nothing to free. */
static const EVP_MD *algo_md(int algo) {
  switch (algo) {
    case CYMG_HASH_MD5: return EVP_md5();
    case CYMG_HASH_SHA1: return EVP_sha1();
    case CYMG_HASH_SHA256: return EVP_sha256();
    default: return NULL;
  }
}

static const char *algo_name(int algo) {
  switch (algo) {
    case CYMG_HASH_MD5: return "MD5";
    case CYMG_HASH_SHA1: return "SHA1";
    case CYMG_HASH_SHA256: return "SHA256";
    default: return NULL;
  }
}

int cymg_hash_len(int algo) {
  switch (algo) {
    case CYMG_HASH_MD5: return CYMG_MD5_LEN;
    case CYMG_HASH_SHA1: return CYMG_SHA1_LEN;
    case CYMG_HASH_SHA256: return CYMG_SHA256_LEN;
    default: return CYMG_EINVAL;
  }
}

int cymg_hash_new(cymg_hash **out, int algo) {
  const EVP_MD *md = algo_md(algo);
  if (out == NULL || md == NULL) return CYMG_EINVAL;
  cymg_hash *h = calloc(1, sizeof(*h));
  if (h == NULL) return CYMG_ENOMEM;
  h->len = cymg_hash_len(algo);
  if ((h->md = EVP_MD_CTX_new()) == NULL) {
    free(h);
    return CYMG_ENOMEM;
  }
  /* Init fails when a provider lacks the algorithm (MD5 under FIPS). */
  if (EVP_DigestInit_ex(h->md, md, NULL) != 1) {
    cymg_hash_free(h);
    return CYMG_ENOTSUP;
  }
  *out = h;
  return 0;
}

int cymg_hmac_new(cymg_hash **out, int algo, cymg_str key) {
  const char *name = algo_name(algo);
  if (out == NULL || name == NULL) return CYMG_EINVAL;
  cymg_hash *h = calloc(1, sizeof(*h));
  if (h == NULL) return CYMG_ENOMEM;
  h->len = cymg_hash_len(algo);
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (mac == NULL) {
    free(h);
    return CYMG_ENOTSUP;
  }
  h->mac = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac); /* the context holds its own reference */
  if (h->mac == NULL) {
    free(h);
    return CYMG_ENOMEM;
  }
  OSSL_PARAM params[2];
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) name, 0);
  params[1] = OSSL_PARAM_construct_end();
  /* A NULL key means "keep the previous key" to EVP_MAC_init, and there is none,
   * so an empty key is passed as a non-NULL pointer with length 0. */
  static const unsigned char empty_key[1] = {0};
  const unsigned char *k = key.len > 0 ? (const unsigned char *) key.buf : empty_key;
  if (EVP_MAC_init(h->mac, k, key.len, params) != 1) {
    cymg_hash_free(h);
    return CYMG_ENOTSUP;
  }
  *out = h;
  return 0;
}

int cymg_hash_update(cymg_hash *h, cymg_str data) {
  if (h == NULL) return CYMG_EINVAL;
  if (h->done) return CYMG_ESTATE;
  if (data.len == 0) return 0;
  int ok = h->md ? EVP_DigestUpdate(h->md, data.buf, data.len)
                 : EVP_MAC_update(h->mac, (const unsigned char *) data.buf, data.len);
  return ok == 1 ? 0 : CYMG_ENOTSUP;
}

int cymg_hash_final(cymg_hash *h, uint8_t *out, size_t out_len) {
  if (h == NULL || out == NULL) return CYMG_EINVAL;
  if (h->done) return CYMG_ESTATE;
  /* Checked before finishing so a too-small buffer loses nothing. */
  if (out_len < (size_t) h->len) return CYMG_ENOSPC;
  int ok;
  if (h->md) {
    unsigned int n = 0;
    ok = EVP_DigestFinal_ex(h->md, out, &n);
  } else {
    size_t n = 0;
    ok = EVP_MAC_final(h->mac, out, &n, out_len);
  }
  h->done = true;
  return ok == 1 ? h->len : CYMG_ENOTSUP;
}

void cymg_hash_free(cymg_hash *h) {
  if (h == NULL) return;
  EVP_MD_CTX_free(h->md);
  EVP_MAC_CTX_free(h->mac);
  free(h);
}

/* The one-shot forms reuse the streaming path so there is one code path to test. */
static int oneshot(cymg_hash *h, int rc, cymg_str data, uint8_t *out, size_t out_len) {
  if (rc < 0) return rc;
  rc = cymg_hash_update(h, data);
  if (rc == 0) rc = cymg_hash_final(h, out, out_len);
  cymg_hash_free(h);
  return rc < 0 ? rc : 0;
}

int cymg_md5(cymg_str data, uint8_t out[CYMG_MD5_LEN]) {
  cymg_hash *h = NULL;
  int rc = cymg_hash_new(&h, CYMG_HASH_MD5);
  return oneshot(h, rc, data, out, CYMG_MD5_LEN);
}

int cymg_sha1(cymg_str data, uint8_t out[CYMG_SHA1_LEN]) {
  cymg_hash *h = NULL;
  int rc = cymg_hash_new(&h, CYMG_HASH_SHA1);
  return oneshot(h, rc, data, out, CYMG_SHA1_LEN);
}

int cymg_sha256(cymg_str data, uint8_t out[CYMG_SHA256_LEN]) {
  cymg_hash *h = NULL;
  int rc = cymg_hash_new(&h, CYMG_HASH_SHA256);
  return oneshot(h, rc, data, out, CYMG_SHA256_LEN);
}

int cymg_hmac_sha256(cymg_str key, cymg_str data, uint8_t out[CYMG_SHA256_LEN]) {
  cymg_hash *h = NULL;
  int rc = cymg_hmac_new(&h, CYMG_HASH_SHA256, key);
  return oneshot(h, rc, data, out, CYMG_SHA256_LEN);
}

uint32_t cymg_crc32(uint32_t initial, cymg_str data) {
  uLong crc = initial;
  const Bytef *p = (const Bytef *) data.buf;
  size_t left = data.len;
  /* zlib's crc32() takes a uInt length, which is narrower than size_t on LP64. */
  while (left > 0) {
    uInt n = left > (size_t) (1u << 30) ? (uInt) (1u << 30) : (uInt) left;
    crc = crc32(crc, p, n);
    p += n;
    left -= n;
  }
  return (uint32_t) crc;
}

int cymg_hex_encode(cymg_str in, cymg_buf *out) {
  static const char digits[] = "0123456789abcdef";
  if (in.len > (SIZE_MAX - 1) / 2) return CYMG_ENOMEM;
  int rc = cymg_buf_reserve(out, in.len * 2);
  if (rc < 0) return rc;
  char *d = out->buf + out->len;
  for (size_t i = 0; i < in.len; i++) {
    unsigned char c = (unsigned char) in.buf[i];
    *d++ = digits[c >> 4];
    *d++ = digits[c & 15];
  }
  out->len += in.len * 2;
  out->buf[out->len] = '\0';
  return 0;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int cymg_hex_decode(cymg_str in, cymg_buf *out) {
  if (in.len % 2 != 0) return CYMG_EPARSE;
  /* Validate everything first so a failure leaves out untouched. */
  for (size_t i = 0; i < in.len; i++)
    if (hexval((unsigned char) in.buf[i]) < 0) return CYMG_EPARSE;
  int rc = cymg_buf_reserve(out, in.len / 2);
  if (rc < 0) return rc;
  char *d = out->buf + out->len;
  for (size_t i = 0; i < in.len; i += 2)
    *d++ = (char) ((hexval((unsigned char) in.buf[i]) << 4) | hexval((unsigned char) in.buf[i + 1]));
  out->len += in.len / 2;
  out->buf[out->len] = '\0';
  return 0;
}
