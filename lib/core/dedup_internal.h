/* SPDX-License-Identifier: MIT */
/*
 * dedup_internal.h - PRIVATE to lib/ and the tests: a look inside a dedup
 * table, for the checks that its keys spread (tests/test_hash.c).
 */
#ifndef WEIR_DEDUP_INTERNAL_H
#define WEIR_DEDUP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "weir/dedup.h"

/*
 * weiri_dedup_inspect - store d's SipHash seed in seed[0..1] and the
 * length of its longest hash chain in *longest.  Takes d's mutex and walks
 * every bucket: O(buckets + keys), for tests, never on a hot path.  d must
 * not be NULL.  Any thread.
 */
void weiri_dedup_inspect(weir_dedup *d, uint64_t seed[2], size_t *longest);

#endif /* WEIR_DEDUP_INTERNAL_H */
