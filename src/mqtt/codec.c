/* The MQTT 3.1.1 / 5.0 codec: one packet parsed into a view, or encoded from
 * one. Sans-I/O, no allocation, every read bounded by a cursor. */
#include <string.h>

#include "cymg/error.h"
#include "cymg/mqtt.h"
#include "cymg/ws.h"

/* ---- validation ---- */

bool cymg_mqtt_utf8_valid(cymg_str s) {
  if (s.len > 65535) return false;
  if (s.len && memchr(s.buf, 0, s.len) != NULL) return false; /* U+0000 is forbidden */
  uint32_t st = 0; /* the WebSocket validator rejects overlongs, surrogates, > U+10FFFF */
  return cymg_ws_utf8(&st, s.buf, s.len) == 0 && st == 0;
}

bool cymg_mqtt_topic_valid(cymg_str t) {
  if (t.len == 0 || !cymg_mqtt_utf8_valid(t)) return false;
  return memchr(t.buf, '+', t.len) == NULL && memchr(t.buf, '#', t.len) == NULL;
}

bool cymg_mqtt_filter_valid(cymg_str f) {
  if (f.len == 0 || !cymg_mqtt_utf8_valid(f)) return false;
  for (size_t i = 0; i < f.len; i++) {
    char ch = f.buf[i];
    if (ch != '+' && ch != '#') continue;
    bool starts = i == 0 || f.buf[i - 1] == '/';
    bool ends = i + 1 == f.len || f.buf[i + 1] == '/';
    if (!starts || !ends) return false;            /* a wildcard is a whole level */
    if (ch == '#' && i + 1 != f.len) return false; /* '#' is the last level */
  }
  return true;
}

bool cymg_mqtt_match(cymg_str topic, cymg_str filter) {
  const char *t = topic.buf, *f = filter.buf;
  if (topic.len && t[0] == '$' && filter.len && (f[0] == '+' || f[0] == '#')) return false;
  size_t ti = 0, fi = 0;
  bool tmore = true, fmore = filter.len > 0;
  while (fmore) {
    size_t fs = fi, fe = fi, ts = ti, te = ti;
    while (fe < filter.len && f[fe] != '/') fe++;
    if (fe - fs == 1 && f[fs] == '#') return true; /* the rest, parent level included */
    if (!tmore) return false;
    while (te < topic.len && t[te] != '/') te++;
    bool plus = fe - fs == 1 && f[fs] == '+';
    if (!plus && (fe - fs != te - ts || memcmp(f + fs, t + ts, fe - fs) != 0)) return false;
    fmore = fe < filter.len;
    fi = fe + 1;
    tmore = te < topic.len;
    ti = te + 1;
  }
  return !tmore;
}

const char *cymg_mqtt_cmd_name(int cmd) {
  static const char *const names[] = {"?",         "CONNECT",  "CONNACK",     "PUBLISH",
                                      "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                      "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                      "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};
  return (cmd > 0 && cmd < 16) ? names[cmd] : "?";
}

/* ---- variable byte integers ---- */

int cymg_mqtt_varint_parse(const void *buf, size_t len, uint32_t *value) {
  const uint8_t *p = buf;
  uint32_t v = 0;
  for (size_t i = 0; i < 4; i++) {
    if (i >= len) return CYMG_EAGAIN;
    v |= (uint32_t)(p[i] & 0x7f) << (7 * i);
    if ((p[i] & 0x80) == 0) {
      *value = v;
      return (int)i + 1;
    }
  }
  return CYMG_EPARSE;
}

size_t cymg_mqtt_varint_encode(uint8_t out[4], uint32_t value) {
  if (value > CYMG_MQTT_MAX_REMAINING) return 0;
  size_t n = 0;
  do {
    uint8_t b = value & 0x7f;
    value >>= 7;
    out[n++] = (uint8_t)(b | (value ? 0x80 : 0));
  } while (value);
  return n;
}

/* ---- properties ---- */

#define W_WILL 1u /* bit 0 of the allowed mask: will properties */
#define B(cmd) (1u << (cmd))
#define ACKS (B(4) | B(5) | B(6) | B(7))
#define ALL_V5 (0xfffeu | W_WILL)
#define PUBW (B(3) | W_WILL)

static const struct {
  uint8_t id, type;
  uint16_t allowed;
} prop_table[] = {
    {0x01, CYMG_MQTT_PROP_TYPE_BYTE, PUBW},
    {0x02, CYMG_MQTT_PROP_TYPE_INT, PUBW},
    {0x03, CYMG_MQTT_PROP_TYPE_STRING, PUBW},
    {0x08, CYMG_MQTT_PROP_TYPE_STRING, PUBW},
    {0x09, CYMG_MQTT_PROP_TYPE_BINARY_DATA, PUBW},
    {0x0B, CYMG_MQTT_PROP_TYPE_VARIABLE_INT, B(3) | B(8)},
    {0x11, CYMG_MQTT_PROP_TYPE_INT, B(1) | B(2) | B(14)},
    {0x12, CYMG_MQTT_PROP_TYPE_STRING, B(2)},
    {0x13, CYMG_MQTT_PROP_TYPE_SHORT, B(2)},
    {0x15, CYMG_MQTT_PROP_TYPE_STRING, B(1) | B(2) | B(15)},
    {0x16, CYMG_MQTT_PROP_TYPE_BINARY_DATA, B(1) | B(2) | B(15)},
    {0x17, CYMG_MQTT_PROP_TYPE_BYTE, B(1)},
    {0x18, CYMG_MQTT_PROP_TYPE_INT, W_WILL},
    {0x19, CYMG_MQTT_PROP_TYPE_BYTE, B(1)},
    {0x1A, CYMG_MQTT_PROP_TYPE_STRING, B(2)},
    {0x1C, CYMG_MQTT_PROP_TYPE_STRING, B(2) | B(14)},
    {0x1F, CYMG_MQTT_PROP_TYPE_STRING, B(2) | ACKS | B(9) | B(11) | B(14) | B(15)},
    {0x21, CYMG_MQTT_PROP_TYPE_SHORT, B(1) | B(2)},
    {0x22, CYMG_MQTT_PROP_TYPE_SHORT, B(1) | B(2)},
    {0x23, CYMG_MQTT_PROP_TYPE_SHORT, B(3)},
    {0x24, CYMG_MQTT_PROP_TYPE_BYTE, B(2)},
    {0x25, CYMG_MQTT_PROP_TYPE_BYTE, B(2)},
    {0x26, CYMG_MQTT_PROP_TYPE_STRING_PAIR, ALL_V5},
    {0x27, CYMG_MQTT_PROP_TYPE_INT, B(1) | B(2)},
    {0x28, CYMG_MQTT_PROP_TYPE_BYTE, B(2)},
    {0x29, CYMG_MQTT_PROP_TYPE_BYTE, B(2)},
    {0x2A, CYMG_MQTT_PROP_TYPE_BYTE, B(2)},
};

static int prop_index(uint8_t id) {
  for (size_t i = 0; i < sizeof(prop_table) / sizeof(prop_table[0]); i++)
    if (prop_table[i].id == id) return (int)i;
  return -1;
}

int cymg_mqtt_prop_type(uint8_t id) {
  int i = prop_index(id);
  return i < 0 ? -1 : prop_table[i].type;
}

/* A bounded reader. */
typedef struct {
  const uint8_t *p;
  size_t len, pos;
} rd;

static bool rd_u8(rd *r, uint8_t *v) {
  if (r->pos + 1 > r->len) return false;
  *v = r->p[r->pos++];
  return true;
}
static bool rd_u16(rd *r, uint16_t *v) {
  if (r->len - r->pos < 2) return false;
  *v = (uint16_t)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
  r->pos += 2;
  return true;
}
static bool rd_u32(rd *r, uint32_t *v) {
  if (r->len - r->pos < 4) return false;
  const uint8_t *q = r->p + r->pos;
  *v = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
  r->pos += 4;
  return true;
}
static bool rd_bin(rd *r, cymg_str *s) {
  uint16_t n;
  if (!rd_u16(r, &n) || r->len - r->pos < n) return false;
  *s = cymg_str_n(r->p + r->pos, n);
  r->pos += n;
  return true;
}
static bool rd_varint(rd *r, uint32_t *v) {
  int n = cymg_mqtt_varint_parse(r->p + r->pos, r->len - r->pos, v);
  if (n < 0) return false;
  r->pos += (size_t)n;
  return true;
}

int cymg_mqtt_next_prop(cymg_str props, size_t *ofs, cymg_mqtt_prop *p) {
  rd r = {(const uint8_t *)props.buf, props.len, *ofs};
  if (r.pos >= r.len) return 0;
  uint32_t id;
  if (!rd_varint(&r, &id) || id > 0x7f) return CYMG_EPARSE; /* all ids fit one byte */
  int i = prop_index((uint8_t)id);
  if (i < 0) return CYMG_EPARSE;
  memset(p, 0, sizeof(*p));
  p->id = (uint8_t)id;
  bool ok = false;
  uint8_t b = 0;
  uint16_t s = 0;
  switch (prop_table[i].type) {
    case CYMG_MQTT_PROP_TYPE_BYTE:
      ok = rd_u8(&r, &b);
      p->iv = b;
      break;
    case CYMG_MQTT_PROP_TYPE_SHORT:
      ok = rd_u16(&r, &s);
      p->iv = s;
      break;
    case CYMG_MQTT_PROP_TYPE_INT: ok = rd_u32(&r, &p->iv); break;
    case CYMG_MQTT_PROP_TYPE_VARIABLE_INT: ok = rd_varint(&r, &p->iv); break;
    case CYMG_MQTT_PROP_TYPE_STRING:
      ok = rd_bin(&r, &p->val) && cymg_mqtt_utf8_valid(p->val);
      break;
    case CYMG_MQTT_PROP_TYPE_BINARY_DATA: ok = rd_bin(&r, &p->val); break;
    default:
      ok = rd_bin(&r, &p->key) && rd_bin(&r, &p->val) && cymg_mqtt_utf8_valid(p->key) &&
           cymg_mqtt_utf8_valid(p->val);
      break;
  }
  if (!ok) return CYMG_EPARSE;
  *ofs = r.pos;
  return 1;
}

/* The per-packet rules for a block: allowed ids, no repeats (but user
 * properties, and subscription ids in PUBLISH), values in range. `where` is
 * the packet type, 0 for will properties. */
static int check_props(cymg_str props, unsigned where, cymg_mqtt_err *e) {
  size_t ofs = 0;
  uint64_t seen = 0;
  cymg_mqtt_prop p;
  int rc;
  while ((rc = cymg_mqtt_next_prop(props, &ofs, &p)) == 1) {
    int i = prop_index(p.id);
    if ((prop_table[i].allowed & (where ? B(where) : W_WILL)) == 0) {
      e->why = "property not allowed in this packet";
      return CYMG_EPROTO;
    }
    bool repeatable = p.id == 0x26 || (p.id == 0x0B && where == CYMG_MQTT_CMD_PUBLISH);
    if (!repeatable && (seen >> p.id & 1)) {
      e->why = "property included twice";
      return CYMG_EPROTO;
    }
    seen |= (uint64_t)1 << p.id;
    bool bad = false;
    switch (p.id) {
      case 0x01:
      case 0x17:
      case 0x19:
      case 0x24:
      case 0x25:
      case 0x28:
      case 0x29:
      case 0x2A: bad = p.iv > 1; break;
      case 0x0B: bad = p.iv == 0; break;
      case 0x21:
      case 0x23:
      case 0x27: bad = p.iv == 0; break;
      case 0x08: bad = !cymg_mqtt_topic_valid(p.val); break;
      default: break;
    }
    if (bad) {
      e->why = "property value out of range";
      return CYMG_EPROTO;
    }
  }
  if (rc < 0) {
    e->reason = CYMG_MQTT_RC_MALFORMED;
    e->why = "malformed property";
    return CYMG_EPARSE;
  }
  return 0;
}

static bool rd_props(rd *r, cymg_str *out) {
  uint32_t n;
  if (!rd_varint(r, &n) || r->len - r->pos < n) return false;
  *out = cymg_str_n(r->p + r->pos, n);
  r->pos += n;
  return true;
}

/* ---- parsing ---- */

#define FAIL(code, rsn, text) \
  do {                        \
    e->reason = (rsn);        \
    e->why = (text);          \
    return (code);            \
  } while (0)
#define MALFORMED(text) FAIL(CYMG_EPARSE, CYMG_MQTT_RC_MALFORMED, text)
#define PROTO(text) FAIL(CYMG_EPROTO, CYMG_MQTT_RC_PROTOCOL_ERROR, text)

/* Reads a v5 property block at r and checks it for packet `where`. */
static int props_at(rd *r, unsigned where, cymg_str *out, cymg_mqtt_err *e) {
  if (!rd_props(r, out)) MALFORMED("property length beyond the packet");
  int rc = check_props(*out, where, e);
  if (rc == CYMG_EPROTO) e->reason = CYMG_MQTT_RC_PROTOCOL_ERROR;
  return rc;
}

static int parse_connect(rd *r, cymg_mqtt_msg *m, cymg_mqtt_err *e) {
  cymg_str name;
  uint8_t level, flags;
  uint16_t ka;
  if (!rd_bin(r, &name)) MALFORMED("truncated CONNECT");
  if (name.len != 4 || memcmp(name.buf, "MQTT", 4) != 0)
    FAIL(CYMG_EPROTO, CYMG_MQTT_RC_UNSUPPORTED_VERSION, "protocol name is not MQTT");
  if (!rd_u8(r, &level) || !rd_u8(r, &flags) || !rd_u16(r, &ka)) MALFORMED("truncated CONNECT");
  if (level != CYMG_MQTT_V311 && level != CYMG_MQTT_V5)
    FAIL(CYMG_EPROTO, CYMG_MQTT_RC_UNSUPPORTED_VERSION, "unsupported protocol level");
  m->version = level;
  if (flags & 1) MALFORMED("CONNECT reserved flag set");
  m->connect.clean = (flags & 0x02) != 0;
  m->connect.has_will = (flags & 0x04) != 0;
  m->connect.will_qos = (flags >> 3) & 3;
  m->connect.will_retain = (flags & 0x20) != 0;
  m->connect.has_password = (flags & 0x40) != 0;
  m->connect.has_username = (flags & 0x80) != 0;
  m->connect.keepalive = ka;
  if (m->connect.will_qos == 3) MALFORMED("will QoS 3");
  if (!m->connect.has_will && (m->connect.will_qos || m->connect.will_retain))
    MALFORMED("will QoS or retain without a will");
  if (level == CYMG_MQTT_V311 && m->connect.has_password && !m->connect.has_username)
    MALFORMED("password without a user name");
  int rc;
  if (level == CYMG_MQTT_V5 && (rc = props_at(r, CYMG_MQTT_CMD_CONNECT, &m->props, e)) < 0)
    return rc;
  if (!rd_bin(r, &m->connect.client_id)) MALFORMED("truncated client id");
  if (!cymg_mqtt_utf8_valid(m->connect.client_id)) MALFORMED("client id is not valid UTF-8");
  if (m->connect.has_will) {
    if (level == CYMG_MQTT_V5 && (rc = props_at(r, 0, &m->connect.will_props, e)) < 0) return rc;
    if (!rd_bin(r, &m->connect.will_topic) || !rd_bin(r, &m->connect.will_payload))
      MALFORMED("truncated will");
    if (!cymg_mqtt_utf8_valid(m->connect.will_topic)) MALFORMED("will topic is not valid UTF-8");
    if (!cymg_mqtt_topic_valid(m->connect.will_topic))
      FAIL(CYMG_EPROTO, CYMG_MQTT_RC_TOPIC_NAME_INVALID, "invalid will topic");
  }
  if (m->connect.has_username) {
    if (!rd_bin(r, &m->connect.username)) MALFORMED("truncated user name");
    if (!cymg_mqtt_utf8_valid(m->connect.username)) MALFORMED("user name is not valid UTF-8");
  }
  if (m->connect.has_password && !rd_bin(r, &m->connect.password)) MALFORMED("truncated password");
  if (r->pos != r->len) MALFORMED("bytes after the CONNECT payload");
  return 0;
}

static int parse_publish(rd *r, uint8_t flags, int version, cymg_mqtt_msg *m, cymg_mqtt_err *e) {
  m->dup = (flags & 8) != 0;
  m->qos = (flags >> 1) & 3;
  m->retain = (flags & 1) != 0;
  if (m->qos == 3) MALFORMED("PUBLISH with QoS 3");
  if (!rd_bin(r, &m->topic)) MALFORMED("truncated topic");
  if (!cymg_mqtt_utf8_valid(m->topic)) MALFORMED("topic is not valid UTF-8");
  if (m->qos > 0) {
    if (!rd_u16(r, &m->id)) MALFORMED("truncated packet id");
    if (m->id == 0) MALFORMED("packet id 0");
  }
  int rc;
  if (version == CYMG_MQTT_V5 && (rc = props_at(r, CYMG_MQTT_CMD_PUBLISH, &m->props, e)) < 0)
    return rc;
  /* 5.0 allows an empty topic when a topic alias stands for it. */
  bool alias_only = m->topic.len == 0 && version == CYMG_MQTT_V5 && m->props.len > 0;
  if (!alias_only && !cymg_mqtt_topic_valid(m->topic))
    FAIL(CYMG_EPROTO, CYMG_MQTT_RC_TOPIC_NAME_INVALID,
         m->topic.len ? "wildcard in a PUBLISH topic" : "empty PUBLISH topic");
  m->data = cymg_str_n(r->p + r->pos, r->len - r->pos);
  return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP, and the reason code + properties tail of
 * DISCONNECT and AUTH (no packet id). */
static int parse_reason_tail(rd *r, int version, unsigned cmd, cymg_mqtt_msg *m, cymg_mqtt_err *e) {
  if (r->pos == r->len) return 0;
  if (version != CYMG_MQTT_V5) MALFORMED("bytes after the packet id");
  if (!rd_u8(r, &m->ack)) MALFORMED("truncated reason code");
  if (r->pos == r->len) return 0;
  int rc = props_at(r, cmd, &m->props, e);
  if (rc < 0) return rc;
  if (r->pos != r->len) MALFORMED("bytes after the properties");
  return 0;
}

static int parse_filters(rd *r, int version, bool sub, cymg_mqtt_msg *m, cymg_mqtt_err *e) {
  m->filters = cymg_str_n(r->p + r->pos, r->len - r->pos);
  if (m->filters.len == 0) PROTO("no topic filter");
  size_t ofs = 0;
  cymg_str f;
  uint8_t opts;
  int rc, n = 0;
  while ((rc = cymg_mqtt_next_filter(m, &ofs, &f, &opts)) == 1) {
    if (!cymg_mqtt_utf8_valid(f)) MALFORMED("topic filter is not valid UTF-8");
    if (!cymg_mqtt_filter_valid(f)) PROTO("invalid topic filter");
    if (sub) {
      uint8_t reserved = version == CYMG_MQTT_V5 ? 0xc0 : 0xfc;
      if ((opts & reserved) || (opts & 3) == 3 || ((opts >> 4) & 3) == 3)
        MALFORMED("bad subscription options");
    }
    if (n++ == 0) {
      m->topic = f;
      m->qos = opts & 3;
    }
  }
  if (rc < 0) MALFORMED("truncated topic filter");
  return 0;
}

int cymg_mqtt_next_filter(const cymg_mqtt_msg *m, size_t *ofs, cymg_str *filter, uint8_t *opts) {
  rd r = {(const uint8_t *)m->filters.buf, m->filters.len, *ofs};
  if (r.pos >= r.len) return 0;
  if (!rd_bin(&r, filter)) return CYMG_EPARSE;
  *opts = 0;
  if (m->cmd == CYMG_MQTT_CMD_SUBSCRIBE && !rd_u8(&r, opts)) return CYMG_EPARSE;
  *ofs = r.pos;
  return 1;
}

static int parse_body(rd *r, uint8_t flags, int version, cymg_mqtt_msg *m, cymg_mqtt_err *e) {
  int rc;
  unsigned cmd = m->cmd;
  bool v5 = version == CYMG_MQTT_V5;
  switch (cmd) {
    case CYMG_MQTT_CMD_CONNECT: return parse_connect(r, m, e);
    case CYMG_MQTT_CMD_PUBLISH: return parse_publish(r, flags, version, m, e);
    case CYMG_MQTT_CMD_CONNACK: {
      uint8_t af;
      if (!rd_u8(r, &af) || !rd_u8(r, &m->ack)) MALFORMED("truncated CONNACK");
      if (af & 0xfe) MALFORMED("CONNACK reserved flags set");
      m->session_present = af & 1;
      if (v5 && (rc = props_at(r, cmd, &m->props, e)) < 0) return rc;
      break;
    }
    case CYMG_MQTT_CMD_PUBACK:
    case CYMG_MQTT_CMD_PUBREC:
    case CYMG_MQTT_CMD_PUBREL:
    case CYMG_MQTT_CMD_PUBCOMP:
      if (!rd_u16(r, &m->id)) MALFORMED("truncated packet id");
      if (m->id == 0) MALFORMED("packet id 0");
      return parse_reason_tail(r, version, cmd, m, e);
    case CYMG_MQTT_CMD_SUBSCRIBE:
    case CYMG_MQTT_CMD_UNSUBSCRIBE:
      if (!rd_u16(r, &m->id)) MALFORMED("truncated packet id");
      if (m->id == 0) MALFORMED("packet id 0");
      if (v5 && (rc = props_at(r, cmd, &m->props, e)) < 0) return rc;
      return parse_filters(r, version, cmd == CYMG_MQTT_CMD_SUBSCRIBE, m, e);
    case CYMG_MQTT_CMD_SUBACK:
    case CYMG_MQTT_CMD_UNSUBACK:
      if (!rd_u16(r, &m->id)) MALFORMED("truncated packet id");
      if (v5 && (rc = props_at(r, cmd, &m->props, e)) < 0) return rc;
      m->data = cymg_str_n(r->p + r->pos, r->len - r->pos);
      r->pos = r->len;
      if (cmd == CYMG_MQTT_CMD_SUBACK && m->data.len == 0) PROTO("SUBACK without codes");
      if (cmd == CYMG_MQTT_CMD_UNSUBACK && !v5 && m->data.len) MALFORMED("bytes after UNSUBACK id");
      break;
    case CYMG_MQTT_CMD_PINGREQ:
    case CYMG_MQTT_CMD_PINGRESP: break;
    case CYMG_MQTT_CMD_DISCONNECT:
    case CYMG_MQTT_CMD_AUTH:
      if (cmd == CYMG_MQTT_CMD_AUTH && !v5) MALFORMED("reserved packet type 15");
      return parse_reason_tail(r, version, cmd, m, e);
    default: MALFORMED("reserved packet type 0");
  }
  if (r->pos != r->len) MALFORMED("bytes after the packet");
  return 0;
}

int cymg_mqtt_parse(const void *buf, size_t len, int version, size_t max_size, cymg_mqtt_msg *m,
                    cymg_mqtt_err *err) {
  cymg_mqtt_err dummy;
  cymg_mqtt_err *e = err ? err : &dummy;
  const uint8_t *p = buf;
  memset(m, 0, sizeof(*m));
  e->reason = 0;
  e->why = "";
  if (len < 2) return CYMG_EAGAIN;
  uint32_t rem;
  int n = cymg_mqtt_varint_parse(p + 1, len - 1, &rem);
  if (n == CYMG_EAGAIN) return CYMG_EAGAIN;
  if (n < 0) MALFORMED("remaining length longer than 4 bytes");
  size_t total = 1 + (size_t)n + rem;
  if (max_size && total > max_size)
    FAIL(CYMG_ELIMIT, CYMG_MQTT_RC_PACKET_TOO_LARGE, "packet larger than the maximum");
  if (len < total) return CYMG_EAGAIN;
  m->cmd = p[0] >> 4;
  m->version = (uint8_t)(version == CYMG_MQTT_V5 ? CYMG_MQTT_V5 : CYMG_MQTT_V311);
  m->dgram = cymg_str_n(p, total);
  uint8_t flags = p[0] & 0x0f;
  unsigned cmd = m->cmd;
  uint8_t want = (cmd == CYMG_MQTT_CMD_PUBREL || cmd == CYMG_MQTT_CMD_SUBSCRIBE ||
                  cmd == CYMG_MQTT_CMD_UNSUBSCRIBE)
                     ? 2
                     : 0;
  if (cmd != CYMG_MQTT_CMD_PUBLISH && flags != want) MALFORMED("bad fixed header flags");
  rd r = {p + 1 + n, rem, 0};
  int rc = parse_body(&r, flags, m->version, m, e);
  return rc < 0 ? rc : (int)total;
}

/* ---- encoding ---- */

/* A writer that counts when it runs past cap and writes nothing beyond. */
typedef struct {
  uint8_t *out;
  size_t cap, len;
} wr;

static void put(wr *w, const void *p, size_t n) {
  if (w->out && w->len + n <= w->cap && n) memcpy(w->out + w->len, p, n);
  w->len += n;
}
static void put_u8(wr *w, uint8_t v) {
  put(w, &v, 1);
}
static void put_u16(wr *w, uint16_t v) {
  uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  put(w, b, 2);
}
static void put_u32(wr *w, uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  put(w, b, 4);
}
static void put_varint(wr *w, uint32_t v) {
  uint8_t b[4];
  put(w, b, cymg_mqtt_varint_encode(b, v));
}
static void put_bin(wr *w, cymg_str s) {
  put_u16(w, (uint16_t)s.len);
  put(w, s.buf, s.len);
}

int cymg_mqtt_props_encode(const cymg_mqtt_prop *props, size_t n, void *out, size_t cap) {
  wr w = {out, cap, 0};
  for (size_t i = 0; i < n; i++) {
    const cymg_mqtt_prop *p = &props[i];
    int t = cymg_mqtt_prop_type(p->id);
    put_u8(&w, p->id);
    switch (t) {
      case CYMG_MQTT_PROP_TYPE_BYTE:
        if (p->iv > 0xff) return CYMG_EINVAL;
        put_u8(&w, (uint8_t)p->iv);
        break;
      case CYMG_MQTT_PROP_TYPE_SHORT:
        if (p->iv > 0xffff) return CYMG_EINVAL;
        put_u16(&w, (uint16_t)p->iv);
        break;
      case CYMG_MQTT_PROP_TYPE_INT: put_u32(&w, p->iv); break;
      case CYMG_MQTT_PROP_TYPE_VARIABLE_INT:
        if (p->iv > CYMG_MQTT_MAX_REMAINING) return CYMG_EINVAL;
        put_varint(&w, p->iv);
        break;
      case CYMG_MQTT_PROP_TYPE_STRING:
      case CYMG_MQTT_PROP_TYPE_BINARY_DATA:
        if (p->val.len > 65535) return CYMG_EINVAL;
        if (t == CYMG_MQTT_PROP_TYPE_STRING && !cymg_mqtt_utf8_valid(p->val)) return CYMG_EINVAL;
        put_bin(&w, p->val);
        break;
      case CYMG_MQTT_PROP_TYPE_STRING_PAIR:
        if (!cymg_mqtt_utf8_valid(p->key) || !cymg_mqtt_utf8_valid(p->val)) return CYMG_EINVAL;
        put_bin(&w, p->key);
        put_bin(&w, p->val);
        break;
      default: return CYMG_EINVAL;
    }
    if (w.len > CYMG_MQTT_MAX_REMAINING) return CYMG_EINVAL;
  }
  return (int)w.len;
}

int cymg_mqtt_filter_encode(cymg_str filter, int opts, void *out, size_t cap, size_t len) {
  if (!cymg_mqtt_filter_valid(filter) || opts > 0xff) return CYMG_EINVAL;
  wr w = {out, cap, len};
  put_bin(&w, filter);
  if (opts >= 0) put_u8(&w, (uint8_t)opts);
  return w.len > (size_t)CYMG_MQTT_MAX_REMAINING ? CYMG_EINVAL : (int)w.len;
}

static bool props_ok(cymg_str props, unsigned where) {
  cymg_mqtt_err e;
  return check_props(props, where, &e) == 0 && props.len <= CYMG_MQTT_MAX_REMAINING;
}

static void put_props(wr *w, cymg_str props) {
  put_varint(w, (uint32_t)props.len);
  put(w, props.buf, props.len);
}

static bool str_ok(cymg_str s) {
  return s.len <= 65535;
}

/* The variable header and payload of m; false when m breaks a rule. */
static bool encode_body(wr *w, const cymg_mqtt_msg *m, bool v5, uint8_t *flags) {
  unsigned cmd = m->cmd;
  const struct cymg_mqtt_connect_fields *cn = &m->connect;
  *flags = 0;
  if (!v5 && m->props.len) return false;
  if (m->props.len && !props_ok(m->props, cmd)) return false;
  switch (cmd) {
    case CYMG_MQTT_CMD_CONNECT: {
      if (!cymg_mqtt_utf8_valid(cn->client_id) || cn->will_qos > 2) return false;
      if (cn->has_will && (!cymg_mqtt_topic_valid(cn->will_topic) || !str_ok(cn->will_payload)))
        return false;
      if (!cn->has_will && (cn->will_qos || cn->will_retain)) return false;
      if (cn->has_username && !cymg_mqtt_utf8_valid(cn->username)) return false;
      if (!str_ok(cn->password) || (!v5 && cn->has_password && !cn->has_username)) return false;
      if (cn->will_props.len && (!v5 || !props_ok(cn->will_props, 0))) return false;
      put_bin(w, cymg_str_n("MQTT", 4));
      put_u8(w, v5 ? CYMG_MQTT_V5 : CYMG_MQTT_V311);
      put_u8(w, (uint8_t)((cn->has_username ? 0x80 : 0) | (cn->has_password ? 0x40 : 0) |
                          (cn->will_retain ? 0x20 : 0) | (cn->will_qos << 3) |
                          (cn->has_will ? 0x04 : 0) | (cn->clean ? 0x02 : 0)));
      put_u16(w, cn->keepalive);
      if (v5) put_props(w, m->props);
      put_bin(w, cn->client_id);
      if (cn->has_will) {
        if (v5) put_props(w, cn->will_props);
        put_bin(w, cn->will_topic);
        put_bin(w, cn->will_payload);
      }
      if (cn->has_username) put_bin(w, cn->username);
      if (cn->has_password) put_bin(w, cn->password);
      return true;
    }
    case CYMG_MQTT_CMD_CONNACK:
      put_u8(w, m->session_present ? 1 : 0);
      put_u8(w, m->ack);
      if (v5) put_props(w, m->props);
      return true;
    case CYMG_MQTT_CMD_PUBLISH: {
      bool alias_only = v5 && m->topic.len == 0 && m->props.len;
      if (m->qos > 2 || (m->qos && m->id == 0)) return false;
      if (!alias_only && !cymg_mqtt_topic_valid(m->topic)) return false;
      *flags = (uint8_t)((m->dup ? 8 : 0) | m->qos << 1 | (m->retain ? 1 : 0));
      put_bin(w, m->topic);
      if (m->qos) put_u16(w, m->id);
      if (v5) put_props(w, m->props);
      put(w, m->data.buf, m->data.len);
      return true;
    }
    case CYMG_MQTT_CMD_PUBACK:
    case CYMG_MQTT_CMD_PUBREC:
    case CYMG_MQTT_CMD_PUBREL:
    case CYMG_MQTT_CMD_PUBCOMP:
      if (m->id == 0) return false;
      if (cmd == CYMG_MQTT_CMD_PUBREL) *flags = 2;
      put_u16(w, m->id);
      if (v5 && (m->ack || m->props.len)) {
        put_u8(w, m->ack);
        if (m->props.len) put_props(w, m->props);
      }
      return true;
    case CYMG_MQTT_CMD_SUBSCRIBE:
    case CYMG_MQTT_CMD_UNSUBSCRIBE: {
      if (m->id == 0 || m->filters.len == 0) return false;
      *flags = 2;
      size_t ofs = 0;
      cymg_str f;
      uint8_t o;
      int rc;
      uint8_t reserved = v5 ? 0xc0 : 0xfc;
      while ((rc = cymg_mqtt_next_filter(m, &ofs, &f, &o)) == 1)
        if (!cymg_mqtt_filter_valid(f) || (o & reserved) || (o & 3) == 3 || (o >> 4 & 3) == 3)
          return false;
      if (rc < 0) return false;
      put_u16(w, m->id);
      if (v5) put_props(w, m->props);
      put(w, m->filters.buf, m->filters.len);
      return true;
    }
    case CYMG_MQTT_CMD_SUBACK:
    case CYMG_MQTT_CMD_UNSUBACK:
      if (cmd == CYMG_MQTT_CMD_SUBACK && m->data.len == 0) return false;
      put_u16(w, m->id);
      if (v5) put_props(w, m->props);
      if (v5 || cmd == CYMG_MQTT_CMD_SUBACK) put(w, m->data.buf, m->data.len);
      return true;
    case CYMG_MQTT_CMD_PINGREQ:
    case CYMG_MQTT_CMD_PINGRESP: return true;
    case CYMG_MQTT_CMD_DISCONNECT:
    case CYMG_MQTT_CMD_AUTH:
      if (cmd == CYMG_MQTT_CMD_AUTH && !v5) return false;
      if (v5 && (m->ack || m->props.len)) {
        put_u8(w, m->ack);
        if (m->props.len) put_props(w, m->props);
      }
      return true;
    default: return false;
  }
}

int cymg_mqtt_encode(const cymg_mqtt_msg *m, int version, void *out, size_t cap) {
  bool v5 = version == CYMG_MQTT_V5;
  uint8_t flags;
  wr count = {NULL, 0, 0};
  if (!encode_body(&count, m, v5, &flags) || count.len > CYMG_MQTT_MAX_REMAINING)
    return CYMG_EINVAL;
  wr w = {out, cap, 0};
  put_u8(&w, (uint8_t)(m->cmd << 4 | flags));
  put_varint(&w, (uint32_t)count.len);
  if (w.len + count.len > (size_t)0x7fffffff) return CYMG_EINVAL;
  if (w.len + count.len <= cap) {
    wr body = {w.out + w.len, cap - w.len, 0};
    if (!encode_body(&body, m, v5, &flags)) return CYMG_EINVAL; /* passed above */
  }
  return (int)(w.len + count.len);
}
