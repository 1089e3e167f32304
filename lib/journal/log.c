/* SPDX-License-Identifier: MIT */
/*
 * log.c - the journal's segment files: append with group commit, roll,
 * trim, and recovery at open (log_internal.h has the format).
 *
 * Appends take the log's mutex only to place and write their record;
 * the fdatasync runs without it.  Under BATCH an appender whose record
 * no sync under way covers leads one: it syncs everything written so
 * far, and every appender whose record it covers waits for it instead
 * of syncing (group commit); syncs may overlap (group_commit says why).
 * Before it syncs, a leader waits up to sync_wait_ns for the appenders
 * already queued on the mutex to write, so they share its sync rather
 * than wait for the next.
 */
/* pread, pwrite, fdatasync, flock, O_DIRECTORY */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc_internal.h"
#include "bytes_internal.h"
#include "clock_internal.h"
#include "crc_internal.h"
#include "hash_internal.h"
#include "io_internal.h"
#include "log_internal.h"

#define MAGIC "WEIRJNL\n"
#define VERSION 1u
#define NAME_MAX_LEN 24 /* 16 hex digits, ".wj", NUL */
#define STACK_RECORD 4096

typedef struct segment {
    uint64_t no;
    uint64_t bytes;
    int rfd;         /* opened for weiri_log_read, or -1 */
} segment;

struct weiri_log {
    pthread_mutex_t mu;
    pthread_cond_t synced_cv;  /* a sync ended, or writers ran out */
    const weiri_io *io;
    char *dir;
    size_t dir_len;
    int dir_fd, lock_fd, fd;   /* fd: the segment being written */
    weir_sync sync;
    int64_t sync_wait_ns;
    uint64_t segment_bytes, max_bytes;
    uint32_t salt;             /* of the segment being written */
    uint64_t off;              /* its end */
    uint64_t head_end;         /* its end once its head was written */
    segment *segs;             /* live segments, oldest first */
    size_t nsegs, cap;
    /*
     * Also guards segs, nsegs and each rfd, for weiri_log_read: what
     * changes them holds mu and this; read_fd takes this alone, so that
     * a feeder's read never waits behind an append's write.
     */
    pthread_mutex_t rfd_mu;
    uint64_t bytes;            /* in all of them */
    uint64_t written, synced;  /* bytes appended since open, and synced */
    uint64_t covering;         /* the most a sync begun so far will have
                                  synced when it ends */
    bool lingering;            /* a leader waits for queued appenders */
    unsigned syncing;          /* syncs in flight without the mutex */
    bool broken;               /* a sync failed: nothing is durable now */
    _Atomic unsigned entering; /* appenders not yet past their write */
    weiri_log_head head;
    void *ctx;
    weiri_log_stats st;
};

/* dir/name into buf (at least dir_len + NAME_MAX_LEN + 1 bytes). */
static void
path_of(const weiri_log *l, char *buf, uint64_t seg)
{
    memcpy(buf, l->dir, l->dir_len);
    if (seg == 0)
        memcpy(buf + l->dir_len, "/LOCK", 6);
    else
        snprintf(buf + l->dir_len, NAME_MAX_LEN + 1, "/%016" PRIx64 ".wj",
                 seg);
}

/* Every disk error the caller could act on is one code: WEIR_EIO. */
static int
io_error(void)
{
    return errno == ENOMEM ? WEIR_ENOMEM : WEIR_EIO;
}

static int
segs_push(weiri_log *l, uint64_t no, uint64_t bytes)
{
    pthread_mutex_lock(&l->rfd_mu);
    segment *s = weiri_grow(l->segs, &l->cap, l->nsegs + 1, sizeof(*s), 8);
    if (s != NULL) {
        l->segs = s;
        l->segs[l->nsegs++] = (segment){ no, bytes, -1 };
    }
    pthread_mutex_unlock(&l->rfd_mu);
    return s != NULL ? 0 : WEIR_ENOMEM;
}

/*
 * The record's header, finished for the segment being written: the
 * CRC of the body (computed before, without the lock) goes on over the
 * 12 bytes after the CRC field, which hold the salt.
 */
static void
seal_record(unsigned char *h, uint32_t body_crc, size_t len, unsigned type,
            uint32_t salt)
{
    weiri_put32(h + 4, (uint32_t)len);
    h[8] = (unsigned char)type;
    h[9] = h[10] = h[11] = 0;
    weiri_put32(h + 12, salt);
    weiri_put32(h, weiri_crc32c(body_crc, h + 4, 12));
}

/*
 * Begin segment no: create it, write its header, make its name durable
 * (fsync of the directory), then let the head callback write first.
 * Lock held, no sync in flight.
 */
static int
begin_segment(weiri_log *l, uint64_t no)
{
    char path[PATH_MAX];
    path_of(l, path, no);
    int fd = l->io->open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_error();
    uint64_t seed[2];
    weiri_random_seed(seed);
    uint32_t salt = (uint32_t)seed[0] | 1u; /* never 0, as zeroed bytes */
    unsigned char h[WEIRI_LOG_HEADER] = { 0 };
    memcpy(h, MAGIC, 8);
    weiri_put32(h + 8, VERSION);
    weiri_put32(h + 12, salt);
    weiri_put64(h + 16, no);
    weiri_put32(h + 24, weiri_crc32c(0, h, 24));
    int rc = segs_push(l, no, WEIRI_LOG_HEADER);
    if (rc == 0 && (weiri_io_write_all(l->io, fd, h, sizeof(h), 0) != 0 ||
                    l->io->fsync(l->dir_fd) != 0))
        rc = io_error();
    if (rc != 0) {
        pthread_mutex_lock(&l->rfd_mu);
        if (l->nsegs > 0 && l->segs[l->nsegs - 1].no == no)
            l->nsegs--;
        pthread_mutex_unlock(&l->rfd_mu);
        l->io->close(fd);
        l->io->unlink(path);
        return rc;
    }
    if (l->fd >= 0)
        l->io->close(l->fd);
    l->fd = fd;
    l->salt = salt;
    l->off = WEIRI_LOG_HEADER;
    l->bytes += WEIRI_LOG_HEADER;
    l->written += WEIRI_LOG_HEADER;
    rc = l->head != NULL ? l->head(l->ctx, l, no) : 0;
    l->head_end = l->off;
    return rc;
}

/*
 * Close the segment being written and begin the next.  The old one is
 * synced first, under every policy: a segment before the last is then
 * whole on the disk, so a record of it that does not check at open is
 * damage, not a torn write (see recovery).
 */
static int
roll(weiri_log *l)
{
    if (l->io->datasync(l->fd) != 0) {
        l->broken = true;
        return WEIR_EIO;
    }
    l->st.syncs++;
    l->synced = l->written;
    pthread_cond_broadcast(&l->synced_cv);
    uint64_t no = l->segs[l->nsegs - 1].no + 1;
    int rc = begin_segment(l, no);
    /* The new head must be durable before any older segment is trimmed. */
    if (rc == 0) {
        if (l->io->datasync(l->fd) != 0) {
            l->broken = true;
            return WEIR_EIO;
        }
        l->st.syncs++;
        l->synced = l->written;
    }
    /*
     * Switched to the new segment but its head did not all go in: it
     * would not stand on its own once the older ones are trimmed, so
     * nothing more is written (a reopen begins a segment anew).  A
     * failure before the switch leaves the old segment in use.
     */
    if (rc != 0 && l->segs[l->nsegs - 1].no == no)
        l->broken = true;
    return rc;
}

/* What seal_record needs of one record of a group made in a buffer. */
typedef struct made {
    size_t len;        /* of its body */
    uint32_t crc;      /* of its body */
    unsigned type;
} made;

/*
 * Seal the k records made in buf (total bytes, one after another, each
 * header first) for the segment being written and write them at its
 * end, in one write.  Lock held.
 */
static int
write_end(weiri_log *l, unsigned char *buf, size_t total, const made *r,
          size_t k)
{
    for (size_t i = 0, at = 0; i < k; i++) {
        seal_record(buf + at, r[i].crc, r[i].len, r[i].type, l->salt);
        at += WEIRI_LOG_RECORD_HEADER + r[i].len;
    }
    if (weiri_io_write_all(l->io, l->fd, buf, total, (off_t)l->off) != 0) {
        int rc = io_error();
        /* Cut what part of it went in: the next record starts here. */
        if (l->io->ftruncate(l->fd, (off_t)l->off) != 0)
            l->broken = true;
        return rc;
    }
    l->off += total;
    l->bytes += total;
    l->written += total;
    l->segs[l->nsegs - 1].bytes += total;
    return 0;
}

/*
 * Write the k records made in buf (see write_end) at the end, in one
 * segment.  Lock held.
 */
static int
put(weiri_log *l, unsigned char *buf, size_t total, const made *r, size_t k)
{
    /*
     * The fd a sync in flight uses stays open until it ends; another
     * appender may roll while we wait, so the need is checked again.
     */
    /*
     * A record too big for any segment goes after the head of a fresh
     * one: rolling again would only repeat that head, for ever.
     */
    while (l->off > l->head_end && l->off + total > l->segment_bytes) {
        if (l->broken)
            return WEIR_EIO; /* a roll's sync must not count as synced */
        if (l->syncing > 0) {
            pthread_cond_wait(&l->synced_cv, &l->mu);
            continue;
        }
        int rc = roll(l);
        if (rc != 0)
            return rc;
    }
    if (l->broken)
        return WEIR_EIO;
    return write_end(l, buf, total, r, k);
}

static int
body_len(unsigned type, const weiri_log_part *parts, size_t n, size_t *len)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].n > WEIRI_LOG_BODY_MAX - sum)
            return WEIR_EINVAL;
        sum += parts[i].n;
    }
    *len = sum;
    return type == 0 || type > 255 ? WEIR_EINVAL : 0;
}

/*
 * The n records of recs, one after another, header room first in each,
 * in stack (when they fit) or on the heap (*buf; free it unless it is
 * stack): *total their size, r[i] what write_end needs of each (the
 * bodies' CRCs computed here, without the lock).  0, WEIR_EINVAL (a bad
 * type or body) or WEIR_ENOMEM.
 */
static int
assemble(const weiri_log_rec *recs, size_t n, unsigned char *stack,
         unsigned char **buf, size_t *total, made *r)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = body_len(recs[i].type, recs[i].parts, recs[i].n, &r[i].len);
        if (rc != 0)
            return rc;
        if (r[i].len + WEIRI_LOG_RECORD_HEADER > SIZE_MAX - sum)
            return WEIR_EINVAL;
        sum += WEIRI_LOG_RECORD_HEADER + r[i].len;
        r[i].type = recs[i].type;
    }
    *total = sum;
    unsigned char *b = sum <= STACK_RECORD ? stack : weiri_malloc(sum);
    if (b == NULL)
        return WEIR_ENOMEM;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t body = at + WEIRI_LOG_RECORD_HEADER;
        at = body;
        for (size_t k = 0; k < recs[i].n; k++) {
            if (recs[i].parts[k].n > 0)
                memcpy(b + at, recs[i].parts[k].p, recs[i].parts[k].n);
            at += recs[i].parts[k].n;
        }
        r[i].crc = weiri_crc32c(0, b + body, r[i].len);
    }
    *buf = b;
    return 0;
}

int
weiri_log_put_head(weiri_log *l, unsigned type, const weiri_log_part *parts,
                   size_t n)
{
    unsigned char stack[STACK_RECORD], *buf;
    size_t total;
    made r;
    weiri_log_rec rec = { type, parts, n };
    int rc = assemble(&rec, 1, stack, &buf, &total, &r);
    if (rc != 0)
        return rc;
    /* Never rolls: the head belongs in the segment just begun. */
    rc = write_end(l, buf, total, &r, 1);
    if (buf != stack)
        weiri_free(buf);
    return rc;
}

/*
 * One fdatasync of the segment being written, without the lock: what
 * was written before it is synced after it.  Lock held on entry and
 * exit.
 */
static int
sync_now(weiri_log *l)
{
    uint64_t target = l->written;
    int fd = l->fd;
    if (target > l->covering)
        l->covering = target;
    l->syncing++;
    pthread_mutex_unlock(&l->mu);
    int rc = l->io->datasync(fd);
    pthread_mutex_lock(&l->mu);
    l->syncing--;
    l->st.syncs++;
    /*
     * Once a sync failed, a later one may succeed for pages the kernel
     * dropped: nothing counts as synced any more.
     */
    if (rc != 0)
        l->broken = true;
    else if (!l->broken && target > l->synced)
        l->synced = target;
    pthread_cond_broadcast(&l->synced_cv);
    return rc != 0 || l->broken ? WEIR_EIO : 0;
}

/*
 * Wait until the bytes up to mine are synced.  A sync already under way
 * that began after mine were written covers them: wait for it.  Else
 * lead one, though another sync may still be in flight: concurrent
 * fdatasyncs of one file share the file system's journal commit, where
 * waiting for the older one first would cost a whole sync more.  Before
 * it syncs, a leader lingers for the appenders queued on the mutex, and
 * those that come meanwhile wait for it.
 */
static int
group_commit(weiri_log *l, uint64_t mine)
{
    while (l->synced < mine && !l->broken) {
        if (l->lingering || l->covering >= mine) {
            pthread_cond_wait(&l->synced_cv, &l->mu);
            continue;
        }
        /*
         * Acquire: pairs with the release decrement of each appender
         * past its write.
         */
        if (atomic_load_explicit(&l->entering, memory_order_acquire) > 0) {
            l->lingering = true;
            struct timespec until =
                weiri_timespec(weiri_now_ns() + l->sync_wait_ns);
            while (atomic_load_explicit(&l->entering,
                                        memory_order_acquire) > 0 &&
                   pthread_cond_timedwait(&l->synced_cv, &l->mu, &until) !=
                       ETIMEDOUT)
                ;
            l->lingering = false;
        }
        int rc = sync_now(l);
        if (rc != 0)
            return rc;
    }
    return l->broken && l->synced < mine ? WEIR_EIO : 0;
}

/*
 * Write the n records of recs in one write, one segment, then wait for
 * their sync as the policy says if wait; refused at max_bytes if
 * bounded, or by prepare(arg) (if not NULL) before the write.
 * placed(arg, seg, off) for each, in order.
 */
static int
append(weiri_log *l, const weiri_log_rec *recs, size_t n,
       weiri_log_prepare prepare, weiri_log_placed placed, void *arg,
       bool wait, bool bounded)
{
    unsigned char stack[STACK_RECORD], *buf;
    size_t total;
    made one, *r = n == 1 ? &one : weiri_calloc(n, sizeof(*r));
    if (r == NULL)
        return WEIR_ENOMEM;
    int rc = n == 0 ? WEIR_EINVAL : assemble(recs, n, stack, &buf, &total, r);
    if (rc != 0) {
        if (r != &one)
            weiri_free(r);
        return rc;
    }
    atomic_fetch_add_explicit(&l->entering, 1, memory_order_relaxed);
    pthread_mutex_lock(&l->mu);
    if (l->broken)
        rc = WEIR_EIO;
    else if (bounded && l->max_bytes != 0 &&
             (total > l->max_bytes || l->bytes > l->max_bytes - total))
        rc = WEIR_EAGAIN;
    else if (prepare != NULL && (rc = prepare(arg)) != 0)
        ;
    else
        rc = put(l, buf, total, r, n);
    uint64_t mine = l->written;
    for (size_t i = 0, at = l->off - total; rc == 0 && placed != NULL &&
                                            i < n; i++) {
        placed(arg, l->segs[l->nsegs - 1].no, at);
        at += WEIRI_LOG_RECORD_HEADER + r[i].len;
    }
    /* Release: pairs with a leader's acquire load (group_commit). */
    if (atomic_fetch_sub_explicit(&l->entering, 1, memory_order_release) ==
        1)
        pthread_cond_broadcast(&l->synced_cv);
    if (rc == 0 && wait && l->sync == WEIR_SYNC_BATCH) {
        rc = group_commit(l, mine);
    } else if (rc == 0 && wait && l->sync == WEIR_SYNC_EVERY) {
        /* A sync of its own (it may cover others' records too). */
        rc = l->synced >= mine ? 0 : sync_now(l);
    }
    pthread_mutex_unlock(&l->mu);
    if (buf != stack)
        weiri_free(buf);
    if (r != &one)
        weiri_free(r);
    return rc;
}

int
weiri_log_append(weiri_log *l, unsigned type, const weiri_log_part *parts,
                 size_t n, weiri_log_placed placed, void *arg)
{
    weiri_log_rec rec = { type, parts, n };
    return append(l, &rec, 1, NULL, placed, arg, true, true);
}

int
weiri_log_append_always(weiri_log *l, unsigned type,
                        const weiri_log_part *parts, size_t n,
                        weiri_log_placed placed, void *arg)
{
    weiri_log_rec rec = { type, parts, n };
    return append(l, &rec, 1, NULL, placed, arg, true, false);
}

int
weiri_log_append_group(weiri_log *l, const weiri_log_rec *recs, size_t n,
                       bool bounded, weiri_log_prepare prepare,
                       weiri_log_placed placed, void *arg)
{
    return append(l, recs, n, prepare, placed, arg, true, bounded);
}

int
weiri_log_note(weiri_log *l, unsigned type, const weiri_log_part *parts,
               size_t n)
{
    weiri_log_rec rec = { type, parts, n };
    return append(l, &rec, 1, NULL, NULL, NULL, false, false);
}

/* The read fd of segment no, opened on first use; -1 if none. */
static int
read_fd(weiri_log *l, uint64_t no)
{
    int fd = -1;
    pthread_mutex_lock(&l->rfd_mu);
    for (size_t i = 0; i < l->nsegs; i++) {
        if (l->segs[i].no != no)
            continue;
        if (l->segs[i].rfd < 0) {
            char path[PATH_MAX];
            path_of(l, path, no);
            l->segs[i].rfd = l->io->open(path, O_RDONLY | O_CLOEXEC, 0);
        }
        fd = l->segs[i].rfd;
        break;
    }
    pthread_mutex_unlock(&l->rfd_mu);
    return fd;
}

int
weiri_log_read(weiri_log *l, uint64_t seg, uint64_t off, size_t size,
               unsigned char *buf)
{
    int fd = read_fd(l, seg);
    if (fd < 0)
        return WEIR_EIO;
    ssize_t got = weiri_io_read_all(l->io, fd, buf, size, (off_t)off);
    if (got < 0)
        return WEIR_EIO;
    return (size_t)got == size ? 0 : WEIR_ECORRUPT;
}

/* Whether the CRC of the record at p, with a body of len, checks. */
static bool
crc_checks(const unsigned char *p, size_t len)
{
    uint32_t crc = weiri_crc32c(0, p + WEIRI_LOG_RECORD_HEADER, len);
    return weiri_crc32c(crc, p + 4, 12) == weiri_get32(p);
}

int
weiri_log_check(const unsigned char *rec, size_t size)
{
    if (size < WEIRI_LOG_RECORD_HEADER ||
        weiri_get32(rec + 4) != size - WEIRI_LOG_RECORD_HEADER ||
        !crc_checks(rec, size - WEIRI_LOG_RECORD_HEADER))
        return WEIR_ECORRUPT;
    return 0;
}

int
weiri_log_sync(weiri_log *l)
{
    pthread_mutex_lock(&l->mu);
    int rc = l->broken ? WEIR_EIO : 0;
    if (rc == 0 && l->synced < l->written)
        rc = sync_now(l);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int
weiri_log_trim(weiri_log *l, uint64_t keep)
{
    pthread_mutex_lock(&l->mu);
    size_t gone = 0;
    int rc = 0;
    while (gone + 1 < l->nsegs && l->segs[gone].no < keep) {
        char path[PATH_MAX];
        path_of(l, path, l->segs[gone].no);
        if (l->io->unlink(path) != 0 && errno != ENOENT) {
            rc = WEIR_EIO;
            break;
        }
        l->bytes -= l->segs[gone].bytes;
        gone++;
    }
    if (gone > 0) {
        pthread_mutex_lock(&l->rfd_mu);
        for (size_t i = 0; i < gone; i++)
            if (l->segs[i].rfd >= 0)
                l->io->close(l->segs[i].rfd);
        memmove(l->segs, l->segs + gone,
                (l->nsegs - gone) * sizeof(*l->segs));
        l->nsegs -= gone;
        pthread_mutex_unlock(&l->rfd_mu);
        if (l->io->fsync(l->dir_fd) != 0 && rc == 0)
            rc = WEIR_EIO;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

uint64_t
weiri_log_segment(weiri_log *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t no = l->segs[l->nsegs - 1].no;
    pthread_mutex_unlock(&l->mu);
    return no;
}

void
weiri_log_get_stats(weiri_log *l, weiri_log_stats *out)
{
    pthread_mutex_lock(&l->mu);
    *out = l->st;
    out->bytes = l->bytes;
    out->segments = l->nsegs;
    pthread_mutex_unlock(&l->mu);
}

/* --- open and recovery -------------------------------------------------- */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A segment's number from its file name, or 0 if it is not one. */
static uint64_t
segment_no(const char *name)
{
    if (strlen(name) != 19 || strcmp(name + 16, ".wj") != 0)
        return 0;
    uint64_t no = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                            : 16;
        if (d == 16)
            return 0;
        no = no << 4 | d;
    }
    return no;
}

/* The numbers of the segment files in the directory, sorted. */
static int
list_segments(weiri_log *l, uint64_t **out, size_t *n)
{
    DIR *d = opendir(l->dir);
    if (d == NULL)
        return io_error();
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        uint64_t no = segment_no(e->d_name);
        if (no == 0)
            continue;
        uint64_t *w = weiri_grow(v, &cap, cnt + 1, sizeof(*v), 16);
        if (w == NULL) {
            rc = WEIR_ENOMEM;
            break;
        }
        v = w;
        v[cnt++] = no;
    }
    if (rc == 0 && errno != 0)
        rc = WEIR_EIO;
    closedir(d);
    if (rc != 0) {
        weiri_free(v);
        return rc;
    }
    if (cnt > 1)
        qsort(v, cnt, sizeof(*v), cmp_u64);
    *out = v;
    *n = cnt;
    return 0;
}

/* The segment's header checks and names segment no: its salt, or 0. */
static uint32_t
header_salt(const unsigned char *h, size_t size, uint64_t no)
{
    if (size < WEIRI_LOG_HEADER || memcmp(h, MAGIC, 8) != 0 ||
        weiri_get32(h + 8) != VERSION || weiri_get64(h + 16) != no ||
        weiri_get32(h + 24) != weiri_crc32c(0, h, 24) ||
        weiri_get32(h + 12) == 0)
        return 0;
    return weiri_get32(h + 12);
}

/*
 * The length of the record at p (of the size bytes left in a segment
 * whose salt is salt) if it checks, else 0.
 */
static size_t
record_checks(const unsigned char *p, size_t size, uint32_t salt)
{
    if (size < WEIRI_LOG_RECORD_HEADER)
        return 0;
    size_t len = weiri_get32(p + 4);
    if (len > size - WEIRI_LOG_RECORD_HEADER || p[8] == 0 || p[9] != 0 ||
        p[10] != 0 || p[11] != 0 || weiri_get32(p + 12) != salt ||
        !crc_checks(p, len))
        return 0;
    return WEIRI_LOG_RECORD_HEADER + len;
}

/*
 * Read segment no back: visit each record.  The last segment (last) is
 * cut at its first record that does not check, or removed if its header
 * does not; in any other segment that is damage.  *fd receives the open
 * file of the last segment when it stays, positioned for appends.
 */
static int
recover_segment(weiri_log *l, uint64_t no, bool last,
                weiri_log_visit visit, int *fd_out)
{
    char path[PATH_MAX];
    path_of(l, path, no);
    int fd = l->io->open(path, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
    if (fd < 0)
        return io_error();
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        l->io->close(fd);
        return WEIR_EIO;
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = weiri_malloc(size > 0 ? size : 1);
    if (buf == NULL) {
        l->io->close(fd);
        return WEIR_ENOMEM;
    }
    int rc = 0;
    ssize_t got = weiri_io_read_all(l->io, fd, buf, size, 0);
    if (got < 0 || (size_t)got != size)
        rc = WEIR_EIO;
    uint32_t salt = rc == 0 ? header_salt(buf, size, no) : 0;
    size_t at = WEIRI_LOG_HEADER;
    if (rc == 0 && salt == 0) {
        /* A segment begun by a process that died before its header. */
        if (!last) {
            rc = WEIR_ECORRUPT;
        } else if (l->io->unlink(path) != 0 || l->io->fsync(l->dir_fd)) {
            rc = WEIR_EIO;
        } else {
            l->st.truncated += size;
            l->io->close(fd);
            weiri_free(buf);
            *fd_out = -1;
            return 0;
        }
    }
    while (rc == 0 && at < size) {
        size_t n = record_checks(buf + at, size - at, salt);
        if (n == 0)
            break;
        rc = visit != NULL ? visit(l->ctx, no, at, buf[at + 8],
                                   buf + at + WEIRI_LOG_RECORD_HEADER,
                                   n - WEIRI_LOG_RECORD_HEADER)
                           : 0;
        l->st.recovered += rc == 0;
        at += n;
    }
    if (rc == 0 && at < size) {
        if (!last)
            rc = WEIR_ECORRUPT;
        else if (l->io->ftruncate(fd, (off_t)at) != 0 ||
                 l->io->datasync(fd) != 0)
            rc = WEIR_EIO;
        else
            l->st.truncated += size - at;
    }
    weiri_free(buf);
    if (rc == 0)
        rc = segs_push(l, no, at);
    if (rc != 0 || !last) {
        l->io->close(fd);
        return rc;
    }
    l->bytes += at;
    l->salt = salt;
    l->off = at;
    *fd_out = fd;
    return 0;
}

static int
recover(weiri_log *l, weiri_log_visit visit)
{
    uint64_t *nos = NULL;
    size_t n = 0;
    int rc = list_segments(l, &nos, &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* Only the oldest go: a gap means a segment was lost. */
        if (i > 0 && nos[i] != nos[i - 1] + 1) {
            rc = WEIR_ECORRUPT;
            break;
        }
        int fd = -1;
        bool last = i + 1 == n;
        rc = recover_segment(l, nos[i], last, visit, &fd);
        if (rc == 0 && !last)
            l->bytes += l->segs[l->nsegs - 1].bytes;
        if (rc == 0 && last)
            l->fd = fd;
    }
    /* A last segment removed (torn before its header) is begun anew. */
    uint64_t next = n > 0 ? nos[n - 1] : 1;
    weiri_free(nos);
    if (rc == 0 && l->fd < 0)
        rc = begin_segment(l, next);
    /*
     * Else a new segment begins all the same: the last one's head may
     * have been cut short by a process that died in a roll, and the new
     * one's head is written from what was read back.  Synced before the
     * open returns, like everything else found.
     */
    else if (rc == 0 && l->io->datasync(l->fd) != 0)
        rc = WEIR_EIO;
    else if (rc == 0)
        rc = begin_segment(l, l->segs[l->nsegs - 1].no + 1);
    if (rc == 0 && l->io->datasync(l->fd) != 0)
        rc = WEIR_EIO;
    l->synced = l->written;
    return rc;
}

/* Make the entry of a directory just made durable in its parent. */
static int
sync_parent(const weiri_log *l)
{
    char parent[PATH_MAX];
    memcpy(parent, l->dir, l->dir_len + 1);
    char *slash = strrchr(parent, '/');
    if (slash == parent)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else
        memcpy(parent, ".", 2);
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_error();
    int rc = l->io->fsync(fd) == 0 ? 0 : WEIR_EIO;
    close(fd);
    return rc;
}

static int
open_dir(weiri_log *l)
{
    if (mkdir(l->dir, 0777) == 0) {
        int rc = sync_parent(l);
        if (rc != 0)
            return rc;
    } else if (errno != EEXIST) {
        return io_error();
    }
    l->dir_fd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->dir_fd < 0)
        return io_error();
    char path[PATH_MAX];
    path_of(l, path, 0);
    l->lock_fd = l->io->open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (l->lock_fd < 0)
        return io_error();
    /*
     * flock, not fcntl: its lock belongs to the open file, so a second
     * open of the directory in this same process is refused too, and a
     * holder that dies leaves nothing behind.
     */
    if (flock(l->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK ? WEIR_EBUSY : WEIR_EIO;
    return 0;
}

static void
free_log(weiri_log *l)
{
    for (size_t i = 0; i < l->nsegs; i++)
        if (l->segs[i].rfd >= 0)
            l->io->close(l->segs[i].rfd);
    if (l->fd >= 0)
        l->io->close(l->fd);
    if (l->lock_fd >= 0)
        l->io->close(l->lock_fd); /* and with it the flock */
    if (l->dir_fd >= 0)
        close(l->dir_fd);
    pthread_cond_destroy(&l->synced_cv);
    pthread_mutex_destroy(&l->rfd_mu);
    pthread_mutex_destroy(&l->mu);
    weiri_free(l->segs);
    weiri_free(l->dir);
    weiri_free(l);
}

int
weiri_log_open(weiri_log **out, const weiri_log_opts *o,
               weiri_log_visit visit, weiri_log_head head, void *ctx)
{
    if (out == NULL || o == NULL || o->dir == NULL || o->dir[0] == '\0' ||
        (unsigned)o->sync > WEIR_SYNC_NONE || o->sync_wait_ns < 0 ||
        (o->segment_bytes != 0 && o->segment_bytes < WEIRI_LOG_SEGMENT_MIN))
        return WEIR_EINVAL;
    /*
     * The segment being written is never trimmed: a bound must leave room
     * for it and one more, or the log could fill with nothing to delete.
     */
    size_t seg = o->segment_bytes != 0 ? o->segment_bytes
                                       : WEIRI_LOG_SEGMENT_DEFAULT;
    if (o->max_bytes != 0 && o->max_bytes / 2 < seg)
        return WEIR_EINVAL;
    size_t dir_len = strlen(o->dir);
    if (dir_len + NAME_MAX_LEN + 1 > PATH_MAX)
        return WEIR_EINVAL;
    weiri_log *l = weiri_calloc(1, sizeof(*l));
    if (l == NULL)
        return WEIR_ENOMEM;
    l->fd = l->lock_fd = l->dir_fd = -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->synced_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->rfd_mu, NULL);
    l->io = weiri_io_get();
    l->sync = o->sync;
    l->sync_wait_ns = o->sync_wait_ns != 0 ? o->sync_wait_ns : 1000000;
    l->segment_bytes = o->segment_bytes != 0 ? o->segment_bytes
                                             : WEIRI_LOG_SEGMENT_DEFAULT;
    l->max_bytes = o->max_bytes;
    l->head = head;
    l->ctx = ctx;
    l->dir_len = dir_len;
    int rc = (l->dir = weiri_malloc(dir_len + 1)) != NULL ? 0 : WEIR_ENOMEM;
    if (rc == 0) {
        memcpy(l->dir, o->dir, dir_len + 1);
        rc = open_dir(l);
    }
    if (rc == 0) {
        pthread_mutex_lock(&l->mu);
        rc = recover(l, visit);
        pthread_mutex_unlock(&l->mu);
    }
    if (rc != 0) {
        free_log(l);
        return rc;
    }
    *out = l;
    return 0;
}

int
weiri_log_close(weiri_log *l)
{
    if (l == NULL)
        return 0;
    int rc = weiri_log_sync(l);
    free_log(l);
    return rc;
}
