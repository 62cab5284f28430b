/* WebSocket settings that exist before a connection is WebSocket: they ride in
 * the HTTP layer's settings (cymg__http_conf), so a listener hands them to the
 * connections it accepts, which upgrade later. Zero means "the default". */
#ifndef CYMG_WS_CONF_H
#define CYMG_WS_CONF_H

#include <stdbool.h>
#include <stdint.h>

typedef struct cymg__ws_conf {
  uint64_t max_msg;  /* largest message; 0: CYMG__WS_DEFAULT_MAX_MSG */
  uint32_t close_ms; /* close handshake timeout; 0: CYMG__WS_DEFAULT_CLOSE_MS */
  uint32_t ping_ms;  /* keepalive: ping after this much silence; 0: off */
  bool deflate;      /* permessage-deflate enabled */
  uint8_t deflate_flags;            /* CYMG_WS_DEFLATE_* */
  uint8_t server_bits, client_bits; /* window limits asked for; 0: none */
} cymg__ws_conf;

#define CYMG__WS_DEFAULT_MAX_MSG (16u << 20)
#define CYMG__WS_DEFAULT_CLOSE_MS 5000u

#endif
