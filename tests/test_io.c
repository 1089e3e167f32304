/* SPDX-License-Identifier: MIT */
/*
 * test_io.c - the journal's I/O seam: writes and reads that come back
 * short or interrupted are carried on to the end, a write that makes no
 * progress is a full disk, and the table can be swapped and restored.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "io_internal.h"

static unsigned char file[256];
static int calls;

/* Writes at most 7 bytes a call, and is interrupted every third call. */
static ssize_t
short_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    (void)fd;
    if (++calls % 3 == 0) {
        errno = EINTR;
        return -1;
    }
    if (n > 7)
        n = 7;
    if ((size_t)off + n > sizeof(file))
        n = (size_t)off < sizeof(file) ? sizeof(file) - (size_t)off : 0;
    memcpy(file + off, buf, n);
    return (ssize_t)n;
}

static ssize_t
short_pread(int fd, void *buf, size_t n, off_t off)
{
    (void)fd;
    if (++calls % 3 == 0) {
        errno = EINTR;
        return -1;
    }
    if ((size_t)off >= sizeof(file))
        return 0;
    if (n > 5)
        n = 5;
    if ((size_t)off + n > sizeof(file))
        n = sizeof(file) - (size_t)off;
    memcpy(buf, file + off, n);
    return (ssize_t)n;
}

static void
test_io_short_and_interrupted_calls_go_on(void **state)
{
    (void)state;
    weiri_io io = *weiri_io_get();
    io.pwrite = short_pwrite;
    io.pread = short_pread;
    unsigned char src[100], back[120];
    for (int i = 0; i < 100; i++)
        src[i] = (unsigned char)(i + 1);
    assert_int_equal(weiri_io_write_all(&io, 0, src, 100, 10), 0);
    assert_memory_equal(file + 10, src, 100);
    assert_int_equal(weiri_io_read_all(&io, 0, back, 100, 10), 100);
    assert_memory_equal(back, src, 100);
    /* At the end of the file a read comes back short. */
    assert_int_equal(weiri_io_read_all(&io, 0, back, 120, 200), 56);
    /* A write that cannot progress is a full disk. */
    errno = 0;
    assert_int_equal(weiri_io_write_all(&io, 0, src, 100, 200), -1);
    assert_int_equal(errno, ENOSPC);
}

static void
test_io_table_swapped_and_restored(void **state)
{
    (void)state;
    const weiri_io *posix = weiri_io_get();
    weiri_io mine = *posix;
    weiri_io_set(&mine);
    assert_ptr_equal(weiri_io_get(), &mine);
    weiri_io_set(NULL);
    assert_ptr_equal(weiri_io_get(), posix);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_io_short_and_interrupted_calls_go_on),
        cmocka_unit_test(test_io_table_swapped_and_restored),
    };
    return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}
