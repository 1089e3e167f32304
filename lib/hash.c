/* SPDX-License-Identifier: MIT */
/*
 * hash.c - the string hash of hash_internal.h.
 */
#include "hash_internal.h"

uint64_t
weiri_hash(const void *p, size_t len)
{
    const unsigned char *c = p;
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ c[i]) * 1099511628211u;
    return h;
}
