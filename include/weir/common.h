/* SPDX-License-Identifier: MIT */
/*
 * weir/common.h - error codes, version, time units and the small
 * portability macros every other weir header uses.
 *
 * Every fallible weir call returns an int: 0 on success or one of the
 * negative WEIR_E* codes below.  The codes are weir's own, not errno
 * values, so a caller can switch on them without caring which platform
 * call failed underneath; weir_strerror() names each of them.
 */
#ifndef WEIR_COMMON_H
#define WEIR_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEIR_VERSION_MAJOR 0
#define WEIR_VERSION_MINOR 1
#define WEIR_VERSION_PATCH 0

/*
 * Error codes.  The policy is one code per thing a caller would do
 * differently: retry later (EAGAIN), wait longer or give up (ETIMEDOUT),
 * stop using the object (ECLOSED), fix the call (EINVAL).  OS failures are
 * folded into the nearest of these rather than passed through as errno.
 */
#define WEIR_OK          0  /* success */
#define WEIR_EINVAL    (-1) /* an argument is NULL, out of range or
                               inconsistent */
#define WEIR_ENOMEM    (-2) /* memory (or a thread) could not be allocated */
#define WEIR_EAGAIN    (-3) /* would block: full or empty on a
                               non-blocking call */
#define WEIR_ETIMEDOUT (-4) /* the timeout expired before the call
                               could complete */
#define WEIR_ECLOSED   (-5) /* the object is closed to this operation */
#define WEIR_ENOENT    (-6) /* no such entry (topic, subscription, key) */
#define WEIR_EEXIST    (-7) /* the entry already exists */
#define WEIR_EDEADLK   (-8) /* would deadlock: e.g. a handler closing its own
                               subscription */
#define WEIR_EBUSY     (-9) /* the journal directory is in use by another
                               bus, of this process or another */
#define WEIR_EIO       (-10) /* the disk refused: full, read-only,
                                permission, I/O error */
#define WEIR_ECORRUPT  (-11) /* the journal is damaged before its last
                                record */

/* The most negative code in use; codes below it are unknown. */
#define WEIR_ELAST     WEIR_ECORRUPT

/*
 * weir_strerror - a short, static, English description of code.
 * Returns "success" for 0 and "unknown error" for any value that is not a
 * weir code.  Never returns NULL; the string must not be freed.
 * Thread-safe.
 */
const char *weir_strerror(int code);

/*
 * weir_version - the library's version as "MAJOR.MINOR.PATCH", which may
 * differ from the WEIR_VERSION_* macros a program was compiled against if
 * it links a different build.  Static string; thread-safe.
 */
const char *weir_version(void);

/*
 * weir_allocator - where weir takes its memory from.  Every allocation
 * the library makes goes through these: malloc_fn, realloc_fn and
 * free_fn as the C library's malloc, realloc and free; aligned_fn as
 * aligned_alloc (alignment a power of two, size a multiple of it), its
 * memory freed by free_fn too.  ctx is passed to each.  Each may fail
 * (return NULL): the call that needed the memory then returns
 * WEIR_ENOMEM, or its documented code, and leaks nothing.
 *
 * weir_set_allocator - use a (copied) from now on; NULL goes back to the
 * C library's.  Returns 0, or WEIR_EINVAL if a function is missing.  Set
 * it before any other weir call, and change it only when no weir object
 * (ring, queue, dedup table, bus, batch) is alive: memory is freed with
 * the allocator current at the time, so an object made under another
 * one would be freed with the wrong free_fn.  Not thread-safe: no other
 * weir call may run meanwhile.
 */
typedef struct weir_allocator {
    void *(*malloc_fn)(size_t size, void *ctx);
    void *(*realloc_fn)(void *p, size_t size, void *ctx);
    void (*free_fn)(void *p, void *ctx);
    void *(*aligned_fn)(size_t alignment, size_t size, void *ctx);
    void *ctx;
} weir_allocator;

int weir_set_allocator(const weir_allocator *a);

/*
 * Time.  Every duration in weir is an int64_t count of nanoseconds.  Two
 * values are sentinels, and mean the same in every call and every
 * option that takes a timeout: WEIR_NOWAIT tries once without blocking,
 * WEIR_FOREVER blocks without limit.  Other negative values are invalid.
 * As a call's argument, a timeout of 0 ns tries once too.  In an option
 * struct, 0 means the option's default (so that zeroed options are the
 * defaults): write WEIR_NOWAIT there to never wait.
 */
#define WEIR_NOWAIT   ((int64_t)-2)
#define WEIR_FOREVER  ((int64_t)-1)
#define WEIR_NSEC     ((int64_t)1)
#define WEIR_USEC     ((int64_t)1000)
#define WEIR_MSEC     ((int64_t)1000000)
#define WEIR_SEC      ((int64_t)1000000000)

/*
 * The cache line size weir pads shared fields to.  128 on machines whose
 * adjacent-line prefetcher pulls lines in pairs would halve false sharing
 * further, but doubles every padded struct; 64 is the line size of every
 * x86-64 and most arm64 parts.  It fixes the layout of public structs
 * that programs embed (rings, the limiter), which must match the
 * installed library's: so it is not a setting, and a program that
 * defines it otherwise does not compile.
 */
#if defined(WEIR_CACHELINE) && WEIR_CACHELINE != 64
#error "WEIR_CACHELINE is fixed at 64: the installed library was built so"
#endif
#undef WEIR_CACHELINE
#define WEIR_CACHELINE 64

/*
 * Portability macros for the headers, which compile as C11 and as C++11.
 * WEIR_ALIGNAS aligns a struct member.  WEIR_ATOMIC(T) is _Atomic T in C;
 * C++ (before C++23) has no _Atomic, so there the field is the plain type,
 * which has the same size and alignment on every platform weir supports
 * (lock-free atomics of pointer width).  C++ code never touches these
 * fields: the functions that do are compiled in C inside the library.
 */
#ifdef __cplusplus
#define WEIR_ALIGNAS(n) alignas(n)
#define WEIR_ATOMIC(T) T
#else
#define WEIR_ALIGNAS(n) _Alignas(n)
#define WEIR_ATOMIC(T) _Atomic T
#endif

#ifdef __cplusplus
}
#endif

#endif /* WEIR_COMMON_H */
