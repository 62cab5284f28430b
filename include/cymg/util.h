/* The utilities, one include: string views, URLs and form data, hashes and
 * encodings, randomness and clocks,
 * base64, glob matching, JSON and JSON-RPC. */
#ifndef CYMG_UTIL_H
#define CYMG_UTIL_H

#include "str.h"
#include "url.h"
#include "hash.h"
#include "rand.h"
#include "base64.h"
#include "match.h"
#include "json.h"
#include "rpc.h"

#endif
