/* Base64 (RFC 4648 sections 4 and 5): the standard alphabet with padding, and the
 * URL-safe alphabet without it. Pure functions over bytes; output is appended to
 * a caller's cymg_buf. All are thread-safe. */
#ifndef CYMG_BASE64_H
#define CYMG_BASE64_H

#include "buf.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Length of the padded standard encoding of n bytes (4 * ceil(n / 3)), or 0 when
 * that does not fit in a size_t. */
CYMG_API size_t cymg_base64_encoded_len(size_t n);

/* Appends the standard, padded encoding of `in` to `out`. Returns the number of
 * bytes appended, or CYMG_ENOMEM / CYMG_ERANGE (result longer than INT_MAX) with
 * `out` unchanged. */
CYMG_API CYMG_NODISCARD int cymg_base64_encode(cymg_str in, cymg_buf *out);

/* Strictly decodes standard base64 and appends the bytes to `out`. The length must
 * be a multiple of 4, '=' may only pad the last group, the bits that padding drops
 * must be zero, and nothing else (no whitespace, no line breaks) is accepted, so
 * every byte string has exactly one accepted encoding. Returns the number of bytes
 * appended, or CYMG_EPARSE / CYMG_ENOMEM / CYMG_ERANGE with `out` unchanged. */
CYMG_API CYMG_NODISCARD int cymg_base64_decode(cymg_str in, cymg_buf *out);

/* As cymg_base64_encode with the URL-safe alphabet ('-' and '_') and no padding. */
CYMG_API CYMG_NODISCARD int cymg_base64url_encode(cymg_str in, cymg_buf *out);

/* As cymg_base64_decode with the URL-safe alphabet. Padding is optional, but when
 * present it must be complete and correct; an unpadded input whose length is
 * 1 mod 4 is rejected, and so are non-zero dropped bits. */
CYMG_API CYMG_NODISCARD int cymg_base64url_decode(cymg_str in, cymg_buf *out);

#ifdef __cplusplus
}
#endif
#endif
