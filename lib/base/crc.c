/* SPDX-License-Identifier: MIT */
/*
 * crc.c - CRC-32C, eight bytes a step ("slicing by 8": eight tables of
 * 256 entries, each the CRC of a byte followed by 0 to 7 zero bytes), so
 * a step costs eight loads and no data-dependent branch.  The tables are
 * built once, on first use.
 */
#include <pthread.h>
#include <string.h>

#include "bytes_internal.h"
#include "crc_internal.h"

/* Castagnoli's polynomial, bit-reversed. */
#define POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            table[t][i] = (table[t - 1][i] >> 8) ^
                          table[0][table[t - 1][i] & 0xff];
}

uint32_t
weiri_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&once, build);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    for (; len >= 8; len -= 8, p += 8) {
        uint32_t lo = c ^ weiri_get32(p), hi = weiri_get32(p + 4);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
            table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
            table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
    }
    for (; len > 0; len--, p++)
        c = (c >> 8) ^ table[0][(c ^ *p) & 0xff];
    return ~c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/*
 * SSE4.2's crc32 instruction computes this very CRC (Castagnoli's,
 * reflected) eight bytes an instruction: about three times the tables'
 * speed, which is most of what reading a journal back costs.
 */
__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t c = ~crc;
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    for (; len > 0; len--, p++)
        c32 = __builtin_ia32_crc32qi(c32, *p);
    return ~c32;
}

static uint32_t (*crc_fn)(uint32_t, const void *, size_t);
static pthread_once_t pick_once = PTHREAD_ONCE_INIT;

static void
pick(void)
{
    __builtin_cpu_init();
    crc_fn = __builtin_cpu_supports("sse4.2") ? crc_sse42
                                              : weiri_crc32c_portable;
}

uint32_t
weiri_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&pick_once, pick);
    return crc_fn(crc, data, len);
}
#else
uint32_t
weiri_crc32c(uint32_t crc, const void *data, size_t len)
{
    return weiri_crc32c_portable(crc, data, len);
}
#endif
