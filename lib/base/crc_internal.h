/* SPDX-License-Identifier: MIT */
/*
 * crc_internal.h - PRIVATE to lib/: CRC-32C (Castagnoli), the checksum
 * of the journal's records.  Castagnoli's polynomial rather than the
 * zlib one: it detects more of the error patterns of short records, and
 * it is the one ext4, iSCSI and most logs use, so a record can be
 * checked with any of their tools.
 */
#ifndef WEIR_CRC_INTERNAL_H
#define WEIR_CRC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * weiri_crc32c - the CRC-32C of len bytes at p, continuing from crc (0
 * to start: weiri_crc32c(weiri_crc32c(0, a, n), b, m) is the CRC of a
 * followed by b).  Any thread.
 */
uint32_t weiri_crc32c(uint32_t crc, const void *p, size_t len);

/*
 * weiri_crc32c_portable - the same with tables only; weiri_crc32c uses
 * the CPU's instruction where there is one (x86-64 with SSE4.2).
 * Exposed for the tests, which compare the two.
 */
uint32_t weiri_crc32c_portable(uint32_t crc, const void *p, size_t len);

#endif /* WEIR_CRC_INTERNAL_H */
