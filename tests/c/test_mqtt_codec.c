/* The MQTT codec over byte vectors written from the OASIS 3.1.1 and 5.0
 * packet layouts. Every parse runs on a copy that ends exactly at the end of a
 * heap block, so an over-read is caught by ASan. */
#include "cymg_test.h"

static uint8_t *tail_copy(const void *p, size_t n) {
  uint8_t *b = malloc(n ? n : 1);
  assert_non_null(b);
  if (n) memcpy(b, p, n);
  return b;
}

/* Parses a whole vector; every strict prefix must ask for more. */
static int parse_v(const uint8_t *p, size_t n, int version, cymg_mqtt_msg *m, cymg_mqtt_err *e) {
  for (size_t k = 0; k < n; k++) {
    uint8_t *b = tail_copy(p, k);
    cymg_mqtt_msg mm;
    int rc = cymg_mqtt_parse(b, k, version, 0, &mm, NULL);
    free(b);
    if (rc != CYMG_EAGAIN) return rc; /* an early verdict: a malformed header */
  }
  static uint8_t keep[4096];
  assert_true(n <= sizeof(keep));
  memcpy(keep, p, n); /* views in *m stay valid after the copy is freed */
  uint8_t *b = tail_copy(p, n);
  int rc = cymg_mqtt_parse(b, n, version, 0, m, e);
  free(b);
  if (rc > 0) {
    cymg_mqtt_msg again;
    assert_int_equal(cymg_mqtt_parse(keep, n, version, 0, &again, NULL), rc);
    *m = again;
  }
  return rc;
}

/* encode(parse(v)) == v */
static void roundtrip(const uint8_t *p, size_t n, int version) {
  cymg_mqtt_msg m;
  assert_int_equal(parse_v(p, n, version, &m, NULL), (int)n);
  uint8_t out[4096];
  int len = cymg_mqtt_encode(&m, m.version, out, sizeof(out));
  assert_int_equal(len, (int)n);
  assert_memory_equal(out, p, n);
  /* too little room: the needed size, nothing claimed written */
  assert_int_equal(cymg_mqtt_encode(&m, m.version, out, n - 1), (int)n);
}

#define V(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static void test_varint(void **state) {
  (void)state;
  uint8_t b[4];
  struct {
    uint32_t v;
    size_t n;
    uint8_t bytes[4];
  } t[] = {{0, 1, {0}},
           {127, 1, {0x7f}},
           {128, 2, {0x80, 1}},
           {16383, 2, {0xff, 0x7f}},
           {16384, 3, {0x80, 0x80, 1}},
           {2097151, 3, {0xff, 0xff, 0x7f}},
           {2097152, 4, {0x80, 0x80, 0x80, 1}},
           {268435455, 4, {0xff, 0xff, 0xff, 0x7f}}};
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    assert_int_equal(cymg_mqtt_varint_encode(b, t[i].v), t[i].n);
    assert_memory_equal(b, t[i].bytes, t[i].n);
    uint32_t v = 1;
    assert_int_equal(cymg_mqtt_varint_parse(t[i].bytes, t[i].n, &v), (int)t[i].n);
    assert_int_equal(v, t[i].v);
    assert_int_equal(cymg_mqtt_varint_parse(t[i].bytes, t[i].n - 1, &v), CYMG_EAGAIN);
  }
  assert_int_equal(cymg_mqtt_varint_encode(b, 268435456u), 0);
  uint32_t v;
  assert_int_equal(cymg_mqtt_varint_parse(V(0xff, 0xff, 0xff, 0xff, 0x01), &v), CYMG_EPARSE);
}

static void test_connect_311(void **state) {
  (void)state;
  cymg_mqtt_msg m;
  const uint8_t *p;
  size_t n;
  /* clean session, keep-alive 60, client id "a" */
  static const uint8_t c1[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'a'};
  p = c1;
  n = sizeof(c1);
  assert_int_equal(parse_v(p, n, CYMG_MQTT_V311, &m, NULL), (int)n);
  assert_int_equal(m.cmd, CYMG_MQTT_CMD_CONNECT);
  assert_int_equal(m.version, 4);
  assert_int_equal(m.connect.keepalive, 60);
  assert_true(m.connect.clean);
  assert_false(m.connect.has_will);
  assert_int_equal(m.connect.client_id.len, 1);
  roundtrip(p, n, 4);
  /* will (QoS 1, retain) + user + password */
  static const uint8_t c2[] = {0x10, 29, 0,   4,   'M', 'Q', 'T', 'T', 4,  0xee, 0,
                               10,   0,  1,   'i', 0,   1,   't', 0,   2,  'w',  'p',
                               0,    2,  'u', 's', 0,   3,   'p', 'w', 'd'};
  assert_int_equal(parse_v(c2, sizeof(c2), 4, &m, NULL), (int)sizeof(c2));
  assert_true(m.connect.has_will && m.connect.will_retain && m.connect.has_username &&
              m.connect.has_password);
  assert_int_equal(m.connect.will_qos, 1);
  assert_memory_equal(m.connect.will_payload.buf, "wp", 2);
  assert_memory_equal(m.connect.password.buf, "pwd", 3);
  roundtrip(c2, sizeof(c2), 4);
}

static void test_errors(void **state) {
  (void)state;
  cymg_mqtt_msg m;
  cymg_mqtt_err e;
  struct {
    const uint8_t *p;
    size_t n;
    int version, rc;
    uint8_t reason;
  } t[] = {
      /* remaining length of five bytes */
      {V(0x30, 0xff, 0xff, 0xff, 0xff, 0x7f), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      /* wildcard in a PUBLISH topic */
      {V(0x30, 5, 0, 3, 'a', '/', '#'), 4, CYMG_EPROTO, CYMG_MQTT_RC_TOPIC_NAME_INVALID},
      {V(0x30, 3, 0, 1, '+'), 4, CYMG_EPROTO, CYMG_MQTT_RC_TOPIC_NAME_INVALID},
      /* overlong NUL, a NUL, a surrogate in the topic */
      {V(0x30, 4, 0, 2, 0xc0, 0x80), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0x30, 4, 0, 2, 'a', 0), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0x30, 5, 0, 3, 0xed, 0xa0, 0x80), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      /* reserved types 0 and (3.1.1) 15 */
      {V(0x00, 0), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0xf0, 0), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      /* PUBREL / SUBSCRIBE must carry flags 0010, others 0000 */
      {V(0x60, 2, 0, 1), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0x80, 6, 0, 1, 0, 1, 'a', 0), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0xc1, 0), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      /* PUBLISH QoS 3; QoS 1 with packet id 0 */
      {V(0x36, 5, 0, 1, 't', 0, 1), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0x32, 5, 0, 1, 't', 0, 0), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      /* SUBSCRIBE: bad filter, bad options, no filter */
      {V(0x82, 7, 0, 1, 0, 2, 'a', '#', 0), 4, CYMG_EPROTO, CYMG_MQTT_RC_PROTOCOL_ERROR},
      {V(0x82, 6, 0, 1, 0, 1, 'a', 3), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0x82, 6, 0, 1, 0, 1, 'a', 4), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0x82, 2, 0, 1), 4, CYMG_EPROTO, CYMG_MQTT_RC_PROTOCOL_ERROR},
      /* truncated string inside a complete packet */
      {V(0x30, 3, 0, 5, 'a'), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      /* CONNECT: wrong name, level 3, reserved flag, password without user (3.1.1) */
      {V(0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 0, 0, 0), 4, CYMG_EPROTO,
       CYMG_MQTT_RC_UNSUPPORTED_VERSION},
      {V(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 3, 2, 0, 0, 0, 0), 4, CYMG_EPROTO,
       CYMG_MQTT_RC_UNSUPPORTED_VERSION},
      {V(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 3, 0, 0, 0, 0), 4, CYMG_EPARSE,
       CYMG_MQTT_RC_MALFORMED},
      {V(0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 0, 0, 0, 0, 0), 4, CYMG_EPARSE,
       CYMG_MQTT_RC_MALFORMED},
      /* v5: property not allowed in PUBLISH (session expiry), twice, unknown id */
      {V(0x30, 9, 0, 1, 't', 5, 0x11, 0, 0, 0, 1), 5, CYMG_EPROTO, CYMG_MQTT_RC_PROTOCOL_ERROR},
      {V(0x30, 8, 0, 1, 't', 4, 0x01, 1, 0x01, 1), 5, CYMG_EPROTO, CYMG_MQTT_RC_PROTOCOL_ERROR},
      {V(0x30, 6, 0, 1, 't', 2, 0x7e, 1), 5, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      /* v5: property length past the packet; payload format 2 */
      {V(0x30, 5, 0, 1, 't', 9, 1), 5, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0x30, 6, 0, 1, 't', 2, 0x01, 2), 5, CYMG_EPROTO, CYMG_MQTT_RC_PROTOCOL_ERROR},
      /* 3.1.1 PUBACK with a reason code; CONNACK with reserved flags */
      {V(0x40, 3, 0, 1, 0), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      {V(0x20, 2, 2, 0), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
      /* PINGREQ with a body */
      {V(0xc0, 1, 0), 4, CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    uint8_t *b = tail_copy(t[i].p, t[i].n);
    int rc = cymg_mqtt_parse(b, t[i].n, t[i].version, 0, &m, &e);
    free(b);
    if (rc != t[i].rc || e.reason != t[i].reason)
      fail_msg("vector %zu: rc %d reason 0x%02x (%s)", i, rc, e.reason, e.why);
    assert_true(e.why != NULL && e.why[0] != '\0');
  }
  /* an announced size over the limit fails before the packet is complete */
  uint8_t big[] = {0x30, 0x80, 0x80, 0x04};
  assert_int_equal(cymg_mqtt_parse(big, sizeof(big), 4, 1000, &m, &e), CYMG_ELIMIT);
  assert_int_equal(e.reason, CYMG_MQTT_RC_PACKET_TOO_LARGE);
}

static void test_publish_and_acks(void **state) {
  (void)state;
  cymg_mqtt_msg m;
  static const uint8_t p1[] = {0x3b, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i'}; /* DUP QoS1 retain */
  assert_int_equal(parse_v(p1, sizeof(p1), 4, &m, NULL), (int)sizeof(p1));
  assert_int_equal(m.cmd, CYMG_MQTT_CMD_PUBLISH);
  assert_true(m.dup && m.retain);
  assert_int_equal(m.qos, 1);
  assert_int_equal(m.id, 10);
  assert_memory_equal(m.topic.buf, "a/b", 3);
  assert_int_equal(m.data.len, 2);
  roundtrip(p1, sizeof(p1), 4);
  /* v5 with payload format and a user property */
  static const uint8_t p2[] = {0x30, 14, 0, 1, 't', 9, 0x01, 1, 0x26, 0, 1, 'k', 0, 1, 'v', 'x'};
  assert_int_equal(parse_v(p2, sizeof(p2), 5, &m, NULL), (int)sizeof(p2));
  size_t ofs = 0;
  cymg_mqtt_prop pr;
  assert_int_equal(cymg_mqtt_next_prop(m.props, &ofs, &pr), 1);
  assert_int_equal(pr.id, CYMG_MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
  assert_int_equal(pr.iv, 1);
  assert_int_equal(cymg_mqtt_next_prop(m.props, &ofs, &pr), 1);
  assert_int_equal(pr.id, CYMG_MQTT_PROP_USER_PROPERTY);
  assert_memory_equal(pr.key.buf, "k", 1);
  assert_memory_equal(pr.val.buf, "v", 1);
  assert_int_equal(cymg_mqtt_next_prop(m.props, &ofs, &pr), 0);
  assert_memory_equal(m.data.buf, "x", 1);
  roundtrip(p2, sizeof(p2), 5);
  /* the same bytes in 3.1.1 are a topic "t" with payload starting at 9 */
  /* acks: 3.1.1, v5 short form, v5 with reason, v5 with reason and reason string */
  roundtrip(V(0x40, 2, 0, 7), 4);
  roundtrip(V(0x50, 2, 0, 7), 5);
  roundtrip(V(0x62, 3, 0, 7, 0x92), 5);
  roundtrip(V(0x70, 8, 0, 7, 0x80, 4, 0x1f, 0, 1, 'r'), 5);
  assert_int_equal(parse_v(V(0x62, 3, 0, 7, 0x92), 5, &m, NULL), 5);
  assert_int_equal(m.ack, 0x92);
  /* CONNACK, SUBACK, UNSUBACK, PING*, DISCONNECT, AUTH */
  roundtrip(V(0x20, 2, 1, 0), 4);
  roundtrip(V(0x20, 3, 0, 0x87, 0), 5);
  roundtrip(V(0x20, 8, 0, 0, 5, 0x21, 0, 10, 0x24, 1), 5);
  roundtrip(V(0x90, 5, 0, 3, 0, 1, 0x80), 4);
  roundtrip(V(0x90, 4, 0, 3, 0, 0x02), 5);
  roundtrip(V(0xb0, 2, 0, 3), 4);
  roundtrip(V(0xb0, 5, 0, 3, 0, 0, 0x11), 5);
  roundtrip(V(0xc0, 0), 4);
  roundtrip(V(0xd0, 0), 4);
  roundtrip(V(0xe0, 0), 4);
  roundtrip(V(0xe0, 1, 0x8e), 5);
  roundtrip(V(0xe0, 7, 0x04, 5, 0x11, 0, 0, 0, 9), 5);
  roundtrip(V(0xf0, 1, 0x18), 5);
  assert_int_equal(parse_v(V(0x20, 2, 1, 0), 4, &m, NULL), 4);
  assert_true(m.session_present);
}

static void test_subscribe(void **state) {
  (void)state;
  cymg_mqtt_msg m;
  static const uint8_t s1[] = {0x82, 15, 0, 9, 0, 3, 'a', '/', '+', 1, 0, 4, '$', 'S', '/', '#', 2};
  assert_int_equal(parse_v(s1, sizeof(s1), 4, &m, NULL), (int)sizeof(s1));
  assert_int_equal(m.id, 9);
  assert_int_equal(m.qos, 1);
  assert_memory_equal(m.topic.buf, "a/+", 3);
  size_t ofs = 0;
  cymg_str f;
  uint8_t o;
  assert_int_equal(cymg_mqtt_next_filter(&m, &ofs, &f, &o), 1);
  assert_int_equal(cymg_mqtt_next_filter(&m, &ofs, &f, &o), 1);
  assert_int_equal(f.len, 4);
  assert_int_equal(o, 2);
  assert_int_equal(cymg_mqtt_next_filter(&m, &ofs, &f, &o), 0);
  roundtrip(s1, sizeof(s1), 4);
  /* v5: subscription id and options no-local | retain handling 2 */
  roundtrip(V(0x82, 9, 0, 9, 2, 0x0b, 5, 0, 1, 'a', 0x24), 5);
  /* UNSUBSCRIBE */
  static const uint8_t u1[] = {0xa2, 5, 0, 4, 0, 1, 'z'};
  assert_int_equal(parse_v(u1, sizeof(u1), 4, &m, NULL), (int)sizeof(u1));
  assert_int_equal(m.topic.len, 1);
  roundtrip(u1, sizeof(u1), 4);
  /* filter building */
  uint8_t buf[64];
  int n = cymg_mqtt_filter_encode(cymg_str_c("a/#"), 1, buf, sizeof(buf), 0);
  assert_int_equal(n, 6);
  n = cymg_mqtt_filter_encode(cymg_str_c("b"), -1, buf, sizeof(buf), (size_t)n);
  assert_int_equal(n, 9);
  assert_memory_equal(buf, "\0\3a/#\1\0\1b", 9);
  assert_int_equal(cymg_mqtt_filter_encode(cymg_str_c("a#"), 0, buf, sizeof(buf), 0), CYMG_EINVAL);
}

static void test_connect_v5(void **state) {
  (void)state;
  cymg_mqtt_prop props[] = {
      {.id = CYMG_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = 3600},
      {.id = CYMG_MQTT_PROP_RECEIVE_MAXIMUM, .iv = 20},
      {.id = CYMG_MQTT_PROP_USER_PROPERTY, .key = cymg_str_c("a"), .val = cymg_str_c("b")}};
  cymg_mqtt_prop wprops[] = {{.id = CYMG_MQTT_PROP_WILL_DELAY_INTERVAL, .iv = 5},
                             {.id = CYMG_MQTT_PROP_CONTENT_TYPE, .val = cymg_str_c("text/plain")},
                             {.id = CYMG_MQTT_PROP_CORRELATION_DATA, .val = cymg_str_n("\0\1", 2)}};
  uint8_t pb[64], wb[64];
  int pn = cymg_mqtt_props_encode(props, 3, pb, sizeof(pb));
  int wn = cymg_mqtt_props_encode(wprops, 3, wb, sizeof(wb));
  assert_int_equal(pn, 5 + 3 + 7);
  assert_int_equal(wn, 5 + 13 + 5);
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_CONNECT;
  m.props = cymg_str_n(pb, (size_t)pn);
  m.connect.client_id = cymg_str_c("");
  m.connect.has_will = true;
  m.connect.will_topic = cymg_str_c("w/t");
  m.connect.will_payload = cymg_str_c("bye");
  m.connect.will_props = cymg_str_n(wb, (size_t)wn);
  m.connect.will_qos = 2;
  m.connect.keepalive = 5;
  uint8_t out[256];
  int n = cymg_mqtt_encode(&m, 5, out, sizeof(out));
  assert_true(n > 0 && n < (int)sizeof(out));
  assert_int_equal(out[0], 0x10);
  assert_int_equal(out[8], 5);
  cymg_mqtt_msg back;
  assert_int_equal(parse_v(out, (size_t)n, 4, &back, NULL), n); /* version from the packet */
  assert_int_equal(back.version, 5);
  assert_int_equal(back.connect.will_qos, 2);
  assert_int_equal(back.connect.will_props.len, (size_t)wn);
  assert_int_equal(back.props.len, (size_t)pn);
  roundtrip(out, (size_t)n, 5);
  /* will properties are not CONNECT properties and the reverse */
  m.props = cymg_str_n(wb, (size_t)wn);
  assert_int_equal(cymg_mqtt_encode(&m, 5, out, sizeof(out)), CYMG_EINVAL);
  /* properties in 3.1.1 */
  m.props = cymg_str_n(pb, (size_t)pn);
  assert_int_equal(cymg_mqtt_encode(&m, 4, out, sizeof(out)), CYMG_EINVAL);
  /* bad property values */
  cymg_mqtt_prop bad1 = {.id = CYMG_MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, .iv = 300};
  cymg_mqtt_prop bad2 = {.id = 0x7f};
  cymg_mqtt_prop bad3 = {.id = CYMG_MQTT_PROP_CONTENT_TYPE, .val = {"\xff", 1}};
  assert_int_equal(cymg_mqtt_props_encode(&bad1, 1, pb, sizeof(pb)), CYMG_EINVAL);
  assert_int_equal(cymg_mqtt_props_encode(&bad2, 1, pb, sizeof(pb)), CYMG_EINVAL);
  assert_int_equal(cymg_mqtt_props_encode(&bad3, 1, pb, sizeof(pb)), CYMG_EINVAL);
  assert_int_equal(cymg_mqtt_prop_type(CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER),
                   CYMG_MQTT_PROP_TYPE_VARIABLE_INT);
  assert_int_equal(cymg_mqtt_prop_type(0x7f), -1);
}

static void test_encode_rules(void **state) {
  (void)state;
  cymg_mqtt_msg m;
  uint8_t out[64];
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_PUBLISH;
  m.topic = cymg_str_c("a/+");
  assert_int_equal(cymg_mqtt_encode(&m, 4, out, sizeof(out)), CYMG_EINVAL);
  m.topic = cymg_str_c("a");
  m.qos = 3;
  assert_int_equal(cymg_mqtt_encode(&m, 4, out, sizeof(out)), CYMG_EINVAL);
  m.qos = 1; /* id 0 */
  assert_int_equal(cymg_mqtt_encode(&m, 4, out, sizeof(out)), CYMG_EINVAL);
  m.id = 1;
  assert_int_equal(cymg_mqtt_encode(&m, 4, out, sizeof(out)), 7);
  m.cmd = CYMG_MQTT_CMD_AUTH;
  assert_int_equal(cymg_mqtt_encode(&m, 4, out, sizeof(out)), CYMG_EINVAL);
  m.cmd = 0;
  assert_int_equal(cymg_mqtt_encode(&m, 5, out, sizeof(out)), CYMG_EINVAL);
}

static void test_topics(void **state) {
  (void)state;
  assert_true(cymg_mqtt_topic_valid(cymg_str_c("a/b")));
  assert_true(cymg_mqtt_topic_valid(cymg_str_c("/")));
  assert_false(cymg_mqtt_topic_valid(cymg_str_c("")));
  assert_false(cymg_mqtt_topic_valid(cymg_str_c("a/#")));
  assert_false(cymg_mqtt_topic_valid(cymg_str_n("a\0b", 3)));
  const char *good[] = {"#", "+", "a/#", "+/+", "/+", "a/+/b", "+/#", "$SYS/#", "a//b"};
  const char *bad[] = {"", "a#", "#/a", "a/#/", "a+", "+a", "a/b+", "##"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_true(cymg_mqtt_filter_valid(cymg_str_c(good[i])));
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (cymg_mqtt_filter_valid(cymg_str_c(bad[i]))) fail_msg("accepted filter '%s'", bad[i]);
  struct {
    const char *t, *f;
    bool match;
  } mt[] = {{"a/b", "a/b", true},     {"a/b", "a/+", true},       {"a/b", "#", true},
            {"a", "a/#", true},       {"a/b/c", "a/#", true},     {"a/b/c", "a/+", false},
            {"a/", "a/+", true},      {"/a", "+/a", true},        {"$SYS/x", "#", false},
            {"$SYS/x", "+/x", false}, {"$SYS/x", "$SYS/#", true}, {"ab", "a", false},
            {"a", "ab", false},       {"a/b", "a/b/c", false},    {"a/b", "+/+", true},
            {"a", "+/+", false}};
  for (size_t i = 0; i < sizeof(mt) / sizeof(mt[0]); i++)
    if (cymg_mqtt_match(cymg_str_c(mt[i].t), cymg_str_c(mt[i].f)) != mt[i].match)
      fail_msg("match('%s', '%s') != %d", mt[i].t, mt[i].f, mt[i].match);
  assert_string_equal(cymg_mqtt_cmd_name(CYMG_MQTT_CMD_PUBLISH), "PUBLISH");
  assert_string_equal(cymg_mqtt_cmd_name(0), "?");
  /* UTF-8: 4-byte OK, above U+10FFFF not, lone continuation not */
  assert_true(cymg_mqtt_utf8_valid(cymg_str_c("\xf0\x9f\x98\x80")));
  assert_false(cymg_mqtt_utf8_valid(cymg_str_c("\xf4\x90\x80\x80")));
  assert_false(cymg_mqtt_utf8_valid(cymg_str_c("\x80")));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_varint),       cmocka_unit_test(test_connect_311),
      cmocka_unit_test(test_errors),       cmocka_unit_test(test_publish_and_acks),
      cmocka_unit_test(test_subscribe),    cmocka_unit_test(test_connect_v5),
      cmocka_unit_test(test_encode_rules), cmocka_unit_test(test_topics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
