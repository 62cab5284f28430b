/* The SNTP codec (src/sntp/codec.c): timestamps across the 2036 era rollover,
 * the request, every reply check, offset and delay. */
#include "cymg_test.h"

#define NS 1000000000LL
/* 2036-02-07T06:28:16Z: NTP seconds wrap to 0 here. */
#define ERA1_UNIX 2085978496LL

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* A well-formed reply to `origin`: version 4, mode 4, stratum 2. */
static void make_reply(uint8_t *p, uint64_t origin) {
  memset(p, 0, CYMG_SNTP_PACKET_LEN);
  p[0] = (0 << 6) | (4 << 3) | 4;
  p[1] = 2;
  memcpy(p + 12, "GPS\0", 4);
  put64(p + 24, origin);
  put64(p + 32, origin + (1ull << 32));
  put64(p + 40, origin + (1ull << 32) + 1);
}

static void test_era_boundary(void **state) {
  (void)state;
  /* The last second of era 0 and the first of era 1. */
  assert_int_equal(cymg_sntp_ts_to_unix_ns(0xffffffffull << 32), (ERA1_UNIX - 1) * NS);
  assert_int_equal(cymg_sntp_ts_to_unix_ns(0), ERA1_UNIX * NS);
  assert_int_equal(cymg_sntp_ts_from_unix_ns(ERA1_UNIX * NS), 0);
  assert_int_equal(cymg_sntp_ts_from_unix_ns((ERA1_UNIX - 1) * NS), 0xffffffffull << 32);
  /* The Unix epoch is NTP second 2208988800 of era 0. */
  assert_int_equal(cymg_sntp_ts_from_unix_ns(0), (uint64_t)CYMG_SNTP_UNIX_OFFSET << 32);
  assert_int_equal(cymg_sntp_ts_to_unix_ns((uint64_t)CYMG_SNTP_UNIX_OFFSET << 32), 0);
}

static void test_era_round_trip(void **state) {
  (void)state;
  /* 2001, 2026, a second before and after the rollover, 2040, 2100. */
  const int64_t secs[] = {1000000000LL,  1795000000LL, ERA1_UNIX - 1, ERA1_UNIX,
                          ERA1_UNIX + 1, 2208988800LL, 4102444800LL};
  for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
    int64_t ns = secs[i] * NS + 123456789;
    uint64_t ts = cymg_sntp_ts_from_unix_ns(ns);
    bool era1 = secs[i] >= ERA1_UNIX;
    assert_int_equal((ts >> 63) == 0, era1); /* the MSB rule of RFC 4330 section 3 */
    int64_t back = cymg_sntp_ts_to_unix_ns(ts);
    assert_true(back <= ns && ns - back < 2); /* the fraction keeps < 1 ns error */
  }
  /* Half a second is fraction 2^31. */
  assert_int_equal(cymg_sntp_ts_from_unix_ns(NS / 2) & 0xffffffffu, 0x80000000u);
}

static void test_build_request(void **state) {
  (void)state;
  uint8_t p[CYMG_SNTP_PACKET_LEN];
  int64_t now = 1795000000LL * NS + 250000000;
  uint64_t ts = cymg_sntp_build_request(p, now, 0xabcd1234u);
  assert_int_equal(p[0], 0x23); /* LI 0, VN 4, mode 3 */
  for (int i = 1; i < 40; i++) assert_int_equal(p[i], 0);
  uint64_t wire = 0;
  for (int i = 40; i < 48; i++) wire = (wire << 8) | p[i];
  assert_int_equal(wire, ts);
  assert_int_equal(ts & 0xffff, 0x1234); /* random low bits */
  assert_int_equal(ts >> 16, cymg_sntp_ts_from_unix_ns(now) >> 16);
  uint64_t ts2 = cymg_sntp_build_request(p, now, 0x5678u);
  assert_true(ts2 != ts);
}

static void test_parse_good(void **state) {
  (void)state;
  uint8_t p[CYMG_SNTP_PACKET_LEN];
  uint64_t origin = cymg_sntp_ts_from_unix_ns(1795000000LL * NS);
  make_reply(p, origin);
  cymg_sntp_reply r;
  const char *why = NULL;
  assert_int_equal(cymg_sntp_parse_reply(p, sizeof(p), origin, &r, &why), 0);
  assert_string_equal(why, "");
  assert_int_equal(r.version, 4);
  assert_int_equal(r.mode, 4);
  assert_int_equal(r.stratum, 2);
  assert_int_equal(r.origin, origin);
  assert_int_equal(r.receive, origin + (1ull << 32));
  assert_int_equal(r.transmit, origin + (1ull << 32) + 1);
  p[0] = (3 << 3) | 5; /* version 3, broadcast mode: both accepted */
  assert_int_equal(cymg_sntp_parse_reply(p, sizeof(p), origin, NULL, NULL), 0);
  /* Longer than 48 (extension fields, a MAC) is fine. */
  uint8_t big[68] = {0};
  make_reply(big, origin);
  assert_int_equal(cymg_sntp_parse_reply(big, sizeof(big), origin, NULL, NULL), 0);
}

static int parse_with(void (*mutate)(uint8_t *), const char **why, cymg_sntp_reply *r) {
  uint8_t p[CYMG_SNTP_PACKET_LEN];
  uint64_t origin = 0xe000000012345678ull;
  make_reply(p, origin);
  mutate(p);
  return cymg_sntp_parse_reply(p, sizeof(p), origin, r, why);
}

static void m_mode3(uint8_t *p) {
  p[0] = (4 << 3) | 3;
}
static void m_version2(uint8_t *p) {
  p[0] = (2 << 3) | 4;
}
static void m_origin(uint8_t *p) {
  p[31] ^= 1;
}
static void m_kiss(uint8_t *p) {
  p[0] = (3 << 6) | (4 << 3) | 4;
  p[1] = 0;
  memcpy(p + 12, "DENY", 4);
}
static void m_kiss_forged(uint8_t *p) {
  m_kiss(p);
  m_origin(p);
}
static void m_kiss_binary(uint8_t *p) {
  p[1] = 0;
  memcpy(p + 12, "R\x01T\0", 4);
}
static void m_leap3(uint8_t *p) {
  p[0] = (3 << 6) | (4 << 3) | 4;
}
static void m_tx0(uint8_t *p) {
  memset(p + 40, 0, 8);
}

static void test_parse_refusals(void **state) {
  (void)state;
  const char *why;
  cymg_sntp_reply r;
  assert_int_equal(parse_with(m_mode3, &why, &r), CYMG_EPARSE);
  assert_non_null(strstr(why, "mode"));
  assert_int_equal(parse_with(m_version2, &why, &r), CYMG_EPARSE);
  assert_non_null(strstr(why, "version"));
  assert_int_equal(parse_with(m_origin, &why, &r), CYMG_EPARSE);
  assert_non_null(strstr(why, "origin"));
  assert_int_equal(parse_with(m_leap3, &why, &r), CYMG_EPARSE);
  assert_non_null(strstr(why, "leap"));
  assert_int_equal(parse_with(m_tx0, &why, &r), CYMG_EPARSE);
  assert_non_null(strstr(why, "transmit"));
  /* A kiss-of-death with the right origin stops the client... */
  assert_int_equal(parse_with(m_kiss, &why, &r), CYMG_EPROTO);
  assert_string_equal(r.kiss, "DENY");
  assert_int_equal(r.stratum, 0);
  /* ...one with the wrong origin may be forged: ignored. */
  assert_int_equal(parse_with(m_kiss_forged, &why, &r), CYMG_EPARSE);
  /* A code that is not text is reported without its control bytes. */
  assert_int_equal(parse_with(m_kiss_binary, &why, &r), CYMG_EPROTO);
  assert_string_equal(r.kiss, "R?T");
}

static void test_parse_short(void **state) {
  (void)state;
  /* The packet ends right before unmapped memory under ASan: any read past
   * len is caught. */
  uint64_t origin = 0xe000000012345678ull;
  for (size_t len = 0; len < CYMG_SNTP_PACKET_LEN; len++) {
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    uint8_t full[CYMG_SNTP_PACKET_LEN];
    make_reply(full, origin);
    memcpy(p, full, len);
    const char *why;
    assert_int_equal(cymg_sntp_parse_reply(p, len, origin, NULL, &why), CYMG_EPARSE);
    assert_string_equal(why, "too short");
    free(p);
  }
  assert_int_equal(cymg_sntp_parse_reply(NULL, 48, 1, NULL, NULL), CYMG_EPARSE);
}

static void test_compute(void **state) {
  (void)state;
  /* Server 10 s ahead, 20 ms each way, 1 ms in the server. */
  int64_t t1 = 1000 * NS, t2 = t1 + 10 * NS + 20000000, t3 = t2 + 1000000, t4 = t1 + 41000000;
  int64_t off, del;
  cymg_sntp_compute(t1, t2, t3, t4, &off, &del);
  assert_int_equal(off, 10 * NS);
  assert_int_equal(del, 40000000);
  /* Server behind, across the era rollover. */
  t1 = (ERA1_UNIX + 1) * NS;
  t2 = cymg_sntp_ts_to_unix_ns(cymg_sntp_ts_from_unix_ns(t1 - 5 * NS));
  cymg_sntp_compute(t1, t2, t2, t1, &off, NULL);
  assert_true(off <= -5 * NS + 1 && off >= -5 * NS - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_era_boundary),   cmocka_unit_test(test_era_round_trip),
      cmocka_unit_test(test_build_request),  cmocka_unit_test(test_parse_good),
      cmocka_unit_test(test_parse_refusals), cmocka_unit_test(test_parse_short),
      cmocka_unit_test(test_compute),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
