/* SPDX-License-Identifier: MIT */
/*
 * disk.c - the fake disk of disk.h, through the journal's I/O seam.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"
#include "support/disk.h"
#include "support/support.h"
#include "weir.h"

/* After a power loss nothing reaches the disk: the caller waits. */
static void
maybe_frozen(void)
{
    while (atomic_load(&ts_disk.frozen))
        pause();
}


ts_disk_state ts_disk = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int
d_open(const char *path, int flags, mode_t mode)
{
    int fd = open(path, flags, mode);
    if (fd >= 0 && fd < TS_DISK_FDS) {
        struct stat sb;
        fstat(fd, &sb);
        pthread_mutex_lock(&ts_disk.mu);
        free(ts_disk.path[fd]);
        ts_disk.path[fd] = strdup(path);
        ts_disk.synced[fd] = ts_disk.size[fd] = sb.st_size;
        pthread_mutex_unlock(&ts_disk.mu);
    }
    return fd;
}

static ssize_t
d_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    maybe_frozen();
    long space = atomic_load(&ts_disk.space);
    if (space >= 0) {
        if (space == 0) {
            errno = ENOSPC;
            return -1;
        }
        if ((long)n > space)
            n = (size_t)space; /* a short write, as a full disk gives */
        atomic_fetch_sub(&ts_disk.space, (long)n);
    }
    ssize_t w = pwrite(fd, buf, n, off);
    if (w > 0 && fd < TS_DISK_FDS) {
        pthread_mutex_lock(&ts_disk.mu);
        if (off + w > ts_disk.size[fd])
            ts_disk.size[fd] = off + w;
        pthread_mutex_unlock(&ts_disk.mu);
    }
    atomic_fetch_add(&ts_disk.writes, 1);
    return w;
}

static int
d_datasync(int fd)
{
    maybe_frozen();
    long want = atomic_load(&ts_disk.hold_sync_until_writes);
    if (want > 0) {
        int64_t until = ts_now_ns() + 10 * WEIR_SEC;
        atomic_store(&ts_disk.holding, true);
        while (atomic_load(&ts_disk.writes) < want && ts_now_ns() < until)
            ts_sleep_ms(1);
        atomic_store(&ts_disk.hold_sync_until_writes, 0);
        atomic_store(&ts_disk.holding, false);
    }
    atomic_fetch_add(&ts_disk.syncs, 1);
    if (atomic_load(&ts_disk.fail_sync)) {
        errno = EIO;
        return -1;
    }
    if (fd < TS_DISK_FDS) {
        pthread_mutex_lock(&ts_disk.mu);
        ts_disk.synced[fd] = ts_disk.size[fd];
        pthread_mutex_unlock(&ts_disk.mu);
    }
    return fdatasync(fd);
}

static int
d_ftruncate(int fd, off_t len)
{
    maybe_frozen();
    if (fd < TS_DISK_FDS) {
        pthread_mutex_lock(&ts_disk.mu);
        ts_disk.size[fd] = len;
        if (ts_disk.synced[fd] > len)
            ts_disk.synced[fd] = len;
        pthread_mutex_unlock(&ts_disk.mu);
    }
    return ftruncate(fd, len);
}

static int
d_close(int fd)
{
    if (fd >= 0 && fd < TS_DISK_FDS) {
        pthread_mutex_lock(&ts_disk.mu);
        free(ts_disk.path[fd]);
        ts_disk.path[fd] = NULL;
        pthread_mutex_unlock(&ts_disk.mu);
    }
    return close(fd);
}

static const weiri_io fake = {
    .open = d_open,
    .pwrite = d_pwrite,
    .pread = pread,
    .datasync = d_datasync,
    .fsync = fsync,
    .ftruncate = d_ftruncate,
    .unlink = unlink,
    .close = d_close,
};

void
ts_disk_reset(void)
{
    atomic_store(&ts_disk.writes, 0);
    atomic_store(&ts_disk.syncs, 0);
    atomic_store(&ts_disk.space, -1);
    atomic_store(&ts_disk.fail_sync, false);
    atomic_store(&ts_disk.hold_sync_until_writes, 0);
    atomic_store(&ts_disk.holding, false);
    atomic_store(&ts_disk.frozen, false);
    weiri_io_set(&fake);
}

/*
 * The machine loses power: every open file loses what was not synced,
 * and with tear, gets garbage of a random length in its place, as a
 * half-written sector would leave.
 */
void
ts_disk_power_loss(bool tear, unsigned seed)
{
    atomic_store(&ts_disk.frozen, true);
    pthread_mutex_lock(&ts_disk.mu);
    for (int fd = 0; fd < TS_DISK_FDS; fd++) {
        if (ts_disk.path[fd] == NULL || ts_disk.synced[fd] >= ts_disk.size[fd])
            continue;
        int raw = open(ts_disk.path[fd], O_WRONLY);
        if (raw < 0 || ftruncate(raw, ts_disk.synced[fd]) != 0)
            abort();
        if (tear) {
            unsigned char junk[64];
            size_t n = 1 + rand_r(&seed) % sizeof(junk);
            for (size_t i = 0; i < n; i++)
                junk[i] = (unsigned char)rand_r(&seed);
            if (pwrite(raw, junk, n, ts_disk.synced[fd]) != (ssize_t)n)
                abort();
        }
        close(raw);
    }
    pthread_mutex_unlock(&ts_disk.mu);
}

