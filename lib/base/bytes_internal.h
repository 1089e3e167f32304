/* SPDX-License-Identifier: MIT */
/*
 * bytes_internal.h - PRIVATE to lib/: integers written to and read from
 * bytes, little-endian whatever the CPU, for what goes to disk (the
 * journal's records) and what a checksum reads.
 */
#ifndef WEIR_BYTES_INTERNAL_H
#define WEIR_BYTES_INTERNAL_H

#include <stdint.h>

static inline void
weiri_put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void
weiri_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void
weiri_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline unsigned
weiri_get16(const unsigned char *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static inline uint32_t
weiri_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t
weiri_get64(const unsigned char *p)
{
    return (uint64_t)weiri_get32(p) | (uint64_t)weiri_get32(p + 4) << 32;
}

#endif /* WEIR_BYTES_INTERNAL_H */
