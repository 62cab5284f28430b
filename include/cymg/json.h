/* JSON (RFC 8259): a strict validator, path lookup and typed getters that work in
 * place over a byte view (not NUL-terminated), member iteration, and string
 * escaping/unescaping. Nothing here allocates except to grow a caller's cymg_buf,
 * and nothing keeps state between calls: every function is thread-safe.
 *
 * Strictness: exactly one value with optional surrounding whitespace (space, tab,
 * LF, CR); no comments, trailing commas, single quotes, NaN/Infinity, hex or
 * leading zeros; strings must be valid UTF-8 (no overlong forms, no encoded
 * surrogates, nothing above U+10FFFF), contain no raw control characters, and use
 * only the RFC's escapes, with \u surrogates properly paired. Numbers of any
 * magnitude or length are valid syntax (1e999 is accepted). */
#ifndef CYMG_JSON_H
#define CYMG_JSON_H

#include "buf.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Containers nested deeper than this are rejected. The parser is iterative, so
 * the limit bounds work, not stack use; it can be changed at build time. */
#ifndef CYMG_JSON_MAX_DEPTH
#define CYMG_JSON_MAX_DEPTH 512
#endif

/* Value types. Functions that find a value return its type (always > 0). */
enum {
  CYMG_JSON_NULL = 1,
  CYMG_JSON_BOOL,
  CYMG_JSON_NUMBER,
  CYMG_JSON_STRING,
  CYMG_JSON_ARRAY,
  CYMG_JSON_OBJECT
};

/* Checks that `json` is one well-formed JSON document. Returns the type of the
 * top-level value, or CYMG_EPARSE. */
CYMG_API CYMG_NODISCARD int cymg_json_validate(cymg_str json);

/* Finds the value at `path` in the document `json`. A path is "$" (the whole
 * value) followed by any sequence of ".key" (object member: a non-empty key that
 * contains neither '.' nor '[') and "[N]" (array element, N decimal, from 0).
 * Keys are compared after unescaping the document's key, so "a\u0062" matches the
 * path key "ab"; with duplicate keys the first one wins.
 *
 * The whole document is validated first: an invalid document never yields a
 * value. Returns the value's type and sets *value (may be NULL) to its exact span
 * in `json` (strings include their quotes); CYMG_ENOTFOUND when the path leads
 * nowhere (missing key, index out of range, or stepping into a value of another
 * kind); CYMG_EPARSE for an invalid document; CYMG_EINVAL for a malformed path. */
CYMG_API CYMG_NODISCARD int cymg_json_find(cymg_str json, const char *path, cymg_str *value);

/* Getters: cymg_json_find() plus a conversion. Each returns >= 0 on success,
 * cymg_json_find()'s errors, or CYMG_ETYPE when the value has another type. On
 * failure *out (or the buffer) is left unchanged. */

/* A number as the nearest double. Returns 0, or CYMG_ERANGE (with *out unchanged)
 * when the magnitude is too large for a double; tiny values become 0 or
 * subnormals without error. */
CYMG_API CYMG_NODISCARD int cymg_json_get_num(cymg_str json, const char *path, double *out);
/* true or false. Returns 0. */
CYMG_API CYMG_NODISCARD int cymg_json_get_bool(cymg_str json, const char *path, bool *out);
/* An integer literal only (no fraction, no exponent: "1.0" and "1e3" give
 * CYMG_ETYPE, so a value is never silently rounded). Returns 0, or CYMG_ERANGE
 * outside int64_t. */
CYMG_API CYMG_NODISCARD int cymg_json_get_int(cymg_str json, const char *path, int64_t *out);
/* Appends a string's unescaped UTF-8 bytes to `out`. Returns the number of bytes
 * appended (CYMG_ERANGE if that would exceed INT_MAX). */
CYMG_API CYMG_NODISCARD int cymg_json_get_str(cymg_str json, const char *path, cymg_buf *out);
/* Appends the bytes spelled by a string of hex digits (either case, even count).
 * Returns the number of bytes appended, or CYMG_EPARSE for other content. */
CYMG_API CYMG_NODISCARD int cymg_json_get_hex(cymg_str json, const char *path, cymg_buf *out);
/* Appends the bytes of a string holding strict standard base64 (see
 * cymg_base64_decode). Returns the number of bytes appended, or CYMG_EPARSE. */
CYMG_API CYMG_NODISCARD int cymg_json_get_b64(cymg_str json, const char *path, cymg_buf *out);

/* Iterates over the members of an object or the elements of an array. `container`
 * is the span of the object/array (as cymg_json_find gives it); *offset is an
 * opaque cursor: set it to 0 before the first call and leave it alone between
 * calls. Each call returns the next value's type and sets *value to its span and
 * *key (may be NULL) to the member's raw key between the quotes (still escaped:
 * compare with cymg_json_str_eq), or to an empty span for array elements. Returns
 * 0 when there are no more values (and keeps returning 0), CYMG_EPARSE when the
 * container is malformed at the point reached, CYMG_EINVAL for bad arguments.
 * Each step checks only the syntax it walks over. */
CYMG_API CYMG_NODISCARD int cymg_json_next(cymg_str container, size_t *offset, cymg_str *key,
                                           cymg_str *value);

/* Whether the JSON string `json_str` (with or without its quotes, as
 * cymg_json_unescape takes it) equals `s` after unescaping. False for an invalid
 * string. */
CYMG_API bool cymg_json_str_eq(cymg_str json_str, cymg_str s);

/* Appends the unescaped UTF-8 of a JSON string to `out`. The input is either a
 * quoted string ("...") or its raw content between the quotes; either way it is
 * checked as strictly as cymg_json_validate does. Returns the number of bytes
 * appended, or CYMG_EPARSE / CYMG_ENOMEM / CYMG_ERANGE with `out` unchanged. */
CYMG_API CYMG_NODISCARD int cymg_json_unescape(cymg_str quoted_or_raw, cymg_buf *out);

/* Appends `s` as a quoted JSON string to `out`: '"' and '\\' are escaped, control
 * characters use \b \f \n \r \t or \u00XX, valid UTF-8 passes through, and each
 * invalid UTF-8 sequence (maximal ill-formed subpart) becomes U+FFFD. Returns the
 * number of bytes appended, or CYMG_ENOMEM / CYMG_ERANGE with `out` unchanged. */
CYMG_API CYMG_NODISCARD int cymg_json_escape(cymg_buf *out, cymg_str s);

#ifdef __cplusplus
}
#endif
#endif
