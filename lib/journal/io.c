/* SPDX-License-Identifier: MIT */
/*
 * io.c - the journal's file calls, through a table a test may replace.
 */
/* pread, pwrite, fdatasync, flock, O_DIRECTORY */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <unistd.h>

#include "io_internal.h"

static int
posix_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static const weiri_io posix = {
    .open = posix_open,
    .pwrite = pwrite,
    .pread = pread,
    .datasync = fdatasync,
    .fsync = fsync,
    .ftruncate = ftruncate,
    .unlink = unlink,
    .close = close,
};

/* Acquire/release: a table set before an open is whole when read. */
static _Atomic(const weiri_io *) current = &posix;

void
weiri_io_set(const weiri_io *io)
{
    atomic_store_explicit(&current, io != NULL ? io : &posix,
                          memory_order_release);
}

const weiri_io *
weiri_io_get(void)
{
    return atomic_load_explicit(&current, memory_order_acquire);
}

int
weiri_io_write_all(const weiri_io *io, int fd, const void *buf, size_t n,
                   off_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = io->pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

ssize_t
weiri_io_read_all(const weiri_io *io, int fd, void *buf, size_t n,
                  off_t off)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = io->pread(fd, p + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}
