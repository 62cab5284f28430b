/* permessage-deflate (RFC 7692): negotiation of the extension's parameters and
 * the zlib streams that compress and decompress messages. zlib appears in this
 * file only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "ws/ws_internal.h"

struct cymg__wsz {
  z_stream def, inf;
  bool def_ready, inf_ready;
  bool def_reset, inf_reset; /* no context takeover: start afresh per message */
};

static const uint8_t tail4[4] = {0x00, 0x00, 0xff, 0xff};

int cymg__wsz_new(cymg__wsz **out, const cymg__ws_pmd *p, bool is_server) {
  *out = NULL;
  cymg__wsz *z = calloc(1, sizeof(*z));
  if (z == NULL) return CYMG_ENOMEM;
  int bits = is_server ? p->server_bits : p->client_bits;
  if (bits == 0) bits = 15;
  /* zlib refuses a raw deflate window of 8 bits (256 bytes) and would use 512
   * anyway; a zlib-based peer inflates that fine (docs/websocket.md). */
  if (bits < 9) bits = 9;
  z->def_reset = is_server ? p->server_no_ctx : p->client_no_ctx;
  z->inf_reset = is_server ? p->client_no_ctx : p->server_no_ctx;
  /* Negative windowBits: raw deflate, no zlib header or checksum (§7.2.1). */
  int rc = deflateInit2(&z->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY);
  z->def_ready = rc == Z_OK;
  /* The peer's window is at most 15 bits whatever was agreed, so inflating
   * with 15 accepts all it may send. */
  if (rc == Z_OK) rc = inflateInit2(&z->inf, -15);
  z->inf_ready = rc == Z_OK;
  if (rc != Z_OK) {
    cymg__wsz_free(z);
    return rc == Z_MEM_ERROR ? CYMG_ENOMEM : CYMG_EINVAL;
  }
  *out = z;
  return 0;
}

void cymg__wsz_free(cymg__wsz *z) {
  if (z == NULL) return;
  if (z->def_ready) deflateEnd(&z->def);
  if (z->inf_ready) inflateEnd(&z->inf);
  free(z);
}

int cymg__wsz_compress(cymg__wsz *z, const void *in, size_t n, bool fin, cymg_buf *out) {
  size_t start = out->len;
  z->def.next_in = (Bytef *) (uintptr_t) in;
  /* avail_in is a uInt: feed huge inputs in pieces. */
  size_t left = n;
  for (;;) {
    uInt piece = left > (1u << 30) ? (1u << 30) : (uInt) left;
    z->def.avail_in = piece;
    left -= piece;
    do {
      size_t room = deflateBound(&z->def, z->def.avail_in) + 16;
      if (cymg_buf_reserve(out, room) < 0) {
        out->len = start;
        return CYMG_ENOMEM;
      }
      z->def.next_out = (Bytef *) out->buf + out->len;
      z->def.avail_out = (uInt) room;
      deflate(&z->def, left ? Z_NO_FLUSH : Z_SYNC_FLUSH);
      out->len += room - z->def.avail_out;
    } while (z->def.avail_out == 0 || z->def.avail_in > 0);
    if (left == 0) break;
  }
  if (fin) {
    /* A sync flush always ends with an empty stored block, 00 00 FF FF, which
     * the receiver adds back. */
    if (out->len - start >= 4 && memcmp(out->buf + out->len - 4, tail4, 4) == 0) {
      out->len -= 4;
    } else if (out->len == start) {
      /* Nothing new since the last fragment's flush (an empty last piece):
       * the message must still end in the opening byte of an empty stored
       * block for the receiver's 00 00 FF FF to complete (§7.2.3.6). */
      if (cymg_buf_append(out, "", 1) < 0) return CYMG_ENOMEM;
    }
    if (z->def_reset) deflateReset(&z->def);
  }
  if (out->buf) out->buf[out->len] = '\0';
  return 0;
}

/* Inflates the avail_in bytes set in z->inf into out, stopping one byte past
 * max_out: a bomb costs at most the limit in memory. */
static int inflate_into(cymg__wsz *z, uint64_t max_out, size_t start, cymg_buf *out) {
  for (;;) {
    uint64_t produced = out->len - start;
    if (produced > max_out) return CYMG_ELIMIT;
    uint64_t cap = max_out - produced + 1;
    size_t room = cap < 65536 ? (size_t) cap : 65536;
    if (cymg_buf_reserve(out, room) < 0) return CYMG_ENOMEM;
    z->inf.next_out = (Bytef *) out->buf + out->len;
    z->inf.avail_out = (uInt) room;
    int rc = inflate(&z->inf, Z_SYNC_FLUSH);
    out->len += room - z->inf.avail_out;
    if (rc == Z_STREAM_END) {
      /* A final block ended the stream; anything after it starts a new one. */
      inflateReset(&z->inf);
      if (z->inf.avail_in == 0) break;
      continue;
    }
    if (rc == Z_MEM_ERROR) return CYMG_ENOMEM;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return CYMG_EPARSE;
    /* Output room left over means zlib has given all it can for this input. */
    if (z->inf.avail_in == 0 && z->inf.avail_out != 0) break;
    if (rc == Z_BUF_ERROR && z->inf.avail_out != 0) break;
  }
  return out->len - start > max_out ? CYMG_ELIMIT : 0;
}

int cymg__wsz_decompress(cymg__wsz *z, const void *in, size_t n, bool fin, uint64_t max_out,
                         cymg_buf *out) {
  size_t start = out->len;
  const uint8_t *p = in;
  int rc = 0;
  while (rc == 0 && n > 0) {
    uInt piece = n > (1u << 30) ? (1u << 30) : (uInt) n;
    z->inf.next_in = (Bytef *) (uintptr_t) p;
    z->inf.avail_in = piece;
    rc = inflate_into(z, max_out, start, out);
    p += piece;
    n -= piece;
  }
  if (rc == 0 && fin) {
    z->inf.next_in = (Bytef *) (uintptr_t) tail4;
    z->inf.avail_in = 4;
    rc = inflate_into(z, max_out, start, out);
  }
  if (fin || rc < 0) {
    /* After an error the stream is unusable anyway; the connection fails. */
    if (z->inf_reset || rc < 0) inflateReset(&z->inf);
  }
  if (out->buf) out->buf[out->len] = '\0';
  return rc;
}

/* ---- negotiation (RFC 7692 §5, §7.1) ----
 * Sec-WebSocket-Extensions = 1#( token *( ";" token [ "=" (token / quoted) ] ) ),
 * possibly spread over several header lines. */

typedef struct {
  cymg_str name, value;
  bool has_value;
} ext_param;

#define MAX_PARAMS 8

typedef struct {
  const cymg_http_msg *msg;
  size_t hdr;     /* index of the header being read */
  cymg_str rest;  /* what is left of it */
} ext_iter;

static bool is_tchar(char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static void skip_ows(cymg_str *s) {
  while (s->len && (s->buf[0] == ' ' || s->buf[0] == '\t')) s->buf++, s->len--;
}

static cymg_str take_token(cymg_str *s) {
  size_t i = 0;
  while (i < s->len && is_tchar(s->buf[i])) i++;
  cymg_str t = cymg_str_n(s->buf, i);
  s->buf += i;
  s->len -= i;
  return t;
}

/* Next extension: 1 with name and params, 0 at the end, -1 when malformed. */
static int next_ext(ext_iter *it, cymg_str *name, ext_param *params, size_t *np) {
  static const cymg_str hname = {"Sec-WebSocket-Extensions", 24};
  for (;;) {
    skip_ows(&it->rest);
    while (it->rest.len && it->rest.buf[0] == ',') {
      it->rest.buf++, it->rest.len--;
      skip_ows(&it->rest);
    }
    if (it->rest.len) break;
    while (it->hdr < it->msg->num_headers &&
           !cymg_str_case_eq(it->msg->headers[it->hdr].name, hname))
      it->hdr++;
    if (it->hdr >= it->msg->num_headers) return 0;
    it->rest = it->msg->headers[it->hdr++].value;
  }
  cymg_str *s = &it->rest;
  *name = take_token(s);
  *np = 0;
  if (name->len == 0) return -1;
  for (;;) {
    skip_ows(s);
    if (s->len == 0) return 1;
    if (s->buf[0] == ',') return 1;
    if (s->buf[0] != ';') return -1;
    s->buf++, s->len--;
    skip_ows(s);
    ext_param p = {take_token(s), {NULL, 0}, false};
    if (p.name.len == 0) return -1;
    skip_ows(s);
    if (s->len && s->buf[0] == '=') {
      s->buf++, s->len--;
      skip_ows(s);
      p.has_value = true;
      if (s->len && s->buf[0] == '"') {
        /* A quoted value must still be a token once unquoted (§7.1). */
        size_t i = 1;
        while (i < s->len && s->buf[i] != '"') {
          if (!is_tchar(s->buf[i])) return -1;
          i++;
        }
        if (i >= s->len) return -1;
        p.value = cymg_str_n(s->buf + 1, i - 1);
        s->buf += i + 1;
        s->len -= i + 1;
      } else {
        p.value = take_token(s);
      }
      if (p.value.len == 0) return -1;
    }
    if (*np == MAX_PARAMS) return -1;
    params[(*np)++] = p;
  }
}

/* 8..15, or 0 when the value is not a window size. */
static int window_bits(cymg_str v) {
  if (v.len == 1 && v.buf[0] >= '8' && v.buf[0] <= '9') return v.buf[0] - '0';
  if (v.len == 2 && v.buf[0] == '1' && v.buf[1] >= '0' && v.buf[1] <= '5') return 10 + v.buf[1] - '0';
  return 0;
}

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

/* Reads the parameters of one permessage-deflate element. Returns a mask of
 * P_* seen (window values in *smwb, *cmwb; *cmwb is 0 when given without a
 * value), or -1 for anything unknown, repeated or out of range. */
static int read_params(const ext_param *params, size_t np, int *smwb, int *cmwb) {
  int seen = 0;
  *smwb = *cmwb = 0;
  for (size_t i = 0; i < np; i++) {
    const ext_param *p = &params[i];
    int bit;
    if (cymg_str_case_eq(p->name, cymg_str_c("server_no_context_takeover"))) {
      bit = P_SNCT;
      if (p->has_value) return -1;
    } else if (cymg_str_case_eq(p->name, cymg_str_c("client_no_context_takeover"))) {
      bit = P_CNCT;
      if (p->has_value) return -1;
    } else if (cymg_str_case_eq(p->name, cymg_str_c("server_max_window_bits"))) {
      bit = P_SMWB;
      if (!p->has_value || (*smwb = window_bits(p->value)) == 0) return -1;
    } else if (cymg_str_case_eq(p->name, cymg_str_c("client_max_window_bits"))) {
      bit = P_CMWB;
      if (p->has_value && (*cmwb = window_bits(p->value)) == 0) return -1;
    } else {
      return -1;
    }
    if (seen & bit) return -1;
    seen |= bit;
  }
  return seen;
}

int cymg__ws_pmd_accept(const cymg_http_msg *msg, const cymg__ws_conf *conf, cymg__ws_pmd *out,
                        cymg_buf *resp) {
  memset(out, 0, sizeof(*out));
  if (!conf->deflate) return 0;
  ext_iter it = {msg, 0, {NULL, 0}};
  cymg_str name;
  ext_param params[MAX_PARAMS];
  size_t np;
  int r;
  while ((r = next_ext(&it, &name, params, &np)) != 0) {
    if (r < 0) return 0; /* a malformed header: accept nothing rather than guess */
    if (!cymg_str_case_eq(name, cymg_str_c("permessage-deflate"))) continue;
    int smwb, cmwb;
    int seen = read_params(params, np, &smwb, &cmwb);
    if (seen < 0) continue; /* this offer cannot be honoured; try the next */
    out->on = true;
    out->server_no_ctx = (seen & P_SNCT) || (conf->deflate_flags & CYMG_WS_DEFLATE_SERVER_NO_CONTEXT);
    out->client_no_ctx = (seen & P_CNCT) || (conf->deflate_flags & CYMG_WS_DEFLATE_CLIENT_NO_CONTEXT);
    int sb = (seen & P_SMWB) ? smwb : 0;
    if (conf->server_bits && conf->server_bits < 15 && (sb == 0 || conf->server_bits < sb))
      sb = conf->server_bits;
    out->server_bits = (uint8_t) sb;
    /* client_max_window_bits may be answered only when offered (§7.1.2.2). */
    int cb = 0;
    if (seen & P_CMWB) {
      cb = cmwb;
      if (conf->client_bits && conf->client_bits < 15 && (cb == 0 || conf->client_bits < cb))
        cb = conf->client_bits;
    }
    out->client_bits = (uint8_t) cb;
    int rc = cymg_buf_printf(resp, "Sec-WebSocket-Extensions: permessage-deflate");
    if (rc >= 0 && out->server_no_ctx) rc = cymg_buf_printf(resp, "; server_no_context_takeover");
    if (rc >= 0 && out->client_no_ctx) rc = cymg_buf_printf(resp, "; client_no_context_takeover");
    if (rc >= 0 && sb) rc = cymg_buf_printf(resp, "; server_max_window_bits=%d", sb);
    if (rc >= 0 && cb) rc = cymg_buf_printf(resp, "; client_max_window_bits=%d", cb);
    if (rc >= 0) rc = cymg_buf_printf(resp, "\r\n");
    return rc < 0 ? rc : 0;
  }
  return 0;
}

int cymg__ws_pmd_offer(const cymg__ws_conf *conf, cymg_buf *req) {
  if (!conf->deflate) return 0;
  int rc = cymg_buf_printf(req, "Sec-WebSocket-Extensions: permessage-deflate");
  if (rc >= 0 && (conf->deflate_flags & CYMG_WS_DEFLATE_SERVER_NO_CONTEXT))
    rc = cymg_buf_printf(req, "; server_no_context_takeover");
  if (rc >= 0 && (conf->deflate_flags & CYMG_WS_DEFLATE_CLIENT_NO_CONTEXT))
    rc = cymg_buf_printf(req, "; client_no_context_takeover");
  if (rc >= 0 && conf->server_bits && conf->server_bits < 15)
    rc = cymg_buf_printf(req, "; server_max_window_bits=%d", conf->server_bits);
  /* Always offered: it tells the server we can work with a smaller window. */
  if (rc >= 0 && conf->client_bits && conf->client_bits < 15) {
    rc = cymg_buf_printf(req, "; client_max_window_bits=%d", conf->client_bits);
  } else if (rc >= 0) {
    rc = cymg_buf_printf(req, "; client_max_window_bits");
  }
  if (rc >= 0) rc = cymg_buf_printf(req, "\r\n");
  return rc < 0 ? rc : 0;
}

int cymg__ws_pmd_check(const cymg_http_msg *msg, const cymg__ws_conf *conf, cymg__ws_pmd *out,
                       const char **why) {
  memset(out, 0, sizeof(*out));
  ext_iter it = {msg, 0, {NULL, 0}};
  cymg_str name;
  ext_param params[MAX_PARAMS];
  size_t np;
  int r;
  *why = "";
  while ((r = next_ext(&it, &name, params, &np)) != 0) {
    if (r < 0) {
      *why = "malformed Sec-WebSocket-Extensions in the response";
      return CYMG_EPROTO;
    }
    if (!conf->deflate || !cymg_str_case_eq(name, cymg_str_c("permessage-deflate")) || out->on) {
      *why = "server accepted an extension that was not offered";
      return CYMG_EPROTO;
    }
    int smwb, cmwb;
    int seen = read_params(params, np, &smwb, &cmwb);
    bool bad = seen < 0;
    /* The server may not widen what we asked of it (§7.1.2.1). */
    if (!bad && (seen & P_SMWB) && conf->server_bits && conf->server_bits < 15 &&
        smwb > conf->server_bits)
      bad = true;
    if (!bad && (seen & P_CMWB) && cmwb == 0) bad = true; /* must carry a value here */
    if (!bad && (seen & P_CMWB) && conf->client_bits && conf->client_bits < 15 &&
        cmwb > conf->client_bits)
      bad = true;
    if (!bad && !(seen & P_SMWB) && conf->server_bits && conf->server_bits < 15) bad = true;
    if (!bad && !(seen & P_SNCT) && (conf->deflate_flags & CYMG_WS_DEFLATE_SERVER_NO_CONTEXT))
      bad = true;
    if (bad) {
      *why = "server answered permessage-deflate with parameters that were not offered";
      return CYMG_EPROTO;
    }
    out->on = true;
    out->server_no_ctx = (seen & P_SNCT) != 0;
    /* What we offered binds us whether or not the server repeats it. */
    out->client_no_ctx =
        (seen & P_CNCT) || (conf->deflate_flags & CYMG_WS_DEFLATE_CLIENT_NO_CONTEXT);
    out->server_bits = (uint8_t) ((seen & P_SMWB) ? smwb : 0);
    int cb = (seen & P_CMWB) ? cmwb : 0;
    if (conf->client_bits && conf->client_bits < 15 && (cb == 0 || conf->client_bits < cb))
      cb = conf->client_bits;
    out->client_bits = (uint8_t) cb;
  }
  return 0;
}
