/* SPDX-License-Identifier: MIT */
/*
 * clock_internal.h - PRIVATE to lib/: the monotonic clock and deadlines.
 * The only place weir reads the time; see lib/base/clock.c.
 */
#ifndef WEIR_CLOCK_INTERNAL_H
#define WEIR_CLOCK_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "weir/common.h"

/* Sentinel deadline: never. */
#define WEIRI_NO_DEADLINE INT64_MAX

/* weiri_now_ns - CLOCK_MONOTONIC in nanoseconds. */
int64_t weiri_now_ns(void);

/*
 * weiri_wall_ns - CLOCK_REALTIME in nanoseconds: for a time that must
 * mean the same after a restart (a durable delayed message's due).
 */
int64_t weiri_wall_ns(void);

/*
 * weiri_stamp_ns - CLOCK_MONOTONIC in nanoseconds, cheaply, for message
 * timestamps and latencies: where the TSC keeps the kernel's time, read
 * from it, never earlier than weiri_now_ns would say and at most a few
 * tens of ns later; else weiri_now_ns itself (see lib/base/clock.c).  Never
 * for deadlines.  Any thread.  Inline (below), for every publish takes
 * one.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WEIRI_STAMP_TSC 1

/*
 * Read by every stamp and written once per window, as a seqlock: seq is
 * odd while the fields change.  mult is ns per tick in 32.32 fixed point,
 * running fast by the slew margin, and window the ticks a base serves;
 * both are 0 while no rate is known, which sends every stamp to the
 * clock.  PRIVATE to lib/base/clock.c but for this read side.
 */
struct weiri_stamp_base {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t seq;
    _Atomic uint64_t base_tsc;
    _Atomic int64_t base_ns;
    _Atomic uint64_t mult;
    _Atomic uint64_t window;
};
extern struct weiri_stamp_base weiri_stamp_base;

/* weiri_stamp_slow - a stamp the base cannot serve (lib/base/clock.c). */
int64_t weiri_stamp_slow(void);

static inline int64_t
weiri_stamp_ns(void)
{
    struct weiri_stamp_base *b = &weiri_stamp_base;
    /* The seqlock's read side: see stamp_publish.  Plain loads on x86. */
    uint64_t s = atomic_load_explicit(&b->seq, memory_order_acquire);
    uint64_t t = __builtin_ia32_rdtsc();
    uint64_t base_tsc = atomic_load_explicit(&b->base_tsc,
                                             memory_order_acquire);
    int64_t base_ns = atomic_load_explicit(&b->base_ns, memory_order_acquire);
    uint64_t mult = atomic_load_explicit(&b->mult, memory_order_acquire);
    uint64_t window = atomic_load_explicit(&b->window, memory_order_acquire);
    /*
     * A stale base, or a TSC read before the base's (another CPU moved it
     * meanwhile), fails the window test (t - base_tsc wraps).  Within the
     * window the product stays near 20 us << 32, far below 2^64.
     */
    if ((s & 1) == 0 && t - base_tsc < window &&
        atomic_load_explicit(&b->seq, memory_order_relaxed) == s)
        return base_ns + (int64_t)(((t - base_tsc) * mult) >> 32);
    return weiri_stamp_slow();
}
#else
static inline int64_t
weiri_stamp_ns(void)
{
    return weiri_now_ns();
}
#endif

/*
 * weiri_deadline - turn a relative timeout (WEIR_FOREVER, WEIR_NOWAIT or
 * >= 0 ns) into an absolute CLOCK_MONOTONIC deadline, once, so that
 * retries after a spurious wake-up never extend the total wait.
 * WEIR_NOWAIT is now.  Saturates instead of overflowing.
 */
int64_t weiri_deadline(int64_t timeout_ns);

/* weiri_bad_timeout - a timeout argument no call accepts. */
static inline int
weiri_bad_timeout(int64_t timeout_ns)
{
    return timeout_ns < WEIR_NOWAIT;
}

/* weiri_try_once - WEIR_NOWAIT or 0 ns: try once, never wait. */
static inline int
weiri_try_once(int64_t timeout_ns)
{
    return timeout_ns == WEIR_NOWAIT || timeout_ns == 0;
}

/* weiri_timespec - ns (non-negative) as a struct timespec. */
static inline struct timespec
weiri_timespec(int64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / WEIR_SEC);
    ts.tv_nsec = (long)(ns % WEIR_SEC);
    return ts;
}

/*
 * weiri_sleep_until - sleep until CLOCK_MONOTONIC reaches deadline_ns;
 * never returns early: interrupted sleeps are resumed.
 */
void weiri_sleep_until(int64_t deadline_ns);

#endif /* WEIR_CLOCK_INTERNAL_H */
