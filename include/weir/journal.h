/* SPDX-License-Identifier: MIT */
/*
 * weir/journal.h - what a program chooses and sees of the journal that
 * keeps durable topics (weir/bus.h: weir_bus_opts.journal_dir).
 *
 * The journal is a directory of segment files, written append-only.
 * Every record carries its length, a CRC-32C and the salt of its
 * segment (drawn at random when the segment is made), so that bytes left
 * from an older use of a file never pass for a record.  At open, the last
 * segment is read up to its first record that does not check, and cut
 * there (a write torn by a crash); a record that does not check in any
 * other segment is damage, reported as WEIR_ECORRUPT, never skipped.
 */
#ifndef WEIR_JOURNAL_H
#define WEIR_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * When a durable publish returns 0.  What each can lose:
 *   - a process that dies (crash, SIGKILL): nothing that returned 0,
 *     under every policy: the record is in the kernel's page cache;
 *   - a machine that loses power or whose kernel crashes: nothing that
 *     returned 0 under EVERY and BATCH; under NONE, whatever the kernel
 *     had not yet written to the disk (typically the last few seconds).
 */
typedef enum weir_sync {
    WEIR_SYNC_BATCH = 0, /* group commit: returns after an fdatasync that
                            concurrent durable publishes share */
    WEIR_SYNC_EVERY,     /* returns after an fdatasync of its own */
    WEIR_SYNC_NONE       /* returns once written to the kernel */
} weir_sync;

#ifdef __cplusplus
}
#endif

#endif /* WEIR_JOURNAL_H */
