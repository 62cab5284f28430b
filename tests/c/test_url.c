/* Tests for src/util/url.c. Every input is copied into an exactly-sized heap buffer
 * without a NUL so that ASan reports any read past the view. */
#include "cymg_test.h"

#include "cymg/str.h"
#include "cymg/url.h"

static cymg_str heap(const char *s) {
  size_t n = strlen(s);
  char *p = malloc(n ? n : 1);
  assert_non_null(p);
  memcpy(p, s, n);
  return cymg_str_n(p, n);
}

static void hfree(cymg_str s) { free((void *) s.buf); }

/* Asserts a part: want == NULL means absent (buf NULL). */
#define PART(part, want)                                                        \
  do {                                                                          \
    if ((want) == NULL) {                                                       \
      assert_null((part).buf);                                                  \
      assert_int_equal((part).len, 0);                                          \
    } else {                                                                    \
      assert_non_null((part).buf);                                              \
      assert_true(cymg_str_eq((part), cymg_str_c(want)));                       \
    }                                                                           \
  } while (0)

static int parse(const char *s, cymg_url *u) {
  cymg_str in = heap(s);
  int rc = cymg_url_parse(in, u);
  /* Spans must lie inside the input; checked before the input is freed. */
  if (rc == 0) {
    const cymg_str parts[] = {u->scheme, u->user, u->pass, u->host,
                              u->port,   u->path, u->query, u->fragment};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
      if (parts[i].buf == NULL) continue;
      assert_true(parts[i].buf >= in.buf && parts[i].buf + parts[i].len <= in.buf + in.len);
    }
  }
  /* Re-point the parts at the caller's literal so they stay valid after free. */
  if (rc == 0) {
    cymg_str *parts[] = {&u->scheme, &u->user, &u->pass, &u->host,
                         &u->port,   &u->path, &u->query, &u->fragment};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
      if (parts[i]->buf != NULL) parts[i]->buf = s + (parts[i]->buf - in.buf);
  }
  hfree(in);
  return rc;
}

static void test_full(void **state) {
  (void) state;
  cymg_url u;
  assert_int_equal(parse("https://user:pa%3Ass@example.com:8443/a/b?x=1&y=2#frag", &u), 0);
  PART(u.scheme, "https");
  PART(u.user, "user");
  PART(u.pass, "pa%3Ass");
  PART(u.host, "example.com");
  PART(u.port, "8443");
  PART(u.path, "/a/b");
  PART(u.query, "x=1&y=2");
  PART(u.fragment, "frag");
  assert_int_equal(u.port_num, 8443);
  assert_false(u.is_ip6);
}

static void test_userinfo(void **state) {
  (void) state;
  cymg_url u;
  assert_int_equal(parse("mqtt://bob@broker", &u), 0);
  PART(u.user, "bob");
  PART(u.pass, NULL);
  PART(u.host, "broker");
  assert_int_equal(u.port_num, 1883);
  assert_int_equal(parse("ws://bob:@h", &u), 0);
  PART(u.user, "bob");
  PART(u.pass, ""); /* present but empty */
  assert_int_equal(parse("http://:pw@h", &u), 0);
  PART(u.user, "");
  PART(u.pass, "pw");
  assert_int_equal(parse("http://a:b:c@h", &u), 0);
  PART(u.user, "a");
  PART(u.pass, "b:c");
  assert_int_equal(parse("http://h", &u), 0);
  PART(u.user, NULL);
  PART(u.pass, NULL);
  assert_int_equal(parse("http://a@b@c", &u), CYMG_EBADURL);
  assert_int_equal(parse("http://u%zz@h", &u), CYMG_EBADURL);
  assert_int_equal(parse("http://u%2@h", &u), CYMG_EBADURL);
  assert_int_equal(parse("http://u/x@h", &u), 0); /* '@' is in the path here */
  PART(u.host, "u");
  PART(u.path, "/x@h");
}

static void test_ipv6(void **state) {
  (void) state;
  cymg_url u;
  assert_int_equal(parse("[::1]:8080", &u), 0);
  PART(u.scheme, NULL);
  PART(u.host, "::1");
  PART(u.port, "8080");
  assert_true(u.is_ip6);
  assert_int_equal(u.port_num, 8080);
  assert_int_equal(parse("http://[2001:db8::7]", &u), 0);
  PART(u.host, "2001:db8::7");
  assert_int_equal(u.port_num, 80);
  assert_int_equal(parse("http://[::ffff:1.2.3.4]:1/", &u), 0);
  PART(u.host, "::ffff:1.2.3.4");
  assert_int_equal(parse("wss://[::1]:/x", &u), 0);
  assert_int_equal(u.port_num, 443);

  /* Zones (RFC 6874): kept as written, "%25" included; split on demand. */
  assert_int_equal(parse("http://[fe80::1%25eth0]:80/", &u), 0);
  PART(u.host, "fe80::1%25eth0");
  cymg_str addr, zone;
  assert_int_equal(cymg_url_split_zone(u.host, &addr, &zone), 1);
  assert_true(cymg_str_eq(addr, cymg_str_c("fe80::1")));
  assert_true(cymg_str_eq(zone, cymg_str_c("eth0")));
  assert_int_equal(parse("[fe80::1%25en%2D1]", &u), 0);
  assert_int_equal(cymg_url_split_zone(cymg_str_c("::1"), &addr, &zone), 0);
  assert_null(zone.buf);
  assert_true(cymg_str_eq(addr, cymg_str_c("::1")));

  static const char *bad[] = {
      "[fe80::1%eth0]", /* zone without %25 */
      "[fe80::1%25]",   /* empty zone */
      "[fe80::1%25e/0]", "[fe80::1%25eth%G0]", "[::1", "[::1]x", "[::1]:x", "[zz::1]", "[]",
      "[v1.x]",         "[1.2.3.4]", "[::1]]", "http://[::1]:65536", "::1", "http://::1/",
      "[:::1]",         "[1:2:3:4:5:6:7:8:9]",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (parse(bad[i], &u) != CYMG_EBADURL) fail_msg("accepted: %s", bad[i]);
  }
}

static void test_default_ports(void **state) {
  (void) state;
  static const struct {
    const char *url;
    uint16_t port;
  } v[] = {
      {"http://h", 80},      {"https://h", 443},  {"ws://h", 80},       {"wss://h", 443},
      {"mqtt://h", 1883},    {"mqtts://h", 8883}, {"sntp://h", 123},    {"udp://h", 0},
      {"tcp://h", 0},        {"HTTP://h", 80},    {"HttpS://h", 443},   {"h", 0},
      {"http://h:", 80},     {"http://h:0", 0},   {"http://h:65535", 65535},
      {"http://h:08080", 8080}, {"udp://1.2.3.4:53", 53}, {"foo+bar.baz-1://h", 0},
  };
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    cymg_url u;
    assert_int_equal(parse(v[i].url, &u), 0);
    if (u.port_num != v[i].port) fail_msg("%s: port %u", v[i].url, u.port_num);
  }
  assert_int_equal(cymg_url_default_port(cymg_str_c("MQTTS")), 8883);
  assert_int_equal(cymg_url_default_port(cymg_str_n(NULL, 0)), 0);
  assert_int_equal(cymg_url_default_port(cymg_str_c("htt")), 0);
  assert_int_equal(cymg_url_default_port(cymg_str_c("httpx")), 0);
  assert_true(cymg_url_is_tls(cymg_str_c("https")));
  assert_true(cymg_url_is_tls(cymg_str_c("WSS")));
  assert_true(cymg_url_is_tls(cymg_str_c("mqtts")));
  assert_false(cymg_url_is_tls(cymg_str_c("http")));
  assert_false(cymg_url_is_tls(cymg_str_c("mqtt")));
  assert_false(cymg_url_is_tls(cymg_str_n(NULL, 0)));
  assert_true(cymg_url_is_tls(cymg_str_c("TLS")));
  /* One table: the flags agree with the ports and TLS answers above. */
  assert_int_equal(cymg_url_scheme_flags(cymg_str_c("tcp")), CYMG_URL_KNOWN);
  assert_int_equal(cymg_url_scheme_flags(cymg_str_c("Mqtt")), CYMG_URL_KNOWN);
  assert_int_equal(cymg_url_scheme_flags(cymg_str_c("udp")), CYMG_URL_KNOWN | CYMG_URL_UDP);
  assert_int_equal(cymg_url_scheme_flags(cymg_str_c("sntp")), CYMG_URL_KNOWN | CYMG_URL_UDP);
  assert_int_equal(cymg_url_scheme_flags(cymg_str_c("wss")), CYMG_URL_KNOWN | CYMG_URL_TLS);
  assert_int_equal(cymg_url_scheme_flags(cymg_str_c("mqtts")), CYMG_URL_KNOWN | CYMG_URL_TLS);
  assert_int_equal(cymg_url_scheme_flags(cymg_str_c("gopher")), 0);
  assert_int_equal(cymg_url_scheme_flags(cymg_str_n(NULL, 0)), 0);
}

static void test_bad_ports(void **state) {
  (void) state;
  static const char *bad[] = {
      "http://h:65536", "http://h:99999999999999999999", "http://h:8a", "http://h:-1",
      "http://h:+80",   "http://h:1:2",  "h:x", "h:80:", "http://h: 80", "http://h:0x50",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cymg_url u;
    if (parse(bad[i], &u) != CYMG_EBADURL) fail_msg("accepted: %s", bad[i]);
  }
}

static void test_missing_parts(void **state) {
  (void) state;
  cymg_url u;
  assert_int_equal(parse("http://h", &u), 0);
  PART(u.path, NULL);
  PART(u.query, NULL);
  PART(u.fragment, NULL);
  PART(u.port, NULL);
  assert_int_equal(parse("http://h?", &u), 0);
  PART(u.path, NULL);
  PART(u.query, "");
  PART(u.fragment, NULL);
  assert_int_equal(parse("http://h#", &u), 0);
  PART(u.query, NULL);
  PART(u.fragment, "");
  assert_int_equal(parse("http://h?q#f?g#h", &u), 0);
  PART(u.path, NULL);
  PART(u.query, "q");
  PART(u.fragment, "f?g#h");
  assert_int_equal(parse("http://h:", &u), 0);
  PART(u.port, "");
  assert_int_equal(parse("localhost", &u), 0);
  PART(u.scheme, NULL);
  PART(u.host, "localhost");
  assert_int_equal(parse("localhost:8000/x", &u), 0);
  PART(u.host, "localhost");
  assert_int_equal(u.port_num, 8000);
  PART(u.path, "/x");
  assert_int_equal(parse(":8080", &u), 0);
  PART(u.host, "");
  assert_int_equal(u.port_num, 8080);
  assert_int_equal(parse("tcp://:1234", &u), 0);
  PART(u.scheme, "tcp");
  PART(u.host, "");
  assert_int_equal(parse("http:///p", &u), 0);
  PART(u.host, "");
  PART(u.path, "/p");
  assert_int_equal(parse("/p?x", &u), 0);
  PART(u.host, "");
  PART(u.path, "/p");
  /* "://" later in the URL is not a scheme. */
  assert_int_equal(parse("h:80/x://y", &u), 0);
  PART(u.scheme, NULL);
  PART(u.path, "/x://y");
  assert_int_equal(parse("http://h/%zz", &u), 0); /* paths are not validated */
}

static void test_rejects(void **state) {
  (void) state;
  static const char *bad[] = {
      "",        "://h",          "1http://h",    "-x://h",     "http://h/a b", "http://h/\x01",
      "http://h\t", "http://h/\x7f", " http://h", "http://h ", "http://exa<mple.com",
      "http://h%zz", "http://h%4",  "http://h%",   "http://h\"", "http://[", "http://h]",
      "http://h^", "http://h|x", "http://h\\x", "http://\xc3\xa9.com",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cymg_url u;
    if (parse(bad[i], &u) != CYMG_EBADURL) fail_msg("accepted: %s", bad[i]);
  }
  cymg_url u;
  assert_int_equal(cymg_url_parse(cymg_str_n(NULL, 0), &u), CYMG_EBADURL);
  assert_int_equal(cymg_url_parse(cymg_str_n("h\0x", 3), &u), CYMG_EBADURL);
  /* On failure *out is untouched. */
  memset(&u, 0x5a, sizeof(u));
  assert_int_equal(parse("http://h:99999", &u), CYMG_EBADURL);
  assert_int_equal(u.port_num, 0x5a5a);
  /* Sub-delims and %XX are fine in a host. */
  assert_int_equal(parse("http://a!$&'()*+,;=b%41.x", &u), 0);
}

static void check_uri(const char *url, const char *want) {
  cymg_str in = heap(url);
  cymg_str r = cymg_url_uri(in);
  assert_true(cymg_str_eq(r, cymg_str_c(want)));
  hfree(in);
}

static void test_uri(void **state) {
  (void) state;
  check_uri("http://h:1/a?b#c", "/a?b#c");
  check_uri("http://h", "/");
  check_uri("http://h/", "/");
  check_uri("http://h?x=1", "?x=1");
  check_uri("http://u:p@[::1]:80/x", "/x");
  check_uri("/p", "/p");
  check_uri("h:80/x", "/x");
  check_uri("", "/");
  check_uri("http://", "/");
  check_uri("http:/", "/");
}

static void check_encode(const char *in, const char *want) {
  cymg_buf b = {0};
  cymg_str s = heap(in);
  assert_int_equal(cymg_url_encode(s, &b), 0);
  assert_string_equal(b.buf, want);
  cymg_buf_free(&b);
  hfree(s);
}

static void test_encode(void **state) {
  (void) state;
  check_encode("", "");
  check_encode("AZaz09-._~", "AZaz09-._~");
  check_encode("a b/c?d=e&f+g", "a%20b%2Fc%3Fd%3De%26f%2Bg");
  check_encode("\xff\x80\x7f%", "%FF%80%7F%25");
  cymg_buf b = {0};
  assert_int_equal(cymg_url_encode(cymg_str_n("\0", 1), &b), 0);
  assert_string_equal(b.buf, "%00");
  assert_int_equal(cymg_url_encode(cymg_str_c("x"), &b), 0); /* appends */
  assert_string_equal(b.buf, "%00x");
  cymg_buf_free(&b);
}

static void test_decode(void **state) {
  (void) state;
  cymg_buf b = {0};
  cymg_str s = heap("a%20b+c%2b%2F%e9");
  assert_int_equal(cymg_url_decode(s, &b, false), 0);
  assert_string_equal(b.buf, "a b+c+/\xe9");
  cymg_buf_free(&b);
  assert_int_equal(cymg_url_decode(s, &b, true), 0);
  assert_string_equal(b.buf, "a b c+/\xe9");
  cymg_buf_free(&b);
  hfree(s);

  assert_int_equal(cymg_url_decode(cymg_str_c("%00"), &b, false), 0);
  assert_int_equal(b.len, 1);
  assert_int_equal(b.buf[0], 0);
  cymg_buf_free(&b);

  static const char *bad[] = {"%", "%1", "%G1", "%1G", "a%", "a%4", "%%41", "%x", "% 1", "%-1", "%+1", "ok%zz"};
  assert_int_equal(cymg_buf_append(&b, "keep", 4), 0);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cymg_str in = heap(bad[i]);
    assert_int_equal(cymg_url_decode(in, &b, true), CYMG_EPARSE);
    assert_int_equal(b.len, 4); /* unchanged */
    char dst[16] = "junk";
    assert_int_equal(cymg_url_decode_to(in, dst, sizeof(dst), false), CYMG_EPARSE);
    assert_string_equal(dst, "");
    hfree(in);
  }
  assert_string_equal(b.buf, "keep");
  cymg_buf_free(&b);
}

static void test_decode_to(void **state) {
  (void) state;
  char dst[4];
  cymg_str in = heap("a%41+");
  assert_int_equal(cymg_url_decode_to(in, dst, 4, true), 3); /* exact fit */
  assert_string_equal(dst, "aA ");
  assert_int_equal(cymg_url_decode_to(in, dst, 3, true), CYMG_ENOSPC); /* one short */
  assert_string_equal(dst, "");
  assert_int_equal(cymg_url_decode_to(in, dst, 0, true), CYMG_ENOSPC);
  assert_int_equal(cymg_url_decode_to(in, NULL, 4, true), CYMG_EINVAL);
  hfree(in);
  assert_int_equal(cymg_url_decode_to(cymg_str_n(NULL, 0), dst, 1, true), 0);
  assert_string_equal(dst, "");
}

static void test_round_trip(void **state) {
  (void) state;
  uint8_t all[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t) i;
  cymg_buf e = {0}, d = {0};
  assert_int_equal(cymg_url_encode(cymg_str_n(all, 256), &e), 0);
  for (size_t i = 0; i < e.len; i++) /* only unreserved and %XX come out */
    assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%", e.buf[i]));
  for (int plus = 0; plus < 2; plus++) {
    assert_int_equal(cymg_url_decode(cymg_str_n(e.buf, e.len), &d, plus), 0);
    assert_int_equal(d.len, 256);
    assert_memory_equal(d.buf, all, 256);
    cymg_buf_free(&d);
  }
  cymg_buf_free(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full),         cmocka_unit_test(test_userinfo),
      cmocka_unit_test(test_ipv6),         cmocka_unit_test(test_default_ports),
      cmocka_unit_test(test_bad_ports),    cmocka_unit_test(test_missing_parts),
      cmocka_unit_test(test_rejects),      cmocka_unit_test(test_uri),
      cmocka_unit_test(test_encode),       cmocka_unit_test(test_decode),
      cmocka_unit_test(test_decode_to),    cmocka_unit_test(test_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
