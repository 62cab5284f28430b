/* DNS codec (RFC 1035) and resolv.conf / hosts parsing: pure functions. Every
 * parse runs on a copy placed at the very end of its allocation, so a read past
 * the message is caught under ASan. */
#include "cymg_test.h"
#include "dns/dns_internal.h"

typedef struct {
  uint8_t b[1024];
  size_t n;
} msgb;

static void put(msgb *m, const void *p, size_t n) {
  assert_true(m->n + n <= sizeof(m->b));
  memcpy(m->b + m->n, p, n);
  m->n += n;
}
static void put16(msgb *m, unsigned v) { put(m, (uint8_t[]){(uint8_t) (v >> 8), (uint8_t) v}, 2); }
static void put32(msgb *m, uint32_t v) {
  put16(m, v >> 16);
  put16(m, v & 0xFFFF);
}
static void put_name(msgb *m, const char *dotted) {
  const char *p = dotted;
  while (*p) {
    size_t l = strcspn(p, ".");
    uint8_t lb = (uint8_t) l;
    put(m, &lb, 1);
    put(m, p, l);
    p += l;
    if (*p == '.') p++;
  }
  put(m, "", 1);
}
static void put_ptr(msgb *m, unsigned ofs) { put16(m, 0xC000 | ofs); }

static void header(msgb *m, uint16_t id, unsigned flags, unsigned qd, unsigned an, unsigned ns) {
  m->n = 0;
  put16(m, id);
  put16(m, flags);
  put16(m, qd);
  put16(m, an);
  put16(m, ns);
  put16(m, 0);
}

/* Parses m from the end of an exact-size heap copy. */
static int parse_tail(const uint8_t *p, size_t n, cymg_dns_answer *a) {
  uint8_t *copy = malloc(n ? n : 1);
  assert_non_null(copy);
  memcpy(copy, p, n);
  int rc = cymg_dns_parse_answer(copy, n, a);
  free(copy);
  return rc;
}

static void test_build_query(void **state) {
  (void) state;
  uint8_t q[300];
  int n = cymg_dns_build_query(q, sizeof(q), 0xBEEF, "www.Example.com.", CYMG_DNS_AAAA);
  static const uint8_t want[] = {0xBE, 0xEF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w',
                                 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
                                 0, 28, 0, 1};
  assert_int_equal(n, sizeof(want));
  assert_memory_equal(q, want, sizeof(want));
  assert_int_equal(cymg_dns_build_query(q, 20, 1, "www.example.com", 1), CYMG_ENOSPC);
  assert_int_equal(cymg_dns_build_query(q, sizeof(q), 1, "a..b", 1), CYMG_EINVAL);
  assert_int_equal(cymg_dns_build_query(q, sizeof(q), 1, "", 1), CYMG_EINVAL);
  char big[80];
  memset(big, 'x', 64);
  big[64] = '\0'; /* a 64-octet label */
  assert_int_equal(cymg_dns_build_query(q, sizeof(q), 1, big, 1), CYMG_EINVAL);
}

/* www.example.com CNAME web.example.com CNAME edge.cdn.net; A x2 on the end,
 * owner names compressed; records deliberately out of order. */
static void chain_answer(msgb *m, uint16_t id) {
  header(m, id, 0x8180, 1, 4, 0);
  put_name(m, "www.example.com"); /* at 12 */
  put16(m, CYMG_DNS_A);
  put16(m, 1);
  /* edge.cdn.net A 192.0.2.1 (owner written out, at 33) */
  size_t edge = m->n;
  put_name(m, "edge.cdn.net");
  put16(m, CYMG_DNS_A), put16(m, 1), put32(m, 300), put16(m, 4);
  put(m, (uint8_t[]){192, 0, 2, 1}, 4);
  /* www CNAME web.example.com (web + pointer to example.com at 16) */
  put_ptr(m, 12);
  put16(m, CYMG_DNS_CNAME), put16(m, 1), put32(m, 60), put16(m, 6);
  size_t web = m->n;
  put(m, (uint8_t[]){3, 'w', 'e', 'b'}, 4);
  put_ptr(m, 16);
  /* web.example.com CNAME edge.cdn.net */
  put_ptr(m, (unsigned) web);
  put16(m, CYMG_DNS_CNAME), put16(m, 1), put32(m, 120), put16(m, 2);
  put_ptr(m, (unsigned) edge);
  /* edge.cdn.net A 192.0.2.2 */
  put_ptr(m, (unsigned) edge);
  put16(m, CYMG_DNS_A), put16(m, 1), put32(m, 30), put16(m, 4);
  put(m, (uint8_t[]){192, 0, 2, 2}, 4);
}

static void test_parse_cname_chain(void **state) {
  (void) state;
  msgb m;
  chain_answer(&m, 0x1234);
  cymg_dns_answer a;
  assert_int_equal(parse_tail(m.b, m.n, &a), (int) m.n);
  assert_int_equal(a.id, 0x1234);
  assert_int_equal(a.rcode, CYMG_DNS_NOERROR);
  assert_false(a.tc);
  assert_string_equal(a.qname, "www.example.com");
  assert_int_equal(a.ncnames, 2);
  assert_string_equal(a.cnames[0], "web.example.com");
  assert_string_equal(a.cnames[1], "edge.cdn.net");
  assert_int_equal(a.cname_ttls[1], 120);
  assert_string_equal(a.canon, "edge.cdn.net");
  assert_int_equal(a.naddrs, 2);
  assert_int_equal(a.addrs[0].ip[3], 1);
  assert_int_equal(a.addrs[1].ip[3], 2);
  assert_int_equal(a.ttls[1], 30);
  /* Every truncation is an error, never an over-read. */
  for (size_t n = 0; n < m.n; n++) assert_true(parse_tail(m.b, n, &a) < 0);
}

static void test_parse_aaaa_and_unowned(void **state) {
  (void) state;
  msgb m;
  header(&m, 7, 0x8180, 1, 2, 0);
  put_name(&m, "v6.test");
  put16(&m, CYMG_DNS_AAAA), put16(&m, 1);
  put_ptr(&m, 12);
  put16(&m, CYMG_DNS_AAAA), put16(&m, 1), put32(&m, 0x80000000u), put16(&m, 16);
  put(&m, (uint8_t[]){0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}, 16);
  /* An address for a name we did not ask about: ignored (cache poisoning). */
  put_name(&m, "evil.test");
  put16(&m, CYMG_DNS_AAAA), put16(&m, 1), put32(&m, 5), put16(&m, 16);
  put(&m, (uint8_t[16]){0xfe, 0x80}, 16);
  cymg_dns_answer a;
  assert_int_equal(parse_tail(m.b, m.n, &a), (int) m.n);
  assert_int_equal(a.naddrs, 1);
  assert_true(a.addrs[0].is_ip6);
  assert_int_equal(a.addrs[0].ip[15], 9);
  assert_int_equal(a.ttls[0], 0); /* RFC 2181: top bit set means zero */
}

static void test_parse_nxdomain_soa(void **state) {
  (void) state;
  msgb m;
  header(&m, 9, 0x8183, 1, 0, 1);
  put_name(&m, "nope.test");
  put16(&m, CYMG_DNS_A), put16(&m, 1);
  put_ptr(&m, 17); /* "test" */
  put16(&m, CYMG_DNS_SOA), put16(&m, 1), put32(&m, 600);
  size_t rdl = m.n;
  put16(&m, 0);
  size_t start = m.n;
  put_name(&m, "ns.test");
  put_name(&m, "admin.test");
  put32(&m, 1), put32(&m, 2), put32(&m, 3), put32(&m, 4), put32(&m, 45);
  m.b[rdl] = (uint8_t) ((m.n - start) >> 8);
  m.b[rdl + 1] = (uint8_t) (m.n - start);
  cymg_dns_answer a;
  assert_int_equal(parse_tail(m.b, m.n, &a), (int) m.n);
  assert_int_equal(a.rcode, CYMG_DNS_NXDOMAIN);
  assert_true(a.has_soa);
  assert_int_equal(a.neg_ttl, 45); /* min(TTL 600, MINIMUM 45) */
  assert_int_equal(a.naddrs, 0);
}

static void test_compression_loops(void **state) {
  (void) state;
  char name[CYMG_DNS_NAME_MAX];
  /* A pointer to itself, a forward pointer, two pointers to each other. */
  uint8_t self[] = {0xC0, 0x00};
  assert_int_equal(cymg_dns_decode_name(self, sizeof(self), 0, name, sizeof(name)), CYMG_EPARSE);
  uint8_t fwd[] = {0xC0, 0x02, 1, 'a', 0};
  assert_int_equal(cymg_dns_decode_name(fwd, sizeof(fwd), 0, name, sizeof(name)), CYMG_EPARSE);
  uint8_t pair[] = {1, 'a', 0xC0, 0x04, 1, 'b', 0xC0, 0x00};
  assert_int_equal(cymg_dns_decode_name(pair, sizeof(pair), 4, name, sizeof(name)), CYMG_EPARSE);
  uint8_t ok[] = {1, 'a', 0, 1, 'b', 0xC0, 0x00};
  assert_int_equal(cymg_dns_decode_name(ok, sizeof(ok), 3, name, sizeof(name)), 4);
  assert_string_equal(name, "b.a");
  /* Reserved label types and a name over 255 octets. */
  uint8_t rsv[] = {0x40, 'a', 0};
  assert_int_equal(cymg_dns_decode_name(rsv, sizeof(rsv), 0, name, sizeof(name)), CYMG_EPARSE);
  uint8_t longn[320];
  size_t o = 0;
  for (int i = 0; i < 5; i++) {
    longn[o++] = 60;
    memset(longn + o, 'x', 60);
    o += 60;
  }
  longn[o++] = 0;
  assert_int_equal(cymg_dns_decode_name(longn, o, 0, name, sizeof(name)), CYMG_EPARSE);
  /* A whole answer whose question name loops. */
  msgb m;
  header(&m, 1, 0x8180, 1, 0, 0);
  put_ptr(&m, 12);
  put16(&m, 1), put16(&m, 1);
  cymg_dns_answer a;
  assert_int_equal(parse_tail(m.b, m.n, &a), CYMG_EPARSE);
}

static void test_tc_and_garbage(void **state) {
  (void) state;
  msgb m;
  chain_answer(&m, 5);
  m.b[2] |= 0x02; /* TC */
  cymg_dns_answer a;
  assert_true(parse_tail(m.b, 40, &a) > 0); /* cut after the question: still "truncated" */
  assert_true(a.tc);
  m.b[2] &= (uint8_t) ~0x80; /* QR clear: a query */
  assert_int_equal(parse_tail(m.b, m.n, &a), CYMG_EPARSE);
  /* A records with the wrong length. */
  header(&m, 1, 0x8180, 1, 1, 0);
  put_name(&m, "x.test");
  put16(&m, 1), put16(&m, 1);
  put_ptr(&m, 12);
  put16(&m, 1), put16(&m, 1), put32(&m, 1), put16(&m, 3);
  put(&m, "abc", 3);
  assert_int_equal(parse_tail(m.b, m.n, &a), CYMG_EPARSE);
}

static void test_resolv_conf(void **state) {
  (void) state;
  const char *t = "# comment\nnameserver 127.0.0.1\nnameserver ::1 ; ipv6\n"
                  "nameserver 10.0.0.1\nnameserver 10.0.0.2\n"
                  "domain ignored.example\nsearch a.example b.example.\n"
                  "options ndots:3 timeout:2 attempts:9 rotate\nbogus line\n";
  cymg__resolv_conf rc;
  cymg__resolv_conf_parse(t, strlen(t), &rc);
  assert_int_equal(rc.nservers, 3);
  assert_int_equal(rc.servers[0].port, 53);
  assert_true(rc.servers[1].is_ip6);
  assert_int_equal(rc.nsearch, 2);
  assert_string_equal(rc.search[1], "b.example");
  assert_int_equal(rc.ndots, 3);
  assert_int_equal(rc.timeout_ms, 2000);
  assert_int_equal(rc.attempts, 5); /* capped as resolv.conf(5) says */
  assert_true(rc.rotate);
  cymg__resolv_conf_parse("", 0, &rc);
  assert_int_equal(rc.nservers, 0);
  assert_int_equal(rc.ndots, 1);
  assert_int_equal(rc.attempts, 2);
}

static void test_hosts(void **state) {
  (void) state;
  const char *t = "127.0.0.1 localhost\n# 10.0.0.1 commented\n"
                  "192.0.2.5  Alpha.Test alias  # trailing\n::1 alpha.test\nbogus name\n";
  cymg__hosts h = {0};
  assert_int_equal(cymg__hosts_parse(t, strlen(t), &h), 0);
  cymg_addr out[4];
  assert_int_equal(cymg__hosts_find(&h, "alpha.test", CYMG_DNS_ANY, out, 4), 2);
  assert_int_equal(out[0].ip[3], 5);
  assert_true(out[1].is_ip6);
  assert_int_equal(cymg__hosts_find(&h, "ALIAS", CYMG_DNS_IPV6, out, 4), 0);
  assert_int_equal(cymg__hosts_find(&h, "alias", CYMG_DNS_IPV4, out, 4), 1);
  assert_int_equal(cymg__hosts_find(&h, "commented", CYMG_DNS_ANY, out, 4), 0);
  cymg__hosts_free(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_build_query),      cmocka_unit_test(test_parse_cname_chain),
      cmocka_unit_test(test_parse_aaaa_and_unowned), cmocka_unit_test(test_parse_nxdomain_soa),
      cmocka_unit_test(test_compression_loops), cmocka_unit_test(test_tc_and_garbage),
      cmocka_unit_test(test_resolv_conf),      cmocka_unit_test(test_hosts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
