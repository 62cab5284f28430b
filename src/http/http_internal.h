/* What the HTTP layer's modules share (server, client, static files, multipart). */
#ifndef CYMG_HTTP_INTERNAL_H
#define CYMG_HTTP_INTERNAL_H

#include "cymg/http.h"
#include "internal.h"

/* Answers the current request with a file body: status, extra header lines (each
 * ending in CRLF; Content-Type etc. are the caller's), len bytes of fd from
 * offset. Content-Length is added. The fd is owned by the layer from here on
 * (closed when sent, on error, or at once for HEAD). On plain connections the
 * bytes go with sendfile(2) as the socket drains; nothing is held in memory.
 * Returns 0 or a negative code (then fd is already closed). */
int cymg__http_reply_file(cymg_conn *c, int status, const char *headers, int fd, uint64_t offset,
                          uint64_t len);

/* The method of the request being answered (empty when none). */
cymg_str cymg__http_req_method(const cymg_conn *c);

#endif
