/* SPDX-License-Identifier: MIT */
/*
 * log_internal.h - PRIVATE to lib/: the journal's log, a directory of
 * append-only segment files of typed records, with group commit and
 * recovery.  It knows nothing of what the records mean: the layer above
 * gives each a type (1 to 255) and a body, reads them back in order at
 * open, and says when the oldest segments may go.
 *
 * On disk: dir/LOCK (held with flock while the log is open) and segment
 * files dir/<16 hex digits>.wj, numbered up from 1 with no gap.  A
 * segment starts with a 32-byte header (magic, version, a random salt,
 * its number, a CRC-32C of the header); each record is
 *     crc32c  4   of the body, then of the 12 header bytes after it
 *     len     4   of the body
 *     type    1
 *     pad     3   zero
 *     salt    4   the segment's
 *     body    len
 * all integers little-endian.
 */
#ifndef WEIR_LOG_INTERNAL_H
#define WEIR_LOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/journal.h"

#define WEIRI_LOG_SEGMENT_DEFAULT ((size_t)64 << 20)
#define WEIRI_LOG_SEGMENT_MIN     ((size_t)1 << 20)
#define WEIRI_LOG_HEADER          32
#define WEIRI_LOG_RECORD_HEADER   16
/* The largest body: a largest payload with its topic, key and fields. */
#define WEIRI_LOG_BODY_MAX        (((size_t)1 << 30) + ((size_t)1 << 16))

typedef struct weiri_log weiri_log;

typedef struct weiri_log_opts {
    const char *dir;         /* created if missing (its parent must exist) */
    weir_sync sync;
    int64_t sync_wait_ns;    /* BATCH: longest a leader waits for others
                                about to write; 0 = 1 ms */
    size_t segment_bytes;    /* 0 = default; at least the minimum */
    size_t max_bytes;        /* 0 = no bound; else at least two segments */
} weiri_log_opts;

/* A piece of a record's body. */
typedef struct weiri_log_part {
    const void *p;
    size_t n;
} weiri_log_part;

/* A record to write: its type and the parts of its body. */
typedef struct weiri_log_rec {
    unsigned type;
    const weiri_log_part *parts;
    size_t n;
} weiri_log_rec;

typedef struct weiri_log_stats {
    uint64_t bytes;          /* in the segment files, headers included */
    uint64_t segments;
    uint64_t syncs;          /* fdatasync calls made for appends */
    uint64_t recovered;      /* records read back at open */
    uint64_t truncated;      /* bytes cut from the tail at open */
} weiri_log_stats;

/*
 * Called at open for every record that checks, in log order: seg and off
 * say where it is (as weiri_log_placed would have).  A non-zero return
 * stops the open, which returns it.
 */
typedef int (*weiri_log_visit)(void *ctx, uint64_t seg, uint64_t off,
                               unsigned type, const unsigned char *body,
                               size_t len);

/*
 * Called with the log's lock held when a new segment is begun (also the
 * first, and at open), numbered seg, before any other record goes into
 * it: what it appends with weiri_log_put_head comes first in the
 * segment.  So a segment can begin with what must outlive the older
 * ones (the layer above's register of subscriptions).  Returns 0 or a
 * WEIR_E* code.
 */
typedef int (*weiri_log_head)(void *ctx, weiri_log *log, uint64_t seg);

/*
 * weiri_log_open - open or create the log in o->dir, take its lock, and
 * read back every record (visit, in order), cutting a torn tail off the
 * last segment.  head may be NULL.  Returns 0; WEIR_EINVAL (bad
 * options); WEIR_EBUSY (the lock is held, by this process or another);
 * WEIR_EIO (the directory cannot be made, read or written);
 * WEIR_ECORRUPT (a record or header that does not check before the last
 * segment's tail, a segment missing between two others); WEIR_ENOMEM;
 * or what visit or head returned.  On failure nothing stays open.
 */
int weiri_log_open(weiri_log **out, const weiri_log_opts *o,
                   weiri_log_visit visit, weiri_log_head head, void *ctx);

/*
 * Called by weiri_log_append with the log's lock held, once the record
 * is written and before it is synced: its segment and offset.  Calls
 * come in the order of the records in the log, which the layer above
 * needs to index them in that order.  It may take a lock of its own but
 * must not call the log.
 */
typedef void (*weiri_log_placed)(void *arg, uint64_t seg, uint64_t off);

/*
 * Called by weiri_log_append_group with the log's lock held, before
 * anything is written: whatever the layer above must have to index the
 * records (memory) is made ready here, so that placed cannot fail.  0,
 * or an error code that refuses the append, returned as it is.
 */
typedef int (*weiri_log_prepare)(void *arg);

/*
 * weiri_log_append - write one record whose body is the n parts, then
 * wait as the sync policy says.  placed (may be NULL) is called with arg
 * and where the record went.  Returns 0 (written, and synced as the
 * policy asks);
 * WEIR_EAGAIN (the log would pass max_bytes: nothing written);
 * WEIR_EINVAL (a body over WEIRI_LOG_BODY_MAX, or type 0); WEIR_EIO (the
 * write or its sync failed: the record is not durable, and after a
 * failed sync every later append fails too, since the kernel may have
 * dropped what it had not written); WEIR_ENOMEM.  Any thread.
 */
int weiri_log_append(weiri_log *log, unsigned type,
                     const weiri_log_part *parts, size_t n,
                     weiri_log_placed placed, void *arg);

/*
 * weiri_log_append_always - weiri_log_append past max_bytes: for what
 * lets space be freed or must not be refused (a subscription made or
 * forgotten).
 */
int weiri_log_append_always(weiri_log *log, unsigned type,
                            const weiri_log_part *parts, size_t n,
                            weiri_log_placed placed, void *arg);

/*
 * weiri_log_append_group - weiri_log_append of the n records of recs
 * (n at least 1) in one write, in one segment, with no other record
 * between them, past max_bytes unless bounded; prepare (may be NULL) is
 * called first, then placed for each record, in order.  A reopen after a
 * crash may find a first part of them only (the rest torn off); the
 * caller's records say how to tell.  Returns as weiri_log_append, or
 * what prepare returned.
 */
int weiri_log_append_group(weiri_log *log, const weiri_log_rec *recs,
                           size_t n, bool bounded, weiri_log_prepare prepare,
                           weiri_log_placed placed, void *arg);

/*
 * weiri_log_note - weiri_log_append without waiting for a sync under any
 * policy, and past max_bytes: the next sync (another's append,
 * weiri_log_sync, the close) carries it.  For what may be lost and only
 * done again (acks).
 */
int weiri_log_note(weiri_log *log, unsigned type,
                   const weiri_log_part *parts, size_t n);

/*
 * weiri_log_read - read size bytes at off in segment seg into buf: one
 * record or several (weiri_log_check each).  Returns 0, WEIR_EIO (the
 * segment cannot be read), WEIR_ECORRUPT (it ends before them).  The
 * segment must not be trimmed meanwhile.  Any thread.
 */
int weiri_log_read(weiri_log *log, uint64_t seg, uint64_t off, size_t size,
                   unsigned char *buf);

/*
 * weiri_log_check - whether rec, of size bytes (header and body), is
 * the record it was written as: 0, or WEIR_ECORRUPT (damaged since).
 */
int weiri_log_check(const unsigned char *rec, size_t size);

/*
 * weiri_log_put_head - weiri_log_append for a weiri_log_head callback:
 * with the lock held, no sync, no bound.  Returns 0, WEIR_EINVAL,
 * WEIR_EIO or WEIR_ENOMEM.
 */
int weiri_log_put_head(weiri_log *log, unsigned type,
                       const weiri_log_part *parts, size_t n);

/*
 * weiri_log_sync - make everything appended so far durable (one
 * fdatasync, unless nothing was written since the last): 0 or WEIR_EIO.
 * Any thread.
 */
int weiri_log_sync(weiri_log *log);

/*
 * weiri_log_trim - delete the segments numbered below keep (never the
 * one being written), oldest first, then sync the directory.  Returns
 * 0 or WEIR_EIO (a segment could not be deleted: those before it are
 * gone, it and those after stay).  Any thread.
 */
int weiri_log_trim(weiri_log *log, uint64_t keep);

/* weiri_log_segment - the number of the segment being written. */
uint64_t weiri_log_segment(weiri_log *log);

/* weiri_log_get_stats - counters, read under the lock. */
void weiri_log_get_stats(weiri_log *log, weiri_log_stats *out);

/*
 * weiri_log_close - sync what was written, release the lock and free
 * log.  Returns 0, or WEIR_EIO if the last sync failed (log is freed
 * either way).  Accepts NULL.
 */
int weiri_log_close(weiri_log *log);

#endif /* WEIR_LOG_INTERNAL_H */
