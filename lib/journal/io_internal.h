/* SPDX-License-Identifier: MIT */
/*
 * io_internal.h - PRIVATE to lib/: every call the journal makes to the
 * file system goes through one table, so that a test can stand between
 * the journal and the disk: fail a write, fill the disk, or forget at a
 * chosen moment what was not synced, as a machine losing power would.
 */
#ifndef WEIR_IO_INTERNAL_H
#define WEIR_IO_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * weiri_io - as the POSIX calls of the same names (fsync is used for
 * directories, datasync is fdatasync): -1 with errno set on failure.
 */
typedef struct weiri_io {
    int (*open)(const char *path, int flags, mode_t mode);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
    int (*datasync)(int fd);
    int (*fsync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*unlink)(const char *path);
    int (*close)(int fd);
} weiri_io;

/*
 * weiri_io_set - use io for every journal opened from now on; NULL
 * restores the POSIX calls.  A seam for tests: only while no journal is
 * open.
 */
void weiri_io_set(const weiri_io *io);

/* weiri_io_get - the table in use (the POSIX one by default). */
const weiri_io *weiri_io_get(void);

/*
 * weiri_io_write_all - write n bytes at off, again after a short write
 * or EINTR: 0, or -1 with errno set (ENOSPC when nothing more fits).
 */
int weiri_io_write_all(const weiri_io *io, int fd, const void *buf, size_t n,
                       off_t off);

/*
 * weiri_io_read_all - read n bytes at off: the count read (short at the
 * end of the file), or -1 with errno set.
 */
ssize_t weiri_io_read_all(const weiri_io *io, int fd, void *buf, size_t n,
                          off_t off);

#endif /* WEIR_IO_INTERNAL_H */
