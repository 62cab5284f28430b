/* Glob matching with captures, for URI routes and RPC method names. */
#ifndef CYMG_MATCH_H
#define CYMG_MATCH_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the whole of `s` matches `pattern`. In the pattern '?' matches exactly one
 * byte (any byte, '/' included), '*' any run of bytes without '/', '#' any run of
 * bytes; every other byte matches itself (there is no escape character).
 *
 * On a match, caps[i] (for i < ncaps) is set to the span of `s` taken by the i-th
 * wildcard of the pattern, counting '?', '*' and '#' alike, and the entry after the
 * last wildcard, if there is room, is set to {NULL, 0}. Captures point into `s`.
 * When several splits match, each wildcard takes the shortest span that still lets
 * the rest match, leftmost wildcard first. `caps` may be NULL when ncaps is 0; on no
 * match it is left unchanged.
 *
 * Time is O(len(s) * len(pattern)) in the worst case, never exponential. Patterns
 * with several '*'/'#' need a bit table of (number of '*'/'#') * (len(s) + 1)
 * bits: small tables live on the stack, larger ones are malloc()ed, and if that
 * allocation fails the function returns false and logs it at CYMG_LL_ERROR.
 * Thread-safe. */
CYMG_API CYMG_NODISCARD bool cymg_match(cymg_str s, cymg_str pattern, cymg_str *caps, size_t ncaps);

#ifdef __cplusplus
}
#endif
#endif
