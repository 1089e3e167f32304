/*
 * clock.c - the monotonic clock.  CLOCK_MONOTONIC rather than the wall
 * clock, so a timeout is unaffected by the system time being set.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "weir/common.h"

#include "clock_internal.h"

int64_t
weiri_now_ns(void)
{
    struct timespec ts;
    /* Cannot fail for CLOCK_MONOTONIC with a valid pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WEIR_SEC + ts.tv_nsec;
}

int64_t
weiri_deadline(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return WEIRI_NO_DEADLINE;
    int64_t now = weiri_now_ns();
    if (timeout_ns > WEIRI_NO_DEADLINE - now)
        return WEIRI_NO_DEADLINE;
    return now + timeout_ns;
}

void
weiri_sleep_until(int64_t deadline_ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ns / WEIR_SEC);
    ts.tv_nsec = (long)(deadline_ns % WEIR_SEC);
    /* Absolute, so resuming after a signal does not extend the sleep. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/*
 * Timestamps.  clock_gettime costs ~30 ns here, most of it an ordered
 * read of the time-stamp counter (an lfence that also waits for every
 * load in flight), and a publish would pay it on every message.  Where
 * the kernel itself keeps CLOCK_MONOTONIC with the TSC, which it does only
 * once it has found the TSC invariant and synchronised across CPUs,
 * weiri_stamp_ns reads the TSC directly (~12 ns, no fence) and converts
 * it with a base (a TSC reading and the clock at that moment) and a rate,
 * both taken from clock_gettime: the base again whenever it is
 * STAMP_WINDOW_NS old, the rate over about a second of such pairings, so
 * that it follows the kernel's own adjustments.
 *
 * A pairing reads the TSC, the clock, the TSC, and keeps the first TSC
 * reading: the clock read its own TSC a little later, so a stamp errs
 * late, never early, by part of the pairing's width.  Only pairings
 * about as narrow as the narrowest seen are used (~30 ns here), which
 * keeps a stamp within that of the clock.  (Where within the pairing the
 * clock read the TSC cannot be known, so it cannot be subtracted.)  The
 * rate is a measure of the clock's own ticks, so a suspend (which the
 * clock does not count) or a TSC reset only make a rate that is refused.
 * Each new base is checked against the old one's
 * prediction: off by more than STAMP_SANE_NS means the TSC does not keep
 * the clock's time after all (a migrated virtual machine, a clock slewed
 * faster than ~0.2 %), and stamps read clock_gettime from then on.  They
 * read it too on other CPUs, until the first rate is measured
 * (STAMP_FIRST_RATE_NS after the first stamp), and when the last base is
 * stale: a stamp then pairs anew and returns the clock's reading.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define STAMP_TSC 1
#include <cpuid.h>
#include <stdio.h>
#include <string.h>
#endif

#ifdef STAMP_TSC
#define STAMP_WINDOW_NS 100000LL       /* a base serves 100 us */
#define STAMP_FIRST_RATE_NS 20000000LL /* first rate over 20 ms */
#define STAMP_RATE_NS 1000000000LL     /* then re-measured over ~1 s */
#define STAMP_RATE_PPM 1000.0          /* a rate moving more is refused */
#define STAMP_SANE_NS 200              /* a base off by more: TSC unusable */
#define STAMP_ONE 4294967296.0         /* 1.0 in the rate's 32.32 format */

/*
 * Read by every stamp and written once per window, as a seqlock: seq is
 * odd while the fields change.  mult is ns per tick in 32.32 fixed point
 * and window the ticks a base serves, both 0 while the TSC is not (yet)
 * used, which sends every stamp to the clock.
 */
static struct {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t seq;
    _Atomic uint64_t base_tsc;
    _Atomic int64_t base_ns;
    _Atomic uint64_t mult;
    _Atomic uint64_t window;
} stamp;

/* The refresher's state, on a line of its own: stamps never read it. */
static struct {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    atomic_flag busy;          /* one refresher at a time; guards the rest */
    _Atomic int usable;        /* 0 not checked yet, 1 yes, -1 no */
    uint64_t narrowest;        /* width a pairing must about match, ticks */
    uint64_t anchor_tsc;       /* the pairing the rate is measured from */
    int64_t anchor_ns;         /* 0: none yet */
} refresh = { .busy = ATOMIC_FLAG_INIT };

static bool
tsc_trusted(void)
{
    unsigned a, b, c, d; /* CPUID 0x80000007 EDX bit 8: invariant TSC */
    if (!__get_cpuid(0x80000007u, &a, &b, &c, &d) || !(d & (1u << 8)))
        return false;
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
                    "current_clocksource", "r");
    if (f == NULL)
        return false;
    char name[16] = "";
    bool tsc = fgets(name, sizeof(name), f) != NULL && strcmp(name, "tsc\n") == 0;
    fclose(f);
    return tsc;
}

static void
stamp_publish(uint64_t tsc, int64_t ns, uint64_t mult)
{
    uint64_t window = mult == 0 ? 0 : (uint64_t)(STAMP_WINDOW_NS * STAMP_ONE / (double)mult);
    uint64_t s = atomic_load_explicit(&stamp.seq, memory_order_relaxed);
    atomic_store_explicit(&stamp.seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&stamp.base_tsc, tsc, memory_order_relaxed);
    atomic_store_explicit(&stamp.base_ns, ns, memory_order_relaxed);
    atomic_store_explicit(&stamp.mult, mult, memory_order_relaxed);
    atomic_store_explicit(&stamp.window, window, memory_order_relaxed);
    atomic_store_explicit(&stamp.seq, s + 2, memory_order_release);
}

/*
 * Pair the clock with the TSC: *ns, and *tsc just before it.  Returns
 * whether the pairing is narrow enough to use.  The first pairing takes
 * the narrowest of three, as the clock's first use may fault a page in.
 * A refused pairing widens the bar a little, so that a machine whose
 * clock calls got slower for good is not refused forever.
 */
static bool
stamp_pair(uint64_t *tsc, int64_t *ns)
{
    uint64_t width = UINT64_MAX;
    for (int i = refresh.narrowest == 0 ? 0 : 2; i < 3; i++) {
        uint64_t t0 = __builtin_ia32_rdtsc();
        int64_t n = weiri_now_ns();
        uint64_t t1 = __builtin_ia32_rdtsc();
        if (t1 >= t0 && t1 - t0 < width) {
            width = t1 - t0;
            *tsc = t0;
            *ns = n;
        }
    }
    if (width == UINT64_MAX)
        return false; /* the TSC went backwards: another CPU's, or reset */
    if (refresh.narrowest == 0 || width < refresh.narrowest)
        refresh.narrowest = width;
    if (width <= refresh.narrowest + refresh.narrowest / 4 + 2)
        return true;
    refresh.narrowest += refresh.narrowest / 16 + 1;
    return false;
}

/*
 * Move the rate's anchor to a pairing, measuring the rate from the old
 * anchor when they lie far enough apart, and not too far (the clock does
 * not count a suspend, the TSC may).  A measured rate is taken only if it
 * is plausible: a TSC between 1 MHz and 1 THz and, once a rate is known,
 * within STAMP_RATE_PPM of it (a suspend inside the span, or a TSC reset,
 * measures nonsense; the bases' own check catches a TSC that keeps
 * disagreeing).  Returns the rate to use, 0 for none yet.
 */
static uint64_t
stamp_rate(uint64_t tsc, int64_t ns, uint64_t mult)
{
    int64_t span = ns - refresh.anchor_ns;
    if (refresh.anchor_ns != 0 &&
        span < (mult == 0 ? STAMP_FIRST_RATE_NS : STAMP_RATE_NS))
        return mult;
    if (refresh.anchor_ns != 0 && span <= 2 * STAMP_RATE_NS &&
        tsc > refresh.anchor_tsc) {
        double m = (double)span * STAMP_ONE / (double)(tsc - refresh.anchor_tsc);
        double lo = STAMP_ONE / 1000.0, hi = STAMP_ONE * 1000.0;
        if (mult != 0) {
            lo = (double)mult * (1.0 - STAMP_RATE_PPM * 1e-6);
            hi = (double)mult * (1.0 + STAMP_RATE_PPM * 1e-6);
        }
        if (m >= lo && m <= hi)
            mult = (uint64_t)m;
    }
    refresh.anchor_tsc = tsc;
    refresh.anchor_ns = ns;
    return mult;
}

/*
 * A stamp the base cannot serve: the clock, after moving the base (and
 * the rate) if no other thread is doing so.
 */
static int64_t
stamp_slow(void)
{
    if (atomic_load_explicit(&refresh.usable, memory_order_acquire) < 0 ||
        atomic_flag_test_and_set_explicit(&refresh.busy, memory_order_acquire))
        return weiri_now_ns();
    /* Again under the flag: a thread may have given up on the TSC meanwhile. */
    int usable = atomic_load_explicit(&refresh.usable, memory_order_relaxed);
    if (usable == 0) {
        usable = tsc_trusted() ? 1 : -1;
        atomic_store_explicit(&refresh.usable, usable, memory_order_release);
    }
    uint64_t mult = atomic_load_explicit(&stamp.mult, memory_order_relaxed);
    uint64_t base_tsc = atomic_load_explicit(&stamp.base_tsc, memory_order_relaxed);
    int64_t base_ns = atomic_load_explicit(&stamp.base_ns, memory_order_relaxed);
    uint64_t window = atomic_load_explicit(&stamp.window, memory_order_relaxed);
    uint64_t tsc = 0;
    int64_t ns = 0;
    /* Until the rate is known every stamp lands here: pair once a window. */
    if (usable < 0 || (mult == 0 && refresh.anchor_ns != 0 &&
                       (ns = weiri_now_ns()) - base_ns < STAMP_WINDOW_NS)) {
        atomic_flag_clear_explicit(&refresh.busy, memory_order_release);
        return ns != 0 ? ns : weiri_now_ns();
    }
    if (!stamp_pair(&tsc, &ns)) {
        atomic_flag_clear_explicit(&refresh.busy, memory_order_release);
        return weiri_now_ns();
    }
    /* Only a recent base is checked: the check bounds its drift over 1 ms. */
    bool off = mult != 0 && tsc - base_tsc < 10 * window &&
               llabs(base_ns + (int64_t)(((tsc - base_tsc) * mult) >> 32) - ns) >
                   STAMP_SANE_NS;
    if (!off) {
        stamp_publish(tsc, ns, stamp_rate(tsc, ns, mult));
    } else {
        atomic_store_explicit(&refresh.usable, -1, memory_order_release);
        stamp_publish(0, 0, 0);
    }
    atomic_flag_clear_explicit(&refresh.busy, memory_order_release);
    return ns;
}
#endif

int64_t
weiri_stamp_ns(void)
{
#ifdef STAMP_TSC
    uint64_t s = atomic_load_explicit(&stamp.seq, memory_order_acquire);
    uint64_t t = __builtin_ia32_rdtsc();
    uint64_t base_tsc = atomic_load_explicit(&stamp.base_tsc, memory_order_relaxed);
    int64_t base_ns = atomic_load_explicit(&stamp.base_ns, memory_order_relaxed);
    uint64_t mult = atomic_load_explicit(&stamp.mult, memory_order_relaxed);
    uint64_t window = atomic_load_explicit(&stamp.window, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    /*
     * A stale base, or a TSC read before the base's (another CPU moved it
     * meanwhile), fails the window test (t - base_tsc wraps).  Within the
     * window the product stays near STAMP_WINDOW_NS << 32, far below 2^64.
     */
    if ((s & 1) == 0 && t - base_tsc < window &&
        atomic_load_explicit(&stamp.seq, memory_order_relaxed) == s)
        return base_ns + (int64_t)(((t - base_tsc) * mult) >> 32);
    return stamp_slow();
#else
    return weiri_now_ns();
#endif
}
