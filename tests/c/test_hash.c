/* Tests for src/util/hash.c against the published vectors: RFC 1321 appendix A.5
 * (MD5), FIPS 180 examples (SHA-1, SHA-256), RFC 4231 (HMAC-SHA-256) and the
 * CRC-32/ISO-HDLC check value. */
#include "cymg_test.h"

#include "cymg/hash.h"
#include "cymg/rand.h"

/* Hex of a digest, for readable comparisons. */
static void hex(const uint8_t *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void expect(const uint8_t *d, size_t n, const char *want) {
  char got[2 * 64 + 1];
  hex(d, n, got);
  assert_string_equal(got, want);
}

static void test_md5_rfc1321(void **state) {
  (void) state;
  static const struct {
    const char *in, *md5;
  } v[] = {
      {"", "d41d8cd98f00b204e9800998ecf8427e"},
      {"a", "0cc175b9c0f1b6a831c399e269772661"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72"},
      {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
      {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
      {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
       "d174ab98d277d9f5a5611c2c9f419d9f"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57edf4a22be3c955ac49da2e2107b67a"},
  };
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    uint8_t d[CYMG_MD5_LEN];
    assert_int_equal(cymg_md5(cymg_str_c(v[i].in), d), 0);
    expect(d, sizeof(d), v[i].md5);
  }
}

static const char *const k448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

static void test_sha1_fips180(void **state) {
  (void) state;
  uint8_t d[CYMG_SHA1_LEN];
  assert_int_equal(cymg_sha1(cymg_str_c("abc"), d), 0);
  expect(d, sizeof(d), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert_int_equal(cymg_sha1(cymg_str_c(k448), d), 0);
  expect(d, sizeof(d), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  char *m = malloc(1000000);
  assert_non_null(m);
  memset(m, 'a', 1000000);
  assert_int_equal(cymg_sha1(cymg_str_n(m, 1000000), d), 0);
  expect(d, sizeof(d), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  free(m);
}

static void test_sha256_fips180(void **state) {
  (void) state;
  uint8_t d[CYMG_SHA256_LEN];
  assert_int_equal(cymg_sha256(cymg_str_c("abc"), d), 0);
  expect(d, sizeof(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert_int_equal(cymg_sha256(cymg_str_c(k448), d), 0);
  expect(d, sizeof(d), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  /* One million 'a', fed in 1000 pieces through the streaming interface. */
  char piece[1000];
  memset(piece, 'a', sizeof(piece));
  cymg_hash *h = NULL;
  assert_int_equal(cymg_hash_new(&h, CYMG_HASH_SHA256), 0);
  for (int i = 0; i < 1000; i++) assert_int_equal(cymg_hash_update(h, cymg_str_n(piece, sizeof(piece))), 0);
  assert_int_equal(cymg_hash_final(h, d, sizeof(d)), CYMG_SHA256_LEN);
  cymg_hash_free(h);
  expect(d, sizeof(d), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_hmac_rfc4231(void **state) {
  (void) state;
  uint8_t k1[20], k3[20], k4[25], k5[20], k6[131], d3[50], d4[50];
  memset(k1, 0x0b, sizeof(k1));
  memset(k3, 0xaa, sizeof(k3));
  for (int i = 0; i < 25; i++) k4[i] = (uint8_t) (i + 1);
  memset(k5, 0x0c, sizeof(k5));
  memset(k6, 0xaa, sizeof(k6));
  memset(d3, 0xdd, sizeof(d3));
  memset(d4, 0xcd, sizeof(d4));
  static const char t6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
  static const char t7[] =
      "This is a test using a larger than block-size key and a larger than block-size data. "
      "The key needs to be hashed before being used by the HMAC algorithm.";
  const struct {
    cymg_str key, data;
    const char *mac;
    size_t cmp; /* bytes compared: case 5 is truncated to 128 bits */
  } v[] = {
      {cymg_str_n(k1, 20), cymg_str_c("Hi There"),
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32},
      {cymg_str_c("Jefe"), cymg_str_c("what do ya want for nothing?"),
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32},
      {cymg_str_n(k3, 20), cymg_str_n(d3, 50),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32},
      {cymg_str_n(k4, 25), cymg_str_n(d4, 50),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32},
      {cymg_str_n(k5, 20), cymg_str_c("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b", 16},
      {cymg_str_n(k6, 131), cymg_str_c(t6),
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32},
      {cymg_str_n(k6, 131), cymg_str_c(t7),
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32},
  };
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    uint8_t d[CYMG_SHA256_LEN];
    assert_int_equal(cymg_hmac_sha256(v[i].key, v[i].data, d), 0);
    expect(d, v[i].cmp, v[i].mac);
  }
}

/* An empty key must be a real empty key, not "reuse the previous key". */
static void test_hmac_empty_key(void **state) {
  (void) state;
  uint8_t d[CYMG_SHA256_LEN];
  assert_int_equal(cymg_hmac_sha256(cymg_str_n(NULL, 0), cymg_str_n(NULL, 0), d), 0);
  expect(d, sizeof(d), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* A random split of data, fed piecewise, gives the one-shot result. */
static void stream(cymg_hash *h, const uint8_t *data, size_t n) {
  size_t off = 0;
  while (off < n) {
    uint16_t r;
    assert_int_equal(cymg_random_bytes(&r, sizeof(r)), 0);
    size_t piece = r % 300;
    if (piece > n - off) piece = n - off;
    assert_int_equal(cymg_hash_update(h, cymg_str_n(data + off, piece)), 0);
    off += piece;
  }
}

static void test_streaming_equals_oneshot(void **state) {
  (void) state;
  enum { N = 5000 };
  uint8_t *data = malloc(N), one[32], many[32];
  assert_non_null(data);
  assert_int_equal(cymg_random_bytes(data, N), 0);
  const uint8_t key[] = "secret key";
  for (int round = 0; round < 20; round++) {
    size_t n = (size_t) round * 250;
    static const int algos[] = {CYMG_HASH_MD5, CYMG_HASH_SHA1, CYMG_HASH_SHA256};
    for (size_t a = 0; a < 3; a++) {
      int len = cymg_hash_len(algos[a]);
      cymg_hash *h;
      assert_int_equal(cymg_hash_new(&h, algos[a]), 0);
      stream(h, data, n);
      assert_int_equal(cymg_hash_final(h, many, sizeof(many)), len);
      cymg_hash_free(h);
      cymg_str in = cymg_str_n(data, n);
      if (algos[a] == CYMG_HASH_MD5) assert_int_equal(cymg_md5(in, one), 0);
      if (algos[a] == CYMG_HASH_SHA1) assert_int_equal(cymg_sha1(in, one), 0);
      if (algos[a] == CYMG_HASH_SHA256) assert_int_equal(cymg_sha256(in, one), 0);
      assert_memory_equal(one, many, (size_t) len);
    }
    cymg_hash *h;
    assert_int_equal(cymg_hmac_new(&h, CYMG_HASH_SHA256, cymg_str_n(key, sizeof(key) - 1)), 0);
    stream(h, data, n);
    assert_int_equal(cymg_hash_final(h, many, sizeof(many)), 32);
    cymg_hash_free(h);
    assert_int_equal(cymg_hmac_sha256(cymg_str_n(key, sizeof(key) - 1), cymg_str_n(data, n), one), 0);
    assert_memory_equal(one, many, 32);
  }
  free(data);
}

static void test_hash_api_errors(void **state) {
  (void) state;
  cymg_hash *h = NULL;
  uint8_t d[32];
  assert_int_equal(cymg_hash_new(&h, 0), CYMG_EINVAL);
  assert_int_equal(cymg_hash_new(&h, 99), CYMG_EINVAL);
  assert_int_equal(cymg_hmac_new(&h, 99, cymg_str_c("k")), CYMG_EINVAL);
  assert_null(h);
  assert_int_equal(cymg_hash_len(7), CYMG_EINVAL);
  cymg_hash_free(NULL);

  assert_int_equal(cymg_hash_new(&h, CYMG_HASH_SHA1), 0);
  assert_int_equal(cymg_hash_update(h, cymg_str_c("abc")), 0);
  /* Too small: nothing lost, a larger buffer still finishes. */
  assert_int_equal(cymg_hash_final(h, d, 19), CYMG_ENOSPC);
  assert_int_equal(cymg_hash_final(h, d, sizeof(d)), 20);
  expect(d, 20, "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert_int_equal(cymg_hash_final(h, d, sizeof(d)), CYMG_ESTATE);
  assert_int_equal(cymg_hash_update(h, cymg_str_c("x")), CYMG_ESTATE);
  cymg_hash_free(h);

  assert_int_equal(cymg_hmac_new(&h, CYMG_HASH_MD5, cymg_str_c("Jefe")), 0);
  assert_int_equal(cymg_hash_update(h, cymg_str_c("what do ya want for nothing?")), 0);
  assert_int_equal(cymg_hash_final(h, d, 15), CYMG_ENOSPC);
  assert_int_equal(cymg_hash_final(h, d, 16), 16);
  /* HMAC-MD5 test case 2 of RFC 2202. */
  expect(d, 16, "750c783e6ab0b503eaa86e310a5db738");
  cymg_hash_free(h);
}

static void test_crc32(void **state) {
  (void) state;
  assert_int_equal(cymg_crc32(0, cymg_str_c("123456789")), 0xCBF43926u);
  assert_int_equal(cymg_crc32(0, cymg_str_n(NULL, 0)), 0);
  assert_int_equal(cymg_crc32(0x12345678u, cymg_str_n(NULL, 0)), 0x12345678u);
  const char *s = "The quick brown fox jumps over the lazy dog";
  size_t n = strlen(s);
  uint32_t whole = cymg_crc32(0, cymg_str_n(s, n));
  assert_int_equal(whole, 0x414FA339u);
  for (size_t cut = 0; cut <= n; cut++) {
    uint32_t a = cymg_crc32(0, cymg_str_n(s, cut));
    assert_int_equal(cymg_crc32(a, cymg_str_n(s + cut, n - cut)), whole);
  }
}

static void test_hex(void **state) {
  (void) state;
  cymg_buf b = {0};
  assert_int_equal(cymg_hex_encode(cymg_str_n("\x00\xff\x10\xab", 4), &b), 0);
  assert_string_equal(b.buf, "00ff10ab");
  assert_int_equal(cymg_hex_encode(cymg_str_n(NULL, 0), &b), 0);
  assert_int_equal(b.len, 8);
  cymg_buf_free(&b);

  assert_int_equal(cymg_hex_decode(cymg_str_c("00FF10aB"), &b), 0);
  assert_int_equal(b.len, 4);
  assert_memory_equal(b.buf, "\x00\xff\x10\xab", 4);
  static const char *bad[] = {"0", "abc", "0g", "g0", " 00", "00 ", "0x00", "-1", "\xff\xff"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t n = strlen(bad[i]);
    char *p = malloc(n); /* exactly sized: ASan sees any over-read */
    assert_non_null(p);
    memcpy(p, bad[i], n);
    assert_int_equal(cymg_hex_decode(cymg_str_n(p, n), &b), CYMG_EPARSE);
    assert_int_equal(b.len, 4);
    free(p);
  }
  cymg_buf_free(&b);
  assert_int_equal(cymg_hex_decode(cymg_str_n(NULL, 0), &b), 0);
  assert_int_equal(b.len, 0);
  cymg_buf_free(&b);

  /* Round trip over every byte value. */
  uint8_t all[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t) i;
  cymg_buf e = {0}, d = {0};
  assert_int_equal(cymg_hex_encode(cymg_str_n(all, 256), &e), 0);
  assert_int_equal(cymg_hex_decode(cymg_str_n(e.buf, e.len), &d), 0);
  assert_int_equal(d.len, 256);
  assert_memory_equal(d.buf, all, 256);
  cymg_buf_free(&e);
  cymg_buf_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_md5_rfc1321),     cmocka_unit_test(test_sha1_fips180),
      cmocka_unit_test(test_sha256_fips180),  cmocka_unit_test(test_hmac_rfc4231),
      cmocka_unit_test(test_hmac_empty_key),  cmocka_unit_test(test_streaming_equals_oneshot),
      cmocka_unit_test(test_hash_api_errors), cmocka_unit_test(test_crc32),
      cmocka_unit_test(test_hex),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
