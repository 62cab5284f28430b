/* String views: comparison, trimming, tokenising, strict number parsing.
 *
 * All functions take cymg_str views (pointer + length, not NUL-terminated); a view
 * with buf == NULL and len == 0 is a valid empty string. None of them allocate except
 * cymg_str_dup(). None keep state: all are thread-safe. Returned views point into the
 * caller's bytes and are valid as long as those are. cymg_str_c()/cymg_str_n() are
 * declared in common.h. */
#ifndef CYMG_STR_H
#define CYMG_STR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when a and b hold the same bytes. */
CYMG_API bool cymg_str_eq(cymg_str a, cymg_str b);

/* Compares ASCII case-insensitively (bytes >= 0x80 compare as themselves); a proper
 * prefix sorts first. Returns <0, 0 or >0 like strcmp. */
CYMG_API int cymg_str_casecmp(cymg_str a, cymg_str b);

/* True when a and b are equal ignoring ASCII case (HTTP header names, schemes). */
CYMG_API bool cymg_str_case_eq(cymg_str a, cymg_str b);

/* True when s begins with prefix (an empty prefix always matches). */
CYMG_API bool cymg_str_starts(cymg_str s, cymg_str prefix);

/* Like cymg_str_starts, ignoring ASCII case. */
CYMG_API bool cymg_str_case_starts(cymg_str s, cymg_str prefix);

/* Returns s without leading and trailing spaces and tabs (HTTP "OWS"). The result
 * points into s. */
CYMG_API cymg_str cymg_str_trim(cymg_str s);

/* Parses the whole of s as a decimal integer with an optional '+' or '-' sign.
 * No whitespace, no base prefixes. Returns 0 and stores *out; CYMG_EPARSE for
 * empty or malformed input; CYMG_ERANGE when the value does not fit in int64_t.
 * *out is written only on success. */
CYMG_API CYMG_NODISCARD int cymg_str_to_i64(cymg_str s, int64_t *out);

/* Parses the whole of s as an unsigned integer in base 10 or 16 (hex digits in
 * either case). Strict, because it reads Content-Length and chunk sizes: no sign,
 * no whitespace, no "0x" prefix, at least one digit. Returns 0; CYMG_EINVAL for
 * another base; CYMG_EPARSE for malformed input; CYMG_ERANGE on overflow. *out is
 * written only on success. */
CYMG_API CYMG_NODISCARD int cymg_str_to_u64(cymg_str s, int base, uint64_t *out);

/* Parses the whole of s as a decimal floating-point number: [sign] digits [.digits]
 * [e[sign]digits], where either side of the '.' may be empty but not both. The
 * decimal point is always '.', whatever the process locale; hex floats, "inf" and
 * "nan" are refused. Returns 0; CYMG_EPARSE when malformed; CYMG_ERANGE when the
 * magnitude overflows a double, or is non-zero but underflows to zero (results in
 * the subnormal range are accepted); CYMG_ENOMEM when the locale object or a copy of
 * a very long input cannot be allocated. *out is written only on success. */
CYMG_API CYMG_NODISCARD int cymg_str_to_double(cymg_str s, double *out);

/* Finds the first occurrence of needle in hay. Returns the matching span of hay, or
 * {NULL, 0} when absent. An empty needle matches at the start of hay. */
CYMG_API cymg_str cymg_str_find(cymg_str hay, cymg_str needle);

/* Tokeniser: when *s is non-empty, stores in *part the bytes up to the first sep (or
 * all of *s), removes them and the sep from *s, and returns true; returns false
 * once *s is empty, and then sets *part to an empty view. So "a,,b" gives "a",
 * "", "b"; a trailing separator does not give a trailing empty part, and "" gives
 * no parts. Typical use:
 *   cymg_str rest = input, tok; while (cymg_str_split(&rest, '&', &tok)) {...} */
CYMG_API CYMG_NODISCARD bool cymg_str_split(cymg_str *s, char sep, cymg_str *part);

/* Returns a malloc'd NUL-terminated copy of s (embedded NULs are copied too), or
 * NULL when out of memory. The caller frees it with free(). */
CYMG_API CYMG_NODISCARD char *cymg_str_dup(cymg_str s);

#ifdef __cplusplus
}
#endif
#endif
