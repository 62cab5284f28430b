/* The utilities, one include: string views, URLs and form data, hashes and
 * encodings, randomness and clocks. */
#ifndef CYMG_UTIL_H
#define CYMG_UTIL_H

#include "str.h"
#include "url.h"
#include "hash.h"
#include "rand.h"

#endif
