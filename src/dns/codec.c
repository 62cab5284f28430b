/* DNS message codec (RFC 1035 section 4): queries out, answers in. Sans-I/O:
 * the resolver and the fuzzer feed it bytes. Every read is checked against the
 * message length; compression pointers must point strictly backwards, which
 * makes loops impossible and bounds the work by the message size. */
#include <string.h>
#include <strings.h>

#include "cymg/dns.h"
#include "cymg/error.h"

#define HDR_LEN 12
#define MAX_RRS 64 /* records looked at per section; more is not an answer we need */

static uint16_t rd16(const uint8_t *p) { return (uint16_t) ((p[0] << 8) | p[1]); }
static uint32_t rd32(const uint8_t *p) {
  return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

int cymg_dns_build_query(uint8_t *buf, size_t buf_len, uint16_t id, const char *name,
                         uint16_t qtype) {
  if (buf == NULL || name == NULL) return CYMG_EINVAL;
  size_t nlen = strlen(name);
  if (nlen > 0 && name[nlen - 1] == '.') nlen--;
  if (nlen == 0 || nlen > 253) return CYMG_EINVAL;
  size_t need = HDR_LEN + nlen + 2 + 4;
  if (buf_len < need) return CYMG_ENOSPC;
  memset(buf, 0, HDR_LEN);
  buf[0] = (uint8_t) (id >> 8);
  buf[1] = (uint8_t) id;
  buf[2] = 0x01; /* RD: recursion desired */
  buf[5] = 1;    /* QDCOUNT */
  size_t o = HDR_LEN, start = 0;
  for (size_t i = 0; i <= nlen; i++) {
    if (i == nlen || name[i] == '.') {
      size_t ll = i - start;
      if (ll == 0 || ll > 63) return CYMG_EINVAL;
      buf[o++] = (uint8_t) ll;
      memcpy(buf + o, name + start, ll);
      o += ll;
      start = i + 1;
    }
  }
  buf[o++] = 0;
  buf[o++] = (uint8_t) (qtype >> 8);
  buf[o++] = (uint8_t) qtype;
  buf[o++] = 0;
  buf[o++] = 1; /* class IN */
  return (int) o;
}

int cymg_dns_decode_name(const uint8_t *msg, size_t len, size_t ofs, char *dst,
                         size_t dst_len) {
  if (msg == NULL || dst == NULL || dst_len == 0) return CYMG_EINVAL;
  size_t pos = ofs, used = 0, octets = 0;
  int consumed = -1; /* set at the first pointer: the bytes the name takes at ofs */
  size_t floor = ofs; /* a pointer must go below where the current run started */
  for (;;) {
    if (pos >= len) return CYMG_EPARSE;
    uint8_t l = msg[pos];
    if ((l & 0xC0) == 0xC0) {
      if (pos + 1 >= len) return CYMG_EPARSE;
      size_t target = (size_t) (((l & 0x3F) << 8) | msg[pos + 1]);
      if (target >= floor) return CYMG_EPARSE; /* forward or self: a loop could form */
      if (consumed < 0) consumed = (int) (pos + 2 - ofs);
      floor = target;
      pos = target;
      continue;
    }
    if (l & 0xC0) return CYMG_EPARSE; /* 0x40 / 0x80: reserved label types */
    if (l == 0) {
      if (consumed < 0) consumed = (int) (pos + 1 - ofs);
      break;
    }
    if (pos + 1 + l > len) return CYMG_EPARSE;
    octets += (size_t) l + 1;
    if (octets > 255) return CYMG_EPARSE;
    if (used + (used ? 1 : 0) + l + 1 > dst_len) return CYMG_ENOSPC;
    if (used) dst[used++] = '.';
    memcpy(dst + used, msg + pos + 1, l);
    used += l;
    pos += (size_t) l + 1;
  }
  dst[used] = '\0';
  return consumed;
}

/* Skips a name without decoding it (bounds-checked, stops at the first pointer). */
static int skip_name(const uint8_t *msg, size_t len, size_t ofs) {
  size_t pos = ofs;
  for (;;) {
    if (pos >= len) return CYMG_EPARSE;
    uint8_t l = msg[pos];
    if ((l & 0xC0) == 0xC0) return pos + 2 <= len ? (int) (pos + 2 - ofs) : CYMG_EPARSE;
    if (l & 0xC0) return CYMG_EPARSE;
    if (l == 0) return (int) (pos + 1 - ofs);
    pos += (size_t) l + 1;
    if (pos - ofs > 255) return CYMG_EPARSE;
  }
}

typedef struct {
  size_t name_ofs, rdata_ofs;
  uint16_t type, rdlen;
  uint32_t ttl;
} rr_ref;

/* Reads count records from *pos; keeps up to MAX_RRS of class IN in refs. */
static int read_rrs(const uint8_t *msg, size_t len, size_t *pos, unsigned count, rr_ref *refs,
                    size_t *nrefs) {
  char owner[CYMG_DNS_NAME_MAX];
  for (unsigned i = 0; i < count; i++) {
    /* Decoded, not just skipped: an owner name that loops or leaves the
     * message makes the whole answer malformed. */
    int n = cymg_dns_decode_name(msg, len, *pos, owner, sizeof(owner));
    if (n < 0) return n;
    size_t p = *pos + (size_t) n;
    if (p + 10 > len) return CYMG_EPARSE;
    rr_ref r = {*pos, p + 10, rd16(msg + p), rd16(msg + p + 8), rd32(msg + p + 4)};
    uint16_t cls = rd16(msg + p + 2);
    if (r.rdata_ofs + r.rdlen > len) return CYMG_EPARSE;
    if (r.ttl > 0x7FFFFFFFu) r.ttl = 0; /* RFC 2181 8: top bit set means zero */
    if (cls == 1 && refs && *nrefs < MAX_RRS) refs[(*nrefs)++] = r;
    *pos = r.rdata_ofs + r.rdlen;
  }
  return 0;
}

static bool owned_by(const uint8_t *msg, size_t len, const rr_ref *r, const char *name) {
  char owner[CYMG_DNS_NAME_MAX];
  return cymg_dns_decode_name(msg, len, r->name_ofs, owner, sizeof(owner)) >= 0 &&
         strcasecmp(owner, name) == 0;
}

int cymg_dns_parse_answer(const uint8_t *msg, size_t len, cymg_dns_answer *out) {
  if (msg == NULL || out == NULL) return CYMG_EINVAL;
  memset(out, 0, sizeof(*out));
  if (len < HDR_LEN) return CYMG_EPARSE;
  if (!(msg[2] & 0x80)) return CYMG_EPARSE; /* QR clear: a query, not a response */
  out->id = rd16(msg);
  out->tc = (msg[2] & 0x02) != 0;
  out->rcode = msg[3] & 0x0F;
  unsigned qd = rd16(msg + 4), an = rd16(msg + 6), ns = rd16(msg + 8);
  if (qd != 1) return CYMG_EPARSE;
  int n = cymg_dns_decode_name(msg, len, HDR_LEN, out->qname, sizeof(out->qname));
  if (n < 0) return CYMG_EPARSE;
  size_t pos = HDR_LEN + (size_t) n;
  if (pos + 4 > len) return CYMG_EPARSE;
  out->qtype = rd16(msg + pos);
  if (rd16(msg + pos + 2) != 1) return CYMG_EPARSE;
  pos += 4;
  if (out->tc) { /* the rest may be cut anywhere: the caller retries over TCP */
    memcpy(out->canon, out->qname, sizeof(out->canon));
    return (int) len;
  }
  rr_ref ans[MAX_RRS], auth[MAX_RRS];
  size_t nans = 0, nauth = 0;
  if (read_rrs(msg, len, &pos, an, ans, &nans) < 0) return CYMG_EPARSE;
  if (read_rrs(msg, len, &pos, ns, auth, &nauth) < 0) return CYMG_EPARSE;
  /* The additional section is not needed and not checked: trailing bytes are
   * reported through the return value only. */
  size_t consumed = rd16(msg + 10) == 0 ? pos : len;

  /* Follow the chain from the question's name; records may come in any order. */
  memcpy(out->canon, out->qname, sizeof(out->canon));
  for (bool moved = true; moved && out->ncnames < CYMG_DNS_MAX_CNAMES;) {
    moved = false;
    for (size_t i = 0; i < nans; i++) {
      if (ans[i].type != CYMG_DNS_CNAME || !owned_by(msg, len, &ans[i], out->canon)) continue;
      char *dst = out->cnames[out->ncnames];
      if (cymg_dns_decode_name(msg, ans[i].rdata_ofs + ans[i].rdlen, ans[i].rdata_ofs, dst,
                               CYMG_DNS_NAME_MAX) < 0)
        return CYMG_EPARSE;
      out->cname_ttls[out->ncnames++] = ans[i].ttl;
      memcpy(out->canon, dst, sizeof(out->canon));
      moved = true;
      break;
    }
  }
  for (size_t i = 0; i < nans && out->naddrs < CYMG_DNS_MAX_ADDRS; i++) {
    const rr_ref *r = &ans[i];
    if (r->type != out->qtype || !owned_by(msg, len, r, out->canon)) continue;
    cymg_addr *a = &out->addrs[out->naddrs];
    memset(a, 0, sizeof(*a));
    if (r->type == CYMG_DNS_A && r->rdlen == 4) {
      memcpy(a->ip, msg + r->rdata_ofs, 4);
    } else if (r->type == CYMG_DNS_AAAA && r->rdlen == 16) {
      memcpy(a->ip, msg + r->rdata_ofs, 16);
      a->is_ip6 = true;
    } else {
      return CYMG_EPARSE;
    }
    out->ttls[out->naddrs++] = r->ttl;
  }
  for (size_t i = 0; i < nauth; i++) {
    const rr_ref *r = &auth[i];
    if (r->type != CYMG_DNS_SOA) continue;
    /* MNAME and RNAME, then five 32-bit numbers; MINIMUM is the last. */
    size_t end = r->rdata_ofs + r->rdlen, p = r->rdata_ofs;
    for (int k = 0; k < 2; k++) {
      int m = skip_name(msg, end, p);
      if (m < 0) return CYMG_EPARSE;
      p += (size_t) m;
    }
    if (p + 20 > end) return CYMG_EPARSE;
    uint32_t minimum = rd32(msg + p + 16);
    out->neg_ttl = minimum < r->ttl ? minimum : r->ttl;
    out->has_soa = true;
    break;
  }
  return (int) consumed;
}
