/* SPDX-License-Identifier: MIT */
/*
 * hash_internal.h - PRIVATE to lib/: the one string hash weir uses for
 * its tables (topic names, ordering keys, duplicate keys).
 */
#ifndef WEIR_HASH_INTERNAL_H
#define WEIR_HASH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* weiri_hash - FNV-1a, 64-bit: keys are short, and it needs no setup. */
uint64_t weiri_hash(const void *p, size_t len);

#endif /* WEIR_HASH_INTERNAL_H */
