/* What the WebSocket modules share: the negotiated compression parameters, the
 * compressor (deflate.c) and the connection state (ws.c, handshake.c). */
#ifndef CYMG_WS_INTERNAL_H
#define CYMG_WS_INTERNAL_H

#include "cymg/ws.h"
#include "internal.h"
#include "ws/ws_conf.h"

/* ---- permessage-deflate (deflate.c) ---- */

/* Negotiated parameters. Window bits 0 means 15 (no limit). */
typedef struct cymg__ws_pmd {
  bool on;
  bool server_no_ctx, client_no_ctx;
  uint8_t server_bits, client_bits;
} cymg__ws_pmd;

/* One side's compressor and decompressor. Opaque. */
typedef struct cymg__wsz cymg__wsz;

/* Makes the zlib streams for one end of a connection with these parameters:
 * is_server picks which half of them governs our compressor. Returns 0,
 * CYMG_ENOMEM or CYMG_EINVAL. */
int cymg__wsz_new(cymg__wsz **out, const cymg__ws_pmd *p, bool is_server);
void cymg__wsz_free(cymg__wsz *z);
/* Compresses n bytes of a message and appends the output to out. fin ends the
 * message: the trailing 00 00 FF FF is left off (RFC 7692 §7.2.1) and, without
 * context takeover, the compressor starts afresh. Returns 0 or CYMG_ENOMEM. */
int cymg__wsz_compress(cymg__wsz *z, const void *in, size_t n, bool fin, cymg_buf *out);
/* Decompresses n bytes of a message, appending to out, at most max_out bytes
 * in all for this call. fin: the message ends here (the 00 00 FF FF is put
 * back). Returns 0, CYMG_ELIMIT (more than max_out: a zip bomb, close 1009),
 * CYMG_EPARSE (corrupt data, close 1007) or CYMG_ENOMEM. */
int cymg__wsz_decompress(cymg__wsz *z, const void *in, size_t n, bool fin, uint64_t max_out,
                         cymg_buf *out);

/* Server: picks the first permessage-deflate offer in msg's
 * Sec-WebSocket-Extensions that it can honour under conf; fills *out and
 * appends the response header line to resp. out->on is false when nothing was
 * accepted (no offer, or none acceptable). Returns 0 or CYMG_ENOMEM. */
int cymg__ws_pmd_accept(const cymg_http_msg *msg, const cymg__ws_conf *conf, cymg__ws_pmd *out,
                        cymg_buf *resp);
/* Client: appends the offer header line for conf to req. */
int cymg__ws_pmd_offer(const cymg__ws_conf *conf, cymg_buf *req);
/* Client: checks the response's Sec-WebSocket-Extensions against the offer
 * made under conf and fills *out. Returns 0 or CYMG_EPROTO with *why. */
int cymg__ws_pmd_check(const cymg_http_msg *msg, const cymg__ws_conf *conf, cymg__ws_pmd *out,
                       const char **why);

#endif
